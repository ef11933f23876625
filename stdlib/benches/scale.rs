//! The scale table: every step of a curation session at 10k, 100k and 1M rows (30M for the
//! manifest steps), each beside a baseline measured in the same run, with the growth of peak
//! resident memory during the step and the growth exponent from one size to the next.
//!
//! Run: cargo bench -p curate-stdlib --bench scale -- [SIZES] [DIM] [fast] [manifest=SIZES]
//!      [steps=LIST] [backend=LIST]   (a release build)
//!      SIZES: vector sizes, default 10000,100000,1000000; DIM default 1280;
//!      manifest=SIZES: manifest sizes, default 10000,100000,1000000,30000000 (`manifest=` skips);
//!      steps: from store,knn,within,index,probe,manifest (all by default); `fast` drops
//!      within, index and probe (minutes at 1M); backend: usearch,ivf,hnsw for the index step
//!      (default: the one `curate index` picks for the size).
//! A plain main rather than criterion: the large sizes take minutes, so each is measured once
//! (sizes up to 100k take the best of three).
//!
//! Vectors: clustered synthetic post-ReLU-like vectors (non-negative, like pooled CNN
//! features), with 1% near-copies (a row plus small noise), written through the real store.
//! Labels for the probe: 10 classes, each the union of 20 clusters.
//! Manifest: id, path, label, split, width, height and a 64-hex content hash per row; up to 1M
//! mixed edits (relabels, tags, weights, removals) for the replay steps.

use std::sync::Arc;
use std::time::Instant;

use curate_kernels::knn::{self, IvfParams, Matrix, Scoring};
use curate_kernels::probe::{self, Design, Scale};
use curate_stdlib::edits::{self, Edit};
use curate_stdlib::index::{AnnIndex, Backend, Metric};
use curate_stdlib::primitives::Context;
use curate_stdlib::store::{self, Layout, Store};
use curate_stdlib::Workspace;
use polars::prelude::*;

/// Peak resident memory since the last reset, in MB (Linux).
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()).map_or(f64::NAN, |kb| kb / 1024.0)
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()).map_or(f64::NAN, |kb| kb / 1024.0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("ran once"))
}

/// Run `f` (best of `reps`): seconds, the growth of peak resident memory over the resident
/// memory before the step (MB), and the result.
fn measure<T>(reps: usize, f: impl FnMut() -> T) -> (f64, f64, T) {
    let before = rss_mb();
    reset_peak();
    let (secs, out) = time(reps, f);
    (secs, (peak_mb() - before).max(0.0), out)
}

/// Rows and each row's cluster.
fn vectors(n: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let clusters = 200;
    let mut rng = curate_kernels::SplitMix(seed);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| (0..dim).map(|_| rng.gauss().max(0.0)).collect()).collect();
    let mut data = Vec::with_capacity(n * dim);
    let mut cluster = Vec::with_capacity(n);
    for i in 0..n {
        if i % 100 == 99 {
            // A near-copy of the row before (a re-encoded image).
            let prev: Vec<f32> = data[(i - 1) * dim..i * dim].to_vec();
            data.extend(prev.iter().map(|x| (x + 0.05 * rng.gauss()).max(0.0)));
            cluster.push(cluster[i - 1]);
        } else {
            let c = (rng.next_u64() % clusters as u64) as usize;
            data.extend(centres[c].iter().map(|x| (x + 1.2 * rng.gauss()).max(0.0)));
            cluster.push(c);
        }
    }
    (data, cluster)
}

