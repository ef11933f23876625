//! A dataset workspace: a directory with `curate.toml`, a manifest, scripts, tests and a
//! `.curate/` cache. Also the sandbox rule for paths that scripts hand us.

use std::path::{Component, Path, PathBuf};

use polars::prelude::*;

use crate::config::{Config, CONFIG_FILE};
use crate::error::{CurateError, Result};
use crate::manifest;

#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    pub config: Config,
    /// Whether a replayed view failed to save, and the warning `open()` has yet to give.
    unsaved_view: std::sync::Arc<std::sync::Mutex<(bool, Option<String>)>>,
}

/// Logs with at least this many entries have their replayed view cached in `.curate/views/`,
/// keyed by the manifest and the log, so an unchanged log is not replayed at every `open()`.
/// Shorter logs replay faster than a cached view is written.
pub const VIEW_CACHE_MIN_EDITS: usize = 1_000;
/// Replayed views kept in `.curate/views/`.
const KEEP_VIEWS: usize = 3;

impl Workspace {
    /// Open the workspace rooted at `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let root = dir.canonicalize().map_err(|e| CurateError::io(dir, e))?;
        let config_path = root.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(CurateError::NotAWorkspace { path: dir.to_path_buf() });
        }
        let config = Config::load(&config_path)?;
        Ok(Workspace { root, config, unsaved_view: Default::default() })
    }

    /// Find the workspace containing `dir` (it or one of its parents), like git does.
    pub fn discover(dir: &Path) -> Result<Self> {
        let start = dir.canonicalize().map_err(|e| CurateError::io(dir, e))?;
        let mut cur: Option<&Path> = Some(&start);
        while let Some(d) = cur {
            if d.join(CONFIG_FILE).is_file() {
                return Self::open(d);
            }
            cur = d.parent();
        }
        Err(CurateError::NotAWorkspace { path: dir.to_path_buf() })
    }

    /// Create a new workspace in `dir`: config, an empty manifest, `scripts/`, `tests/` and a
    /// `.gitignore` that keeps the `.curate/` cache out of git.
    pub fn init(dir: &Path, name: Option<&str>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| CurateError::io(dir, e))?;
        let config_path = dir.join(CONFIG_FILE);
        if config_path.exists() {
            return Err(CurateError::WorkspaceExists { path: dir.to_path_buf() });
        }
        let root = dir.canonicalize().map_err(|e| CurateError::io(dir, e))?;
        let name = name.map(str::to_string).or_else(|| root.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "dataset".to_string());
        let config = Config::new(&name);
        for sub in ["scripts", "tests"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| CurateError::io(&p, e))?;
        }
        let gitignore = root.join(".gitignore");
        if !gitignore.exists() {
            crate::atomic::write_bytes_atomic(&gitignore, b"# caches: embeddings, predictions, indexes. Safe to delete.\n.curate/\n")?;
        }
        let ws = Workspace { root, config, unsaved_view: Default::default() };
        manifest::write(&ws.manifest_path(), &mut manifest::empty())?;
        // The config goes last: its presence marks a complete workspace.
        crate::atomic::write_bytes_atomic(&config_path, ws.config.to_toml().as_bytes())?;
        Ok(ws)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The edit log, `edits.jsonl` beside `curate.toml`.
    pub fn edits_path(&self) -> PathBuf {
        self.root.join(crate::edits::FILE)
    }

    /// The manifest's local file: the manifest itself, or for a manifest in object storage
    /// ([`Workspace::manifest_url`]) the copy of it that [`Workspace::sync_manifest`] keeps.
    pub fn manifest_path(&self) -> PathBuf {
        match self.manifest_url() {
            Some(_) => self.cache_dir().join("remote").join("manifest.parquet"),
            None => self.root.join(&self.config.manifest),
        }
    }

    /// The manifest's URL when `curate.toml` puts it in object storage (`manifest =
    /// "s3://bucket/ds/manifest.parquet"`): curate reads a local copy, fetched again whenever
    /// the object's version changes, and an import uploads the manifest it writes. The edit
    /// log stays in the workspace, beside the scripts.
    pub fn manifest_url(&self) -> Option<&str> {
        crate::objects::is_url(&self.config.manifest).then_some(self.config.manifest.as_str())
    }

    /// Bring the local copy of a manifest in object storage up to date: one HEAD request when
    /// it is current, else a download written atomically (so the replayed-view cache, keyed by
    /// the local file's identity, follows). A manifest an earlier import could not upload is
    /// uploaded first. `false` when there is no such object (its stale copy is removed).
    /// Always `true` for a local manifest.
    pub fn sync_manifest(&self) -> Result<bool> {
        let Some(url) = self.manifest_url() else { return Ok(true) };
        let local = self.manifest_path();
        let _lock = self.remote_manifest_lock()?;
        let pending = local.with_extension("pending.parquet");
        if pending.is_file() {
            self.upload_pending(url, &pending)?;
            return Ok(true);
        }
        let stamp = local.with_extension("version");
        let named = |m: String| CurateError::manifest(Path::new(url), m);
        let Some(version) = crate::objects::version(url).map_err(named)? else {
            let _ = std::fs::remove_file(&local);
            let _ = std::fs::remove_file(&stamp);
            return Ok(false);
        };
        if local.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(version.as_str()) {
            return Ok(true);
        }
        let (bytes, version) = crate::objects::read_versioned(url).map_err(named)?;
        crate::atomic::write_bytes_atomic(&local, &bytes)?;
        crate::atomic::write_bytes_atomic(&stamp, version.as_bytes())?;
        Ok(true)
    }

    /// One process at a time changes the local copy of a manifest in object storage: the copy,
    /// its version stamp and a pending upload change together.
    fn remote_manifest_lock(&self) -> Result<std::fs::File> {
        let dir = self.cache_dir().join("remote");
        std::fs::create_dir_all(&dir).map_err(|e| CurateError::io(&dir, e))?;
        crate::store::lock_file(&dir, "manifest.lock")
    }

    /// Upload the manifest waiting in `pending`, then make it the local copy.
    fn upload_pending(&self, url: &str, pending: &Path) -> Result<()> {
        let local = self.manifest_path();
        let bytes = std::fs::read(pending).map_err(|e| CurateError::io(pending, e))?;
        let version = crate::objects::write(url, bytes)
            .map_err(|m| CurateError::manifest(Path::new(url), format!("{m}; the new manifest is kept in {} and uploaded by the next command that reads it", pending.display())))?;
        std::fs::rename(pending, &local).map_err(|e| CurateError::io(&local, e))?;
        crate::atomic::write_bytes_atomic(&local.with_extension("version"), version.as_bytes())
    }

    /// Write the manifest: atomically in place, or for a manifest in object storage, to a
    /// pending local file that is uploaded and only then becomes the local copy. A failed
    /// upload names the URL and keeps the pending file, which the next command that reads the
    /// manifest uploads first, so nothing written is lost. (Object stores replace an object
    /// whole, and the last writer wins: two imports into one manifest at once are not merged.)
    pub fn write_manifest(&self, df: &mut DataFrame) -> Result<()> {
        let local = self.manifest_path();
        let Some(url) = self.manifest_url() else { return manifest::write(&local, df) };
        let _lock = self.remote_manifest_lock()?;
        let pending = local.with_extension("pending.parquet");
        manifest::write(&pending, df)?;
        self.upload_pending(url, &pending)
    }

    /// The manifest's location as users know it: its URL, or its file.
    pub fn manifest_location(&self) -> PathBuf {
        self.manifest_url().map_or_else(|| self.manifest_path(), PathBuf::from)
    }

    pub fn media_root(&self) -> PathBuf {
        self.root.join(&self.config.media)
    }

    /// The cache directory, `.curate/`.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join(".curate")
    }

    /// Where the image at manifest path `p` lives on disk.
    /// An object-store URL stays a URL (`s3://bucket/key`), and a relative path under a `media`
    /// root that is a URL joins it as URLs join.
    pub fn media_path(&self, p: &str) -> PathBuf {
        if crate::objects::is_url(p) {
            return PathBuf::from(p);
        }
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else if crate::objects::is_url(&self.config.media) {
            PathBuf::from(crate::objects::join(&self.config.media, p))
        } else {
            self.media_root().join(path)
        }
    }

    /// The manifest as a lazy frame. The schema is read eagerly so that a missing or corrupt
    /// manifest is reported here, naming the file, rather than at the first query.
    /// The current view: the manifest with the edit log replayed.
    pub fn scan_manifest(&self) -> Result<LazyFrame> {
        self.scan_at(None)
    }

    /// The dataset as it was after the first edits of the log (`None`: all of them). The current
    /// view is read from the replayed-view cache when `open_view` left one for this state.
    pub fn scan_at(&self, at: Option<&crate::edits::At>) -> Result<LazyFrame> {
        self.scan_at_caching(at, false)
    }

    /// The current view for `open()`: as `scan_manifest`, and a long log's replay is saved
    /// for the next open of the same state.
    pub fn open_view(&self) -> Result<LazyFrame> {
        self.scan_at_caching(None, true)
    }

    fn scan_at_caching(&self, at: Option<&crate::edits::At>, save: bool) -> Result<LazyFrame> {
        if !self.sync_manifest()? {
            let url = self.manifest_url().unwrap_or_default();
            return Err(CurateError::manifest(Path::new(url), format!("manifest not found at {url} (`curate import` writes it)")));
        }
        let key = if at.is_none() { self.view_key() } else { None };
        if let Some(key) = &key {
            let cached = self.view_cache_path(key);
            if cached.is_file() {
                if let Ok(lf) = manifest::scan(&cached) {
                    return Ok(lf);
                }
            }
        }
        // A copy that cannot be read is reported under the manifest's URL.
        let lf = manifest::scan(&self.manifest_path()).map_err(|e| match (e, self.manifest_url()) {
            (CurateError::Manifest { message, .. }, Some(url)) => CurateError::manifest(Path::new(url), message),
            (e, _) => e,
        })?;
        let log = crate::edits::read(&self.edits_path())?;
        let n = match at {
            Some(a) => a.resolve(&log)?,
            None => log.edits.len(),
        };
        match key {
            // The whole view is wanted: collected, saved, and read from the saved copy. A cache
            // that cannot be written (read-only workspace, full disk) costs only speed, and
            // `open()` says so once.
            Some(key) if save && n >= VIEW_CACHE_MIN_EDITS => {
                let view = crate::edits::replay_collected(lf, &log.edits[..n])?;
                Ok(self.save_view(&key, view.clone()).unwrap_or_else(|e| {
                    if let Ok(mut unsaved) = self.unsaved_view.lock() {
                        if !unsaved.0 {
                            *unsaved = (true, Some(format!("warning: the replayed view could not be saved or read back ({e}), so every open() replays the {n} edits in the log")));
                        }
                    }
                    view.lazy()
                }))
            }
            _ => crate::edits::replay(lf, &log.edits[..n]),
        }
    }

    /// The warning of a replayed view that could not be saved, once per `Workspace` value (and
    /// its clones).
    pub fn take_warning(&self) -> Option<String> {
        self.unsaved_view.lock().ok()?.1.take()
    }

    /// What the replayed view depends on, cheaply: curate's version, the manifest file's
    /// identity (inode, size, mtime, ctime) and the log's identity plus its last bytes. `None`
    /// when there is no log.
    fn view_key(&self) -> Option<String> {
        use std::io::{Read, Seek, SeekFrom};
        let stamp = |m: &std::fs::Metadata| {
            let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            #[cfg(unix)]
            let more = {
                use std::os::unix::fs::MetadataExt;
                format!("{}:{}:{}", m.ino(), m.ctime(), m.ctime_nsec())
            };
            #[cfg(not(unix))]
            let more = String::new();
            format!("{}:{t}:{more}", m.len())
        };
        let manifest = std::fs::metadata(self.manifest_path()).ok()?;
        let log_path = self.edits_path();
        let mut log = std::fs::File::open(&log_path).ok()?;
        let meta = log.metadata().ok()?;
        let mut tail = Vec::new();
        log.seek(SeekFrom::Start(meta.len().saturating_sub(4096))).ok()?;
        log.read_to_end(&mut tail).ok()?;
        let mut h = blake3::Hasher::new();
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update(stamp(&manifest).as_bytes());
        h.update(b"\n");
        h.update(stamp(&meta).as_bytes());
        h.update(&tail);
        Some(h.finalize().to_hex()[..16].to_string())
    }

    fn view_cache_path(&self, key: &str) -> PathBuf {
        self.cache_dir().join("views").join(format!("current-{key}.parquet"))
    }

    /// Write the replayed view once (atomically) and read it from there. Only the newest few
    /// views are kept: datasets opened a moment ago may still be reading an older one.
    fn save_view(&self, key: &str, mut df: DataFrame) -> Result<LazyFrame> {
        let path = self.view_cache_path(key);
        crate::atomic::write_atomic(&path, |f| {
            // LZ4: a local cache is written once per log state and read at every open, so
            // speed matters more than size (zstd, the default, took most of the first open).
            ParquetWriter::new(f).with_compression(ParquetCompression::Lz4Raw).finish(&mut df).map(|_| ()).map_err(|e| CurateError::io(&path, e))
        })?;
        if let Some(dir) = path.parent() {
            let mut views: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("current-")))
                .map(|p| (std::fs::metadata(&p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), p))
                .collect();
            views.sort_by_key(|v| std::cmp::Reverse(v.0));
            for (_, old) in views.into_iter().skip(KEEP_VIEWS) {
                let _ = std::fs::remove_file(old);
            }
        }
        manifest::scan(&path)
    }

    /// Resolve a path a script gave us. It must stay inside the workspace, after `..` and
    /// symlinks are resolved.
    pub fn resolve_inside(&self, path: &str) -> Result<PathBuf> {
        resolve_inside(&self.root, path)
    }
}

