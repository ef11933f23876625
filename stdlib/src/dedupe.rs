//! Duplicates: [`duplicates`] clusters exact copies (the same content hash) and near ones (the
//! nearest rows by embedding, confirmed by perceptual hashes), and [`report`] summarises them
//! for `curate dedupe`.
//!
//! The dedupe stage, sharded (`curate dedupe --shard i/n`): the heavy part of `duplicates` at
//! scale is each image's nearest neighbours among all images (k-means lists, then exact
//! products within them) and the perceptual hashes of the candidate pairs. A shard computes
//! them for the images it owns by content hash, against all images, and leaves
//!
//! ```text
//! <store>/knn-k<k>-<store fingerprint>-<rows digest>.shard-<i>-of-<n>.arrow   row, near, distance
//! .curate/phash.parquet                                                      (the shared cache)
//! ```
//!
//! Once a whole set of n shards is there for the same vectors and the same images,
//! `duplicates` reads the neighbours instead of computing them. Each shard's rows are exactly
//! what one process computes for them ([`curate_kernels::knn::knn_self_of`]), so the clusters
//! are one process's, byte for byte.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::index::{Metric, Neighbour};
use crate::progress::Progress;
use crate::shard::Shard;
use crate::store::Store;
use crate::vectors::Registry;

/// Neighbours per image that `duplicates` considers (20 reach 98.9% of true pairs, 10 reach 98.4%).
pub const NEIGHBOURS: usize = 20;

// Measured by the `dedupe` bench on re-encoded (JPEG q40-75) and resized copies of 1,400 real
// photos (CIFAR-10, LFW faces and non-faces); see the README for the table.

/// A candidate pair at or above this cosine similarity may differ in twice `max_hamming` bits;
/// without perceptual hashes (`phash: false`, or an image that cannot be read) the embedding
/// alone decides at this similarity.
pub const DEFAULT_THRESHOLD: f64 = 0.9;
/// Pairs below this cosine similarity are never candidates.
pub const DEFAULT_LOOSE: f64 = 0.7;
/// Perceptual hashes (64-bit pHash) of a pair at or above `loose` may differ in this many bits.
pub const DEFAULT_MAX_HAMMING: u32 = 8;

/// The options of `duplicates` (see its doc).
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DuplicatesOptions {
    pub threshold: f64,
    pub loose: f64,
    pub max_hamming: u32,
    pub phash: bool,
    pub model: Option<String>,
    pub near: bool,
}

impl Default for DuplicatesOptions {
    fn default() -> Self {
        DuplicatesOptions { threshold: DEFAULT_THRESHOLD, loose: DEFAULT_LOOSE, max_hamming: DEFAULT_MAX_HAMMING, phash: true, model: None, near: true }
    }
}

/// Union-find over sample indices.
struct Groups {
    parent: Vec<usize>,
}

