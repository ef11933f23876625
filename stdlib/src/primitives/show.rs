//! `show(value)`: display a value now, as a table when it is a dataset.

use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult};

use super::{Context, Example, Primitive};
use crate::output::Output;

pub const DOC: Primitive = Primitive {
    name: "show",
    signatures: &["show(value)"],
    summary: "Display a value in the middle of a script: a dataset as a table (its first rows, \
              the column types and the row count), anything else as text. In `--json` mode the \
              table comes out as structured rows. A cell's last value is shown without it.",
    options: &[],
    examples: &[Example { code: "show(open().group_count(\"class\"))", result: None }],
};

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("show", move |value: Dynamic| -> Result<(), Box<EvalAltResult>> {
        if let Some(out) = Output::from_value(&value)? {
            (c.sink)(out);
        }
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn show_sends_a_table_to_the_sink() {
        let seen: Arc<Mutex<Vec<Output>>> = Arc::default();
        let s = seen.clone();
        let root = crate::testing::example_workspace().canonicalize().expect("examples/people");
        let ws = Arc::new(crate::Workspace::open(&root).expect("ws"));
        let mut ctx = Context::quiet(root, Some(ws));
        ctx.sink = Arc::new(move |o| s.lock().expect("lock").push(o));
        let engine = crate::sandbox::build_engine(&Arc::new(ctx), &Default::default());
        engine.run("show(open().head(3)); print(\"done\")").expect("runs");
        let seen = seen.lock().expect("lock");
        assert!(matches!(&seen[0], Output::Table(t) if t.head.height() == 3 && t.total_rows == 3));
        assert!(matches!(&seen[1], Output::Text(t) if t == "done"));
    }
}
