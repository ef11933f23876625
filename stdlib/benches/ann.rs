//! The ANN backends behind curate's index seam, on the same vectors: instant-distance (HNSW,
//! pure Rust), usearch (HNSW, f16) and curate's inverted lists (k-means + exact products within
//! the probed lists). Build time, recall@10 against exact search, query throughput on one
//! thread and on all, and for the growable ones, adding 1% new vectors against a rebuild.
//!
//! Run: cargo bench -p curate-stdlib --bench ann -- [N] [DIM] [BACKENDS] [ef=LIST]
//!      [probes=LIST] [data=hard|manifold|STORE_DIR] [noadd]
//!      (defaults 20000 1280 hnsw,usearch,ivf; a release build). `ef=128,256,512` also
//!      measures usearch at each search expansion, `probes=8,16,32` the inverted lists at each
//!      number of probed lists; `noadd` skips the incremental arm (a second build).
//! A plain main rather than criterion: building one index takes minutes, so it is measured once.
//!
//! Data (`data=`), both non-negative like pooled CNN features (post-ReLU):
//! - `hard` (default): 100 clusters, each member its centre plus isotropic noise in all 1280
//!   dimensions. Within a cluster every member is nearly equidistant from every other (relative
//!   contrast about 1.1), the worst case for a graph index: the top 10 is decided by noise.
//! - `manifold`: points near a low-dimensional manifold (a 24-d latent mixture mapped through a
//!   random ReLU layer, plus noise), with the relative contrast of real MobileNetV2 features
//!   (pass a store folder as `data=` to run on real vectors, e.g. the example workspace's
//!   `.curate/embeddings/mobilenet-*`).
//! Relative contrast (He, Kumar and Chang, 2012): mean distance over the distance to the
//! nearest neighbour (here the median over queries); the nearer to 1, the harder the search.

use std::time::Instant;

use curate_stdlib::index::{exact_search_many, AnnIndex, Backend, Metric, IVF_PROBES};
use curate_stdlib::progress::Silent;
use curate_stdlib::store::{self, Layout, Store};
use rayon::prelude::*;

fn hard(n: usize, dim: usize, queries: usize, rng: &mut curate_kernels::SplitMix) -> (Vec<f32>, Vec<Vec<f32>>) {
    let clusters = 100;
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| (0..dim).map(|_| rng.gauss().max(0.0)).collect()).collect();
    let mut data = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = &centres[i % clusters];
        data.extend(c.iter().map(|x| (x + 1.2 * rng.gauss()).max(0.0)));
    }
    let query_vecs = (0..queries).map(|q| centres[q % clusters].iter().map(|x| (x + 1.2 * rng.gauss()).max(0.0)).collect()).collect();
    (data, query_vecs)
}

