//! Influence functions for a linear softmax head over frozen features (Koh and Liang, 2017),
//! computed exactly: the Hessian in (d + 1)·C dimensions is built with blocked matrix products,
//! factorised once (faer's Cholesky, in f64), and every training row is then scored for many
//! test gradients in one pass of one matrix product over the (memory-mapped) rows.
//!
//! **The objective.** A head θ₀ (class-major weights with the intercept as a last column) is
//! treated as the optimum of
//!
//! ```text
//! J(θ) = Σᵢ ℓᵢ(θ) − G₀ᵀ(θ − θ₀) + (α/2)|θ − θ₀|²,     G₀ = Σᵢ ∇ℓᵢ(θ₀)
//! ```
//!
//! over the training rows, where ℓᵢ is softmax cross-entropy. ∇J(θ₀) = 0 by construction, so
//! θ₀ is J's exact minimiser whoever trained it:
//! - for a probe fitted with an L2 weight α on this training set, J is the probe's own
//!   objective up to a constant (plus α/2 on the intercepts, which also damps softmax's flat
//!   "all intercepts + c" direction), and G₀ absorbs whatever the solver left unconverged;
//! - for a model's own last layer, read from its graph and trained on data curate never saw,
//!   the linear and quadratic terms summarise the rest of that training around θ₀ (a
//!   relative of Bae et al.'s proximal Bregman response function).
//!
//! Removing row i gives J − ℓᵢ, whose minimiser is, to first order, θ₀ + H⁻¹∇ℓᵢ(θ₀) with
//! H = Σᵢ∇²ℓᵢ(θ₀) + αI. The influence of row i on a test quantity f is what its presence adds:
//! `influence = f(θ) − f(θ without i) ≈ −∇fᵀ H⁻¹ ∇ℓᵢ`. Negative is harmful: removing the row
//! raises f. [`retrain`] minimises J without chosen rows (warm-started Newton iterations
//! preconditioned by the same factorisation), which is the check the predictions must pass.
//!
//! **The cost.** ∇ℓᵢ = rᵢ ⊗ x̃ᵢ with rᵢ = pᵢ − e_yᵢ and x̃ = [x; 1], so for v = H⁻¹∇f reshaped
//! to C rows, ∇fᵀH⁻¹∇ℓᵢ = Σ_c r_ic (v_c · x̃ᵢ). Since Σ_c r_ic = 0 only the C − 1 differences
//! v_c − v_C are needed: scoring Q test gradients is one product of the rows with
//! (C − 1)(Q + 1) columns (the extra C − 1 give the training rows' own probabilities). Building
//! H costs C(C + 1)/2 products of (d + 1) × n × (d + 1); beyond [`HESSIAN_SAMPLE`] rows it is
//! built from a sample and scaled.

use faer::linalg::solvers::{Llt, Solve};
use faer::{Mat, Par, Side};
use rayon::prelude::*;

use crate::probe::{Design, Linear};

/// A linear softmax head in f64: `theta[c·(dim+1) + j]` is class c's weight on feature j, and
/// `j = dim` its intercept.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub dim: usize,
    pub classes: usize,
    pub theta: Vec<f64>,
}

impl Head {
    pub fn from_linear(l: &Linear) -> Head {
        let d1 = l.dim + 1;
        let mut theta = vec![0f64; l.classes * d1];
        for c in 0..l.classes {
            for j in 0..l.dim {
                theta[c * d1 + j] = l.weights[j * l.classes + c] as f64;
            }
            theta[c * d1 + l.dim] = l.intercept[c] as f64;
        }
        Head { dim: l.dim, classes: l.classes, theta }
    }

    pub fn to_linear(&self) -> Linear {
        let d1 = self.dim + 1;
        let mut weights = vec![0f32; self.dim * self.classes];
        for c in 0..self.classes {
            for j in 0..self.dim {
                weights[j * self.classes + c] = self.theta[c * d1 + j] as f32;
            }
        }
        let intercept = (0..self.classes).map(|c| self.theta[c * d1 + self.dim] as f32).collect();
        Linear { dim: self.dim, classes: self.classes, weights, intercept }
    }

    /// Parameters: (dim + 1) × classes.
    pub fn size(&self) -> usize {
        (self.dim + 1) * self.classes
    }

