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

/// The sum over chunks of `CHUNK` of `rows` of what `add(start, end, acc, scratch)` adds into a
/// `len`-long f64 accumulator: in parallel, one accumulator and two f32 scratch buffers per
/// worker, summed at the end. f32 products, f64 sums: the chunks' rounding does not pile up.
fn chunked_sum<F>(rows: usize, len: usize, add: F) -> Vec<f64>
where
    F: Fn(usize, usize, &mut [f64], (&mut Vec<f32>, &mut Vec<f32>)) + Sync + Send,
{
    (0..rows.div_ceil(CHUNK))
        .into_par_iter()
        .fold(
            || (vec![0f64; len], Vec::new(), Vec::new()),
            |(mut acc, mut a, mut b), c| {
                add(c * CHUNK, ((c + 1) * CHUNK).min(rows), &mut acc, (&mut a, &mut b));
                (acc, a, b)
            },
        )
        .map(|(acc, ..)| acc)
        .reduce(
            || vec![0f64; len],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
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
    solver: Solver,
}

/// How `H⁻¹` is applied: a Cholesky factor of the dense Hessian, or, beyond
/// [`DENSE_PARAMETERS`], conjugate gradients with exact Hessian-vector products.
enum Solver {
    Dense(Llt<f64>),
    Iterative(Curvature),
}

/// What exact Hessian-vector products need: the curvature rows (features with a trailing 1)
/// and their probabilities under θ₀, the rows' weight (rows/sample), the ridge, and the
/// Hessian's diagonal for a Jacobi preconditioner.
struct Curvature {
    d1: usize,
    k: usize,
    x: Vec<f32>,
    p: Vec<f32>,
    scale: f64,
    ridge: f64,
    diag: Vec<f64>,
}

/// Above this many parameters ((d + 1)·C; 16,384 is 2 GiB as a dense f64 matrix) the Hessian
/// is not formed: solves use conjugate gradients with exact Hessian-vector products (two
/// matrix products over the curvature rows each). At d = 1280 that is about 12 classes.
pub const DENSE_PARAMETERS: usize = 16_384;

/// Relative residual at which conjugate gradients stop, and their iteration cap.
const CG_TOLERANCE: f64 = 1e-7;
const CG_MAX_ITERATIONS: usize = 1000;

impl Curvature {
    /// `H v` for each of `vs` (class-major, `k·d1` long).
    fn product(&self, vs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let (d1, k, q) = (self.d1, self.k, vs.len());
        let m = self.x.len() / d1;
        let cols = q * k;
        // V (d1 × q·k): column t·k + c is class c's block of vs[t].
        let mut v = vec![0f32; d1 * cols];
        for (t, vt) in vs.iter().enumerate() {
            for c in 0..k {
                for j in 0..d1 {
                    v[j * cols + t * k + c] = vt[c * d1 + j] as f32;
                }
            }
        }
        let acc = chunked_sum(m, cols * d1, |start, end, acc, (z, out)| {
            let rows = end - start;
            let xb = &self.x[start * d1..end * d1];
            z.resize(rows * cols, 0f32);
            sgemm(rows, d1, cols, xb, (d1, 1), &v, (cols, 1), 0.0, z, cols);
            // u_c = p_c (z_c − Σ p z): (diag p − p pᵀ) z, per row and direction.
            for i in 0..rows {
                let p = &self.p[(start + i) * k..(start + i + 1) * k];
                for t in 0..q {
                    let zr = &mut z[i * cols + t * k..i * cols + (t + 1) * k];
                    let mean: f32 = p.iter().zip(zr.iter()).map(|(a, b)| a * b).sum();
                    zr.iter_mut().zip(p).for_each(|(zv, pv)| *zv = pv * (*zv - mean));
                }
            }
            out.resize(cols * d1, 0f32);
            sgemm(cols, rows, d1, z, (1, cols), xb, (d1, 1), 0.0, out, d1);
            acc.iter_mut().zip(out.iter()).for_each(|(a, v)| *a += *v as f64);
        });
        vs.iter()
            .enumerate()
            .map(|(t, vt)| {
                let mut h = vec![0f64; k * d1];
                for c in 0..k {
                    for j in 0..d1 {
                        h[c * d1 + j] = self.scale * acc[(t * k + c) * d1 + j] + self.ridge * vt[c * d1 + j];
                    }
                }
                h
            })
            .collect()
    }

    /// `H⁻¹ g` for each of `grads` by Jacobi-preconditioned conjugate gradients, run together
    /// (one batched product per iteration) until each residual is `CG_TOLERANCE` of its start.
    fn solve(&self, grads: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let dot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
        let q = grads.len();
        let mut x: Vec<Vec<f64>> = grads.iter().map(|g| vec![0f64; g.len()]).collect();
        let mut r: Vec<Vec<f64>> = grads.to_vec();
        let mut z: Vec<Vec<f64>> = r.iter().map(|r| r.iter().zip(&self.diag).map(|(a, d)| a / d).collect()).collect();
        let mut p = z.clone();
        let mut rz: Vec<f64> = (0..q).map(|t| dot(&r[t], &z[t])).collect();
        let start: Vec<f64> = r.iter().map(|r| dot(r, r).sqrt()).collect();
        let mut active: Vec<usize> = (0..q).filter(|&t| start[t] > 0.0).collect();
        for _ in 0..CG_MAX_ITERATIONS {
            if active.is_empty() {
                break;
            }
            let ps: Vec<Vec<f64>> = active.iter().map(|&t| p[t].clone()).collect();
            let hp = self.product(&ps);
            for (a, &t) in active.iter().enumerate() {
                let step = rz[t] / dot(&p[t], &hp[a]);
                x[t].iter_mut().zip(&p[t]).for_each(|(xv, pv)| *xv += step * pv);
                r[t].iter_mut().zip(&hp[a]).for_each(|(rv, hv)| *rv -= step * hv);
                z[t] = r[t].iter().zip(&self.diag).map(|(a, d)| a / d).collect();
                let next = dot(&r[t], &z[t]);
                let beta = next / rz[t];
                rz[t] = next;
                p[t] = z[t].iter().zip(&p[t]).map(|(zv, pv)| zv + beta * pv).collect();
            }
            active.retain(|&t| dot(&r[t], &r[t]).sqrt() > CG_TOLERANCE * start[t]);
        }
        x
    }
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factor")
            .field("dim", &self.dim)
            .field("classes", &self.classes)
            .field("alpha", &self.alpha)
            .field("damping", &self.damping)
            .field("rows", &self.rows)
            .field("sample", &self.sample)
            .finish()
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
        match &self.solver {
            Solver::Dense(llt) => {
                let mut rhs = Mat::<f64>::from_fn(n, grads.len(), |i, j| grads[j][i]);
                llt.solve_in_place(rhs.as_mut());
                (0..grads.len()).map(|j| (0..n).map(|i| rhs[(i, j)]).collect()).collect()
            }
            Solver::Iterative(c) => c.solve(grads),
        }
    }

    /// Whether solves are iterative (the Hessian was too large to form).
    pub fn is_iterative(&self) -> bool {
        matches!(self.solver, Solver::Iterative(_))
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
    factor_with_limit(head, x, y, alpha, sample, DENSE_PARAMETERS)
}

/// [`factor`], forming the Hessian only up to `dense` parameters.
pub fn factor_with_limit(head: &Head, x: &Design<'_>, y: &[usize], alpha: Option<f64>, sample: Option<&[usize]>, dense: usize) -> Result<Factor, String> {
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
    if k * d1 > dense {
        return iterative(head, &xs, scale, alpha, sample.map(<[usize]>::len), n, g0, started);
    }
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
                return Ok(Factor { dim, classes: k, alpha, damping, rows: n, sample: sample.map(<[usize]>::len), g0, seconds, solver: Solver::Dense(llt) });
            }
            Err(_) if damping < mean_diag => damping = (damping * 10.0).max(1e-8 * mean_diag.max(1e-12)),
            Err(_) => return Err("the Hessian is not positive definite even with damping".to_string()),
        }
    }
}

