//! `ds.len()`: the number of samples.

use rhai::{Engine, EvalAltResult};

use super::{Example, Primitive};
use crate::dataset::Dataset;

pub const DOC: Primitive = Primitive {
    name: "len",
    signatures: &["ds.len() -> int"],
    summary: "The number of samples in the dataset. Counts without reading any column.",
    options: &[],
    examples: &[Example { code: "open().filter(\"label = 'person'\").len()", result: Some("100") }],
};

pub fn register(engine: &mut Engine) {
    engine.register_fn("len", |ds: &mut Dataset| -> Result<i64, Box<EvalAltResult>> { Ok(ds.len()? as i64) });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }
}
