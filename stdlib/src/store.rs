//! The vector store: one memory-mapped, row-major matrix per model and kind of output, addressed
//! through an Arrow table of content hashes.
//!
//! ```text
//! <cache dir>/store.json        what is committed: dtype, width, rows, the table's file name
//! <cache dir>/vectors.f16       row-major rows (f16 embeddings, unit length; f32 for scores),
//!                               append-only; only the first `rows` rows are committed
//! <cache dir>/norms.f32         each row's original length (embeddings are stored normalised)
//! <cache dir>/rows-<id>.arrow   hash (str) -> row (u32), one line per live content hash
//! <cache dir>/part-*.arrow      the write path: chunks that embedding runs and imports leave,
//!                               merged into the store by `compact`
//! ```
//!
//! Opening maps the files and reads `store.json`: milliseconds, and resident memory grows only
//! with the pages a search touches. Embeddings are normalised once, here, so cosine search is a
//! plain matrix product with no per-query preparation; the norms keep the raw vectors (probes,
//! L2) recoverable.
//!
//! Compaction is crash-safe: it appends rows past the committed end, writes a new table, and only
//! then commits by replacing `store.json` atomically. A kill at any point leaves the previous
//! store readable and the parts in place; the next compaction cuts the torn tail and redoes the
//! work. Compactions of one store are serialised by a lock file.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use curate_kernels::knn::Matrix;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::atomic::{write_atomic, write_bytes_atomic};
use crate::error::{CurateError, Result};

pub const META: &str = "store.json";
const NORMS: &str = "norms.f32";
const LOCK: &str = "store.lock";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F16,
    F32,
}

impl Dtype {
    fn bytes(self) -> usize {
        match self {
            Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }

    fn file(self) -> &'static str {
        match self {
            Dtype::F16 => "vectors.f16",
            Dtype::F32 => "vectors.f32",
        }
    }
}

/// How a store keeps its rows: embeddings as unit f16 vectors, class scores as they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub dtype: Dtype,
    pub normalized: bool,
}

impl Layout {
    pub const EMBEDDINGS: Layout = Layout { dtype: Dtype::F16, normalized: true };
    pub const SCORES: Layout = Layout { dtype: Dtype::F32, normalized: false };
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub version: u32,
    pub dtype: Dtype,
    pub normalized: bool,
    pub dim: usize,
    /// Committed rows in the matrix file (live or replaced).
    pub rows: usize,
    /// Content hashes in the table.
    pub live: usize,
    /// File name of the hash table.
    pub table: String,
    /// Changes whenever rows are added: what indexes and caches over the store are keyed by.
    pub content: String,
    /// Parts merged by the compaction that wrote this file, as stores before 2026-12 recorded
    /// them (read, never written: a part's rows that the store already holds, byte for byte,
    /// add nothing, so a part left by a kill after the commit, or copied twice by `curate
    /// merge`, needs no record; and the file says only what the store holds, so equal work
    /// gives an equal store whatever its parts were).
    #[serde(default, skip_serializing)]
    pub compacted: Vec<String>,
}

/// A row as the store keeps it: its bytes (unit length first for embeddings) and its length.
fn encode(row: &mut [f32], dtype: Dtype, normalized: bool, out: &mut Vec<u8>) -> f32 {
    let nrm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
    if normalized && nrm > 0.0 {
        row.iter_mut().for_each(|x| *x /= nrm);
    }
    match dtype {
        Dtype::F16 => {
            use half::slice::HalfFloatSliceExt;
            let mut half = vec![half::f16::ZERO; row.len()];
            half.as_mut_slice().convert_from_f32_slice(row);
            out.extend_from_slice(bytemuck::cast_slice(&half));
        }
        Dtype::F32 => out.extend_from_slice(bytemuck::cast_slice(row)),
    }
    nrm
}

/// The identity of a store's committed description file (inode, size, modification and change times).
/// Every commit replaces that file by a rename, so an unchanged stamp means an unchanged store.
pub type Stamp = crate::atomic::FileIdentity;

/// The stamp of the store in `dir`, `None` when it has no description yet.
pub fn commit_stamp(dir: &Path) -> Option<Stamp> {
    crate::atomic::identity(&dir.join(META))
}

