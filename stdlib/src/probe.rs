//! Probes: linear classifiers trained on embeddings, for "find me more images like these".
//!
//! A probe remembers the ids it was trained on, the embedding model (name and hash) and its
//! weights. Saved probes live in the workspace's `probes/NAME.json`, beside the manifest, so a
//! concept such as `blue_background` is a reviewed, versioned file like a curation script.

use std::collections::HashMap;
use std::path::PathBuf;

use curate_kernels::probe::{self as kernel, Linear};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::embed::Kind;
use crate::error::{CurateError, Result};
use crate::services::Services;
use crate::workspace::Workspace;

/// The regularisation strengths cross-validation picks from (L2 weight on the summed log loss,
/// with features scaled to length √dim).
pub const ALPHAS: &[f64] = &[0.3, 3.0, 30.0];
/// Used when there are too few labels per class to cross-validate.
pub const DEFAULT_ALPHA: f64 = 3.0;
/// Cross-validate only with at least this many examples of every class.
pub const MIN_PER_CLASS_FOR_CV: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub name: Option<String>,
    /// The embedding model, and the hash of its file: a probe only makes sense on its vectors.
    pub model: String,
    pub model_hash: String,
    pub classes: Vec<String>,
    /// The labelled ids, by class, in the order given.
    pub examples: Vec<(String, String)>,
    pub alpha: f64,
    pub folds: usize,
    /// Held-out accuracy of the chosen alpha, when cross-validated.
    pub cv_accuracy: Option<f64>,
    pub linear: Linear,
}

impl Probe {
    pub fn ids_of(&self, class: &str) -> Vec<String> {
        self.examples.iter().filter(|(_, c)| c == class).map(|(i, _)| i.clone()).collect()
    }

    pub fn summary(&self) -> String {
        let counts: Vec<String> = self.classes.iter().map(|c| format!("{} {c}", self.ids_of(c).len())).collect();
        let cv = match self.cv_accuracy {
            Some(a) => format!("{}-fold CV accuracy {:.3}, alpha {}", self.folds, a, self.alpha),
            None => format!("alpha {} (too few labels to cross-validate)", self.alpha),
        };
        format!("Probe({}: {}; {cv}; model {})", self.name.as_deref().unwrap_or("unsaved"), counts.join(", "), self.model)
    }

    pub fn path(ws: &Workspace, name: &str) -> Result<PathBuf> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(CurateError::arg("probe", format!("`{name}` is not a probe name: use letters, digits, _ and -")));
        }
        Ok(ws.root().join("probes").join(format!("{name}.json")))
    }

    pub fn save(&mut self, ws: &Workspace, name: &str) -> Result<PathBuf> {
        let path = Self::path(ws, name)?;
        self.name = Some(name.to_string());
        let json = serde_json::to_vec_pretty(self).map_err(|e| CurateError::io(&path, e))?;
        crate::atomic::write_atomic(&path, |f| {
            use std::io::Write;
            f.write_all(&json).map_err(|e| CurateError::io(&path, e))
        })?;
        Ok(path)
    }

    pub fn load(ws: &Workspace, name: &str) -> Result<Self> {
        let path = Self::path(ws, name)?;
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CurateError::io(&path, format!("no probe called `{name}` (save one with probe.save(\"{name}\"))"))
            } else {
                CurateError::io(&path, e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| CurateError::io(&path, format!("not a probe file: {e}")))
    }
}

/// The probe features of samples, by id: rows of the embedding store (computed now for any
/// not cached), read in place through a [`kernel::Design`]. Ids that are not in the workspace
/// are an error; samples whose image cannot be embedded are left out and counted.
pub struct Features {
    pub ids: Vec<String>,
    /// The store row of each id.
    pub rows: Vec<u32>,
    pub store: std::sync::Arc<crate::store::Store>,
    pub missing: Vec<String>,
}

impl Features {
    pub fn dim(&self) -> usize {
        self.store.dim()
    }

    /// The rows as probe features (scaled to length √dim as they are read).
    pub fn design(&self) -> kernel::Design<'_> {
        let scale = if self.store.normalized() { kernel::Scale::Unit } else { kernel::Scale::Normalise };
        kernel::Design { matrix: self.store.matrix(), dim: self.store.dim(), rows: Some(&self.rows), scale }
    }
}

pub fn features(ctx: &Services, ds: &Dataset, model: &crate::model::Model, embed_missing: bool) -> Result<Features> {
    if embed_missing {
        let report = crate::embed::run_dataset(ds, model, Kind::Embedding, None, ctx.progress)?;
        if report.embedded > 0 || !report.failed.is_empty() {
            (ctx.notify)(crate::output::Output::Text(report.describe()));
        }
    }
    let store = ctx.registry.vectors(ds.workspace(), model)?;
    let df = ds.lazy().select([col("id"), col("hash")]).collect()?;
    let (mut ids, mut missing, mut rows) = (vec![], vec![], vec![]);
    let found = store.rows_of(df.column("hash")?)?;
    for (id, row) in df.column("id")?.str()?.iter().zip(found) {
        let Some(id) = id else { continue };
        match row {
            Some(r) => {
                ids.push(id.to_string());
                rows.push(r);
            }
            None => missing.push(id.to_string()),
        }
    }
    Ok(Features { ids, rows, store, missing })
}

