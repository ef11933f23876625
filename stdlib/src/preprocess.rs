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

/// Decode for a model input of `target` (width, height). A JPEG at least twice the target in
/// both axes is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (jpeg-decoder's scaled IDCT,
/// as Pillow's `draft` mode), never below the target in either axis, and then resized from
/// there as any image is: most of a large photo's decode cost is the full-size IDCT and colour
/// conversion of pixels that the resize throws away. Other images decode in full.
pub fn decode_for(bytes: &[u8], target: (u32, u32)) -> Result<DynamicImage, String> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        if let Some(img) = decode_jpeg_scaled(bytes, target)? {
            return Ok(img);
        }
    }
    decode(bytes)
}

/// The DCT-domain path of [`decode_for`]; `None` when it does not apply (small image, a pixel
/// format other than 8-bit gray or RGB), so that the full decoder handles it.
fn decode_jpeg_scaled(bytes: &[u8], (tw, th): (u32, u32)) -> Result<Option<DynamicImage>, String> {
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    d.read_info().map_err(|e| e.to_string())?;
    let Some(info) = d.info() else { return Ok(None) };
    let (w, h) = (info.width as u32, info.height as u32);
    if w > MAX_SIDE || h > MAX_SIDE || !matches!(info.pixel_format, jpeg_decoder::PixelFormat::L8 | jpeg_decoder::PixelFormat::RGB24) {
        return Ok(None);
    }
    // The largest reduction (8, 4 or 2) that keeps both sides at or above the target.
    let Some(f) = [8u32, 4, 2].into_iter().find(|f| w.div_ceil(*f) >= tw.max(1) && h.div_ceil(*f) >= th.max(1)) else { return Ok(None) };
    d.set_max_decoding_buffer_size(MAX_ALLOC as usize);
    let (sw, sh) = d.scale(w.div_ceil(f) as u16, h.div_ceil(f) as u16).map_err(|e| e.to_string())?;
    let pixels = d.decode().map_err(|e| e.to_string())?;
    let (sw, sh) = (sw as u32, sh as u32);
    let img = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => image::GrayImage::from_raw(sw, sh, pixels).map(DynamicImage::ImageLuma8),
        _ => image::RgbImage::from_raw(sw, sh, pixels).map(DynamicImage::ImageRgb8),
    };
    img.map(Some).ok_or_else(|| format!("the scaled decode gave the wrong number of pixels for {sw}×{sh}"))
}

/// Resize to the model's input size (stretching, as most classifier exports expect) and lay the
/// pixels out as the model wants them.
pub fn to_tensor(img: &DynamicImage, spec: &InputSpec) -> Result<Tensor, String> {
    let (w, h) = (spec.width as u32, spec.height as u32);
    let (pixels, c) = match spec.channels {
        Channels::Gray => (img.to_luma8().into_raw(), 1usize),
        _ => (img.to_rgb8().into_raw(), 3usize),
    };
    let resized: Vec<u8> = if img.width() == w && img.height() == h { pixels } else { curate_kernels::resize_u8(pixels, img.width(), img.height(), c, w, h)? };
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

    /// A photo much larger than the input is decoded at a reduced scale in the DCT domain:
    /// never below the target, and the model input stays close to a full decode's.
    #[test]
    fn large_jpegs_decode_at_reduced_scale() {
        // Smooth structure at several scales, as in a photo.
        let rgb = image::RgbImage::from_fn(640, 480, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            image::Rgb([(128.0 + 100.0 * (fx / 23.0).sin()) as u8, (128.0 + 100.0 * (fy / 17.0).cos()) as u8, (((fx + fy) / 5.0) as u32 % 256) as u8])
        });
        let big = rgb;
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&big).expect("encode");
        let scaled = decode_for(&bytes, (224, 224)).expect("decodes");
        assert_eq!((scaled.width(), scaled.height()), (320, 240), "1/2 keeps both sides ≥ 224");
        let small = decode_for(&bytes, (96, 96)).expect("decodes");
        assert_eq!((small.width(), small.height()), (160, 120), "1/4 for a 96×96 input");
        let wide = decode_for(&bytes, (600, 100)).expect("decodes");
        assert_eq!((wide.width(), wide.height()), (640, 480), "no reduction keeps the width ≥ 600");
        let full = decode(&bytes).expect("decodes");
        let spec = spec(Layout::Nchw, Channels::Rgb);
        let spec = InputSpec { width: 96, height: 96, ..spec };
        let (a, b) = (to_tensor(&small, &spec).expect("tensor"), to_tensor(&full, &spec).expect("tensor"));
        let (a, b) = (a.to_plain_array_view::<f32>().expect("f32"), b.to_plain_array_view::<f32>().expect("f32"));
        let mean = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
        assert!(mean < 0.05, "mean absolute difference of the model inputs: {mean}");
        // A corrupt JPEG is an error, not a panic; a truncated one is either an error or an
        // image of the scaled size (jpeg-decoder, like libjpeg, fills what is missing).
        assert!(decode_for(&bytes[..200], (96, 96)).is_err());
        if let Ok(img) = decode_for(&bytes[..bytes.len() / 3], (96, 96)) {
            assert_eq!((img.width(), img.height()), (160, 120));
        }
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