/// An open, read-only view of a store.
pub struct Store {
    dir: PathBuf,
    meta: Option<Meta>,
    vectors: Option<memmap2::Mmap>,
    norms: Option<memmap2::Mmap>,
    table: OnceLock<DataFrame>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> CurateError {
    CurateError::io(path, e.to_string())
}

fn read_meta(dir: &Path) -> Result<Option<Meta>> {
    let path = dir.join(META);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| io(&path, format!("unreadable vector store description: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path, e)),
    }
}

fn map(path: &Path, len: usize) -> Result<Option<memmap2::Mmap>> {
    if len == 0 {
        return Ok(None);
    }
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let have = file.metadata().map_err(|e| io(path, e))?.len() as usize;
    if have < len {
        return Err(io(path, format!("vector store file is {have} bytes, but {len} are committed (truncated? delete the folder to rebuild the cache)")));
    }
    // SAFETY: the committed prefix is never written again: compaction only appends past it
    // (and truncates only what lies past it), so the mapped bytes do not change under us.
    let mmap = unsafe { memmap2::MmapOptions::new().len(len).map(&file) }.map_err(|e| io(path, e))?;
    Ok(Some(mmap))
}

impl Store {
    /// Open the committed store in `dir` (an empty store when there is none yet).
    pub fn open(dir: &Path) -> Result<Store> {
        let meta = read_meta(dir)?;
        let (vectors, norms) = match &meta {
            Some(m) => (map(&dir.join(m.dtype.file()), m.rows * m.dim * m.dtype.bytes())?, map(&dir.join(NORMS), m.rows * 4)?),
            None => (None, None),
        };
        Ok(Store { dir: dir.to_path_buf(), meta, vectors, norms, table: OnceLock::new() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn dim(&self) -> usize {
        self.meta.as_ref().map_or(0, |m| m.dim)
    }

    /// Distinct content hashes stored.
    pub fn len(&self) -> usize {
        self.meta.as_ref().map_or(0, |m| m.live)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows in the matrix (some may have been replaced by a later row for the same hash).
    pub fn rows(&self) -> usize {
        self.meta.as_ref().map_or(0, |m| m.rows)
    }

    pub fn normalized(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| m.normalized)
    }

    /// Changes whenever rows are added.
    pub fn fingerprint(&self) -> &str {
        self.meta.as_ref().map_or("empty", |m| m.content.as_str())
    }

    pub fn matrix(&self) -> Matrix<'_> {
        let bytes: &[u8] = self.vectors.as_deref().unwrap_or(&[]);
        match self.meta.as_ref().map_or(Dtype::F32, |m| m.dtype) {
            Dtype::F16 => Matrix::F16(bytemuck::cast_slice(bytes)),
            Dtype::F32 => Matrix::F32(bytemuck::cast_slice(bytes)),
        }
    }

    /// Each row's original length.
    pub fn norms(&self) -> &[f32] {
        bytemuck::cast_slice(self.norms.as_deref().unwrap_or(&[]))
    }

    /// Row `r` as stored: unit length for embeddings.
    pub fn unit_row(&self, r: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.dim()];
        self.matrix().row_into(r, &mut out);
        out
    }

    /// Row `r` as the model produced it (up to f16 rounding for embeddings).
    pub fn raw_row(&self, r: usize) -> Vec<f32> {
        let mut v = self.unit_row(r);
        if self.normalized() {
            let n = self.norms()[r];
            v.iter_mut().for_each(|x| *x *= n);
        }
        v
    }

    /// The hash table: `hash` (str) and `row` (u32), read once per open store.
    pub fn table(&self) -> Result<&DataFrame> {
        if let Some(t) = self.table.get() {
            return Ok(t);
        }
        let df = match &self.meta {
            Some(m) => {
                let path = self.dir.join(&m.table);
                let file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
                IpcReader::new(file).finish().map_err(|e| io(&path, format!("unreadable vector store table: {e}")))?
            }
            None => df!("hash" => Vec::<String>::new(), "row" => Vec::<u32>::new())?,
        };
        Ok(self.table.get_or_init(|| df))
    }

    /// The row of each hash (in order), by a join on the hash table.
    pub fn rows_of(&self, hashes: &Column) -> Result<Vec<Option<u32>>> {
        let left = DataFrame::new(hashes.len(), vec![hashes.cast(&DataType::String)?.with_name("hash".into())])?;
        let joined = left
            .lazy()
            .with_row_index("__order", None)
            .left_join(self.table()?.clone().lazy(), col("hash"), col("hash"))
            .sort(["__order"], SortMultipleOptions::default())
            .select([col("row")])
            .collect()?;
        Ok(joined.column("row")?.u32()?.iter().collect())
    }

    /// Every stored hash with its row.
    pub fn entries(&self) -> Result<Vec<(String, u32)>> {
        let t = self.table()?;
        Ok(t.column("hash")?.str()?.iter().zip(t.column("row")?.u32()?.iter()).filter_map(|(h, r)| Some((h?.to_string(), r?))).collect())
    }
}

/// The write path's parts in `dir`, oldest first.
pub fn part_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "arrow") && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .collect();
    parts.sort();
    Ok(parts)
}

/// Write one part of `n` vectors `dim` wide (atomically) and return its path.
pub fn write_part(dir: &Path, hashes: Vec<String>, vectors: Vec<f32>, dim: usize) -> Result<PathBuf> {
    let n = hashes.len();
    let flat = Series::new("vector".into(), vectors);
    let arr = flat.reshape_array(&[ReshapeDimension::new_dimension(n as u64), ReshapeDimension::new_dimension(dim as u64)])?;
    let mut df = DataFrame::new(n, vec![Column::new("hash".into(), hashes), arr.into_column()])?;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("part-{stamp:020}-{}-{seq:06}.arrow", std::process::id()));
    write_atomic(&path, |f| IpcWriter::new(f).finish(&mut df).map_err(|e| io(&path, e)))?;
    Ok(path)
}

