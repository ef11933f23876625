//! `ds.outliers(k)`: samples scored by how far they sit from their nearest neighbours.

use std::sync::Arc;

use polars::prelude::*;
use rhai::{Engine, EvalAltResult};

use super::{Context, Example, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};

pub const DOC: Primitive = Primitive {
    name: "outliers",
    signatures: &["ds.outliers() -> Dataset", "ds.outliers(k: int) -> Dataset"],
    summary: "Every embedded sample with an `outlier_score`: the mean cosine distance to its k \
              nearest neighbours in ds (k = 10 by default), most isolated first. Odd images, \
              wrong crops and corrupt-looking files float to the top.",
    options: &[],
    examples: &[Example { code: "let ds = open().filter(\"split = 'test'\").embed(); ds.outliers(5).len()", result: Some("240") }],
};

pub fn outliers(ctx: &Context, ds: &Dataset, k: i64) -> Result<Dataset> {
    if k < 1 {
        return Err(CurateError::arg("outliers", format!("k must be at least 1, got {k}")));
    }
    let (view, rows, neighbours) = crate::dedupe::knn_view(&ctx.registry, ds, None, k as usize)?;
    let (mut out_id, mut out_score) = (vec![], vec![]);
    for (r, near) in rows.iter().zip(neighbours) {
        let score = if near.is_empty() { 0.0 } else { near.iter().map(|n| n.distance as f64).sum::<f64>() / near.len() as f64 };
        for id in view.ids_of(*r) {
            out_id.push(id.clone());
            out_score.push(score);
        }
    }
    let scores = df!("id" => out_id, "outlier_score" => out_score)?;
    ds.derive(ds.annotate(scores).sort_by_exprs([col("outlier_score"), col("id")], SortMultipleOptions::default().with_order_descending_multi([true, false])))
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("outliers", move |ds: &mut Dataset| -> Result<Dataset, Box<EvalAltResult>> { Ok(outliers(&c, ds, 10)?) });
    let c = ctx.clone();
    engine.register_fn("outliers", move |ds: &mut Dataset, k: i64| -> Result<Dataset, Box<EvalAltResult>> { Ok(outliers(&c, ds, k)?) });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }
}
