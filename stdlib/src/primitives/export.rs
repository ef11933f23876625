//! `ds.train_export(dir, #{format, split, mode, expand})`: a versioned training set — a manifest
//! (CSV, Parquet or JSONL) or an ImageFolder tree of copies or links, plus `lock.json` with the
//! dataset state, every file's content hash and the counts. Exporting twice from the same state
//! gives identical bytes, and nothing is written outside `dir`, whatever the manifest's paths.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;
use rhai::{Engine, EvalAltResult, Map};

use super::{Context, Example, Opt, Primitive};
use crate::atomic::write_atomic;
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::options::{self, Options};

pub const DOC: Primitive = Primitive {
    name: "train_export",
    signatures: &["ds.train_export(dir: string) -> map", "ds.train_export(dir: string, #{format, split, mode, expand}) -> map"],
    summary: "Write ds as a training set in `dir` (inside the workspace): `format` \"csv\" \
              (default), \"parquet\", \"jsonl\" or \"imagefolder\"; `mode` \"manifest_only\" \
              (default: paths point at the media), \"copy\" or \"link\" (files go to \
              dir/images/<label>/, named from their ids, made safe); `split` keeps one split; \
              `expand: true` repeats each row round(weight / smallest weight) times instead of a \
              weight column. \
              Also writes lock.json: the edit-log position and manifest hash, each file's content \
              hash, counts by label, split and weight, and the curate version. Deterministic: \
              the same state exports to the same bytes.",
    options: &[
        Opt { name: "format", default: "\"csv\"", help: "\"csv\", \"parquet\", \"jsonl\" or \"imagefolder\"." },
        Opt { name: "split", default: "all splits", help: "Keep only the samples of this split." },
        Opt { name: "mode", default: "\"manifest_only\"", help: "\"manifest_only\" (paths point at the media), \"copy\" or \"link\" (files go to dir/images/<label>/, named from their ids)." },
        Opt { name: "expand", default: "false", help: "Repeat each row round(weight / smallest weight) times instead of writing a weight column." },
    ],
    examples: &[Example { code: "let r = open().filter(\"class = 'face'\").train_export(\"exports/doc\", #{split: \"test\"}); r.rows", result: Some("20") }],
};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportOptions {
    pub format: Option<String>,
    pub split: Option<String>,
    pub mode: Option<String>,
    pub expand: bool,
}

impl Options for ExportOptions {
    const KEYS: &'static [&'static str] = &["format", "split", "mode", "expand"];
}

/// A path component from any text: ASCII letters, digits, `.`, `-`, `_`; no leading dot, so
/// `..` and hidden names cannot appear.
pub fn safe_component(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).collect();
    while out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn invalid(key: &str, message: String) -> CurateError {
    CurateError::InvalidOption { function: "train_export".into(), key: key.into(), message }
}

