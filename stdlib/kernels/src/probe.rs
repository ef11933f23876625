//! Linear probes on embeddings: L2-regularised multinomial logistic regression fitted with
//! argmin's L-BFGS, k-fold cross-validation of the regularisation strength, out-of-fold
//! probabilities, and scoring of large matrices.
//!
//! The rows are never copied into a feature matrix. A [`Design`] names rows of a stored matrix
//! (the memory-mapped f16 vector store, or prepared f32 rows); the loss and gradient convert one
//! block of rows at a time and run two small `sgemm`s on it (logits `X·Wᵀ`, then gradient
//! `Eᵀ·X`), blocks in parallel with one accumulator per task. One pass over the data yields the
//! loss and the gradient together, and the solver's separate requests for each at the same
//! point share it. (linfa-logistic, tried first, packed the whole feature matrix on every call:
//! 5.7 s to cross-validate 200 labels.) Folds are row lists, not copies, so cross-validating
//! 1M × 1280 costs no memory beyond the mapped store.
//!
//! At scale, the regularisation strength is chosen by cross-validation on a stratified sample
//! of [`CV_SAMPLE`] rows; the out-of-fold probabilities of every row then come from one fit per
//! fold on all rows at that strength.

use std::sync::Mutex;

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::Array1;
use rayon::prelude::*;

use crate::knn::Matrix;

/// A fitted linear classifier over `dim` features and `classes` classes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Linear {
    pub dim: usize,
    pub classes: usize,
    /// `dim × classes`, row-major.
    pub weights: Vec<f32>,
    pub intercept: Vec<f32>,
}

/// How a stored row becomes a probe feature row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale<'a> {
    /// Used as stored (already prepared by [`probe_features`], or raw features for a test).
    AsIs,
    /// Stored at unit length (the embedding store): multiplied by √dim.
    Unit,
    /// Raw vectors: each scaled to length √dim.
    Normalise,
    /// Stored unit rows times their stored norms (one per stored row): the raw vectors, for a
    /// head that reads the model's own features (the model's last layer).
    Denormalise(&'a [f32]),
}

/// The rows a probe is fitted on or scores: `rows` of a stored `dim`-wide matrix (all rows, in
/// order, when `None`), each turned into a feature row by `scale`. Features have length √dim,
/// so that a feature's mean square is about 1 whatever the embedding's scale, and one
/// regularisation grid fits every model.
#[derive(Clone, Copy)]
pub struct Design<'a> {
    pub matrix: Matrix<'a>,
    pub dim: usize,
    pub rows: Option<&'a [u32]>,
    pub scale: Scale<'a>,
}

impl<'a> Design<'a> {
    /// Prepared or raw f32 rows, used as they are.
    pub fn dense(x: &'a [f32], dim: usize) -> Self {
        Design { matrix: Matrix::F32(x), dim, rows: None, scale: Scale::AsIs }
    }

    /// Raw f32 vectors, each scaled to length √dim on the fly.
    pub fn raw(x: &'a [f32], dim: usize) -> Self {
        Design { matrix: Matrix::F32(x), dim, rows: None, scale: Scale::Normalise }
    }