/// The iterative [`Factor`]: the curvature rows and their probabilities kept in memory (f32),
/// the Hessian's diagonal for the preconditioner and the mean of it as the default ridge.
#[allow(clippy::too_many_arguments)]
fn iterative(head: &Head, xs: &Design<'_>, scale: f64, alpha: Option<f64>, sample: Option<usize>, n: usize, g0: Vec<f64>, started: std::time::Instant) -> Result<Factor, String> {
    let (d1, k, m) = (head.dim + 1, head.classes, xs.len());
    let mut x = Vec::with_capacity(m * d1);
    let mut p = vec![0f32; m * k];
    let theta32: Vec<f32> = head.theta.iter().map(|&v| v as f32).collect();
    let (mut raw, mut xb) = (Vec::new(), Vec::new());
    for start in (0..m).step_by(CHUNK) {
        let end = (start + CHUNK).min(m);
        block_with_one(xs, start, end, &mut raw, &mut xb);
        let pb = &mut p[start * k..end * k];
        sgemm(end - start, d1, k, &xb, (d1, 1), &theta32, (1, d1), 0.0, pb, k);
        for row in pb.chunks_exact_mut(k) {
            let mut z: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            softmax(&mut z);
            row.iter_mut().zip(&z).for_each(|(o, v)| *o = *v as f32);
        }
        x.extend_from_slice(&xb);
    }
    // diag H = Σᵢ p_ic (1 − p_ic) x̃_ij², scaled.
    let mut diag = vec![0f64; k * d1];
    for i in 0..m {
        let (xr, pr) = (&x[i * d1..(i + 1) * d1], &p[i * k..(i + 1) * k]);
        for c in 0..k {
            let w = (pr[c] * (1.0 - pr[c])) as f64 * scale;
            if w != 0.0 {
                diag[c * d1..(c + 1) * d1].iter_mut().zip(xr).for_each(|(d, v)| *d += w * (*v as f64) * (*v as f64));
            }
        }
    }
    let mean_diag = diag.iter().sum::<f64>() / diag.len().max(1) as f64;
    let alpha = alpha.unwrap_or(mean_diag);
    let damping = if alpha < 1e-8 * mean_diag { 1e-8 * mean_diag.max(1e-12) } else { 0.0 };
    let ridge = alpha + damping;
    diag.iter_mut().for_each(|d| *d += ridge);
    let built = started.elapsed().as_secs_f64();
    Ok(Factor { dim: head.dim, classes: k, alpha, damping, rows: n, sample, g0, seconds: (built, 0.0), solver: Solver::Iterative(Curvature { d1, k, x, p, scale, ridge, diag }) })
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
    grads.iter().map(|g| g.iter().enumerate().map(|(i, v)| if i % d1 == dim { 0.0 } else { v / alpha }).collect()).collect()
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
    // Each worker keeps its running top k across the blocks it takes (so that, once its floors
    // have risen, almost every row is rejected by one comparison); with every value kept, each
    // block's values are a part of their own.
    let parts: Vec<Part> = (0..n.div_ceil(block))
        .into_par_iter()
        .fold(
            || Worker::new(q, k),
            |mut w, bi| {
                let (start, end) = (bi * block, ((bi + 1) * block).min(n));
                let m = end - start;
                // The intercept row of B starts each output row; the features' product adds to
                // it (no copy of the rows with a trailing 1: that would be a second pass over
                // every converted row).
                let dim = d1 - 1;
                x.block_into(start, end, &mut w.raw);
                w.out.clear();
                for _ in 0..m {
                    w.out.extend_from_slice(&b[dim * cols..]);
                }
                sgemm(m, dim, cols, &w.raw, (dim, 1), &b, (cols, 1), 1.0, &mut w.out, cols);
                let mut all = if keep_all { vec![0f32; m * q] } else { vec![] };
                let mut r = vec![0f32; c];
                for i in 0..m {
                    let o = &w.out[i * cols..(i + 1) * cols];
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
                            w.tops[t].push(key(s), (start + i) as u32);
                        }
                    }
                }
                if keep_all {
                    w.parts.push((start, all, vec![]));
                }
                w
            },
        )
        .flat_map_iter(Worker::into_parts)
        .collect();
    let sorted = match gather(parts, n, q, k) {
        Gathered::All(all) => return all,
        Gathered::Best(best) => best,
    };
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