struct Row {
    step: &'static str,
    n: usize,
    seconds: f64,
    baseline: &'static str,
    base_seconds: f64,
    peak_mb: f64,
    note: String,
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let (named, args): (Vec<String>, Vec<String>) = all.into_iter().partition(|a| a.contains('='));
    let named = |key: &str| named.iter().find_map(|a| a.strip_prefix(&format!("{key}=")).map(str::to_string));
    let sizes_of = |s: &str| -> Vec<usize> { s.split(',').filter_map(|x| x.parse().ok()).collect() };
    let sizes: Vec<usize> = args.first().map(|s| sizes_of(s)).unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let dim: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1280);
    let fast = args.get(2).is_some_and(|s| s == "fast");
    let manifest_sizes = named("manifest").map_or_else(|| vec![10_000, 100_000, 1_000_000, 30_000_000], |s| sizes_of(&s));
    let steps: Vec<String> = named("steps").unwrap_or_else(|| "store,knn,within,index,probe,manifest".into()).split(',').map(str::to_string).collect();
    let step = |name: &str| steps.iter().any(|s| s == name) && !(fast && matches!(name, "within" | "index" | "probe"));
    let threads = rayon::current_num_threads();
    println!("scale: {dim}-d vectors, sizes {sizes:?}, manifest sizes {manifest_sizes:?}, {threads} threads");
    let mut rows: Vec<Row> = Vec::new();
    if step("manifest") {
        for &n in &manifest_sizes {
            manifest_steps(n, &mut rows);
        }
    }
    let vector_steps = ["store", "knn", "within", "index", "probe"].iter().any(|s| step(s));
    for &n in sizes.iter().filter(|_| vector_steps) {
        let reps = if n <= 100_000 { 3 } else { 1 };
        let tmp = tempfile::tempdir().expect("tempdir");
        let (data, cluster) = vectors(n, dim, 42);
        let hashes: Vec<String> = (0..n).map(|i| format!("{i:064x}")).collect();
        let unit: Vec<f32> = data
            .chunks_exact(dim)
            .flat_map(|v| {
                let nrm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
                v.iter().map(move |x| x / nrm)
            })
            .collect();
        let t = Instant::now();
        drop(store::write(tmp.path(), hashes, data, dim, Layout::EMBEDDINGS).expect("store"));
        let write = t.elapsed().as_secs_f64();
        // The baseline for opening: reading the same number of f32 values from a raw file.
        let raw = tmp.path().join("raw.f32");
        std::fs::write(&raw, bytemuck::cast_slice::<f32, u8>(&unit)).expect("raw");
        let (open, grew, s) = measure(reps, || Store::open(tmp.path()).expect("open"));
        let (read_raw, _) = time(1, || std::fs::read(&raw).expect("read").len());
        if step("store") {
            rows.push(Row { step: "vector store open", n, seconds: open, baseline: "read raw f32 file", base_seconds: read_raw, peak_mb: grew, note: format!("written in {write:.1} s") });
        }
        let _ = std::fs::remove_file(&raw);

        // One query: the store (f16, mapped) against a dot-product scan of in-memory f32 rows.
        let q: Vec<f32> = unit[..dim].to_vec();
        let all: Vec<u32> = (0..n as u32).collect();
        // The first query after opening pays the page faults of the mapping; later ones do not.
        let (first, first_mb, _) = measure(1, || knn::top_k(&q, dim, s.matrix(), Some(&all), 10, Scoring::Dot));
        let (one, _, hits) = measure(3, || knn::top_k(&q, dim, s.matrix(), Some(&all), 10, Scoring::Dot));
        let (scan, _) = time(reps, || {
            let mut best = (0usize, f32::NEG_INFINITY);
            for (i, r) in unit.chunks_exact(dim).enumerate() {
                let d = knn::dot(&q, r);
                if d > best.1 {
                    best = (i, d);
                }
            }
            best
        });
        if step("knn") {
            let f32_hits = knn::top_k(&q, dim, Matrix::F32(&unit), None, 10, Scoring::Dot);
            let agree = hits[0].iter().filter(|h| f32_hits[0].iter().any(|x| x.0 == h.0)).count();
            rows.push(Row {
                step: "exact kNN, 1 query",
                n,
                seconds: one,
                baseline: "f32 dot scan, 1 thread",
                base_seconds: scan,
                peak_mb: first_mb,
                note: format!("best of 3 after a first query of {first:.3} s; f16 top-10 = f32 top-10: {agree}/10"),
            });

            // A batch of queries at GEMM speed, against one sgemm of the same shape in memory.
            let m = 1000.min(n);
            let queries: Vec<f32> = unit[..m * dim].to_vec();
            let (batch, batch_mb, _) = measure(1, || knn::top_k(&queries, dim, s.matrix(), Some(&all), 10, Scoring::Dot));
            let flops = 2.0 * m as f64 * n as f64 * dim as f64;
            let sub = n.min(100_000);
            let (gemm, _) = time(1, || {
                let mut c = vec![0f32; m * sub];
                // SAFETY: shapes as allocated.
                unsafe { matrixmultiply::sgemm(m, dim, sub, 1.0, queries.as_ptr(), dim as isize, 1, unit.as_ptr(), 1, dim as isize, 0.0, c.as_mut_ptr(), sub as isize, 1) };
                c[0]
            });
            let gemm_scaled = gemm * n as f64 / sub as f64;
            rows.push(Row {
                step: "exact kNN, 1000 queries",
                n,
                seconds: batch,
                baseline: "one sgemm (1 thread)",
                base_seconds: gemm_scaled,
                peak_mb: batch_mb,
                note: format!("{:.1} GFLOP/s; sgemm alone {:.1} GFLOP/s on 1 thread", flops / batch / 1e9, 2.0 * m as f64 * sub as f64 * dim as f64 / gemm / 1e9),
            });
        }

        if step("within") {
            within_steps(&s, &unit, dim, &all, &mut rows);
        }
        if step("index") {
            let backends: Vec<Backend> = named("backend").map_or_else(|| vec![Backend::for_size(n)], |b| b.split(',').filter_map(Backend::parse).collect());
            for backend in backends {
                index_steps(&s, &unit, dim, &all, backend, &mut rows);
            }
        }
        if step("probe") {
            // 10 classes, each 20 of the 200 clusters: 5-fold out-of-fold probabilities (what
            // fit_probe runs), then scoring every row; a corpus scan is the unit.
            let y: Vec<usize> = cluster.iter().map(|c| c % 10).collect();
            let design = Design { matrix: s.matrix(), dim, rows: None, scale: Scale::Unit };
            let (train, train_mb, cv) = measure(1, || probe::cross_validate(&design, &y, 10, curate_stdlib::probe::ALPHAS, 5, 0x5eed).expect("cv"));
            let sample = cv.sample.map_or("every row".to_string(), |s| format!("a {s}-row sample"));
            rows.push(Row {
                step: "probe: 5-fold CV, 10 classes",
                n,
                seconds: train,
                baseline: "one exact kNN query (a scan)",
                base_seconds: one,
                peak_mb: train_mb,
                note: format!("alpha {} chosen on {sample}; out-of-fold accuracy {:.3}", cv.alpha, cv.accuracy),
            });
            let model = probe::fit(&Design { rows: Some(&all[..n.min(probe::CV_SAMPLE)]), ..design }, &y[..n.min(probe::CV_SAMPLE)], 10, cv.alpha).expect("fit");
            let (score, score_mb, p) = measure(reps, || probe::predict(&model, &design));
            let right = p.chunks(10).zip(&y).filter(|(row, &c)| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, _)| k) == Some(c)).count();
            rows.push(Row {
                step: "probe: score all rows",
                n,
                seconds: score,
                baseline: "one exact kNN query (a scan)",
                base_seconds: one,
                peak_mb: score_mb,
                note: format!("accuracy {:.3} (fit on the first {} rows)", right as f64 / n as f64, n.min(probe::CV_SAMPLE)),
            });
        }
    }
    println!("\n{:<30} {:>9} {:>10} {:>10} {:>8} {:>9} {:>8}  {:<32} note", "step", "rows", "seconds", "baseline", "ratio", "+peak MB", "growth", "baseline is");
    for (i, r) in rows.iter().enumerate() {
        let growth = rows[..i].iter().rev().find(|p| p.step == r.step).map(|p| (r.seconds / p.seconds).ln() / (r.n as f64 / p.n as f64).ln()).map_or("".to_string(), |g| format!("n^{g:.2}"));
        println!("{:<30} {:>9} {:>10.4} {:>10.4} {:>7.2}x {:>9.0} {:>8}  {:<32} {}", r.step, r.n, r.seconds, r.base_seconds, r.seconds / r.base_seconds, r.peak_mb, growth, r.baseline, r.note);
    }
}