/// Write `bytes` at `offset` of the vectors file.
fn write_run(file: &std::fs::File, path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    let mut f = file;
    f.seek(SeekFrom::Start(offset)).map_err(|e| io(path, e))?;
    f.write_all(bytes).map_err(|e| io(path, e))
}

/// The hashes of a part's rows, in the order [`read_part`] gives its rows (null hashes left out).
fn read_part_hashes(part: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(part).map_err(|e| io(part, e))?;
    let df = IpcReader::new(file).with_columns(Some(vec!["hash".into()])).finish().map_err(|e| io(part, format!("unreadable cache part: {e}")))?;
    let hs = df.column("hash").and_then(|c| c.str().cloned()).map_err(|e| io(part, e.to_string()))?;
    Ok(hs.iter().flatten().map(str::to_string).collect())
}

/// Every hash the parts in `dir` hold (what a shard counts as done without compacting).
pub fn part_hashes(dir: &Path) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for p in part_files(dir)? {
        out.extend(read_part_hashes(&p)?);
    }
    Ok(out)
}

/// The (hash, vector) rows of a part.
pub fn read_part(part: &Path) -> Result<(Vec<String>, Vec<f32>, usize)> {
    let file = std::fs::File::open(part).map_err(|e| io(part, e))?;
    let df = IpcReader::new(file).finish().map_err(|e| io(part, format!("unreadable cache part: {e}")))?;
    let bad = |m: String| io(part, m);
    let hs = df.column("hash").and_then(|c| c.str().cloned()).map_err(|e| bad(e.to_string()))?;
    let vecs = df.column("vector").and_then(|c| c.array().cloned()).map_err(|e| bad(e.to_string()))?;
    let dim = vecs.width();
    let inner = vecs.get_inner();
    let flat: Vec<f32> = inner.f32().map_err(|e| bad(e.to_string()))?.into_no_null_iter().collect();
    let mut hashes = Vec::with_capacity(hs.len());
    let mut data = Vec::with_capacity(flat.len());
    for (i, h) in hs.iter().enumerate() {
        if let Some(h) = h {
            hashes.push(h.to_string());
            data.extend_from_slice(&flat[i * dim..(i + 1) * dim]);
        }
    }
    Ok((hashes, data, dim))
}

/// Stop the process at a named point when `CURATE_FAILPOINT` names it: how the tests kill a
/// compaction or an index build at every step.
pub fn failpoint(name: &str) {
    if std::env::var("CURATE_FAILPOINT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}

/// Hold an exclusive lock on `dir/name` (created if missing) until the file is dropped.
pub fn lock_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| io(&path, e))?;
    fs4::FileExt::lock(&file).map_err(|e| io(&path, e))?;
    Ok(file)
}