    /// Logits of one feature row.
    pub fn logits(&self, x: &[f32]) -> Vec<f64> {
        let d1 = self.dim + 1;
        (0..self.classes)
            .map(|c| {
                let w = &self.theta[c * d1..(c + 1) * d1];
                w[..self.dim].iter().zip(x).map(|(a, b)| a * *b as f64).sum::<f64>() + w[self.dim]
            })
            .collect()
    }
}

/// Softmax in place (f64).
fn softmax(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    z.iter_mut().for_each(|v| *v /= sum);
}

/// What the influence explains for one test row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// The labelled class's logit minus the best other class's: negative when the prediction
    /// is wrong.
    Margin,
    /// The negated cross-entropy loss (so that, as for the margin, higher is better).
    Loss,
}

/// A test row's value of `objective` and its gradient (length `head.size()`). For the margin,
/// the competing class is the best other class at θ₀ and stays fixed.
pub fn test_gradient(head: &Head, x: &[f32], label: usize, objective: Objective) -> (f64, Vec<f64>) {
    let (d1, k) = (head.dim + 1, head.classes);
    let z = head.logits(x);
    let mut coef = vec![0f64; k];
    let value = match objective {
        Objective::Margin => {
            let other = (0..k).filter(|&c| c != label).max_by(|&a, &b| z[a].total_cmp(&z[b])).unwrap_or(label);
            coef[label] += 1.0;
            coef[other] -= 1.0;
            z[label] - z[other]
        }
        Objective::Loss => {
            let mut p = z.clone();
            softmax(&mut p);
            for c in 0..k {
                coef[c] = if c == label { 1.0 } else { 0.0 } - p[c];
            }
            p[label].max(1e-300).ln()
        }
    };
    let mut g = vec![0f64; k * d1];
    for c in 0..k {
        if coef[c] != 0.0 {
            for j in 0..head.dim {
                g[c * d1 + j] = coef[c] * x[j] as f64;
            }
            g[c * d1 + head.dim] = coef[c];
        }
    }
    (value, g)
}

/// The value of `objective` for a test row under `head` (the competing class re-chosen).
pub fn objective_value(head: &Head, x: &[f32], label: usize, objective: Objective) -> f64 {
    test_gradient(head, x, label, objective).0
}

/// Beyond this many training rows the Hessian is built from a stratified sample and scaled.
pub const HESSIAN_SAMPLE: usize = 50_000;

/// Rows converted per step of the Hessian build.
const CHUNK: usize = 2048;

/// Rows per block in the scoring and gradient passes.
const BLOCK: usize = 512;

/// Design rows `start..end` as f32 features with a trailing 1, `(end - start) × (dim + 1)`.
fn block_with_one(x: &Design<'_>, start: usize, end: usize, raw: &mut Vec<f32>, out: &mut Vec<f32>) {
    let (dim, d1) = (x.dim, x.dim + 1);
    x.block_into(start, end, raw);
    out.resize((end - start) * d1, 0.0);
    for (o, r) in out.chunks_exact_mut(d1).zip(raw.chunks_exact(dim.max(1))) {
        o[..dim].copy_from_slice(&r[..dim]);
        o[dim] = 1.0;
    }
}

/// `c (m×n) = beta·c + a (m×k) · b (k×n)` with explicit (row, column) strides.
#[allow(clippy::too_many_arguments)]
fn sgemm(m: usize, k: usize, n: usize, a: &[f32], (rsa, csa): (usize, usize), b: &[f32], (rsb, csb): (usize, usize), beta: f32, c: &mut [f32], rsc: usize) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(a.len() > (m - 1) * rsa + (k - 1) * csa && b.len() > (k - 1) * rsb + (n - 1) * csb && c.len() >= (m - 1) * rsc + n);
    // SAFETY: the assertion above keeps every addressed element inside the slices.
    unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa as isize, csa as isize, b.as_ptr(), rsb as isize, csb as isize, beta, c.as_mut_ptr(), rsc as isize, 1) }
}