/// Resolve `path` against `root`, refusing anything that ends up outside `root`.
pub fn resolve_inside(root: &Path, path: &str) -> Result<PathBuf> {
    let outside = || CurateError::PathOutsideWorkspace { path: path.to_string(), root: root.to_path_buf() };
    let joined = root.join(path);
    let mut normal = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                if !normal.pop() {
                    return Err(outside());
                }
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    if !normal.starts_with(root) {
        return Err(outside());
    }
    // A symlink inside the workspace may still point outside it.
    if let Ok(real) = normal.canonicalize() {
        if !real.starts_with(root) {
            return Err(outside());
        }
        return Ok(real);
    }
    // A file still to be written: its nearest existing folder must not lead outside either
    // (`ln -s /tmp ws/l` then a write to `l/x.png`).
    let mut ancestor = normal.parent();
    while let Some(a) = ancestor {
        if let Ok(real) = a.canonicalize() {
            if !real.starts_with(root) {
                return Err(outside());
            }
            break;
        }
        ancestor = a.parent();
    }
    Ok(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape_the_workspace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canon");
        std::fs::create_dir(root.join("a")).expect("mkdir");
        assert!(resolve_inside(&root, "a").is_ok());
        assert!(resolve_inside(&root, "a/../a").is_ok());
        assert!(resolve_inside(&root, ".").is_ok());
        assert!(resolve_inside(&root, "..").is_err());
        assert!(resolve_inside(&root, "a/../../x").is_err());
        assert!(resolve_inside(&root, "/etc/passwd").is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", root.join("link")).expect("symlink");
            assert!(resolve_inside(&root, "link/passwd").is_err());
        }
    }

    #[test]
    fn init_refuses_an_existing_workspace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Workspace::init(dir.path(), Some("t")).expect("init");
        assert!(ws.manifest_path().is_file());
        assert!(ws.root().join(".gitignore").is_file());
        assert!(matches!(Workspace::init(dir.path(), None), Err(CurateError::WorkspaceExists { .. })));
        let reopened = Workspace::open(dir.path()).expect("open");
        assert_eq!(reopened.config.name, "t");
    }
}
