//! The vector path at 10k, 100k and 1M rows: store open, exact kNN (one query, a batch of
//! queries), and kNN within the whole set (duplicates, outliers), each beside a baseline measured
//! in the same run, with peak resident memory and the growth exponent from one size to the next.
//!
//! Run: cargo bench -p curate-stdlib --bench scale -- [SIZES] [DIM] [fast]
//!      (defaults: 10000,100000,1000000 and 1280; a release build)
//! A plain main rather than criterion: the large sizes take minutes, so each is measured once
//! (the small ones take the best of three).
//!
//! Data: clustered synthetic post-ReLU-like vectors (non-negative, like pooled CNN features),
//! with 1% near-copies (a row plus small noise), written through the real store.

use std::time::Instant;

use curate_kernels::knn::{self, IvfParams, Matrix, Scoring};
use curate_stdlib::store::{self, Layout, Store};

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

fn vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let clusters = 200;
    let mut rng = curate_kernels::SplitMix(seed);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| (0..dim).map(|_| rng.gauss().max(0.0)).collect()).collect();
    let mut data = Vec::with_capacity(n * dim);
    for i in 0..n {
        if i % 100 == 99 {
            // A near-copy of the row before (a re-encoded image).
            let prev: Vec<f32> = data[(i - 1) * dim..i * dim].to_vec();
            data.extend(prev.iter().map(|x| (x + 0.05 * rng.gauss()).max(0.0)));
        } else {
            let c = &centres[(rng.next_u64() % clusters as u64) as usize];
            data.extend(c.iter().map(|x| (x + 1.2 * rng.gauss()).max(0.0)));
        }
    }
    data
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
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let sizes: Vec<usize> = args.first().map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect()).unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let dim: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1280);
    // `fast` leaves out kNN within all rows (minutes at 1M).
    let within_all = args.get(2).is_none_or(|s| s != "fast");
    let threads = rayon::current_num_threads();
    println!("scale: {dim}-d vectors, sizes {sizes:?}, {threads} threads");
    let mut rows: Vec<Row> = Vec::new();
    for &n in &sizes {
        let reps = if n <= 100_000 { 3 } else { 1 };
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = vectors(n, dim, 42);
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

        reset_peak();
        let before = rss_mb();
        let (open, s) = time(reps, || Store::open(tmp.path()).expect("open"));
        let grew = rss_mb() - before;
        let (read_raw, _) = time(1, || std::fs::read(&raw).expect("read").len());
        rows.push(Row { step: "store open", n, seconds: open, baseline: "read raw f32 file", base_seconds: read_raw, peak_mb: peak_mb(), note: format!("resident +{grew:.1} MB; written in {write:.1} s") });
        let _ = std::fs::remove_file(&raw);

        // One query: the store (f16, mapped) against a dot-product scan of in-memory f32 rows.
        let q: Vec<f32> = unit[..dim].to_vec();
        let all: Vec<u32> = (0..n as u32).collect();
        reset_peak();
        // The first query after opening pays the page faults of the mapping; later ones do not.
        let (first, _) = time(1, || knn::top_k(&q, dim, s.matrix(), Some(&all), 10, Scoring::Dot));
        let (one, hits) = time(3, || knn::top_k(&q, dim, s.matrix(), Some(&all), 10, Scoring::Dot));
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
        let f32_hits = knn::top_k(&q, dim, Matrix::F32(&unit), None, 10, Scoring::Dot);
        let agree = hits[0].iter().filter(|h| f32_hits[0].iter().any(|x| x.0 == h.0)).count();
        rows.push(Row { step: "exact kNN, 1 query", n, seconds: one, baseline: "f32 dot scan, 1 thread", base_seconds: scan, peak_mb: peak_mb(), note: format!("best of 3 after a first query of {first:.3} s; f16 top-10 = f32 top-10: {agree}/10") });

        // A batch of queries at GEMM speed, against one sgemm of the same shape in memory.
        let m = 1000.min(n);
        let queries: Vec<f32> = unit[..m * dim].to_vec();
        reset_peak();
        let (batch, _) = time(1, || knn::top_k(&queries, dim, s.matrix(), Some(&all), 10, Scoring::Dot));
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
            peak_mb: peak_mb(),
            note: format!("{:.1} GFLOP/s; sgemm alone {:.1} GFLOP/s on 1 thread", flops / batch / 1e9, 2.0 * m as f64 * sub as f64 * dim as f64 / gemm / 1e9),
        });

        if !within_all {
            continue;
        }
        // kNN of every row among all rows (what duplicates and outliers need): IVF beyond 20k.
        reset_peak();
        let (within, near) = time(1, || knn::knn_self(s.matrix(), dim, &all, 10, Scoring::Dot, &IvfParams::default()));
        let within_peak = peak_mb();
        // Baseline and recall: exact search for a sample of 1000 rows, scaled to all rows.
        // Every other probe is a near-copy (row 99 of each hundred), so near pairs are counted.
        let step = (n / 1000).max(100);
        let probe: Vec<u32> = (0..n / step).map(|i| (i * step + (i % 2) * 99).min(n - 1) as u32).collect();
        let pq: Vec<f32> = probe.iter().flat_map(|&r| unit[r as usize * dim..(r as usize + 1) * dim].iter().copied()).collect();
        let (exact_sample, exact) = time(1, || knn::top_k(&pq, dim, s.matrix(), Some(&all), 11, Scoring::Dot));
        let mut found = 0;
        let mut total = 0;
        let mut dup_found = 0;
        let mut dup_total = 0;
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
            step: "kNN within all (k=10)",
            n,
            seconds: within,
            baseline: "exact, all rows (extrapolated)",
            base_seconds: exact_sample * n as f64 / probe.len() as f64,
            peak_mb: within_peak,
            note: format!(
                "{}; recall@10 {:.4}, pairs with cos >= 0.9: {dup_found}/{dup_total}",
                if n > knn::EXACT_SELF_LIMIT { "IVF" } else { "exact" },
                found as f64 / total.max(1) as f64
            ),
        });
    }
    println!("\n{:<26} {:>9} {:>10} {:>10} {:>8} {:>9} {:>8}  {:<32} note", "step", "rows", "seconds", "baseline", "ratio", "peak MB", "growth", "baseline is");
    for (i, r) in rows.iter().enumerate() {
        let growth = rows[..i].iter().rev().find(|p| p.step == r.step).map(|p| (r.seconds / p.seconds).ln() / (r.n as f64 / p.n as f64).ln()).map_or("".to_string(), |g| format!("n^{g:.2}"));
        println!(
            "{:<26} {:>9} {:>10.4} {:>10.4} {:>7.2}x {:>9.0} {:>8}  {:<32} {}",
            r.step,
            r.n,
            r.seconds,
            r.base_seconds,
            r.seconds / r.base_seconds,
            r.peak_mb,
            growth,
            r.baseline,
            r.note
        );
    }
}
