//! `curate import-embeddings`: vectors computed elsewhere (a GPU cluster, the user's own network)
//! into a model's vector store, through the same parts and compaction as `embed`.
//!
//! Sources: Parquet or Arrow IPC with an `id` or `hash` column and one vector column (a list or
//! fixed-size array of floats), or `.npy` (a 2-D float array, rows in the order of an `--ids`
//! table). Ids are mapped to content hashes through the manifest; identical files share a row.
//!
//! A `.npy` file is streamed, a part at a time, so importing 1M × 1280 vectors needs memory for
//! one part, not for the file. Every source is checked (shape, dtype, ids) before anything is
//! read; parts are staged in a folder of their own and moved into the store only when every
//! file has been read without error, so a bad value in the last row of the last file leaves the
//! store as it was. Parquet and Arrow sources are read whole (Polars reads a list column in
//! one piece).

use std::path::{Path, PathBuf};
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
    /// A `weight` column, when the table has one (read for gradient features).
    weights: Option<Vec<f32>>,
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
    let weights = weight_column(&df, path)?;
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
    Ok(Batch { key_is_hash, keys: kept_keys, data, dim: dim.unwrap_or(0), weights })
}

/// A table's `weight` column as f32, checked: no nulls, every value finite.
fn weight_column(df: &DataFrame, path: &Path) -> Result<Option<Vec<f32>>> {
    let Ok(c) = df.column("weight") else { return Ok(None) };
    let c = c.cast(&DataType::Float32).map_err(|e| bad(path, format!("column `weight`: not numbers ({e})")))?;
    let mut out = Vec::with_capacity(c.len());
    for (i, v) in c.f32().map_err(|e| bad(path, e))?.iter().enumerate() {
        match v {
            Some(v) if v.is_finite() => out.push(v),
            _ => return Err(bad(path, format!("row {i}: the weight is missing or not finite"))),
        }
    }
    Ok(Some(out))
}

/// Per-sample gradient features written by the user's own training pipeline, read whole:
/// one row per sample, keyed by id or content hash, with an optional per-row `weight`.
#[derive(Debug, Clone)]
pub struct GradientTable {
    pub key_is_hash: bool,
    pub keys: Vec<Option<String>>,
    /// Row-major, `dim` wide.
    pub data: Vec<f32>,
    pub dim: usize,
    pub weights: Option<Vec<f32>>,
}

/// Read gradient features: Parquet or Arrow IPC with an `id` or `hash` column, one vector
/// column (or `column`) and optionally `weight`; or a `.npy` array whose rows are in the order
/// of the `ids` table (which may carry the `weight` column). Every row is checked (width,
/// finite values); errors name the file and row.
pub fn read_gradients(path: &Path, ids: Option<&Path>, column: Option<&str>) -> Result<GradientTable> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    if !path.exists() {
        return Err(CurateError::io(path, "no such file"));
    }
    if ext == "npy" {
        let ids = ids.ok_or_else(|| bad(path, "a .npy file of gradients needs an ids table (`ids`: one id per row, in the array's order)"))?;
        let npy = check_npy(path, ids, true)?;
        let (_, _, mut values) = open_npy(path)?;
        let data = next_rows(path, &mut values, 0, npy.rows, npy.dim)?;
        return Ok(GradientTable { key_is_hash: false, keys: npy.keys, data, dim: npy.dim, weights: npy.weights });
    }
    if !matches!(ext.as_str(), "parquet" | "arrow" | "ipc" | "feather") {
        return Err(bad(path, "gradient features must be .parquet, .arrow/.ipc/.feather or .npy"));
    }
    let b = read_table(path, column)?;
    Ok(GradientTable { key_is_hash: b.key_is_hash, keys: b.keys, data: b.data, dim: b.dim, weights: b.weights })
}

/// The ids of an ids table, and, when `weights` is asked for (gradient features), its `weight`
/// column if it has one.
fn read_ids(path: &Path, weights: bool) -> Result<(Vec<Option<String>>, Option<Vec<f32>>)> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    if ext == "txt" {
        let text = std::fs::read_to_string(path).map_err(|e| CurateError::io(path, e))?;
        return Ok((text.lines().map(|l| Some(l.trim().to_string())).collect(), None));
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
    let ids = col.cast(&DataType::String).map_err(|e| bad(path, e))?.str().map_err(|e| bad(path, e))?.iter().map(|s| s.map(str::to_string)).collect();
    Ok((ids, if weights { weight_column(&df, path)? } else { None }))
}

/// A `.npy` source, checked but not yet read: its shape and the id of each row.
struct Npy {
    rows: usize,
    dim: usize,
    keys: Vec<Option<String>>,
    /// The ids table's `weight` column, if any.
    weights: Option<Vec<f32>>,
}