impl Groups {
    fn new(n: usize) -> Self {
        Groups { parent: (0..n).collect() }
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Clusters of exact and near duplicates among `ds`'s samples: one row per sample in a cluster,
/// with `cluster`, `cluster_size`, `similarity` and `leak` (`ds.duplicates(opts)`).
pub fn duplicates(registry: &Registry, ds: &Dataset, opts: &DuplicatesOptions, progress: &dyn Progress) -> Result<Dataset> {
    if !(0.0..=1.0).contains(&opts.loose) {
        return Err(CurateError::InvalidOption { function: "duplicates".into(), key: "loose".into(), message: format!("a cosine similarity in [0, 1], got {}", opts.loose) });
    }
    if !(0.0..=1.0).contains(&opts.threshold) {
        return Err(CurateError::InvalidOption { function: "duplicates".into(), key: "threshold".into(), message: format!("a cosine similarity in [0, 1], got {}", opts.threshold) });
    }
    let df = ds.lazy().select([col("id"), col("hash"), col("split"), col("path")]).collect()?;
    let paths: Vec<String> = df.column("path")?.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect();
    let ids: Vec<String> = df.column("id")?.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect();
    let hashes: Vec<Option<String>> = df.column("hash")?.str()?.iter().map(|v| v.map(str::to_string)).collect();
    let splits: Vec<Option<String>> = df.column("split")?.cast(&DataType::String)?.str()?.iter().map(|v| v.map(str::to_string)).collect();
    let index_of: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut groups = Groups::new(ids.len());
    let mut similarity: Vec<f64> = vec![f64::NAN; ids.len()];

    let mut first_with_hash: HashMap<&str, usize> = HashMap::new();
    for (i, h) in hashes.iter().enumerate() {
        let Some(h) = h else { continue };
        if let Some(&j) = first_with_hash.get(h.as_str()) {
            groups.union(i, j);
            similarity[i] = 1.0;
            similarity[j] = 1.0;
        } else {
            first_with_hash.insert(h, i);
        }
    }

    if opts.near {
        let (view, rows, neighbours) = knn_view(registry, ds, opts.model.as_deref(), NEIGHBOURS)?;
        let floor = if opts.phash { opts.loose.min(opts.threshold) } else { opts.threshold };
        // Candidate pairs (sample index, sample index, cosine) from each row's nearest rows.
        let mut candidates: Vec<(usize, usize, f64)> = Vec::new();
        for (r, near) in rows.iter().zip(neighbours) {
            let a = index_of[view.ids_of(*r)[0].as_str()];
            for n in near {
                let sim = 1.0 - n.distance as f64;
                if sim >= floor {
                    candidates.push((a, index_of[view.ids_of(n.row)[0].as_str()], sim));
                }
            }
        }
        // The perceptual hashes of every candidate's images (cached by content hash).
        let mut phash_of: HashMap<usize, u64> = HashMap::new();
        if opts.phash && !candidates.is_empty() {
            let mut involved: Vec<usize> = candidates.iter().flat_map(|c| [c.0, c.1]).collect();
            involved.sort_unstable();
            involved.dedup();
            let items: Vec<(String, String)> = involved.iter().map(|&i| (hashes[i].clone().unwrap_or_default(), paths[i].clone())).collect();
            let ph = crate::phash::hashes(ds.workspace(), &items, progress)?;
            phash_of = involved.iter().zip(ph).filter_map(|(&i, h)| h.map(|h| (i, h))).collect();
        }
        for (a, b, sim) in candidates {
            let alike = match (phash_of.get(&a), phash_of.get(&b)) {
                (Some(&x), Some(&y)) => {
                    let bits = curate_kernels::phash::hamming(x, y);
                    (sim >= opts.loose && bits <= opts.max_hamming) || (sim >= opts.threshold && bits <= opts.max_hamming.saturating_mul(2))
                }
                _ => sim >= opts.threshold,
            };
            if !alike {
                continue;
            }
            groups.union(a, b);
            for x in [a, b] {
                if similarity[x].is_nan() || sim > similarity[x] {
                    similarity[x] = sim;
                }
            }
        }
        // Identical files share a vector row; give every one of them the row's similarity.
        for (_, members) in view.groups() {
            let best = members.iter().map(|m| similarity[index_of[m.as_str()]]).fold(f64::NAN, f64::max);
            for m in members {
                let i = index_of[m.as_str()];
                if similarity[i].is_nan() || best > similarity[i] {
                    similarity[i] = best;
                }
            }
        }
    }

    let mut clusters: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..ids.len() {
        let root = groups.find(i);
        clusters.entry(root).or_default().push(i);
    }
    let mut clusters: Vec<Vec<usize>> = clusters.into_values().filter(|c| c.len() > 1).collect();
    clusters.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| ids[a[0]].cmp(&ids[b[0]])));
    let (mut out_id, mut out_cluster, mut out_size, mut out_sim, mut out_leak) = (vec![], vec![], vec![], vec![], vec![]);
    for (c, members) in clusters.iter().enumerate() {
        let distinct_splits: std::collections::HashSet<&Option<String>> = members.iter().map(|&i| &splits[i]).collect();
        for &i in members {
            out_id.push(ids[i].clone());
            out_cluster.push(c as i64);
            out_size.push(members.len() as i64);
            out_sim.push(similarity[i]);
            out_leak.push(distinct_splits.len() > 1);
        }
    }
    let hits = df!("id" => out_id, "cluster" => out_cluster, "cluster_size" => out_size, "similarity" => out_sim, "leak" => out_leak)?;
    ds.derive(ds.annotate(hits).sort(["cluster", "id"], SortMultipleOptions::default()))
}

/// What names a set of shard parts: the neighbour count, the vectors and the images.
fn key(store: &Store, rows: &[usize], k: usize) -> String {
    let mut h = blake3::Hasher::new();
    for r in rows {
        h.update(&(*r as u64).to_le_bytes());
    }
    let fp = store.fingerprint();
    format!("knn-k{k}-{}-{}", &fp[..16.min(fp.len())], &h.finalize().to_hex()[..16])
}

fn part_path(store: &Store, key: &str, shard: Shard) -> PathBuf {
    store.dir().join(format!("{key}.shard-{}-of-{}.arrow", shard.index, shard.count))
}

fn io(path: &Path, e: impl std::fmt::Display) -> CurateError {
    CurateError::io(path, e.to_string())
}

