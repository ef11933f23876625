//! Near-duplicate signals measured on real photos: re-encoded (JPEG q40–q75) and resized copies
//! of the CIFAR-10 and LFW images in `../shared/assets`, embedded with MobileNetV2 and hashed
//! with the 64-bit DCT hash. Rules are chosen on the CIFAR train half and reported on the held-out
//! half (CIFAR test + LFW faces and non-faces, which look alike and must stay apart).
//!
//! Run: cargo bench -p curate-stdlib --bench dedupe   (a release build; about a minute)

use std::path::{Path, PathBuf};

use curate_kernels::SplitMix;
use image_hasher::{HashAlg, HasherConfig};
use rayon::prelude::*;

struct Image {
    group: usize,
    held_out: bool,
    emb: Vec<f32>,
    /// One hash per hasher in `hashers()`.
    hashes: Vec<Vec<u8>>,
}

/// The perceptual hashes compared: (name, bits, hasher).
fn hashers() -> Vec<(&'static str, usize, image_hasher::Hasher)> {
    vec![
        ("dct-median 8x8 (pHash, curate's)", 64, HasherConfig::new().hash_size(8, 8).hash_alg(HashAlg::Median).preproc_dct().to_hasher()),
        ("gradient 8x8 (dHash)", 64, HasherConfig::new().hash_size(8, 8).hash_alg(HashAlg::Gradient).to_hasher()),
        ("dct-mean 8x8", 64, HasherConfig::new().hash_size(8, 8).hash_alg(HashAlg::Mean).preproc_dct().to_hasher()),
        ("blockhash 8x8", 64, HasherConfig::new().hash_size(8, 8).hash_alg(HashAlg::Blockhash).to_hasher()),
    ]
}

fn bits_apart(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
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
    let spec: toml::Value =
        toml::from_str("path = \"models/mobilenetv2_imagenet.onnx\"\ninput = [224, 224]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\nembedding = \"embedding\"").expect("spec");
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
    let hashers = hashers();
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
                Image { group: *group, held_out: *held, emb, hashes: hashers.iter().map(|h| h.2.hash_image(&img).as_bytes().to_vec()).collect() }
            },
        )
        .collect();
    println!("dedupe: {} images ({} sources, {} copies), embedded and hashed in {:.1} s", images.len(), sources.len(), images.len() - sources.len(), t.elapsed().as_secs_f64());

    for (hi, (name, bits, _)) in hashers.iter().enumerate() {
        // Every pair within each half: (cosine, bits apart, is a true pair).
        let pairs = |held: bool| -> Vec<(f32, u32, bool)> {
            let idx: Vec<usize> = (0..images.len()).filter(|&i| images[i].held_out == held).collect();
            idx.par_iter()
                .enumerate()
                .flat_map_iter(|(a, &i)| {
                    let images = &images;
                    idx[a + 1..]
                        .iter()
                        .map(move |&j| (curate_kernels::knn::dot(&images[i].emb, &images[j].emb), bits_apart(&images[i].hashes[hi], &images[j].hashes[hi]), images[i].group == images[j].group))
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
        let true_ham: Vec<u32> = test.iter().filter(|p| p.2).map(|p| p.1).collect();
        let mut ham_sorted = true_ham.clone();
        ham_sorted.sort_unstable();
        let p98 = ham_sorted.get(ham_sorted.len() * 98 / 100).copied().unwrap_or(0);
        println!(
            "\n== {name}: {bits} bits; true pairs {} (train), {} (held-out); held-out true pairs differ in {}..{} bits (98th percentile {p98})",
            truth(&train),
            truth(&test),
            ham_sorted.first().unwrap_or(&0),
            ham_sorted.last().unwrap_or(&0)
        );
        if hi == 0 {
            let true_cos: Vec<f32> = test.iter().filter(|p| p.2).map(|p| p.0).collect();
            println!("held-out true pairs: cosine {:.3}..{:.3}", true_cos.iter().copied().fold(f32::INFINITY, f32::min), true_cos.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        }
        println!("{:<46} {:>8} {:>9} {:>8} {:>9}", "rule (train | held-out)", "recall", "precision", "recall", "precision");
        let show = |rule_name: String, rule: &dyn Fn(f32, u32) -> bool| {
            let (r, p) = score(&train, rule);
            let (hr, hp) = score(&test, rule);
            println!("{rule_name:<46} {r:>8.3} {p:>9.3} {hr:>8.3} {hp:>9.3}");
        };
        if hi == 0 {
            for t in [0.85f32, 0.88, 0.9, 0.92, 0.95] {
                show(format!("embedding: cos >= {t}"), &move |c, _| c >= t);
            }
        }
        let scale = *bits as f64 / 64.0;
        for h in [4u32, 6, 8, 10, 12, 14] {
            let h = (h as f64 * scale) as u32;
            show(format!("hash: <= {h} bits"), &move |_, x| x <= h);
        }
        for (t, h) in [(0.70f32, 8u32), (0.70, 10), (0.70, 12), (0.75, 10), (0.80, 10)] {
            let h = (h as f64 * scale) as u32;
            show(format!("both: cos >= {t} and <= {h} bits"), &move |c, x| c >= t && x <= h);
        }
        if hi == 0 {
            for (t, h, t2, h2) in [(0.7f32, 8u32, 0.9f32, 16u32), (0.7, 10, 0.9, 16), (0.7, 10, 0.9, 20), (0.7, 10, 0.92, 20), (0.7, 8, 0.88, 16), (0.7, 10, 0.88, 18)] {
                show(format!("(cos>={t} & <={h}) | (cos>={t2} & <={h2})"), &move |c, x| (c >= t && x <= h) || (c >= t2 && x <= h2));
            }
            let misses: Vec<(f32, u32)> = test.iter().filter(|p| p.2 && p.1 > 10).map(|p| (p.0, p.1)).collect();
            println!("held-out true pairs more than 10 bits apart (cos, bits): {misses:?}");
            // Candidates come from each image's nearest neighbours by embedding: how many true
            // pairs does that reach?
            for k in [10usize, 20] {
                let mut reach = 0;
                let mut total = 0;
                for held in [false, true] {
                    let idx: Vec<usize> = (0..images.len()).filter(|&i| images[i].held_out == held).collect();
                    let tops: Vec<Vec<usize>> = idx
                        .par_iter()
                        .map(|&i| {
                            let mut d: Vec<(f32, usize)> = idx.iter().filter(|&&j| j != i).map(|&j| (curate_kernels::knn::dot(&images[i].emb, &images[j].emb), j)).collect();
                            d.sort_by(|a, b| b.0.total_cmp(&a.0));
                            d.into_iter().take(k).map(|x| x.1).collect()
                        })
                        .collect();
                    for (a, &i) in idx.iter().enumerate() {
                        for (b, &j) in idx.iter().enumerate().skip(a + 1) {
                            if images[i].group == images[j].group {
                                total += 1;
                                reach += usize::from(tops[a].contains(&j) || tops[b].contains(&i));
                            }
                        }
                    }
                }
                println!("true pairs among each image's {k} nearest by embedding: {reach}/{total}");
            }
        }
    }
}
