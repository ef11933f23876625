//! Predictions: a classifier's `scores` over a dataset (cached like embeddings), or a file of
//! predictions that a training pipeline wrote elsewhere, as the same columns: `pred_label` (the
//! most probable class), `pred_score` (its probability) and, for models with at most
//! [`MAX_CLASS_COLUMNS`] classes, one `p_<class>` probability column per class. Label issues,
//! confusion matrices and data unit tests read them.

use std::path::Path;

use polars::prelude::*;

use crate::dataset::Dataset;
use crate::embed::{EmbedReport, Kind, Shard};
use crate::error::{CurateError, Result};
use crate::progress::Progress;
use crate::vectors::Registry;

/// Models with more classes than this get `pred_label` and `pred_score` only.
pub const MAX_CLASS_COLUMNS: usize = 32;

/// The columns that predictions add; a new prediction replaces them.
pub fn is_prediction_column(name: &str) -> bool {
    name == "pred_label" || name == "pred_score" || name.starts_with("p_")
}

/// The `p_<class>` column of a class name: non-alphanumerics become `_`.
pub fn class_column(class: &str) -> String {
    let clean: String = class.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("p_{clean}")
}

/// Run a model's `scores` over every sample of `ds` whose scores are not cached (only shard
/// `shard`'s, when given), for `curate predict`: `model`, else `[test] model`, else the only
/// model with `scores`.
pub fn predict_all(registry: &Registry, ds: &Dataset, model: Option<&str>, shard: Option<Shard>, progress: &dyn Progress) -> Result<EmbedReport> {
    let ws = ds.workspace().clone();
    let name = match model.map(str::to_string).or_else(|| ws.config.test.model.clone()) {
        Some(m) => m,
        None => crate::vectors::default_model(&ws, "scores")?,
    };
    let model = registry.model(&ws, Some(&name))?;
    crate::embed::run_dataset(ds, &model, Kind::Scores, shard, progress)
}

/// The format of a predictions file, from its extension.
pub fn predictions_format(out: &Path) -> Result<String> {
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    if !matches!(ext.as_str(), "csv" | "parquet" | "jsonl") {
        return Err(CurateError::arg("predict", format!("{}: write predictions to a .csv, .parquet or .jsonl file", out.display())));
    }
    Ok(ext)
}

/// Write `ds`'s predictions (id, pred_label, pred_score, p_<class>) to a CSV, Parquet or JSONL
/// file, atomically: the table `load_predictions` and `curate test --predictions` read.
pub fn write_predictions(registry: &Registry, ds: &Dataset, model: Option<&str>, out: &Path, progress: &dyn Progress) -> Result<()> {
    let ext = predictions_format(out)?;
    let model = model.map(str::to_string).or_else(|| ds.workspace().config.test.model.clone());
    let (with, _) = predict(registry, ds, model.as_deref(), progress)?;
    let cols: Vec<Expr> = with.column_names().iter().filter(|c| c.as_str() == "id" || is_prediction_column(c)).map(|c| col(c.as_str())).collect();
    let mut table = with.lazy().select(cols).sort(["id"], SortMultipleOptions::default()).collect()?;
    crate::atomic::write_table(out, &ext, &mut table)
}

/// `ds` with `model`'s predictions (the only model with `scores` when `None`), running it over
/// what is not cached; and what that run did.
pub fn predict(registry: &Registry, ds: &Dataset, model: Option<&str>, progress: &dyn Progress) -> Result<(Dataset, EmbedReport)> {
    let ws = ds.workspace().clone();
    let name = match model {
        Some(m) => m.to_string(),
        None => crate::vectors::default_model(&ws, "scores")?,
    };
    let model = registry.model(&ws, Some(&name))?;
    let report = crate::embed::run_dataset(ds, &model, Kind::Scores, None, progress)?;
    let outputs = registry.outputs(&ws, &model, Kind::Scores)?;
    let width = outputs.dim();
    let classes: Vec<String> = match &model.classes {
        Some(c) if c.len() == width || outputs.is_empty() => c.clone(),
        Some(c) => return Err(CurateError::Model { model: model.name.clone(), message: format!("declares {} classes but its scores output has {width} values", c.len()) }),
        None => (0..width).map(|i| i.to_string()).collect(),
    };
    let df = ds.lazy().select([col("id"), col("hash")]).collect()?;
    let mut ids = Vec::new();
    let mut probs: Vec<Option<Vec<f32>>> = Vec::new();
    let rows = outputs.rows_of(df.column("hash")?)?;
    for (id, row) in df.column("id")?.str()?.iter().zip(rows) {
        let Some(id) = id else { continue };
        ids.push(id.to_string());
        probs.push(row.map(|r| model.probabilities(&outputs.raw_row(r as usize))));
    }
    let preds = prediction_frame(ids, &classes, &probs)?;
    Ok((attach(ds, preds)?, report))
}

/// `id`, `pred_label`, `pred_score` and `p_<class>` columns from per-sample probabilities.
pub fn prediction_frame(ids: Vec<String>, classes: &[String], probs: &[Option<Vec<f32>>]) -> Result<DataFrame> {
    let n = ids.len();
    let mut label: Vec<Option<String>> = Vec::with_capacity(n);
    let mut score: Vec<Option<f64>> = Vec::with_capacity(n);
    for p in probs {
        match p.as_deref().and_then(argmax) {
            Some((i, s)) => {
                label.push(classes.get(i).cloned());
                score.push(Some(s as f64));
            }
            None => {
                label.push(None);
                score.push(None);
            }
        }
    }
    let mut cols = vec![Column::new("id".into(), ids), Column::new("pred_label".into(), label), Column::new("pred_score".into(), score)];
    if classes.len() <= MAX_CLASS_COLUMNS {
        for (c, class) in classes.iter().enumerate() {
            let v: Vec<Option<f64>> = probs.iter().map(|p| p.as_ref().and_then(|p| p.get(c)).map(|&x| x as f64)).collect();
            cols.push(Column::new(class_column(class).into(), v));
        }
    }
    Ok(DataFrame::new(n, cols)?)
}

