//! Near-duplicates on real images: resized and re-encoded copies of CIFAR photos must be found
//! at the default threshold, without clustering distinct photos. Prints recall and precision.

use std::collections::HashSet;

use crate::util::{example_dir, Test};

#[test]
fn resized_and_reencoded_copies_are_found() {
    let t = Test::new().args(&["init", "."]);
    t.run().success();
    let mut truth: HashSet<(String, String)> = HashSet::new();
    let mut n = 0;
    for class in ["airplane", "cat", "ship", "frog", "truck"] {
        for i in 0..20 {
            let src = example_dir().join(format!("media/cifar/test/{class}/{i:04}.jpg"));
            let id = format!("{class}_{i:02}");
            let dst = t.path().join("images").join(format!("{id}.jpg"));
            std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
            std::fs::copy(&src, &dst).expect("copy");
            let img = image::open(&src).expect("decode");
            let copy = match n % 5 {
                // resized up to 48x48 and saved as JPEG quality 75
                0 | 1 => Some(("resized", image::imageops::resize(&img.to_rgb8(), 48, 48, image::imageops::FilterType::Triangle), 75u8)),
                // re-encoded at a low quality
                2 => Some(("q40", img.to_rgb8(), 40u8)),
                // flipped: not a duplicate by our definition, left out of the truth
                _ => None,
            };
            if let Some((kind, pixels, quality)) = copy {
                let copy_id = format!("{id}_{kind}");
                let f = std::fs::File::create(t.path().join("images").join(format!("{copy_id}.jpg"))).expect("create");
                image::codecs::jpeg::JpegEncoder::new_with_quality(f, quality).encode_image(&pixels).expect("encode");
                truth.insert((id.clone(), copy_id));
            }
            if n % 10 == 3 {
                let copy_id = format!("{id}_bytes");
                std::fs::copy(&src, t.path().join("images").join(format!("{copy_id}.png.jpg"))).expect("byte copy");
                truth.insert((id.clone(), format!("{copy_id}.png")));
            }
            n += 1;
        }
    }
    // Distinct faces look alike to an embedding (25x25 grey crops): they must stay apart, and
    // so must their copies from each other.
    for i in 0..40 {
        let src = example_dir().join(format!("media/lfw/face/{i:03}.png"));
        let id = format!("face_{i:02}");
        std::fs::copy(&src, t.path().join("images").join(format!("{id}.png"))).expect("copy");
        if i % 4 == 0 {
            let img = image::open(&src).expect("decode");
            let copy_id = format!("{id}_q60");
            let f = std::fs::File::create(t.path().join("images").join(format!("{copy_id}.jpg"))).expect("create");
            image::codecs::jpeg::JpegEncoder::new_with_quality(f, 60).encode_image(&img.to_rgb8()).expect("encode");
            truth.insert((id.clone(), copy_id));
        }
    }
    let config = std::fs::read_to_string(t.path().join("curate.toml")).expect("config");
    let model = format!(
        "\n[models.mobilenet]\npath = {:?}\ninput = [224, 224]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\nembedding = \"embedding\"\n",
        example_dir().join("models/mobilenetv2_imagenet.onnx")
    );
    std::fs::write(t.path().join("curate.toml"), format!("{config}{model}")).expect("config");
    t.run_with(&["import", "images"]).success();
    let truth: HashSet<(String, String)> = truth.into_iter().map(|(a, b)| if a < b { (a, b) } else { (b, a) }).collect();
    let t = t.write(
        "d.rhai",
        "let t = param(\"t\", -1.0);\nlet opts = if t < 0.0 { #{} } else { #{threshold: t} };\nlet d = open().embed().duplicates(opts);\nfor r in d.ids() { print(`${r}|${d.get(r).cluster}`); }\n",
    );
    let measure = |threshold: Option<f64>| -> (f64, f64, usize) {
        let param = format!("t={}", threshold.unwrap_or(-1.0));
        let out = t.run_with(&["run", "d.rhai", "--param", &param]).success();
        let mut clusters: std::collections::HashMap<String, Vec<String>> = Default::default();
        for line in out.stdout.lines().filter(|l| l.contains('|')) {
            let (id, c) = line.split_once('|').expect("separator");
            clusters.entry(c.to_string()).or_default().push(id.to_string());
        }
        let mut predicted: HashSet<(String, String)> = HashSet::new();
        for members in clusters.values() {
            for a in members {
                for b in members {
                    if a < b {
                        predicted.insert((a.clone(), b.clone()));
                    }
                }
            }
        }
        let found = truth.iter().filter(|p| predicted.contains(*p)).count();
        let correct = predicted.iter().filter(|p| truth.contains(*p)).count();
        let recall = found as f64 / truth.len() as f64;
        let precision = if predicted.is_empty() { 0.0 } else { correct as f64 / predicted.len() as f64 };
        (recall, precision, predicted.len())
    };
    for threshold in [0.85, 0.95] {
        let (r, p, n) = measure(Some(threshold));
        eprintln!("near-duplicates at threshold {threshold}: {} true pairs, {n} predicted; recall {r:.3}, precision {p:.3}", truth.len());
    }
    let (recall, precision, n) = measure(None);
    eprintln!("near-duplicates at the default threshold: {} true pairs, {n} predicted; recall {recall:.3}, precision {precision:.3}", truth.len());
    assert!(recall >= 0.98, "recall {recall:.3}");
    assert!(precision >= 0.95, "precision {precision:.3}");
}
