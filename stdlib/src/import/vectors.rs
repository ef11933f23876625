//! `curate import-embeddings`: vectors computed elsewhere (a GPU cluster, the user's own network)
//! into a model's vector store, through the same parts and compaction as `embed`.
//!
//! Sources: Parquet or Arrow IPC with an `id` or `hash` column and one vector column (a list or
//! fixed-size array of floats), or `.npy` (a 2-D float array, rows in the order of an `--ids`
//! table). Ids are mapped to content hashes through the manifest; identical files share a row.

use std::path::Path;
use std::time::Instant;

use polars::prelude::*;

use crate::embed::Kind;
use crate::error::{CurateError, Result};
use crate::model::Model;
use crate::progress::Progress;
use crate::store::{self, Store};
use crate::workspace::Workspace;

/// Rows per part written to the store's write path.
const PART_ROWS: usize = 50_000;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VectorImport {
    pub model: String,
    pub files: Vec<String>,
    pub rows: usize,
    pub imported: usize,
    pub dim: usize,
    /// Ids that are not in the manifest (the first few).
    pub unknown_ids: Vec<String>,
    pub unknown_count: usize,
    /// Samples whose image has no content hash (unreadable when imported), so no key.
    pub without_hash: usize,
    pub stored: usize,
    pub seconds: f64,
}

fn bad(path: &Path, m: impl std::fmt::Display) -> CurateError {
    CurateError::import(path, m.to_string())
}

/// Keys (`id` or `hash`) and row-major vectors of one source file.
struct Batch {
    key_is_hash: bool,
    keys: Vec<Option<String>>,
    data: Vec<f32>,
    dim: usize,
}

