//! Linear probes on embeddings: L2-regularised multinomial logistic regression fitted with
//! argmin's L-BFGS, k-fold cross-validation of the regularisation strength, out-of-fold
//! probabilities, and fast scoring of large matrices.
//!
//! The loss and gradient are computed here, row by row across cores, rather than through a
//! general GEMM: with 2–12 classes a matrix product is really a batch of dot products, and
//! linfa-logistic (tried first) spent 80% of its time packing the feature matrix for
//! matrixmultiply (5.7 s to cross-validate 200 labels; see the probe benchmark).

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::Array1;
use rayon::prelude::*;

/// A fitted linear classifier over `dim` features and `classes` classes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Linear {
    pub dim: usize,
    pub classes: usize,
    /// `dim × classes`, row-major.
    pub weights: Vec<f32>,
    pub intercept: Vec<f32>,
}

/// Features for a probe: each vector scaled to length √dim, so that a feature's mean square
/// is about 1 whatever the embedding's scale, and one regularisation grid fits every model.
pub fn probe_features(data: &[f32], dim: usize) -> Vec<f32> {
    let scale = (dim as f32).sqrt();
    data.par_chunks(dim.max(1))
        .flat_map_iter(|v| {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let f = if norm > 0.0 { scale / norm } else { 0.0 };
            v.iter().map(move |x| x * f)
        })
        .collect()
}

/// Softmax cross-entropy summed over rows, plus `alpha/2 |W|²` (the intercepts are not
/// penalised). Parameters: class-major weights (`classes × dim`), then the intercepts.
struct Problem<'a> {
    x: &'a [f32],
    dim: usize,
    y: &'a [usize],
    k: usize,
    alpha: f32,
}

/// Rows per parallel task.
const ROWS: usize = 64;

impl Problem<'_> {
    fn logits(&self, p: &[f32], row: &[f32]) -> Vec<f32> {
        let w = self.k * self.dim;
        (0..self.k).map(|c| p[w + c] + dot(row, &p[c * self.dim..(c + 1) * self.dim])).collect()
    }

    fn penalty(&self, p: &[f32]) -> f32 {
        0.5 * self.alpha * p[..self.k * self.dim].iter().map(|v| v * v).sum::<f32>()
    }
}

impl CostFunction for Problem<'_> {
    type Param = Array1<f32>;
    type Output = f32;

    fn cost(&self, param: &Array1<f32>) -> Result<f32, argmin::core::Error> {
        let p = param.as_slice().ok_or_else(|| argmin::core::Error::msg("non-contiguous parameters"))?;
        let loss: f64 = self
            .x
            .par_chunks(self.dim * ROWS)
            .enumerate()
            .map(|(chunk, rows)| {
                rows.chunks(self.dim)
                    .enumerate()
                    .map(|(i, row)| {
                        let z = self.logits(p, row);
                        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
                        (lse - z[self.y[chunk * ROWS + i]]) as f64
                    })
                    .sum::<f64>()
            })
            .sum();
        Ok(loss as f32 + self.penalty(p))
    }
}

impl Gradient for Problem<'_> {
    type Param = Array1<f32>;
    type Gradient = Array1<f32>;

    fn gradient(&self, param: &Array1<f32>) -> Result<Array1<f32>, argmin::core::Error> {
        let p = param.as_slice().ok_or_else(|| argmin::core::Error::msg("non-contiguous parameters"))?;
        let (k, dim) = (self.k, self.dim);
        let size = p.len();
        let mut g = self
            .x
            .par_chunks(dim * ROWS)
            .enumerate()
            .map(|(chunk, rows)| {
                let mut g = vec![0f32; size];
                for (i, row) in rows.chunks(dim).enumerate() {
                    let mut z = self.logits(p, row);
                    softmax(&mut z);
                    z[self.y[chunk * ROWS + i]] -= 1.0;
                    for c in 0..k {
                        let e = z[c];
                        if e != 0.0 {
                            for (gd, xd) in g[c * dim..(c + 1) * dim].iter_mut().zip(row) {
                                *gd += e * xd;
                            }
                        }
                        g[k * dim + c] += e;
                    }
                }
                g
            })
            .reduce(
                || vec![0f32; size],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        for (gd, pd) in g[..k * dim].iter_mut().zip(&p[..k * dim]) {
            *gd += self.alpha * pd;
        }
        Ok(Array1::from_vec(g))
    }
}