/// The samples of the workspace named by `ids`, as a dataset (in any order). Unknown ids are
/// an error that names the first.
pub fn samples(ws: &std::sync::Arc<Workspace>, ids: &[String]) -> Result<Dataset> {
    let all = Dataset::new(ws.clone(), ws.scan_manifest()?)?;
    let want = Series::new("id".into(), ids.to_vec());
    let found = all.derive(all.lazy().filter(col("id").is_in(lit(want).implode(false), false)))?;
    let have: std::collections::HashSet<String> = found.lazy().select([col("id")]).collect()?.column("id")?.str()?.iter().flatten().map(str::to_string).collect();
    if let Some(id) = ids.iter().find(|i| !have.contains(*i)) {
        return Err(CurateError::UnknownId { id: id.clone() });
    }
    Ok(found)
}

/// Train a probe on labelled ids (`examples`: id and class name; `classes` in index order).
pub fn train(ctx: &Services, ws: &std::sync::Arc<Workspace>, model_name: Option<&str>, classes: Vec<String>, examples: Vec<(String, String)>) -> Result<Probe> {
    let model = ctx.registry.model(ws, model_name)?;
    let mut seen = HashMap::new();
    for (id, class) in &examples {
        if let Some(other) = seen.insert(id.clone(), class.clone()) {
            if &other != class {
                return Err(CurateError::arg("classify", format!("`{id}` is labelled both {other} and {class}")));
            }
        }
    }
    let ids: Vec<String> = seen.keys().cloned().collect();
    let ds = samples(ws, &ids)?;
    let f = features(ctx, &ds, &model, true)?;
    if let Some(id) = f.missing.first() {
        return Err(CurateError::arg("classify", format!("`{id}` has no embedding (its image could not be read); leave it out")));
    }
    let y: Vec<usize> = f.ids.iter().map(|id| classes.iter().position(|c| *c == seen[id]).unwrap_or(0)).collect();
    let counts: Vec<usize> = (0..classes.len()).map(|c| y.iter().filter(|&&v| v == c).count()).collect();
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        return Err(CurateError::arg("classify", format!("no {} examples: a probe needs examples of every class", classes[c])));
    }
    let min = counts.iter().copied().min().unwrap_or(0);
    let (alpha, folds, cv_accuracy) = if min >= MIN_PER_CLASS_FOR_CV {
        let folds = min.min(5);
        let cv = kernel::cross_validate(&f.design(), &y, classes.len(), ALPHAS, folds, 0x5eed).map_err(|m| CurateError::arg("classify", m))?;
        (cv.alpha, folds, Some(cv.accuracy))
    } else {
        (DEFAULT_ALPHA, 0, None)
    };
    let linear = kernel::fit(&f.design(), &y, classes.len(), alpha).map_err(|m| CurateError::arg("classify", m))?;
    Ok(Probe { name: None, model: model.name.clone(), model_hash: model.hash.clone(), classes, examples, alpha, folds, cv_accuracy, linear })
}

/// Every embedded sample of `ds` with the probe's probability of each class; samples without
/// an embedding get nulls.
pub fn apply(ctx: &Services, ds: &Dataset, probe: &Probe) -> Result<(Vec<String>, Vec<Option<Vec<f32>>>)> {
    let model = ctx.registry.model(ds.workspace(), Some(&probe.model))?;
    if model.hash != probe.model_hash {
        return Err(CurateError::Model {
            model: probe.model.clone(),
            message: format!(
                "the probe{} was trained on another version of this model (hash {} vs {}); retrain it",
                probe.name.as_deref().map(|n| format!(" `{n}`")).unwrap_or_default(),
                &probe.model_hash[..12.min(probe.model_hash.len())],
                &model.hash[..12]
            ),
        });
    }
    let f = features(ctx, ds, &model, false)?;
    if f.ids.is_empty() && !f.missing.is_empty() {
        return Err(CurateError::NotEmbedded { model: model.name.clone(), missing: f.missing.len() });
    }
    if !f.ids.is_empty() && f.dim() != probe.linear.dim {
        return Err(CurateError::Model { model: model.name.clone(), message: format!("the probe expects {}-d embeddings, the store holds {}-d", probe.linear.dim, f.dim()) });
    }
    let p = kernel::predict(&probe.linear, &f.design());
    let k = probe.classes.len();
    let mut ids = f.ids;
    let mut probs: Vec<Option<Vec<f32>>> = p.chunks(k).map(|c| Some(c.to_vec())).collect();
    for id in f.missing {
        ids.push(id);
        probs.push(None);
    }
    Ok((ids, probs))
}
