//! HNSW (instant-distance, through curate's index) against exact search on the same vectors:
//! recall@10, build time and query throughput, on synthetic clustered vectors.
//!
//! Run: cargo bench -p curate-stdlib --bench ann -- [N] [DIM]   (defaults 100000 128)
//! A plain main rather than criterion: building one index takes minutes, so it is measured once.

use std::time::Instant;

use curate_stdlib::index::{exact_search, AnnIndex, Metric};



fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dim: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(128);
    let clusters = 100;
    let queries = 1000;
    let mut rng = curate_kernels::SplitMix(42);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| (0..dim).map(|_| rng.gauss()).collect()).collect();
    let mut data = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = &centres[i % clusters];
        data.extend(c.iter().map(|x| x + 0.5 * rng.gauss()));
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let emb = curate_stdlib::store::write(tmp.path(), (0..n).map(|i| format!("{i:064x}")).collect(), data, dim, curate_stdlib::store::Layout::EMBEDDINGS).expect("store");
    let query_vecs: Vec<Vec<f32>> = (0..queries)
        .map(|q| centres[q % clusters].iter().map(|x| x + 0.5 * rng.gauss()).collect())
        .collect();

    let t = Instant::now();
    let index = AnnIndex::build(&emb, Metric::Cosine, &curate_stdlib::progress::Silent).expect("build");
    let build = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let ann: Vec<Vec<usize>> = query_vecs.iter().map(|q| index.search(q, 10, 10).into_iter().map(|n| n.row).collect()).collect();
    let ann_qps = queries as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let exact: Vec<Vec<usize>> = query_vecs.iter().map(|q| exact_search(&emb, Metric::Cosine, q, 10, None).expect("search").into_iter().map(|n| n.row).collect()).collect();
    let exact_qps = queries as f64 / t.elapsed().as_secs_f64();

    let hits: usize = ann.iter().zip(&exact).map(|(a, e)| a.iter().filter(|r| e.contains(r)).count()).sum();
    let recall = hits as f64 / (queries * 10) as f64;
    println!("ann: {n} vectors x {dim}-d, {clusters} clusters, {queries} queries, cosine, M=default ef_construction=200 ef_search=128");
    println!("  build {build:.1} s on {} threads", rayon::current_num_threads());
    println!("  HNSW  {ann_qps:.0} queries/s (1 thread), recall@10 {recall:.4}");
    println!("  exact {exact_qps:.0} queries/s (1 thread)");
    println!("  speed-up {:.1}x", ann_qps / exact_qps);
}
