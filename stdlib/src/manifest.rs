//! The manifest: a Parquet file with one row per sample. `id` and `path` are required; `label`,
//! `split` and the scan columns (`width`, `height`, `format`, `bytes`, `hash`) are standard; any
//! other column is user metadata.

use std::path::Path;

use polars::prelude::*;

use crate::atomic::write_atomic;
use crate::error::{CurateError, Result};

pub const REQUIRED: [&str; 2] = ["id", "path"];

/// The standard columns, in the order a fresh manifest lays them out.
pub fn standard_schema() -> Schema {
    Schema::from_iter([
        Field::new("id".into(), DataType::String),
        Field::new("path".into(), DataType::String),
        Field::new("label".into(), DataType::String),
        Field::new("split".into(), DataType::String),
        Field::new("width".into(), DataType::UInt32),
        Field::new("height".into(), DataType::UInt32),
        Field::new("format".into(), DataType::String),
        Field::new("bytes".into(), DataType::UInt64),
        Field::new("hash".into(), DataType::String),
    ])
}

/// An empty manifest with the standard columns.
pub fn empty() -> DataFrame {
    DataFrame::empty_with_schema(&standard_schema())
}

/// Write a manifest atomically.
pub fn write(path: &Path, df: &mut DataFrame) -> Result<()> {
    write_atomic(path, |f| ParquetWriter::new(f).with_compression(ParquetCompression::Zstd(None)).finish(df).map(|_| ()).map_err(|e| CurateError::manifest(path, e)))
}

/// Scan a manifest lazily, checking now that it exists, is Parquet and has the required columns.
pub fn scan(path: &Path) -> Result<LazyFrame> {
    if !path.is_file() {
        return Err(CurateError::manifest(path, "manifest not found"));
    }
    let pl_path = PlRefPath::try_from_path(path).map_err(|e| CurateError::manifest(path, e))?;
    let mut lf = LazyFrame::scan_parquet(pl_path, ScanArgsParquet::default()).map_err(|e| CurateError::manifest(path, format!("not a readable Parquet manifest: {e}")))?;
    let schema = lf.collect_schema().map_err(|e| CurateError::manifest(path, format!("not a readable Parquet manifest: {e}")))?;
    check_required(path, &schema)?;
    Ok(lf)
}

/// Check that `id` and `path` are present and are strings.
pub fn check_required(path: &Path, schema: &Schema) -> Result<()> {
    for col in REQUIRED {
        match schema.get(col) {
            None => return Err(CurateError::manifest(path, format!("the manifest has no `{col}` column (columns: {})", names(schema).join(", ")))),
            Some(DataType::String) => {}
            Some(dt) => return Err(CurateError::manifest(path, format!("column `{col}` must be text, found {dt}"))),
        }
    }
    Ok(())
}

pub fn names(schema: &Schema) -> Vec<String> {
    schema.iter_names().map(|n| n.to_string()).collect()
}

/// Ids must be unique and non-null: every primitive relies on it.
pub fn check_ids(path: &Path, df: &DataFrame) -> Result<()> {
    let ids = df.column("id").map_err(|e| CurateError::manifest(path, e))?.as_materialized_series().clone();
    if ids.null_count() > 0 {
        return Err(CurateError::manifest(path, format!("{} rows have no id", ids.null_count())));
    }
    let unique = ids.n_unique().map_err(|e| CurateError::manifest(path, e))?;
    if unique != ids.len() {
        let dup = first_duplicate(&ids).unwrap_or_default();
        return Err(CurateError::manifest(path, format!("ids must be unique; `{dup}` appears more than once ({} duplicates)", ids.len() - unique)));
    }
    Ok(())
}

fn first_duplicate(ids: &Series) -> Option<String> {
    let ca = ids.str().ok()?;
    let mut seen = std::collections::HashSet::new();
    ca.iter().flatten().find(|id| !seen.insert(*id)).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_and_missing_manifests_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("manifest.parquet");
        let err = scan(&p).err().expect("missing").to_string();
        assert!(err.contains("manifest.parquet") && err.contains("not found"), "{err}");
        std::fs::write(&p, b"PAR1 this is not parquet").expect("write");
        let err = scan(&p).err().expect("corrupt").to_string();
        assert!(err.contains("manifest.parquet") && err.contains("not a readable Parquet"), "{err}");
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let df = df!("id" => ["a", "b", "a"], "path" => ["1", "2", "3"]).expect("df");
        let err = check_ids(Path::new("m.parquet"), &df).err().expect("dup").to_string();
        assert!(err.contains("`a` appears more than once"), "{err}");
    }
}
