//! The vector store: vectors imported from elsewhere, and compaction or an index build killed at
//! every step.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use polars::prelude::*;

use crate::util::Test;

const DIM: usize = 1280;

fn manifest_ids(t: &Test, n: usize) -> Vec<String> {
    let file = std::fs::File::open(t.path().join("manifest.parquet")).expect("manifest");
    let df = ParquetReader::new(file).finish().expect("parquet");
    df.column("id").expect("id").str().expect("str").iter().flatten().take(n).map(str::to_string).collect()
}

/// Vector `i`: mostly axis `i % DIM`, so row i's nearest other row is chosen by `twin`.
fn vector(i: usize, twin: Option<usize>) -> Vec<f32> {
    let mut v = vec![0.01f32; DIM];
    v[i % DIM] = 1.0;
    if let Some(j) = twin {
        v[j % DIM] = 0.9;
    }
    v
}

fn write_parquet(path: &Path, key: &str, keys: &[String], vectors: &[Vec<f32>]) {
    let flat = Series::new("vector".into(), vectors.concat());
    let dim = vectors.first().map_or(0, Vec::len);
    let arr = flat.reshape_array(&[ReshapeDimension::new_dimension(keys.len() as u64), ReshapeDimension::new_dimension(dim as u64)]).expect("reshape");
    let mut df = DataFrame::new(keys.len(), vec![Column::new(key.into(), keys.to_vec()), arr.into_column()]).expect("frame");
    let file = std::fs::File::create(path).expect("create");
    ParquetWriter::new(file).finish(&mut df).expect("write parquet");
}

fn write_npy(path: &Path, rows: &[Vec<f32>]) {
    let dim = rows.first().map_or(0, Vec::len);
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {dim}), }}", rows.len());
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in rows.iter().flatten() {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write npy");
}

fn store_dir(t: &Test) -> std::path::PathBuf {
    let root = t.path().join(".curate/embeddings");
    std::fs::read_dir(&root).expect("embeddings").flatten().map(|e| e.path()).find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("mobilenet-"))).expect("mobilenet store")
}

/// Every stored (hash -> vector) of the committed store, without compacting anything.
fn committed(t: &Test) -> HashMap<String, Vec<f32>> {
    let store = curate_stdlib::store::Store::open(&store_dir(t)).expect("the committed store opens");
    store.entries().expect("table").into_iter().map(|(h, r)| (h, store.raw_row(r as usize))).collect()
}

#[test]
fn import_embeddings_from_parquet_and_npy_feeds_similar() {
    let t = Test::example_without_vectors();
    let ids = manifest_ids(&t, 40);
    // Row 0's nearest neighbour is row 7; the others are far apart.
    let vectors: Vec<Vec<f32>> = (0..20).map(|i| vector(i, (i == 0).then_some(7))).collect();
    write_parquet(&t.path().join("a.parquet"), "id", &ids[..20], &vectors);
    let out = t.run_with(&["import-embeddings", "a.parquet", "--model", "mobilenet", "--json"]).success();
    let r: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!((r["imported"].as_u64(), r["dim"].as_u64()), (Some(20), Some(DIM as u64)), "{r}");

    // The next 20 rows from .npy with an ids table, plus one id the manifest does not know.
    let more: Vec<Vec<f32>> = (20..41).map(|i| vector(i, None)).collect();
    write_npy(&t.path().join("b.npy"), &more);
    let mut id_list = ids[20..40].to_vec();
    id_list.push("no/such/id".to_string());
    std::fs::write(t.path().join("ids.csv"), format!("id\n{}\n", id_list.join("\n"))).expect("ids");
    let out = t.run_with(&["import-embeddings", "b.npy", "--ids", "ids.csv"]).success();
    assert!(out.stdout.contains("imported 20 of 21 vectors"), "{}", out.stdout);
    assert!(out.stdout.contains("1 ids are not in the manifest (skipped), e.g. no/such/id"), "{}", out.stdout);
    assert_eq!(committed(&t).len(), 40);

    let script = format!("let ds = open();\nprint(ds.similar(\"{}\", 1).ids()[0]);\nprint(ds.similar(\"{}\", 3).len());", ids[0], ids[30]);
    let t = t.write("s.rhai", &script);
    let out = t.run_with(&["run", "s.rhai"]).success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], ids[7], "{}", out.stdout);
    assert_eq!(lines[1], "3");

    // Imported vectors replace what the store held for the same image.
    write_parquet(&t.path().join("c.parquet"), "id", &ids[..1], &[vector(3, None)]);
    t.run_with(&["import-embeddings", "c.parquet"]).success();
    let t = t.write("s.rhai", &format!("print(open().similar(\"{}\", 1).ids()[0]);", ids[0]));
    let out = t.run_with(&["run", "s.rhai"]).success();
    assert_eq!(out.stdout.trim(), ids[3]);
}

