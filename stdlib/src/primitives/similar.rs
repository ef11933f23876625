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
    signatures: &[
        "ds.similar(query, k: int) -> Dataset",
        "ds.similar(query, k: int, #{model: string, exact: bool, metric: \"cosine\"|\"l2\"}) -> Dataset",
    ],
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

/// A query: the samples (id, content hash) it names, or an outside image's vector.
enum Query {
    /// (id, content hash, manifest path)
    Samples(Vec<(String, String, String)>),
    File(String, Vec<f32>),
}

pub fn similar(ctx: &Context, ds: &Dataset, query: &Dynamic, k: i64, opts: &SimilarOptions) -> Result<Dataset> {
    if k < 0 {
        return Err(CurateError::arg("similar", format!("k must be at least 0, got {k}")));
    }
    let k = k as usize;
    let ws = ds.workspace().clone();
    let metric = match &opts.metric {
        None => Metric::Cosine,
        Some(m) => Metric::parse(m).ok_or_else(|| CurateError::InvalidOption {
            function: "similar".into(),
            key: "metric".into(),
            message: format!("`{m}` is not a metric; use \"cosine\" or \"l2\""),
        })?,
    };
    let model = ctx.registry.model(&ws, opts.model.as_deref())?;
    let vectors = ctx.registry.vectors(&ws, &model)?;

    let view = crate::vectors::View::of(ds, &vectors)?;
    if view.is_empty() {
        return Err(CurateError::NotEmbedded { model: model.name.clone(), missing: view.missing });
    }

    let query = resolve_query(ctx, ds, query, &model)?;
    let (qvecs, exclude): (Vec<(String, Vec<f32>)>, Vec<String>) = match query {
        Query::Samples(samples) => {
            let hashes = Column::new("hash".into(), samples.iter().map(|s| s.1.clone()).collect::<Vec<String>>());
            let stored = vectors.rows_of(&hashes)?;
            let mut qv = Vec::new();
            for ((id, _, path), row) in samples.iter().zip(stored) {
                match row {
                    Some(row) => qv.push((id.clone(), vectors.raw_row(row as usize))),
                    // A query outside the embedded view (a test image against the train
                    // split): embed it now, as an outside file would be.
                    None => {
                        let file = ws.media_path(path);
                        let v = crate::embed::embed_file(&model, &file).map_err(|m| CurateError::io(&file, m))?;
                        qv.push((id.clone(), v));
                    }
                }
            }
            (qv, samples.into_iter().map(|s| s.0).collect())
        }
        Query::File(path, v) => (vec![(path, v)], vec![]),
    };

    let view_rows: Vec<u32> = view.rows().iter().map(|&r| r as u32).collect();
    let want = k + exclude.len();
    // The index answers only when `curate index` built it for exactly these vectors and the
    // view is most of the store; otherwise one blocked matrix product answers every query.
    let index = if opts.exact || view_rows.len() * 4 < vectors.len() { None } else { ctx.registry.index_if_built(&model, &vectors, metric) };
    let found: Vec<Vec<Neighbour>> = match &index {
        // Queries in parallel: at 1M vectors the inverted lists answer 258-342 queries/s on
        // one thread and 521-645 on two.
        Some(idx) => qvecs
            .par_iter()
            .map(|(_, qv)| {
                let hits: Vec<Neighbour> = idx.search(qv, want * 4 + 64, want * 4 + 64).into_iter().filter(|n| view.contains(n.row)).collect();
                if hits.len() >= want { Ok(hits) } else { exact_search(&vectors, metric, qv, want, Some(&view_rows)) }
            })
            .collect::<Result<_>>()?,
        None => {
            let queries: Vec<Vec<f32>> = qvecs.iter().map(|q| q.1.clone()).collect();
            crate::index::exact_search_many(&vectors, metric, &queries, want, Some(&view_rows))?
        }
    };
    // Best (distance, query) per vector row.
    let mut best: HashMap<usize, (f32, String)> = HashMap::new();
    for ((qid, _), found) in qvecs.iter().zip(found) {
        for n in found {
            let e = best.entry(n.row).or_insert((f32::INFINITY, String::new()));
            if n.distance < e.0 {
                *e = (n.distance, qid.clone());
            }
        }
    }
    let mut rows: Vec<(String, f32, String)> = Vec::new();
    for (row, (d, q)) in best {
        for id in view.ids_of(row) {
            if !exclude.contains(id) {
                rows.push((id.clone(), d, q.clone()));
            }
        }
    }
    rows.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(k);
    let hits = df!(
        "id" => rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        "distance" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "query" => rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>(),
    )?;
    ds.derive(ds.annotate(hits).sort(["distance"], SortMultipleOptions::default().with_maintain_order(true)))
}

fn resolve_query(ctx: &Context, ds: &Dataset, query: &Dynamic, model: &crate::model::Model) -> Result<Query> {
    let all = ds.workspace().scan_manifest()?;
    let lookup = |ids: Vec<String>| -> Result<Query> {
        let want = Series::new("id".into(), ids.clone());
        let df = all.clone().filter(col("id").is_in(lit(want).implode(false), false)).select([col("id"), col("hash"), col("path")]).collect()?;
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
        Ok(Query::Samples(out))
    };
    if let Some(other) = query.read_lock::<Dataset>() {
        let ids: Vec<String> = other.lazy().select([col("id")]).collect()?.column("id")?.str()?.iter().flatten().map(str::to_string).collect();
        return lookup(ids);
    }
    if query.is_array() {
        let arr = query.clone().into_array().unwrap_or_default();
        let ids = crate::value::array_to_strings(&arr).map_err(|m| CurateError::arg("similar", m))?;
        return lookup(ids);
    }
    let Ok(text) = query.clone().into_string() else {
        return Err(CurateError::arg("similar", format!("the query must be an id, an array of ids, a dataset or an image path, not a {}", query.type_name())));
    };
    match lookup(vec![text.clone()]) {
        Err(CurateError::UnknownId { .. }) if crate::import::is_image(std::path::Path::new(&text)) => {
            let path = crate::workspace::resolve_inside(&ctx.root, &text)?;
            let v = crate::embed::embed_file(model, &path).map_err(|m| CurateError::io(&path, m))?;
            Ok(Query::File(text, v))
        }
        other => other,
    }
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("similar", move |ds: &mut Dataset, q: Dynamic, k: i64| -> Result<Dataset, Box<EvalAltResult>> {
        Ok(similar(&c, ds, &q, k, &SimilarOptions::default())?)
    });
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
