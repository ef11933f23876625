//! Picture speed. A contact sheet of N example images against the baseline of decoding those
//! N files alone (what any viewer must do); and the embedding map's PCA of M×DIM vectors against
//! one exact cosine scan of them (what one `similar` query without an index costs). Baselines
//! are measured in the same run.
//!
//! Run: cargo bench --profile dev -p curate-stdlib --bench plot -- [N] [M] [DIM]
//! (defaults 96 20000 1280). A plain main: each arm is run a few times and the best is kept.

use std::sync::Arc;
use std::time::Instant;

use curate_stdlib::index::{exact_search, Metric};
use curate_stdlib::primitives::plot::{grid, GridOptions};
use curate_stdlib::primitives::Context;
use polars::prelude::*;

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = None;
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(v);
    }
    (best, out.expect("at least one run"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(96);
    let m: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let dim: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1280);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/people").canonicalize().expect("examples/people");
    let ws = Arc::new(curate_stdlib::Workspace::open(&root).expect("workspace"));
    let ds = curate_stdlib::Dataset::new(ws.clone(), ws.scan_manifest().expect("scan")).expect("dataset");
    let ds = ds.derive(ds.lazy().limit(n as IdxSize)).expect("head");
    let paths: Vec<std::path::PathBuf> = ds.collect().expect("collect").column("path").expect("path").str().expect("str").iter().flatten().map(|p| ws.media_path(p)).collect();
    let (decode, _) = best(5, || paths.iter().map(|p| image::open(p).expect("decode").width()).sum::<u32>());
    println!("baseline: decode {} example images (sequential): {:.4} s", paths.len(), decode);
    let ctx = Context::quiet(root.clone(), Some(ws.clone()));
    let opts = GridOptions { n: Some(n as i64), ..Default::default() };
    let (sheet, pic) = best(5, || grid(&ctx, &ds, &opts).expect("grid"));
    println!("grid: {} tiles -> {}x{} PNG: {:.4} s = {:.1}x the decode baseline", paths.len(), pic.width, pic.height, sheet, sheet / decode);
    // Where the time goes: thumbnails, the sheet with captions, the PNG encoding.
    use curate_stdlib::plot::grid::{contact_sheet, thumbnail, Tile};
    let (thumbs, _) = best(3, || paths.iter().map(|p| thumbnail(Some(p), 128).map(|t| t.width()).unwrap_or(0)).sum::<u32>());
    let tiles: Vec<Tile> =
        paths.iter().map(|p| Tile { path: Some(p.clone()), lines: vec!["cifar/train/airplane/0001".into(), "no_person".into(), "pred no_person 0.93".into()], frame: None }).collect();
    let (composed, img) = best(3, || contact_sheet(&[tiles.clone()], 8, 128, "bench", false).expect("sheet"));
    let (encode, _) = best(3, || curate_stdlib::plot::encode_png(&img).expect("png"));
    println!("  of which: thumbnails (sequential) {thumbs:.4} s; sheet with captions (parallel thumbnails) {composed:.4} s; PNG encoding {encode:.4} s");

    // Post-ReLU-like embeddings: 12 clusters of non-negative features with overlapping noise
    // (the probe bench's data), so that the leading components stand out as in real ones.
    let mut rng = curate_kernels::SplitMix(5);
    let centres: Vec<Vec<f32>> = (0..12).map(|_| (0..dim).map(|_| rng.gauss().max(0.0)).collect()).collect();
    let mut data = Vec::with_capacity(m * dim);
    for i in 0..m {
        data.extend(centres[i % 12].iter().map(|x| (x + 1.5 * rng.gauss()).max(0.0)));
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let emb = curate_stdlib::store::write(tmp.path(), (0..m).map(|i| format!("{i:064x}")).collect(), data.clone(), dim, curate_stdlib::store::Layout::EMBEDDINGS).expect("store");
    let (scan, _) = best(3, || exact_search(&emb, Metric::Cosine, &data[..dim], 10, None).expect("search"));
    println!("baseline: one exact cosine scan of {m} x {dim}: {scan:.4} s");
    let (pca, (_, shares)) = best(1, || curate_kernels::pca::project(&data, dim, 2, 11));
    println!("PCA (2 components, power iteration): {pca:.3} s = {:.1} scans (variance shares {:.4}, {:.4})", pca / scan, shares[0], shares[1]);
}
