//! Replaying the edit log: 1M edits over a 1M-row manifest, and exporting 1M rows. The baselines,
//! in the same run, are reading the manifest without edits (scan + collect) and writing the same
//! rows with Polars' CSV writer, so the figures read "costs N plain reads / writes".
//!
//! Run: cargo bench --workspace --bench edits -- [ROWS] [EDITS]
//! (defaults 1000000 1000000; NOEXPORT=1 skips the export arm). A plain main: the read and
//! replay arms run twice each in fresh processes; each takes seconds.

use std::time::Instant;

use curate_stdlib::edits::{self, Edit};
use polars::prelude::*;

/// One arm in this process (the child side of `run_arm`): prints its figures on one line.
fn arm(kind: &str, dir: &std::path::Path) {
    let manifest = dir.join("manifest.parquet");
    let scan = || LazyFrame::scan_parquet(PlRefPath::try_from_path(&manifest).expect("path"), Default::default()).expect("scan");
    if kind == "baseline" {
        let t = Instant::now();
        let base = scan().collect().expect("collect");
        println!("{} {}", t.elapsed().as_secs_f64(), base.height());
        return;
    }
    let t = Instant::now();
    let parsed = edits::read(&dir.join(edits::FILE)).expect("read");
    let read = t.elapsed().as_secs_f64();
    // "replay" is what `open()` does to write the view cache (`replay_collected`); "joined" is
    // the lazy join, which lookups that filter and smaller logs use.
    let from = if kind == "joined" { usize::MAX } else { edits::EAGER_FROM };
    let t = Instant::now();
    let view = edits::replay_from(scan(), &parsed.edits, from).expect("replay").collect().expect("collect");
    println!("{read} {} {} {}", t.elapsed().as_secs_f64(), view.height(), view.width());
}

/// Run one arm in a fresh process of this binary; its printed fields.
fn run_arm(kind: &str, dir: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new(std::env::current_exe().expect("exe")).env("EDITS_ARM", kind).env("EDITS_DIR", dir).output().expect("spawn the arm");
    assert!(out.status.success(), "{kind} arm failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().split_whitespace().map(str::to_string).collect()
}

fn main() {
    if let (Some(kind), Some(dir)) = (std::env::var_os("EDITS_ARM"), std::env::var_os("EDITS_DIR")) {
        return arm(&kind.to_string_lossy(), std::path::Path::new(&dir));
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let rows: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let n_edits: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tmp");
    let manifest = dir.path().join("manifest.parquet");
    let ids: Vec<String> = (0..rows).map(|i| format!("img/{i:08}")).collect();
    let labels: Vec<&str> = (0..rows).map(|i| if i % 10 == 0 { "person" } else { "no_person" }).collect();
    let splits: Vec<&str> = (0..rows).map(|i| if i % 5 == 0 { "test" } else { "train" }).collect();
    let mut df = df!("id" => &ids, "path" => &ids, "label" => labels, "split" => splits).expect("df");
    ParquetWriter::new(std::fs::File::create(&manifest).expect("create")).finish(&mut df).expect("write");

    // Mixed edits, as a long curation history would have: relabels, tags, weights, removals.
    let log = dir.path().join(edits::FILE);
    let t = Instant::now();
    let mut batch = Vec::with_capacity(n_edits);
    for i in 0..n_edits {
        let id = ids[(i * 7919) % rows].clone();
        let (action, column, value) = match i % 10 {
            0..=5 => ("relabel", None, Some(serde_json::Value::from(if i % 2 == 0 { "person" } else { "no_person" }))),
            6 | 7 => ("tag", Some(format!("t{}", i % 3)), None),
            8 => ("set_weight", Some("weight".to_string()), Some(serde_json::Value::from(2.0))),
            _ => ("remove", None, None),
        };
        batch.push(Edit { time: edits::now(), action: action.into(), ids: vec![id], column, value, old: vec![], rows: vec![], reason: "bench".into(), source: "bench".into() });
    }
    edits::append(&log, &batch).expect("append");
    let append = t.elapsed().as_secs_f64();

    // Each arm runs twice, alternating, each time in a fresh process: a process that has
    // already read the manifest reuses freed pages, and on this VM first-touch page faults are
    // a large share of reading 30M rows, so arms in one process would not be comparable.
    let mut baseline = f64::INFINITY;
    let (mut read, mut replay, mut joined) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let mut shape = String::new();
    for _ in 0..2 {
        baseline = baseline.min(run_arm("baseline", dir.path())[0].parse().expect("secs"));
        let out = run_arm("replay", dir.path());
        read = read.min(out[0].parse().expect("secs"));
        replay = replay.min(out[1].parse().expect("secs"));
        shape = format!("{} rows, {} columns after replay", out[2], out[3]);
        joined = joined.min(run_arm("joined", dir.path())[1].parse().expect("secs"));
    }
    println!("baseline: scan + collect {rows} rows, fresh process: {baseline:.3} s (best of 2)");
    println!("append {n_edits} edits (one locked, fsynced batch): {append:.3} s");
    println!("read + parse the log: {read:.3} s = {:.1}x baseline", read / baseline);
    println!("replay + collect: {replay:.3} s = {:.1}x baseline ({shape}; fresh process, best of 2)", replay / baseline);
    println!("open() with {n_edits} edits = read + replay: {:.3} s = {:.1}x baseline", read + replay, (read + replay) / baseline);
    println!("the lazy join plan (`edits::replay`; the view cache uses it when the log names under {} ids) + collect: {joined:.3} s = {:.1}x baseline", edits::EAGER_FROM, joined / baseline);
    if std::env::var_os("NOEXPORT").is_some() {
        return;
    }

    // Export: a workspace with the same rows and no edits.
    let wsdir = dir.path().join("ws");
    let ws = std::sync::Arc::new(curate_stdlib::Workspace::init(&wsdir, Some("bench")).expect("init"));
    let hashes: Vec<String> = (0..rows).map(|i| format!("{:064x}", i)).collect();
    let mut mdf = df!("id" => &ids, "path" => &ids, "label" => df.column("label").expect("label").clone().take_materialized_series(), "split" => df.column("split").expect("split").clone().take_materialized_series(), "hash" => hashes).expect("df");
    curate_stdlib::manifest::write(&ws.manifest_path(), &mut mdf).expect("manifest");
    let t = Instant::now();
    let mut plain = mdf.clone();
    let f = std::fs::File::create(dir.path().join("plain.csv")).expect("create");
    CsvWriter::new(f).finish(&mut plain).expect("csv");
    let csv = t.elapsed().as_secs_f64();
    let ctx = curate_stdlib::primitives::Context::quiet(wsdir.clone(), Some(ws.clone()));
    let ds = curate_stdlib::Dataset::new(ws.clone(), ws.scan_manifest().expect("scan")).expect("ds");
    let t = Instant::now();
    let r = curate_stdlib::primitives::export::train_export(&ctx, &ds, "exports/bench", &Default::default()).expect("export");
    let export = t.elapsed().as_secs_f64();
    println!("baseline: Polars CSV write of {rows} rows: {csv:.3} s");
    println!("train_export {} rows (csv, manifest_only, lock.json with every hash): {export:.3} s = {:.1}x baseline", r.get("rows").map(|v| v.to_string()).unwrap_or_default(), export / csv);
}