/// Compute and save the neighbours of the shard's rows (positions of `rows` whose content hash
/// the shard owns) among all `rows`. Returns them, by position.
/// `hash_of` maps the store's rows to their content hashes.
pub fn write_shard(store: &Store, rows: &[usize], k: usize, shard: Shard, hash_of: &HashMap<u32, String>) -> Result<Vec<(usize, Vec<Neighbour>)>> {
    let queries: Vec<usize> = (0..rows.len()).filter(|&i| hash_of.get(&(rows[i] as u32)).is_some_and(|h| shard.owns(h))).collect();
    let hits = crate::index::knn_within_of(store, Metric::Cosine, rows, &queries, k);
    let (mut row, mut near, mut distance) = (Vec::new(), Vec::new(), Vec::new());
    for (&i, hs) in queries.iter().zip(&hits) {
        if hs.is_empty() {
            row.push(rows[i] as u32);
            near.push(None);
            distance.push(None);
        }
        for n in hs {
            row.push(rows[i] as u32);
            near.push(Some(n.row as u32));
            distance.push(Some(n.distance));
        }
    }
    let mut df = df!("row" => row, "near" => near, "distance" => distance)?;
    let key = key(store, rows, k);
    let path = part_path(store, &key, shard);
    crate::atomic::write_atomic(&path, |f| IpcWriter::new(f).finish(&mut df).map_err(|e| io(&path, e)))?;
    // Parts for other vectors or images are stale now.
    for e in std::fs::read_dir(store.dir()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(&format!("knn-k{k}-")) && name.ends_with(".arrow") && !name.starts_with(&key) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(queries.into_iter().zip(hits).collect())
}

/// How many shards a whole set of saved neighbours for these rows has, if there is one.
pub fn shards_saved(store: &Store, rows: &[usize], k: usize) -> Option<usize> {
    let key = key(store, rows, k);
    let prefix = format!("{key}.shard-");
    let mut counts: Vec<usize> = std::fs::read_dir(store.dir())
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix(&prefix)?.strip_suffix(".arrow")?.split_once("-of-")?.1.parse().ok()
        })
        .collect();
    counts.sort_unstable();
    counts.dedup();
    counts.into_iter().rev().find(|&n| (0..n).all(|index| part_path(store, &key, Shard { index, count: n }).is_file()))
}

/// The saved neighbours of every one of `rows`, in order, from a whole set of shards.
pub fn load(store: &Store, rows: &[usize], k: usize) -> Option<Vec<Vec<Neighbour>>> {
    let count = shards_saved(store, rows, k)?;
    let key = key(store, rows, k);
    let mut by_row: HashMap<u32, Vec<Neighbour>> = HashMap::with_capacity(rows.len());
    for index in 0..count {
        let path = part_path(store, &key, Shard { index, count });
        let df = IpcReader::new(std::fs::File::open(&path).ok()?).finish().ok()?;
        let (row, near, distance) = (df.column("row").ok()?.u32().ok()?.clone(), df.column("near").ok()?.u32().ok()?.clone(), df.column("distance").ok()?.f32().ok()?.clone());
        for ((r, n), d) in row.iter().zip(near.iter()).zip(distance.iter()) {
            let list = by_row.entry(r?).or_default();
            if let (Some(n), Some(d)) = (n, d) {
                list.push(Neighbour { row: n as usize, distance: d });
            }
        }
    }
    rows.iter().map(|r| by_row.remove(&(*r as u32))).collect()
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StageReport {
    pub shard: String,
    pub model: String,
    /// Images whose neighbours this shard computed.
    pub images: usize,
    /// Of their neighbour pairs, those close enough to be duplicate candidates.
    pub candidates: usize,
    /// Images whose perceptual hash the candidates needed (computed now or cached).
    pub phashes: usize,
    pub seconds: f64,
}

/// One shard of the dedupe stage over `ds` (the workspace's samples, for `curate dedupe`).
pub fn stage(registry: &Registry, ds: &Dataset, model: Option<&str>, shard: Shard, progress: &dyn Progress) -> Result<StageReport> {
    let started = std::time::Instant::now();
    let ws = ds.workspace().clone();
    let (model, vectors, view) = registry.embedded_view(ds, model)?;
    let rows = view.rows().to_vec();
    let hash_of: HashMap<u32, String> = vectors.entries()?.into_iter().map(|(h, r)| (r, h)).collect();
    progress.start("nearest neighbours", 1);
    let hits = write_shard(&vectors, &rows, NEIGHBOURS, shard, &hash_of)?;
    progress.advance(1);
    progress.finish();
    // The perceptual hashes `duplicates` will want for this shard's candidates.
    let floor = DEFAULT_LOOSE.min(DEFAULT_THRESHOLD);
    let mut involved: Vec<usize> = Vec::new();
    let mut candidates = 0;
    for (i, near) in &hits {
        for n in near {
            if 1.0 - f64::from(n.distance) >= floor {
                candidates += 1;
                involved.push(rows[*i]);
                involved.push(n.row);
            }
        }
    }
    involved.sort_unstable();
    involved.dedup();
    let df = ds.lazy().select([col("id"), col("path")]).collect()?;
    let path_of: HashMap<&str, &str> = df.column("id")?.str()?.iter().zip(df.column("path")?.str()?.iter()).filter_map(|(i, p)| Some((i?, p?))).collect();
    let items: Vec<(String, String)> = involved
        .iter()
        .filter_map(|&r| {
            let id = view.ids_of(r).first()?;
            Some((hash_of.get(&(r as u32))?.clone(), path_of.get(id.as_str())?.to_string()))
        })
        .collect();
    crate::phash::hashes(&ws, &items, progress)?;
    Ok(StageReport { shard: format!("{}/{}", shard.index, shard.count), model: model.name.clone(), images: hits.len(), candidates, phashes: items.len(), seconds: started.elapsed().as_secs_f64() })
}

/// One sample in a cluster of duplicates.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DuplicateRow {
    pub id: String,
    pub cluster: i64,
    pub cluster_size: i64,
    /// To its closest member (1 for an exact copy).
    pub similarity: f64,
    /// Its cluster spans more than one split.
    pub leak: bool,
}

