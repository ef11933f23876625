//! `curate merge WORKSPACE...`: bring the cached model outputs (embeddings and predictions) of
//! other workspaces into this one, for shards that ran on machines sharing no filesystem (each
//! with its own copy of the workspace; `examples/cluster/`). Shards that share the workspace need
//! no merge: their parts are merged by the next command.
//!
//! From each source, the parts it has not compacted are copied as they are (part names are
//! unique per process, so a part already copied is not copied twice), and the rows of its
//! compacted store are written as new parts; then this workspace's stores are compacted, once.
//! Sources are only read. Every write is a new part written atomically, so an interrupted merge
//! leaves this workspace's stores as they were, plus whole parts the next command merges.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::embed::Kind;
use crate::error::{CurateError, Result};
use crate::progress::Progress;
use crate::store::{self, Store};
use crate::workspace::Workspace;

/// Rows of a source store per part written here.
const ROWS_PER_PART: usize = 100_000;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MergeReport {
    pub sources: Vec<String>,
    /// One entry per store of this workspace that received anything.
    pub stores: Vec<MergedStore>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MergedStore {
    /// `embeddings/<model>-<hash>` or `predictions/<model>-<hash>`.
    pub store: String,
    /// Uncompacted parts copied from the sources.
    pub parts: usize,
    /// Rows taken from the sources' compacted stores.
    pub rows: usize,
    /// Images the store holds after the merge.
    pub stored: usize,
}

pub fn merge(ws: &Workspace, sources: &[&Path], progress: &dyn Progress) -> Result<MergeReport> {
    let mut report = MergeReport::default();
    let mut touched: BTreeMap<String, (PathBuf, Kind, MergedStore)> = BTreeMap::new();
    let sources: Vec<Workspace> = sources.iter().map(|s| Workspace::discover(s)).collect::<Result<_>>()?;
    progress.start("merging shards", sources.len() as u64);
    for src in &sources {
        if src.root().canonicalize().ok() == ws.root().canonicalize().ok() {
            return Err(CurateError::arg("merge", format!("{} is this workspace", src.root().display())));
        }
        report.sources.push(src.root().display().to_string());
        for kind in [Kind::Embedding, Kind::Scores] {
            let folder = kind.folder();
            let base = src.cache_dir().join(folder);
            let Ok(entries) = std::fs::read_dir(&base) else { continue };
            let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
            dirs.sort();
            for dir in dirs {
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let target = ws.cache_dir().join(folder).join(&name);
                std::fs::create_dir_all(&target).map_err(|e| CurateError::io(&target, e))?;
                let entry = touched.entry(format!("{folder}/{name}")).or_insert_with(|| (target.clone(), kind, MergedStore { store: format!("{folder}/{name}"), ..Default::default() }));
                for part in store::part_files(&dir)? {
                    let Some(file) = part.file_name() else { continue };
                    let to = target.join(file);
                    if to.exists() {
                        continue;
                    }
                    let mut from = std::fs::File::open(&part).map_err(|e| CurateError::io(&part, e))?;
                    crate::atomic::write_atomic(&to, |f| std::io::copy(&mut from, f).map(|_| ()).map_err(|e| CurateError::io(&part, e)))?;
                    entry.2.parts += 1;
                }
                // The dedupe stage's shards (`curate dedupe --shard`), keyed by the vectors they
                // were computed on: used here once the stores match, which equal work gives.
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    let to = target.join(&name);
                    if name.starts_with("knn-") && name.ends_with(".arrow") && !to.exists() {
                        let mut from = std::fs::File::open(e.path()).map_err(|err| CurateError::io(e.path(), err))?;
                        crate::atomic::write_atomic(&to, |f| std::io::copy(&mut from, f).map(|_| ()).map_err(|err| CurateError::io(e.path(), err)))?;
                    }
                }
                let stored = Store::open(&dir)?;
                if stored.is_empty() {
                    continue;
                }
                let mut rows: Vec<(String, u32)> = stored.entries()?;
                rows.sort_by_key(|r| r.1);
                for chunk in rows.chunks(ROWS_PER_PART) {
                    let mut vectors = Vec::with_capacity(chunk.len() * stored.dim());
                    for (_, row) in chunk {
                        vectors.extend(stored.raw_row(*row as usize));
                    }
                    let hashes: Vec<String> = chunk.iter().map(|r| r.0.clone()).collect();
                    store::write_part(&target, hashes, vectors, stored.dim())?;
                    entry.2.rows += chunk.len();
                }
            }
        }
        crate::phash::merge_cache(ws, src)?;
        progress.advance(1);
        if progress.is_cancelled() {
            progress.finish();
            return Err(CurateError::Interrupted);
        }
    }
    progress.finish();
    for (_, (dir, kind, mut merged)) in touched {
        if merged.parts == 0 && merged.rows == 0 {
            continue;
        }
        store::compact(&dir, kind.layout())?;
        merged.stored = Store::open(&dir)?.len();
        report.stores.push(merged);
    }
    Ok(report)
}
