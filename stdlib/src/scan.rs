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
    pub issues: Vec<ScanIssue>,
}

#[derive(Default)]
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
    let mut facts = FileFacts {
        bytes: Some(data.len() as u64),
        hash: Some(blake3::hash(&data).to_hex().to_string()),
        ..FileFacts::default()
    };
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

/// Scan every row of `df` (which must have `id` and `path`), resolving paths with `resolve`.
/// Returns the frame with the scan columns replaced.
pub fn scan(
    df: DataFrame,
    resolve: &(dyn Fn(&str) -> std::path::PathBuf + Sync),
    progress: &dyn Progress,
) -> Result<(DataFrame, ScanReport)> {
    let ids = str_column(&df, "id")?;
    let paths = str_column(&df, "path")?;
    progress.start("scanning images", paths.len() as u64);
    // Objects in a store are fetched a chunk at a time, many requests in flight, so memory is
    // bounded by one chunk; local files are read by the worker that parses them.
    let mut facts: Vec<Option<FileFacts>> = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(crate::embed::CHUNK) {
        if progress.is_cancelled() {
            break;
        }
        let resolved: Vec<std::path::PathBuf> = chunk.iter().map(|p| resolve(p)).collect();
        let fetched = match crate::objects::fetch_objects(&resolved.iter().map(|p| p.as_path()).collect::<Vec<_>>()) {
            Ok(f) => f,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        let inputs: Vec<(std::path::PathBuf, crate::objects::Fetched)> = resolved.into_iter().zip(fetched).collect();
        facts.par_extend(inputs.into_par_iter().map(|(p, data)| {
            if progress.is_cancelled() {
                return None;
            }
            let f = scan_file(&p, data);
            progress.advance(1);
            Some(f)
        }));
    }
    progress.finish();
    if progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }
    let facts: Vec<FileFacts> = facts.into_iter().flatten().collect();
    let mut report = ScanReport {
        scanned: facts.len(),
        issues: Vec::new(),
    };
    for ((id, path), f) in ids.iter().zip(&paths).zip(&facts) {
        if let Some(msg) = &f.error {
            report.issues.push(ScanIssue {
                id: id.clone(),
                path: path.clone(),
                message: msg.clone(),
            });
        }
    }
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

/// A text column as owned strings, nulls as "".
pub fn str_column(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let col = df.column(name)?;
    let ca = col.str()?;
    Ok(ca.iter().map(|v| v.unwrap_or_default().to_string()).collect())
}
