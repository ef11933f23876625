//! `ds.col(name)`: one column's values as an array.

use rhai::{Array, Engine, EvalAltResult};

use super::{Example, Primitive};
use crate::dataset::Dataset;
use crate::error::Result;

pub const DOC: Primitive = Primitive {
    name: "col",
    signatures: &["ds.col(name: string) -> array"],
    summary: "The values of one column, in order, as an array (null becomes ()). Reads only that column.",
    options: &[],
    examples: &[
        Example { code: "open().head(2).col(\"class\")", result: Some("[\"airplane\", \"airplane\"]") },
        Example { code: "open().filter(\"source = 'lfw'\").col(\"width\").len()", result: Some("200") },
    ],
};

pub fn column(ds: &Dataset, name: &str) -> Result<Array> {
    ds.check_column(name)?;
    let df = ds.lazy().select([polars::prelude::col(name)]).collect()?;
    Ok(crate::value::series_to_array(df.column(name)?.as_materialized_series()))
}

pub fn register(engine: &mut Engine) {
    engine.register_fn("col", |ds: &mut Dataset, name: &str| -> Result<Array, Box<EvalAltResult>> { Ok(column(ds, name)?) });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn unknown_column_lists_the_columns() {
        let err = crate::testing::eval_err("open().col(\"nope\")");
        assert!(err.contains("available columns: id, path, label"), "{err}");
    }
}
