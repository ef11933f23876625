//! Atomic file writes: write a temporary file beside the target, fsync it, then rename it over.
//! A reader never sees a torn file, and an interrupted write leaves the old file in place.

use std::io::Write;
use std::path::Path;

use crate::error::{CurateError, Result};

/// Write `path` atomically with whatever `write` puts into the file.
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut std::fs::File) -> Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| CurateError::io(dir, e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".curate-tmp-");
    // tempfile makes private (0600) files; what we write is shared workspace data.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| CurateError::io(dir, e))?;
    write(tmp.as_file_mut())?;
    tmp.as_file_mut().flush().map_err(|e| CurateError::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| CurateError::io(path, e))?;
    tmp.persist(path).map_err(|e| CurateError::io(path, e.error))?;
    // The rename itself reaches the disk only with its folder (what later deletions rely on).
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Write bytes to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |f| f.write_all(bytes).map_err(|e| CurateError::io(path, e)))
}

/// A file's identity for the caches keyed by it: inode, size, modification and change times,
/// from one `stat`. The files it is used on are replaced by a rename, so a new file differs even
/// within one timestamp tick.
pub type FileIdentity = (u64, u64, std::time::SystemTime, i64, i64);

/// The identity of the file at `path`, `None` when there is none.
pub fn identity(path: &Path) -> Option<FileIdentity> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (ino, ctime, ctime_ns) = {
        use std::os::unix::fs::MetadataExt;
        (m.ino(), m.ctime(), m.ctime_nsec())
    };
    #[cfg(not(unix))]
    let (ino, ctime, ctime_ns) = (0, 0, 0);
    Some((ino, m.len(), m.modified().ok()?, ctime, ctime_ns))
}

/// Write a table as CSV, JSON lines or Parquet (`format`), atomically.
pub fn write_table(file: &Path, format: &str, table: &mut polars::prelude::DataFrame) -> Result<()> {
    use polars::prelude::SerWriter;
    write_atomic(file, |f| {
        let r = match format {
            "csv" => polars::prelude::CsvWriter::new(f).finish(table),
            "jsonl" => polars::prelude::JsonWriter::new(f).with_json_format(polars::prelude::JsonFormat::JsonLines).finish(table),
            _ => polars::prelude::ParquetWriter::new(f).finish(table).map(|_| ()),
        };
        r.map_err(|e| CurateError::io(file, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_keeps_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.txt");
        write_bytes_atomic(&path, b"old").expect("write");
        let res = write_atomic(&path, |f| {
            f.write_all(b"half").map_err(|e| CurateError::io("x", e))?;
            Err(CurateError::Interrupted)
        });
        assert!(res.is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(names.len(), 1, "temp file left behind");
    }
}
