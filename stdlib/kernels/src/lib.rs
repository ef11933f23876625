//! Hot loops, optimised even in dev builds. See README.md.

use serde::{Deserialize, Serialize};

/// Squared Euclidean distance.
#[inline]
pub fn sq_l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// `v / |v|`, or `v` unchanged when it is zero.
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

/// A point in an HNSW index: squared L2 between prepared vectors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vector(pub Vec<f32>);

impl instant_distance::Point for Vector {
    fn distance(&self, other: &Self) -> f32 {
        sq_l2(&self.0, &other.0)
    }
}

/// Interleaved u8 pixels (`channels` per pixel) to normalised f32, either planar (NCHW) or
/// interleaved (NHWC). `order` maps output channel to input channel (BGR models swap).
pub fn normalize_pixels(
    pixels: &[u8],
    channels: usize,
    order: [usize; 3],
    scale: f32,
    mean: &[f32],
    std: &[f32],
    planar: bool,
) -> Vec<f32> {
    let plane = pixels.len() / channels;
    let mut data = vec![0f32; plane * channels];
    let inv_std: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
    for (p, px) in pixels.chunks_exact(channels).enumerate() {
        for k in 0..channels {
            let v = (px[order[k]] as f32 * scale - mean[k]) * inv_std[k];
            let at = if planar { k * plane + p } else { p * channels + k };
            data[at] = v;
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_norms() {
        assert_eq!(sq_l2(&[0.0, 3.0], &[4.0, 0.0]), 25.0);
        let n = normalized(&[3.0, 4.0]);
        assert!((n[0] - 0.6).abs() < 1e-6 && (n[1] - 0.8).abs() < 1e-6);
        assert_eq!(normalized(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn pixels_go_planar_or_interleaved() {
        let px = [10u8, 20, 30, 40, 50, 60];
        let planar = normalize_pixels(&px, 3, [0, 1, 2], 1.0, &[0.0; 3], &[1.0; 3], true);
        assert_eq!(planar, vec![10.0, 40.0, 20.0, 50.0, 30.0, 60.0]);
        let bgr = normalize_pixels(&px, 3, [2, 1, 0], 1.0, &[0.0; 3], &[1.0; 3], false);
        assert_eq!(bgr, vec![30.0, 20.0, 10.0, 60.0, 50.0, 40.0]);
    }
}
