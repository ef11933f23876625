//! Embeddings: run a model over a dataset's images and cache one vector per distinct image.
//!
//! The cache lives in `.curate/embeddings/<model>-<model hash>/`, keyed by content hash: a
//! vector store (`store.rs`) fed through Arrow IPC parts (`hash: str`, `vector: array[f32,
//! dim]`). Each part is written atomically once its chunk of images is done, so a killed run
//! keeps every finished chunk, never leaves a torn file, and the next run embeds only what is
//! missing; parts are compacted into the store at the end of a run or at the next use. Shards
//! (`--shard i/n`) split the work by content hash, so separate machines can each take one and
//! their parts merge by copying the part files into one folder.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;
use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::model::Model;
use crate::progress::Progress;
use crate::scan::ScanIssue;
use crate::vectors::Registry;
use crate::workspace::Workspace;

/// Images per cache part; a kill loses at most one part's work per process.
pub use crate::scan::CHUNK;

pub use crate::shard::Shard;
pub use crate::vectors::{cache_dir, cache_dir_of, Kind};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EmbedReport {
    pub model: String,
    pub images: usize,
    pub cached: usize,
    pub embedded: usize,
    pub failed: Vec<ScanIssue>,
    pub seconds: f64,
    /// What ran the model: "tract", or onnxruntime with its version, provider and batch.
    pub runtime: String,
}

impl EmbedReport {
    /// What the run did, in a line, then up to ten of the images that could not be read.
    pub fn describe(&self) -> String {
        let mut s =
            format!("{}: {} images, {} embedded, {} already cached, {} failed ({:.1} s, {})", self.model, self.images, self.embedded, self.cached, self.failed.len(), self.seconds, self.runtime);
        for f in self.failed.iter().take(10) {
            s.push_str(&format!("\n  {} ({}): {}", f.id, f.path, f.message));
        }
        if self.failed.len() > 10 {
            s.push_str(&format!("\n  ... and {} more", self.failed.len() - 10));
        }
        s
    }
}

/// Embed the images of `ds` with `model` (the only embedding model when `None`) that are not
/// cached yet; only shard `shard`'s, when given.
pub fn embed_dataset(registry: &Registry, ds: &Dataset, model: Option<&str>, shard: Option<Shard>, progress: &dyn Progress) -> Result<EmbedReport> {
    let model = registry.model(ds.workspace(), model)?;
    run_dataset(ds, &model, Kind::Embedding, shard, progress)
}