/// Fit on rows `x` (`n × dim`, prepared by [`probe_features`]) with class indices `y` in
/// `0..classes`. Classes absent from `y` get a probability of ~0.
pub fn fit(x: &[f32], dim: usize, y: &[usize], classes: usize, alpha: f64) -> Result<Linear, String> {
    let n = y.len();
    if n == 0 || x.len() != n * dim {
        return Err(format!("{n} labels for {} feature values of width {dim}", x.len()));
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
    let problem = Problem { x, dim, y, k: classes, alpha: alpha as f32 };
    let size = classes * (dim + 1);
    let mut init = vec![0f32; size];
    // Absent classes start (and, with no gradient towards them, stay) very unlikely.
    for c in 0..classes {
        if !present.contains(&c) {
            init[classes * dim + c] = -30.0;
        }
    }
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10).with_tolerance_grad(1e-4).map_err(|e| e.to_string())?;
    let result = Executor::new(problem, solver)
        .configure(|s| s.param(Array1::from_vec(init)).max_iters(100))
        .run()
        .map_err(|e| format!("the solver failed: {e}"))?;
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

/// Class probabilities (`n × classes`, row-major) of the rows of `x` (prepared features),
/// across all cores.
pub fn predict(model: &Linear, x: &[f32]) -> Vec<f32> {
    predict_rows(model, x, false)
}

/// [`predict`] on raw embeddings: each row is scaled as [`probe_features`] would, on the fly,
/// so scoring a corpus needs no prepared copy of it.
pub fn predict_raw(model: &Linear, x: &[f32]) -> Vec<f32> {
    predict_rows(model, x, true)
}

fn predict_rows(model: &Linear, x: &[f32], scale: bool) -> Vec<f32> {
    let (dim, k) = (model.dim, model.classes);
    // Class-major weights, so each class is one contiguous dot product.
    let by_class: Vec<Vec<f32>> = (0..k).map(|c| (0..dim).map(|d| model.weights[d * k + c]).collect()).collect();
    let root = (dim as f32).sqrt();
    x.par_chunks(dim.max(1))
        .flat_map_iter(|row| {
            let f = if scale {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                if norm > 0.0 { root / norm } else { 0.0 }
            } else {
                1.0
            };
            let mut z: Vec<f32> = (0..k).map(|c| model.intercept[c] + f * dot(row, &by_class[c])).collect();
            softmax(&mut z);
            z
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums, so the compiler can vectorise without reassociating floats.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
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
    let mut rng = crate::SplitMix(seed);
    let mut order: Vec<(u64, usize)> = (0..y.len()).map(|i| (rng.next_u64(), i)).collect();
    order.sort_unstable();
    let mut fold = vec![0; y.len()];
    let mut dealt = std::collections::HashMap::new();
    for (_, i) in order {
        let c = dealt.entry(y[i]).or_insert(0usize);
        fold[i] = *c % folds;
        *c += 1;
    }
    fold
}

/// The result of cross-validating a grid of regularisation strengths.
#[derive(Debug, Clone)]
pub struct CrossValidation {
    pub alpha: f64,
    /// Mean held-out log loss per alpha, in grid order.
    pub log_loss: Vec<f64>,
    /// Held-out accuracy at the chosen alpha.
    pub accuracy: f64,
    /// Out-of-fold probabilities at the chosen alpha (`n × classes`).
    pub oof: Vec<f32>,
}

/// k-fold cross-validation over `alphas`: the alpha with the lowest held-out log loss, and the
/// out-of-fold probabilities it gives. Folds run in parallel.
pub fn cross_validate(x: &[f32], dim: usize, y: &[usize], classes: usize, alphas: &[f64], folds: usize, seed: u64) -> Result<CrossValidation, String> {
    let n = y.len();
    let fold = stratified_folds(y, folds, seed);
    let jobs: Vec<(usize, usize)> = (0..alphas.len()).flat_map(|a| (0..folds).map(move |f| (a, f))).collect();
    let results: Vec<Result<(usize, usize, Vec<f32>), String>> = jobs
        .par_iter()
        .map(|&(a, f)| {
            let train: Vec<usize> = (0..n).filter(|&i| fold[i] != f).collect();
            let test: Vec<usize> = (0..n).filter(|&i| fold[i] == f).collect();
            let xt: Vec<f32> = train.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
            let yt: Vec<usize> = train.iter().map(|&i| y[i]).collect();
            let model = fit(&xt, dim, &yt, classes, alphas[a])?;
            let xv: Vec<f32> = test.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
            Ok((a, f, predict(&model, &xv)))
        })
        .collect();
    let mut oof_by_alpha = vec![vec![0f32; n * classes]; alphas.len()];
    for r in results {
        let (a, f, probs) = r?;
        let test: Vec<usize> = (0..n).filter(|&i| fold[i] == f).collect();
        for (t, &i) in test.iter().enumerate() {
            oof_by_alpha[a][i * classes..(i + 1) * classes].copy_from_slice(&probs[t * classes..(t + 1) * classes]);
        }
    }
    let log_loss: Vec<f64> = oof_by_alpha
        .iter()
        .map(|p| (0..n).map(|i| -(p[i * classes + y[i]].max(1e-7) as f64).ln()).sum::<f64>() / n as f64)
        .collect();
    let best = (0..alphas.len()).min_by(|&a, &b| log_loss[a].total_cmp(&log_loss[b])).unwrap_or(0);
    let oof = std::mem::take(&mut oof_by_alpha[best]);
    let correct = (0..n)
        .filter(|&i| {
            let row = &oof[i * classes..(i + 1) * classes];
            row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(c, _)| c) == Some(y[i])
        })
        .count();
    Ok(CrossValidation { alpha: alphas[best], log_loss, accuracy: correct as f64 / n as f64, oof })
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
                let centre = if d == 0 { if c == 0 { 1.0 } else { -1.0 } } else { 0.0 };
                x.push(centre + noise());
            }
            y.push(c);
        }
        let model = fit(&x, dim, &y, 3, 1.0).expect("fits");
        let p = predict(&model, &x);
        let correct = (0..200).filter(|&i| (p[i * 3 + 1] > p[i * 3]) == (y[i] == 1)).count();
        assert!(correct >= 195, "{correct}/200");
        assert!(p[2] < 1e-6, "an absent class gets ~0: {}", p[2]);
        let cv = cross_validate(&x, dim, &y, 2, &[0.01, 1.0, 100.0], 5, 7).expect("cv");
        assert!(cv.accuracy > 0.95, "{cv:?}");
        assert_eq!(cv.oof.len(), 400);
        let folds = stratified_folds(&y, 5, 7);
        for f in 0..5 {
            let n = folds.iter().filter(|&&g| g == f).count();
            assert_eq!(n, 40, "fold {f} has {n} rows");
        }
    }
}