    pub fn len(&self) -> usize {
        self.rows.map_or_else(|| self.matrix.rows(self.dim), <[u32]>::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored row behind design row `i`.
    pub fn row_id(&self, i: usize) -> usize {
        self.rows.map_or(i, |r| r[i] as usize)
    }

    /// The same matrix restricted to `rows` (stored row ids, as from [`Design::row_id`]).
    pub fn with_rows<'b>(&self, rows: &'b [u32]) -> Design<'b>
    where
        'a: 'b,
    {
        Design { matrix: self.matrix, dim: self.dim, rows: Some(rows), scale: self.scale }
    }

    /// Design rows `start..end` as features into `out` (resized to `(end - start) × dim`).
    pub fn block_into(&self, start: usize, end: usize, out: &mut Vec<f32>) {
        let dim = self.dim;
        out.resize((end - start) * dim, 0.0);
        let root = (dim as f32).sqrt();
        for (i, o) in (start..end).zip(out.chunks_exact_mut(dim)) {
            self.matrix.row_into(self.row_id(i), o);
            let f = match self.scale {
                Scale::AsIs => continue,
                Scale::Unit => root,
                Scale::Denormalise(norms) => norms[self.row_id(i)],
                Scale::Normalise => {
                    let norm = o.iter().map(|x| x * x).sum::<f32>().sqrt();
                    if norm > 0.0 {
                        root / norm
                    } else {
                        0.0
                    }
                }
            };
            o.iter_mut().for_each(|x| *x *= f);
        }
    }
}

/// Features for a probe from raw vectors: each scaled to length √dim (see [`Design`]).
pub fn probe_features(data: &[f32], dim: usize) -> Vec<f32> {
    let mut out = Vec::new();
    Design::raw(data, dim).block_into(0, data.len() / dim.max(1), &mut out);
    out
}

/// Rows per block: the converted block (256 × 1280 f32 = 1.3 MB) stays in cache for both
/// products.
const BLOCK: usize = 256;

/// `c (m×n) = beta·c + a (m×k) · b (k×n)`, with explicit strides (row, column).
#[allow(clippy::too_many_arguments)]
fn sgemm(m: usize, k: usize, n: usize, a: &[f32], (rsa, csa): (usize, usize), b: &[f32], (rsb, csb): (usize, usize), beta: f32, c: &mut [f32], rsc: usize) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(a.len() > (m - 1) * rsa + k.saturating_sub(1) * csa || k == 0);
    debug_assert!(b.len() > k.saturating_sub(1) * rsb + (n - 1) * csb || k == 0);
    debug_assert!(c.len() >= (m - 1) * rsc + n);
    // SAFETY: the strides and shapes address only elements inside the slices (checked above in
    // debug builds; every caller passes buffers sized for exactly these shapes).
    unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa as isize, csa as isize, b.as_ptr(), rsb as isize, csb as isize, beta, c.as_mut_ptr(), rsc as isize, 1) }
}

/// Mean softmax cross-entropy plus `alpha/(2n) |W|²` (the intercepts are not penalised): the
/// summed loss with an L2 weight of `alpha`, divided by n so that the solver's tolerances mean
/// the same at 200 rows and at 1M. Parameters: class-major weights (`classes × dim`), then the
/// intercepts.
struct Problem<'a> {
    x: Design<'a>,
    y: &'a [usize],
    k: usize,
    alpha: f32,
    /// The last point evaluated, with its cost and gradient.
    cache: Mutex<Option<(Vec<f32>, f32, Vec<f32>)>>,
}

impl Problem<'_> {
    /// Loss and gradient in one pass over the rows.
    fn evaluate(&self, p: &[f32]) -> (f32, Vec<f32>) {
        if let Some((at, cost, grad)) = self.cache.lock().ok().and_then(|c| c.clone()) {
            if at == p {
                return (cost, grad);
            }
        }
        let (k, dim, n) = (self.k, self.x.dim, self.y.len());
        let size = p.len();
        let w = &p[..k * dim];
        let bias = &p[k * dim..];
        let (loss, mut g) = (0..n.div_ceil(BLOCK))
            .into_par_iter()
            .fold(
                || (0f64, vec![0f32; size], Vec::new(), Vec::new()),
                |(mut loss, mut g, mut xb, mut z), b| {
                    let (start, end) = (b * BLOCK, ((b + 1) * BLOCK).min(n));
                    let m = end - start;
                    self.x.block_into(start, end, &mut xb);
                    z.resize(m * k, 0.0);
                    // Logits: X (m × dim) · Wᵀ (dim × k).
                    sgemm(m, dim, k, &xb, (dim, 1), w, (1, dim), 0.0, &mut z, k);
                    for (i, zr) in z.chunks_exact_mut(k).enumerate() {
                        zr.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                        let max = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let sum: f32 = zr.iter().map(|v| (v - max).exp()).sum();
                        let label = self.y[start + i];
                        loss += (max + sum.ln() - zr[label]) as f64;
                        // Softmax minus the one-hot label: the gradient of the logits.
                        for v in zr.iter_mut() {
                            *v = (*v - max).exp() / sum;
                        }
                        zr[label] -= 1.0;
                        g[k * dim..].iter_mut().zip(zr.iter()).for_each(|(gb, e)| *gb += e);
                    }
                    // Gradient: Eᵀ (k × m) · X (m × dim), accumulated.
                    sgemm(k, m, dim, &z, (1, k), &xb, (dim, 1), 1.0, &mut g[..k * dim], dim);
                    (loss, g, xb, z)
                },
            )
            .map(|(loss, g, _, _)| (loss, g))
            .reduce(
                || (0f64, vec![0f32; size]),
                |(la, mut ga), (lb, gb)| {
                    ga.iter_mut().zip(&gb).for_each(|(x, y)| *x += y);
                    (la + lb, ga)
                },
            );
        let inv = 1.0 / n.max(1) as f32;
        let penalty = 0.5 * self.alpha as f64 * w.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>();
        let cost = ((loss + penalty) / n.max(1) as f64) as f32;
        g.iter_mut().for_each(|v| *v *= inv);
        for (gd, pd) in g[..k * dim].iter_mut().zip(w) {
            *gd += self.alpha * inv * pd;
        }
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((p.to_vec(), cost, g.clone()));
        }
        (cost, g)
    }
}

