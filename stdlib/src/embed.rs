//! Embeddings: run a model over a dataset's images and cache one vector per distinct image.
//!
//! The cache lives in `.curate/embeddings/<model>-<model hash>/`, keyed by content hash, as
//! Arrow IPC parts (`hash: str`, `vector: array[f32, dim]`) that can be memory-mapped. Each part
//! is written atomically once its chunk of images is done, so a killed run keeps every finished
//! chunk, never leaves a torn file, and the next run embeds only what is missing. Shards
//! (`--shard i/n`) split the work by content hash, so separate machines can each take one and
//! their parts merge by copying the files into one folder.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;
use rayon::prelude::*;

use crate::atomic::write_atomic;
use crate::error::{CurateError, Result};
use crate::model::Model;
use crate::progress::Progress;
use crate::scan::ScanIssue;
use crate::workspace::Workspace;

/// Images per cache part; a kill loses at most one part's work per process.
pub const CHUNK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parse `i/n`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("expected i/n, got `{s}`"))?;
        let index: usize = i.trim().parse().map_err(|_| format!("bad shard index in `{s}`"))?;
        let count: usize = n.trim().parse().map_err(|_| format!("bad shard count in `{s}`"))?;
        if count == 0 || index >= count {
            return Err(format!("shard `{s}`: need 0 <= i < n"));
        }
        Ok(Shard { index, count })
    }

    pub fn owns(&self, hash: &str) -> bool {
        let prefix = u64::from_str_radix(hash.get(..16).unwrap_or("0"), 16).unwrap_or(0);
        (prefix % self.count as u64) as usize == self.index
    }
}

/// Which of a model's outputs a cache holds: the same machinery caches embeddings and class
/// scores (predictions), in separate folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Embedding,
    Scores,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Kind::Embedding => "embeddings",
            Kind::Scores => "predictions",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Kind::Embedding => "embedding",
            Kind::Scores => "predicting",
        }
    }
}

/// The embedding cache folder of a model in a workspace.
pub fn cache_dir(ws: &Workspace, model: &Model) -> PathBuf {
    cache_dir_of(ws, model, Kind::Embedding)
}

/// The cache folder of one kind of output of a model.
pub fn cache_dir_of(ws: &Workspace, model: &Model, kind: Kind) -> PathBuf {
    ws.cache_dir().join(kind.folder()).join(format!("{}-{}", model.name, &model.hash[..16]))
}

/// All cached vectors of a model: content hashes and a row-major matrix.
pub struct Embeddings {
    pub hashes: Vec<String>,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Embeddings {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

fn part_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| CurateError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "arrow") && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .collect();
    parts.sort();
    Ok(parts)
}

/// Read every part; a later part's vector wins for a repeated hash.
pub fn load(dir: &Path) -> Result<Embeddings> {
    let mut hashes = Vec::new();
    let mut data = Vec::new();
    let mut dim = 0;
    let mut seen = HashSet::new();
    for part in part_files(dir)? {
        let file = std::fs::File::open(&part).map_err(|e| CurateError::io(&part, e))?;
        let df = IpcReader::new(file).finish().map_err(|e| CurateError::io(&part, format!("unreadable embedding cache part: {e}")))?;
        let bad = |m: String| CurateError::io(&part, m);
        let hs = df.column("hash").and_then(|c| c.str().cloned()).map_err(|e| bad(e.to_string()))?;
        let vecs = df.column("vector").and_then(|c| c.array().cloned()).map_err(|e| bad(e.to_string()))?;
        let width = vecs.width();
        if dim == 0 {
            dim = width;
        } else if width != dim {
            return Err(bad(format!("vectors of width {width}, expected {dim}")));
        }
        let inner = vecs.get_inner();
        let inner = inner.f32().map_err(|e| bad(e.to_string()))?;
        let flat: Vec<f32> = inner.into_no_null_iter().collect();
        for (i, h) in hs.iter().enumerate() {
            let Some(h) = h else { continue };
            if seen.insert(h.to_string()) {
                hashes.push(h.to_string());
                data.extend_from_slice(&flat[i * dim..(i + 1) * dim]);
            }
        }
    }
    Ok(Embeddings { hashes, dim, data })
}

