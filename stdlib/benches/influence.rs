//! Influence: is it right, and is it fast? On the example workspace's real features (VWW's own
//! pooled features with its last layer read from the graph; MobileNetV2 features with a
//! 10-class CIFAR probe), every figure the influence issue asks for, each against retraining:
//! leave-one-out agreement, the linear datamodeling score, counterfactual removal (against
//! random removal and a plain gradient-dot-product ranking), and mislabel detection (against
//! confident learning). Then speed: scoring 100 test gradients against 1M × 1280 f16 rows read
//! from a file, against the same-shape sgemm timed in the same run, and the Hessian build and
//! factorisation at d = 1281, C = 10 and C = 2.
//!
//! Run: cargo bench -p curate-stdlib --bench influence -- [quality | mislabels] [speed] [N]
//! (both parts by default; N = 1000000 rows for speed).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use curate_kernels::influence::{self as kernel, Head, Objective, Rank};
use curate_kernels::knn::Matrix;
use curate_kernels::probe::{self, Design, Scale};
use curate_kernels::stats::{pearson, ranks, spearman};
use curate_stdlib::primitives::influence::{prepare, test_rows, InfluenceOptions, Prepared};
use curate_stdlib::primitives::Context;
use curate_stdlib::workspace::Workspace;
use curate_stdlib::Dataset;
use polars::prelude::*;
use rayon::prelude::*;

type Tests = Vec<(String, Vec<f32>, usize)>;

fn auc(scores: &[f64], positive: &[bool]) -> f64 {
    let r = ranks(scores);
    let np = positive.iter().filter(|&&p| p).count() as f64;
    let nn = positive.len() as f64 - np;
    let sum: f64 = r.iter().zip(positive).filter(|(_, &p)| p).map(|(r, _)| r + 1.0).sum();
    (sum - np * (np + 1.0) / 2.0) / (np * nn)
}

fn slice(all: &Dataset, expr: Expr) -> Dataset {
    all.derive(all.lazy().filter(expr)).expect("slice")
}

fn ids(ds: &Dataset) -> Vec<String> {
    ds.lazy().select([col("id")]).collect().expect("ids").column("id").expect("id").str().expect("str").iter().flatten().map(str::to_string).collect()
}

fn margins(head: &Head, tests: &Tests) -> Vec<f64> {
    tests.iter().map(|(_, x, c)| kernel::objective_value(head, x, *c, Objective::Margin)).collect()
}

/// Leave-one-out: 50 random training rows × the tests, predicted against retrained.
fn loo(prep: &Prepared, f: &kernel::Factor, tests: &Tests) -> f64 {
    let design = prep.design();
    let grads: Vec<Vec<f64>> = tests.iter().map(|(_, x, c)| kernel::test_gradient(&prep.head, x, *c, Objective::Margin).1).collect();
    let predicted = kernel::score(&prep.head, &design, &prep.y, &f.solve(&grads), None, Rank::Helpful);
    let base = margins(&prep.head, tests);
    let n = prep.y.len();
    let mut rng = curate_kernels::SplitMix(7);
    let picks: Vec<usize> = (0..50).map(|_| (rng.next_u64() % n as u64) as usize).collect();
    let rows: Vec<(Vec<f64>, Vec<f64>)> = picks
        .iter()
        .map(|&i| {
            let mut keep = vec![true; n];
            keep[i] = false;
            let (h, _) = kernel::retrain(&prep.head, f, &design, &prep.y, &keep).expect("retrains");
            let after = margins(&h, tests);
            ((0..tests.len()).map(|t| predicted[t][i].1 as f64).collect(), (0..tests.len()).map(|t| base[t] - after[t]).collect())
        })
        .collect();
    let pred: Vec<f64> = rows.iter().flat_map(|r| r.0.clone()).collect();
    let actual: Vec<f64> = rows.iter().flat_map(|r| r.1.clone()).collect();
    pearson(&pred, &actual)
}

