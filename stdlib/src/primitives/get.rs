//! `ds.get(id)`: one sample, as a map of its columns.

use polars::prelude::*;
use rhai::{Engine, EvalAltResult, Map};

use super::{Example, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};

pub const DOC: Primitive = Primitive {
    name: "get",
    signatures: &["ds.get(id: string) -> map"],
    summary: "One sample by id, as a map of its columns (`s.label`, `s.width`, ...).",
    options: &[],
    examples: &[
        Example { code: "open().get(\"lfw/face/007\").label", result: Some("person") },
        Example { code: "let s = open().get(\"cifar/train/cat/0003\"); s.width * s.height", result: Some("1024") },
    ],
};

pub fn get(ds: &Dataset, id: &str) -> Result<Map> {
    let df = ds.lazy().filter(col("id").eq(lit(id))).limit(1).collect()?;
    if df.height() == 0 {
        return Err(CurateError::UnknownId { id: id.to_string() });
    }
    Ok(crate::value::row_to_map(&df, 0)?)
}

pub fn register(engine: &mut Engine) {
    engine.register_fn("get", |ds: &mut Dataset, id: &str| -> Result<Map, Box<EvalAltResult>> { Ok(get(ds, id)?) });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn unknown_id_is_named() {
        let err = crate::testing::eval_err("open().get(\"nope\")");
        assert!(err.contains("no sample with id `nope`"), "{err}");
    }
}
