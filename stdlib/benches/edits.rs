//! Replaying the edit log: 1M edits over a 1M-row manifest, and exporting 1M rows. The baselines,
//! in the same run, are reading the manifest without edits (scan + collect) and writing the same
//! rows with Polars' CSV writer, so the figures read "costs N plain reads / writes".
//!
//! Run: cargo bench --profile dev -p curate-stdlib --bench edits -- [ROWS] [EDITS]
//! (defaults 1000000 1000000; NOEXPORT=1 skips the export arm). A plain main: each arm runs
//! once or twice and takes seconds.

use std::time::Instant;

use curate_stdlib::edits::{self, Edit};
use polars::prelude::*;

fn main() {
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

    let t = Instant::now();
    let base = LazyFrame::scan_parquet(PlRefPath::try_from_path(&manifest).expect("path"), Default::default()).expect("scan").collect().expect("collect");
    let baseline = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let parsed = edits::read(&log).expect("read");
    let read = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let lf = LazyFrame::scan_parquet(PlRefPath::try_from_path(&manifest).expect("path"), Default::default()).expect("scan");
    let view = edits::replay(lf, &parsed.edits).expect("replay").collect().expect("collect");
    let replay = t.elapsed().as_secs_f64();
    println!("baseline: scan + collect {} rows: {baseline:.3} s", base.height());
    println!("append {n_edits} edits (one locked, fsynced batch): {append:.3} s");
    println!("read + parse the log: {read:.3} s = {:.1}x baseline", read / baseline);
    println!("replay + collect: {replay:.3} s = {:.1}x baseline ({} rows, {} columns after replay)", replay / baseline, view.height(), view.width());
    println!("open() with 1M edits = read + replay: {:.3} s = {:.1}x baseline", read + replay, (read + replay) / baseline);
    if std::env::var_os("NOEXPORT").is_some() {
        return;
    }

    // Export: a workspace with the same rows and no edits.
    let wsdir = dir.path().join("ws");
    let ws = std::sync::Arc::new(curate_stdlib::Workspace::init(&wsdir, Some("bench")).expect("init"));
    let hashes: Vec<String> = (0..rows).map(|i| format!("{:064x}", i)).collect();
    let mut mdf = df!("id" => &ids, "path" => &ids, "label" => base.column("label").expect("label").clone().take_materialized_series(), "split" => base.column("split").expect("split").clone().take_materialized_series(), "hash" => hashes).expect("df");
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