/// Linear datamodeling score: 50 random half-subsets; per test, Spearman of predicted against
/// retrained margins across subsets, averaged over tests.
fn lds(prep: &Prepared, f: &kernel::Factor, tests: &Tests) -> f64 {
    let design = prep.design();
    let grads: Vec<Vec<f64>> = tests.iter().map(|(_, x, c)| kernel::test_gradient(&prep.head, x, *c, Objective::Margin).1).collect();
    let infl = kernel::score(&prep.head, &design, &prep.y, &f.solve(&grads), None, Rank::Helpful);
    let base = margins(&prep.head, tests);
    let n = prep.y.len();
    let mut rng = curate_kernels::SplitMix(11);
    let subsets: Vec<Vec<bool>> = (0..50).map(|_| (0..n).map(|_| rng.next_u64() % 2 == 0).collect()).collect();
    let results: Vec<(Vec<f64>, Vec<f64>)> = subsets
        .iter()
        .map(|keep| {
            let (h, _) = kernel::retrain(&prep.head, f, &design, &prep.y, keep).expect("retrains");
            let actual = margins(&h, tests);
            let predicted: Vec<f64> = (0..tests.len()).map(|t| base[t] - (0..n).filter(|&i| !keep[i]).map(|i| infl[t][i].1 as f64).sum::<f64>()).collect();
            (predicted, actual)
        })
        .collect();
    let per_test: Vec<f64> = (0..tests.len())
        .map(|t| {
            let p: Vec<f64> = results.iter().map(|r| r.0[t]).collect();
            let a: Vec<f64> = results.iter().map(|r| r.1[t]).collect();
            spearman(&p, &a)
        })
        .filter(|s| s.is_finite())
        .collect();
    per_test.iter().sum::<f64>() / per_test.len().max(1) as f64
}

/// Counterfactual removal for each failing test: remove its top-k rows by a ranking, retrain,
/// does it flip? Returns the flip rates of exact influence, random rows and gradient dot products.
fn counterfactual(prep: &Prepared, f: &kernel::Factor, tests: &Tests, k: usize) -> (usize, f64, f64, f64) {
    let design = prep.design();
    let n = prep.y.len();
    let failing: Vec<&(String, Vec<f32>, usize)> = tests.iter().filter(|(_, x, c)| kernel::objective_value(&prep.head, x, *c, Objective::Margin) < 0.0).collect();
    let flips: Vec<(bool, bool, bool)> = failing
        .par_iter()
        .enumerate()
        .map(|(j, (_, x, c))| {
            let g = kernel::test_gradient(&prep.head, x, *c, Objective::Margin).1;
            let exact: Vec<usize> = kernel::score(&prep.head, &design, &prep.y, &f.solve(std::slice::from_ref(&g)), Some(k), Rank::Harmful)[0].iter().map(|r| r.0 as usize).collect();
            let dot: Vec<usize> = kernel::score(&prep.head, &design, &prep.y, std::slice::from_ref(&g), Some(k), Rank::Harmful)[0].iter().map(|r| r.0 as usize).collect();
            let mut rng = curate_kernels::SplitMix(1000 + j as u64);
            let mut random = HashSet::new();
            while random.len() < k {
                random.insert((rng.next_u64() % n as u64) as usize);
            }
            let flipped = |removed: &[usize]| {
                let mut keep = vec![true; n];
                removed.iter().for_each(|&i| keep[i] = false);
                let (h, _) = kernel::retrain(&prep.head, f, &design, &prep.y, &keep).expect("retrains");
                kernel::objective_value(&h, x, *c, Objective::Margin) > 0.0
            };
            (flipped(&exact), flipped(&random.into_iter().collect::<Vec<_>>()), flipped(&dot))
        })
        .collect();
    let rate = |sel: fn(&(bool, bool, bool)) -> bool| flips.iter().filter(|f| sel(f)).count() as f64 / flips.len().max(1) as f64;
    (failing.len(), rate(|f| f.0), rate(|f| f.1), rate(|f| f.2))
}

