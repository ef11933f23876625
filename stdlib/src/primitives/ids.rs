//! `ds.ids()`: the sample ids, in order.

use rhai::{Array, Engine, EvalAltResult};

use super::{Example, Primitive};
use crate::dataset::Dataset;

pub const DOC: Primitive = Primitive {
    name: "ids",
    signatures: &["ds.ids() -> array"],
    summary: "The ids of the samples, in order: the handle other primitives take (get, similar, relabel).",
    options: &[],
    examples: &[Example { code: "open().filter(\"class = 'face'\").ids()[0]", result: Some("lfw/face/000") }],
};

pub fn register(engine: &mut Engine) {
    engine.register_fn("ids", |ds: &mut Dataset| -> Result<Array, Box<EvalAltResult>> { Ok(super::col::column(ds, "id")?) });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }
}