/// A block pass's result: (first row, values row-major by direction when every value is kept,
/// running top k per direction otherwise).
type Part = (usize, Vec<f32>, Vec<crate::knn::TopK>);

/// One worker's buffers and findings in a block pass.
struct Worker {
    raw: Vec<f32>,
    out: Vec<f32>,
    parts: Vec<Part>,
    tops: Vec<crate::knn::TopK>,
}

impl Worker {
    fn new(q: usize, k: Option<usize>) -> Self {
        let tops = k.map_or_else(Vec::new, |k| vec![crate::knn::TopK::new(k); q]);
        Worker { raw: Vec::new(), out: Vec::new(), parts: Vec::new(), tops }
    }

    fn into_parts(mut self) -> Vec<Part> {
        if !self.tops.is_empty() {
            self.parts.push((0, vec![], self.tops));
        }
        self.parts
    }
}

/// What the block passes of [`score`] and [`gradient_scores`] found.
enum Gathered {
    /// Every row's value per direction, in design order.
    All(Vec<Vec<(u32, f32)>>),
    /// The best `k` per direction by the ranking key, best first, as (row, key).
    Best(Vec<Vec<(u32, f32)>>),
}

/// Merge the blocks' parts: (first row, values row-major by direction when every value is
/// kept, running top k per direction otherwise).
fn gather(parts: Vec<Part>, n: usize, q: usize, k: Option<usize>) -> Gathered {
    let Some(k) = k else {
        let mut res = vec![vec![(0u32, 0f32); n]; q];
        for (start, all, _) in parts {
            for (i, row) in all.chunks_exact(q.max(1)).enumerate() {
                for t in 0..q {
                    res[t][start + i] = ((start + i) as u32, row[t]);
                }
            }
        }
        return Gathered::All(res);
    };
    let mut tops = vec![crate::knn::TopK::new(k); q];
    for (_, _, part) in parts {
        for (t, p) in part.into_iter().enumerate() {
            tops[t].merge(p);
        }
    }
    Gathered::Best(tops.into_iter().map(|t| t.into_sorted()).collect())
}

