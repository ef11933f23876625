//! The session's models, vector stores and indexes: each model is loaded and optimised once,
//! and a store (memory-mapped) and its index are kept until the store changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::{CurateError, Result};
use crate::index::{AnnIndex, Backend, Metric};
use crate::model::{Model, ModelSpec};
use crate::shard::Shard;
use crate::store::{self, Store};
use crate::workspace::Workspace;

/// Which of a model's outputs a cache holds: the same machinery caches embeddings and class
/// scores (predictions), in separate folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Embedding,
    Scores,
}

impl Kind {
    pub(crate) fn folder(self) -> &'static str {
        match self {
            Kind::Embedding => "embeddings",
            Kind::Scores => "predictions",
        }
    }

    /// How its store keeps the vectors: embeddings as unit f16 rows, scores as f32.
    pub fn layout(self) -> crate::store::Layout {
        match self {
            Kind::Embedding => crate::store::Layout::EMBEDDINGS,
            Kind::Scores => crate::store::Layout::SCORES,
        }
    }

    pub(crate) fn verb(self) -> &'static str {
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

#[derive(Default)]
pub struct Registry {
    models: Mutex<HashMap<String, Arc<Model>>>,
    stores: Mutex<HashMap<(String, Kind), (Arc<Store>, Option<store::Stamp>)>>,
    indexes: Mutex<HashMap<(String, Metric), Arc<AnnIndex>>>,
}

impl Registry {
    /// The model called `name` (or the only embedding model when `name` is empty).
    pub fn model(&self, ws: &Workspace, name: Option<&str>) -> Result<Arc<Model>> {
        let name = match name {
            Some(n) => n.to_string(),
            None => default_embedding_model(ws)?,
        };
        if let Some(m) = self.models.lock().ok().and_then(|m| m.get(&name).cloned()) {
            return Ok(m);
        }
        let Some(value) = ws.config.models.get(&name) else {
            let known: Vec<String> = ws.config.models.keys().cloned().collect();
            return Err(CurateError::Model { model: name, message: format!("not declared in curate.toml (models: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") }) });
        };
        let spec = ModelSpec::parse(&name, value)?;
        let model = Arc::new(Model::load_with(ws.root(), &name, &spec, ws.config.runtime)?);
        if let Ok(mut m) = self.models.lock() {
            m.insert(name, model.clone());
        }
        Ok(model)
    }

    /// The vector store of `model`'s embeddings.
    pub fn vectors(&self, ws: &Workspace, model: &Model) -> Result<Arc<Store>> {
        self.outputs(ws, model, Kind::Embedding)
    }

    /// The store of one kind of output (embeddings or class scores). Parts that embedding runs
    /// left are compacted into it first; an unchanged store is not reopened.
    pub fn outputs(&self, ws: &Workspace, model: &Model, kind: Kind) -> Result<Arc<Store>> {
        let dir = cache_dir_of(ws, model, kind);
        store::compact(&dir, kind.layout())?;
        let key = (model.hash.clone(), kind);
        // A store is committed by replacing its description: while that file is the same one,
        // the store open here is current, and is not opened (and mapped) again.
        let stamp = store::commit_stamp(&dir);
        if let Some((s, _)) = self.stores.lock().ok().and_then(|m| m.get(&key).cloned()).filter(|(_, st)| stamp.is_some() && *st == stamp) {
            return Ok(s);
        }
        let current = Store::open(&dir)?;
        let s = match self.stores.lock().ok().and_then(|m| m.get(&key).cloned()) {
            Some((s, _)) if s.fingerprint() == current.fingerprint() => s,
            _ => Arc::new(current),
        };
        if let Ok(mut m) = self.stores.lock() {
            m.insert(key, (s.clone(), stamp));
        }
        Ok(s)
    }

    /// The persisted ANN index over `store`, if one was built for exactly these vectors
    /// (`curate index` builds it; interactive calls never do).
    pub fn index_if_built(&self, model: &Model, store: &Store, metric: Metric) -> Option<Arc<AnnIndex>> {
        let key = (model.hash.clone(), metric);
        if let Some(idx) = self.indexes.lock().ok().and_then(|m| m.get(&key).cloned()) {
            if idx.fingerprint == store.fingerprint() {
                return Some(idx);
            }
        }
        // The whole index, else a whole set of shards' indexes (`curate index --shard i/n`).
        let idx = AnnIndex::load_fresh(&AnnIndex::path(store.dir(), metric), store, metric).or_else(|| AnnIndex::load_shards(store, metric))?;
        let idx = Arc::new(idx);
        if let Ok(mut m) = self.indexes.lock() {
            m.insert(key, idx.clone());
        }
        Some(idx)
    }

    /// Make the ANN index over `store` current and save it: nothing to do when it is fresh,
    /// new rows added to a usearch or ivf index of `backend`, else a build with it (by size when
    /// `None`: `Backend::for_size`, also when the index would grow).
    pub fn build_index(&self, model: &Model, store: &Store, metric: Metric, backend: Option<Backend>, progress: &dyn crate::progress::Progress) -> Result<(Arc<AnnIndex>, IndexAction)> {
        if let Some(idx) = self.index_if_built(model, store, metric).filter(|i| i.shard.is_none() && !i.is_sharded()) {
            if backend.is_none_or(|b| b == idx.backend) {
                return Ok((idx, IndexAction::Fresh));
            }
        }
        let (idx, action) = self.build_index_of(store, metric, backend, None, progress)?;
        let idx = Arc::new(idx);
        if let Ok(mut m) = self.indexes.lock() {
            m.insert((model.hash.clone(), metric), idx.clone());
        }
        Ok((idx, action))
    }

    /// Make one shard's index current and save it (`curate index --shard i/n`): the shard's
    /// rows by content hash, as every `--shard` takes them. Shards build at once, each under
    /// its own lock; `similar` fans out to a whole set.
    pub fn build_shard_index(&self, store: &Store, metric: Metric, backend: Option<Backend>, shard: Shard, progress: &dyn crate::progress::Progress) -> Result<(AnnIndex, IndexAction)> {
        self.build_index_of(store, metric, backend, Some(shard), progress)
    }

    fn build_index_of(&self, store: &Store, metric: Metric, backend: Option<Backend>, shard: Option<Shard>, progress: &dyn crate::progress::Progress) -> Result<(AnnIndex, IndexAction)> {
        let suffix = shard.map(|s| format!(".shard-{}-of-{}", s.index, s.count)).unwrap_or_default();
        // One build at a time per index: a second `curate index` waits, then finds it fresh.
        let _lock = store::lock_file(store.dir(), &format!("index{suffix}.lock"))?;
        // Under the lock, a usearch temp file of this index is what a killed build left.
        for e in std::fs::read_dir(store.dir()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let mine = match shard {
                Some(_) => name.ends_with(&format!("{suffix}.usearch")),
                None => !name.contains(".shard-"),
            };
            if name.starts_with(".curate-tmp-") && name.ends_with(".usearch") && mine {
                let _ = std::fs::remove_file(e.path());
            }
        }
        if let Some(idx) = AnnIndex::load_fresh(&AnnIndex::path_of(store.dir(), metric, shard), store, metric).filter(|i| backend.is_none_or(|b| b == i.backend)) {
            return Ok((idx, IndexAction::Fresh));
        }
        // Without a backend named, the size decides, for a growing index too: an index of the
        // other kind is rebuilt rather than grown past the crossover.
        let backend = backend.unwrap_or(Backend::for_size(store.len()));
        let updated = if backend != Backend::Hnsw { AnnIndex::update(store, metric, shard, Some(backend), progress)? } else { None };
        let (idx, action) = match updated {
            Some(idx) => (idx, IndexAction::Updated),
            None => (AnnIndex::build_shard(store, metric, backend, shard, progress)?, IndexAction::Built),
        };
        idx.save(store, store.rows())?;
        Ok((idx, action))
    }
}

