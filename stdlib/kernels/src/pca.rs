//! The top principal components of a row-major matrix by power iteration with deflation:
//! 2 components of n×d need O(iterations·n·d) and no d×d covariance (which at 1280-d would be
//! 6.5 MB and a dense eigen-solver crate for the sake of two vectors).

use rayon::prelude::*;

use crate::SplitMix;

/// Rows used to fit the components: a seeded sample of this many when there are more. Two
/// components of a 2-D map are stable long before that; the projection still uses every row.
pub const FIT_ROWS: usize = 4096;

/// The projection of every row onto the top `k` principal components, and each component's
/// share of the total variance. Block power iteration (all k vectors per pass over the data,
/// re-orthonormalised each time) on at most [`FIT_ROWS`] rows.
pub fn project(data: &[f32], dim: usize, k: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<f64>) {
    let n = data.len().checked_div(dim).unwrap_or(0);
    if n == 0 || k == 0 {
        return (vec![vec![]; n], vec![0.0; k]);
    }
    let mut rng = SplitMix(seed);
    let fit: Vec<usize> = if n <= FIT_ROWS {
        (0..n).collect()
    } else {
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..FIT_ROWS {
            let j = i + (rng.next_u64() % (n - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(FIT_ROWS);
        idx.sort_unstable();
        idx
    };
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    let m = fit.len() as f64;
    let mut mean = vec![0f64; dim];
    for &i in &fit {
        mean.iter_mut().zip(row(i)).for_each(|(a, &x)| *a += x as f64);
    }
    mean.iter_mut().for_each(|x| *x /= m);
    let mean32: Vec<f32> = mean.iter().map(|&x| x as f32).collect();
    let total: f64 = fit.iter().map(|&i| row(i).iter().zip(&mean32).map(|(&x, &c)| ((x - c) as f64).powi(2)).sum::<f64>()).sum::<f64>() / m;

    let mut basis: Vec<Vec<f64>> = (0..k).map(|_| (0..dim).map(|_| rng.gauss() as f64).collect()).collect();
    orthonormalise_all(&mut basis);
    let mut eigen = vec![0.0; k];
    // A picture needs the plane, not 9 digits: 50 passes at most (close eigenvalues converge
    // slowly, and then any vector of their span draws as well).
    for _ in 0..50 {
        // W = Xcᵀ Xc V / m for all k columns in one pass: partial sums over fixed chunks of
        // rows, added in chunk order, so the result (and the picture) is the same every run.
        let partials: Vec<Vec<f64>> = fit
            .par_chunks(256)
            .map(|chunk| {
                let mut acc = vec![0f64; k * dim];
                for &i in chunk {
                    let r = row(i);
                    for (c, v) in basis.iter().enumerate() {
                        let s: f64 = r.iter().zip(&mean32).zip(v).map(|((&x, &mu), &vi)| (x - mu) as f64 * vi).sum();
                        for ((a, &x), &mu) in acc[c * dim..(c + 1) * dim].iter_mut().zip(r).zip(&mean32) {
                            *a += s * (x - mu) as f64;
                        }
                    }
                }
                acc
            })
            .collect();
        let w = partials.into_iter().fold(vec![0f64; k * dim], add);
        let mut next: Vec<Vec<f64>> = w.chunks(dim).map(|c| c.iter().map(|x| x / m).collect()).collect();
        for (c, v) in basis.iter().enumerate() {
            eigen[c] = next[c].iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
        }
        orthonormalise_all(&mut next);
        let change: f64 = next.iter().zip(&basis).map(|(a, b)| 1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>().abs()).fold(0.0, f64::max);
        basis = next;
        if change < 1e-7 {
            break;
        }
    }
    let shares = eigen.iter().map(|&e| if total > 0.0 { e / total } else { 0.0 }).collect();
    let out = data.par_chunks_exact(dim).map(|row| basis.iter().map(|c| row.iter().zip(&mean32).zip(c).map(|((&x, &mu), &ci)| (x - mu) as f64 * ci).sum::<f64>() as f32).collect()).collect();
    (out, shares)
}

fn add(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    a
}

/// Gram–Schmidt over the vectors in order.
fn orthonormalise_all(vs: &mut [Vec<f64>]) {
    for i in 0..vs.len() {
        let (done, rest) = vs.split_at_mut(i);
        orthonormalise(&mut rest[0], done);
    }
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
    fn the_projection_is_the_same_every_run() {
        let mut rng = SplitMix(9);
        let data: Vec<f32> = (0..3000 * 16).map(|_| rng.gauss()).collect();
        assert_eq!(project(&data, 16, 2, 1), project(&data, 16, 2, 1));
    }

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
        // The first component follows `a` (x + y grows with it).
        let corr: f64 = proj.iter().zip(data.chunks(3)).map(|(p, r)| p[0] as f64 * (r[0] as f64 + r[1] as f64 - 4.0)).sum();
        assert!(corr.abs() > 1000.0);
    }
}
