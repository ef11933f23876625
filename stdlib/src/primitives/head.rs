//! `ds.head(n)`: the first `n` samples, shown as a table.

use polars::prelude::*;
use rhai::{Engine, EvalAltResult};

use super::{Example, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};

pub const DOC: Primitive = Primitive {
    name: "head",
    signatures: &["ds.head() -> Dataset", "ds.head(n: int) -> Dataset"],
    summary: "The first n samples (10 by default), in manifest order. A dataset displays as a \
              table with column types and the total row count.",
    options: &[],
    examples: &[Example { code: "open().head(3).len()", result: Some("3") }, Example { code: "open().head(2).ids()", result: Some("[\"cifar/test/airplane/0000\", \"cifar/test/airplane/0001\"]") }],
};

pub fn head(lf: LazyFrame, n: i64) -> Result<LazyFrame> {
    if n < 0 {
        return Err(CurateError::arg("head", format!("n must be at least 0, got {n}")));
    }
    Ok(lf.limit(n as IdxSize))
}

pub fn register(engine: &mut Engine) {
    engine.register_fn("head", |ds: &mut Dataset, n: i64| -> Result<Dataset, Box<EvalAltResult>> { Ok(ds.derive(head(ds.lazy(), n)?)?) });
    engine.register_fn("head", |ds: &mut Dataset| -> Result<Dataset, Box<EvalAltResult>> { Ok(ds.derive(head(ds.lazy(), crate::output::DISPLAY_ROWS as i64)?)?) });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn negative_n_is_an_error() {
        let err = crate::testing::eval_err("open().head(-1)");
        assert!(err.contains("n must be at least 0"), "{err}");
    }
}