fn slice(param: &Array1<f32>) -> Result<&[f32], argmin::core::Error> {
    param.as_slice().ok_or_else(|| argmin::core::Error::msg("non-contiguous parameters"))
}

impl CostFunction for Problem<'_> {
    type Param = Array1<f32>;
    type Output = f32;

    fn cost(&self, param: &Array1<f32>) -> Result<f32, argmin::core::Error> {
        Ok(self.evaluate(slice(param)?).0)
    }
}

impl Gradient for Problem<'_> {
    type Param = Array1<f32>;
    type Gradient = Array1<f32>;

    fn gradient(&self, param: &Array1<f32>) -> Result<Array1<f32>, argmin::core::Error> {
        Ok(Array1::from_vec(self.evaluate(slice(param)?).1))
    }
}

/// The solver stops when the gradient of the mean loss is this small (scaled so that up to
/// 1,000 rows it equals a tolerance of 1e-4 on the summed loss, as the probe always had).
fn gradient_tolerance(n: usize) -> f32 {
    1e-4 / n.clamp(1, 1000) as f32
}

/// Fit on the rows of `x` with class indices `y` (one per design row) in `0..classes`. Classes
/// absent from `y` get a probability of ~0. `start` warm-starts the solver from a fitted model
/// of the same shape.
pub fn fit_from(x: &Design<'_>, y: &[usize], classes: usize, alpha: f64, start: Option<&Linear>) -> Result<Linear, String> {
    let n = y.len();
    let dim = x.dim;
    if n == 0 || x.len() != n {
        return Err(format!("{n} labels for {} feature rows", x.len()));
    }
    if y.iter().any(|&c| c >= classes) {
        return Err(format!("a class index is not below {classes}"));
    }
    let mut present = y.to_vec();
    present.sort_unstable();
    present.dedup();
    if present.len() < 2 {
        return Err("need examples of at least two classes".to_string());
    }
    let problem = Problem { x: *x, y, k: classes, alpha: alpha as f32, cache: Mutex::new(None) };
    let size = classes * (dim + 1);
    let mut init = vec![0f32; size];
    match start {
        Some(s) if s.dim == dim && s.classes == classes => {
            for c in 0..classes {
                for d in 0..dim {
                    init[c * dim + d] = s.weights[d * classes + c];
                }
            }
            init[classes * dim..].copy_from_slice(&s.intercept);
        }
        _ => {}
    }
    // Absent classes start (and, with no gradient towards them, stay) very unlikely.
    for c in 0..classes {
        if !present.contains(&c) {
            init[classes * dim + c] = -30.0;
        }
    }
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10).with_tolerance_grad(gradient_tolerance(n)).map_err(|e| e.to_string())?;
    let result = Executor::new(problem, solver).configure(|s| s.param(Array1::from_vec(init)).max_iters(100)).run().map_err(|e| format!("the solver failed: {e}"))?;
    let best = result.state.get_best_param().cloned().ok_or("the solver found no parameters")?;
    let p = best.to_vec();
    if p.iter().any(|v| !v.is_finite()) {
        return Err("the solver diverged (non-finite weights)".to_string());
    }
    let mut weights = vec![0f32; dim * classes];
    for c in 0..classes {
        for d in 0..dim {
            weights[d * classes + c] = p[c * dim + d];
        }
    }
    Ok(Linear { dim, classes, weights, intercept: p[classes * dim..].to_vec() })
}

