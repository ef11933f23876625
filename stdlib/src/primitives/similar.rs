//! `ds.similar(query, k)`: the samples nearest to a query by embedding.

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::*;
use rayon::prelude::*;
use rhai::{Dynamic, Engine, EvalAltResult, Map};

use super::{Context, Example, Opt, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::index::{exact_search, Metric, Neighbour};
use crate::options::{self, Options};

pub const DOC: Primitive = Primitive {
    name: "similar",
    signatures: &["ds.similar(query, k: int) -> Dataset", "ds.similar(query, k: int, #{model: string, exact: bool, metric: \"cosine\"|\"l2\"}) -> Dataset"],
    summary: "The k samples of ds nearest to the query by embedding, nearest first, with a \
              `distance` column (1 - cosine similarity by default) and `query`, the query it is \
              nearest to. The query is an id, an array of ids, a dataset, or the path of an image \
              file that need not be in the dataset. Queries are left out of the result. Searches \
              exactly, by a blocked matrix product over the memory-mapped vectors, unless \
              `curate index` has built an index for the current vectors (`exact: true` always \
              searches exactly). Embed first with `ds.embed()`.",
    options: &[
        Opt { name: "model", default: "the [defaults] embedding model", help: "The embedding model whose vectors are searched." },
        Opt { name: "exact", default: "false", help: "Search exactly even when a fresh `curate index` exists." },
        Opt { name: "metric", default: "\"cosine\"", help: "\"cosine\" (distance 1 - cosine similarity) or \"l2\" (Euclidean distance of the raw vectors)." },
    ],
    examples: &[
        Example { code: "let cats = open().filter(\"class = 'cat'\").embed(); cats.similar(\"cifar/test/cat/0003\", 5).len()", result: Some("5") },
        Example {
            code: "let cats = open().filter(\"class = 'cat'\").embed(); cats.similar(\"cifar/test/cat/0003\", 3, #{exact: true}).col(\"query\")",
            result: Some("[\"cifar/test/cat/0003\", \"cifar/test/cat/0003\", \"cifar/test/cat/0003\"]"),
        },
    ],
};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimilarOptions {
    pub model: Option<String>,
    pub exact: bool,
    pub metric: Option<String>,
}

impl Options for SimilarOptions {
    const KEYS: &'static [&'static str] = &["model", "exact", "metric"];
}

