//! Interactive classification speed: cross-validate and fit a probe on a few hundred labels,
//! then score a 100k-vector corpus; and the 12-class out-of-fold fit that `fit_probe` runs. The
//! baseline, measured in the same run, is one exact scan of the corpus (what a `similar` query
//! without an index costs), so the figures read as "a probe costs N corpus scans".
//!
//! Run: cargo bench --profile dev -p curate-stdlib --bench probe -- [N] [DIM] [LABELS]
//! (defaults 100000 1280 400). A plain main: each arm takes about a second; it is run once.

use std::time::Instant;

use curate_kernels::probe;
use curate_stdlib::index::{exact_search, Metric};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dim: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1280);
    let labels: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(400);
    let clusters = 12;
    let mut rng = curate_kernels::SplitMix(42);
    // Post-ReLU-like features: non-negative, clustered, overlapping.
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| (0..dim).map(|_| rng.gauss().max(0.0)).collect()).collect();
    let mut data = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = &centres[i % clusters];
        data.extend(c.iter().map(|x| (x + 1.5 * rng.gauss()).max(0.0)));
    }
    let class = |i: usize| i % clusters;

    // Baseline: one exact cosine scan of the corpus.
    let tmp = tempfile::tempdir().expect("tempdir");
    let emb = curate_stdlib::store::write(tmp.path(), (0..n).map(|i| format!("{i:064x}")).collect(), data.clone(), dim, curate_stdlib::store::Layout::EMBEDDINGS).expect("store");
    let t = Instant::now();
    let _ = exact_search(&emb, Metric::Cosine, &data[..dim], 10, None).expect("search");
    let scan = t.elapsed().as_secs_f64();
    println!("baseline: one exact scan of {n} x {dim}: {:.3} s", scan);

    // The interactive loop: `labels` labelled samples (half of class 0), CV over the alpha grid,
    // the final fit, then scoring the corpus.
    let picked: Vec<usize> = (0..labels).map(|i| if i % 2 == 0 { (i / 2) * clusters } else { i * 7 + 1 }).collect();
    let t = Instant::now();
    let raw: Vec<f32> = picked.iter().flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied()).collect();
    let x = probe::probe_features(&raw, dim);
    let y: Vec<usize> = picked.iter().map(|&i| usize::from(class(i) == 0)).collect();
    let cv = probe::cross_validate(&probe::Design::dense(&x, dim), &y, 2, curate_stdlib::probe::ALPHAS, 5, 7).expect("cv");
    let model = probe::fit(&probe::Design::dense(&x, dim), &y, 2, cv.alpha).expect("fit");
    let train = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let scores = probe::predict(&model, &probe::Design::raw(&data, dim));
    let score = t.elapsed().as_secs_f64();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b * 2 + 1].total_cmp(&scores[a * 2 + 1]));
    let p100 = order.iter().take(100).filter(|&&i| class(i) == 0).count();
    println!(
        "classify: {labels} labels, 5-fold CV over {} alphas + final fit: {train:.3} s; score {n}: {score:.3} s; total {:.3} s = {:.1} scans (alpha {}, CV accuracy {:.3}, precision@100 {:.2})",
        curate_stdlib::probe::ALPHAS.len(),
        train + score,
        (train + score) / scan,
        cv.alpha,
        cv.accuracy,
        p100 as f64 / 100.0
    );

    // fit_probe: out-of-fold probabilities for a 12-class column over 1,400 samples.
    let m = 1400.min(n);
    let x = probe::probe_features(&data[..m * dim], dim);
    let y: Vec<usize> = (0..m).map(class).collect();
    let t = Instant::now();
    let cv = probe::cross_validate(&probe::Design::dense(&x, dim), &y, clusters, curate_stdlib::probe::ALPHAS, 5, 7).expect("cv");
    let oof = t.elapsed().as_secs_f64();
    println!(
        "fit_probe: {m} samples, {clusters} classes, 5-fold CV over {} alphas: {oof:.3} s = {:.1} scans (alpha {}, accuracy {:.3})",
        curate_stdlib::probe::ALPHAS.len(),
        oof / scan,
        cv.alpha,
        cv.accuracy
    );
}
