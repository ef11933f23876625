//! Near-duplicate signals measured on real photos: re-encoded (JPEG q40–q75) and resized copies
//! of the CIFAR-10 and LFW images in `../shared/assets`, embedded with MobileNetV2 and hashed
//! with the 64-bit DCT hash. Rules are chosen on the CIFAR train half and reported on the held-out
//! half (CIFAR test + LFW faces and non-faces, which look alike and must stay apart).
//!
//! Run: cargo bench -p curate-stdlib --bench dedupe   (a release build; about a minute)

use std::path::{Path, PathBuf};

use curate_kernels::phash::{hamming, phash};
use curate_kernels::SplitMix;
use rayon::prelude::*;

struct Image {
    group: usize,
    held_out: bool,
    emb: Vec<f32>,
    hash: u64,
}

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/assets")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir).into_iter().flatten().map(|e| e.into_path()).filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png")).collect();
    out.sort();
    out
}

/// A copy as a pipeline would make one: maybe resized (to 0.75–2× the side), always re-encoded
/// as JPEG at quality 40–75.
fn copy_of(img: &image::DynamicImage, rng: &mut SplitMix) -> Vec<u8> {
    let rgb = img.to_rgb8();
    let scale = [1.0, 1.0, 0.75, 1.5, 2.0][(rng.next_u64() % 5) as usize];
    let (w, h) = (((rgb.width() as f64) * scale).round() as u32, ((rgb.height() as f64) * scale).round() as u32);
    let pixels = if scale == 1.0 { rgb } else { image::imageops::resize(&rgb, w.max(8), h.max(8), image::imageops::FilterType::Triangle) };
    let quality = 40 + (rng.next_u64() % 36) as u8;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(&pixels).expect("encode");
    out
}

fn main() {
    let root = assets();
    if !root.is_dir() {
        println!("dedupe: {} not found; skipped", root.display());
        return;
    }
    let spec: toml::Value = toml::from_str(
        "path = \"models/mobilenetv2_imagenet.onnx\"\ninput = [224, 224]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\nembedding = \"embedding\"",
    )
    .expect("spec");
    let spec = curate_stdlib::model::ModelSpec::parse("mobilenet", &spec).expect("spec");
    let model = curate_stdlib::model::Model::load(&root, "mobilenet", &spec).expect("model");

    let mut sources: Vec<(PathBuf, bool)> = files(&root.join("data/cifar10-mini/train")).into_iter().map(|p| (p, false)).collect();
    sources.extend(files(&root.join("data/cifar10-mini/test")).into_iter().map(|p| (p, true)));
    sources.extend(files(&root.join("data/lfw-faces")).into_iter().map(|p| (p, true)));
    // Every other source gets a copy; (bytes, group, held_out).
    let mut rng = SplitMix(11);
    let mut items: Vec<(Vec<u8>, usize, bool)> = Vec::new();
    for (g, (path, held)) in sources.iter().enumerate() {
        let bytes = std::fs::read(path).expect("read");
        if g % 2 == 0 {
            let img = image::load_from_memory(&bytes).expect("decode");
            items.push((copy_of(&img, &mut rng), g, *held));
        }
        items.push((bytes, g, *held));
    }
    let t = std::time::Instant::now();
    let images: Vec<Image> = items
        .par_iter()
        .map_init(
            || model.spawn().expect("state"),
            |state, (bytes, group, held)| {
                let img = curate_stdlib::preprocess::decode(bytes).expect("decode");
                let input = curate_stdlib::preprocess::to_tensor(&img, &model.input).expect("tensor");
                let mut emb = model.run(state, input).expect("run").embedding.expect("embedding");
                let n = emb.iter().map(|x| x * x).sum::<f32>().sqrt();
                emb.iter_mut().for_each(|x| *x /= n);
                Image { group: *group, held_out: *held, emb, hash: phash(&img) }
            },
        )
        .collect();
    println!("dedupe: {} images ({} sources, {} copies), embedded and hashed in {:.1} s", images.len(), sources.len(), images.len() - sources.len(), t.elapsed().as_secs_f64());

    // Every pair within each half: (cosine, hamming, is a true pair).
    let pairs = |held: bool| -> Vec<(f32, u32, bool)> {
        let idx: Vec<usize> = (0..images.len()).filter(|&i| images[i].held_out == held).collect();
        idx.par_iter()
            .enumerate()
            .flat_map_iter(|(a, &i)| {
                let images = &images;
                idx[a + 1..].iter().map(move |&j| (curate_kernels::knn::dot(&images[i].emb, &images[j].emb), hamming(images[i].hash, images[j].hash), images[i].group == images[j].group))
            })
            .collect()
    };
    let (train, test) = (pairs(false), pairs(true));
    let truth = |p: &[(f32, u32, bool)]| p.iter().filter(|x| x.2).count();
    let score = |p: &[(f32, u32, bool)], rule: &dyn Fn(f32, u32) -> bool| -> (f64, f64) {
        let (mut tp, mut fp) = (0usize, 0usize);
        for &(c, h, t) in p {
            if rule(c, h) {
                if t {
                    tp += 1
                } else {
                    fp += 1
                }
            }
        }
        (tp as f64 / truth(p).max(1) as f64, tp as f64 / (tp + fp).max(1) as f64)
    };
    println!("true pairs: {} (train half), {} (held-out half)", truth(&train), truth(&test));
    let true_cos: Vec<f32> = test.iter().filter(|p| p.2).map(|p| p.0).collect();
    let true_ham: Vec<u32> = test.iter().filter(|p| p.2).map(|p| p.1).collect();
    println!(
        "held-out true pairs: cosine {:.3}..{:.3}, hamming {}..{}",
        true_cos.iter().copied().fold(f32::INFINITY, f32::min),
        true_cos.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        true_ham.iter().min().unwrap_or(&0),
        true_ham.iter().max().unwrap_or(&0)
    );
    println!("\n{:<44} {:>8} {:>9} {:>8} {:>9}", "rule", "recall", "precision", "held-out", "held-out");
    println!("{:<44} {:>8} {:>9} {:>8} {:>9}", "", "(train)", "(train)", "recall", "precision");
    let show = |name: String, rule: &dyn Fn(f32, u32) -> bool| {
        let (r, p) = score(&train, rule);
        let (hr, hp) = score(&test, rule);
        println!("{name:<44} {r:>8.3} {p:>9.3} {hr:>8.3} {hp:>9.3}");
    };
    for t in [0.85f32, 0.88, 0.9, 0.92, 0.95] {
        show(format!("embedding: cos >= {t}"), &move |c, _| c >= t);
    }
    for h in [4u32, 6, 8, 10, 12, 14] {
        show(format!("phash: hamming <= {h}"), &move |_, x| x <= h);
    }
    for (t, h) in [(0.80f32, 10u32), (0.80, 12), (0.80, 14), (0.75, 12), (0.85, 14), (0.85, 16), (0.80, 16)] {
        show(format!("both: cos >= {t} and hamming <= {h}"), &move |c, x| c >= t && x <= h);
    }
    for (t, h, hi) in [(0.80f32, 12u32, 0.97f32), (0.80, 14, 0.97), (0.75, 14, 0.97), (0.80, 16, 0.97), (0.70, 14, 0.97)] {
        show(format!("both: (cos >= {t} and ham <= {h}) or cos >= {hi}"), &move |c, x| (c >= t && x <= h) || c >= hi);
    }
}