/// Append `bytes` to `path` right after its first `committed` bytes (cutting any torn tail a
/// killed compaction left), and flush them to disk.
fn append_at(path: &Path, committed: u64, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).map_err(|e| io(path, e))?;
    f.set_len(committed).map_err(|e| io(path, e))?;
    f.seek(SeekFrom::Start(committed)).map_err(|e| io(path, e))?;
    f.write_all(bytes).map_err(|e| io(path, e))?;
    f.sync_all().map_err(|e| io(path, e))
}

/// Merge the parts in `dir` into its store. Returns how many rows were added.
pub fn compact(dir: &Path, layout: Layout) -> Result<usize> {
    if part_files(dir)?.is_empty() {
        return Ok(0);
    }
    let _lock = lock_file(dir, LOCK)?;
    let meta = read_meta(dir)?;
    let already: std::collections::HashSet<&str> = meta.iter().flat_map(|m| m.compacted.iter().map(String::as_str)).collect();
    let mut merged_before = Vec::new();
    let mut parts = Vec::new();
    for p in part_files(dir)? {
        let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if already.contains(name.as_str()) {
            merged_before.push(p);
        } else {
            parts.push((name, p));
        }
    }
    for p in merged_before {
        let _ = std::fs::remove_file(p);
    }
    // A part a killed process was writing stays a temp file; one untouched for an hour is no
    // live writer's (a part takes seconds), so it goes.
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let stale = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() > 3600);
        if stale && e.file_name().to_string_lossy().starts_with(".curate-tmp-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if parts.is_empty() {
        return Ok(0);
    }
    let (dtype, normalized) = match &meta {
        Some(m) => (m.dtype, m.normalized),
        None => (layout.dtype, layout.normalized),
    };
    let mut dim = meta.as_ref().map_or(0, |m| m.dim);
    // Rows the store already holds byte for byte add nothing: a part a kill left after the
    // commit, or one `curate merge` copied again. Only parts naming stored hashes are read here.
    let old = Store::open(dir)?;
    let live: HashMap<String, u32> = if old.is_empty() { HashMap::new() } else { old.entries()?.into_iter().collect() };
    let mut held: std::collections::HashSet<(usize, usize)> = Default::default();
    if !live.is_empty() {
        let width = old.dim() * dtype.bytes();
        let mut bytes = Vec::new();
        for (pi, (_, p)) in parts.iter().enumerate() {
            if !read_part_hashes(p)?.iter().any(|h| live.contains_key(h)) {
                continue;
            }
            let (hs, mut vs, w) = read_part(p)?;
            if w != old.dim() {
                continue;
            }
            for (i, h) in hs.iter().enumerate() {
                let Some(&r) = live.get(h) else { continue };
                bytes.clear();
                let nrm = encode(&mut vs[i * w..(i + 1) * w], dtype, normalized, &mut bytes);
                let stored = old.vectors.as_ref().map(|m| &m[r as usize * width..(r as usize + 1) * width]);
                if stored == Some(bytes.as_slice()) && old.norms().get(r as usize) == Some(&nrm) {
                    held.insert((pi, i));
                }
            }
        }
    }
    // Two passes, so that memory holds one part, not all of them (1M × 1280 parts are 5 GB).
    // First the hashes: a later part's vector wins for a repeated hash (and a later row equal
    // to the stored one wins by leaving the hash as it is).
    let mut slot: HashMap<String, usize> = HashMap::new();
    let mut hashes: Vec<String> = Vec::new();
    let mut winner: Vec<Option<(usize, usize)>> = Vec::new();
    for (pi, (_, p)) in parts.iter().enumerate() {
        for (i, h) in read_part_hashes(p)?.into_iter().enumerate() {
            let w = (!held.contains(&(pi, i))).then_some((pi, i));
            match slot.get(&h) {
                Some(&s) => winner[s] = w,
                None => {
                    slot.insert(h.clone(), hashes.len());
                    hashes.push(h);
                    winner.push(w);
                }
            }
        }
    }
    drop(old);
    // New rows go in hash order, not in the order parts arrived: the same rows give the same
    // store whether one process wrote them or shards did (`curate merge`).
    let mut order: Vec<usize> = (0..hashes.len()).filter(|&i| winner[i].is_some()).collect();
    order.sort_unstable_by(|&a, &b| hashes[a].cmp(&hashes[b]));
    let hashes: Vec<String> = order.iter().map(|&i| std::mem::take(&mut hashes[i])).collect();
    let winner: Vec<(usize, usize)> = order.iter().filter_map(|&i| winner[i]).collect();
    slot.clear();
    for (s, h) in hashes.iter().enumerate() {
        slot.insert(h.clone(), s);
    }
    let old_rows = meta.as_ref().map_or(0, |m| m.rows);
    let n = hashes.len();
    if n == 0 {
        // Only empty parts: nothing changes (not even the fingerprint indexes are keyed by).
        for (_, p) in &parts {
            let _ = std::fs::remove_file(p);
        }
        return Ok(0);
    }
    // Then each part's winning rows, normalised and encoded, written past the committed rows
    // at their slots (runs of consecutive slots in one write).
    let vectors_path = dir.join(dtype.file());
    let file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&vectors_path).map_err(|e| io(&vectors_path, e))?;
    let mut norms = vec![0f32; n];
    // The fingerprint: the previous one, then each new row's hash and encoded bytes, in row order.
    let mut digests = vec![[0u8; 32]; n];
    let mut sized = false;
    for (pi, (_, p)) in parts.iter().enumerate() {
        let (hs, vs, width) = read_part(p)?;
        if hs.is_empty() {
            continue;
        }
        if width == 0 {
            return Err(io(p, "vectors of width 0"));
        }
        if dim == 0 {
            dim = width;
        } else if width != dim {
            return Err(io(p, format!("vectors of width {width}, but the store holds width {dim}")));
        }
        if !sized {
            // Cut whatever an interrupted compaction left past the committed rows.
            file.set_len((old_rows * dim * dtype.bytes()) as u64).map_err(|e| io(&vectors_path, e))?;
            sized = true;
        }
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = usize::MAX;
        let mut next = usize::MAX;
        let mut row = vec![0f32; dim];
        for (i, h) in hs.iter().enumerate() {
            let Some(&s) = slot.get(h) else { continue };
            if winner[s] != (pi, i) {
                continue;
            }
            if s != next && !run.is_empty() {
                write_run(&file, &vectors_path, ((old_rows + run_start) * dim * dtype.bytes()) as u64, &run)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = s;
            }
            row.copy_from_slice(&vs[i * dim..(i + 1) * dim]);
            let at = run.len();
            norms[s] = encode(&mut row, dtype, normalized, &mut run);
            digests[s] = *blake3::hash(&run[at..]).as_bytes();
            next = s + 1;
        }
        if !run.is_empty() {
            write_run(&file, &vectors_path, ((old_rows + run_start) * dim * dtype.bytes()) as u64, &run)?;
        }
    }
    file.sync_all().map_err(|e| io(&vectors_path, e))?;
    drop(file);
    append_at(&dir.join(NORMS), (old_rows * 4) as u64, bytemuck::cast_slice(&norms))?;
    failpoint("compact:appended");

    // The new table: the old one without the replaced hashes, then the new rows.
    let new_rows: Vec<u32> = (old_rows as u32..(old_rows + n) as u32).collect();
    let added = df!("hash" => hashes.clone(), "row" => new_rows)?;
    let old = Store { dir: dir.to_path_buf(), meta: meta.clone(), vectors: None, norms: None, table: OnceLock::new() };
    let kept = old.table()?.clone().lazy().filter(col("hash").is_in(lit(Series::new("h".into(), hashes.clone())).implode(false), false).not()).collect()?;
    let mut table = kept.vstack(&added)?;
    let mut content = blake3::Hasher::new();
    content.update(meta.as_ref().map_or("", |m| m.content.as_str()).as_bytes());
    for (h, d) in hashes.iter().zip(&digests) {
        content.update(h.as_bytes());
        content.update(d);
    }
    let content = content.finalize().to_hex().to_string();
    let table_name = format!("rows-{}.arrow", &content[..16]);
    let table_path = dir.join(&table_name);
    write_atomic(&table_path, |f| IpcWriter::new(f).finish(&mut table).map_err(|e| io(&table_path, e)))?;
    failpoint("compact:table");

    let new_meta = Meta { version: 1, dtype, normalized, dim, rows: old_rows + n, live: table.height(), table: table_name.clone(), content, compacted: vec![] };
    let json = serde_json::to_vec_pretty(&new_meta).map_err(|e| io(&dir.join(META), e))?;
    write_bytes_atomic(&dir.join(META), &json)?;
    failpoint("compact:committed");

    for (_, p) in &parts {
        let _ = std::fs::remove_file(p);
    }
    // Tables older than the previous one go: a store opened before this commit may still read
    // the previous table, lazily.
    let previous = meta.as_ref().map(|m| m.table.clone()).unwrap_or_default();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("rows-") && name.ends_with(".arrow") && name != table_name && name != previous {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(n)
}

