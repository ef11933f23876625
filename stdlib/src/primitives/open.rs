//! `open(path)`: a workspace's samples as a dataset.

use std::sync::Arc;

use rhai::{Engine, EvalAltResult};

use super::{Context, Example, Opt, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::workspace::Workspace;

pub const DOC: Primitive = Primitive {
    name: "open",
    signatures: &["open() -> Dataset", "open(path: string) -> Dataset", "open(#{at: int | string}) -> Dataset", "open(path: string, #{at}) -> Dataset"],
    summary: "Open a workspace's samples (the manifest with the edit log replayed) as a dataset. \
              Without a path, the workspace the session runs in. Paths are relative to that \
              workspace and may not leave it. `at` opens an earlier state: the first N edits, a \
              checkpoint's name, or \"manifest\" for none.",
    options: &[Opt { name: "at", default: "the current view", help: "An earlier state: the first N edits of the log (an int), a checkpoint's name, or \"manifest\" for none." }],
    examples: &[Example { code: "open(\".\").len()", result: Some("1400") }, Example { code: "let ds = open(); ds.len()", result: Some("1400") }],
};

/// The keys of open's options map.
pub const KEYS: &[&str] = &["at"];

fn at_of(opts: &rhai::Map) -> Result<Option<crate::edits::At>> {
    for k in opts.keys() {
        if !KEYS.contains(&k.as_str()) {
            return Err(CurateError::UnknownOption { function: "open".into(), key: k.to_string(), valid: KEYS.iter().map(|k| k.to_string()).collect() });
        }
    }
    Ok(match opts.get("at") {
        None => None,
        Some(v) if v.is_int() => Some(crate::edits::At::Position(v.as_int().unwrap_or(0).max(0) as usize)),
        Some(v) => Some(crate::edits::At::parse(&v.clone().into_string().map_err(|t| CurateError::InvalidOption {
            function: "open".into(),
            key: "at".into(),
            message: format!("expected an edit count or a checkpoint name, found a {t}"),
        })?)),
    })
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("open", move |opts: rhai::Map| -> Result<Dataset, Box<EvalAltResult>> {
        let ws = c.workspace.clone().ok_or_else(|| CurateError::NotAWorkspace { path: c.root.clone() })?;
        let lf = ws.scan_at(at_of(&opts)?.as_ref())?;
        Ok(Dataset::new(ws, lf)?)
    });
    let c = ctx.clone();
    engine.register_fn("open", move |path: &str, opts: rhai::Map| -> Result<Dataset, Box<EvalAltResult>> {
        let dir = crate::workspace::resolve_inside(&c.root, path)?;
        let ws = match c.workspace.as_ref().filter(|ws| ws.root() == dir) {
            Some(ws) => ws.clone(),
            None => Arc::new(Workspace::open(&dir)?),
        };
        let lf = ws.scan_at(at_of(&opts)?.as_ref())?;
        Ok(Dataset::new(ws, lf)?)
    });
    let c = ctx.clone();
    engine.register_fn("open", move || -> Result<Dataset, Box<EvalAltResult>> {
        match &c.workspace {
            Some(ws) => Ok(viewed(&c, ws.clone())?),
            None => Err(CurateError::NotAWorkspace { path: c.root.clone() }.into()),
        }
    });
    let c = ctx.clone();
    engine.register_fn("open", move |path: &str| -> Result<Dataset, Box<EvalAltResult>> {
        let dir = crate::workspace::resolve_inside(&c.root, path)?;
        match c.workspace.as_ref().filter(|ws| ws.root() == dir) {
            Some(ws) => Ok(viewed(&c, ws.clone())?),
            None => Ok(viewed(&c, Arc::new(Workspace::open(&dir)?))?),
        }
    });
}

/// The current view of `ws` as a dataset, with a warning to the session's outputs if the
/// replayed view could not be saved: what `open()` and the CLI's commands open.
pub fn viewed(ctx: &Context, ws: Arc<Workspace>) -> Result<Dataset> {
    let lf = ws.open_view()?;
    if let Some(warning) = ws.take_warning() {
        (ctx.sink)(crate::output::Output::Text(warning));
    }
    Dataset::new(ws, lf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn open_outside_the_workspace_is_refused() {
        let err = crate::testing::eval_err("open(\"..\")");
        assert!(err.contains("outside the workspace"), "{err}");
    }
}