/// Self-influence of every training row, ∇ℓᵢᵀ H⁻¹ ∇ℓᵢ = |L⁻¹∇ℓᵢ|² with H = LLᵀ: how much each
/// row's own loss depends on its presence. Mislabelled rows stand out. Costs rows × size².
pub fn self_influence(head: &Head, factor: &Factor, x: &Design<'_>, y: &[usize]) -> Result<Vec<f64>, String> {
    let (dim, d1, c, n) = (head.dim, head.dim + 1, head.classes, y.len());
    let size = c * d1;
    let Solver::Dense(llt) = &factor.solver else {
        return Err(format!(
            "self-influence needs one solve per training sample, which takes the dense Hessian: this head has {size} parameters, above {DENSE_PARAMETERS} (use fewer classes, or a smaller embedding)"
        ));
    };
    let l = llt.L();
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
    Ok(out)
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

/// `ΦᵀΦ + λI` over imported per-sample gradient features Φ (one row per training sample,
/// TRAK-style projected gradients that the user's own training pipeline wrote), factorised:
/// the preconditioner of [`gradient_scores`].
pub struct GramFactor {
    pub dim: usize,
    pub rows: usize,
    /// The ridge added to the Gram matrix (and any extra damping it needed).
    pub lambda: f64,
    /// Seconds spent building the Gram matrix, then factorising it.
    pub seconds: (f64, f64),
    llt: Llt<f64>,
}

impl GramFactor {
    /// `(ΦᵀΦ + λI)⁻¹ v` for each of `vs` (each `dim` long).
    pub fn solve(&self, vs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        if vs.is_empty() {
            return vec![];
        }
        let mut rhs = Mat::<f64>::from_fn(self.dim, vs.len(), |i, j| vs[j][i]);
        self.llt.solve_in_place(rhs.as_mut());
        (0..vs.len()).map(|j| (0..self.dim).map(|i| rhs[(i, j)]).collect()).collect()
    }
}

/// Build `ΦᵀΦ` from the design rows (used as stored: pass [`crate::probe::Scale::AsIs`]) by
/// blocked products in f32, accumulated in f64 per thread, then factorise `ΦᵀΦ + λI`. Without
/// `lambda`, the ridge is 10⁻³ × the Gram matrix's mean diagonal (enough to make a Gram matrix
/// of fewer rows than columns invertible without changing a well-determined one much).
pub fn gram_factor(x: &Design<'_>, lambda: Option<f64>) -> Result<GramFactor, String> {
    let (p, n) = (x.dim, x.len());
    if n == 0 || p == 0 {
        return Err(format!("{n} gradient rows of width {p}: nothing to precondition with"));
    }
    if let Some(l) = lambda.filter(|l| *l < 0.0 || !l.is_finite()) {
        return Err(format!("the regularisation must be a finite non-negative number, not {l}"));
    }
    let started = std::time::Instant::now();
    let acc = chunked_sum(n, p * p, |start, end, acc, (raw, out)| {
        let m = end - start;
        x.block_into(start, end, raw);
        out.resize(p * p, 0f32);
        sgemm(p, m, p, raw, (1, p), raw, (p, 1), 0.0, out, p);
        acc.iter_mut().zip(out.iter()).for_each(|(a, v)| *a += *v as f64);
    });
    let g = Mat::<f64>::from_fn(p, p, |i, j| acc[i * p + j]);
    drop(acc);
    let built = started.elapsed().as_secs_f64();
    let mean_diag = (0..p).map(|i| g[(i, i)]).sum::<f64>() / p as f64;
    if !(mean_diag.is_finite() && mean_diag > 0.0) {
        return Err("the gradient rows are all zero (or not finite)".to_string());
    }
    let mut lambda = lambda.unwrap_or(1e-3 * mean_diag);
    loop {
        let mut gd = g.clone();
        for i in 0..p {
            gd[(i, i)] += lambda;
        }
        match gd.llt(Side::Lower) {
            Ok(llt) => return Ok(GramFactor { dim: p, rows: n, lambda, seconds: (built, started.elapsed().as_secs_f64() - built), llt }),
            Err(_) if lambda < mean_diag => lambda = (lambda * 10.0).max(1e-8 * mean_diag),
            Err(_) => return Err("the gradient Gram matrix is not positive definite even with damping".to_string()),
        }
    }
}

/// For each direction v (`(ΦᵀΦ + λI)⁻¹φ_test`, `dim` long), every design row's influence
/// `wᵢ (v · φᵢ)`, with `wᵢ` from `weights` (1 when `None`): one pass of one matrix product over
/// the rows. Returns, per direction, the best `k` as (design index, influence) by `rank`, or
/// every row in design order when `k` is `None`.
pub fn gradient_scores(x: &Design<'_>, weights: Option<&[f32]>, directions: &[Vec<f64>], k: Option<usize>, rank: Rank) -> Vec<Vec<(u32, f32)>> {
    let (p, n, q) = (x.dim, x.len(), directions.len());
    // B (p × q), row-major.
    let mut b = vec![0f32; p * q];
    for (t, v) in directions.iter().enumerate() {
        for j in 0..p {
            b[j * q + t] = v[j] as f32;
        }
    }
    let key = move |v: f32| match rank {
        Rank::Harmful => -v,
        Rank::Helpful => v,
        Rank::Both => v.abs(),
    };
    let block = if q >= 32 { 1024 } else { BLOCK };
    let parts: Vec<Part> = (0..n.div_ceil(block))
        .into_par_iter()
        .fold(
            || Worker::new(q, k),
            |mut w, bi| {
                let (start, end) = (bi * block, ((bi + 1) * block).min(n));
                let m = end - start;
                x.block_into(start, end, &mut w.raw);
                w.out.resize(m * q, 0f32);
                sgemm(m, p, q, &w.raw, (p, 1), &b, (q, 1), 0.0, &mut w.out, q);
                if let Some(wt) = weights {
                    for (i, row) in w.out.chunks_exact_mut(q.max(1)).enumerate() {
                        row.iter_mut().for_each(|v| *v *= wt[start + i]);
                    }
                }
                if k.is_none() {
                    let all = w.out[..m * q].to_vec();
                    w.parts.push((start, all, vec![]));
                } else {
                    for (i, row) in w.out.chunks_exact(q.max(1)).enumerate() {
                        for (t, &s) in row.iter().enumerate() {
                            w.tops[t].push(key(s), (start + i) as u32);
                        }
                    }
                }
                w
            },
        )
        .flat_map_iter(Worker::into_parts)
        .collect();
    let best = match gather(parts, n, q, k) {
        Gathered::All(all) => return all,
        Gathered::Best(best) => best,
    };
    let mut row = Vec::new();
    best.into_iter()
        .enumerate()
        .map(|(t, sorted)| {
            match rank {
                Rank::Harmful => sorted.into_iter().map(|(r, s)| (r, -s)).collect(),
                Rank::Helpful => sorted,
                // Magnitudes were ranked: recover the signs, one row each.
                Rank::Both => sorted
                    .into_iter()
                    .map(|(r, _)| {
                        x.block_into(r as usize, r as usize + 1, &mut row);
                        let dot: f32 = row.iter().enumerate().map(|(j, v)| v * b[j * q + t]).sum();
                        (r, dot * weights.map_or(1.0, |w| w[r as usize]))
                    })
                    .collect(),
            }
        })
        .collect()
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
    use crate::stats::pearson;

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

    /// Beyond the dense limit, conjugate gradients with exact Hessian-vector products give the
    /// same solves as the Cholesky factor, and retraining through them agrees.
    #[test]
    fn iterative_solves_match_dense() {
        let (dim, classes) = (10, 4);
        let (x, y) = blobs(240, dim, classes, 8);
        let d = Design::dense(&x, dim);
        let head = Head::from_linear(&fit(&d, &y, classes, 1.5).expect("fits"));
        let dense = factor(&head, &d, &y, Some(1.5), None).expect("dense");
        let cg = factor_with_limit(&head, &d, &y, Some(1.5), None, 8).expect("iterative");
        assert!(cg.is_iterative() && !dense.is_iterative());
        let (xt, yt) = blobs(6, dim, classes, 77);
        let grads: Vec<Vec<f64>> = (0..6).map(|t| test_gradient(&head, &xt[t * dim..(t + 1) * dim], yt[t], Objective::Margin).1).collect();
        let (a, b) = (dense.solve(&grads), cg.solve(&grads));
        for (u, v) in a.iter().zip(&b) {
            let err = u.iter().zip(v).map(|(p, q)| (p - q).powi(2)).sum::<f64>().sqrt();
            let norm = u.iter().map(|p| p * p).sum::<f64>().sqrt();
            assert!(err < 1e-4 * norm, "relative error {}", err / norm);
        }
        let mut keep = vec![true; 240];
        (0..240).step_by(7).for_each(|i| keep[i] = false);
        let (h1, _) = retrain(&head, &dense, &d, &y, &keep).expect("dense retrain");
        let (h2, _) = retrain(&head, &cg, &d, &y, &keep).expect("cg retrain");
        let diff = h1.theta.iter().zip(&h2.theta).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        assert!(diff < 1e-5, "retrained heads differ by {diff}");
        assert!(self_influence(&head, &cg, &d, &y).is_err(), "self-influence needs the dense factor");
    }

    /// Self-influence equals the explicit quadratic form, and is largest for mislabelled rows.
    #[test]
    fn self_influence_matches_explicit_form_and_finds_flips() {
        let (dim, classes) = (6, 2);
        let (x, y) = blobs(200, dim, classes, 5);
        let d = Design::dense(&x, dim);
        let head = Head::from_linear(&fit(&d, &y, classes, 1.0).expect("fits"));
        let f = factor(&head, &d, &y, Some(1.0), None).expect("factor");
        let s = self_influence(&head, &f, &d, &y).expect("dense");
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

    /// Imported gradient features, on ridge regression (where TRAK's kernel is the exact
    /// Hessian): output gradients φᵢ = xᵢ, weights wᵢ = yᵢ − ŷᵢ = −∂ℓᵢ/∂f. The scores match the
    /// explicit form and predict leave-one-out changes of test predictions found by refitting.
    #[test]
    fn gradient_features_predict_ridge_leave_one_out() {
        let (n, p, lambda) = (150usize, 6usize, 2.0);
        let mut rng = crate::SplitMix(21);
        let truth: Vec<f64> = (0..p).map(|_| rng.gauss() as f64).collect();
        let x: Vec<f32> = (0..n * p).map(|_| rng.gauss()).collect();
        let y: Vec<f64> = (0..n).map(|i| (0..p).map(|j| x[i * p + j] as f64 * truth[j]).sum::<f64>() + 0.5 * rng.gauss() as f64 + if i % 13 == 0 { 4.0 } else { 0.0 }).collect();
        let fit = |keep: &dyn Fn(usize) -> bool| -> Vec<f64> {
            let mut a = Mat::<f64>::from_fn(p, p, |i, j| if i == j { lambda } else { 0.0 });
            let mut rhs = Mat::<f64>::zeros(p, 1);
            for r in (0..n).filter(|&r| keep(r)) {
                for i in 0..p {
                    rhs[(i, 0)] += x[r * p + i] as f64 * y[r];
                    for j in 0..p {
                        a[(i, j)] += x[r * p + i] as f64 * x[r * p + j] as f64;
                    }
                }
            }
            a.llt(Side::Lower).expect("spd").solve_in_place(rhs.as_mut());
            (0..p).map(|i| rhs[(i, 0)]).collect()
        };
        let w = fit(&|_| true);
        let predict = |w: &[f64], row: &[f32]| -> f64 { row.iter().zip(w).map(|(a, b)| *a as f64 * b).sum() };
        let weights: Vec<f32> = (0..n).map(|i| (y[i] - predict(&w, &x[i * p..(i + 1) * p])) as f32).collect();
        let d = Design::dense(&x, p);
        let g = gram_factor(&d, Some(lambda)).expect("factor");
        let tests: Vec<Vec<f32>> = (0..5).map(|_| (0..p).map(|_| rng.gauss()).collect()).collect();
        let dirs = g.solve(&tests.iter().map(|t| t.iter().map(|&v| v as f64).collect()).collect::<Vec<_>>());
        let all = gradient_scores(&d, Some(&weights), &dirs, None, Rank::Helpful);
        // The explicit form, for one pair.
        let explicit: f64 = (0..p).map(|j| dirs[2][j] * x[7 * p + j] as f64).sum::<f64>() * weights[7] as f64;
        assert!((explicit - all[2][7].1 as f64).abs() < 1e-4 * explicit.abs().max(1.0), "{explicit} vs {}", all[2][7].1);
        let (mut pred, mut actual) = (vec![], vec![]);
        for i in (0..n).step_by(3) {
            let wi = fit(&|r| r != i);
            for (t, row) in tests.iter().enumerate() {
                actual.push(predict(&w, row) - predict(&wi, row));
                pred.push(all[t][i].1 as f64);
            }
        }
        let r = pearson(&pred, &actual);
        assert!(r > 0.95, "Pearson {r}");
        // Top-k agrees with the full scores, in every sign.
        for rank in [Rank::Harmful, Rank::Helpful, Rank::Both] {
            let top = gradient_scores(&d, Some(&weights), &dirs[..1], Some(4), rank);
            for (r, s) in &top[0] {
                assert!((all[0][*r as usize].1 - s).abs() < 1e-5, "{rank:?}: row {r}: {s} vs {}", all[0][*r as usize].1);
            }
            let best = match rank {
                Rank::Harmful => all[0].iter().map(|v| v.1).fold(f32::INFINITY, f32::min),
                Rank::Helpful => all[0].iter().map(|v| v.1).fold(f32::NEG_INFINITY, f32::max),
                Rank::Both => all[0].iter().map(|v| v.1.abs()).fold(0.0, f32::max),
            };
            let got = if rank == Rank::Both { top[0][0].1.abs() } else { top[0][0].1 };
            assert!((got - best).abs() < 1e-5, "{rank:?}: {got} vs {best}");
        }
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