pub fn train_export(ctx: &Context, ds: &Dataset, dir: &str, opts: &ExportOptions) -> Result<Map> {
    let ws = ds.workspace().clone();
    let out = crate::workspace::resolve_inside(ws.root(), dir)?;
    if out == ws.root() {
        return Err(CurateError::arg("train_export", "export into a folder of the workspace, not its root"));
    }
    let format = opts.format.clone().unwrap_or_else(|| "csv".into());
    if !matches!(format.as_str(), "csv" | "parquet" | "jsonl" | "imagefolder") {
        return Err(invalid("format", format!("`{format}`: use csv, parquet, jsonl or imagefolder")));
    }
    let mode = opts.mode.clone().unwrap_or_else(|| if format == "imagefolder" { "link".into() } else { "manifest_only".into() });
    if !matches!(mode.as_str(), "manifest_only" | "copy" | "link") {
        return Err(invalid("mode", format!("`{mode}`: use manifest_only, copy or link")));
    }
    if format == "imagefolder" && mode == "manifest_only" {
        return Err(invalid("mode", "an imagefolder export needs the files: use copy or link".into()));
    }
    let mut lf = ds.lazy();
    if let Some(split) = &opts.split {
        ds.check_column("split")?;
        lf = lf.filter(col("split").eq(lit(split.clone())));
    }
    let weight = if ds.schema().contains("weight") { col("weight").cast(DataType::Float64) } else { lit(1.0) };
    let str_col = |c: &str| if ds.schema().contains(c) { col(c).cast(DataType::String) } else { lit(NULL).cast(DataType::String).alias(c) };
    let df = lf.select([col("id"), col("path"), str_col("label"), str_col("split"), str_col("hash"), weight.alias("weight")]).sort(["id"], SortMultipleOptions::default()).collect()?;
    // Columns are read in place (no per-row copies): 30M rows export in the memory of the frame.
    let n = df.height();
    let ids = df.column("id")?.str()?.rechunk();
    let paths = df.column("path")?.str()?.rechunk();
    let labels = df.column("label")?.str()?.rechunk();
    let splits = df.column("split")?.str()?.rechunk();
    let hashes = df.column("hash")?.str()?.rechunk();
    let weights: Vec<f64> = df.column("weight")?.f64()?.iter().map(|w| w.unwrap_or(1.0)).collect();
    std::fs::create_dir_all(&out).map_err(|e| CurateError::io(&out, e))?;
    let out = out.canonicalize().map_err(|e| CurateError::io(&out, e))?;
    let label_of = |i: usize| labels.get(i).unwrap_or("unlabelled");

    // Where each sample goes: its media path, or a file under images/<label>/.
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
    let exported: StringChunked = if mode == "manifest_only" {
        StringChunked::from_iter_values("path".into(), (0..n).map(|i| ws.media_path(paths.get(i).unwrap_or_default()).display().to_string()))
    } else {
        let mut rels = Vec::with_capacity(n);
        for i in 0..n {
            let (id, src) = (ids.get(i).unwrap_or_default(), ws.media_path(paths.get(i).unwrap_or_default()));
            let ext = src.extension().map(|e| format!(".{}", safe_component(&e.to_string_lossy()))).unwrap_or_default();
            let rel = PathBuf::from("images").join(safe_component(label_of(i))).join(format!("{}{ext}", safe_component(id)));
            let target = out.join(&rel);
            if !target.starts_with(&out) {
                return Err(CurateError::arg("train_export", format!("`{id}` would be written outside {}", out.display())));
            }
            files.push((src, target));
            rels.push(rel.display().to_string());
        }
        StringChunked::from_iter_values("path".into(), rels.into_iter())
    };
    let mut by_label: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut by_split: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut by_weight: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for i in 0..n {
        *by_label.entry(label_of(i)).or_default() += 1;
        *by_split.entry(splits.get(i).unwrap_or("(none)")).or_default() += 1;
        *by_weight.entry(weights[i].to_bits()).or_default() += 1;
    }
    let by_label: BTreeMap<String, usize> = by_label.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let by_split: BTreeMap<String, usize> = by_split.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let by_weight: BTreeMap<String, usize> = by_weight.into_iter().map(|(k, v)| (format!("{}", f64::from_bits(k)), v)).collect();

    // Files first (each one atomically), so that an interrupted export has no manifest naming
    // files that are not there.
    ctx.progress.start("exporting", files.len() as u64);
    let mut seen = std::collections::HashSet::new();
    for (src, target) in &files {
        if ctx.progress.is_cancelled() {
            ctx.progress.finish();
            return Err(CurateError::Interrupted);
        }
        if !seen.insert(target.clone()) {
            return Err(CurateError::arg("train_export", format!("two samples map to the same file {}: their ids differ only in characters made safe", target.display())));
        }
        export_file(src, target, &mode)?;
        ctx.progress.advance(1);
    }
    ctx.progress.finish();
    // Expanding repeats each row round(weight / smallest positive weight) times, so that the
    // lightest samples keep one row each and the mix the weights describe survives.
    let unit = weights.iter().copied().filter(|w| *w > 0.0).fold(f64::INFINITY, f64::min);
    let unit = if unit.is_finite() { unit } else { 1.0 };
    let repeats: Option<Vec<IdxSize>> = opts.expand.then(|| (0..n).flat_map(|i| std::iter::repeat_n(i as IdxSize, (weights[i] / unit).round().max(0.0) as usize)).collect());
    let rows = repeats.as_ref().map_or(n, Vec::len);
    if format != "imagefolder" {
        let label_col = StringChunked::from_iter_values("label".into(), (0..n).map(label_of));
        let hash_col = StringChunked::from_iter_values("hash".into(), hashes.iter().map(|h| h.unwrap_or_default()));
        let weight_col = if opts.expand { Float64Chunked::full("weight".into(), 1.0, n) } else { Float64Chunked::from_vec("weight".into(), weights.clone()) };
        let mut table = DataFrame::new(
            n,
            vec![ids.as_ref().clone().with_name("id".into()).into_column(), exported.clone().into_column(), label_col.into_column(), weight_col.into_column(), hash_col.into_column()],
        )?;
        if let Some(idx) = &repeats {
            table = table.take(&IdxCa::from_vec("".into(), idx.clone()))?;
        }
        crate::atomic::write_table(&out.join(format!("manifest.{format}")), &format, &mut table)?;
    }
    remove_stale(&out, &seen, &format)?;
    let log_path = ws.edits_path();
    // One read of the log gives both its length and its hash.
    let log_bytes = crate::edits::read_bytes(&log_path)?;
    let log = match &log_bytes {
        Some(b) => crate::edits::parse(&log_path, b)?,
        None => crate::edits::Log::default(),
    };
    let log_hash = log_bytes.as_ref().map(|b| blake3::hash(b).to_hex().to_string());
    let manifest_hash = {
        let path = ws.manifest_path();
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(&path).map_err(|e| CurateError::io(&path, e))?).map_err(|e| CurateError::io(&path, e))?;
        hasher.finalize().to_hex().to_string()
    };
    let header = serde_json::json!({
        "curate_version": env!("CARGO_PKG_VERSION"),
        "state": {"edits": log.edits.len(), "edits_hash": log_hash, "manifest_hash": manifest_hash},
        "format": format, "mode": mode, "split": opts.split, "expand": opts.expand,
        "samples": n, "rows": rows,
        "counts": {"by_label": by_label, "by_split": by_split, "by_weight": by_weight},
    });
    let serde_json::Value::Object(header) = header else { unreachable!("json! of an object literal") };
    let lock_path = out.join("lock.json");
    // Streamed: every file's entry is written as it is read from the columns.
    let lock = Lock { header: &header, files: LockedFiles { ids: &ids, paths: &exported, hashes: &hashes } };
    write_atomic(&lock_path, |f| {
        let mut w = std::io::BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, &lock).map_err(|e| CurateError::io(&lock_path, e))?;
        w.flush().map_err(|e| CurateError::io(&lock_path, e))
    })?;
    let mut result = Map::new();
    result.insert("dir".into(), out.strip_prefix(ws.root()).unwrap_or(&out).display().to_string().into());
    result.insert("samples".into(), (n as i64).into());
    result.insert("rows".into(), (rows as i64).into());
    result.insert("files".into(), (files.len() as i64).into());
    Ok(result)
}