/// Relative contrast of `queries` against the store (cosine distance): mean distance over the
/// nearest one, the median over queries. `skip_self`: the queries are stored rows, so each
/// one's nearest hit (itself) is left out.
fn relative_contrast(s: &Store, queries: &[Vec<f32>], skip_self: bool) -> f64 {
    let all = exact_search_many(s, Metric::Cosine, queries, s.len(), None).expect("search");
    let mut ratios: Vec<f64> = all
        .iter()
        .map(|hits| {
            let d: Vec<f64> = hits.iter().skip(usize::from(skip_self)).map(|h| h.distance as f64).collect();
            let mean = d.iter().sum::<f64>() / d.len().max(1) as f64;
            mean / d.first().copied().unwrap_or(mean).max(1e-9)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
}

fn recall(got: &[Vec<usize>], exact: &[Vec<usize>]) -> f64 {
    let hits: usize = got.iter().zip(exact).map(|(a, e)| a.iter().filter(|r| e.contains(r)).count()).sum();
    hits as f64 / (exact.len() * 10) as f64
}

/// Queries/s on one thread, and on all threads (queries in parallel), and the results.
fn run(index: &AnnIndex, queries: &[Vec<f32>]) -> (f64, f64, Vec<Vec<usize>>) {
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let t = Instant::now();
    let got: Vec<Vec<usize>> = one.install(|| queries.iter().map(|q| index.search(q, 10, 10).into_iter().map(|n| n.row).collect()).collect());
    let qps1 = queries.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let _: Vec<usize> = queries.par_iter().map(|q| index.search(q, 10, 10).len()).collect();
    let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
    (qps1, qps, got)
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let list = |key: &str| -> Vec<usize> { all.iter().find_map(|a| a.strip_prefix(key)).map(|l| l.split(',').filter_map(|x| x.parse().ok()).collect()).unwrap_or_default() };
    let efs = list("ef=");
    let probe_list = list("probes=");
    let data_kind = all.iter().find_map(|a| a.strip_prefix("data=")).unwrap_or("hard").to_string();
    let incremental = !all.iter().any(|a| a == "noadd");
    let args: Vec<String> = all.iter().filter(|a| !a.contains('=') && *a != "noadd").cloned().collect();
    let n_arg: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let dim_arg: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1280);
    let backends: Vec<Backend> = args.get(2).map_or("hnsw,usearch,ivf", String::as_str).split(',').filter_map(Backend::parse).collect();
    let n_queries = 1000;
    let mut rng = curate_kernels::SplitMix(42);
    let synthetic = matches!(data_kind.as_str(), "hard" | "manifold");
    let (n, dim, data, query_vecs) = match data_kind.as_str() {
        "hard" | "manifold" => {
            let (data, q) = if data_kind == "hard" { hard(n_arg, dim_arg, n_queries, &mut rng) } else { curate_kernels::synth::manifold(n_arg, dim_arg, n_queries, &mut rng) };
            (n_arg, dim_arg, data, q)
        }
        dir => {
            // Real vectors: every stored row, the queries a seeded sample of them.
            let real = Store::open(std::path::Path::new(dir)).expect("a vector store folder");
            let rows = real.len();
            let data: Vec<f32> = (0..rows).flat_map(|r| real.raw_row(r)).collect();
            let q = (0..n_queries.min(rows)).map(|_| real.raw_row((rng.next_u64() % rows as u64) as usize)).collect();
            (rows, real.dim(), data, q)
        }
    };
    // 99% first, then 1% more: the incremental case.
    let first = n - n / 100;
    let tmp = tempfile::tempdir().expect("tempdir");
    let hashes: Vec<String> = (0..n).map(|i| format!("{i:064x}")).collect();
    let emb = store::write(tmp.path(), hashes[..first].to_vec(), data[..first * dim].to_vec(), dim, Layout::EMBEDDINGS).expect("store");
    println!("ann: {n} vectors x {dim}-d ({data_kind}), {} queries, cosine, {} threads", query_vecs.len(), rayon::current_num_threads());
    println!("  usearch and hnsw: M=16 ef_construction=128 ef_search=128; ivf: sqrt(n) lists, {IVF_PROBES} probed");

    let t = Instant::now();
    let _ = exact_search_many(&emb, Metric::Cosine, &query_vecs[..1], 10, None).expect("search");
    let exact_one = t.elapsed().as_secs_f64();
    store::write_part(tmp.path(), hashes[first..].to_vec(), data[first * dim..].to_vec(), dim).expect("part");
    store::compact(tmp.path(), Layout::EMBEDDINGS).expect("compact");
    let full = Store::open(tmp.path()).expect("open");
    let t = Instant::now();
    let exact: Vec<Vec<usize>> = exact_search_many(&full, Metric::Cosine, &query_vecs, 10, None).expect("search").into_iter().map(|h| h.into_iter().map(|n| n.row).collect()).collect();
    let exact_batch = t.elapsed().as_secs_f64();
    println!("  exact (blocked sgemm): 1 query {exact_one:.4} s; {} queries {exact_batch:.3} s = {:.0} queries/s", query_vecs.len(), query_vecs.len() as f64 / exact_batch);
    if n <= 200_000 {
        let sample = &query_vecs[..100.min(query_vecs.len())];
        println!("  relative contrast (mean / nearest cosine distance, median of 100 queries): {:.3}", relative_contrast(&full, sample, !synthetic));
    }

    for backend in backends {
        let t = Instant::now();
        let index = AnnIndex::build(&full, Metric::Cosine, backend, &Silent).expect("build");
        let build = t.elapsed().as_secs_f64();
        let (qps1, qps, got) = run(&index, &query_vecs);
        let mut sizes = index.list_sizes();
        if !sizes.is_empty() {
            sizes.sort_unstable();
            let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
            // What a query scans: lists are probed in proportion to their size.
            let scanned = sizes.iter().map(|&s| (s * s) as f64).sum::<f64>() / sizes.iter().sum::<usize>().max(1) as f64;
            println!(
                "  {backend:?}: {} lists, sizes min {} median {} max {} (mean {mean:.0}; a probed list holds {scanned:.0} on average)",
                sizes.len(),
                sizes[0],
                sizes[sizes.len() / 2],
                sizes[sizes.len() - 1]
            );
        }
        println!(
            "  {backend:?}: build {build:.1} s, recall@10 {:.4}, {qps1:.0} queries/s on 1 thread, {qps:.0} on {} ({:.1}x the exact batch on 1 thread)",
            recall(&got, &exact),
            rayon::current_num_threads(),
            qps1 * exact_batch / query_vecs.len() as f64
        );
        let sweep: Vec<(&str, usize)> = match backend {
            Backend::Usearch => efs.iter().map(|&e| ("ef", e)).collect(),
            Backend::Ivf => probe_list.iter().map(|&p| ("probes", p)).collect(),
            Backend::Hnsw => vec![],
        };
        for (knob, value) in sweep {
            if knob == "ef" {
                index.set_expansion(value);
            } else {
                index.set_probes(value);
            }
            let (qps1, qps, got) = run(&index, &query_vecs);
            println!("  {backend:?}, {knob} {value}: recall@10 {:.4}, {qps1:.0} queries/s on 1 thread, {qps:.0} on {}", recall(&got, &exact), rayon::current_num_threads());
        }
        if backend != Backend::Hnsw && incremental {
            // Build on 99%, save, then add the last 1% to the saved index.
            let small = tempfile::tempdir().expect("tempdir");
            let part = store::write(small.path(), hashes[..first].to_vec(), data[..first * dim].to_vec(), dim, Layout::EMBEDDINGS).expect("store");
            let idx = AnnIndex::build(&part, Metric::Cosine, backend, &Silent).expect("build");
            idx.save(&part, part.rows()).expect("save");
            store::write_part(small.path(), hashes[first..].to_vec(), data[first * dim..].to_vec(), dim).expect("part");
            store::compact(small.path(), Layout::EMBEDDINGS).expect("compact");
            let grown = Store::open(small.path()).expect("open");
            let t = Instant::now();
            let updated = AnnIndex::update(&grown, Metric::Cosine, None, Some(backend), &Silent).expect("update").expect("a growable index");
            let add = t.elapsed().as_secs_f64();
            let (_, _, got) = run(&updated, &query_vecs);
            let t = Instant::now();
            updated.save(&grown, grown.rows()).expect("save");
            let save = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let opened = AnnIndex::load_fresh(&AnnIndex::path(grown.dir(), Metric::Cosine), &grown, Metric::Cosine).expect("fresh");
            let open = t.elapsed().as_secs_f64();
            println!(
                "  {backend:?}: adding {} vectors (1%) to the saved index {add:.2} s = {:.3} of a rebuild, recall@10 after {:.4}; save {save:.2} s, open {:.1} ms, {} vectors",
                n - first,
                add / build,
                recall(&got, &exact),
                open * 1e3,
                opened.live
            );
        }
    }
}
