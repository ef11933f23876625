//! Nearest-neighbour search over a model's cached embeddings: an HNSW index (instant-distance),
//! built on demand, persisted beside the cache and rebuilt when the cached set changes, plus the
//! exact brute-force search it is measured against.
//!
//! Cosine similarity normalises the vectors, so that squared L2 ranks like cosine distance;
//! distances are reported as `1 - cos` for cosine and as Euclidean distance for L2.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::embed::Embeddings;
use crate::error::{CurateError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    #[default]
    Cosine,
    L2,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cosine" => Some(Metric::Cosine),
            "l2" | "euclidean" => Some(Metric::L2),
            _ => None,
        }
    }

    /// Prepare a vector for this metric (normalise for cosine).
    pub fn prepare(self, v: &[f32]) -> Vec<f32> {
        match self {
            Metric::L2 => v.to_vec(),
            Metric::Cosine => curate_kernels::normalized(v),
        }
    }

    /// The reported distance from a squared L2 distance between prepared vectors.
    pub fn report(self, sq: f32) -> f32 {
        match self {
            Metric::L2 => sq.max(0.0).sqrt(),
            Metric::Cosine => (sq / 2.0).max(0.0),
        }
    }
}

pub use curate_kernels::{sq_l2, Vector};

/// A fingerprint of the vector set: the index is stale when it changes.
pub fn fingerprint(hashes: &[String]) -> String {
    let mut sorted: Vec<&String> = hashes.iter().collect();
    sorted.sort();
    let mut h = blake3::Hasher::new();
    for s in sorted {
        h.update(s.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

#[derive(Serialize, Deserialize)]
pub struct AnnIndex {
    pub metric: Metric,
    pub fingerprint: String,
    /// Row of each point in the `Embeddings` it was built from.
    hnsw: curate_kernels::Hnsw,
}

pub struct Neighbour {
    /// Row in the `Embeddings`.
    pub row: usize,
    pub distance: f32,
}

impl AnnIndex {
    pub fn build(emb: &Embeddings, metric: Metric) -> Self {
        let points: Vec<Vector> = (0..emb.len()).map(|i| Vector(metric.prepare(emb.row(i)))).collect();
        let hnsw = curate_kernels::build_hnsw(points, 200, 128, 7);
        AnnIndex { metric, fingerprint: fingerprint(&emb.hashes), hnsw }
    }

    pub fn path(cache_dir: &Path, metric: Metric) -> PathBuf {
        cache_dir.join(format!("index-{metric:?}.bin").to_lowercase())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, |f| {
            bincode::serialize_into(std::io::BufWriter::new(f), self).map_err(|e| CurateError::io(path, e))
        })
    }

    /// Load the index at `path` if it is there and was built from exactly these vectors.
    pub fn load_fresh(path: &Path, emb: &Embeddings, metric: Metric) -> Option<Self> {
        let file = std::fs::File::open(path).ok()?;
        let idx: AnnIndex = bincode::deserialize_from(std::io::BufReader::new(file)).ok()?;
        (idx.metric == metric && idx.fingerprint == fingerprint(&emb.hashes)).then_some(idx)
    }

    /// The `k` nearest rows to `query` (a raw vector). The graph holds the full prepared
    /// vectors, so the distances it reports are exact; only the neighbour set is approximate.
    pub fn search(&self, query: &[f32], k: usize, candidates: usize) -> Vec<Neighbour> {
        let q = Vector(self.metric.prepare(query));
        // The index ranks by squared L2 between prepared vectors, which is exact for them.
        let mut out: Vec<Neighbour> = curate_kernels::search_hnsw(&self.hnsw, &q, candidates.max(k))
            .into_iter()
            .map(|(row, sq)| Neighbour { row, distance: self.metric.report(sq) })
            .collect();
        out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.row.cmp(&b.row)));
        out.truncate(k);
        out
    }
}

/// Exact search: the reference the index is measured against.
pub fn exact_search(emb: &Embeddings, metric: Metric, query: &[f32], k: usize, rows: Option<&[usize]>) -> Vec<Neighbour> {
    let q = metric.prepare(query);
    let rows: Vec<usize> = match rows {
        Some(r) => r.to_vec(),
        None => (0..emb.len()).collect(),
    };
    let prepared: Vec<Vec<f32>> = rows.iter().map(|&r| metric.prepare(emb.row(r))).collect();
    curate_kernels::nearest(&prepared, &q, k)
        .into_iter()
        .map(|(j, sq)| Neighbour { row: rows[j], distance: metric.report(sq) })
        .collect()
}

/// For each of `rows`, its `k` nearest other rows among `rows`: by brute force (exact, in
/// parallel), or through `index` for large sets.
pub fn knn_within(emb: &Embeddings, metric: Metric, rows: &[usize], k: usize, index: Option<&AnnIndex>) -> Vec<Vec<Neighbour>> {
    use rayon::prelude::*;
    let member: std::collections::HashSet<usize> = rows.iter().copied().collect();
    match index {
        Some(idx) => rows
            .par_iter()
            .map(|&r| {
                let fetch = (k + 1) * 4;
                let mut hits: Vec<Neighbour> = idx.search(emb.row(r), fetch, fetch).into_iter().filter(|n| n.row != r && member.contains(&n.row)).collect();
                hits.truncate(k);
                hits
            })
            .collect(),
        None => {
            let prepared: Vec<Vec<f32>> = rows.iter().map(|&r| metric.prepare(emb.row(r))).collect();
            curate_kernels::knn_brute(&prepared, k)
                .into_iter()
                .map(|near| near.into_iter().map(|(j, sq)| Neighbour { row: rows[j], distance: metric.report(sq) }).collect())
                .collect()
        }
    }
}