/// After a re-export, remove what an earlier export into the same folder left that this one did
/// not write: image files under `images/` and manifests in other formats. Nothing else in the
/// folder is touched.
fn remove_stale(out: &Path, written: &std::collections::HashSet<PathBuf>, format: &str) -> Result<()> {
    let images = out.join("images");
    if images.is_dir() {
        for entry in walkdir::WalkDir::new(&images).contents_first(true) {
            let entry = entry.map_err(|e| CurateError::io(&images, e))?;
            let p = entry.path();
            if entry.file_type().is_dir() {
                // Folders emptied by the clean-up go too (remove_dir fails on a non-empty one).
                if p != images {
                    let _ = std::fs::remove_dir(p);
                }
            } else if !written.contains(p) {
                std::fs::remove_file(p).map_err(|e| CurateError::io(p, e))?;
            }
        }
    }
    for other in ["csv", "parquet", "jsonl"] {
        let m = out.join(format!("manifest.{other}"));
        if other != format && m.exists() {
            std::fs::remove_file(&m).map_err(|e| CurateError::io(&m, e))?;
        }
    }
    Ok(())
}

fn export_file(src: &Path, target: &Path, mode: &str) -> Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| CurateError::io(parent, e))?;
    }
    if let Some(url) = src.to_str().filter(|s| crate::objects::is_url(s)) {
        // An object is always copied: there is no local file to link to.
        let bytes = crate::objects::read(url).map_err(|e| CurateError::io(src, e))?;
        return write_atomic(target, |f| std::io::Write::write_all(f, &bytes).map_err(|e| CurateError::io(target, e)));
    }
    if mode == "copy" {
        let mut input = std::fs::File::open(src).map_err(|e| CurateError::io(src, e))?;
        return write_atomic(target, |f| std::io::copy(&mut input, f).map(|_| ()).map_err(|e| CurateError::io(src, e)));
    }
    let abs = src.canonicalize().map_err(|e| CurateError::io(src, e))?;
    let tmp = target.with_extension("curate-link-tmp");
    let _ = std::fs::remove_file(&tmp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&abs, &tmp).map_err(|e| CurateError::io(target, e))?;
    #[cfg(not(unix))]
    std::fs::copy(&abs, &tmp).map_err(|e| CurateError::io(target, e))?;
    std::fs::rename(&tmp, target).map_err(|e| CurateError::io(target, e))
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("train_export", move |ds: &mut Dataset, dir: &str| -> std::result::Result<Map, Box<EvalAltResult>> { Ok(train_export(&c, ds, dir, &ExportOptions::default())?) });
    let c = ctx.clone();
    engine.register_fn("train_export", move |ds: &mut Dataset, dir: &str, opts: Map| -> std::result::Result<Map, Box<EvalAltResult>> {
        let opts: ExportOptions = options::parse("train_export", &opts)?;
        Ok(train_export(&c, ds, dir, &opts)?)
    });
}

