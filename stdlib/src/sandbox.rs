//! The Rhai engine every front end uses: it starts bare (no file, module or `eval` access), gets
//! Rhai's standard value functions and our primitives, and has limits, so a runaway script ends
//! with a clear error instead of hanging or exhausting memory.

use std::sync::Arc;

use rhai::packages::{Package, StandardPackage};
use rhai::{Dynamic, Engine};

use crate::config::Limits;
use crate::output::Output;
use crate::primitives::{self, Context};

pub fn build_engine(ctx: &Arc<Context>, limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(StandardPackage::new().as_shared_module());
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_expr_depths(128, 64)
        // Typos in variable names and sample fields fail loudly instead of yielding ().
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true);
    engine.disable_symbol("eval");
    let cancel = ctx.cancel.clone();
    engine.on_progress(move |_| if cancel.is_set() { Some(Dynamic::from("interrupted")) } else { None });
    let sink = ctx.sink.clone();
    engine.on_print(move |s| sink(Output::Text(s.to_string())));
    let sink = ctx.sink.clone();
    engine.on_debug(move |s, _, pos| sink(Output::Text(format!("[{pos}] {s}"))));
    primitives::register_all(&mut engine, ctx);
    engine
}

#[cfg(test)]
mod tests {
    use crate::testing::eval_err_with;

    #[test]
    fn infinite_loops_end_with_a_clear_error() {
        let limits = crate::config::Limits { max_operations: 100_000, ..Default::default() };
        let err = eval_err_with("loop { }", &limits);
        assert!(err.contains("Too many operations"), "{err}");
    }

    #[test]
    fn runaway_recursion_and_strings_are_stopped() {
        let limits = crate::config::Limits::default();
        let err = eval_err_with("fn f(x) { f(x + 1) } f(0)", &limits);
        assert!(err.contains("Stack overflow") || err.contains("call stack"), "{err}");
        let limits = crate::config::Limits { max_string_size: 1000, ..Default::default() };
        let err = eval_err_with("let s = \"x\"; loop { s += s; }", &limits);
        assert!(err.contains("too large") || err.contains("Length of string"), "{err}");
    }

    #[test]
    fn no_eval_no_import() {
        let limits = crate::config::Limits::default();
        assert!(!eval_err_with("eval(\"1\")", &limits).is_empty());
        let err = eval_err_with("import \"foo\" as f;", &limits);
        assert!(err.contains("foo"), "{err}");
    }
}