/// Write vectors straight into a store in `dir` (benchmarks and tests).
pub fn write(dir: &Path, hashes: Vec<String>, vectors: Vec<f32>, dim: usize, layout: Layout) -> Result<Store> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    const CHUNK: usize = 100_000;
    for (i, hs) in hashes.chunks(CHUNK).enumerate() {
        let start = i * CHUNK * dim;
        write_part(dir, hs.to_vec(), vectors[start..start + hs.len() * dim].to_vec(), dim)?;
        compact(dir, layout)?;
    }
    Store::open(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f16 keeps 11 significant bits.
    fn close(a: Vec<f32>, b: &[f32]) {
        assert!(a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-3 * y.abs().max(1.0)), "{a:?} != {b:?}");
    }

    fn hashes(r: std::ops::Range<usize>) -> Vec<String> {
        r.map(|i| format!("{i:064x}")).collect()
    }

    #[test]
    fn compaction_normalises_appends_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_part(dir.path(), hashes(0..3), vec![3.0, 4.0, 0.0, 2.0, 1.0, 0.0], 2).expect("part");
        assert_eq!(compact(dir.path(), Layout::EMBEDDINGS).expect("compact"), 3);
        let s = Store::open(dir.path()).expect("open");
        assert_eq!((s.len(), s.rows(), s.dim()), (3, 3, 2));
        close(s.unit_row(0), &[0.6, 0.8]);
        close(s.raw_row(0), &[3.0, 4.0]);
        assert_eq!(s.norms()[2], 1.0);
        let first = s.fingerprint().to_string();
        // A new vector for hash 1 and a new hash 3.
        let mut hs = hashes(1..2);
        hs.extend(hashes(3..4));
        write_part(dir.path(), hs, vec![0.0, 5.0, 1.0, 1.0], 2).expect("part");
        assert_eq!(compact(dir.path(), Layout::EMBEDDINGS).expect("compact"), 2);
        let s = Store::open(dir.path()).expect("open");
        assert_eq!((s.len(), s.rows()), (4, 5));
        assert_ne!(s.fingerprint(), first);
        let col = Column::new("h".into(), vec![Some(format!("{:064x}", 1)), None, Some("nope".to_string()), Some(format!("{:064x}", 0))]);
        assert_eq!(s.rows_of(&col).expect("rows"), vec![Some(3), None, None, Some(0)]);
        close(s.raw_row(3), &[0.0, 5.0]);
        assert!(part_files(dir.path()).expect("ls").is_empty());
        let leftover: Vec<String> = std::fs::read_dir(dir.path()).expect("ls").flatten().map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.starts_with("rows-")).collect();
        assert_eq!(leftover.len(), 2, "tables older than the previous one are removed: {leftover:?}");
    }

    /// The files a store consists of, by name (not the lock).
    fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir).expect("ls").flatten().map(|e| (e.file_name().to_string_lossy().to_string(), std::fs::read(e.path()).expect("read"))).filter(|(n, _)| n != LOCK).collect()
    }

    #[test]
    fn equal_rows_give_equal_stores_whatever_their_parts() {
        let vector = |i: usize| vec![i as f32 + 1.0, (i * 7 % 5) as f32];
        let rows: Vec<(String, Vec<f32>)> = (0..40).map(|i| (format!("{:064x}", (i * 7919) % 101), vector(i))).collect();
        let one = tempfile::tempdir().expect("tempdir");
        let split = tempfile::tempdir().expect("tempdir");
        // One part in order; four parts of every fourth row, written last first.
        write_part(one.path(), rows.iter().map(|r| r.0.clone()).collect(), rows.iter().flat_map(|r| r.1.clone()).collect(), 2).expect("part");
        for shard in (0..4).rev() {
            let mine: Vec<&(String, Vec<f32>)> = rows.iter().skip(shard).step_by(4).collect();
            write_part(split.path(), mine.iter().map(|r| r.0.clone()).collect(), mine.iter().flat_map(|r| r.1.clone()).collect(), 2).expect("part");
        }
        for dir in [&one, &split] {
            compact(dir.path(), Layout::EMBEDDINGS).expect("compact");
        }
        let (a, b) = (files(one.path()), files(split.path()));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        assert!(a == b, "the same rows, byte for byte");
    }

    #[test]
    fn rows_the_store_holds_add_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let part = write_part(dir.path(), hashes(0..2), vec![1.0, 0.0, 0.0, 2.0], 2).expect("part");
        let kept = std::fs::read(&part).expect("read");
        compact(dir.path(), Layout::EMBEDDINGS).expect("compact");
        let before = files(dir.path());
        // What a kill right after the commit leaves (or a merge copying a part twice): the part.
        std::fs::write(&part, kept).expect("restore the part");
        assert_eq!(compact(dir.path(), Layout::EMBEDDINGS).expect("compact"), 0);
        assert_eq!(files(dir.path()), before, "nothing changes, not even the fingerprint");
        // A stored hash with another vector is replaced, and only it is added.
        write_part(dir.path(), hashes(0..2), vec![1.0, 0.0, 0.0, 3.0], 2).expect("part");
        assert_eq!(compact(dir.path(), Layout::EMBEDDINGS).expect("compact"), 1);
        let s = Store::open(dir.path()).expect("open");
        assert_eq!((s.len(), s.rows()), (2, 3));
        close(s.raw_row(2), &[0.0, 3.0]);
    }

    #[test]
    fn a_part_a_kill_cut_short_goes_once_it_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join(".curate-tmp-killed");
        let fresh = dir.path().join(".curate-tmp-writing");
        for p in [&old, &fresh] {
            std::fs::write(p, b"half a part").expect("write");
        }
        let two_hours = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        std::fs::File::options().write(true).open(&old).and_then(|f| f.set_modified(two_hours)).expect("age it");
        write_part(dir.path(), hashes(0..1), vec![1.0, 0.0], 2).expect("part");
        compact(dir.path(), Layout::EMBEDDINGS).expect("compact");
        assert!(!old.exists(), "an hour-old temp file is no live writer's");
        assert!(fresh.exists(), "a recent one may be another process's part in the making");
    }

    #[test]
    fn a_torn_tail_is_cut_and_scores_stay_raw() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_part(dir.path(), hashes(0..1), vec![0.25, 0.75], 2).expect("part");
        compact(dir.path(), Layout::SCORES).expect("compact");
        // What a killed compaction leaves: bytes past the committed rows, and a part.
        let mut f = std::fs::OpenOptions::new().append(true).open(dir.path().join("vectors.f32")).expect("open");
        f.write_all(&[1, 2, 3]).expect("write");
        let s = Store::open(dir.path()).expect("a torn tail does not stop readers");
        assert_eq!(s.raw_row(0), vec![0.25, 0.75]);
        write_part(dir.path(), hashes(1..2), vec![0.5, 0.5], 2).expect("part");
        compact(dir.path(), Layout::SCORES).expect("compact");
        let s = Store::open(dir.path()).expect("open");
        assert_eq!(s.raw_row(1), vec![0.5, 0.5]);
        assert_eq!(std::fs::metadata(dir.path().join("vectors.f32")).expect("stat").len(), 16);
    }

    #[test]
    fn a_width_change_is_an_error_that_names_the_part() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_part(dir.path(), hashes(0..1), vec![1.0, 0.0], 2).expect("part");
        compact(dir.path(), Layout::EMBEDDINGS).expect("compact");
        let p = write_part(dir.path(), hashes(1..2), vec![1.0, 0.0, 0.0], 3).expect("part");
        let e = compact(dir.path(), Layout::EMBEDDINGS).expect_err("width");
        assert!(e.to_string().contains("width 3") || format!("{e:?}").contains("width 3"), "{e:?}");
        assert!(format!("{e:?}").contains(&p.file_name().expect("name").to_string_lossy().to_string()), "{e:?}");
    }
}