/// lock.json: the header's fields, then `files`, every exported file with its id and content
/// hash, serialised straight from the columns.
struct Lock<'a> {
    header: &'a serde_json::Map<String, serde_json::Value>,
    files: LockedFiles<'a>,
}

impl serde::Serialize for Lock<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.header.len() + 1))?;
        for (k, v) in self.header {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("files", &self.files)?;
        m.end()
    }
}

struct LockedFiles<'a> {
    ids: &'a StringChunked,
    paths: &'a StringChunked,
    hashes: &'a StringChunked,
}

#[derive(serde::Serialize)]
struct LockedFile<'a> {
    id: &'a str,
    path: &'a str,
    hash: &'a str,
}

impl serde::Serialize for LockedFiles<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.ids.len()))?;
        for ((id, path), hash) in self.ids.iter().zip(self.paths.iter()).zip(self.hashes.iter()) {
            seq.serialize_element(&LockedFile { id: id.unwrap_or_default(), path: path.unwrap_or_default(), hash: hash.unwrap_or_default() })?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        crate::testing::check_examples(&DOC);
    }

    #[test]
    fn unsafe_names_are_made_safe() {
        assert_eq!(safe_component("../../etc/passwd"), "_._.._etc_passwd");
        assert_eq!(safe_component(".."), "_.");
        assert_eq!(safe_component("/abs"), "_abs");
        assert_eq!(safe_component(""), "_");
        assert_eq!(safe_component("lfw/face/001"), "lfw_face_001");
    }
}