fn quality(only_mislabels: bool) {
    let root = curate_stdlib::testing::example_workspace().canonicalize().expect("examples/people");
    let ws = Arc::new(Workspace::open(&root).expect("workspace"));
    let ctx = Context::quiet(root, Some(ws.clone()));
    let all = Dataset::new(ws.clone(), ws.scan_manifest().expect("manifest")).expect("dataset");

    if only_mislabels {
        mislabels(&ctx, &all);
        return;
    }
    // 1. The detector's own head (VWW, 256 → 2) over the train split; tests: the test split.
    let train = slice(&all, col("split").eq(lit("train")));
    let t = Instant::now();
    let prep = prepare(&ctx, &train, &InfluenceOptions::default(), "influence").expect("prepares");
    let tests = test_rows(&ctx, &prep, &ws, &ids(&slice(&all, col("split").eq(lit("test"))))).expect("tests");
    let f = prep.factor(1).expect("factor");
    println!("vww head: {} ({:.2} s to prepare and factorise)", prep.describe(), t.elapsed().as_secs_f64());
    let faces: Tests = tests.iter().filter(|t| t.0.starts_with("lfw/face")).cloned().collect();
    println!("  leave-one-out Pearson (50 train x {} test faces): {:.4}", faces.len(), loo(&prep, &f, &faces));
    let lds_tests: Tests = tests.iter().step_by(10).cloned().collect();
    println!("  LDS Spearman (50 half-subsets, {} test samples): {:.4}", lds_tests.len(), lds(&prep, &f, &lds_tests));
    let (nf, e, r, d) = counterfactual(&prep, &f, &tests, 20);
    println!("  counterfactual k=20 over {nf} failing test samples: exact {:.1}% flip, random {:.1}%, gradient dot {:.1}%", 100.0 * e, 100.0 * r, 100.0 * d);

    // 2. A 10-class probe on MobileNetV2 features over the CIFAR train split.
    let ctrain = slice(&all, col("split").eq(lit("train")).and(col("source").eq(lit("cifar10"))));
    let opts = InfluenceOptions { head: Some("probe".into()), label: Some("class".into()), ..Default::default() };
    let t = Instant::now();
    let prep = prepare(&ctx, &ctrain, &opts, "influence").expect("prepares");
    let fit_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let f = prep.factor(1).expect("factor");
    println!("cifar probe: {} (fit {fit_s:.1} s, Hessian + Cholesky {:.1} s, alpha {:?})", prep.describe(), t.elapsed().as_secs_f64(), prep.alpha);
    let ctests = test_rows(&ctx, &prep, &ws, &ids(&slice(&all, col("split").eq(lit("test")).and(col("source").eq(lit("cifar10")))))).expect("tests");
    let loo_tests: Tests = ctests.iter().step_by(10).cloned().collect();
    println!("  leave-one-out Pearson (50 train x {} tests): {:.4}", loo_tests.len(), loo(&prep, &f, &loo_tests));
    println!("  LDS Spearman (50 half-subsets, {} tests): {:.4}", loo_tests.len(), lds(&prep, &f, &loo_tests));
    let (nf, e, r, d) = counterfactual(&prep, &f, &ctests, 20);
    println!("  counterfactual k=20 over {nf} failing test samples: exact {:.1}% flip, random {:.1}%, gradient dot {:.1}%", 100.0 * e, 100.0 * r, 100.0 * d);

    mislabels(&ctx, &all);
}