/// [`fit_from`] a cold start.
pub fn fit(x: &Design<'_>, y: &[usize], classes: usize, alpha: f64) -> Result<Linear, String> {
    fit_from(x, y, classes, alpha, None)
}

/// Class probabilities (`n × classes`, row-major) of the rows of `x`, a block at a time across
/// all cores.
pub fn predict(model: &Linear, x: &Design<'_>) -> Vec<f32> {
    let (dim, k, n) = (model.dim, model.classes, x.len());
    let mut out = vec![0f32; n * k];
    out.par_chunks_mut(BLOCK * k).enumerate().for_each_init(Vec::new, |xb, (b, o)| {
        let (start, end) = (b * BLOCK, ((b + 1) * BLOCK).min(n));
        x.block_into(start, end, xb);
        // X (m × dim) · W (dim × k), W row-major.
        sgemm(end - start, dim, k, xb, (dim, 1), &model.weights, (k, 1), 0.0, o, k);
        for z in o.chunks_exact_mut(k) {
            z.iter_mut().zip(&model.intercept).for_each(|(v, b)| *v += b);
            softmax(z);
        }
    });
    out
}

fn softmax(z: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

/// Stratified fold of each row: each class's rows, in a seeded shuffle, dealt round-robin.
pub fn stratified_folds(y: &[usize], folds: usize, seed: u64) -> Vec<usize> {
    let mut fold = vec![0; y.len()];
    let mut dealt = std::collections::HashMap::new();
    for i in shuffled(y.len(), seed) {
        let c = dealt.entry(y[i]).or_insert(0usize);
        fold[i] = *c % folds;
        *c += 1;
    }
    fold
}

fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = crate::SplitMix(seed);
    let mut order: Vec<(u64, usize)> = (0..n).map(|i| (rng.next_u64(), i)).collect();
    order.sort_unstable();
    order.into_iter().map(|(_, i)| i).collect()
}

/// About `size` of the rows, each class in proportion but with at least `floor` rows (or all
/// of a class that has fewer), in ascending order.
pub fn stratified_sample(y: &[usize], size: usize, floor: usize, seed: u64) -> Vec<usize> {
    let frac = size as f64 / y.len().max(1) as f64;
    let mut count = std::collections::HashMap::new();
    for &c in y {
        *count.entry(c).or_insert(0usize) += 1;
    }
    let mut left: std::collections::HashMap<usize, usize> = count.iter().map(|(&c, &n)| (c, ((n as f64 * frac).round() as usize).max(floor).min(n))).collect();
    let mut pick: Vec<usize> = shuffled(y.len(), seed)
        .into_iter()
        .filter(|&i| {
            let l = left.get_mut(&y[i]).expect("every class counted");
            let take = *l > 0;
            *l = l.saturating_sub(1);
            take
        })
        .collect();
    pick.sort_unstable();
    pick
}

/// Cross-validation chooses the regularisation strength on at most this many rows; beyond it,
/// the strength is chosen on a stratified sample, and only the out-of-fold fits see every row.
pub const CV_SAMPLE: usize = 20_000;

/// The result of cross-validating a grid of regularisation strengths.
#[derive(Debug, Clone)]
pub struct CrossValidation {
    pub alpha: f64,
    /// Mean held-out log loss per alpha, in grid order.
    pub log_loss: Vec<f64>,
    /// Held-out accuracy at the chosen alpha, over every row.
    pub accuracy: f64,
    /// Out-of-fold probabilities at the chosen alpha (`n × classes`).
    pub oof: Vec<f32>,
    /// When the alpha was chosen on a sample: its size.
    pub sample: Option<usize>,
}

