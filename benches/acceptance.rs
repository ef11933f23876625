//! The scale acceptance run: a workspace of N samples (1,000,000 by default) with N × 1280
//! vectors, then the real `curate` binary through import-embeddings, similar, duplicates,
//! fit_probe + label_issues, train_export and open/filter, each timed with its peak resident
//! memory (GNU time). Prints one table.
//!
//! Run: cargo bench --bench acceptance -- [N] [STEPS]   (a release build)
//!      STEPS: comma-separated from import,similar,filter,duplicates,probe,export (all by default)
//!      CURATE_ACCEPTANCE_DIR=DIR keeps the workspace there (and reuses it when it exists).
//!
//! Vectors: 10 classes, each a non-negative centre plus noise, with 2% of labels flipped (so
//! label_issues has something real to find) and 1% near-copies of the row before (duplicates).
//! The image files do not exist: steps that need pixels report them as unreadable.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use polars::prelude::*;

const DIM: usize = 1280;
const CLASSES: usize = 10;

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn id(i: usize) -> String {
    format!("s/{i:07}")
}

fn generate(dir: &Path, n: usize) {
    let t = Instant::now();
    let mut rng = SplitMix(7);
    let labels: Vec<String> = (0..n)
        .map(|i| {
            let c = if rng.next() % 50 == 0 { (i + 1 + (rng.next() % 9) as usize) % CLASSES } else { i % CLASSES };
            format!("c{c}")
        })
        .collect();
    let mut df = df!(
        "id" => (0..n).map(id).collect::<Vec<_>>(),
        "path" => (0..n).map(|i| format!("img/{i:07}.jpg")).collect::<Vec<_>>(),
        "label" => labels,
        "split" => (0..n).map(|i| if i % 5 == 0 { "test" } else { "train" }).collect::<Vec<_>>(),
        "hash" => (0..n).map(|i| format!("{:064x}", i as u128 * 0x9E37_79B9_7F4A_7C15 + 1)).collect::<Vec<_>>(),
    )
    .expect("manifest");
    ParquetWriter::new(std::fs::File::create(dir.join("manifest.parquet")).expect("create")).finish(&mut df).expect("write manifest");
    // ids table and .npy of float32 vectors, written row by row.
    let mut ids = std::io::BufWriter::new(std::fs::File::create(dir.join("ids.csv")).expect("ids"));
    writeln!(ids, "id").expect("write");
    for i in 0..n {
        writeln!(ids, "{}", id(i)).expect("write");
    }
    let mut npy = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(dir.join("vectors.npy")).expect("npy"));
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {DIM}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    npy.write_all(b"\x93NUMPY\x01\x00").expect("write");
    npy.write_all(&(header.len() as u16).to_le_bytes()).expect("write");
    npy.write_all(header.as_bytes()).expect("write");
    let centres: Vec<Vec<f32>> = (0..CLASSES).map(|_| (0..DIM).map(|_| (rng.unit() * 2.0 - 0.8).max(0.0)).collect()).collect();
    let mut prev = vec![0f32; DIM];
    let mut row = vec![0f32; DIM];
    for i in 0..n {
        for d in 0..DIM {
            row[d] = if i % 100 == 99 { (prev[d] + 0.02 * (rng.unit() - 0.5)).max(0.0) } else { (centres[i % CLASSES][d] + 1.5 * (rng.unit() - 0.5)).max(0.0) };
        }
        let bytes: Vec<u8> = row.iter().flat_map(|x| x.to_le_bytes()).collect();
        npy.write_all(&bytes).expect("write");
        std::mem::swap(&mut prev, &mut row);
    }
    npy.flush().expect("flush");
    println!("generated {n} samples in {:.1} s", t.elapsed().as_secs_f64());
}

/// Run `curate ARGS` in `dir` under GNU time: (seconds, peak RSS MB, stdout).
fn curate(dir: &Path, args: &[&str]) -> (f64, f64, String) {
    let report = dir.join(".time");
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_curate"))
        .args(args)
        .current_dir(dir)
        .env("CI", "true")
        .output()
        .expect("run curate under /usr/bin/time");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        panic!("curate {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let mut parts = text.split_whitespace();
    let secs: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    let kb: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    (secs, kb / 1024.0, stdout)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let steps: Vec<String> = args.get(1).map_or("import,similar,filter,duplicates,probe,export", String::as_str).split(',').map(str::to_string).collect();
    let keep = std::env::var("CURATE_ACCEPTANCE_DIR").ok().map(PathBuf::from);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = keep.clone().unwrap_or_else(|| tmp.path().join("ws"));
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/people/models/mobilenetv2_imagenet.onnx");
    if !dir.join("manifest.parquet").exists() {
        std::fs::create_dir_all(&dir).expect("mkdir");
        curate(&dir, &["init", "."]);
        let config = std::fs::read_to_string(dir.join("curate.toml")).expect("config");
        let decl = format!("\n[models.mobilenet]\npath = {:?}\ninput = [224, 224]\nembedding = \"embedding\"\n", model.display().to_string());
        std::fs::write(dir.join("curate.toml"), format!("{config}{decl}")).expect("config");
        generate(&dir, n);
    }
    println!("acceptance: {n} samples x {DIM}-d in {}", dir.display());
    let mut rows: Vec<(String, f64, f64, String)> = Vec::new();
    let script = |rows: &mut Vec<(String, f64, f64, String)>, name: &str, body: &str| {
        let file = format!("{name}.rhai");
        std::fs::write(dir.join(&file), body).expect("script");
        let (s, mb, out) = curate(&dir, &["run", &file]);
        rows.push((name.to_string(), s, mb, out.lines().last().unwrap_or_default().to_string()));
    };
    for step in &steps {
        match step.as_str() {
            "import" => {
                let (s, mb, out) = curate(&dir, &["import-embeddings", "vectors.npy", "--ids", "ids.csv"]);
                // Just the first line: how many went in.
                rows.push(("import-embeddings".into(), s, mb, out.lines().next().unwrap_or_default().to_string()));
            }
            "filter" => script(&mut rows, "open_filter_len", "print(open().filter(\"label = 'c3' AND split = 'train'\").len())"),
            "similar" => {
                script(&mut rows, "similar", &format!("let ds = open(); let near = ds.similar(\"{}\", 10); print(`${{near.len()}} neighbours, nearest ${{near.col(\"distance\")[0]}}`)", id(12345 % n)))
            }
            "duplicates" => script(&mut rows, "duplicates", "let d = open().duplicates(); print(`${d.len()} samples in duplicate clusters`)"),
            "probe" => script(&mut rows, "fit_probe_label_issues", "let issues = open().fit_probe(\"label\").label_issues(); print(`${issues.len()} label issues`)"),
            "export" => script(
                &mut rows,
                "train_export",
                "let r = open().filter(\"split = 'train'\").train_export(\"exports/v1\", #{format: \"parquet\", mode: \"manifest_only\"}); print(`${r.samples} samples exported`)",
            ),
            other => panic!("unknown step `{other}`"),
        }
    }
    println!("\n{:<24} {:>9} {:>10}  result", "step", "seconds", "peak MB");
    for (name, s, mb, note) in rows {
        println!("{name:<24} {s:>9.1} {mb:>10.0}  {note}");
    }
}