#[test]
fn bad_vector_files_are_errors_that_name_the_file_and_write_nothing() {
    let t = Test::example_without_vectors();
    let ids = manifest_ids(&t, 2);
    write_parquet(&t.path().join("ok.parquet"), "id", &ids[..1], &[vector(0, None)]);
    write_parquet(&t.path().join("narrow.parquet"), "id", &ids[1..2], &[vec![1.0, 2.0, 3.0]]);
    // Both files are checked before anything is written.
    let out = t.run_with(&["import-embeddings", "ok.parquet", "narrow.parquet"]).code(2);
    assert!(out.stderr.contains("narrow.parquet"), "{}", out.stderr);
    assert!(out.stderr.contains("width 3"), "{}", out.stderr);
    assert!(!t.path().join(".curate/embeddings").exists() || committed(&t).is_empty());

    write_parquet(&t.path().join("nokey.parquet"), "name", &ids[..1], &[vector(0, None)]);
    let out = t.run_with(&["import-embeddings", "nokey.parquet"]).code(2);
    assert!(out.stderr.contains("nokey.parquet") && out.stderr.contains("no `id` or `hash` column"), "{}", out.stderr);

    std::fs::write(t.path().join("v.npy"), b"not an array").expect("write");
    let out = t.run_with(&["import-embeddings", "v.npy"]).code(2);
    assert!(out.stderr.contains("needs --ids"), "{}", out.stderr);
    std::fs::write(t.path().join("ids.txt"), "x\n").expect("write");
    let out = t.run_with(&["import-embeddings", "v.npy", "--ids", "ids.txt"]).code(2);
    assert!(out.stderr.contains("v.npy") && out.stderr.contains("not a .npy file"), "{}", out.stderr);

    // A .npy file is streamed a part (50,000 rows) at a time: a bad value in its last row,
    // after a whole part has been staged, still leaves the store as it was, and no staging
    // folder behind.
    let rows = 50_001;
    let mut data: Vec<Vec<f32>> = (0..rows).map(|i| vec![1.0, (i % 7) as f32, 0.5, 2.0]).collect();
    data[rows - 1][2] = f32::NAN;
    write_npy(&t.path().join("late.npy"), &data);
    let mut ids_csv = String::from("id\n");
    for i in 0..rows {
        ids_csv.push_str(&if i < 2 { ids[i].clone() } else { format!("elsewhere/{i}") });
        ids_csv.push('\n');
    }
    std::fs::write(t.path().join("late-ids.csv"), ids_csv).expect("write");
    let out = t.run_with(&["import-embeddings", "late.npy", "--ids", "late-ids.csv"]).code(2);
    assert!(out.stderr.contains("late.npy") && out.stderr.contains("row 50000") && out.stderr.contains("not finite"), "{}", out.stderr);
    assert!(committed(&t).is_empty());
    let leftovers: Vec<String> = walk_names(&t.path().join(".curate/embeddings"));
    assert!(leftovers.iter().all(|n| !n.starts_with("import-") && !n.starts_with("part-")), "{leftovers:?}");
}

/// Every file and folder name under `dir`.
fn walk_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.file_name().to_string_lossy().to_string());
            if e.path().is_dir() {
                out.extend(walk_names(&e.path()));
            }
        }
    }
    out
}