pub fn similar(ctx: &Context, ds: &Dataset, query: &Dynamic, k: i64, opts: &SimilarOptions) -> Result<Dataset> {
    if k < 0 {
        return Err(CurateError::arg("similar", format!("k must be at least 0, got {k}")));
    }
    let k = k as usize;
    let ws = ds.workspace().clone();
    let metric = match &opts.metric {
        None => Metric::Cosine,
        Some(m) => {
            Metric::parse(m).ok_or_else(|| CurateError::InvalidOption { function: "similar".into(), key: "metric".into(), message: format!("`{m}` is not a metric; use \"cosine\" or \"l2\"") })?
        }
    };
    let model = ctx.registry.model(&ws, opts.model.as_deref())?;
    let vectors = ctx.registry.vectors(&ws, &model)?;

    // Resolved once per dataset value and store state: a loop of queries on one view reads
    // the manifest and joins it with the store's table once.
    let view = crate::vectors::View::cached(ds, &vectors)?;
    if view.is_empty() {
        return Err(CurateError::NotEmbedded { model: model.name.clone(), missing: view.missing });
    }

    let (qvecs, exclude): (Vec<(String, Vec<f32>)>, Vec<String>) = match query_ids(query)? {
        // Ids in the view have their vector row at hand; the others (a test image queried
        // against the train split, an id not in the workspace) are looked up in the manifest.
        Some(ids) => {
            let in_view = view.rows_of_ids(&ids);
            let outside: Vec<String> = ids.iter().zip(&in_view).filter(|(_, r)| r.is_none()).map(|(id, _)| id.clone()).collect();
            let mut looked_up = if outside.is_empty() { Vec::new() } else { lookup(ds, outside)? }.into_iter();
            let mut qv = Vec::with_capacity(ids.len());
            for (id, row) in ids.iter().zip(in_view) {
                match row {
                    Some(row) => qv.push((id.clone(), vectors.raw_row(row))),
                    None => {
                        let Some((id, hash, path)) = looked_up.next() else { return Err(CurateError::UnknownId { id: id.clone() }) };
                        qv.push((id.clone(), sample_vector(&ws, &vectors, &model, &hash, &path)?));
                    }
                }
            }
            (qv, ids)
        }
        None => {
            let text = query.clone().into_string().unwrap_or_default();
            if let Some(row) = view.rows_of_ids(std::slice::from_ref(&text))[0] {
                (vec![(text.clone(), vectors.raw_row(row))], vec![text])
            } else {
                match lookup(ds, vec![text.clone()]) {
                    Ok(mut found) => {
                        let (id, hash, path) = found.remove(0);
                        (vec![(id.clone(), sample_vector(&ws, &vectors, &model, &hash, &path)?)], vec![id])
                    }
                    Err(CurateError::UnknownId { .. }) if crate::import::is_image(std::path::Path::new(&text)) => {
                        let path = crate::workspace::resolve_inside(&ctx.root, &text)?;
                        let v = crate::embed::embed_file(&model, &path).map_err(|m| CurateError::io(&path, m))?;
                        (vec![(text, v)], vec![])
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    };

    let want = k + exclude.len();
    let view_rows = || -> Vec<u32> { view.rows().iter().map(|&r| r as u32).collect() };
    // The index answers only when `curate index` built it for exactly these vectors and the
    // view is most of the store; otherwise one blocked matrix product answers every query.
    let index = if opts.exact || view.rows().len() * 4 < vectors.len() { None } else { ctx.registry.index_if_built(&model, &vectors, metric) };
    let found: Vec<Vec<Neighbour>> = match &index {
        // Queries in parallel: at 1M vectors the inverted lists answer 258-342 queries/s on
        // one thread and 521-645 on two.
        Some(idx) => qvecs
            .par_iter()
            .map(|(_, qv)| {
                let hits: Vec<Neighbour> = idx.search(qv, want * 4 + 64, want * 4 + 64).into_iter().filter(|n| view.contains(n.row)).collect();
                if hits.len() >= want {
                    Ok(hits)
                } else {
                    exact_search(&vectors, metric, qv, want, Some(&view_rows()))
                }
            })
            .collect::<Result<_>>()?,
        None => {
            let queries: Vec<Vec<f32>> = qvecs.iter().map(|q| q.1.clone()).collect();
            crate::index::exact_search_many(&vectors, metric, &queries, want, Some(&view_rows()))?
        }
    };
    // Best (distance, query) per vector row.
    let mut best: HashMap<usize, (f32, &str)> = HashMap::new();
    for ((qid, _), found) in qvecs.iter().zip(found) {
        for n in found {
            let e = best.entry(n.row).or_insert((f32::INFINITY, ""));
            if n.distance < e.0 {
                *e = (n.distance, qid.as_str());
            }
        }
    }
    // (id, distance, query, position in the view)
    let mut rows: Vec<(&str, f32, &str, u32)> = Vec::new();
    for (row, (d, q)) in best {
        for (id, pos) in view.samples_of(row) {
            if !exclude.iter().any(|e| e == id) {
                rows.push((id, d, q, pos));
            }
        }
    }
    rows.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
    rows.truncate(k);
    let schema = ds.schema();
    if schema.contains("distance") || schema.contains("query") {
        // A view that already has these columns (a `similar` of a `similar`): the join keeps
        // its own, as it always did.
        let hits = df!(
            "id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "distance" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "query" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )?;
        return ds.derive(ds.annotate(hits).sort(["distance"], SortMultipleOptions::default().with_maintain_order(true)));
    }
    // The k rows picked by position out of the kept frame, in the order found: the same rows
    // and columns as a join of the hits with the view, without a pass over the view.
    let picked = IdxCa::from_vec("pos".into(), rows.iter().map(|r| r.3 as IdxSize).collect());
    let Some(frame) = view.frame() else { return Err(CurateError::arg("similar", "the view kept no rows")) };
    let mut out = frame.take(&picked)?;
    out.with_column(Column::new("distance".into(), rows.iter().map(|r| r.1).collect::<Vec<f32>>()))?;
    out.with_column(Column::new("query".into(), rows.iter().map(|r| r.2).collect::<Vec<&str>>()))?;
    ds.derive(out.lazy())
}

/// The ids a query names: an array of ids or a dataset's ids (`None` for a single string,
/// which may also be an image file's path).
fn query_ids(query: &Dynamic) -> Result<Option<Vec<String>>> {
    if let Some(other) = query.read_lock::<Dataset>() {
        return Ok(Some(other.lazy().select([col("id")]).collect()?.column("id")?.str()?.iter().flatten().map(str::to_string).collect()));
    }
    if query.is_array() {
        let arr = query.clone().into_array().unwrap_or_default();
        return Ok(Some(crate::value::array_to_strings(&arr).map_err(|m| CurateError::arg("similar", m))?));
    }
    if !query.is_string() {
        return Err(CurateError::arg("similar", format!("the query must be an id, an array of ids, a dataset or an image path, not a {}", query.type_name())));
    }
    Ok(None)
}

/// The stored vector of a sample with content `hash`, else its image embedded now (a query
/// outside the embedded view: a test image against the train split).
fn sample_vector(ws: &crate::workspace::Workspace, vectors: &crate::store::Store, model: &crate::model::Model, hash: &str, path: &str) -> Result<Vec<f32>> {
    let stored = vectors.rows_of(&Column::new("hash".into(), [hash]))?;
    match stored.first().copied().flatten() {
        Some(row) => Ok(vectors.raw_row(row as usize)),
        None => {
            let file = ws.media_path(path);
            crate::embed::embed_file(model, &file).map_err(|m| CurateError::io(&file, m))
        }
    }
}

/// (id, content hash, manifest path) of each id, from the whole manifest, in order.
fn lookup(ds: &Dataset, ids: Vec<String>) -> Result<Vec<(String, String, String)>> {
    let all = ds.workspace().scan_manifest()?;
    let want = Series::new("id".into(), ids.clone());
    let df = all.filter(col("id").is_in(lit(want).implode(false), false)).select([col("id"), col("hash"), col("path")]).collect()?;
    let found: HashMap<String, (Option<String>, String)> = df
        .column("id")?
        .str()?
        .iter()
        .zip(df.column("hash")?.str()?.iter())
        .zip(df.column("path")?.str()?.iter())
        .filter_map(|((i, h), p)| i.map(|i| (i.to_string(), (h.map(str::to_string), p.unwrap_or_default().to_string()))))
        .collect();
    let mut out = Vec::new();
    for id in ids {
        match found.get(&id) {
            Some((Some(h), p)) => out.push((id, h.clone(), p.clone())),
            Some((None, _)) => return Err(CurateError::arg("similar", format!("sample `{id}` has no content hash (unreadable image?)"))),
            None => return Err(CurateError::UnknownId { id }),
        }
    }
    Ok(out)
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("similar", move |ds: &mut Dataset, q: Dynamic, k: i64| -> Result<Dataset, Box<EvalAltResult>> { Ok(similar(&c, ds, &q, k, &SimilarOptions::default())?) });
    let c = ctx.clone();
    engine.register_fn("similar", move |ds: &mut Dataset, q: Dynamic, k: i64, opts: Map| -> Result<Dataset, Box<EvalAltResult>> {
        let opts: SimilarOptions = options::parse("similar", &opts)?;
        Ok(similar(&c, ds, &q, k, &opts)?)
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples_in_copy(&super::DOC);
    }
}