fn read_table(path: &Path, column: Option<&str>) -> Result<Batch> {
    let file = std::fs::File::open(path).map_err(|e| CurateError::io(path, e))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let df = match ext.as_str() {
        "parquet" => ParquetReader::new(file).finish(),
        _ => IpcReader::new(file).finish(),
    }
    .map_err(|e| bad(path, e))?;
    let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    let key_is_hash = df.column("hash").is_ok();
    let key = if key_is_hash { "hash" } else { "id" };
    let keys: Vec<Option<String>> = df
        .column(key)
        .map_err(|_| bad(path, format!("no `id` or `hash` column (columns: {})", names.join(", "))))?
        .cast(&DataType::String)
        .map_err(|e| bad(path, e))?
        .str()
        .map_err(|e| bad(path, e))?
        .iter()
        .map(|k| k.map(str::to_string))
        .collect();
    let vector_cols: Vec<&String> = names.iter().filter(|n| matches!(df.column(n).map(|c| c.dtype().clone()), Ok(DataType::List(_)) | Ok(DataType::Array(_, _)))).collect();
    let vname = match column {
        Some(c) => names.iter().find(|n| n.as_str() == c).ok_or_else(|| bad(path, format!("no column `{c}` (columns: {})", names.join(", "))))?,
        None => match vector_cols.as_slice() {
            [one] => *one,
            [] => return Err(bad(path, format!("no vector column: a list or array of floats (columns: {})", names.join(", ")))),
            many => return Err(bad(path, format!("several vector columns ({}): name one with --column", many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")))),
        },
    };
    let vcol = df.column(vname).map_err(|e| bad(path, e))?;
    let as_list = vcol.cast(&DataType::List(Box::new(DataType::Float32))).map_err(|e| bad(path, format!("column `{vname}`: not a list of numbers ({e})")))?;
    let lists = as_list.list().map_err(|e| bad(path, e))?;
    let mut dim: Option<usize> = None;
    let mut data = Vec::new();
    let mut kept_keys = Vec::with_capacity(keys.len());
    for (i, (v, k)) in lists.amortized_iter().map(|v| v.map(|s| s.as_ref().clone())).zip(keys).enumerate() {
        let Some(v) = v else { return Err(bad(path, format!("row {i}: the vector is null"))) };
        let v = v.f32().map_err(|e| bad(path, e))?;
        let width = *dim.get_or_insert(v.len());
        if width == 0 {
            return Err(bad(path, format!("row {i}: an empty vector")));
        }
        if v.len() != width || v.null_count() > 0 {
            return Err(bad(path, format!("row {i}: {} values (nulls: {}), but the first row has {width}", v.len(), v.null_count())));
        }
        let start = data.len();
        data.extend(v.into_no_null_iter());
        if let Some(j) = data[start..].iter().position(|x| !x.is_finite()) {
            return Err(bad(path, format!("row {i}: value {j} is not finite")));
        }
        kept_keys.push(k);
    }
    Ok(Batch { key_is_hash, keys: kept_keys, data, dim: dim.unwrap_or(0) })
}

fn read_ids(path: &Path) -> Result<Vec<Option<String>>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    if ext == "txt" {
        let text = std::fs::read_to_string(path).map_err(|e| CurateError::io(path, e))?;
        return Ok(text.lines().map(|l| Some(l.trim().to_string())).collect());
    }
    let format = match ext.as_str() {
        "csv" => crate::import::ImportFormat::Csv,
        "jsonl" | "ndjson" => crate::import::ImportFormat::Jsonl,
        "parquet" => crate::import::ImportFormat::Parquet,
        _ => return Err(bad(path, "the ids table must be .csv, .jsonl, .parquet or .txt (one id per line)")),
    };
    let df = crate::import::table::read_raw(path, format)?;
    let col = match df.column("id") {
        Ok(c) => c.clone(),
        Err(_) if df.width() == 1 => df.columns()[0].clone(),
        Err(_) => return Err(bad(path, "the ids table needs an `id` column or exactly one column")),
    };
    Ok(col.cast(&DataType::String).map_err(|e| bad(path, e))?.str().map_err(|e| bad(path, e))?.iter().map(|s| s.map(str::to_string)).collect())
}

fn read_npy(path: &Path, ids: &Path) -> Result<Batch> {
    let file = std::io::BufReader::new(std::fs::File::open(path).map_err(|e| CurateError::io(path, e))?);
    let npy = npyz::NpyFile::new(file).map_err(|e| bad(path, format!("not a .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    let [rows, dim] = shape[..] else { return Err(bad(path, format!("expected a 2-D array (rows × dim), got shape {shape:?}"))) };
    if dim == 0 {
        return Err(bad(path, format!("vectors of width 0 (shape {shape:?})")));
    }
    if npy.order() != npyz::Order::C {
        return Err(bad(path, "the array is Fortran-ordered; save it C-ordered (np.ascontiguousarray)"));
    }
    let data: Vec<f32> = match npy.try_data::<f32>() {
        Ok(r) => r.collect::<std::io::Result<Vec<f32>>>(),
        Err(npy) => match npy.try_data::<f64>() {
            Ok(r) => r.map(|x| x.map(|x| x as f32)).collect(),
            Err(npy) => match npy.try_data::<half::f16>() {
                Ok(r) => r.map(|x| x.map(f32::from)).collect(),
                Err(npy) => return Err(bad(path, format!("vectors must be float16, float32 or float64, not {}", npy.dtype().descr()))),
            },
        },
    }
    .map_err(|e| bad(path, e))?;
    if let Some(j) = data.iter().position(|x| !x.is_finite()) {
        return Err(bad(path, format!("row {}: value {} is not finite", j / dim as usize, j % dim as usize)));
    }
    let keys = read_ids(ids)?;
    if keys.len() as u64 != rows {
        return Err(bad(ids, format!("{} ids for the {rows} rows of {}", keys.len(), path.display())));
    }
    Ok(Batch { key_is_hash: false, keys, data, dim: dim as usize })
}

/// Import the vectors of `files` into `model`'s embedding store. `ids` is the ids table of a
/// `.npy` source; `column` names the vector column when a table has several.
pub fn import_vectors(ws: &Workspace, model: &Model, files: &[&Path], ids: Option<&Path>, column: Option<&str>, progress: &dyn Progress) -> Result<VectorImport> {
    let started = Instant::now();
    let dir = crate::embed::cache_dir_of(ws, model, Kind::Embedding);
    std::fs::create_dir_all(&dir).map_err(|e| CurateError::io(&dir, e))?;
    store::compact(&dir, Kind::Embedding.layout())?;
    let mut dim = Store::open(&dir)?.dim();
    let mut report = VectorImport { model: model.name.clone(), ..Default::default() };
    let manifest = ws.scan_manifest()?.select([col("id"), col("hash")]);
    // Read and check every file before anything is written.
    let mut batches = Vec::new();
    for &file in files {
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        let batch = match ext.as_str() {
            "npy" => read_npy(file, ids.ok_or_else(|| bad(file, "a .npy file needs --ids FILE: the id of each row, in order"))?)?,
            "parquet" | "arrow" | "ipc" | "feather" => read_table(file, column)?,
            _ => return Err(bad(file, "expected .parquet, .arrow/.ipc/.feather or .npy")),
        };
        if batch.keys.is_empty() {
            continue;
        }
        if dim == 0 {
            dim = batch.dim;
        } else if batch.dim != dim {
            return Err(bad(file, format!("vectors of width {}, but the `{}` store holds width {dim}", batch.dim, model.name)));
        }
        batches.push((file, batch));
    }
    report.dim = dim;
    progress.start(&format!("importing vectors ({})", model.name), batches.iter().map(|b| b.1.keys.len() as u64).sum());
    for (file, batch) in batches {
        report.files.push(file.display().to_string());
        report.rows += batch.keys.len();
        let keys = Column::new("key".into(), batch.keys);
        let hashes: Vec<Option<String>> = if batch.key_is_hash {
            keys.str()?.iter().map(|h| h.map(str::to_string)).collect()
        } else {
            // id -> hash through the manifest, in the file's order.
            let left = DataFrame::new(keys.len(), vec![keys.clone()])?.lazy().with_row_index("__order", None);
            let joined = left
                .left_join(manifest.clone().with_column(lit(true).alias("__known")), col("key"), col("id"))
                .sort(["__order"], SortMultipleOptions::default())
                .select([col("key"), col("hash"), col("__known")])
                .collect()?;
            let known = joined.column("__known")?.bool()?.clone();
            let mut out = Vec::with_capacity(joined.height());
            for ((k, h), known) in joined.column("key")?.str()?.iter().zip(joined.column("hash")?.str()?.iter()).zip(known.iter()) {
                match (known, h) {
                    (Some(true), Some(h)) => out.push(Some(h.to_string())),
                    (Some(true), None) => {
                        report.without_hash += 1;
                        out.push(None)
                    }
                    _ => {
                        report.unknown_count += 1;
                        if report.unknown_ids.len() < 5 {
                            report.unknown_ids.push(k.unwrap_or("(null)").to_string());
                        }
                        out.push(None)
                    }
                }
            }
            out
        };
        let mut part_h = Vec::new();
        let mut part_v = Vec::new();
        for (i, h) in hashes.into_iter().enumerate() {
            if let Some(h) = h {
                part_h.push(h);
                part_v.extend_from_slice(&batch.data[i * dim..(i + 1) * dim]);
            }
            if part_h.len() == PART_ROWS {
                report.imported += part_h.len();
                store::write_part(&dir, std::mem::take(&mut part_h), std::mem::take(&mut part_v), dim)?;
            }
            progress.advance(1);
            if progress.is_cancelled() {
                progress.finish();
                return Err(CurateError::Interrupted);
            }
        }
        if !part_h.is_empty() {
            report.imported += part_h.len();
            store::write_part(&dir, part_h, part_v, dim)?;
        }
    }
    progress.finish();
    store::compact(&dir, Kind::Embedding.layout())?;
    report.stored = Store::open(&dir)?.len();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_rows_need_as_many_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let npy = dir.path().join("v.npy");
        let mut bytes = Vec::new();
        {
            use npyz::WriterBuilder;
            let mut w = npyz::WriteOptions::<f32>::new().default_dtype().shape(&[2, 3]).writer(&mut bytes).begin_nd().expect("npy");
            w.extend([1f32, 2.0, 3.0, 4.0, 5.0, 6.0]).expect("write");
            w.finish().expect("finish");
        }
        std::fs::write(&npy, &bytes).expect("write");
        let ids = dir.path().join("ids.txt");
        std::fs::write(&ids, "a\nb\n").expect("write");
        let b = read_npy(&npy, &ids).expect("reads");
        assert_eq!((b.dim, b.keys.len()), (3, 2));
        assert_eq!(b.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        std::fs::write(&ids, "a\n").expect("write");
        let e = read_npy(&npy, &ids).err().expect("too few ids");
        assert!(format!("{e:?}").contains("1 ids for the 2 rows"), "{e:?}");
    }
}
