//! The onnxruntime backend through the CLI: the library found through the Python package (the
//! test venv's `onnxruntime` wheel), the same cache and predictions as tract whichever runtime
//! filled them, the runtime chosen per command, workspace and model, and a clear error, never a
//! silent fallback, when the library is missing or is not onnxruntime.

use std::collections::HashMap;
use std::path::Path;

use curate_stdlib::testing::{python_with, ONNXRUNTIME_WHEEL};

use crate::util::Test;

/// Each image's unit vector (as stored, f16) and norm, by content hash.
type Stored = HashMap<String, (Vec<f32>, f32)>;

/// The cache folders, and what they store.
fn vectors(t: &Test) -> (Vec<String>, Stored) {
    let root = t.path().join(".curate/embeddings");
    let mut dirs = Vec::new();
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(&root).expect("embeddings dir") {
        let dir = entry.expect("entry").path();
        dirs.push(dir.file_name().expect("name").to_string_lossy().into_owned());
        curate_stdlib::store::compact(&dir, curate_stdlib::store::Layout::EMBEDDINGS).expect("compaction");
        let store = curate_stdlib::store::Store::open(&dir).expect("store opens");
        for (h, row) in store.entries().expect("hash table") {
            out.insert(h, (store.unit_row(row as usize), store.norms()[row as usize]));
        }
    }
    dirs.sort();
    (dirs, out)
}

/// id → p_person from a predictions CSV.
fn person_scores(path: &Path) -> HashMap<String, f64> {
    let text = std::fs::read_to_string(path).expect("predictions");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let id = header.iter().position(|c| *c == "id").expect("id column");
    let p = header.iter().position(|c| *c == "p_person").expect("p_person column");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[id].to_string(), f[p].parse().expect("a probability"))
        })
        .collect()
}

/// The report's text without its wrapping: words joined by single spaces, the frame's bars gone.
fn flat(s: &str) -> String {
    s.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ")
}

/// The spacing of f16 values around `x`: the store keeps normalised vectors as f16, so two
/// runtimes whose f32 outputs agree to 1e-5 may round to neighbouring f16 values.
fn f16_step(x: f32) -> f32 {
    let x = x.abs().max(2f32.powi(-14));
    2f32.powi(x.log2().floor() as i32 - 10)
}

#[test]
fn onnxruntime_fills_the_same_cache_as_tract_and_predicts_the_same() {
    let python = python_with(&[ONNXRUNTIME_WHEEL]);
    let python = python.to_str().expect("utf-8 path");
    let embed = "open().filter(\"split = 'test'\").embed()";

    // A: tract, the default.
    let a = Test::example_without_vectors().write("s.rhai", embed).env("CURATE_PYTHON", python);
    let out = a.run_with(&["run", "s.rhai"]).success();
    assert!(out.stdout.contains("240 embedded") && out.stdout.contains("s, tract)"), "{}", out.stdout);
    // B: onnxruntime for this one command, found through the Python package.
    let b = Test::example_without_vectors().write("s.rhai", embed).env("CURATE_PYTHON", python);
    let out = b.run_with(&["--runtime", "onnxruntime", "run", "s.rhai"]).success();
    assert!(out.stdout.contains("240 embedded") && out.stdout.contains("onnxruntime 1.32.0 (CPUExecutionProvider, batch 32)"), "{}", out.stdout);

    // One cache, keyed by the model file: the same folder, the same images, the same vectors
    // (to the f16 step the store keeps them at).
    let (dirs_a, va) = vectors(&a);
    let (dirs_b, vb) = vectors(&b);
    assert_eq!(dirs_a, dirs_b);
    assert_eq!(va.len(), 240);
    let mut keys_a: Vec<&String> = va.keys().collect();
    let mut keys_b: Vec<&String> = vb.keys().collect();
    keys_a.sort();
    keys_b.sort();
    assert_eq!(keys_a, keys_b);
    let mut off = 0usize;
    for (h, (x, nx)) in &va {
        let (y, ny) = &vb[h];
        assert!((nx - ny).abs() <= 1e-5 * nx, "{h}: norm {nx} vs {ny}");
        assert_eq!(x.len(), y.len());
        for (p, q) in x.iter().zip(y) {
            let d = (p - q).abs();
            assert!(d <= f16_step(p.abs().max(q.abs())) + 1e-7, "{h}: {p} vs {q}");
            off += usize::from(d > 0.0);
        }
    }
    assert!(off < va.len() * 1280 / 100, "{off} of {} stored values differ by one f16 step", va.len() * 1280);
    // Either runtime reads what the other wrote.
    let out = a.run_with(&["--runtime", "onnxruntime", "run", "s.rhai"]).success();
    assert!(!out.stdout.contains("embedded"), "a fully cached embed says nothing: {}", out.stdout);
    let out = a.run_with(&["embed", "--runtime", "onnxruntime", "--json"]).success();
    assert!(out.stdout.contains("\"cached\": 240") && out.stdout.contains("\"embedded\": 1160"), "{}", out.stdout);

    // The workspace says onnxruntime; the model's own `runtime` says tract and wins.
    let toml = std::fs::read_to_string(b.path().join("curate.toml")).expect("curate.toml");
    let toml = toml.replacen("media = \".\"\n", "media = \".\"\nruntime = \"onnxruntime\"\n", 1).replacen("[models.mobilenet]\n", "[models.mobilenet]\nruntime = \"tract\"\n", 1);
    let b = b.write("curate.toml", &toml).write("s.rhai", "open().filter(\"split = 'test' OR class = 'face'\").embed()");
    let out = b.run_with(&["run", "s.rhai"]).success();
    assert!(out.stdout.contains("80 embedded, 240 already cached") && out.stdout.contains("s, tract)"), "{}", out.stdout);

    // Predictions of the VWW detector: the workspace's onnxruntime against tract.
    let out = b.run_with(&["predict", "--model", "vww", "--out", "p.csv"]).success();
    assert!(out.stdout.contains("onnxruntime"), "{}", out.stdout);
    a.run_with(&["predict", "--model", "vww", "--out", "p.csv"]).success();
    let (pa, pb) = (person_scores(&a.path().join("p.csv")), person_scores(&b.path().join("p.csv")));
    assert_eq!(pa.len(), 1400);
    assert_eq!(pa.len(), pb.len());
    for (id, p) in &pa {
        assert!((p - pb[id]).abs() < 1e-4, "{id}: tract {p}, onnxruntime {}", pb[id]);
    }
}

