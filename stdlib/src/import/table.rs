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
        ImportFormat::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(source.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(bad)?,
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
    let bad = |e: PolarsError| CurateError::import(source, e);
    let df = read_raw(source, format)?;
    let Some(path_col) = df.column("path").ok() else {
        return Err(CurateError::import(
            source,
            format!(
                "the table has no `path` column (columns: {})",
                df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let raw_paths: Vec<Option<String>> = path_col
        .cast(&DataType::String)
        .map_err(bad)?
        .str()
        .map_err(bad)?
        .iter()
        .map(|v| v.map(str::to_string))
        .collect();
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