/// 3. Mislabels: flip 10% of the CIFAR class labels (seeded), refit, rank.
fn mislabels(ctx: &Context, all: &Dataset) {
    let ctrain = slice(all, col("split").eq(lit("train")).and(col("source").eq(lit("cifar10"))));
    let opts = InfluenceOptions { head: Some("probe".into()), label: Some("class".into()), ..Default::default() };
    let prep = prepare(ctx, &ctrain, &opts, "influence").expect("prepares");
    let n = prep.y.len();
    let classes = prep.classes.len();
    let mut rng = curate_kernels::SplitMix(2024);
    let mut y = prep.y.clone();
    let mut flipped = vec![false; n];
    let mut order: Vec<(u64, usize)> = (0..n).map(|i| (rng.next_u64(), i)).collect();
    order.sort_unstable();
    for &(r, i) in order.iter().take(n / 10) {
        y[i] = (y[i] + 1 + (r % (classes as u64 - 1)) as usize) % classes;
        flipped[i] = true;
    }
    let design = prep.design();
    let cv = probe::cross_validate(&design, &y, classes, curate_stdlib::probe::ALPHAS, 5, 0x5eed).expect("cv");
    let linear = probe::fit(&design, &y, classes, cv.alpha).expect("fit");
    let head = Head::from_linear(&linear);
    let fl = kernel::factor(&head, &design, &y, Some(cv.alpha), None).expect("factor");
    let si = kernel::self_influence(&head, &fl, &design, &y).expect("dense");
    let top = n / 10;
    let mut by_si: Vec<usize> = (0..n).collect();
    by_si.sort_by(|&a, &b| si[b].total_cmp(&si[a]));
    let caught = by_si[..top].iter().filter(|&&i| flipped[i]).count();
    println!("mislabels: {} of {n} CIFAR class labels flipped", n / 10);
    println!("  self-influence: AUC {:.4}, {:.1}% of flips in its top 10%", auc(&si, &flipped), 100.0 * caught as f64 / (n / 10) as f64);
    let probs: Vec<Vec<f32>> = cv.oof.chunks(classes).map(<[f32]>::to_vec).collect();
    let issues = curate_stdlib::primitives::label_issues::find_issues(&probs, &y, classes, curate_stdlib::primitives::label_issues::Method::PruneByNoiseRate);
    let f1 = |flagged: &HashSet<usize>| {
        let tp = flagged.iter().filter(|&&i| flipped[i]).count() as f64;
        let (p, r) = (tp / flagged.len().max(1) as f64, tp / (n / 10) as f64);
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    };
    let cl: HashSet<usize> = issues.iter().map(|i| i.row).collect();
    let cl_score: Vec<f64> = (0..n).map(|i| 1.0 - probs[i][y[i]] as f64).collect();
    println!("  confident learning: {} flagged, F1 {:.3}; its margin as a ranking: AUC {:.4}", cl.len(), f1(&cl), auc(&cl_score, &flipped));
    // kNN label agreement: the share of the 10 nearest training rows with another label.
    let rows: Vec<u32> = prep.rows.clone();
    let store = &prep.store;
    let mut queries = Vec::with_capacity(n * store.dim());
    for &r in &rows {
        queries.extend(store.unit_row(r as usize));
    }
    let nn = curate_kernels::knn::top_k(&queries, store.dim(), store.matrix(), Some(&rows), 11, curate_kernels::knn::Scoring::Dot);
    let pos: std::collections::HashMap<u32, usize> = rows.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    let knn: Vec<f64> = (0..n).map(|i| nn[i].iter().filter(|(r, _)| *r != rows[i]).take(10).filter(|(r, _)| y[pos[r]] != y[i]).count() as f64 / 10.0).collect();
    println!("  kNN label disagreement: AUC {:.4}", auc(&knn, &flipped));
    let flagged_by_cl: Vec<bool> = (0..n).map(|i| cl.contains(&i)).collect();
    let confidence: Vec<f64> = (0..n).map(|i| probs[i][y[i]] as f64).collect();
    let (combined, count) = curate_stdlib::primitives::influence::combine(&confidence, &knn, &si, &flagged_by_cl);
    let mut by_c: Vec<usize> = (0..n).collect();
    by_c.sort_by(|&a, &b| combined[b].total_cmp(&combined[a]));
    let mut by_cl: Vec<usize> = (0..n).collect();
    by_cl.sort_by(|&a, &b| cl_score[b].total_cmp(&cl_score[a]));
    let top = |order: &[usize], m: usize| -> HashSet<usize> { order[..m.min(n)].iter().copied().collect() };
    let combined_f1 = f1(&top(&by_c, count));
    println!("  combined (label_issues method \"combined\"): {count} flagged, F1 {combined_f1:.3} ({:.2}x confident learning), AUC {:.4}", combined_f1 / f1(&cl).max(1e-9), auc(&combined, &flipped));
    println!(
        "  at the same count: self-influence alone F1 {:.3}, confident learning's margin alone F1 {:.3}; the combined ranking at confident learning's count: F1 {:.3}",
        f1(&top(&by_si, count)),
        f1(&top(&by_cl, count)),
        f1(&top(&by_c, cl.len()))
    );
    println!(
        "  diagnostic, at the true count ({}): combined F1 {:.3}, self-influence {:.3}, confident learning's margin {:.3}; out-of-fold probe accuracy on the noisy labels {:.3}",
        n / 10,
        f1(&top(&by_c, n / 10)),
        f1(&top(&by_si, n / 10)),
        f1(&top(&by_cl, n / 10)),
        (0..n).filter(|&i| (0..classes).max_by(|&a, &b| probs[i][a].total_cmp(&probs[i][b])) == Some(y[i])).count() as f64 / n as f64
    );
}