#[test]
fn a_missing_onnxruntime_is_a_clear_error_not_a_fallback() {
    let python = python_with(&[ONNXRUNTIME_WHEEL]);
    let t = Test::example_without_vectors().write("s.rhai", "open().filter(\"split = 'test'\").embed()");
    let run = |t: &Test| t.run_with(&["--runtime", "onnxruntime", "run", "s.rhai"]);

    // ORT_DYLIB_PATH names no file.
    let t = t.env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so");
    let out = run(&t);
    assert_ne!(out.code, 0);
    assert!(
        flat(&out.stderr).contains("ORT_DYLIB_PATH is /nonexistent/libonnxruntime.so, which is not a file") && flat(&out.stderr).contains("help: install it with `pip install onnxruntime`"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("embedded"), "no fallback to tract: {}", out.stdout);

    // No ORT_DYLIB_PATH, and a Python without the package.
    let t = Test::example_without_vectors().write("s.rhai", "open().filter(\"split = 'test'\").embed()");
    let out = run(&t.env("CURATE_PYTHON", "/bin/false"));
    assert_ne!(out.code, 0);
    assert!(flat(&out.stderr).contains("ORT_DYLIB_PATH is not set, and `/bin/false` cannot import the onnxruntime package") && flat(&out.stderr).contains("runtime = \"tract\""), "{}", out.stderr);

    // A shared library that is not onnxruntime (the wheel's provider bridge).
    let capi = curate_stdlib::testing::onnxruntime_library().parent().expect("capi").to_path_buf();
    let bridge = capi.join("libonnxruntime_providers_shared.so");
    assert!(bridge.is_file(), "{}", bridge.display());
    let t = Test::example_without_vectors().write("s.rhai", "open().filter(\"split = 'test'\").embed()").env("CURATE_PYTHON", python.to_str().expect("utf-8"));
    let t = t.env("ORT_DYLIB_PATH", bridge.to_str().expect("utf-8"));
    let out = run(&t);
    assert_ne!(out.code, 0);
    assert!(flat(&out.stderr).contains("does not export `OrtGetApiBase`") && flat(&out.stderr).contains("libonnxruntime_providers_shared.so"), "{}", out.stderr);
    // Nothing was embedded by anyone: no vectors and no parts in the cache.
    let embeddings = t.path().join(".curate/embeddings");
    let files = std::fs::read_dir(&embeddings).map(|d| d.flatten().flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten()).count()).unwrap_or(0);
    assert_eq!(files, 0, "{}", embeddings.display());
}
