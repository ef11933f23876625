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

use crate::embed::Shard;
use crate::error::{CurateError, Result};
use crate::index::{Metric, Neighbour};
use crate::progress::Progress;
use crate::store::Store;
use crate::vectors::Registry;

/// Neighbours per image that `duplicates` considers.
pub const NEIGHBOURS: usize = 20;

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
pub fn stage(registry: &Registry, ds: &crate::Dataset, model: Option<&str>, shard: Shard, progress: &dyn Progress) -> Result<StageReport> {
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
    let floor = crate::primitives::duplicates::DEFAULT_LOOSE.min(crate::primitives::duplicates::DEFAULT_THRESHOLD);
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
    Ok(StageReport {
        shard: format!("{}/{}", shard.index, shard.count),
        model: model.name.clone(),
        images: hits.len(),
        candidates,
        phashes: items.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
