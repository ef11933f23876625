//! The shared harness that runs every primitive's examples against the bundled example
//! workspace (`examples/people`), as nushell's `test_examples` does.

use std::path::PathBuf;
use std::sync::Arc;

use rhai::Dynamic;

use crate::config::Limits;
use crate::primitives::{Context, Primitive};
use crate::workspace::Workspace;

/// The bundled example workspace.
pub fn example_workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/people")
}

fn engine(limits: &Limits) -> rhai::Engine {
    let root = example_workspace().canonicalize().expect("examples/people exists");
    let ws = Workspace::open(&root).expect("example workspace opens");
    let ctx = Arc::new(Context::quiet(root, Some(Arc::new(ws))));
    crate::sandbox::build_engine(&ctx, limits)
}

fn eval_with(code: &str, limits: &Limits) -> Result<Dynamic, String> {
    engine(limits).eval::<Dynamic>(code).map_err(|e| match crate::error::find_curate_error(&e) {
        Some(ce) => format!("{ce}\nhelp: {}", ce.help_str().unwrap_or_default()),
        None => e.to_string(),
    })
}

/// Evaluate `code` and display the result as the REPL would.
pub fn eval(code: &str) -> String {
    match eval_with(code, &Limits::default()) {
        Ok(v) => crate::output::display_value(&v),
        Err(e) => panic!("`{code}` failed: {e}"),
    }
}

/// Evaluate `code`, which must fail; the error and its help, as text.
pub fn eval_err(code: &str) -> String {
    eval_err_with(code, &Limits::default())
}

pub fn eval_err_with(code: &str, limits: &Limits) -> String {
    match eval_with(code, limits) {
        Ok(v) => panic!("`{code}` should fail but gave {}", crate::output::display_value(&v)),
        Err(e) => e,
    }
}

/// Run every example of `p`, checking the result where the example states one.
pub fn check_examples(p: &Primitive) {
    assert!(!p.examples.is_empty(), "{} has no examples", p.name);
    for ex in p.examples {
        assert!(ex.code.contains(p.name), "an example of {} does not use it: {}", p.name, ex.code);
        let got = eval(ex.code);
        if let Some(want) = ex.result {
            assert_eq!(got, want, "example of {}: {}", p.name, ex.code);
        }
    }
}
