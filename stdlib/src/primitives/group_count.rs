//! `ds.group_count(col)`: how many samples have each value of a column.

use polars::prelude::*;
use rhai::{Engine, EvalAltResult};

use super::{Example, Primitive};
use crate::dataset::Dataset;
use crate::error::Result;

pub const DOC: Primitive = Primitive {
    name: "group_count",
    signatures: &["ds.group_count(col: string) -> Dataset"],
    summary: "The number of samples for each value of a column, most frequent first (ties by \
              value), as a dataset with columns `<col>` and `count`.",
    options: &[],
    examples: &[
        Example { code: "open().group_count(\"label\").col(\"count\")", result: Some("[1300, 100]") },
        Example { code: "open().group_count(\"split\").col(\"split\")", result: Some("[\"train\", \"test\"]") },
    ],
};

pub fn group_count(ds: &Dataset, column: &str) -> Result<LazyFrame> {
    ds.check_column(column)?;
    Ok(ds
        .lazy()
        .group_by([col(column)])
        .agg([len().alias("count")])
        .sort_by_exprs([col("count"), col(column)], SortMultipleOptions::default().with_order_descending_multi([true, false]).with_nulls_last(true)))
}

pub fn register(engine: &mut Engine) {
    engine.register_fn("group_count", |ds: &mut Dataset, column: &str| -> Result<Dataset, Box<EvalAltResult>> { Ok(ds.derive(group_count(ds, column)?)?) });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }
}