/// What [`Registry::build_index`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexAction {
    Fresh,
    Updated,
    Built,
}

/// The samples of a dataset view that have vectors: the ids behind each vector row (identical
/// files share a row), and how many samples have none yet. Rows are found by a join of the
/// view's hashes with the store's hash table; ids are kept grouped by row in flat arrays (no
/// map of a million small vectors).
pub struct View {
    /// Distinct vector rows, ascending.
    rows: Vec<usize>,
    /// `ids[start[i]..start[i + 1]]` are the samples of `rows[i]`.
    start: Vec<usize>,
    ids: Vec<String>,
    /// Each of `ids`' position among the rows of `frame`.
    pos: Vec<u32>,
    /// The dataset's rows the view was resolved from, when it keeps them ([`View::cached`]).
    frame: Option<polars::prelude::DataFrame>,
    pub missing: usize,
}

impl View {
    pub fn of(ds: &crate::Dataset, vectors: &Store) -> Result<Self> {
        use polars::prelude::*;
        Self::of_frame(&ds.lazy().select([col("id"), col("hash")]).collect()?, vectors)
    }

    /// The view of the rows of `df` (which has `id` and `hash` columns) onto `vectors`.
    pub fn of_frame(df: &polars::prelude::DataFrame, vectors: &Store) -> Result<Self> {
        let found = vectors.rows_of(df.column("hash")?)?;
        let ids = df.column("id")?.str()?.rechunk();
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(found.len());
        let mut missing = 0usize;
        for (i, (id, row)) in ids.iter().zip(found).enumerate() {
            match (id, row) {
                (Some(_), Some(row)) => pairs.push((row, i as u32)),
                (Some(_), None) => missing += 1,
                (None, _) => {}
            }
        }
        pairs.sort_unstable();
        let (mut rows, mut start, mut out, mut pos) = (Vec::new(), Vec::new(), Vec::with_capacity(pairs.len()), Vec::with_capacity(pairs.len()));
        for (row, i) in pairs {
            if rows.last() != Some(&(row as usize)) {
                rows.push(row as usize);
                start.push(out.len());
            }
            out.push(ids.get(i as usize).unwrap_or_default().to_string());
            pos.push(i);
        }
        start.push(out.len());
        Ok(View { rows, start, ids: out, pos, frame: None, missing })
    }

