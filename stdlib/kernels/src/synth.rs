//! Synthetic vectors with the structure of real image features, for benches at sizes no real
//! data set here reaches.

use crate::SplitMix;

/// Points near a low-dimensional manifold: a 24-d latent mixture (200 components of varied
/// spread) through a random ReLU layer, plus isotropic noise, so that features vary mostly
/// along few directions and are non-negative, like pooled CNN features. The noise (0.8) is set
/// so that the relative contrast at 1,400 rows (1.94) matches real MobileNetV2 features of the
/// example's 1,400 images (1.97).
pub struct Manifold {
    dim: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    means: Vec<Vec<f32>>,
    spreads: Vec<f32>,
}

const LATENT: usize = 24;
const COMPONENTS: usize = 200;

impl Manifold {
    pub fn new(dim: usize, rng: &mut SplitMix) -> Self {
        let weights: Vec<f32> = (0..dim * LATENT).map(|_| rng.gauss() / (LATENT as f32).sqrt()).collect();
        let bias: Vec<f32> = (0..dim).map(|_| 0.3 * rng.gauss()).collect();
        let means: Vec<Vec<f32>> = (0..COMPONENTS).map(|_| (0..LATENT).map(|_| rng.gauss()).collect()).collect();
        let spreads: Vec<f32> = (0..COMPONENTS).map(|_| 0.2 + 0.6 * (rng.next_u64() % 1000) as f32 / 1000.0).collect();
        Manifold { dim, weights, bias, means, spreads }
    }

    /// One point, drawn with `rng`.
    pub fn point(&self, rng: &mut SplitMix) -> Vec<f32> {
        let c = (rng.next_u64() % COMPONENTS as u64) as usize;
        let z: Vec<f32> = self.means[c].iter().map(|m| m + self.spreads[c] * rng.gauss()).collect();
        (0..self.dim).map(|j| (self.weights[j * LATENT..(j + 1) * LATENT].iter().zip(&z).map(|(w, z)| w * z).sum::<f32>() + self.bias[j] + 0.8 * rng.gauss()).max(0.0)).collect()
    }
}

/// `n` points (row-major) and `queries` more, all from one [`Manifold`].
pub fn manifold(n: usize, dim: usize, queries: usize, rng: &mut SplitMix) -> (Vec<f32>, Vec<Vec<f32>>) {
    let m = Manifold::new(dim, rng);
    let mut data = Vec::with_capacity(n * dim);
    for _ in 0..n {
        data.extend(m.point(rng));
    }
    let query_vecs = (0..queries).map(|_| m.point(rng)).collect();
    (data, query_vecs)
}
