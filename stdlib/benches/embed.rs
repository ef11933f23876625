//! Where embedding time goes, on one thread, for the example workspace's MobileNetV2 and the
//! VWW detector:
//! - reading, decoding, resizing + normalising, and inference, per image (MobileNetV2);
//! - tract's inference time by operator (depthwise convolutions, the matrix products of the
//!   pointwise and full convolutions, im2col, element-wise ops), for both models;
//! - inference alone, tract (one image per run, as curate runs it) against onnxruntime (batch
//!   1 and 32) on the same tensors, in the same run, when the onnxruntime library is found
//!   (ORT_DYLIB_PATH or the Python package; `benches/peers/embed.sh` provides one).
//!
//! Run: RAYON_NUM_THREADS=1 taskset -c 0 cargo bench -p curate-stdlib --bench embed -- [N]
//! (default 200 images; pin to one core so that both runtimes get exactly one).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use curate_stdlib::model::{Model, ModelSpec, Runtime};
use curate_stdlib::{preprocess, Workspace};
use tract_onnx::prelude::*;

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/people");
    let ws = Workspace::open(&root).expect("examples/people");
    let mut files: Vec<_> = walk(&root.join("media/cifar/test"));
    files.sort();
    files.truncate(n);
    breakdown(&ws, &files);
    for name in ["mobilenet", "vww"] {
        let spec = ModelSpec::parse(name, &ws.config.models[name]).expect("spec");
        let tract = Model::load_on(ws.root(), name, &spec, Runtime::Tract).expect("model");
        let tensors: Vec<Tensor> = files.iter().map(|f| preprocess::to_tensor(&preprocess::decode(&std::fs::read(f).expect("read")).expect("decode"), &tract.input).expect("tensor")).collect();
        operators(&ws, name, &spec, &tensors);
        runtimes(&ws, name, &spec, &tract, &tensors);
    }
}

/// Read, decode, resize + normalise, infer: MobileNetV2 on tract, one thread.
fn breakdown(ws: &Workspace, files: &[std::path::PathBuf]) {
    let spec = ModelSpec::parse("mobilenet", &ws.config.models["mobilenet"]).expect("spec");
    let model = Model::load_on(ws.root(), "mobilenet", &spec, Runtime::Tract).expect("model");
    let mut state = model.spawn().expect("state");
    let (mut read, mut decode, mut prep, mut infer) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for f in files {
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
    println!("embed breakdown, MobileNetV2 on tract, {} images, 1 thread, ms per image:", files.len());
    println!(
        "  read {:.2}  decode {:.2}  resize+normalise {:.2}  inference {:.2}  total {:.2} ({:.1} img/s)",
        ms(read),
        ms(decode),
        ms(prep),
        ms(infer),
        ms(total),
        files.len() as f64 / total.as_secs_f64()
    );
    println!("  inference alone: {:.1} GFLOP/s at 0.6 GFLOP per image", 0.6 / (ms(infer) / 1000.0));
}

/// tract's time by operator, on the plan curate runs (the same file, input shape and outputs).
fn operators(ws: &Workspace, name: &str, spec: &ModelSpec, tensors: &[Tensor]) {
    let model = Model::load_on(ws.root(), name, spec, Runtime::Tract).expect("model");
    let shape = model.input.shape();
    let mut graph = tract_onnx::onnx().model_for_path(ws.root().join(&spec.path)).expect("onnx");
    let outputs: Vec<String> = spec.embedding.iter().chain(spec.scores.iter()).cloned().collect();
    graph.select_outputs_by_name(&outputs).expect("outputs");
    graph.set_input_fact(0, f32::fact(shape).into()).expect("input fact");
    let plan = graph.into_optimized().expect("optimised").into_runnable().expect("plan");
    let mut state = TypedSimpleState::new(&plan).expect("state");
    let mut by_op: BTreeMap<String, (Duration, usize)> = BTreeMap::new();
    let started = Instant::now();
    for t in tensors {
        state
            .run_plan_with_eval(tvec!(t.clone().into()), |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                let e = by_op.entry(node.op().name().to_string()).or_default();
                e.0 += t.elapsed();
                e.1 += 1;
                r
            })
            .expect("run");
    }
    let total = started.elapsed();
    let mut rows: Vec<_> = by_op.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .0));
    let timed: Duration = rows.iter().map(|r| r.1 .0).sum();
    println!(
        "tract by operator, {name}, {} images, 1 thread ({:.2} ms per image, {:.1}% of it inside operators):",
        tensors.len(),
        ms(total, tensors.len()),
        100.0 * timed.as_secs_f64() / total.as_secs_f64()
    );
    for (op, (d, count)) in rows.iter().take(8) {
        println!("  {op:<24} {:>6.2} ms per image  {:>5.1}%  ({} nodes)", ms(*d, tensors.len()), 100.0 * d.as_secs_f64() / timed.as_secs_f64(), count / tensors.len());
    }
}

/// Inference alone: tract one image per run, onnxruntime at batch 1 and at batch 32.
fn runtimes(ws: &Workspace, name: &str, spec: &ModelSpec, tract: &Model, tensors: &[Tensor]) {
    let mut state = tract.spawn().expect("state");
    let t = Instant::now();
    for x in tensors {
        tract.run(&mut state, x.clone()).expect("run");
    }
    let tract_rate = tensors.len() as f64 / t.elapsed().as_secs_f64();
    print!("inference alone, {name}, {} images, 1 thread: tract {tract_rate:.1} img/s", tensors.len());
    let ort = match Model::load_on(ws.root(), name, spec, Runtime::Onnxruntime) {
        Ok(m) => m,
        Err(e) => {
            println!("; onnxruntime not measured: {e}");
            return;
        }
    };
    let mut rates = Vec::new();
    for batch in [1usize, 32] {
        let t = Instant::now();
        for chunk in tensors.chunks(batch) {
            ort.run_batch(chunk.to_vec()).expect("onnxruntime runs");
        }
        rates.push(tensors.len() as f64 / t.elapsed().as_secs_f64());
    }
    println!("; {}: batch 1 {:.1} img/s, batch 32 {:.1} img/s; tract = {:.2}x onnxruntime's best", ort.runtime_description(), rates[0], rates[1], tract_rate / rates[0].max(rates[1]));
}

fn ms(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / n as f64
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}