/// The duplicates of a whole dataset, as `curate dedupe` reports them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DedupeReport {
    /// Samples in clusters of duplicates.
    pub images: usize,
    pub clusters: usize,
    /// Samples in clusters that span splits.
    pub leaks: usize,
    /// The number of shards whose saved neighbours were read, if a whole set was there.
    pub shards: Option<usize>,
    pub seconds: f64,
    /// By cluster, then id.
    pub duplicates: Vec<DuplicateRow>,
}

/// The duplicates of `ds` by `model`'s embeddings with the default options (reading a whole set
/// of shards' neighbours when one is saved for these vectors and samples).
pub fn report(registry: &Registry, ds: &Dataset, model: Option<&str>, progress: &dyn Progress) -> Result<DedupeReport> {
    let started = std::time::Instant::now();
    let (_, vectors, view) = registry.embedded_view(ds, model)?;
    let shards = shards_saved(&vectors, view.rows(), NEIGHBOURS);
    let opts = DuplicatesOptions { model: model.map(str::to_string), ..Default::default() };
    let table = duplicates(registry, ds, &opts, progress)?.lazy().select([col("id"), col("cluster"), col("cluster_size"), col("similarity"), col("leak")]).collect()?;
    let (id, cluster, size, similarity, leak) =
        (table.column("id")?.str()?, table.column("cluster")?.i64()?, table.column("cluster_size")?.i64()?, table.column("similarity")?.f64()?, table.column("leak")?.bool()?);
    let rows: Vec<DuplicateRow> = (0..table.height())
        .map(|i| DuplicateRow {
            id: id.get(i).unwrap_or_default().to_string(),
            cluster: cluster.get(i).unwrap_or_default(),
            cluster_size: size.get(i).unwrap_or_default(),
            similarity: similarity.get(i).unwrap_or(f64::NAN),
            leak: leak.get(i).unwrap_or_default(),
        })
        .collect();
    let clusters = rows.iter().map(|r| r.cluster).collect::<std::collections::HashSet<_>>().len();
    let leaks = rows.iter().filter(|r| r.leak).count();
    Ok(DedupeReport { images: rows.len(), clusters, leaks, shards, seconds: started.elapsed().as_secs_f64(), duplicates: rows })
}

/// The cosine k nearest neighbours of every embedded sample of `ds` among the others, by vector
/// row, with the view that maps rows back to ids. Errors when nothing is embedded. A whole set
/// of shards' neighbours (`curate dedupe --shard i/n`) for exactly these vectors and images is
/// read, not computed again.
pub fn knn_view(registry: &Registry, ds: &crate::Dataset, model: Option<&str>, k: usize) -> Result<(std::sync::Arc<crate::vectors::View>, Vec<usize>, Vec<Vec<Neighbour>>)> {
    let (_, vectors, view) = registry.embedded_view(ds, model)?;
    let rows = view.rows().to_vec();
    let neighbours = match load(&vectors, &rows, k) {
        Some(n) => n,
        None => crate::index::knn_within(&vectors, Metric::Cosine, &rows, k),
    };
    Ok((view, rows, neighbours))
}