    /// The view of `ds` onto `vectors`, resolved once per dataset value and store state (see
    /// [`crate::Dataset::memo`]), with the rows it was resolved from: a loop of queries on one
    /// view does work in proportion to its results, not to the view's size. The positions and
    /// the rows come from one collect, so they always agree.
    pub fn cached(ds: &crate::Dataset, vectors: &Store) -> Result<Arc<View>> {
        let key = format!("{}\0{}", vectors.dir().display(), vectors.fingerprint());
        ds.memo(&key, || {
            let frame = ds.collect()?;
            let mut view = View::of_frame(&frame, vectors)?;
            view.frame = Some(frame);
            Ok(view)
        })
    }

    /// The rows the view was resolved from, when it keeps them.
    pub fn frame(&self) -> Option<&polars::prelude::DataFrame> {
        self.frame.as_ref()
    }

    /// The vector row of each of `ids` that is in the view. A scan for a few ids (one query
    /// need not build a map of a million), a map for many.
    pub fn rows_of_ids(&self, ids: &[String]) -> Vec<Option<usize>> {
        let row_at = |i: usize| self.rows[self.start.partition_point(|&s| s <= i) - 1];
        if ids.len() <= 16 {
            return ids.iter().map(|id| self.ids.iter().position(|x| x == id).map(row_at)).collect();
        }
        let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let found: HashMap<&str, usize> = self.ids.iter().enumerate().filter(|(_, x)| wanted.contains(x.as_str())).map(|(i, x)| (x.as_str(), row_at(i))).collect();
        ids.iter().map(|id| found.get(id.as_str()).copied()).collect()
    }

    /// The samples whose vector is `row`, each with its position among the dataset's rows.
    pub fn samples_of(&self, row: usize) -> impl Iterator<Item = (&str, u32)> {
        let range = match self.rows.binary_search(&row) {
            Ok(i) => self.start[i]..self.start[i + 1],
            Err(_) => 0..0,
        };
        self.ids[range.clone()].iter().map(String::as_str).zip(self.pos[range].iter().copied())
    }

    /// No sample of the view has a vector.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The vector rows, ascending.
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }

    pub fn contains(&self, row: usize) -> bool {
        self.rows.binary_search(&row).is_ok()
    }

    /// The samples whose vector is `row` (none when it is not in the view).
    pub fn ids_of(&self, row: usize) -> &[String] {
        match self.rows.binary_search(&row) {
            Ok(i) => &self.ids[self.start[i]..self.start[i + 1]],
            Err(_) => &[],
        }
    }

    /// Each row with its samples, ascending by row.
    pub fn groups(&self) -> impl Iterator<Item = (usize, &[String])> {
        self.rows.iter().enumerate().map(|(i, &r)| (r, &self.ids[self.start[i]..self.start[i + 1]]))
    }
}

impl Registry {
    /// The model, its vectors and the view of `ds`'s samples onto them; an error when none of
    /// them is embedded.
    pub fn embedded_view(&self, ds: &crate::Dataset, model: Option<&str>) -> Result<(Arc<Model>, Arc<Store>, Arc<View>)> {
        let ws = ds.workspace().clone();
        let model = self.model(&ws, model)?;
        let vectors = self.vectors(&ws, &model)?;
        let view = View::cached(ds, &vectors)?;
        if view.is_empty() {
            return Err(CurateError::NotEmbedded { model: model.name.clone(), missing: view.missing });
        }
        Ok((model, vectors, view))
    }
}

/// The model to embed with when none is named: the only one that declares an `embedding`.
pub fn default_embedding_model(ws: &Workspace) -> Result<String> {
    default_model(ws, "embedding")
}

/// The model `[defaults]` names for `key`, or else the only model that declares an output
/// `key` ("embedding" or "scores").
pub fn default_model(ws: &Workspace, key: &str) -> Result<String> {
    let chosen = match key {
        "embedding" => ws.config.defaults.embedding.as_ref(),
        "scores" => ws.config.defaults.scores.as_ref(),
        _ => None,
    };
    if let Some(name) = chosen {
        return Ok(name.clone());
    }
    let with: Vec<&String> = ws.config.models.iter().filter(|(_, v)| v.get(key).is_some()).map(|(k, _)| k).collect();
    match with.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CurateError::Model { model: "(default)".to_string(), message: format!("no model in curate.toml declares a `{key}` output") }),
        many => Err(CurateError::Model {
            model: "(default)".to_string(),
            message: format!("several models declare `{key}` ({}); name one, or set `[defaults] {key} = \"NAME\"` in curate.toml", many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
        }),
    }
}