fn write_part(dir: &Path, hashes: Vec<String>, vectors: Vec<f32>, dim: usize) -> Result<PathBuf> {
    let n = hashes.len();
    let flat = Series::new("vector".into(), vectors);
    let arr = flat
        .reshape_array(&[ReshapeDimension::new_dimension(n as u64), ReshapeDimension::new_dimension(dim as u64)])
        .map_err(CurateError::from)?;
    let mut df = DataFrame::new(n, vec![Column::new("hash".into(), hashes), arr.into_column()]).map_err(CurateError::from)?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let path = dir.join(format!("part-{stamp:020}-{}.arrow", std::process::id()));
    write_atomic(&path, |f| IpcWriter::new(f).finish(&mut df).map_err(|e| CurateError::io(&path, e)))?;
    Ok(path)
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EmbedReport {
    pub model: String,
    pub images: usize,
    pub cached: usize,
    pub embedded: usize,
    pub failed: Vec<ScanIssue>,
    pub seconds: f64,
}

/// One image to embed.
pub struct Job {
    pub id: String,
    pub path: PathBuf,
    pub hash: Option<String>,
}

/// Embed the images of `jobs` that are not cached yet.
pub fn embed(ws: &Workspace, model: &Model, jobs: Vec<Job>, shard: Option<Shard>, progress: &dyn Progress) -> Result<EmbedReport> {
    run_model(ws, model, Kind::Embedding, jobs, shard, progress)
}

/// Run `model` over the images of `jobs` whose `kind` output is not cached yet, and cache it.
pub fn run_model(ws: &Workspace, model: &Model, kind: Kind, jobs: Vec<Job>, shard: Option<Shard>, progress: &dyn Progress) -> Result<EmbedReport> {
    let started = Instant::now();
    if kind == Kind::Scores && !model.has_scores() {
        return Err(CurateError::Model { model: model.name.clone(), message: "declares no `scores` output to predict with".to_string() });
    }
    if kind == Kind::Embedding && !model.has_embedding() {
        return Err(CurateError::Model { model: model.name.clone(), message: "declares no `embedding` output to embed with".to_string() });
    }
    let dir = cache_dir_of(ws, model, kind);
    std::fs::create_dir_all(&dir).map_err(|e| CurateError::io(&dir, e))?;
    let cached: HashSet<String> = load(&dir)?.hashes.into_iter().collect();
    let mut report = EmbedReport { model: model.name.clone(), images: jobs.len(), ..Default::default() };
    let mut todo = Vec::new();
    let mut queued = HashSet::new();
    for job in jobs {
        match &job.hash {
            Some(h) if cached.contains(h) => report.cached += 1,
            Some(h) if shard.is_some_and(|s| !s.owns(h)) => {}
            Some(h) if !queued.insert(h.clone()) => report.cached += 1,
            _ => todo.push(job),
        }
    }
    progress.start(&format!("{} ({})", kind.verb(), model.name), todo.len() as u64);
    for chunk in todo.chunks(CHUNK) {
        if progress.is_cancelled() {
            break;
        }
        let results: Vec<(usize, std::result::Result<(String, Vec<f32>), String>)> = chunk
            .par_iter()
            .enumerate()
            .map_init(
                || model.spawn(),
                |state, (i, job)| {
                    let r = match state {
                        Ok(state) => run_one(model, kind, state, job),
                        Err(e) => Err(e.to_string()),
                    };
                    progress.advance(1);
                    (i, r)
                },
            )
            .collect();
        let mut hashes = Vec::new();
        let mut vectors = Vec::new();
        let mut dim = 0;
        for (i, r) in results {
            match r {
                Ok((h, v)) => {
                    // Jobs with a known hash were deduplicated and sharded when planned; the
                    // others only now know theirs.
                    let planned = chunk[i].hash.is_some();
                    if !planned && (shard.is_some_and(|s| !s.owns(&h)) || cached.contains(&h) || !queued.insert(h.clone())) {
                        continue;
                    }
                    dim = v.len();
                    hashes.push(h);
                    vectors.extend(v);
                }
                Err(message) => report.failed.push(ScanIssue {
                    id: chunk[i].id.clone(),
                    path: chunk[i].path.display().to_string(),
                    message,
                }),
            }
        }
        if !hashes.is_empty() {
            report.embedded += hashes.len();
            write_part(&dir, hashes, vectors, dim)?;
        }
    }
    progress.finish();
    report.seconds = started.elapsed().as_secs_f64();
    if progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }
    Ok(report)
}

fn run_one(model: &Model, kind: Kind, state: &mut crate::model::ModelState, job: &Job) -> std::result::Result<(String, Vec<f32>), String> {
    let bytes = std::fs::read(&job.path).map_err(|e| format!("cannot read: {e}"))?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let img = crate::preprocess::decode(&bytes).map_err(|e| format!("cannot decode: {e}"))?;
    let input = crate::preprocess::to_tensor(&img, &model.input)?;
    let out = model.run(state, input).map_err(|e| e.to_string())?;
    let v = match kind {
        Kind::Embedding => out.embedding,
        Kind::Scores => out.scores,
    };
    let v = v.ok_or_else(|| format!("model `{}` declares no {:?} output", model.name, kind))?;
    Ok((hash, v))
}

/// Embed one image file outside the cache (a query image that is not in the dataset).
pub fn embed_file(model: &Model, path: &Path) -> std::result::Result<Vec<f32>, String> {
    let mut state = model.spawn().map_err(|e| e.to_string())?;
    let job = Job { id: String::new(), path: path.to_path_buf(), hash: None };
    run_one(model, Kind::Embedding, &mut state, &job).map(|(_, v)| v)
}
