//! `similar` on the user's path at scale: the `curate` binary running a script over a workspace
//! of N samples (default 1M) with N × DIM (default 1280) stored vectors and the index that
//! `curate index` builds (inverted lists at this size), beside the index alone in this process.
//!
//! Run: cargo bench --bench similar -- [N] [DIM] [dir=PATH]   (a release build)
//! The workspace is made once under `dir` (default ~/.cache/curate-bench/similar-NxDIM; about
//! 2.6 GB at 1M × 1280 and a few minutes) and reused by later runs.
//!
//! Measured, each the best of 3 fresh processes unless said:
//! - the index alone: 100 searches (k = 10 + the query) from this process, one thread;
//! - start-up: `curate run` of a script that opens the workspace and counts it;
//! - one query in a fresh process: `open().similar(ID, 10).ids()`, start-up included;
//! - a loop: one script with 1 query and one with 101 (different ids); the difference over 100
//!   is the time of a query after the first.
//! `CURATE_BIN=PATH` runs another build of curate (an older commit's, for a baseline) for the
//! script steps.
//! Vectors: `curate_kernels::synth::Manifold` (the relative contrast of real MobileNetV2
//! features); ids `s0000000`…; a 64-hex content hash per row.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use curate_stdlib::embed::Kind;
use curate_stdlib::index::{AnnIndex, Metric};
use curate_stdlib::store::{self, Layout, Store};
use polars::prelude::*;
use rayon::prelude::*;

fn hash_of(i: usize) -> String {
    format!("{:064x}", (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
}

fn setup(dir: &Path, n: usize, dim: usize) {
    if dir.join("ready").is_file() {
        return;
    }
    let t = Instant::now();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("models")).expect("workspace folder");
    std::fs::create_dir_all(dir.join("scripts")).expect("scripts folder");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(repo.join("examples/people/models/mobilenetv2_imagenet.onnx"), dir.join("models/m.onnx")).expect("copy the example's model");
    std::fs::write(
        dir.join("curate.toml"),
        "name = \"similar-bench\"\nmanifest = \"manifest.parquet\"\nmedia = \".\"\n\n[models.m]\npath = \"models/m.onnx\"\ninput = [224, 224]\nlayout = \"nchw\"\nembedding = \"embedding\"\n",
    )
    .expect("curate.toml");
    let labels = ["person", "no_person", "person", "no_person", "no_person"];
    let splits = ["train", "train", "train", "val", "test"];
    let mut df = df!(
        "id" => (0..n).map(|i| format!("s{i:07}")).collect::<Vec<_>>(),
        "path" => (0..n).map(|i| format!("media/{:04}/{i:07}.jpg", i % 1000)).collect::<Vec<_>>(),
        "label" => (0..n).map(|i| labels[(i * 7) % 5]).collect::<Vec<_>>(),
        "split" => (0..n).map(|i| splits[(i * 13) % 5]).collect::<Vec<_>>(),
        "width" => (0..n).map(|i| 32 + ((i * 31) % 640) as u32).collect::<Vec<_>>(),
        "height" => (0..n).map(|i| 32 + ((i * 17) % 480) as u32).collect::<Vec<_>>(),
        "hash" => (0..n).map(hash_of).collect::<Vec<_>>(),
    )
    .expect("manifest");
    curate_stdlib::manifest::write(&dir.join("manifest.parquet"), &mut df).expect("write manifest");
    let ws = curate_stdlib::Workspace::open(dir).expect("open the bench workspace");
    let spec = curate_stdlib::model::ModelSpec::parse("m", ws.config.models.get("m").expect("model m")).expect("model spec");
    let model = curate_stdlib::model::Model::load(ws.root(), "m", &spec).expect("model");
    let store_dir = curate_stdlib::embed::cache_dir_of(&ws, &model, Kind::Embedding);
    std::fs::create_dir_all(&store_dir).expect("store folder");
    let gen = curate_kernels::synth::Manifold::new(dim, &mut curate_kernels::SplitMix(42));
    const PART: usize = 50_000;
    for start in (0..n).step_by(PART) {
        let end = (start + PART).min(n);
        let rows: Vec<Vec<f32>> = (start..end).into_par_iter().map(|i| gen.point(&mut curate_kernels::SplitMix(0x5EED ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))).collect();
        store::write_part(&store_dir, (start..end).map(hash_of).collect(), rows.concat(), dim).expect("write a part");
    }
    store::compact(&store_dir, Layout::EMBEDDINGS).expect("compact");
    println!("  made {n} samples and vectors in {:.0} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_curate")).arg("-C").arg(dir).arg("index").output().expect("run curate index");
    assert!(out.status.success(), "curate index failed: {}", String::from_utf8_lossy(&out.stderr));
    println!("  curate index: {:.0} s ({})", t.elapsed().as_secs_f64(), String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default());
    std::fs::write(dir.join("ready"), b"").expect("mark ready");
}