fn run_killed_at(t: &Test, failpoint: &str, args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_curate"))
        .args(args)
        .current_dir(t.path())
        .env("CI", "true")
        .env("CURATE_FAILPOINT", failpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    assert!(!status.success(), "{failpoint}: the process was not killed");
}

/// A compaction killed after each of its steps leaves the previous store readable and
/// unchanged; the next use finishes the work, and the result equals an uninterrupted run's.
#[test]
fn a_killed_compaction_keeps_the_previous_store() {
    let reference = Test::example_without_vectors();
    let ids = manifest_ids(&reference, 60);
    let first: Vec<Vec<f32>> = (0..30).map(|i| vector(i, None)).collect();
    let second: Vec<Vec<f32>> = (30..60).map(|i| vector(i, (i == 30).then_some(5))).collect();
    write_parquet(&reference.path().join("a.parquet"), "id", &ids[..30], &first);
    write_parquet(&reference.path().join("b.parquet"), "id", &ids[30..], &second);
    reference.run_with(&["import-embeddings", "a.parquet"]).success();
    reference.run_with(&["import-embeddings", "b.parquet"]).success();
    let want = committed(&reference);
    assert_eq!(want.len(), 60);

    for failpoint in ["compact:appended", "compact:table", "compact:committed"] {
        let t = Test::example_without_vectors();
        std::fs::copy(reference.path().join("a.parquet"), t.path().join("a.parquet")).expect("copy");
        std::fs::copy(reference.path().join("b.parquet"), t.path().join("b.parquet")).expect("copy");
        t.run_with(&["import-embeddings", "a.parquet"]).success();
        let before = committed(&t);
        run_killed_at(&t, failpoint, &["import-embeddings", "b.parquet"]);
        let after_kill = committed(&t);
        if failpoint == "compact:committed" {
            assert_eq!(after_kill, want, "{failpoint}: the commit happened");
        } else {
            assert_eq!(after_kill, before, "{failpoint}: the previous store is intact");
        }
        // The next use compacts what is left, exactly once.
        let t = t.write("s.rhai", &format!("print(open().similar(\"{}\", 1).ids()[0]);", ids[30]));
        let out = t.run_with(&["run", "s.rhai"]).success();
        assert_eq!(out.stdout.trim(), ids[5], "{failpoint}");
        assert_eq!(committed(&t), want, "{failpoint}: the recovered store equals an uninterrupted run's");
        let store = curate_stdlib::store::Store::open(&store_dir(&t)).expect("open");
        assert_eq!(store.rows(), 60, "{failpoint}: no row was merged twice");
        assert!(curate_stdlib::store::part_files(&store_dir(&t)).expect("parts").is_empty(), "{failpoint}: parts are gone");
    }
}

/// An index build killed while writing leaves no index (or the previous one); `similar` still
/// answers, exactly, and the next build succeeds and gives the same neighbours.
#[test]
fn a_killed_index_build_leaves_search_working() {
    let t = Test::example_without_vectors();
    let ids = manifest_ids(&t, 50);
    let vectors: Vec<Vec<f32>> = (0..50).map(|i| vector(i, (i == 0).then_some(9))).collect();
    write_parquet(&t.path().join("a.parquet"), "id", &ids, &vectors);
    t.run_with(&["import-embeddings", "a.parquet"]).success();
    run_killed_at(&t, "index:writing", &["index"]);
    assert!(!store_dir(&t).join("index-cosine.json").exists(), "no index committed");
    let script = format!("print(open().similar(\"{}\", 1).ids()[0]);", ids[0]);
    let t = t.write("s.rhai", &script);
    let out = t.run_with(&["run", "s.rhai"]).success();
    assert_eq!(out.stdout.trim(), ids[9]);
    let out = t.run_with(&["index"]).success();
    assert!(out.stdout.contains("index of 50 `mobilenet` vectors ready"), "{}", out.stdout);
    assert!(store_dir(&t).join("index-cosine.json").exists());
    let out = t.run_with(&["run", "s.rhai"]).success();
    assert_eq!(out.stdout.trim(), ids[9], "the index finds the same neighbour");
}

/// usearch and the inverted lists: built, then grown by the rows of a later import without a
/// rebuild; a killed update leaves the previous index committed.
#[test]
fn a_growable_index_grows_with_the_store() {
    for backend in ["usearch", "ivf"] {
        let t = Test::example_without_vectors();
        let ids = manifest_ids(&t, 60);
        let first: Vec<Vec<f32>> = (0..50).map(|i| vector(i, None)).collect();
        write_parquet(&t.path().join("a.parquet"), "id", &ids[..50], &first);
        t.run_with(&["import-embeddings", "a.parquet"]).success();
        let out = t.run_with(&["index", "--backend", backend]).success();
        assert!(out.stdout.contains(&format!("index of 50 `mobilenet` vectors ready ({backend}, built)")), "{}", out.stdout);
        let out = t.run_with(&["index"]).success();
        assert!(out.stdout.contains(&format!("({backend}, fresh)")), "{}", out.stdout);

        // Ten more images; the last is near the first.
        let more: Vec<Vec<f32>> = (50..60).map(|i| vector(i, (i == 59).then_some(2))).collect();
        write_parquet(&t.path().join("b.parquet"), "id", &ids[50..], &more);
        t.run_with(&["import-embeddings", "b.parquet"]).success();
        run_killed_at(&t, "index:writing", &["index", "--backend", backend]);
        let sidecar: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(store_dir(&t).join("index-cosine.json")).expect("sidecar")).expect("json");
        assert_eq!(sidecar["live"], 50, "{backend}: the previous index stays committed: {sidecar}");
        let out = t.run_with(&["index", "--backend", backend]).success();
        assert!(out.stdout.contains(&format!("index of 60 `mobilenet` vectors ready ({backend}, updated)")), "{}", out.stdout);
        let t = t.write("s.rhai", &format!("print(open().similar(\"{}\", 1).ids()[0]);", ids[59]));
        let out = t.run_with(&["run", "s.rhai"]).success();
        assert_eq!(out.stdout.trim(), ids[2], "{backend}");
        let files: Vec<String> = std::fs::read_dir(store_dir(&t)).expect("ls").flatten().map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.ends_with(&format!(".{backend}"))).collect();
        assert_eq!(files.len(), 1, "{backend}: the previous generation is removed: {files:?}");
        // Asking for the other backend builds it anew.
        let other = if backend == "ivf" { "usearch" } else { "ivf" };
        let out = t.run_with(&["index", "--backend", other]).success();
        assert!(out.stdout.contains(&format!("index of 60 `mobilenet` vectors ready ({other}, built)")), "{}", out.stdout);
        if other == "ivf" {
            // Without --backend, a store that grew is indexed by the size's choice (usearch
            // below 200,000 vectors), not grown as the other kind.
            let more: Vec<Vec<f32>> = (0..1).map(|i| vector(60 + i, None)).collect();
            write_parquet(&t.path().join("c.parquet"), "id", &ids[..1], &more);
            t.run_with(&["import-embeddings", "c.parquet"]).success();
            let out = t.run_with(&["index"]).success();
            assert!(out.stdout.contains("index of 60 `mobilenet` vectors ready (usearch, built)"), "{}", out.stdout);
        }
    }
}