/// kNN of every row among all rows (what duplicates and outliers need): IVF beyond 20k.
fn within_steps(s: &Store, unit: &[f32], dim: usize, all: &[u32], rows: &mut Vec<Row>) {
    let n = all.len();
    let (within, within_mb, near) = measure(1, || knn::knn_self(s.matrix(), dim, all, 10, Scoring::Dot, &IvfParams::default()));
    // Baseline and recall: exact search for a sample of 1000 rows, scaled to all rows.
    // Every other probe is a near-copy (row 99 of each hundred), so near pairs are counted.
    let step = (n / 1000).max(100);
    let probe: Vec<u32> = (0..n / step).map(|i| (i * step + (i % 2) * 99).min(n - 1) as u32).collect();
    let pq: Vec<f32> = probe.iter().flat_map(|&r| unit[r as usize * dim..(r as usize + 1) * dim].iter().copied()).collect();
    let (exact_sample, exact) = time(1, || knn::top_k(&pq, dim, s.matrix(), Some(all), 11, Scoring::Dot));
    let (mut found, mut total, mut dup_found, mut dup_total) = (0, 0, 0, 0);
    for (p, e) in probe.iter().zip(&exact) {
        let got = &near[*p as usize];
        for h in e.iter().filter(|h| h.0 != *p).take(10) {
            total += 1;
            found += usize::from(got.iter().any(|x| x.0 == h.0));
            if h.1 >= 0.9 {
                dup_total += 1;
                dup_found += usize::from(got.iter().any(|x| x.0 == h.0));
            }
        }
    }
    rows.push(Row {
        step: "kNN within all (duplicates)",
        n,
        seconds: within,
        baseline: "exact, all rows (extrapolated)",
        base_seconds: exact_sample * n as f64 / probe.len() as f64,
        peak_mb: within_mb,
        note: format!("{}; recall@10 {:.4}, pairs with cos >= 0.9: {dup_found}/{dup_total}", if n > knn::EXACT_SELF_LIMIT { "IVF" } else { "exact" }, found as f64 / total.max(1) as f64),
    });
}