fn curate_bin() -> PathBuf {
    std::env::var_os("CURATE_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_curate")))
}

/// Wall seconds of `curate run` on `script`, best of `reps`, and its stdout.
fn run(dir: &Path, name: &str, script: &str, reps: usize) -> (f64, String) {
    let path = dir.join("scripts").join(name);
    std::fs::write(&path, script).expect("script");
    let mut best = f64::INFINITY;
    let mut stdout = String::new();
    for _ in 0..reps {
        let t = Instant::now();
        let out = Command::new(curate_bin()).arg("-C").arg(dir).arg("run").arg(&path).output().expect("run curate");
        let secs = t.elapsed().as_secs_f64();
        assert!(out.status.success(), "curate run {name} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        best = best.min(secs);
        stdout = String::from_utf8_lossy(&out.stdout).to_string();
    }
    (best, stdout)
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let nums: Vec<usize> = all.iter().filter_map(|a| a.parse().ok()).collect();
    let n = nums.first().copied().unwrap_or(1_000_000);
    let dim = nums.get(1).copied().unwrap_or(1280);
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = all.iter().find_map(|a| a.strip_prefix("dir=")).map(PathBuf::from).unwrap_or_else(|| home.join(format!(".cache/curate-bench/similar-{n}x{dim}")));
    println!("similar: {n} samples x {dim}-d in {}, scripts run by {}", dir.display(), curate_bin().display());
    setup(&dir, n, dim);

    // Query ids spread over the view, each a different sample.
    let ids: Vec<String> = (0..101).map(|q| format!("s{:07}", (q * 9_901 + 17) % n)).collect();

    // The index alone, in this process, one thread.
    let ws = curate_stdlib::Workspace::open(&dir).expect("open");
    let store_dir = std::fs::read_dir(ws.cache_dir().join("embeddings")).expect("embeddings").flatten().next().expect("a store").path();
    let s = Store::open(&store_dir).expect("store");
    let idx = AnnIndex::load_fresh(&AnnIndex::path(s.dir(), Metric::Cosine), &s, Metric::Cosine).expect("a fresh index (curate index)");
    let rows = s.rows_of(&Column::new("hash".into(), ids.iter().map(|id| hash_of(id[1..].parse().expect("id"))).collect::<Vec<_>>())).expect("rows");
    let queries: Vec<Vec<f32>> = rows.iter().map(|r| s.raw_row(r.expect("stored") as usize)).collect();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let t = Instant::now();
    let found: usize = one.install(|| queries[1..].iter().map(|q| idx.search(q, 11, 11).len()).sum());
    let index_alone = t.elapsed().as_secs_f64() / 100.0;
    assert!(found >= 1000);
    drop((idx, s));

    let (startup, out) = run(&dir, "open.rhai", "open().len()\n", 3);
    assert_eq!(out.trim(), n.to_string());
    let (single, out) = run(&dir, "one.rhai", &format!("open().similar(\"{}\", 10).ids().len()\n", ids[0]), 3);
    assert_eq!(out.trim(), "10");
    let list = |ids: &[String]| ids.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ");
    let looped = |ids: &[String]| format!("let ds = open();\nlet n = 0;\nfor q in [{}] {{\n    n += ds.similar(q, 10).ids().len();\n}}\nn\n", list(ids));
    let (t1, out) = run(&dir, "loop1.rhai", &looped(&ids[..1]), 2);
    assert_eq!(out.trim(), "10");
    let (t101, out) = run(&dir, "loop101.rhai", &looped(&ids), 2);
    assert_eq!(out.trim(), "1010");
    let per_query = (t101 - t1) / 100.0;

    println!("| step | time | baseline |");
    println!("|---|---|---|");
    println!("| the index alone, one search (k = 11), one thread | {:.2} ms | |", index_alone * 1e3);
    println!("| `curate run`: open().len() (start-up) | {startup:.3} s | |");
    println!("| `curate run`: one `similar` query, fresh process | {single:.3} s | start-up {startup:.3} s |");
    println!("| a script of 1 query / of 101 queries | {t1:.3} s / {t101:.3} s | |");
    println!("| one query after the first, in a script | {:.2} ms = {:.0} queries/s | index alone {:.2} ms |", per_query * 1e3, 1.0 / per_query, index_alone * 1e3);
}
