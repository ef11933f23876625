//! The scan: for every manifest row, read the file once and fill in `width`, `height`, `format`,
//! `bytes` and a BLAKE3 content `hash`. Only the image header is parsed, so the scan is bound by
//! I/O, and it runs across all cores. Missing or unreadable files do not stop it: their scan
//! columns stay null and they are listed in the report.

use std::io::Cursor;
use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;

use crate::error::{CurateError, Result};
use crate::progress::Progress;

/// Images per unit of work: a scan reads them together, and an embedding run writes one cache
/// part of them, so a kill loses at most one chunk's work per process.
pub const CHUNK: usize = 256;

/// A file the scan could not read or decode.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScanIssue {
    pub id: String,
    pub path: String,
    pub message: String,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ScanReport {
    pub scanned: usize,
    /// Of those, taken from the scans that `curate import --shard` left instead of read again.
    pub reused: usize,
    pub issues: Vec<ScanIssue>,
}

#[derive(Default, Clone)]
struct FileFacts {
    width: Option<u32>,
    height: Option<u32>,
    format: Option<String>,
    bytes: Option<u64>,
    hash: Option<String>,
    error: Option<String>,
}

fn scan_file(path: &Path, fetched: crate::objects::Fetched) -> FileFacts {
    let read = match fetched {
        Some(r) => r,
        None => crate::objects::read_any(path),
    };
    let data = match read {
        Ok(d) => d,
        Err(e) => return FileFacts { error: Some(e), ..FileFacts::default() },
    };
    let mut facts = FileFacts { bytes: Some(data.len() as u64), hash: Some(blake3::hash(&data).to_hex().to_string()), ..FileFacts::default() };
    let reader = match image::ImageReader::new(Cursor::new(&data)).with_guessed_format() {
        Ok(r) => r,
        Err(e) => {
            facts.error = Some(format!("cannot read: {e}"));
            return facts;
        }
    };
    facts.format = reader.format().map(|f| format!("{f:?}").to_lowercase());
    if facts.format.is_none() {
        facts.error = Some("not a recognised image format".to_string());
        return facts;
    }
    match reader.into_dimensions() {
        Ok((w, h)) => {
            facts.width = Some(w);
            facts.height = Some(h);
        }
        Err(e) => facts.error = Some(format!("corrupt image: {e}")),
    }
    facts
}

/// A local file's modification time (ns since the epoch): with its size, what says a shard's
/// scan of it still holds. Objects have none (their scans hold for the import they serve).
fn modified(meta: &std::fs::Metadata) -> Option<i64> {
    let t = meta.modified().ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as i64)
}

/// Scans that `curate import --shard i/n` processes left in `.curate/scan/`, by resolved path,
/// for the import that writes the manifest: a local file is taken from them while its size and
/// modification time are unchanged; an object by its URL.
#[derive(Default)]
pub struct ScanCache {
    by_path: std::collections::HashMap<String, (Option<i64>, FileFacts)>,
    parts: Vec<std::path::PathBuf>,
}

/// Where an import's shards leave their scans.
pub fn cache_dir(ws: &crate::workspace::Workspace) -> std::path::PathBuf {
    ws.cache_dir().join("scan")
}

