//! Decode and resize real photos for a model input, per core: the full decode (the `image`
//! crate) against `preprocess::decode_for` (a JPEG much larger than the input decoded at a
//! reduced scale in the DCT domain), both followed by the same resize and normalisation into a
//! 224 × 224 tensor. The photos: 400 random crops of `../shared/assets/images/photos`, resized
//! to 640 × 480 and saved at JPEG quality 90 (as the Pillow figures in the issue were measured),
//! written to `CURATE_DECODE_DIR` (default: a temporary folder) so that
//! `benches/peers/decode.py` can time Pillow on the very same files.
//!
//! Run: taskset -c 0 cargo bench -p curate-stdlib --bench decode (one core: the image crate's
//! JPEG decoder uses a second thread when it can), or benches/peers/decode.sh for both.

use std::path::{Path, PathBuf};
use std::time::Instant;

use curate_stdlib::model::{Channels, InputSpec, Layout};
use curate_stdlib::preprocess::{decode, decode_for, to_tensor};

fn photos(dir: &Path, n: usize) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/assets/images/photos");
    let mut sources: Vec<PathBuf> =
        std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{}: {e} (the shared assets sit beside the repository)", src.display())).filter_map(|e| e.ok().map(|e| e.path())).collect();
    sources.sort();
    let images: Vec<image::RgbImage> = sources.iter().filter_map(|p| image::open(p).ok().map(|i| i.to_rgb8())).collect();
    assert!(!images.is_empty(), "no photos in {}", src.display());
    let mut rng = curate_kernels::SplitMix(42);
    (0..n)
        .map(|i| {
            let path = dir.join(format!("{i:04}.jpg"));
            if !path.exists() {
                let img = &images[i % images.len()];
                // A random crop of at least half of each side, resized to 640 × 480.
                let (w, h) = (img.width(), img.height());
                let cw = w / 2 + (rng.next_u64() % (w / 2 + 1) as u64) as u32;
                let ch = h / 2 + (rng.next_u64() % (h / 2 + 1) as u64) as u32;
                let x = (rng.next_u64() % (w - cw + 1) as u64) as u32;
                let y = (rng.next_u64() % (h - ch + 1) as u64) as u32;
                let crop = image::imageops::crop_imm(img, x, y, cw, ch).to_image();
                let out = image::imageops::resize(&crop, 640, 480, image::imageops::FilterType::Triangle);
                let mut bytes = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&out).expect("encode");
                std::fs::write(&path, bytes).expect("write");
            }
            path
        })
        .collect()
}

fn main() {
    let keep = std::env::var("CURATE_DECODE_DIR").ok().map(PathBuf::from);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("dir");
    let files = photos(&dir, 400);
    let bytes: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).expect("read")).collect();
    let spec = InputSpec { height: 224, width: 224, layout: Layout::Nchw, channels: Channels::Rgb, scale: 1.0 / 255.0, mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] };
    // One core: this loop runs on the calling thread only.
    let time = |f: &dyn Fn(&[u8]) -> image::DynamicImage| -> f64 {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            for b in &bytes {
                let img = f(b);
                std::hint::black_box(to_tensor(&img, &spec).expect("tensor"));
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        bytes.len() as f64 / best
    };
    let full = time(&|b| decode(b).expect("decodes"));
    let scaled = time(&|b| decode_for(b, (224, 224)).expect("decodes"));
    println!("decode + resize to 224x224, {} photos of 640x480 (JPEG q90), on the calling thread, best of 3:", bytes.len());
    println!("  full decode (image crate):          {full:.1} images/s");
    println!("  decode_for (DCT-domain 1/2 scale):  {scaled:.1} images/s = {:.2}x the full decode", scaled / full);
    let small = time(&|b| decode_for(b, (96, 96)).expect("decodes"));
    println!("  decode_for for a 96x96 input (1/4): {small:.1} images/s");
    if keep.is_some() {
        println!("photos kept in {}", dir.display());
    }
}