/// `c (m×n) = beta·c + a (m×k) · b (k×n)` in f64.
#[allow(clippy::too_many_arguments)]
fn dgemm(m: usize, k: usize, n: usize, a: &[f64], (rsa, csa): (usize, usize), b: &[f64], (rsb, csb): (usize, usize), beta: f64, c: &mut [f64], rsc: usize) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(a.len() > (m - 1) * rsa + (k - 1) * csa && b.len() > (k - 1) * rsb + (n - 1) * csb && c.len() >= (m - 1) * rsc + n);
    // SAFETY: as in `sgemm`.
    unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a.as_ptr(), rsa as isize, csa as isize, b.as_ptr(), rsb as isize, csb as isize, beta, c.as_mut_ptr(), rsc as isize, 1) }
}

/// The factorised Hessian of a head's objective.
pub struct Factor {
    pub dim: usize,
    pub classes: usize,
    /// The L2 weight of the anchor (and the Hessian's ridge).
    pub alpha: f64,
    /// Extra ridge added because the Hessian was not numerically positive definite.
    pub damping: f64,
    /// Training rows the objective sums over.
    pub rows: usize,
    /// When the curvature was measured on a sample: its size.
    pub sample: Option<usize>,
    /// Σᵢ∇ℓᵢ(θ₀) over every training row (the anchor's linear term).
    pub g0: Vec<f64>,
    /// Seconds spent building the Hessian, then factorising it.
    pub seconds: (f64, f64),
    llt: Llt<f64>,
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factor").field("dim", &self.dim).field("classes", &self.classes).field("alpha", &self.alpha).field("damping", &self.damping).field("rows", &self.rows).field("sample", &self.sample).finish()
    }
}

impl Factor {
    pub fn size(&self) -> usize {
        (self.dim + 1) * self.classes
    }

    /// `H⁻¹ g` for each of `grads` (each `size()` long).
    pub fn solve(&self, grads: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let n = self.size();
        if grads.is_empty() {
            return vec![];
        }
        let mut rhs = Mat::<f64>::from_fn(n, grads.len(), |i, j| grads[j][i]);
        self.llt.solve_in_place(rhs.as_mut());
        (0..grads.len()).map(|j| (0..n).map(|i| rhs[(i, j)]).collect()).collect()
    }
}