/// k-fold cross-validation over `alphas`: the alpha with the lowest held-out log loss, and the
/// out-of-fold probabilities it gives for every row. Beyond [`CV_SAMPLE`] rows the alpha is
/// chosen on a stratified sample, then each fold is fitted on all its rows at that alpha,
/// warm-started from a fit on the sample.
pub fn cross_validate(x: &Design<'_>, y: &[usize], classes: usize, alphas: &[f64], folds: usize, seed: u64) -> Result<CrossValidation, String> {
    let n = y.len();
    if x.len() != n {
        return Err(format!("{n} labels for {} feature rows", x.len()));
    }
    if n <= CV_SAMPLE {
        return grid(x, y, classes, alphas, folds, seed, None);
    }
    let pick = stratified_sample(y, CV_SAMPLE, 2 * folds, seed);
    let rows: Vec<u32> = pick.iter().map(|&i| x.row_id(i) as u32).collect();
    let ys: Vec<usize> = pick.iter().map(|&i| y[i]).collect();
    let sample = x.with_rows(&rows);
    let chosen =
        if alphas.len() > 1 { grid(&sample, &ys, classes, alphas, folds, seed, None)? } else { CrossValidation { alpha: alphas[0], log_loss: vec![], accuracy: f64::NAN, oof: vec![], sample: None } };
    let start = fit(&sample, &ys, classes, chosen.alpha)?;
    let full = grid(x, y, classes, &[chosen.alpha], folds, seed, Some(&start))?;
    Ok(CrossValidation { alpha: chosen.alpha, log_loss: chosen.log_loss, accuracy: full.accuracy, oof: full.oof, sample: Some(rows.len()) })
}

