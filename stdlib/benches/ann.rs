//! The two ANN backends behind curate's index seam, on the same vectors: instant-distance (HNSW,
//! pure Rust) and usearch (HNSW, f16). Build time, recall@10 against exact search, query
//! throughput on one thread, and for usearch, adding 1% new vectors against a rebuild.
//!
//! Run: cargo bench -p curate-stdlib --bench ann -- [N] [DIM] [BACKENDS] [ef=LIST] [noadd]
//!      (defaults 20000 1280 hnsw,usearch; a release build). `ef=128,256,512` also measures
//!      usearch's recall and speed at each search expansion; `noadd` skips the incremental arm
//!      (a second build).
//! A plain main rather than criterion: building one index takes minutes, so it is measured once.
//! Vectors: clustered, non-negative (post-ReLU-like, as pooled CNN features are).

use std::time::Instant;

use curate_stdlib::index::{exact_search_many, AnnIndex, Backend, Metric};
use curate_stdlib::progress::Silent;
use curate_stdlib::store::{self, Layout, Store};

fn main() {
    let all: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let efs: Vec<usize> = all.iter().find_map(|a| a.strip_prefix("ef=")).map(|l| l.split(',').filter_map(|x| x.parse().ok()).collect()).unwrap_or_default();
    let incremental = !all.iter().any(|a| a == "noadd");
    let args: Vec<String> = all.into_iter().filter(|a| !a.contains('=') && a != "noadd").collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let dim: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1280);
    let backends: Vec<Backend> = args.get(2).map_or("hnsw,usearch", String::as_str).split(',').filter_map(Backend::parse).collect();
    let clusters = 100;
    let queries = 1000;
    let mut rng = curate_kernels::SplitMix(42);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| (0..dim).map(|_| rng.gauss().max(0.0)).collect()).collect();
    let mut data = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = &centres[i % clusters];
        data.extend(c.iter().map(|x| (x + 1.2 * rng.gauss()).max(0.0)));
    }
    let query_vecs: Vec<Vec<f32>> = (0..queries).map(|q| centres[q % clusters].iter().map(|x| (x + 1.2 * rng.gauss()).max(0.0)).collect()).collect();
    // 99% first, then 1% more: the incremental case.
    let first = n - n / 100;
    let tmp = tempfile::tempdir().expect("tempdir");
    let hashes: Vec<String> = (0..n).map(|i| format!("{i:064x}")).collect();
    let emb = store::write(tmp.path(), hashes[..first].to_vec(), data[..first * dim].to_vec(), dim, Layout::EMBEDDINGS).expect("store");
    println!("ann: {n} vectors x {dim}-d, {clusters} clusters, {queries} queries, cosine, M=16 ef_construction=128 ef_search=128, {} threads", rayon::current_num_threads());

    let t = Instant::now();
    let _ = exact_search_many(&emb, Metric::Cosine, &query_vecs[..1], 10, None).expect("search");
    let exact_one = t.elapsed().as_secs_f64();
    store::write_part(tmp.path(), hashes[first..].to_vec(), data[first * dim..].to_vec(), dim).expect("part");
    store::compact(tmp.path(), Layout::EMBEDDINGS).expect("compact");
    let full = Store::open(tmp.path()).expect("open");
    let t = Instant::now();
    let exact: Vec<Vec<usize>> = exact_search_many(&full, Metric::Cosine, &query_vecs, 10, None).expect("search").into_iter().map(|h| h.into_iter().map(|n| n.row).collect()).collect();
    let exact_batch = t.elapsed().as_secs_f64();
    println!("  exact (blocked sgemm): 1 query {exact_one:.4} s; {queries} queries {exact_batch:.3} s = {:.0} queries/s", queries as f64 / exact_batch);

    for backend in backends {
        let t = Instant::now();
        let index = AnnIndex::build(&full, Metric::Cosine, backend, &Silent).expect("build");
        let build = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ann: Vec<Vec<usize>> = query_vecs.iter().map(|q| index.search(q, 10, 10).into_iter().map(|n| n.row).collect()).collect();
        let qps = queries as f64 / t.elapsed().as_secs_f64();
        let hits: usize = ann.iter().zip(&exact).map(|(a, e)| a.iter().filter(|r| e.contains(r)).count()).sum();
        let recall = hits as f64 / (queries * 10) as f64;
        println!("  {backend:?}: build {build:.1} s, recall@10 {recall:.4}, {qps:.0} queries/s on 1 thread ({:.0}x the exact batch)", qps * exact_batch / queries as f64);
        if backend == Backend::Usearch {
            for &ef in &efs {
                index.set_expansion(ef);
                let t = Instant::now();
                let ann: Vec<Vec<usize>> = query_vecs.iter().map(|q| index.search(q, 10, 10).into_iter().map(|n| n.row).collect()).collect();
                let qps = queries as f64 / t.elapsed().as_secs_f64();
                let hits: usize = ann.iter().zip(&exact).map(|(a, e)| a.iter().filter(|r| e.contains(r)).count()).sum();
                println!("  usearch, ef {ef}: recall@10 {:.4}, {qps:.0} queries/s on 1 thread", hits as f64 / (queries * 10) as f64);
            }
        }
        if backend == Backend::Usearch && incremental {
            // Build on 99%, save, then add the last 1% to the saved index.
            let small = tempfile::tempdir().expect("tempdir");
            let part = store::write(small.path(), hashes[..first].to_vec(), data[..first * dim].to_vec(), dim, Layout::EMBEDDINGS).expect("store");
            let idx = AnnIndex::build(&part, Metric::Cosine, Backend::Usearch, &Silent).expect("build");
            idx.save(&part, part.rows()).expect("save");
            store::write_part(small.path(), hashes[first..].to_vec(), data[first * dim..].to_vec(), dim).expect("part");
            store::compact(small.path(), Layout::EMBEDDINGS).expect("compact");
            let grown = Store::open(small.path()).expect("open");
            let t = Instant::now();
            let updated = AnnIndex::update(&grown, Metric::Cosine, None, &Silent).expect("update").expect("a usearch index");
            let add = t.elapsed().as_secs_f64();
            let ann: Vec<Vec<usize>> = query_vecs.iter().map(|q| updated.search(q, 10, 10).into_iter().map(|n| n.row).collect()).collect();
            let hits: usize = ann.iter().zip(&exact).map(|(a, e)| a.iter().filter(|r| e.contains(r)).count()).sum();
            let t = Instant::now();
            updated.save(&grown, grown.rows()).expect("save");
            let save = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let opened = AnnIndex::load_fresh(&AnnIndex::path(grown.dir(), Metric::Cosine), &grown, Metric::Cosine).expect("fresh");
            let open = t.elapsed().as_secs_f64();
            println!(
                "  usearch: adding {} vectors (1%) to the saved index {add:.2} s = {:.3} of a rebuild, recall@10 after {:.4}; save {save:.2} s, open (mmap view) {:.1} ms, {} vectors",
                n - first,
                add / build,
                hits as f64 / (queries * 10) as f64,
                open * 1e3,
                opened.live
            );
        }
    }
}
