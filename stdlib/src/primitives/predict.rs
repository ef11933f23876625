//! `ds.predict(model)`: a classifier's predictions on every sample, cached like embeddings; and
//! `ds.load_predictions(file)`: predictions that a training pipeline wrote elsewhere.
//!
//! Both give the same columns: `pred_label` (the most probable class), `pred_score` (its
//! probability) and, for models with at most [`MAX_CLASS_COLUMNS`] classes, one `p_<class>`
//! probability column per class. Label issues, confusion matrices and data unit tests read them.

use std::sync::Arc;

use rhai::{Engine, EvalAltResult};

use super::{Context, Example, Primitive};
use crate::dataset::Dataset;
use crate::error::Result;
use crate::output::Output;
use crate::predictions;

pub const DOC: Primitive = Primitive {
    name: "predict",
    signatures: &["ds.predict() -> Dataset", "ds.predict(model: string) -> Dataset"],
    summary: "Run a classifier declared in curate.toml (one with `scores` and `classes`) over \
              every image of ds, in parallel with a progress bar, and add its predictions: \
              `pred_label`, `pred_score` (the probability of pred_label) and a `p_<class>` \
              probability column per class (up to 32 classes). Scores are cached in .curate/ by \
              content hash and model hash, so only new images are run. Samples whose image \
              cannot be read get nulls and are listed.",
    options: &[],
    examples: &[Example { code: "open().filter(\"class = 'face'\").predict(\"vww\").group_count(\"pred_label\").len() > 0", result: Some("true") }],
};

pub const LOAD_DOC: Primitive = Primitive {
    name: "load_predictions",
    signatures: &["ds.load_predictions(path: string) -> Dataset"],
    summary: "Join predictions written by another tool (a CSV, JSONL or Parquet file in the \
              workspace) by `id`. The file has `pred_label` (and optionally `pred_score`), or one \
              `p_<class>` probability column per class, from which pred_label and pred_score are \
              derived. Samples the file does not mention get nulls; ids the file has that ds does \
              not are ignored.",
    options: &[],
    examples: &[
        Example { code: "open().load_predictions(\"pipeline_predictions.csv\").get(\"lfw/face/002\").pred_label", result: Some("no_person") },
        Example { code: "open().filter(\"class = 'face'\").load_predictions(\"pipeline_predictions.csv\").filter(\"pred_label = 'person'\").len()", result: Some("2") },
    ],
};

pub use crate::predictions::{attach, class_column, is_prediction_column, prediction_frame, probabilities_of, MAX_CLASS_COLUMNS};

/// `ds` with `model`'s predictions; says what was run when anything was.
pub fn predict(ctx: &Context, ds: &Dataset, model: Option<&str>) -> Result<Dataset> {
    let (with, report) = predictions::predict(&ctx.registry, ds, model, ctx.progress.as_ref())?;
    if report.embedded > 0 || !report.failed.is_empty() {
        (ctx.sink)(Output::Text(report.describe()));
    }
    Ok(with)
}

/// `ds` with the predictions of a file in the session's root.
pub fn load_predictions(ctx: &Context, ds: &Dataset, path: &str) -> Result<Dataset> {
    predictions::load(&ctx.root, ds, path)
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("predict", move |ds: &mut Dataset| -> Result<Dataset, Box<EvalAltResult>> { Ok(predict(&c, ds, None)?) });
    let c = ctx.clone();
    engine.register_fn("predict", move |ds: &mut Dataset, model: &str| -> Result<Dataset, Box<EvalAltResult>> { Ok(predict(&c, ds, Some(model))?) });
    let c = ctx.clone();
    engine.register_fn("load_predictions", move |ds: &mut Dataset, path: &str| -> Result<Dataset, Box<EvalAltResult>> { Ok(load_predictions(&c, ds, path)?) });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn load_examples() {
        crate::testing::check_examples_in_copy(&super::LOAD_DOC);
    }
}