/// Every (alpha, fold) fit, in parallel; the out-of-fold probabilities of the best alpha.
fn grid(x: &Design<'_>, y: &[usize], classes: usize, alphas: &[f64], folds: usize, seed: u64, start: Option<&Linear>) -> Result<CrossValidation, String> {
    let n = y.len();
    let fold = stratified_folds(y, folds, seed);
    let members = |f: usize, held_out: bool| -> Vec<usize> { (0..n).filter(|&i| (fold[i] == f) == held_out).collect() };
    let jobs: Vec<(usize, usize)> = (0..alphas.len()).flat_map(|a| (0..folds).map(move |f| (a, f))).collect();
    let results: Vec<Result<(usize, usize, Vec<f32>), String>> = jobs
        .par_iter()
        .map(|&(a, f)| {
            let train = members(f, false);
            let rows: Vec<u32> = train.iter().map(|&i| x.row_id(i) as u32).collect();
            let yt: Vec<usize> = train.iter().map(|&i| y[i]).collect();
            let model = fit_from(&x.with_rows(&rows), &yt, classes, alphas[a], start)?;
            let rows: Vec<u32> = members(f, true).iter().map(|&i| x.row_id(i) as u32).collect();
            Ok((a, f, predict(&model, &x.with_rows(&rows))))
        })
        .collect();
    let mut oof_by_alpha = vec![vec![0f32; n * classes]; alphas.len()];
    for r in results {
        let (a, f, probs) = r?;
        for (t, i) in members(f, true).into_iter().enumerate() {
            oof_by_alpha[a][i * classes..(i + 1) * classes].copy_from_slice(&probs[t * classes..(t + 1) * classes]);
        }
    }
    let log_loss: Vec<f64> = oof_by_alpha.iter().map(|p| (0..n).map(|i| -(p[i * classes + y[i]].max(1e-7) as f64).ln()).sum::<f64>() / n as f64).collect();
    let best = (0..alphas.len()).min_by(|&a, &b| log_loss[a].total_cmp(&log_loss[b])).unwrap_or(0);
    let oof = std::mem::take(&mut oof_by_alpha[best]);
    let correct = (0..n)
        .filter(|&i| {
            let row = &oof[i * classes..(i + 1) * classes];
            row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(c, _)| c) == Some(y[i])
        })
        .count();
    Ok(CrossValidation { alpha: alphas[best], log_loss, accuracy: correct as f64 / n as f64, oof, sample: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two Gaussian blobs in 8-d: the probe separates them, and cross-validation prefers some
    /// regularisation over none.
    #[test]
    fn separates_blobs_and_cross_validates() {
        let dim = 8;
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut s = 1u64;
        let mut noise = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        for i in 0..200 {
            let c = i % 2;
            for d in 0..dim {
                let centre = if d == 0 {
                    if c == 0 {
                        1.0
                    } else {
                        -1.0
                    }
                } else {
                    0.0
                };
                x.push(centre + noise());
            }
            y.push(c);
        }
        let d = Design::dense(&x, dim);
        let model = fit(&d, &y, 3, 1.0).expect("fits");
        let p = predict(&model, &d);
        let correct = (0..200).filter(|&i| (p[i * 3 + 1] > p[i * 3]) == (y[i] == 1)).count();
        assert!(correct >= 195, "{correct}/200");
        assert!(p[2] < 1e-6, "an absent class gets ~0: {}", p[2]);
        let cv = cross_validate(&d, &y, 2, &[0.01, 1.0, 100.0], 5, 7).expect("cv");
        assert!(cv.accuracy > 0.95, "{cv:?}");
        assert_eq!(cv.oof.len(), 400);
        assert_eq!(cv.sample, None);
        let folds = stratified_folds(&y, 5, 7);
        for f in 0..5 {
            let n = folds.iter().filter(|&&g| g == f).count();
            assert_eq!(n, 40, "fold {f} has {n} rows");
        }
    }

    /// Beyond `CV_SAMPLE` rows, alpha is chosen on a stratified sample and every row still gets
    /// an out-of-fold probability; a design over unit f16 rows and a subset scores exactly as
    /// the prepared f32 features of the same rows.
    #[test]
    fn samples_alpha_at_scale_and_reads_stored_rows() {
        let (dim, classes, n) = (6, 3, CV_SAMPLE + 7_000);
        let mut rng = crate::SplitMix(11);
        let mut raw = Vec::with_capacity(n * dim);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            // Class 2 is rare (1 row in 500), so a proportional sample alone would starve it.
            let c = if i % 500 == 0 { 2 } else { i % 2 };
            for d in 0..dim {
                raw.push(if d == c { 3.0 } else { 0.5 } + 0.8 * rng.gauss());
            }
            y.push(c);
        }
        let x = probe_features(&raw, dim);
        let cv = cross_validate(&Design::dense(&x, dim), &y, classes, &[0.1, 10.0], 3, 5).expect("cv");
        let sample = cv.sample.expect("sampled");
        assert!((CV_SAMPLE - 50..=CV_SAMPLE + 50).contains(&sample), "{sample}");
        assert_eq!(cv.oof.len(), n * classes);
        assert!(cv.oof.chunks(classes).all(|p| (p.iter().sum::<f32>() - 1.0).abs() < 1e-3), "every row has an out-of-fold distribution");
        assert!(cv.accuracy > 0.9, "{}", cv.accuracy);
        let rare: Vec<usize> = (0..n).filter(|&i| y[i] == 2).collect();
        let rare_hits = rare.iter().filter(|&&i| cv.oof[i * classes + 2] > 0.5).count();
        assert!(rare_hits * 2 > rare.len(), "the rare class is learnt: {rare_hits}/{}", rare.len());

        // Unit f16 rows with a shuffled subset, against the prepared rows gathered by hand.
        let unit: Vec<f32> = raw
            .chunks(dim)
            .flat_map(|v| {
                let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                v.iter().map(move |a| a / norm)
            })
            .collect();
        let stored = crate::knn::to_f16(&unit);
        let subset: Vec<u32> = (0..500u32).map(|i| (i * 37) % n as u32).collect();
        let model = fit(&Design::dense(&x, dim), &y, classes, 1.0).expect("fit");
        let from_store = predict(&model, &Design { matrix: Matrix::F16(&stored), dim, rows: Some(&subset), scale: Scale::Unit });
        let gathered: Vec<f32> = subset.iter().flat_map(|&r| x[r as usize * dim..(r as usize + 1) * dim].iter().copied()).collect();
        let direct = predict(&model, &Design::dense(&gathered, dim));
        let worst = from_store.iter().zip(&direct).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 5e-3, "f16 store rows score like f32 features: worst difference {worst}");
    }
}
