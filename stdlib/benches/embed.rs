//! Where embedding time goes, on one thread: reading, decoding, resizing + normalising, and
//! tract inference, for the example workspace's MobileNetV2 and images.
//!
//! Run: cargo bench -p curate-stdlib --bench embed -- [N]   (default 200 images)

use std::time::{Duration, Instant};

use curate_stdlib::model::{Model, ModelSpec};
use curate_stdlib::{preprocess, Workspace};

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/people");
    let ws = Workspace::open(&root).expect("examples/people");
    let spec = ModelSpec::parse("mobilenet", &ws.config.models["mobilenet"]).expect("spec");
    let model = Model::load(ws.root(), "mobilenet", &spec).expect("model");
    let mut state = model.spawn().expect("state");
    let mut files: Vec<_> = walk(&root.join("media/cifar/test"));
    files.sort();
    files.truncate(n);
    let (mut read, mut decode, mut prep, mut infer) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for f in &files {
        let t = Instant::now();
        let bytes = std::fs::read(f).expect("read");
        read += t.elapsed();
        let t = Instant::now();
        let img = preprocess::decode(&bytes).expect("decode");
        decode += t.elapsed();
        let t = Instant::now();
        let tensor = preprocess::to_tensor(&img, &model.input).expect("tensor");
        prep += t.elapsed();
        let t = Instant::now();
        model.run(&mut state, tensor).expect("run");
        infer += t.elapsed();
    }
    let total = read + decode + prep + infer;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / files.len() as f64;
    println!("embed breakdown, {} images, 1 thread, ms per image:", files.len());
    println!("  read {:.2}  decode {:.2}  resize+normalise {:.2}  inference {:.2}  total {:.2} ({:.1} img/s)",
        ms(read), ms(decode), ms(prep), ms(infer), ms(total), files.len() as f64 / total.as_secs_f64());
    println!("  inference alone: {:.1} GFLOP/s at 0.6 GFLOP per image", 0.6 / (ms(infer) / 1000.0));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}