fn speed(n: usize) {
    let (dim, q) = (1280usize, 100usize);
    let mut rng = curate_kernels::SplitMix(5);
    // 1M unit rows in f16, written to a file and mapped, as the store keeps them.
    let dir = tempfile::tempdir_in(std::env::var("CURATE_BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string())).expect("tempdir");
    let path = dir.path().join("vectors.f16");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let mut row = vec![0f32; dim];
        for _ in 0..n {
            row.iter_mut().for_each(|v| *v = rng.gauss().max(0.0));
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            row.iter_mut().for_each(|v| *v /= norm);
            w.write_all(bytemuck::cast_slice(&curate_kernels::knn::to_f16(&row))).expect("write");
        }
    }
    let file = std::fs::File::open(&path).expect("open");
    // SAFETY: the file is private to this run and not modified while mapped.
    let map = unsafe { memmap2::Mmap::map(&file).expect("map") };
    let stored: &[half::f16] = bytemuck::cast_slice(&map);
    let y: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let design = Design { matrix: Matrix::F16(stored), dim, rows: None, scale: Scale::Unit };
    let linear = probe::Linear { dim, classes: 2, weights: (0..dim * 2).map(|_| 0.05 * rng.gauss()).collect(), intercept: vec![0.0, 0.1] };
    let head = Head::from_linear(&linear);
    let dirs: Vec<Vec<f64>> = (0..q).map(|_| (0..head.size()).map(|_| rng.gauss() as f64).collect()).collect();

    // Baseline: the same-shape product (q × dim by dim × n) with matrixmultiply, f32 in memory.
    let a: Vec<f32> = (0..q * dim).map(|_| rng.gauss()).collect();
    let block = 4096;
    let b: Vec<f32> = (0..block * dim).map(|_| rng.gauss()).collect();
    let t = Instant::now();
    (0..n.div_ceil(block)).into_par_iter().for_each_init(
        || vec![0f32; q * block],
        |c, _| {
            // SAFETY: the shapes match the buffers.
            unsafe { matrixmultiply::sgemm(q, dim, block, 1.0, a.as_ptr(), dim as isize, 1, b.as_ptr(), 1, dim as isize, 0.0, c.as_mut_ptr(), block as isize, 1) }
        },
    );
    let gemm = t.elapsed().as_secs_f64();
    let flops = 2.0 * q as f64 * dim as f64 * n as f64;
    println!("baseline: sgemm {q} x {dim} by {dim} x {n} (matrixmultiply, f32 in memory): {gemm:.2} s, {:.1} GFLOP/s", flops / gemm / 1e9);
    // Warm the page cache once, then time scoring: 100 test gradients, top 20 harmful each.
    let _ = kernel::score(&head, &design, &y, &dirs[..1], Some(20), Rank::Harmful);
    let t = Instant::now();
    let top = kernel::score(&head, &design, &y, &dirs, Some(20), Rank::Harmful);
    let s = t.elapsed().as_secs_f64();
    assert_eq!(top.len(), q);
    println!("influence: score {q} test gradients against {n} x {dim} f16 rows (mapped file): {s:.2} s = {:.2}x the sgemm", gemm / s);

    // Hessian build and Cholesky at d = 1281, C = 10 and C = 2, from HESSIAN_SAMPLE rows.
    let m = kernel::HESSIAN_SAMPLE.min(n);
    let rows: Vec<u32> = (0..m as u32).collect();
    for classes in [2usize, 10] {
        let linear = probe::Linear { dim, classes, weights: (0..dim * classes).map(|_| 0.05 * rng.gauss()).collect(), intercept: vec![0.0; classes] };
        let head = Head::from_linear(&linear);
        let yc: Vec<usize> = (0..m).map(|i| i % classes).collect();
        let t = Instant::now();
        let f = kernel::factor(&head, &design.with_rows(&rows), &yc, Some(1.0), None).expect("factor");
        println!("Hessian, d = {}, C = {classes} ({} parameters, {m} rows): build {:.1} s, Cholesky {:.1} s (total {:.1} s)", dim + 1, f.size(), f.seconds.0, f.seconds.1, t.elapsed().as_secs_f64());
    }
    // Beyond the dense limit: 40 classes (51,240 parameters), conjugate gradients with exact
    // Hessian-vector products over the same rows, for 10 test gradients at once.
    let classes = 40;
    let linear = probe::Linear { dim, classes, weights: (0..dim * classes).map(|_| 0.05 * rng.gauss()).collect(), intercept: vec![0.0; classes] };
    let head = Head::from_linear(&linear);
    let yc: Vec<usize> = (0..m).map(|i| i % classes).collect();
    let t = Instant::now();
    let f = kernel::factor(&head, &design.with_rows(&rows), &yc, None, None).expect("factor");
    let built = t.elapsed().as_secs_f64();
    let grads: Vec<Vec<f64>> = (0..10).map(|_| (0..head.size()).map(|_| rng.gauss() as f64).collect()).collect();
    let t = Instant::now();
    let v = f.solve(&grads);
    println!(
        "Hessian, d = {}, C = {classes} ({} parameters, iterative: {}): curvature rows and diagonal {built:.1} s; 10 solves by conjugate gradients {:.1} s (|v| {:.3e})",
        dim + 1,
        f.size(),
        f.is_iterative(),
        t.elapsed().as_secs_f64(),
        v[0].iter().map(|x| x * x).sum::<f64>().sqrt()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let n = args.iter().find_map(|a| a.parse::<usize>().ok()).unwrap_or(1_000_000);
    let both = !args.iter().any(|a| a == "quality" || a == "speed" || a == "mislabels");
    if both || args.iter().any(|a| a == "quality" || a == "mislabels") {
        quality(args.iter().any(|a| a == "mislabels"));
    }
    if both || args.iter().any(|a| a == "speed") {
        speed(n);
    }
}