fn check_npy(path: &Path, ids: &Path, weights: bool) -> Result<Npy> {
    let (rows, dim, _) = open_npy(path)?;
    let (keys, weights) = read_ids(ids, weights)?;
    if keys.len() != rows {
        return Err(bad(ids, format!("{} ids for the {rows} rows of {}", keys.len(), path.display())));
    }
    Ok(Npy { rows, dim, keys, weights })
}

type Values = Box<dyn Iterator<Item = std::io::Result<f32>>>;

/// A `.npy` file's shape and its values, row-major, as f32.
fn open_npy(path: &Path) -> Result<(usize, usize, Values)> {
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).map_err(|e| CurateError::io(path, e))?);
    let npy = npyz::NpyFile::new(file).map_err(|e| bad(path, format!("not a .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    let [rows, dim] = shape[..] else { return Err(bad(path, format!("expected a 2-D array (rows × dim), got shape {shape:?}"))) };
    if dim == 0 {
        return Err(bad(path, format!("vectors of width 0 (shape {shape:?})")));
    }
    if npy.order() != npyz::Order::C {
        return Err(bad(path, "the array is Fortran-ordered; save it C-ordered (np.ascontiguousarray)"));
    }
    let values: Values = match npy.try_data::<f32>() {
        Ok(r) => Box::new(r),
        Err(npy) => match npy.try_data::<f64>() {
            Ok(r) => Box::new(r.map(|x| x.map(|x| x as f32))),
            Err(npy) => match npy.try_data::<half::f16>() {
                Ok(r) => Box::new(r.map(|x| x.map(f32::from))),
                Err(npy) => return Err(bad(path, format!("vectors must be float16, float32 or float64, not {}", npy.dtype().descr()))),
            },
        },
    };
    Ok((rows as usize, dim as usize, values))
}

/// Rows `start..start + n` of a `.npy` file from its value stream, checked for finite values.
fn next_rows(path: &Path, values: &mut Values, start: usize, n: usize, dim: usize) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(n * dim);
    for j in 0..n * dim {
        let v = values.next().ok_or_else(|| bad(path, format!("the file ends at row {} (truncated?)", start + j / dim)))?.map_err(|e| bad(path, e))?;
        if !v.is_finite() {
            return Err(bad(path, format!("row {}: value {} is not finite", start + j / dim, j % dim)));
        }
        out.push(v);
    }
    Ok(out)
}

/// A source, checked: a table read whole, or a `.npy` file to stream.
enum Source {
    Table(Batch),
    Npy(Npy),
}

impl Source {
    fn dim(&self) -> usize {
        match self {
            Source::Table(b) => b.dim,
            Source::Npy(n) => n.dim,
        }
    }

    fn len(&self) -> usize {
        match self {
            Source::Table(b) => b.keys.len(),
            Source::Npy(n) => n.rows,
        }
    }
}

/// The content hash behind each key (in order), through the manifest for ids; unknown ids and
/// samples without a hash are counted in `report` and get `None`.
fn hashes_of(manifest: &LazyFrame, keys: Vec<Option<String>>, key_is_hash: bool, report: &mut VectorImport) -> Result<Vec<Option<String>>> {
    if key_is_hash {
        return Ok(keys);
    }
    let keys = Column::new("key".into(), keys);
    let left = DataFrame::new(keys.len(), vec![keys])?.lazy().with_row_index("__order", None);
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
    Ok(out)
}

/// Staged parts of an import: a folder beside the store's parts, removed on drop unless its
/// parts were committed.
struct Staging {
    dir: PathBuf,
}

impl Staging {
    const PREFIX: &'static str = "import-";

    /// Call with the import lock held: the folders it clears can then only be a killed
    /// import's, never a running one's.
    fn new(store_dir: &Path) -> Result<Self> {
        // Folders that a killed import left behind hold nothing committed.
        if let Ok(entries) = std::fs::read_dir(store_dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(Self::PREFIX) && e.path().is_dir() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = store_dir.join(format!("{}{}-{stamp}.tmp", Self::PREFIX, std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| CurateError::io(&dir, e))?;
        Ok(Staging { dir })
    }

    /// Move every staged part into the store's write path, oldest first.
    fn commit(self, store_dir: &Path) -> Result<()> {
        for part in store::part_files(&self.dir)? {
            let to = store_dir.join(part.file_name().unwrap_or_default());
            std::fs::rename(&part, &to).map_err(|e| CurateError::io(&to, e))?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Import the vectors of `files` into `model`'s embedding store. `ids` is the ids table of a
/// `.npy` source; `column` names the vector column when a table has several.
/// With `shard`, only the rows whose image the shard owns (by content hash) are imported, and
/// their parts are left for the next command to merge, as `embed --shard` leaves its own.
pub fn import_vectors(ws: &Workspace, model: &Model, files: &[&Path], ids: Option<&Path>, column: Option<&str>, shard: Option<crate::embed::Shard>, progress: &dyn Progress) -> Result<VectorImport> {
    let started = Instant::now();
    let dir = crate::embed::cache_dir_of(ws, model, Kind::Embedding);
    std::fs::create_dir_all(&dir).map_err(|e| CurateError::io(&dir, e))?;
    store::compact(&dir, Kind::Embedding.layout())?;
    let mut dim = Store::open(&dir)?.dim();
    let mut report = VectorImport { model: model.name.clone(), ..Default::default() };
    let manifest = ws.scan_manifest()?.select([col("id"), col("hash")]);
    // Check every source before anything is read in bulk or written.
    let mut sources = Vec::new();
    for &file in files {
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        let source = match ext.as_str() {
            "npy" => Source::Npy(check_npy(file, ids.ok_or_else(|| bad(file, "a .npy file needs --ids FILE: the id of each row, in order"))?, false)?),
            "parquet" | "arrow" | "ipc" | "feather" => Source::Table(read_table(file, column)?),
            _ => return Err(bad(file, "expected .parquet, .arrow/.ipc/.feather or .npy")),
        };
        if source.len() == 0 {
            continue;
        }
        if dim == 0 {
            dim = source.dim();
        } else if source.dim() != dim {
            return Err(bad(file, format!("vectors of width {}, but the `{}` store holds width {dim}", source.dim(), model.name)));
        }
        sources.push((file, source));
    }
    report.dim = dim;
    progress.start(&format!("importing vectors ({})", model.name), sources.iter().map(|s| s.1.len() as u64).sum());
    // Imports into one store run one at a time, so that clearing a killed import's staging
    // folder never takes a running one's.
    let _lock = store::lock_file(&dir, "import.lock")?;
    let staging = Staging::new(&dir)?;
    for (file, source) in sources {
        report.files.push(file.display().to_string());
        report.rows += source.len();
        // The rows come from the table in memory, or streamed from the .npy file.
        let (hashes, mut rows_of): (Vec<Option<String>>, Box<dyn FnMut(usize, usize) -> Result<Vec<f32>>>) = match source {
            Source::Table(b) => {
                let data = b.data;
                (hashes_of(&manifest, b.keys, b.key_is_hash, &mut report)?, Box::new(move |start, n| Ok(data[start * dim..(start + n) * dim].to_vec())))
            }
            Source::Npy(n) => {
                let (_, _, mut values) = open_npy(file)?;
                (hashes_of(&manifest, n.keys, false, &mut report)?, Box::new(move |start, n| next_rows(file, &mut values, start, n, dim)))
            }
        };
        for start in (0..hashes.len()).step_by(PART_ROWS) {
            let n = PART_ROWS.min(hashes.len() - start);
            let rows = rows_of(start, n)?;
            let (mut part_h, mut part_v) = (Vec::with_capacity(n), Vec::with_capacity(n * dim));
            for (i, h) in hashes[start..start + n].iter().enumerate() {
                if let Some(h) = h.as_ref().filter(|h| shard.is_none_or(|s| s.owns(h))) {
                    part_h.push(h.clone());
                    part_v.extend_from_slice(&rows[i * dim..(i + 1) * dim]);
                }
            }
            if !part_h.is_empty() {
                report.imported += part_h.len();
                store::write_part(&staging.dir, part_h, part_v, dim)?;
            }
            progress.advance(n as u64);
            if progress.is_cancelled() {
                progress.finish();
                return Err(CurateError::Interrupted);
            }
        }
    }
    progress.finish();
    staging.commit(&dir)?;
    if shard.is_none() {
        store::compact(&dir, Kind::Embedding.layout())?;
    }
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
        let n = check_npy(&npy, &ids, false).expect("reads");
        assert_eq!((n.dim, n.rows, n.keys.len()), (3, 2, 2));
        let (_, _, mut values) = open_npy(&npy).expect("opens");
        assert_eq!(next_rows(&npy, &mut values, 0, 2, 3).expect("rows"), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let (_, _, mut values) = open_npy(&npy).expect("opens");
        let e = next_rows(&npy, &mut values, 0, 3, 3).err().expect("past the end");
        assert!(format!("{e:?}").contains("ends at row 2"), "{e:?}");
        std::fs::write(&ids, "a\n").expect("write");
        let e = check_npy(&npy, &ids, false).err().expect("too few ids");
        assert!(format!("{e:?}").contains("1 ids for the 2 rows"), "{e:?}");
    }
}
