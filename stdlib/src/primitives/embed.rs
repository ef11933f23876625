//! `ds.embed(model)`: compute and cache an embedding for every image of the dataset.

use std::sync::Arc;

use polars::prelude::*;
use rhai::{Engine, EvalAltResult};

use super::{Context, Example, Primitive};
use crate::dataset::Dataset;
use crate::embed::{self, EmbedReport, Job, Kind, Shard};
use crate::error::Result;
use crate::output::Output;

pub const DOC: Primitive = Primitive {
    name: "embed",
    signatures: &["ds.embed() -> Dataset", "ds.embed(model: string) -> Dataset"],
    summary: "Compute an embedding for every image in ds with a model declared in curate.toml \
              (the only embedding model when none is named), in parallel, with a progress bar. \
              Vectors are cached in .curate/ by content hash and model hash, so only new or \
              changed images are embedded; an interrupted run keeps what it finished. Images \
              that cannot be read are listed, not fatal. Returns ds, for chaining.",
    options: &[],
    examples: &[Example { code: "open().filter(\"class = 'face'\").embed(\"mobilenet\").len()", result: Some("100") }],
};

/// Embed the images of `ds`; the report says what was cached, computed and skipped.
pub fn embed_dataset(ctx: &Context, ds: &Dataset, model: Option<&str>, shard: Option<Shard>) -> Result<EmbedReport> {
    let model = ctx.registry.model(ds.workspace(), model)?;
    run_dataset(ctx, ds, &model, Kind::Embedding, shard)
}

/// Run `model` over the images of `ds` whose `kind` output is not cached yet.
pub fn run_dataset(ctx: &Context, ds: &Dataset, model: &crate::model::Model, kind: Kind, shard: Option<Shard>) -> Result<EmbedReport> {
    let ws = ds.workspace().clone();
    let df = ds.lazy().select([col("id"), col("path"), col("hash")]).collect()?;
    let ids = df.column("id")?.str()?.clone();
    let paths = df.column("path")?.str()?.clone();
    let hashes = df.column("hash")?.str()?.clone();
    let jobs: Vec<Job> = ids
        .iter()
        .zip(paths.iter())
        .zip(hashes.iter())
        .filter_map(|((id, path), hash)| {
            Some(Job { id: id?.to_string(), path: ws.media_path(path?), hash: hash.map(str::to_string) })
        })
        .collect();
    embed::run_model(&ws, model, kind, jobs, shard, ctx.progress.as_ref())
}

pub fn describe(r: &EmbedReport) -> String {
    let mut s = format!(
        "{}: {} images, {} embedded, {} already cached, {} failed ({:.1} s, {})",
        r.model,
        r.images,
        r.embedded,
        r.cached,
        r.failed.len(),
        r.seconds,
        r.runtime
    );
    for f in r.failed.iter().take(10) {
        s.push_str(&format!("\n  {} ({}): {}", f.id, f.path, f.message));
    }
    if r.failed.len() > 10 {
        s.push_str(&format!("\n  ... and {} more", r.failed.len() - 10));
    }
    s
}

/// The script form: embed, say what happened when anything did, and return `ds`.
fn embed_and_report(ctx: &Context, ds: &Dataset, model: Option<&str>) -> Result<Dataset> {
    let report = embed_dataset(ctx, ds, model, None)?;
    if report.embedded > 0 || !report.failed.is_empty() {
        (ctx.sink)(Output::Text(describe(&report)));
    }
    Ok(ds.clone())
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("embed", move |ds: &mut Dataset| -> Result<Dataset, Box<EvalAltResult>> {
        Ok(embed_and_report(&c, ds, None)?)
    });
    let c = ctx.clone();
    engine.register_fn("embed", move |ds: &mut Dataset, model: &str| -> Result<Dataset, Box<EvalAltResult>> {
        Ok(embed_and_report(&c, ds, Some(model))?)
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }
}
