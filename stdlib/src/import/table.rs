//! Import a CSV, JSONL or Parquet table with a `path` column, and optionally `id`, `label`,
//! `split` and any metadata columns. Relative paths are relative to the table's folder.

use std::path::Path;

use polars::prelude::*;

use super::{id_from_rel, stored_path, ImportFormat};
use crate::error::{CurateError, Result};
use crate::workspace::Workspace;

/// Read a CSV, JSONL or Parquet file as it is.
pub fn read_raw(source: &Path, format: ImportFormat) -> Result<DataFrame> {
    let bad = |e: PolarsError| CurateError::import(source, e);
    Ok(match format {
        ImportFormat::Csv => CsvReadOptions::default().with_has_header(true).try_into_reader_with_file_path(Some(source.to_path_buf())).and_then(|r| r.finish()).map_err(bad)?,
        ImportFormat::Jsonl => {
            let file = std::fs::File::open(source).map_err(|e| CurateError::io(source, e))?;
            JsonReader::new(file).with_json_format(JsonFormat::JsonLines).finish().map_err(bad)?
        }
        _ => {
            let file = std::fs::File::open(source).map_err(|e| CurateError::io(source, e))?;
            ParquetReader::new(file).finish().map_err(bad)?
        }
    })
}

pub(super) fn read(ws: &Workspace, source: &Path, format: ImportFormat) -> Result<DataFrame> {
    let df = read_raw(source, format)?;
    with_paths(ws, source, df, None)
}

/// A table in object storage (`s3://bucket/lists/train.csv`): fetched, then read as a local
/// one, its relative paths taken as keys beside it (`s3://bucket/lists/` + path).
pub(super) fn read_remote(ws: &Workspace, url: &str, format: ImportFormat) -> Result<DataFrame> {
    let source = Path::new(url);
    let bytes = crate::objects::read_any(source).map_err(|e| CurateError::import(source, e))?;
    let ext = match format {
        ImportFormat::Csv => ".csv",
        ImportFormat::Jsonl => ".jsonl",
        _ => ".parquet",
    };
    let dir = ws.cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| CurateError::io(&dir, e))?;
    let tmp = tempfile::Builder::new().prefix(".curate-tmp-table-").suffix(ext).tempfile_in(&dir).map_err(|e| CurateError::io(&dir, e))?;
    std::fs::write(tmp.path(), bytes).map_err(|e| CurateError::io(tmp.path(), e))?;
    // Errors name the URL, not the local copy.
    let df = read_raw(tmp.path(), format).map_err(|e| match e {
        CurateError::Import { message, .. } => CurateError::import(source, message),
        other => CurateError::import(source, other.to_string().replace(&tmp.path().display().to_string(), url)),
    })?;
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    with_paths(ws, source, df, Some(base))
}

/// The table's `path` column as stored paths (relative to the workspace, or URLs), and its ids.
fn with_paths(ws: &Workspace, source: &Path, df: DataFrame, base_url: Option<&str>) -> Result<DataFrame> {
    let bad = |e: PolarsError| CurateError::import(source, e);
    let Some(path_col) = df.column("path").ok() else {
        return Err(CurateError::import(source, format!("the table has no `path` column (columns: {})", df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))));
    };
    let raw_paths: Vec<Option<String>> = path_col.cast(&DataType::String).map_err(bad)?.str().map_err(bad)?.iter().map(|v| v.map(str::to_string)).collect();
    let base = source.parent().unwrap_or(Path::new("."));
    let mut paths = Vec::with_capacity(raw_paths.len());
    let mut derived_ids = Vec::with_capacity(raw_paths.len());
    for (row, p) in raw_paths.iter().enumerate() {
        let Some(p) = p else {
            return Err(CurateError::import(source, format!("row {}: empty path", row + 1)));
        };
        if crate::objects::is_url(p) {
            // An object's URL is kept whole; its id comes from the key (`cifar/cat/0001`).
            let key = p.split_once("://").and_then(|(_, rest)| rest.split_once('/')).map_or("", |(_, key)| key);
            paths.push(p.clone());
            derived_ids.push(id_from_rel(Path::new(key)));
            continue;
        }
        if let Some(base_url) = base_url {
            paths.push(crate::objects::join(base_url, p));
            derived_ids.push(id_from_rel(Path::new(p)));
            continue;
        }
        let file = if Path::new(p).is_absolute() { Path::new(p).to_path_buf() } else { base.join(p) };
        paths.push(stored_path(ws, &file));
        derived_ids.push(id_from_rel(Path::new(p)));
    }
    let mut df = df;
    df.with_column(Column::new("path".into(), paths)).map_err(bad)?;
    if df.column("id").is_err() {
        df.with_column(Column::new("id".into(), derived_ids)).map_err(bad)?;
    } else {
        let id = df.column("id").map_err(bad)?.cast(&DataType::String).map_err(bad)?;
        df.with_column(id).map_err(bad)?;
    }
    Ok(df)
}