/// Σᵢ ℓᵢ(θ) and Σᵢ ∇ℓᵢ(θ) over the design rows whose `keep` is true (all when `None`), in
/// f64 throughout: the retraining checks compare differences far smaller than the loss.
pub fn loss_and_gradient(theta: &[f64], x: &Design<'_>, y: &[usize], classes: usize, keep: Option<&[bool]>) -> (f64, Vec<f64>) {
    let (dim, d1, k, n) = (x.dim, x.dim + 1, classes, y.len());
    let size = k * d1;
    (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .fold(
            || (0f64, vec![0f64; size], Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |(mut loss, mut g, mut raw, mut xb, mut xd, mut z), b| {
                let (start, end) = (b * BLOCK, ((b + 1) * BLOCK).min(n));
                let m = end - start;
                block_with_one(x, start, end, &mut raw, &mut xb);
                xd.clear();
                xd.extend(xb.iter().map(|&v| v as f64));
                z.resize(m * k, 0.0);
                // Logits: X̃ (m × d1) · Θᵀ (d1 × k).
                dgemm(m, d1, k, &xd, (d1, 1), theta, (1, d1), 0.0, &mut z, k);
                for (i, zr) in z.chunks_exact_mut(k).enumerate() {
                    let row = start + i;
                    if keep.is_some_and(|kp| !kp[row]) {
                        zr.iter_mut().for_each(|v| *v = 0.0);
                        continue;
                    }
                    let max = zr.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = zr.iter().map(|v| (v - max).exp()).sum();
                    loss += max + sum.ln() - zr[y[row]];
                    for v in zr.iter_mut() {
                        *v = (*v - max).exp() / sum;
                    }
                    zr[y[row]] -= 1.0;
                }
                // Gradient: Rᵀ (k × m) · X̃ (m × d1).
                dgemm(k, m, d1, &z, (1, k), &xd, (d1, 1), 1.0, &mut g, d1);
                let _ = dim;
                (loss, g, raw, xb, xd, z)
            },
        )
        .map(|(l, g, ..)| (l, g))
        .reduce(
            || (0f64, vec![0f64; size]),
            |(la, mut ga), (lb, gb)| {
                ga.iter_mut().zip(&gb).for_each(|(a, b)| *a += b);
                (la + lb, ga)
            },
        )
}

/// Build and factorise the Hessian of `head`'s objective over the design rows: the curvature
/// Σᵢ (diag pᵢ − pᵢpᵢᵀ) ⊗ x̃ᵢx̃ᵢᵀ, from `sample` (design indices, scaled by rows/sample) or all
/// rows, plus `alpha` on the diagonal. Without `alpha`, the ridge is the curvature's mean
/// diagonal (for a head trained elsewhere: its other training weighs about as much as these
/// rows, spread evenly).
pub fn factor(head: &Head, x: &Design<'_>, y: &[usize], alpha: Option<f64>, sample: Option<&[usize]>) -> Result<Factor, String> {
    let (dim, d1, k, n) = (head.dim, head.dim + 1, head.classes, y.len());
    if x.dim != dim {
        return Err(format!("the head takes {dim} features, the rows have {}", x.dim));
    }
    if x.len() != n || n == 0 {
        return Err(format!("{n} labels for {} training rows", x.len()));
    }
    if let Some(a) = alpha.filter(|a| *a < 0.0 || !a.is_finite()) {
        return Err(format!("the regularisation must be a finite non-negative number, not {a}"));
    }
    let started = std::time::Instant::now();
    let (_, g0) = loss_and_gradient(&head.theta, x, y, k, None);
    let sample_rows: Option<Vec<u32>> = sample.map(|s| s.iter().map(|&i| x.row_id(i) as u32).collect());
    let xs = match &sample_rows {
        Some(r) => x.with_rows(r),
        None => *x,
    };
    let m_total = xs.len();
    let scale = n as f64 / m_total.max(1) as f64;
    // One job per (class pair c ≤ c', slice of output columns), each with an f64 accumulator.
    let pairs: Vec<(usize, usize)> = (0..k).flat_map(|a| (a..k).map(move |b| (a, b))).collect();
    let splits = (8usize.div_ceil(pairs.len())).clamp(1, 8).min(d1);
    let cuts: Vec<(usize, usize)> = (0..splits).map(|s| (s * d1 / splits, (s + 1) * d1 / splits)).collect();
    let jobs: Vec<((usize, usize), (usize, usize))> = pairs.iter().flat_map(|&p| cuts.iter().map(move |&c| (p, c))).collect();
    let mut acc: Vec<Vec<f64>> = jobs.iter().map(|(_, (lo, hi))| vec![0f64; d1 * (hi - lo)]).collect();
    let (mut raw, mut xb) = (Vec::new(), Vec::new());
    let theta32: Vec<f32> = head.theta.iter().map(|&v| v as f32).collect();
    let mut p = Vec::new();
    for start in (0..m_total).step_by(CHUNK) {
        let end = (start + CHUNK).min(m_total);
        let m = end - start;
        block_with_one(&xs, start, end, &mut raw, &mut xb);
        p.resize(m * k, 0f32);
        sgemm(m, d1, k, &xb, (d1, 1), &theta32, (1, d1), 0.0, &mut p, k);
        for row in p.chunks_exact_mut(k) {
            let mut z: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            softmax(&mut z);
            row.iter_mut().zip(&z).for_each(|(o, v)| *o = *v as f32);
        }
        let (xb, p) = (&xb, &p);
        acc.par_iter_mut().zip(&jobs).for_each_init(
            || (Vec::new(), Vec::new()),
            |(yb, out), (a, &((c, c2), (lo, hi)))| {
                // Y = diag(a) X̃ with aᵢ = δ p_c − p_c p_c'; the block is Yᵀ X̃[:, lo..hi].
                yb.resize(m * d1, 0f32);
                for i in 0..m {
                    let (pc, pc2) = (p[i * k + c], p[i * k + c2]);
                    let w = if c == c2 { pc - pc * pc } else { -pc * pc2 };
                    for (o, v) in yb[i * d1..(i + 1) * d1].iter_mut().zip(&xb[i * d1..(i + 1) * d1]) {
                        *o = w * v;
                    }
                }
                let cols = hi - lo;
                out.resize(d1 * cols, 0f32);
                sgemm(d1, m, cols, yb, (1, d1), &xb[lo..], (d1, 1), 0.0, out, cols);
                a.iter_mut().zip(out.iter()).for_each(|(s, v)| *s += *v as f64);
            },
        );
    }
    let size = k * d1;
    let mut h = Mat::<f64>::zeros(size, size);
    for (a, &((c, c2), (lo, hi))) in acc.iter().zip(&jobs) {
        let cols = hi - lo;
        for r in 0..d1 {
            for (t, j) in (lo..hi).enumerate() {
                let v = a[r * cols + t] * scale;
                h[(c * d1 + r, c2 * d1 + j)] = v;
                h[(c2 * d1 + j, c * d1 + r)] = v;
            }
        }
    }
    drop(acc);
    let built = started.elapsed().as_secs_f64();
    let mean_diag = (0..size).map(|i| h[(i, i)]).sum::<f64>() / size as f64;
    let alpha = alpha.unwrap_or(mean_diag);
    let mut damping = if alpha < 1e-8 * mean_diag { 1e-8 * mean_diag.max(1e-12) } else { 0.0 };
    loop {
        let mut hd = h.clone();
        for i in 0..size {
            hd[(i, i)] += alpha + damping;
        }
        match hd.llt(Side::Lower) {
            Ok(llt) => {
                let seconds = (built, started.elapsed().as_secs_f64() - built);
                return Ok(Factor { dim, classes: k, alpha, damping, rows: n, sample: sample.map(<[usize]>::len), g0, seconds, llt });
            }
            Err(_) if damping < mean_diag => damping = (damping * 10.0).max(1e-8 * mean_diag.max(1e-12)),
            Err(_) => return Err("the Hessian is not positive definite even with damping".to_string()),
        }
    }
}

/// How to rank the training rows for each test gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Most negative influence first.
    Harmful,
    /// Most positive first.
    Helpful,
    /// Largest magnitude first.
    Both,
}

/// Directions for [`score`]: `H⁻¹∇f` per test gradient (exact influence), or `∇f/α` with the
/// intercept part dropped (representer values, Yeh et al. 2018: the exact decomposition of a
/// head fitted with an L2 weight α).
pub fn representer_directions(grads: &[Vec<f64>], dim: usize, alpha: f64) -> Vec<Vec<f64>> {
    let d1 = dim + 1;
    grads
        .iter()
        .map(|g| g.iter().enumerate().map(|(i, v)| if i % d1 == dim { 0.0 } else { v / alpha }).collect())
        .collect()
}

/// For each direction v (a `size()`-long vector), each training row's influence
/// `−Σ_c r_ic (v_c · x̃ᵢ)` with `rᵢ = pᵢ − e_yᵢ` under `head`: one pass of one matrix product over
/// the rows. Returns, per direction, the best `k` as (design index, influence) by `rank`, or
/// every row in design order when `k` is `None`.
pub fn score(head: &Head, x: &Design<'_>, y: &[usize], directions: &[Vec<f64>], k: Option<usize>, rank: Rank) -> Vec<Vec<(u32, f32)>> {
    let (d1, c, n, q) = (head.dim + 1, head.classes, y.len(), directions.len());
    let cm = c - 1;
    let cols = cm * (q + 1);
    // B (d1 × cols), row-major: logit differences, then each direction's class differences.
    let mut b = vec![0f32; d1 * cols];
    let mut put = |col: usize, v: &[f64], a: usize| {
        for j in 0..d1 {
            b[j * cols + col] = (v[a * d1 + j] - v[cm * d1 + j]) as f32;
        }
    };
    for a in 0..cm {
        put(a, &head.theta, a);
    }
    for (t, v) in directions.iter().enumerate() {
        for a in 0..cm {
            put(cm * (t + 1) + a, v, a);
        }
    }
    let block = if q >= 32 { 1024 } else { BLOCK };
    let keep_all = k.is_none();
    let key = move |v: f32| match rank {
        Rank::Harmful => -v,
        Rank::Helpful => v,
        Rank::Both => v.abs(),
    };
    let parts: Vec<(usize, Vec<f32>, Vec<crate::knn::TopK>)> = (0..n.div_ceil(block))
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(raw, xb, out), bi| {
                let (start, end) = (bi * block, ((bi + 1) * block).min(n));
                let m = end - start;
                block_with_one(x, start, end, raw, xb);
                out.resize(m * cols, 0f32);
                sgemm(m, d1, cols, xb, (d1, 1), &b, (cols, 1), 0.0, out, cols);
                let mut all = if keep_all { vec![0f32; m * q] } else { vec![] };
                let mut tops: Vec<crate::knn::TopK> = if keep_all { vec![] } else { vec![crate::knn::TopK::new(k.unwrap_or(0)); q] };
                let mut r = vec![0f32; c];
                for i in 0..m {
                    let o = &out[i * cols..(i + 1) * cols];
                    // Probabilities from the logit differences (the last class at 0).
                    let max = o[..cm].iter().copied().fold(0f32, f32::max);
                    let mut sum = (-max).exp();
                    for a in 0..cm {
                        r[a] = (o[a] - max).exp();
                        sum += r[a];
                    }
                    for a in 0..cm {
                        r[a] /= sum;
                    }
                    let label = y[start + i];
                    if label < cm {
                        r[label] -= 1.0;
                    }
                    for t in 0..q {
                        let s: f32 = -(0..cm).map(|a| r[a] * o[cm * (t + 1) + a]).sum::<f32>();
                        if keep_all {
                            all[i * q + t] = s;
                        } else {
                            tops[t].push(key(s), (start + i) as u32);
                        }
                    }
                }
                (start, all, tops)
            },
        )
        .collect();
    if keep_all {
        let mut res = vec![vec![(0u32, 0f32); n]; q];
        for (start, all, _) in parts {
            for (i, row) in all.chunks_exact(q.max(1)).enumerate() {
                for t in 0..q {
                    res[t][start + i] = ((start + i) as u32, row[t]);
                }
            }
        }
        return res;
    }
    let mut tops = vec![crate::knn::TopK::new(k.unwrap_or(0)); q];
    for (_, _, part) in parts {
        for (t, p) in part.into_iter().enumerate() {
            tops[t].merge(p);
        }
    }
    let sorted: Vec<Vec<(u32, f32)>> = tops.into_iter().map(|t| t.into_sorted()).collect();
    match rank {
        Rank::Helpful => return sorted,
        Rank::Harmful => return sorted.into_iter().map(|v| v.into_iter().map(|(r, s)| (r, -s)).collect()).collect(),
        Rank::Both => {}
    }
    // Magnitudes were ranked; recover the signs with one product over the chosen rows.
    sorted
        .into_iter()
        .enumerate()
        .map(|(t, best)| {
            let rows: Vec<u32> = best.iter().map(|&(r, _)| x.row_id(r as usize) as u32).collect();
            let ys: Vec<usize> = best.iter().map(|&(r, _)| y[r as usize]).collect();
            let signed = score(head, &x.with_rows(&rows), &ys, &directions[t..t + 1], None, Rank::Helpful);
            best.iter().zip(&signed[0]).map(|(&(r, _), &(_, s))| (r, s)).collect()
        })
        .collect()
}

