//! Decode an image and turn it into a model's input tensor: resize, channel order, scale and
//! normalisation. Decoding has limits, so that a decompression bomb is an error, not an OOM.

use std::io::Cursor;

use image::{DynamicImage, ImageReader};
use tract_onnx::prelude::Tensor;

use crate::model::{Channels, InputSpec, Layout};

/// The largest image side we decode, and the most memory one decode may take.
pub const MAX_SIDE: u32 = 20_000;
pub const MAX_ALLOC: u64 = 1 << 30;

/// Decode with limits on dimensions and allocation.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    reader.decode().map_err(|e| e.to_string())
}

/// Resize to the model's input size (stretching, as most classifier exports expect) and lay the
/// pixels out as the model wants them.
pub fn to_tensor(img: &DynamicImage, spec: &InputSpec) -> Result<Tensor, String> {
    let (w, h) = (spec.width as u32, spec.height as u32);
    let (pixels, c) = match spec.channels {
        Channels::Gray => (img.to_luma8().into_raw(), 1usize),
        _ => (img.to_rgb8().into_raw(), 3usize),
    };
    let resized: Vec<u8> = if img.width() == w && img.height() == h {
        pixels
    } else {
        curate_kernels::resize_u8(pixels, img.width(), img.height(), c, w, h)?
    };
    let order: [usize; 3] = if spec.channels == Channels::Bgr { [2, 1, 0] } else { [0, 1, 2] };
    let data = curate_kernels::normalize_pixels(&resized, c, order, spec.scale, &spec.mean, &spec.std, spec.layout == Layout::Nchw);
    Tensor::from_shape(&spec.shape(), &data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layout: Layout, channels: Channels) -> InputSpec {
        let n = channels.count();
        InputSpec { height: 2, width: 2, layout, channels, scale: 1.0 / 255.0, mean: vec![0.0; n], std: vec![1.0; n] }
    }

    #[test]
    fn layouts_place_channels_where_the_model_wants_them() {
        let mut img = image::RgbImage::new(2, 2);
        img.put_pixel(0, 0, image::Rgb([255, 0, 0]));
        let img = DynamicImage::ImageRgb8(img);
        let t = to_tensor(&img, &spec(Layout::Nchw, Channels::Rgb)).expect("tensor");
        assert_eq!(t.shape(), &[1, 3, 2, 2]);
        let v: Vec<f32> = t.to_plain_array_view::<f32>().expect("f32").iter().copied().collect();
        assert_eq!(v[0], 1.0); // R plane, pixel 0
        assert_eq!(v[4], 0.0); // G plane, pixel 0
        let t = to_tensor(&img, &spec(Layout::Nhwc, Channels::Bgr)).expect("tensor");
        assert_eq!(t.shape(), &[1, 2, 2, 3]);
        let v: Vec<f32> = t.to_plain_array_view::<f32>().expect("f32").iter().copied().collect();
        assert_eq!(&v[..3], &[0.0, 0.0, 1.0]); // B, G, R of pixel 0
    }

    #[test]
    fn decompression_bombs_are_refused() {
        // A valid PNG header claiming 100000 x 100000 RGB pixels (30 GB decoded).
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut bomb = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d".to_vec();
        bomb.extend_from_slice(&ihdr);
        bomb.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
        let err = decode(&bomb).expect_err("refused");
        assert!(err.to_lowercase().contains("limit") || err.to_lowercase().contains("dimension"), "{err}");
    }
}