#[test]
fn import_embeddings_in_shards_merges_into_one_import() {
    let t = Test::example_without_vectors();
    let ids = manifest_ids(&t, 40);
    let vectors: Vec<Vec<f32>> = (0..40).map(|i| vector(i, None)).collect();
    write_parquet(&t.path().join("a.parquet"), "id", &ids, &vectors);
    let whole = Test::example_without_vectors();
    std::fs::copy(t.path().join("a.parquet"), whole.path().join("a.parquet")).expect("copy");
    whole.run_with(&["import-embeddings", "a.parquet"]).success();
    let mut imported = Vec::new();
    for i in 0..2 {
        let out = t.run_with(&["import-embeddings", "a.parquet", "--shard", &format!("{i}/2"), "--json"]).success();
        let r: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        imported.push(r["imported"].as_u64().expect("imported"));
    }
    assert!(imported.iter().all(|&n| n > 0) && imported.iter().sum::<u64>() == 40, "{imported:?}");
    // The shards left parts; the next use merges them into what one import stores.
    curate_stdlib::store::compact(&store_dir(&t), curate_stdlib::store::Layout::EMBEDDINGS).expect("merge");
    assert_eq!(committed(&t), committed(&whole));
    t.run_with(&["import-embeddings", "a.parquet", "--shard", "2/2"]).code(2);
}