/// Self-influence of every training row, ∇ℓᵢᵀ H⁻¹ ∇ℓᵢ = |L⁻¹∇ℓᵢ|² with H = LLᵀ: how much each
/// row's own loss depends on its presence. Mislabelled rows stand out. Costs rows × size².
pub fn self_influence(head: &Head, factor: &Factor, x: &Design<'_>, y: &[usize]) -> Vec<f64> {
    let (dim, d1, c, n) = (head.dim, head.dim + 1, head.classes, y.len());
    let size = c * d1;
    let l = factor.llt.L();
    let step = 256;
    let mut out = Vec::with_capacity(n);
    let (mut raw, mut xb) = (Vec::new(), Vec::new());
    for start in (0..n).step_by(step) {
        let end = (start + step).min(n);
        let m = end - start;
        block_with_one(x, start, end, &mut raw, &mut xb);
        let mut g = Mat::<f64>::zeros(size, m);
        for i in 0..m {
            let xr = &xb[i * d1..(i + 1) * d1];
            let mut p = head.logits(&xr[..dim]);
            softmax(&mut p);
            p[y[start + i]] -= 1.0;
            for a in 0..c {
                if p[a] != 0.0 {
                    for j in 0..d1 {
                        g[(a * d1 + j, i)] = p[a] * xr[j] as f64;
                    }
                }
            }
        }
        faer::linalg::triangular_solve::solve_lower_triangular_in_place(l, g.as_mut(), Par::rayon(0));
        for i in 0..m {
            out.push((0..size).map(|r| g[(r, i)] * g[(r, i)]).sum());
        }
    }
    out
}

