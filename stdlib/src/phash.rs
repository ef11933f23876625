//! Perceptual hashes of images, cached by content hash in `.curate/phash.parquet`: computed only
//! for the images that need one (near-duplicate candidates), in parallel, and kept.

use polars::prelude::*;
use rayon::prelude::*;

use crate::error::{CurateError, Result};
use crate::progress::Progress;
use crate::workspace::Workspace;

fn cache_path(ws: &Workspace) -> std::path::PathBuf {
    ws.cache_dir().join("phash.parquet")
}

/// Add another workspace's cached hashes to this one's (`curate merge`).
pub fn merge_cache(ws: &Workspace, other: &Workspace) -> Result<()> {
    let theirs = match std::fs::File::open(cache_path(other)) {
        Ok(f) => ParquetReader::new(f).finish().ok().filter(|df| df.column("hash").is_ok() && df.column("phash").is_ok()),
        Err(_) => None,
    };
    let Some(theirs) = theirs else { return Ok(()) };
    let dir = ws.cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| CurateError::io(&dir, e))?;
    let _lock = crate::store::lock_file(&dir, "phash.lock")?;
    let path = cache_path(ws);
    let mine = match std::fs::File::open(&path) {
        Ok(f) => ParquetReader::new(f).finish().ok().filter(|df| df.column("hash").is_ok() && df.column("phash").is_ok()),
        Err(_) => None,
    };
    let theirs = theirs.select(["hash", "phash"])?;
    let mut all = match mine {
        Some(m) => m.select(["hash", "phash"])?.vstack(&theirs)?.unique_stable(Some(&["hash".into()]), UniqueKeepStrategy::First, None)?,
        None => theirs,
    };
    crate::atomic::write_atomic(&path, |f| ParquetWriter::new(f).finish(&mut all).map(|_| ()).map_err(|e| CurateError::io(&path, e)))
}

/// The 64-bit DCT hash of each (content hash, manifest path), in order; `None` where the image
/// cannot be read or decoded (the caller falls back to the embedding alone).
pub fn hashes(ws: &Workspace, items: &[(String, String)], progress: &dyn Progress) -> Result<Vec<Option<u64>>> {
    let path = cache_path(ws);
    let cached = match std::fs::File::open(&path) {
        Ok(f) => ParquetReader::new(f).finish().ok(),
        Err(_) => None,
    }
    .filter(|df| df.column("hash").is_ok() && df.column("phash").is_ok());
    let wanted = DataFrame::new(items.len(), vec![Column::new("hash".into(), items.iter().map(|i| i.0.clone()).collect::<Vec<_>>())])?;
    let mut out: Vec<Option<u64>> = match &cached {
        Some(c) => wanted
            .lazy()
            .with_row_index("__order", None)
            .left_join(c.clone().lazy(), col("hash"), col("hash"))
            .sort(["__order"], SortMultipleOptions::default())
            .collect()?
            .column("phash")?
            .u64()?
            .iter()
            .collect(),
        None => vec![None; items.len()],
    };
    let missing: Vec<usize> = (0..items.len()).filter(|&i| out[i].is_none()).collect();
    if missing.is_empty() {
        return Ok(out);
    }
    progress.start("perceptual hashes", missing.len() as u64);
    let computed: Vec<(usize, Option<u64>)> = missing
        .par_iter()
        .map(|&i| {
            progress.advance(1);
            if progress.is_cancelled() {
                return (i, None);
            }
            let file = ws.media_path(&items[i].1);
            let h = crate::objects::read_any(&file).ok().and_then(|b| crate::preprocess::decode(&b).ok()).map(|img| curate_kernels::phash::phash(&img));
            (i, h)
        })
        .collect();
    progress.finish();
    if progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }
    let mut new_h = Vec::new();
    let mut new_p = Vec::new();
    for (i, h) in computed {
        out[i] = h;
        if let Some(h) = h {
            new_h.push(items[i].0.clone());
            new_p.push(h);
        }
    }
    if !new_h.is_empty() {
        // Shards of the dedupe stage share the cache: read it again under a lock, so that one
        // process's hashes do not overwrite another's.
        let dir = ws.cache_dir();
        std::fs::create_dir_all(&dir).map_err(|e| CurateError::io(&dir, e))?;
        let _lock = crate::store::lock_file(&dir, "phash.lock")?;
        let cached = match std::fs::File::open(&path) {
            Ok(f) => ParquetReader::new(f).finish().ok(),
            Err(_) => None,
        }
        .filter(|df| df.column("hash").is_ok() && df.column("phash").is_ok());
        let added = df!("hash" => new_h, "phash" => new_p)?;
        let mut all = match cached {
            Some(c) => c.select(["hash", "phash"])?.vstack(&added)?.unique_stable(Some(&["hash".into()]), UniqueKeepStrategy::First, None)?,
            None => added,
        };
        crate::atomic::write_atomic(&path, |f| ParquetWriter::new(f).finish(&mut all).map(|_| ()).map_err(|e| CurateError::io(&path, e)))?;
    }
    Ok(out)
}
