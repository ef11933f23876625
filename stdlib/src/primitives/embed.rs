//! `ds.embed(model)`: compute and cache an embedding for every image of the dataset.

use std::sync::Arc;

use rhai::{Engine, EvalAltResult};

use super::{Context, Example, Primitive};
use crate::dataset::Dataset;
use crate::embed;
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

/// The script form: embed, say what happened when anything did, and return `ds`.
fn embed_and_report(ctx: &Context, ds: &Dataset, model: Option<&str>) -> Result<Dataset> {
    let report = embed::embed_dataset(&ctx.registry, ds, model, None, ctx.progress.as_ref())?;
    if report.embedded > 0 || !report.failed.is_empty() {
        (ctx.sink)(Output::Text(report.describe()));
    }
    Ok(ds.clone())
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("embed", move |ds: &mut Dataset| -> Result<Dataset, Box<EvalAltResult>> { Ok(embed_and_report(&c, ds, None)?) });
    let c = ctx.clone();
    engine.register_fn("embed", move |ds: &mut Dataset, model: &str| -> Result<Dataset, Box<EvalAltResult>> { Ok(embed_and_report(&c, ds, Some(model))?) });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }
}
