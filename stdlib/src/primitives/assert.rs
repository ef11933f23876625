//! `assert(condition, message)`: stop the script with a failed assertion (exit code 1).

use rhai::{Engine, EvalAltResult};

use super::{Example, Primitive};
use crate::error::CurateError;

pub const DOC: Primitive = Primitive {
    name: "assert",
    signatures: &["assert(condition: bool)", "assert(condition: bool, message: string)"],
    summary: "Stop the script when the condition is false. `curate run` then exits with code 1, \
              so a script can gate CI on the data (\"no test image also in train\").",
    options: &[],
    examples: &[Example { code: "assert(open().len() > 0, \"the manifest is empty\")", result: None }],
};

pub fn register(engine: &mut Engine) {
    engine.register_fn("assert", |ok: bool, message: &str| -> Result<(), Box<EvalAltResult>> {
        if ok {
            Ok(())
        } else {
            Err(CurateError::AssertionFailed { message: message.to_string() }.into())
        }
    });
    engine.register_fn("assert", |ok: bool| -> Result<(), Box<EvalAltResult>> {
        if ok {
            Ok(())
        } else {
            Err(CurateError::AssertionFailed { message: "condition is false".to_string() }.into())
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn a_false_assertion_fails_with_its_message() {
        let err = crate::testing::eval_err("assert(1 > 2, \"math broke\")");
        assert!(err.contains("assertion failed: math broke"), "{err}");
    }
}
