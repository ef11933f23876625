//! Hot loops, optimised even in dev builds. See README.md.

use serde::{Deserialize, Serialize};

pub mod influence;
pub mod knn;
pub mod pca;
pub mod phash;
pub mod probe;
pub mod stats;
pub mod synth;

/// Squared Euclidean distance. Not `#[inline]`: inlined into an unoptimised caller it would be
/// compiled unoptimised there.
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

/// An HNSW map from points to row numbers. Built and searched here so that instant-distance's
/// generic code is compiled in this optimised crate, not in an unoptimised caller.
pub type Hnsw = instant_distance::HnswMap<Vector, u32>;

pub fn build_hnsw(points: Vec<Vector>, values: Vec<u32>, ef_construction: usize, ef_search: usize, seed: u64) -> Hnsw {
    instant_distance::Builder::default().ef_construction(ef_construction).ef_search(ef_search).seed(seed).build(points, values)
}

/// Up to `n` approximate nearest (row, squared distance) of `query`, nearest first.
pub fn search_hnsw(hnsw: &Hnsw, query: &Vector, n: usize) -> Vec<(usize, f32)> {
    let mut search = instant_distance::Search::default();
    hnsw.search(query, &mut search).take(n).map(|item| (*item.value as usize, item.distance)).collect()
}

/// Resize interleaved u8 pixels (1 or 3 channels) with a bilinear filter. A plain function so
/// that fast_image_resize's generic code is compiled here, optimised.
pub fn resize_u8(pixels: Vec<u8>, width: u32, height: u32, channels: usize, to_width: u32, to_height: u32) -> Result<Vec<u8>, String> {
    resize_with(pixels, width, height, channels, to_width, to_height, false)
}

/// As [`resize_u8`], or with nearest-neighbour sampling (`nearest`), which keeps the pixels of a
/// small image visible when it is enlarged for a contact sheet.
pub fn resize_with(pixels: Vec<u8>, width: u32, height: u32, channels: usize, to_width: u32, to_height: u32, nearest: bool) -> Result<Vec<u8>, String> {
    use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let pixel_type = if channels == 1 { PixelType::U8 } else { PixelType::U8x3 };
    let src = Image::from_vec_u8(width, height, pixels, pixel_type).map_err(|e| e.to_string())?;
    let mut dst = Image::new(to_width, to_height, pixel_type);
    let alg = if nearest { ResizeAlg::Nearest } else { ResizeAlg::Convolution(FilterType::Bilinear) };
    let opts = ResizeOptions::new().resize_alg(alg);
    Resizer::new().resize(&src, &mut dst, &opts).map_err(|e| e.to_string())?;
    Ok(dst.into_vec())
}

/// Fill a rectangle of an interleaved RGB buffer `width` pixels wide (clipped to it).
pub fn fill_rect(dst: &mut [u8], width: u32, x: u32, y: u32, w: u32, h: u32, rgb: [u8; 3]) {
    let height = (dst.len() / 3) as u32 / width.max(1);
    for row in y..(y + h).min(height) {
        let start = ((row * width + x.min(width)) * 3) as usize;
        let end = ((row * width + (x + w).min(width)) * 3) as usize;
        for px in dst[start..end].chunks_exact_mut(3) {
            px.copy_from_slice(&rgb);
        }
    }
}

/// Copy an RGB image (`src_w` wide) into an RGB buffer `width` pixels wide at (x, y), clipped.
pub fn blit(dst: &mut [u8], width: u32, src: &[u8], src_w: u32, x: u32, y: u32) {
    let height = (dst.len() / 3) as u32 / width.max(1);
    let src_h = (src.len() / 3) as u32 / src_w.max(1);
    let w = src_w.min(width.saturating_sub(x));
    for row in 0..src_h.min(height.saturating_sub(y)) {
        let d = (((y + row) * width + x) * 3) as usize;
        let s = (row * src_w * 3) as usize;
        dst[d..d + (w * 3) as usize].copy_from_slice(&src[s..s + (w * 3) as usize]);
    }
}

/// Interleaved u8 pixels (`channels` per pixel) to normalised f32, either planar (NCHW) or
/// interleaved (NHWC). `order` maps output channel to input channel (BGR models swap).
pub fn normalize_pixels(pixels: &[u8], channels: usize, order: [usize; 3], scale: f32, mean: &[f32], std: &[f32], planar: bool) -> Vec<f32> {
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

/// SplitMix64: a small, fixed, documented generator, so that seeded results (folds,
/// augmentation parameters, benchmark data) are the same on every machine and version.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (mean 0, sd ~1): the sum of four uniforms, centred and scaled.
    pub fn gauss(&mut self) -> f32 {
        ((self.unit() + self.unit() + self.unit() + self.unit() - 2.0) * 1.7) as f32
    }
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
