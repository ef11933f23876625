//! `param(name, default)`: a script parameter given with `curate run --param name=value`.

use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult};

use super::{Context, Example, Primitive};
use crate::error::CurateError;

pub const DOC: Primitive = Primitive {
    name: "param",
    signatures: &["param(name: string) -> any", "param(name: string, default: any) -> any"],
    summary: "A parameter passed with `--param name=value`, or the default when it was not \
              given. The value takes the default's type (int, float, bool or string). All \
              parameters are also in the `params` map.",
    options: &[],
    examples: &[Example { code: "param(\"min_width\", 96)", result: Some("96") }, Example { code: "param(\"split\", \"train\")", result: Some("train") }],
};

/// Convert a parameter's text to the default's type.
pub fn coerce(name: &str, raw: &Dynamic, default: &Dynamic) -> Result<Dynamic, CurateError> {
    let Ok(text) = raw.clone().into_string() else {
        return Ok(raw.clone());
    };
    let bad = |ty: &str| CurateError::arg("param", format!("--param {name}={text}: expected {ty}"));
    if default.is_int() {
        text.trim().parse::<i64>().map(Dynamic::from).map_err(|_| bad("an integer"))
    } else if default.is_float() {
        text.trim().parse::<f64>().map(Dynamic::from).map_err(|_| bad("a number"))
    } else if default.is_bool() {
        text.trim().parse::<bool>().map(Dynamic::from).map_err(|_| bad("true or false"))
    } else {
        Ok(Dynamic::from(text))
    }
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("param", move |name: &str, default: Dynamic| -> Result<Dynamic, Box<EvalAltResult>> {
        match c.params.get(name) {
            Some(raw) => Ok(coerce(name, raw, &default)?),
            None => Ok(default),
        }
    });
    let c = ctx.clone();
    engine.register_fn("param", move |name: &str| -> Result<Dynamic, Box<EvalAltResult>> {
        c.params.get(name).cloned().ok_or_else(|| CurateError::arg("param", format!("missing parameter `{name}`; pass --param {name}=VALUE")).into())
    });
}

#[cfg(test)]
mod tests {
    use rhai::Dynamic;

    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn values_take_the_default_type() {
        let v = super::coerce("k", &Dynamic::from("12"), &Dynamic::from(1_i64)).expect("int");
        assert_eq!(v.as_int(), Ok(12));
        let err = super::coerce("k", &Dynamic::from("x"), &Dynamic::from(1_i64)).expect_err("not int");
        assert!(err.to_string().contains("--param k=x: expected an integer"), "{err}");
        let v = super::coerce("k", &Dynamic::from("0.5"), &Dynamic::from(1.0_f64)).expect("float");
        assert_eq!(v.as_float(), Ok(0.5));
    }
}