/// The head that minimises the objective without the rows whose `keep` is false: Newton
/// iterations from θ₀ preconditioned by `factor` (the full objective's Hessian), with a
/// backtracking line search, until the Newton decrement vanishes. Returns it and the
/// iterations taken.
pub fn retrain(head: &Head, factor: &Factor, x: &Design<'_>, y: &[usize], keep: &[bool]) -> Result<(Head, usize), String> {
    let (k, alpha) = (head.classes, factor.alpha);
    if keep.len() != y.len() {
        return Err(format!("{} keep flags for {} rows", keep.len(), y.len()));
    }
    let theta0 = &head.theta;
    let objective = |theta: &[f64]| -> (f64, Vec<f64>) {
        let (loss, mut g) = loss_and_gradient(theta, x, y, k, Some(keep));
        let mut j = loss;
        for i in 0..theta.len() {
            let d = theta[i] - theta0[i];
            j += -factor.g0[i] * d + 0.5 * alpha * d * d;
            g[i] += -factor.g0[i] + alpha * d;
        }
        (j, g)
    };
    let kept = keep.iter().filter(|&&b| b).count().max(1);
    let mut theta = theta0.clone();
    let (mut j, mut g) = objective(&theta);
    let mut first = (y.len() as f64 / kept as f64).clamp(1.0, 4.0);
    for it in 1..=200 {
        let step = factor.solve(std::slice::from_ref(&g)).remove(0);
        let decrement: f64 = g.iter().zip(&step).map(|(a, b)| a * b).sum();
        if !decrement.is_finite() {
            return Err("retraining diverged".to_string());
        }
        // The decrement is about twice the distance to the optimum in objective value: stop
        // when that is at the level of f64 rounding in the summed loss.
        if decrement <= 1e-14 * (1.0 + j.abs()) {
            return Ok((Head { theta, ..head.clone() }, it - 1));
        }
        let mut t = first;
        let mut accepted = None;
        for _ in 0..40 {
            let cand: Vec<f64> = theta.iter().zip(&step).map(|(a, b)| a - t * b).collect();
            let (jc, gc) = objective(&cand);
            if jc < j && jc <= j - 1e-4 * t * decrement {
                accepted = Some((cand, jc, gc));
                break;
            }
            t *= 0.5;
        }
        match accepted {
            Some((cand, jc, gc)) => {
                // Longer first steps while full ones are accepted (subsets have less curvature).
                first = if t >= first { (first * 1.5).min(4.0) } else { t.max(1.0) };
                theta = cand;
                j = jc;
                g = gc;
            }
            // No decrease left to find at f64 precision: converged.
            None => return Ok((Head { theta, ..head.clone() }, it)),
        }
    }
    Ok((Head { theta, ..head.clone() }, 200))
}

