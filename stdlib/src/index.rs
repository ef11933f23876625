//! Nearest-neighbour search over a model's vector store: exact search as blocked matrix
//! products over the mapped vectors, an inverted-file search for kNN within large sets, and an
//! HNSW index (instant-distance), built by `curate index`, persisted beside the store and stale
//! when the store changes.
//!
//! Cosine similarity normalises the vectors, so that squared L2 ranks like cosine distance;
//! distances are reported as `1 - cos` for cosine and as Euclidean distance for L2.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::store::Store;
use curate_kernels::knn::{self, Scoring};
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

#[derive(Serialize, Deserialize)]
pub struct AnnIndex {
    pub metric: Metric,
    /// The store's fingerprint when the index was built: stale when it changes.
    pub fingerprint: String,
    /// Maps each point to its store row.
    hnsw: curate_kernels::Hnsw,
}

pub struct Neighbour {
    /// Row in the vector store.
    pub row: usize,
    pub distance: f32,
}

impl Metric {
    fn scoring(self, store: &Store) -> Scoring<'_> {
        match self {
            Metric::Cosine => Scoring::Dot,
            Metric::L2 => Scoring::L2 { norms: store.norms() },
        }
    }

    /// The reported distance from a query (prepared) and a `Scoring` score.
    fn distance(self, query: &[f32], score: f32) -> f32 {
        match self {
            Metric::Cosine => (1.0 - score).max(0.0),
            Metric::L2 => (query.iter().map(|x| x * x).sum::<f32>() - score).max(0.0).sqrt(),
        }
    }

    /// A stored row as this metric compares it.
    fn point(self, store: &Store, row: usize) -> Vec<f32> {
        match self {
            Metric::Cosine => store.unit_row(row),
            Metric::L2 => store.raw_row(row),
        }
    }
}

/// The store's live rows (one per content hash), ascending.
pub fn live_rows(store: &Store) -> Result<Vec<u32>> {
    let mut rows: Vec<u32> = store.table()?.column("row")?.u32()?.into_no_null_iter().collect();
    rows.sort_unstable();
    Ok(rows)
}

impl AnnIndex {
    pub fn build(store: &Store, metric: Metric, progress: &dyn crate::progress::Progress) -> Result<Self> {
        let rows = live_rows(store)?;
        progress.start("building the index", rows.len() as u64);
        let points: Vec<Vector> = rows.iter().map(|&r| Vector(metric.point(store, r as usize))).collect();
        let hnsw = curate_kernels::build_hnsw(points, rows, 200, 128, 7);
        progress.finish();
        Ok(AnnIndex { metric, fingerprint: store.fingerprint().to_string(), hnsw })
    }

    pub fn path(cache_dir: &Path, metric: Metric) -> PathBuf {
        cache_dir.join(format!("index-{metric:?}.bin").to_lowercase())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, |f| {
            crate::store::failpoint("index:writing");
            bincode::serialize_into(std::io::BufWriter::new(f), self).map_err(|e| CurateError::io(path, e))
        })
    }

    /// Load the index at `path` if it is there and was built from exactly this store.
    pub fn load_fresh(path: &Path, store: &Store, metric: Metric) -> Option<Self> {
        let file = std::fs::File::open(path).ok()?;
        let idx: AnnIndex = bincode::deserialize_from(std::io::BufReader::new(file)).ok()?;
        (idx.metric == metric && idx.fingerprint == store.fingerprint()).then_some(idx)
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

/// Exact search for many queries (raw vectors) at once: one blocked matrix product over the
/// mapped store, restricted to `rows` when given (else every live row).
pub fn exact_search_many(store: &Store, metric: Metric, queries: &[Vec<f32>], k: usize, rows: Option<&[u32]>) -> Result<Vec<Vec<Neighbour>>> {
    let live;
    let rows = match rows {
        Some(r) => r,
        None => {
            live = live_rows(store)?;
            &live
        }
    };
    let dim = store.dim();
    let prepared: Vec<Vec<f32>> = queries.iter().map(|q| metric.prepare(q)).collect();
    if let Some(bad) = prepared.iter().find(|q| q.len() != dim) {
        return Err(CurateError::arg("similar", format!("a query vector has {} values, the stored vectors {dim}", bad.len())));
    }
    let flat: Vec<f32> = prepared.concat();
    let hits = knn::top_k(&flat, dim, store.matrix(), Some(rows), k, metric.scoring(store));
    Ok(hits
        .into_iter()
        .zip(&prepared)
        .map(|(hits, q)| hits.into_iter().map(|(row, score)| Neighbour { row: row as usize, distance: metric.distance(q, score) }).collect())
        .collect())
}

/// Exact search for one query: the reference the index is measured against.
pub fn exact_search(store: &Store, metric: Metric, query: &[f32], k: usize, rows: Option<&[u32]>) -> Result<Vec<Neighbour>> {
    Ok(exact_search_many(store, metric, &[query.to_vec()], k, rows)?.pop().unwrap_or_default())
}

/// For each of `rows`, its `k` nearest other rows among `rows`: exact (blocked matrix products)
/// for sets up to [`knn::EXACT_SELF_LIMIT`], beyond that by an inverted-file search (k-means
/// lists, exact products within the lists each row is near).
pub fn knn_within(store: &Store, metric: Metric, rows: &[usize], k: usize) -> Vec<Vec<Neighbour>> {
    let rows32: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let hits = knn::knn_self(store.matrix(), store.dim(), &rows32, k, metric.scoring(store), &knn::IvfParams::default());
    hits.into_iter()
        .zip(rows)
        .map(|(near, &r)| {
            let q = metric.point(store, r);
            near.into_iter().map(|(row, score)| Neighbour { row: row as usize, distance: metric.distance(&q, score) }).collect()
        })
        .collect()
}