/// The persisted ANN index (usearch, f16): build, then 1000 queries one at a time, recall@10
/// against the exact top 10 of the same queries.
fn index_steps(s: &Store, unit: &[f32], dim: usize, all: &[u32], backend: Backend, rows: &mut Vec<Row>) {
    let n = all.len();
    let m = 1000.min(n);
    // Queries: stored rows perturbed, so each is near its row but is not a copy of it.
    let mut rng = curate_kernels::SplitMix(9);
    let queries: Vec<Vec<f32>> = (0..m).map(|i| unit[(i * 7919 % n) * dim..(i * 7919 % n + 1) * dim].iter().map(|x| (x + 0.02 * rng.gauss()).max(0.0)).collect()).collect();
    let flat: Vec<f32> = queries.iter().flatten().copied().collect();
    let (exact_secs, exact) = time(1, || knn::top_k(&flat, dim, s.matrix(), Some(all), 10, Scoring::Dot));
    let (build, build_mb, index) = measure(1, || AnnIndex::build(s, Metric::Cosine, backend, &curate_stdlib::progress::Silent).expect("build"));
    let (step, params) = match backend {
        Backend::Usearch => ("index build (usearch f16)", "M=16, ef_construction=128".to_string()),
        Backend::Ivf => ("index build (ivf)", format!("{} lists, {} probed", (n as f64).sqrt() as usize, curate_stdlib::index::IVF_PROBES)),
        Backend::Hnsw => ("index build (instant-distance)", "M=16, ef_construction=128".to_string()),
    };
    rows.push(Row { step, n, seconds: build, baseline: "exact batch of 1000 queries", base_seconds: exact_secs, peak_mb: build_mb, note: params });
    let t = Instant::now();
    let ann: Vec<Vec<usize>> = queries.iter().map(|q| index.search(q, 10, 10).into_iter().map(|h| h.row).collect()).collect();
    let secs = t.elapsed().as_secs_f64();
    let hits: usize = ann.iter().zip(&exact).map(|(a, e)| a.iter().filter(|r| e.iter().any(|h| h.0 as usize == **r)).count()).sum();
    rows.push(Row {
        step: match backend {
            Backend::Usearch => "index (usearch): 1000 queries, 1 thread",
            Backend::Ivf => "index (ivf): 1000 queries, 1 thread",
            Backend::Hnsw => "index (hnsw): 1000 queries, 1 thread",
        },
        n,
        seconds: secs,
        baseline: "exact batch of 1000 queries",
        base_seconds: exact_secs,
        peak_mb: f64::NAN,
        note: format!("{:.0} queries/s; recall@10 {:.4}", m as f64 / secs, hits as f64 / (m * 10) as f64),
    });
}