fn argmax(v: &[f32]) -> Option<(usize, f32)> {
    v.iter().copied().enumerate().filter(|(_, x)| !x.is_nan()).max_by(|a, b| a.1.total_cmp(&b.1))
}

/// `ds` with its old prediction columns replaced by `preds` (joined by id, order kept).
pub fn attach(ds: &Dataset, preds: DataFrame) -> Result<Dataset> {
    let keep: Vec<Expr> = ds.column_names().iter().filter(|c| !is_prediction_column(c)).map(|c| col(c.as_str())).collect();
    let lf = ds.lazy().select(keep).join(preds.lazy(), [col("id")], [col("id")], JoinArgs::new(JoinType::Left).with_coalesce(JoinCoalesce::CoalesceColumns));
    ds.derive(lf)
}

/// `ds` with the predictions of a CSV, JSONL or Parquet file at `path` inside `root`, joined by
/// id: `pred_label` (and `pred_score`), or `p_<class>` columns from which they are derived.
pub fn load(root: &Path, ds: &Dataset, path: &str) -> Result<Dataset> {
    let file = crate::workspace::resolve_inside(root, path)?;
    if !file.is_file() {
        return Err(CurateError::io(&file, "no such file"));
    }
    let format = crate::import::ImportFormat::detect(&file)
        .filter(|f| !matches!(f, crate::import::ImportFormat::Folder | crate::import::ImportFormat::Coco))
        .ok_or_else(|| CurateError::import(&file, "predictions must be a .csv, .jsonl or .parquet file"))?;
    let raw = crate::import::table::read_raw(&file, format)?;
    let bad = |m: String| CurateError::import(&file, m);
    let names: Vec<String> = raw.get_column_names().iter().map(|s| s.to_string()).collect();
    if !names.iter().any(|n| n == "id") {
        return Err(bad(format!("no `id` column (columns: {})", names.join(", "))));
    }
    let ids: Vec<String> =
        raw.column("id")?.cast(&DataType::String)?.str()?.iter().enumerate().map(|(row, v)| v.map(str::to_string).ok_or_else(|| bad(format!("row {}: empty id", row + 1)))).collect::<Result<_>>()?;
    let class_cols: Vec<&String> = names.iter().filter(|n| n.starts_with("p_")).collect();
    let preds = if !class_cols.is_empty() {
        let classes: Vec<String> = class_cols.iter().map(|c| c["p_".len()..].to_string()).collect();
        let mut columns = Vec::new();
        for c in &class_cols {
            let s = raw.column(c.as_str())?.cast(&DataType::Float32).map_err(|e| bad(format!("column `{c}`: {e}")))?;
            columns.push(s.f32()?.iter().collect::<Vec<Option<f32>>>());
        }
        let probs: Vec<Option<Vec<f32>>> = (0..ids.len()).map(|i| columns.iter().map(|c| c[i]).collect::<Option<Vec<f32>>>()).collect();
        prediction_frame(ids, &classes, &probs)?
    } else if names.iter().any(|n| n == "pred_label") {
        let label = raw.column("pred_label")?.cast(&DataType::String)?;
        let score = match raw.column("pred_score") {
            Ok(s) => s.cast(&DataType::Float64).map_err(|e| bad(format!("column `pred_score`: {e}")))?,
            Err(_) => Column::full_null("pred_score".into(), ids.len(), &DataType::Float64),
        };
        DataFrame::new(ids.len(), vec![Column::new("id".into(), ids), label.with_name("pred_label".into()), score.with_name("pred_score".into())])?
    } else {
        return Err(bad(format!("no `pred_label` and no `p_<class>` columns (columns: {})", names.join(", "))));
    };
    let unique = preds.column("id")?.n_unique()?;
    if unique != preds.height() {
        return Err(bad(format!("{} rows but {unique} distinct ids: an id appears more than once", preds.height())));
    }
    attach(ds, preds)
}

/// Per-sample probabilities from a dataset's `p_<class>` columns, for the classes it has.
pub fn probabilities_of(ds: &Dataset) -> Result<(Vec<String>, Vec<String>, Vec<Option<Vec<f32>>>)> {
    let class_cols: Vec<String> = ds.column_names().into_iter().filter(|c| c.starts_with("p_")).collect();
    if class_cols.is_empty() {
        return Err(CurateError::arg("label_issues", "ds has no p_<class> probability columns: run ds.predict(model), ds.load_predictions(file) or ds.fit_probe(col) first"));
    }
    let mut exprs = vec![col("id")];
    exprs.extend(class_cols.iter().map(|c| col(c.as_str()).cast(DataType::Float32)));
    let df = ds.lazy().select(exprs).collect()?;
    let ids: Vec<String> = df.column("id")?.str()?.iter().map(|s| s.unwrap_or_default().to_string()).collect();
    let cols: Vec<Vec<Option<f32>>> = class_cols.iter().map(|c| Ok(df.column(c)?.f32()?.iter().collect())).collect::<Result<_>>()?;
    let probs = (0..ids.len()).map(|i| cols.iter().map(|c| c[i]).collect::<Option<Vec<f32>>>()).collect();
    let classes = class_cols.iter().map(|c| c["p_".len()..].to_string()).collect();
    Ok((ids, classes, probs))
}