/// KNN-Shapley values (Jia et al., 2019, closed form) of training rows for one test row under
/// a k-nearest-neighbour classifier: `matches[i]` says whether the i-th nearest training row
/// (nearest first, every row) has the test row's label. Returns values in the same order.
pub fn knn_shapley(matches: &[bool], k: usize) -> Vec<f64> {
    let n = matches.len();
    let mut s = vec![0f64; n];
    if n == 0 {
        return s;
    }
    let ind = |b: bool| if b { 1.0 } else { 0.0 };
    s[n - 1] = ind(matches[n - 1]) / n as f64;
    for i in (0..n - 1).rev() {
        // 1-based position i + 1.
        let pos = (i + 1) as f64;
        s[i] = s[i + 1] + (ind(matches[i]) - ind(matches[i + 1])) / k as f64 * (k as f64).min(pos) / pos;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{fit, Design};

    fn blobs(n: usize, dim: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = crate::SplitMix(seed);
        let mut x = Vec::with_capacity(n * dim);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % classes;
            // Overlapping classes, and every 17th row mislabelled, so some rows matter a lot.
            for d in 0..dim {
                x.push(if d % classes == c { 0.8 } else { 0.0 } + rng.gauss());
            }
            y.push(if i % 17 == 0 { (c + 1) % classes } else { c });
        }
        (x, y)
    }

    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    /// Predicted leave-one-out changes of test margins agree with retraining, for a probe fitted
    /// by L-BFGS (not exactly converged: the anchor absorbs that) with three classes.
    #[test]
    fn leave_one_out_matches_retraining() {
        let (dim, classes) = (12, 3);
        let (x, y) = blobs(300, dim, classes, 3);
        let (xt, yt) = blobs(12, dim, classes, 99);
        let d = Design::dense(&x, dim);
        let alpha = 2.0;
        let head = Head::from_linear(&fit(&d, &y, classes, alpha).expect("fits"));
        let f = factor(&head, &d, &y, Some(alpha), None).expect("factor");
        let grads: Vec<Vec<f64>> = (0..12).map(|t| test_gradient(&head, &xt[t * dim..(t + 1) * dim], yt[t], Objective::Margin).1).collect();
        let v = f.solve(&grads);
        let predicted = score(&head, &d, &y, &v, None, Rank::Helpful);
        let (mut pred, mut actual) = (vec![], vec![]);
        let base: Vec<f64> = (0..12).map(|t| objective_value(&head, &xt[t * dim..(t + 1) * dim], yt[t], Objective::Margin)).collect();
        for i in (0..300).step_by(6) {
            let mut keep = vec![true; 300];
            keep[i] = false;
            let (h, its) = retrain(&head, &f, &d, &y, &keep).expect("retrains");
            assert!(its < 30, "retraining converges in a few Newton steps: {its}");
            for t in 0..12 {
                // Influence is what the row's presence adds: base − without.
                actual.push(base[t] - objective_value(&h, &xt[t * dim..(t + 1) * dim], yt[t], Objective::Margin));
                pred.push(predicted[t][i].1 as f64);
            }
        }
        let r = pearson(&pred, &actual);
        assert!(r > 0.97, "Pearson {r}");
        // Scores are not similarity: the ranking must differ from a plain gradient dot product.
        let top = score(&head, &d, &y, &v, Some(5), Rank::Harmful);
        assert!(top[0].windows(2).all(|w| w[0].1 <= w[1].1), "harmful first: {:?}", top[0]);
        assert!((top[0][0].1 - predicted[0].iter().map(|p| p.1).fold(f32::INFINITY, f32::min)).abs() < 1e-5);
    }

    /// Self-influence equals the explicit quadratic form, and is largest for mislabelled rows.
    #[test]
    fn self_influence_matches_explicit_form_and_finds_flips() {
        let (dim, classes) = (6, 2);
        let (x, y) = blobs(200, dim, classes, 5);
        let d = Design::dense(&x, dim);
        let head = Head::from_linear(&fit(&d, &y, classes, 1.0).expect("fits"));
        let f = factor(&head, &d, &y, Some(1.0), None).expect("factor");
        let s = self_influence(&head, &f, &d, &y);
        for i in [0usize, 5, 17] {
            let (_, mut g) = test_gradient(&head, &x[i * dim..(i + 1) * dim], y[i], Objective::Loss);
            g.iter_mut().for_each(|v| *v = -*v);
            let hv = f.solve(std::slice::from_ref(&g)).remove(0);
            let q: f64 = g.iter().zip(&hv).map(|(a, b)| a * b).sum();
            assert!((q - s[i]).abs() < 1e-6 * q.abs().max(1.0), "{q} vs {}", s[i]);
        }
        let mut order: Vec<usize> = (0..200).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        let flips_in_top = order[..20].iter().filter(|&&i| i % 17 == 0).count();
        assert!(flips_in_top >= 6, "{flips_in_top} of 12 flips in the top 20");
    }

    #[test]
    fn knn_shapley_closed_form() {
        // k = 1: all the value goes to the nearest row when it alone matches.
        assert_eq!(knn_shapley(&[true, false, false], 1), vec![1.0, 0.0, 0.0]);
        // Efficiency: the values sum to the k-NN utility of the whole set (the share of the k
        // nearest that match), for any pattern.
        let m = [false, true, true, false, true, false, false, true, false, true];
        for k in 1..=5 {
            let v = knn_shapley(&m, k);
            let utility = m[..k].iter().filter(|&&b| b).count() as f64 / k as f64;
            assert!((v.iter().sum::<f64>() - utility).abs() < 1e-12, "k {k}: {v:?}");
        }
        // A matching row nearer than a non-matching one is worth more.
        let v = knn_shapley(&m, 3);
        assert!(v[1] > v[0] && v[1] > v[3], "{v:?}");
    }
}