impl ScanCache {
    /// Every part in `dir` (none is fine).
    pub fn load(dir: &Path) -> Result<Self> {
        let mut cache = ScanCache::default();
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(cache) };
        let mut parts: Vec<std::path::PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "arrow") && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-"))).collect();
        parts.sort();
        for part in &parts {
            let file = std::fs::File::open(part).map_err(|e| CurateError::io(part, e))?;
            let df = IpcReader::new(file).finish().map_err(|e| CurateError::io(part, format!("unreadable scan part: {e}")))?;
            let text = |name: &str| -> Result<Vec<Option<String>>> { Ok(df.column(name)?.str()?.iter().map(|v| v.map(str::to_string)).collect()) };
            let (paths, formats, hashes, errors) = (text("path")?, text("format")?, text("hash")?, text("error")?);
            let widths: Vec<Option<u32>> = df.column("width")?.u32()?.iter().collect();
            let heights: Vec<Option<u32>> = df.column("height")?.u32()?.iter().collect();
            let bytes: Vec<Option<u64>> = df.column("bytes")?.u64()?.iter().collect();
            let mtimes: Vec<Option<i64>> = df.column("mtime_ns")?.i64()?.iter().collect();
            for i in 0..df.height() {
                let Some(path) = paths[i].clone() else { continue };
                let facts = FileFacts { width: widths[i], height: heights[i], format: formats[i].clone(), bytes: bytes[i], hash: hashes[i].clone(), error: errors[i].clone() };
                cache.by_path.insert(path, (mtimes[i], facts));
            }
        }
        cache.parts = parts;
        Ok(cache)
    }

    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// The cached scan of `path`, if it still holds. A file a shard could not read is read
    /// again (the failure may have been the network's).
    fn get(&self, path: &Path) -> Option<FileFacts> {
        let (mtime, facts) = self.by_path.get(path.to_string_lossy().as_ref())?;
        if facts.error.is_some() {
            return None;
        }
        if mtime.is_some() {
            let meta = std::fs::metadata(path).ok()?;
            if Some(meta.len()) != facts.bytes || modified(&meta) != *mtime {
                return None;
            }
        }
        Some(facts.clone())
    }

    /// Remove the parts once the manifest they served is written.
    pub fn remove(self) {
        for p in self.parts {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Scan every row of `df` (which must have `id` and `path`), resolving paths with `resolve`.
/// Returns the frame with the scan columns replaced.
pub fn scan(df: DataFrame, resolve: &(dyn Fn(&str) -> std::path::PathBuf + Sync), progress: &dyn Progress) -> Result<(DataFrame, ScanReport)> {
    scan_with(df, resolve, progress, None)
}

/// Scan the rows of one shard of an import and leave the results as a part in `dir`, for the
/// import that writes the manifest (`curate import --shard i/n`, then `curate import`).
pub fn scan_part(df: DataFrame, resolve: &(dyn Fn(&str) -> std::path::PathBuf + Sync), progress: &dyn Progress, dir: &Path) -> Result<ScanReport> {
    let paths = str_column(&df, "path")?;
    let (facts, report) = scan_facts(&df, resolve, progress, None)?;
    let resolved: Vec<String> = paths.iter().map(|p| resolve(p).to_string_lossy().to_string()).collect();
    let mtimes: Vec<Option<i64>> = resolved.iter().map(|p| if crate::objects::is_url(p) { None } else { std::fs::metadata(p).ok().as_ref().and_then(modified) }).collect();
    let mut part = DataFrame::new(
        facts.len(),
        vec![
            Column::new("path".into(), resolved),
            Column::new("mtime_ns".into(), mtimes),
            Column::new("width".into(), facts.iter().map(|f| f.width).collect::<Vec<_>>()),
            Column::new("height".into(), facts.iter().map(|f| f.height).collect::<Vec<_>>()),
            Column::new("format".into(), facts.iter().map(|f| f.format.clone()).collect::<Vec<_>>()),
            Column::new("bytes".into(), facts.iter().map(|f| f.bytes).collect::<Vec<_>>()),
            Column::new("hash".into(), facts.iter().map(|f| f.hash.clone()).collect::<Vec<_>>()),
            Column::new("error".into(), facts.iter().map(|f| f.error.clone()).collect::<Vec<_>>()),
        ],
    )?;
    std::fs::create_dir_all(dir).map_err(|e| CurateError::io(dir, e))?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let path = dir.join(format!("part-{stamp:020}-{}.arrow", std::process::id()));
    crate::atomic::write_atomic(&path, |f| IpcWriter::new(f).finish(&mut part).map_err(|e| CurateError::io(&path, e)))?;
    Ok(report)
}

/// [`scan`], taking what `cache` holds instead of reading it again.
pub fn scan_with(df: DataFrame, resolve: &(dyn Fn(&str) -> std::path::PathBuf + Sync), progress: &dyn Progress, cache: Option<&ScanCache>) -> Result<(DataFrame, ScanReport)> {
    let (facts, report) = scan_facts(&df, resolve, progress, cache)?;
    let cols = [
        Column::new("width".into(), facts.iter().map(|f| f.width).collect::<Vec<_>>()),
        Column::new("height".into(), facts.iter().map(|f| f.height).collect::<Vec<_>>()),
        Column::new("format".into(), facts.iter().map(|f| f.format.clone()).collect::<Vec<_>>()),
        Column::new("bytes".into(), facts.iter().map(|f| f.bytes).collect::<Vec<_>>()),
        Column::new("hash".into(), facts.iter().map(|f| f.hash.clone()).collect::<Vec<_>>()),
    ];
    let mut df = df;
    for c in cols {
        df.with_column(c)?;
    }
    Ok((df, report))
}

fn scan_facts(df: &DataFrame, resolve: &(dyn Fn(&str) -> std::path::PathBuf + Sync), progress: &dyn Progress, cache: Option<&ScanCache>) -> Result<(Vec<FileFacts>, ScanReport)> {
    let ids = str_column(df, "id")?;
    let paths = str_column(df, "path")?;
    // What the shards' scans already hold, then the rest.
    let mut facts: Vec<Option<FileFacts>> = match cache {
        Some(c) if !c.is_empty() => paths.par_iter().map(|p| c.get(&resolve(p))).collect(),
        _ => vec![None; paths.len()],
    };
    let reused = facts.iter().filter(|f| f.is_some()).count();
    let todo: Vec<usize> = (0..paths.len()).filter(|&i| facts[i].is_none()).collect();
    progress.start("scanning images", todo.len() as u64);
    // Objects in a store are fetched a chunk at a time, many requests in flight, so memory is
    // bounded by one chunk; local files are read by the worker that parses them.
    for chunk in todo.chunks(CHUNK) {
        if progress.is_cancelled() {
            break;
        }
        let resolved: Vec<std::path::PathBuf> = chunk.iter().map(|&i| resolve(&paths[i])).collect();
        let fetched = match crate::objects::fetch_objects(&resolved.iter().map(|p| p.as_path()).collect::<Vec<_>>()) {
            Ok(f) => f,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        let inputs: Vec<(usize, std::path::PathBuf, crate::objects::Fetched)> = chunk.iter().copied().zip(resolved).zip(fetched).map(|((i, p), d)| (i, p, d)).collect();
        let done: Vec<(usize, FileFacts)> = inputs
            .into_par_iter()
            .filter_map(|(i, p, data)| {
                if progress.is_cancelled() {
                    return None;
                }
                let f = scan_file(&p, data);
                progress.advance(1);
                Some((i, f))
            })
            .collect();
        for (i, f) in done {
            facts[i] = Some(f);
        }
    }
    progress.finish();
    if progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }
    let facts: Vec<FileFacts> = facts.into_iter().map(Option::unwrap_or_default).collect();
    let mut report = ScanReport { scanned: facts.len(), reused, issues: Vec::new() };
    for ((id, path), f) in ids.iter().zip(&paths).zip(&facts) {
        if let Some(msg) = &f.error {
            report.issues.push(ScanIssue { id: id.clone(), path: path.clone(), message: msg.clone() });
        }
    }
    Ok((facts, report))
}

/// A text column as owned strings, nulls as "".
pub fn str_column(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let col = df.column(name)?;
    let ca = col.str()?;
    Ok(ca.iter().map(|v| v.unwrap_or_default().to_string()).collect())
}
