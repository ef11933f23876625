//! The top principal components of a row-major matrix by power iteration with deflation:
//! 2 components of n×d need O(iterations·n·d) and no d×d covariance (which at 1280-d would be
//! 6.5 MB and a dense eigen-solver crate for the sake of two vectors).

use rayon::prelude::*;

use crate::SplitMix;

/// The projection of every row onto the top `k` principal components, and each component's
/// share of the total variance.
pub fn project(data: &[f32], dim: usize, k: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<f64>) {
    let n = if dim == 0 { 0 } else { data.len() / dim };
    if n == 0 {
        return (vec![], vec![0.0; k]);
    }
    let mut mean = vec![0f64; dim];
    for row in data.chunks_exact(dim) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let total: f64 = data
        .par_chunks_exact(dim)
        .map(|row| row.iter().zip(&mean).map(|(&x, &m)| ((x - m) as f64).powi(2)).sum::<f64>())
        .sum::<f64>()
        / n as f64;
    let mut rng = SplitMix(seed);
    let mut comps: Vec<Vec<f64>> = Vec::new();
    let mut shares = Vec::new();
    for _ in 0..k {
        let mut v: Vec<f64> = (0..dim).map(|_| rng.gauss() as f64).collect();
        orthonormalise(&mut v, &comps);
        let mut eigen = 0.0;
        for _ in 0..200 {
            // w = Xcᵀ (Xc v) / n, with Xc the centred rows.
            let w = data
                .par_chunks_exact(dim)
                .fold(
                    || vec![0f64; dim],
                    |mut acc, row| {
                        let s: f64 = row.iter().zip(&mean).zip(&v).map(|((&x, &m), &vi)| (x - m) as f64 * vi).sum();
                        for ((a, &x), &m) in acc.iter_mut().zip(row).zip(&mean) {
                            *a += s * (x - m) as f64;
                        }
                        acc
                    },
                )
                .reduce(|| vec![0f64; dim], |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    a
                });
            let mut w: Vec<f64> = w.into_iter().map(|x| x / n as f64).collect();
            eigen = w.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>();
            orthonormalise(&mut w, &comps);
            let change: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            if change < 1e-7 {
                break;
            }
        }
        shares.push(if total > 0.0 { eigen / total } else { 0.0 });
        comps.push(v);
    }
    let out = data
        .par_chunks_exact(dim)
        .map(|row| comps.iter().map(|c| row.iter().zip(&mean).zip(c).map(|((&x, &m), &ci)| (x - m) as f64 * ci).sum::<f64>() as f32).collect())
        .collect();
    (out, shares)
}

/// Remove the components of `v` along `basis` (orthonormal), then scale it to unit length.
fn orthonormalise(v: &mut [f64], basis: &[Vec<f64>]) {
    for b in basis {
        let d: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
        v.iter_mut().zip(b).for_each(|(x, y)| *x -= d * y);
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points spread along (1, 1, 0) and, less, along (0, 0, 1): the first component lies on
    /// the first direction and carries most of the variance.
    #[test]
    fn finds_the_directions_of_largest_variance() {
        let mut rng = SplitMix(3);
        let mut data = Vec::new();
        for _ in 0..500 {
            let a = rng.gauss() * 10.0;
            let b = rng.gauss() * 2.0;
            data.extend_from_slice(&[a + 5.0, a - 1.0, b + 3.0]);
        }
        let (proj, shares) = project(&data, 3, 2, 1);
        assert_eq!(proj.len(), 500);
        assert!(shares[0] > 0.9 && shares[0] < 1.0, "{shares:?}");
        assert!(shares[1] > 0.005 && shares[0] + shares[1] > 0.999, "{shares:?}");
        // Along the first component the points keep their order by `a`.
        let x0 = data[0] as f64 - data[1] as f64; // constant 6: so compare sums instead
        assert!((x0 - 6.0).abs() < 1e-3);
        let corr: f64 = proj.iter().zip(data.chunks(3)).map(|(p, r)| p[0] as f64 * (r[0] as f64 + r[1] as f64 - 4.0)).sum();
        assert!(corr.abs() > 1000.0);
    }
}