/// The manifest and the edit log at `n` rows: open, filter, export, then replaying up to 1M
/// edits (the replay alone, the first open, which also writes the view cache, and a cached
/// open), each but the replay alone through a Rhai
/// script as a user runs it, beside plain Polars on the same file.
fn manifest_steps(n: usize, rows: &mut Vec<Row>) {
    let reps = if n <= 1_000_000 { 3 } else { 1 };
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = Arc::new(Workspace::init(tmp.path(), Some("scale")).expect("workspace"));
    let t = Instant::now();
    {
        let labels = ["person", "no_person", "person", "no_person", "no_person"];
        let splits = ["train", "train", "train", "val", "test"];
        let mut df = df!(
            "id" => (0..n).map(|i| format!("s/{i:08}")).collect::<Vec<_>>(),
            "path" => (0..n).map(|i| format!("media/{:04}/{i:08}.jpg", i % 1000)).collect::<Vec<_>>(),
            "label" => (0..n).map(|i| labels[(i * 7) % 5]).collect::<Vec<_>>(),
            "split" => (0..n).map(|i| splits[(i * 13) % 5]).collect::<Vec<_>>(),
            "width" => (0..n).map(|i| 32 + ((i * 31) % 640) as u32).collect::<Vec<_>>(),
            "height" => (0..n).map(|i| 32 + ((i * 17) % 480) as u32).collect::<Vec<_>>(),
            "hash" => (0..n).map(|i| format!("{:064x}", (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))).collect::<Vec<_>>(),
        )
        .expect("manifest");
        curate_stdlib::manifest::write(&ws.manifest_path(), &mut df).expect("write manifest");
    }
    let written = t.elapsed().as_secs_f64();
    let ctx = Arc::new(Context::quiet(ws.root().to_path_buf(), Some(ws.clone())));
    let engine = curate_stdlib::sandbox::build_engine(&ctx, &Default::default());
    let eval = |code: &str| engine.eval::<i64>(code).unwrap_or_else(|e| panic!("{code}: {e}"));
    let path = ws.manifest_path();
    let scan = || LazyFrame::scan_parquet(PlRefPath::try_from_path(&path).expect("path"), Default::default()).expect("scan");
    let count = |df: DataFrame| df.column("len").expect("len").get(0).expect("row").try_extract::<i64>().expect("count");

    let (secs, mb, got) = measure(reps, || eval("open().len()"));
    let (base, want) = time(reps, || count(scan().select([len()]).collect().expect("collect")));
    assert_eq!(got, want);
    rows.push(Row { step: "manifest: open().len()", n, seconds: secs, baseline: "Polars scan + len", base_seconds: base, peak_mb: mb, note: format!("manifest written in {written:.1} s") });

    let predicate = "label = 'person' AND width >= 96 AND split = 'train'";
    let (secs, mb, got) = measure(reps, || eval(&format!("open().filter(\"{predicate}\").len()")));
    let (base, want) = time(reps, || {
        let pred = col("label").eq(lit("person")).and(col("width").gt_eq(lit(96))).and(col("split").eq(lit("train")));
        count(scan().filter(pred).select([len()]).collect().expect("collect"))
    });
    assert_eq!(got, want);
    rows.push(Row { step: "manifest: filter().len()", n, seconds: secs, baseline: "Polars scan + filter + len", base_seconds: base, peak_mb: mb, note: format!("{got} rows match") });

    let (secs, mb, got) = measure(1, || eval("open().train_export(\"exports/v1\", #{format: \"parquet\"}).rows"));
    let (base, _) = time(1, || {
        let mut df = scan().collect().expect("collect");
        ParquetWriter::new(std::fs::File::create(tmp.path().join("plain.parquet")).expect("create")).finish(&mut df).expect("write")
    });
    rows.push(Row {
        step: "manifest: train_export (parquet)",
        n,
        seconds: secs,
        baseline: "Polars collect + Parquet write",
        base_seconds: base,
        peak_mb: mb,
        note: format!("{got} rows, lock file with every hash"),
    });

    // The edit log: min(n, 1M) mixed edits, appended as one batch.
    let n_edits = n.min(1_000_000);
    let batch: Vec<Edit> = (0..n_edits)
        .map(|i| {
            let id = format!("s/{:08}", (i * 7919) % n);
            let (action, column, value) = match i % 10 {
                0..=5 => ("relabel", None, Some(serde_json::Value::from(if i % 2 == 0 { "person" } else { "no_person" }))),
                6 | 7 => ("tag", Some(format!("t{}", i % 3)), None),
                8 => ("set_weight", Some("weight".to_string()), Some(serde_json::Value::from(2.0))),
                _ => ("remove", None, None),
            };
            Edit { time: edits::now(), action: action.into(), ids: vec![id], column, value, old: vec![], rows: vec![], reason: "bench".into(), source: "bench".into() }
        })
        .collect();
    edits::append(&ws.edits_path(), &batch).expect("append");
    drop(batch);
    let (base, _) = time(reps, || scan().collect().expect("collect").height());
    // What the first open spends on the replay itself: reading the log and replaying it.
    let (secs, mb, got) = measure(1, || edits::replay_collected(scan(), &edits::read(&ws.edits_path()).expect("log").edits).expect("replay").height());
    rows.push(Row {
        step: "edit log: read + replay",
        n,
        seconds: secs,
        baseline: "Polars scan + collect",
        base_seconds: base,
        peak_mb: mb,
        note: format!("{n_edits} edits; {got} rows after removals; no cache"),
    });
    let (secs, mb, got) = measure(1, || eval("open().len()"));
    rows.push(Row {
        step: "edit log: first open (replay)",
        n,
        seconds: secs,
        baseline: "Polars scan + collect",
        base_seconds: base,
        peak_mb: mb,
        note: format!("{n_edits} edits; {got} rows after removals; writes the view cache"),
    });
    let (secs, mb, _) = measure(reps, || eval("open().len()"));
    rows.push(Row {
        step: "edit log: cached open",
        n,
        seconds: secs,
        baseline: "Polars scan + collect",
        base_seconds: base,
        peak_mb: mb,
        note: "the replayed view, keyed by manifest hash and log length".into(),
    });
    let (secs, mb, _) = measure(reps, || eval(&format!("open().filter(\"{predicate}\").len()")));
    rows.push(Row { step: "edit log: cached filter().len()", n, seconds: secs, baseline: "Polars scan + collect", base_seconds: base, peak_mb: mb, note: String::new() });
}
