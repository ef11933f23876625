//! The session's models, embeddings and indexes: each model is loaded and optimised once, and a
//! model's vectors and index are kept in memory until the cache changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::embed::{self, Embeddings};
use crate::error::{CurateError, Result};
use crate::index::{AnnIndex, Metric};
use crate::model::{Model, ModelSpec};
use crate::workspace::Workspace;

pub struct Vectors {
    pub embeddings: Embeddings,
    /// Row of each content hash.
    pub rows: HashMap<String, usize>,
}

#[derive(Default)]
pub struct Registry {
    models: Mutex<HashMap<String, Arc<Model>>>,
    vectors: Mutex<HashMap<(String, embed::Kind), (usize, Arc<Vectors>)>>,
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
            return Err(CurateError::Model {
                model: name,
                message: format!("not declared in curate.toml (models: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") }),
            });
        };
        let spec = ModelSpec::parse(&name, value)?;
        let model = Arc::new(Model::load(ws.root(), &name, &spec)?);
        if let Ok(mut m) = self.models.lock() {
            m.insert(name, model.clone());
        }
        Ok(model)
    }

    /// The cached embeddings of `model`, reloaded when parts were added.
    pub fn vectors(&self, ws: &Workspace, model: &Model) -> Result<Arc<Vectors>> {
        self.outputs(ws, model, embed::Kind::Embedding)
    }

    /// The cached outputs of one kind (embeddings or class scores), reloaded when parts were added.
    pub fn outputs(&self, ws: &Workspace, model: &Model, kind: embed::Kind) -> Result<Arc<Vectors>> {
        let dir = embed::cache_dir_of(ws, model, kind);
        let parts = std::fs::read_dir(&dir).map(|rd| rd.count()).unwrap_or(0);
        let key = (model.hash.clone(), kind);
        if let Some((n, v)) = self.vectors.lock().ok().and_then(|m| m.get(&key).cloned()) {
            if n == parts {
                return Ok(v);
            }
        }
        let embeddings = embed::load(&dir)?;
        let rows = embeddings.hashes.iter().enumerate().map(|(i, h)| (h.clone(), i)).collect();
        let v = Arc::new(Vectors { embeddings, rows });
        if let Ok(mut m) = self.vectors.lock() {
            m.insert(key, (parts, v.clone()));
        }
        Ok(v)
    }

    /// The ANN index over `vectors`: from memory, from disk when fresh, or built and saved.
    pub fn index(&self, ws: &Workspace, model: &Model, vectors: &Vectors, metric: Metric) -> Result<Arc<AnnIndex>> {
        let key = (model.hash.clone(), metric);
        let fp = crate::index::fingerprint(&vectors.embeddings.hashes);
        if let Some(idx) = self.indexes.lock().ok().and_then(|m| m.get(&key).cloned()) {
            if idx.fingerprint == fp {
                return Ok(idx);
            }
        }
        let path = AnnIndex::path(&embed::cache_dir(ws, model), metric);
        let idx = match AnnIndex::load_fresh(&path, &vectors.embeddings, metric) {
            Some(idx) => idx,
            None => {
                let idx = AnnIndex::build(&vectors.embeddings, metric);
                idx.save(&path)?;
                idx
            }
        };
        let idx = Arc::new(idx);
        if let Ok(mut m) = self.indexes.lock() {
            m.insert(key, idx.clone());
        }
        Ok(idx)
    }
}

/// The samples of a dataset view that have vectors: the ids behind each vector row (identical
/// files share a row), and how many samples have none yet.
pub struct View {
    pub ids_of_row: HashMap<usize, Vec<String>>,
    pub missing: usize,
}

impl View {
    pub fn of(ds: &crate::Dataset, vectors: &Vectors) -> Result<Self> {
        use polars::prelude::*;
        let df = ds.lazy().select([col("id"), col("hash")]).collect()?;
        let ids = df.column("id")?.str()?.clone();
        let hashes = df.column("hash")?.str()?.clone();
        let mut ids_of_row: HashMap<usize, Vec<String>> = HashMap::new();
        let mut missing = 0usize;
        for (id, h) in ids.iter().zip(hashes.iter()) {
            let Some(id) = id else { continue };
            match h.and_then(|h| vectors.rows.get(h)) {
                Some(&row) => ids_of_row.entry(row).or_default().push(id.to_string()),
                None => missing += 1,
            }
        }
        Ok(View { ids_of_row, missing })
    }

    /// The vector rows, in a stable order.
    pub fn rows(&self) -> Vec<usize> {
        let mut rows: Vec<usize> = self.ids_of_row.keys().copied().collect();
        rows.sort_unstable();
        rows
    }
}

/// Brute force is exact and fast enough below this many vectors; above it, kNN over a whole
/// view goes through the index.
pub const BRUTE_FORCE_LIMIT: usize = 20_000;

impl Registry {
    /// The cosine k nearest neighbours of every embedded sample of `ds` among the others, by
    /// vector row, with the view that maps rows back to ids. Errors when nothing is embedded.
    pub fn knn_view(&self, ds: &crate::Dataset, model: Option<&str>, k: usize) -> Result<(View, Vec<usize>, Vec<Vec<crate::index::Neighbour>>)> {
        let ws = ds.workspace().clone();
        let model = self.model(&ws, model)?;
        let vectors = self.vectors(&ws, &model)?;
        let view = View::of(ds, &vectors)?;
        if view.ids_of_row.is_empty() {
            return Err(CurateError::NotEmbedded { model: model.name.clone(), missing: view.missing });
        }
        let rows = view.rows();
        let index = if rows.len() > BRUTE_FORCE_LIMIT { Some(self.index(&ws, &model, &vectors, Metric::Cosine)?) } else { None };
        let neighbours = crate::index::knn_within(&vectors.embeddings, Metric::Cosine, &rows, k, index.as_deref());
        Ok((view, rows, neighbours))
    }
}

/// The model to embed with when none is named: the only one that declares an `embedding`.
pub fn default_embedding_model(ws: &Workspace) -> Result<String> {
    default_model(ws, "embedding")
}

/// The only model that declares an output `key` ("embedding" or "scores").
pub fn default_model(ws: &Workspace, key: &str) -> Result<String> {
    let with: Vec<&String> = ws.config.models.iter().filter(|(_, v)| v.get(key).is_some()).map(|(k, _)| k).collect();
    match with.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CurateError::Model { model: "(default)".to_string(), message: format!("no model in curate.toml declares a `{key}` output") }),
        many => Err(CurateError::Model {
            model: "(default)".to_string(),
            message: format!("several models declare `{key}` ({}); name one", many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
        }),
    }
}
