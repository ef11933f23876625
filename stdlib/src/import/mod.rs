//! `curate import`: build the manifest from an image folder, a CSV/JSONL/Parquet table, or COCO
//! instances JSON, then scan every image (size, format, content hash) and write the manifest
//! atomically.

mod coco;
mod folder;
pub mod table;
pub mod vectors;

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{CurateError, Result};
use crate::manifest;
use crate::progress::Progress;
use crate::scan::{self, ScanReport};
use crate::workspace::Workspace;

pub use coco::CocoOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    Folder,
    Csv,
    Jsonl,
    Parquet,
    Coco,
}

impl ImportFormat {
    pub const NAMES: [&'static str; 5] = ["folder", "csv", "jsonl", "parquet", "coco"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "folder" => Some(Self::Folder),
            "csv" => Some(Self::Csv),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "parquet" => Some(Self::Parquet),
            "coco" => Some(Self::Coco),
            _ => None,
        }
    }

    /// Guess the format from the source: a directory, or a file's extension. A `.json` file is
    /// taken for COCO, since a plain JSON array is not a manifest format we read.
    pub fn detect(source: &Path) -> Option<Self> {
        if source.is_dir() {
            return Some(Self::Folder);
        }
        match source.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "parquet" => Some(Self::Parquet),
            "json" => Some(Self::Coco),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The source format; detected from the source when `None`.
    pub format: Option<ImportFormat>,
    /// Set this split on every imported row (overrides what the source says).
    pub split: Option<String>,
    /// Put this in front of every derived id, to keep ids from two sources apart.
    pub id_prefix: Option<String>,
    /// Add to the existing manifest instead of replacing it.
    pub append: bool,
    pub coco: CocoOptions,
    /// Scan only this shard of the rows (by id) and leave the scan for the import that writes
    /// the manifest, instead of writing it.
    pub shard: Option<crate::embed::Shard>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub format: ImportFormat,
    pub imported: usize,
    pub total: usize,
    pub manifest: PathBuf,
    pub scan: ScanReport,
    /// `i/n` when this run scanned one shard (and wrote no manifest).
    pub shard: Option<String>,
}

/// Import `source` into the workspace's manifest.
pub fn import(ws: &Workspace, source: &Path, opts: &ImportOptions, progress: &dyn Progress) -> Result<ImportReport> {
    let remote = source.to_str().filter(|s| crate::objects::is_url(s));
    if remote.is_none() && !source.exists() {
        return Err(CurateError::import(source, "not found"));
    }
    // In object storage: a table (CSV, JSONL, Parquet) or COCO JSON is fetched and read;
    // anything else is a prefix of images.
    let detected = match remote {
        Some(_) => Some(match ImportFormat::detect(source) {
            Some(f @ (ImportFormat::Csv | ImportFormat::Jsonl | ImportFormat::Parquet | ImportFormat::Coco)) => f,
            _ => ImportFormat::Folder,
        }),
        None => ImportFormat::detect(source),
    };
    let format = match opts.format.or(detected) {
        Some(f) => f,
        None => return Err(CurateError::import(source, format!("cannot tell the format; pass --format ({})", ImportFormat::NAMES.join(", ")))),
    };
    let rows = match (format, remote) {
        (ImportFormat::Folder, Some(url)) => folder::read_remote(ws, url)?,
        (ImportFormat::Csv | ImportFormat::Jsonl | ImportFormat::Parquet, Some(url)) => table::read_remote(ws, url, format)?,
        (ImportFormat::Folder, None) => folder::read(ws, source)?,
        (ImportFormat::Csv | ImportFormat::Jsonl | ImportFormat::Parquet, None) => table::read(ws, source, format)?,
        (ImportFormat::Coco, _) => coco::read(ws, source, &opts.coco)?,
    };
    let mut rows = finish_rows(rows, opts).map_err(|e| CurateError::import(source, e))?;
    manifest::check_ids(source, &rows)?;
    let resolve = |p: &str| ws.media_path(p);
    if let Some(shard) = opts.shard {
        // A shard of the scan (by id: the content hash is what the scan finds out), left in
        // `.curate/scan/` for the import that writes the manifest.
        let ids = scan::str_column(&rows, "id")?;
        let mine: BooleanChunked = ids.iter().map(|id| shard.owns_key(id)).collect();
        let mine = rows.filter(&mine)?;
        let imported = mine.height();
        let report = scan::scan_part(mine, &resolve, progress, &scan::cache_dir(ws))?;
        return Ok(ImportReport { format, imported, total: 0, manifest: ws.manifest_location(), scan: report, shard: Some(format!("{}/{}", shard.index, shard.count)) });
    }
    let imported = rows.height();

    // What shards of this import scanned is taken, not read again; the rest is scanned here.
    let cache = scan::ScanCache::load(&scan::cache_dir(ws))?;
    let (scanned, report) = scan::scan_with(std::mem::take(&mut rows), &resolve, progress, Some(&cache))?;
    let manifest_path = ws.manifest_path();
    // Appending to a manifest in object storage appends to its current version.
    if opts.append {
        ws.sync_manifest()?;
    }
    let mut out = if opts.append && manifest_path.is_file() {
        let existing = manifest::scan(&manifest_path)?;
        let both = concat_lf_diagonal([existing, scanned.lazy()], UnionArgs::default())?.collect()?;
        manifest::check_ids(&manifest_path, &both)?;
        both
    } else {
        scanned
    };
    ws.write_manifest(&mut out)?;
    cache.remove();
    Ok(ImportReport { format, imported, total: out.height(), manifest: ws.manifest_location(), scan: report, shard: None })
}

/// Apply the split and id-prefix options and put the standard columns first, in their usual
/// types.
fn finish_rows(df: DataFrame, opts: &ImportOptions) -> PolarsResult<DataFrame> {
    let mut lf = df.lazy();
    if let Some(split) = &opts.split {
        lf = lf.with_column(lit(split.clone()).alias("split"));
    }
    if let Some(prefix) = &opts.id_prefix {
        lf = lf.with_column(concat_str([lit(prefix.clone()), col("id")], "", false).alias("id"));
    }
    let schema = lf.collect_schema()?;
    let mut front: Vec<Expr> = Vec::new();
    for name in ["id", "path", "label", "split"] {
        if schema.contains(name) {
            front.push(col(name).cast(DataType::String));
        } else {
            front.push(lit(NULL).cast(DataType::String).alias(name));
        }
    }
    let scan_cols = ["width", "height", "format", "bytes", "hash"];
    let rest: Vec<Expr> = schema.iter_names().filter(|n| !["id", "path", "label", "split"].contains(&n.as_str()) && !scan_cols.contains(&n.as_str())).map(|n| col(n.clone())).collect();
    front.extend(rest);
    lf.select(front).collect()
}

/// How a file path is stored in the manifest: relative to the media root when it lies under it,
/// absolute otherwise (media may live outside the workspace).
pub(crate) fn stored_path(ws: &Workspace, file: &Path) -> String {
    let abs = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    let media = ws.media_root().canonicalize().unwrap_or_else(|_| ws.media_root());
    match abs.strip_prefix(&media) {
        Ok(rel) => rel.to_string_lossy().replace('\\', "/"),
        Err(_) => abs.to_string_lossy().into_owned(),
    }
}

/// An id derived from a path relative to the import source: the path without its extension.
fn id_from_rel(rel: &Path) -> String {
    rel.with_extension("").to_string_lossy().replace('\\', "/")
}

pub const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff", "pgm"];

pub fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())).unwrap_or(false)
}

#[cfg(test)]
mod tests;