/// Run `model` over the images of `ds` whose `kind` output is not cached yet.
pub fn run_dataset(ds: &Dataset, model: &Model, kind: Kind, shard: Option<Shard>, progress: &dyn Progress) -> Result<EmbedReport> {
    let ws = ds.workspace().clone();
    let df = ds.lazy().select([col("id"), col("path"), col("hash")]).collect()?;
    let ids = df.column("id")?.str()?.clone();
    let paths = df.column("path")?.str()?.clone();
    let hashes = df.column("hash")?.str()?.clone();
    let jobs: Vec<Job> =
        ids.iter().zip(paths.iter()).zip(hashes.iter()).filter_map(|((id, path), hash)| Some(Job { id: id?.to_string(), path: ws.media_path(path?), hash: hash.map(str::to_string) })).collect();
    run_model(&ws, model, kind, jobs, shard, progress)
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
    // A shard leaves the parts it finds alone, counting what they hold as done: compacting
    // them now would make the store's row order depend on when each shard started, and the
    // merge of N shards would no longer be one process's store, byte for byte.
    let in_parts: HashSet<String> = match shard {
        Some(_) => crate::store::part_hashes(&dir)?,
        None => {
            crate::store::compact(&dir, kind.layout())?;
            HashSet::new()
        }
    };
    let store = crate::store::Store::open(&dir)?;
    let known = Column::new("hash".into(), jobs.iter().map(|j| j.hash.clone()).collect::<Vec<Option<String>>>());
    let stored = store.rows_of(&known)?;
    // Hashes learnt only while reading a file are checked against the store's table.
    let mut cached_later: HashSet<String> = if jobs.iter().any(|j| j.hash.is_none()) { store.entries()?.into_iter().map(|e| e.0).collect() } else { HashSet::new() };
    cached_later.extend(in_parts.iter().cloned());
    let mut report = EmbedReport { model: model.name.clone(), images: jobs.len(), runtime: model.runtime_description(), ..Default::default() };
    let mut todo = Vec::new();
    let mut queued = HashSet::new();
    for (job, row) in jobs.into_iter().zip(stored) {
        match &job.hash {
            Some(h) if row.is_some() || in_parts.contains(h) => report.cached += 1,
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
        let fetched = match crate::objects::fetch_objects(&chunk.iter().map(|j| j.path.as_path()).collect::<Vec<_>>()) {
            Ok(f) => f,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        let results: Vec<Outcome> = if model.batch_size() > 1 {
            run_batched(model, kind, chunk, fetched, progress)
        } else {
            // An interrupt skips the chunk's images not yet started (the finished ones are
            // kept), so that a stop is felt within an image, not a chunk.
            let ran: Vec<Option<Outcome>> = chunk
                .par_iter()
                .zip(fetched)
                .enumerate()
                .map_init(
                    || model.spawn(),
                    |state, (i, (job, data))| {
                        if progress.is_cancelled() {
                            return None;
                        }
                        let r = match state {
                            Ok(state) => run_one(model, kind, state, job, data),
                            Err(e) => Err(e.to_string()),
                        };
                        progress.advance(1);
                        Some((i, r))
                    },
                )
                .collect();
            ran.into_iter().flatten().collect()
        };
        let mut hashes = Vec::new();
        let mut vectors = Vec::new();
        let mut dim = 0;
        for (i, r) in results {
            match r {
                Ok((h, v)) => {
                    // Jobs with a known hash were deduplicated and sharded when planned; the
                    // others only now know theirs.
                    let planned = chunk[i].hash.is_some();
                    if !planned && (shard.is_some_and(|s| !s.owns(&h)) || cached_later.contains(&h) || !queued.insert(h.clone())) {
                        continue;
                    }
                    dim = v.len();
                    hashes.push(h);
                    vectors.extend(v);
                }
                Err(message) => report.failed.push(ScanIssue { id: chunk[i].id.clone(), path: chunk[i].path.display().to_string(), message }),
            }
        }
        if !hashes.is_empty() {
            report.embedded += hashes.len();
            crate::store::write_part(&dir, hashes, vectors, dim)?;
        }
    }
    progress.finish();
    // Merge what this run wrote (an interrupted run's parts are merged at the next use). A
    // shard keeps its parts: they are what gets copied into the workspace that merges shards.
    if !progress.is_cancelled() && shard.is_none() {
        crate::store::compact(&dir, kind.layout())?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    if progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }
    Ok(report)
}

/// Runtimes that batch (onnxruntime): one thread decodes the next batch on the rayon pool while
/// this one runs the current batch, so decoding overlaps inference; at most two batches of
/// tensors are in flight besides the one running.
fn run_batched(model: &Model, kind: Kind, chunk: &[Job], fetched: Vec<Fetched>, progress: &dyn Progress) -> Vec<Outcome> {
    type Prepared = (usize, std::result::Result<(String, tract_onnx::prelude::Tensor), String>);
    let batch = model.batch_size();
    let mut results = Vec::with_capacity(chunk.len());
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Prepared>>(1);
        scope.spawn(move || {
            let mut fetched = fetched.into_iter();
            for (g, group) in chunk.chunks(batch).enumerate() {
                if progress.is_cancelled() {
                    break;
                }
                let data: Vec<Fetched> = fetched.by_ref().take(group.len()).collect();
                let prepared: Vec<Prepared> = group.par_iter().zip(data).enumerate().map(|(i, (job, data))| (g * batch + i, prepare(model, job, data))).collect();
                if tx.send(prepared).is_err() {
                    break;
                }
            }
        });
        for prepared in rx {
            let n = prepared.len();
            let mut ready = Vec::with_capacity(n);
            let mut tensors = Vec::with_capacity(n);
            for (i, r) in prepared {
                match r {
                    Ok((hash, tensor)) => {
                        ready.push((i, hash));
                        tensors.push(tensor);
                    }
                    Err(message) => results.push((i, Err(message))),
                }
            }
            match model.run_batch(tensors) {
                Ok(outputs) => {
                    for ((i, hash), out) in ready.into_iter().zip(outputs) {
                        results.push((i, pick(model, kind, out).map(|v| (hash, v))));
                    }
                }
                Err(e) => results.extend(ready.into_iter().map(|(i, _)| (i, Err(e.to_string())))),
            }
            progress.advance(n as u64);
        }
    });
    results
}

use crate::objects::Fetched;

/// One job's result, by its index in the chunk: its hash and output, or why it failed.
type Outcome = (usize, std::result::Result<(String, Vec<f32>), String>);

/// Read (unless fetched), hash, decode and preprocess one image.
fn prepare(model: &Model, job: &Job, fetched: Fetched) -> std::result::Result<(String, tract_onnx::prelude::Tensor), String> {
    let bytes = match fetched {
        Some(r) => r?,
        None => crate::objects::read_any(&job.path)?,
    };
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let img = crate::preprocess::decode_for(&bytes, (model.input.width as u32, model.input.height as u32)).map_err(|e| format!("cannot decode: {e}"))?;
    Ok((hash, crate::preprocess::to_tensor(&img, &model.input)?))
}

fn pick(model: &Model, kind: Kind, out: crate::model::ModelOutput) -> std::result::Result<Vec<f32>, String> {
    let v = match kind {
        Kind::Embedding => out.embedding,
        Kind::Scores => out.scores,
    };
    v.ok_or_else(|| format!("model `{}` declares no {:?} output", model.name, kind))
}

fn run_one(model: &Model, kind: Kind, state: &mut crate::model::ModelState, job: &Job, fetched: Fetched) -> std::result::Result<(String, Vec<f32>), String> {
    let (hash, input) = prepare(model, job, fetched)?;
    let out = model.run(state, input).map_err(|e| e.to_string())?;
    Ok((hash, pick(model, kind, out)?))
}

/// Embed one image file outside the cache (a query image that is not in the dataset).
pub fn embed_file(model: &Model, path: &Path) -> std::result::Result<Vec<f32>, String> {
    let mut state = model.spawn().map_err(|e| e.to_string())?;
    let job = Job { id: String::new(), path: path.to_path_buf(), hash: None };
    run_one(model, Kind::Embedding, &mut state, &job, None).map(|(_, v)| v)
}

/// Every declared output of one image file (embedding and scores), outside the cache.
pub fn outputs_of_file(model: &Model, path: &Path) -> std::result::Result<crate::model::ModelOutput, String> {
    let mut state = model.spawn().map_err(|e| e.to_string())?;
    let job = Job { id: String::new(), path: path.to_path_buf(), hash: None };
    let (_, input) = prepare(model, &job, None)?;
    model.run(&mut state, input).map_err(|e| e.to_string())
}
