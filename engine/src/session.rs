//! A session: one sandboxed Rhai engine and a persistent scope, so that a `let` in one cell is
//! visible in the next, as in a notebook. Functions defined in a cell stay defined too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use curate_stdlib::output::Output;
use curate_stdlib::primitives::{Context, Sink};
use curate_stdlib::progress::{CancelFlag, Progress};
use curate_stdlib::{CurateError, Workspace};
use rhai::{Dynamic, Engine, Map, Scope, AST};

use crate::diagnostic::ScriptError;

pub struct Session {
    engine: Engine,
    scope: Scope<'static>,
    /// Functions defined by earlier cells.
    lib: AST,
    ctx: Arc<Context>,
}

/// What a finished cell gave: its final value (outputs from `print` and `show` went to the sink
/// as they happened).
pub struct CellValue {
    pub value: Dynamic,
}

impl Session {
    /// A session rooted at `dir`: the workspace containing it if there is one, else `dir` itself
    /// (so that `curate init` and `open("sub/ws")` still work).
    pub fn new(dir: &Path, params: Map, cancel: CancelFlag, sink: Sink) -> Result<Self, CurateError> {
        let progress = Arc::new(crate::progress_bar::Bar::new(cancel.clone()));
        Self::with_progress(dir, params, cancel, sink, progress)
    }

    /// A session whose long work reports to `progress` (the Jupyter kernel's shows in the cell).
    pub fn with_progress(dir: &Path, params: Map, cancel: CancelFlag, sink: Sink, progress: Arc<dyn Progress>) -> Result<Self, CurateError> {
        let workspace = match Workspace::discover(dir) {
            Ok(ws) => Some(Arc::new(ws)),
            Err(CurateError::NotAWorkspace { .. }) => None,
            Err(e) => return Err(e),
        };
        let root: PathBuf = match &workspace {
            Some(ws) => ws.root().to_path_buf(),
            None => dir.canonicalize().map_err(|e| CurateError::io(dir, e))?,
        };
        let limits = workspace.as_ref().map(|ws| ws.config.limits.clone()).unwrap_or_default();
        let mut scope = Scope::new();
        scope.push_constant("params", params.clone());
        let ctx = Arc::new(Context {
            root,
            workspace,
            params,
            cancel,
            sink,
            progress,
            registry: Default::default(),
            tests: Default::default(),
            source_name: Default::default(),
            confirm: Default::default(),
            confirm_over: 100,
        });
        let engine = curate_stdlib::sandbox::build_engine(&ctx, &limits);
        Ok(Session { engine, scope, lib: AST::empty(), ctx })
    }

    pub fn workspace(&self) -> Option<&Arc<Workspace>> {
        self.ctx.workspace.as_ref()
    }

    pub fn root(&self) -> &Path {
        &self.ctx.root
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The session workspace's samples.
    pub fn open_workspace(&self) -> Result<curate_stdlib::Dataset, CurateError> {
        let Some(ws) = &self.ctx.workspace else {
            return Err(CurateError::NotAWorkspace { path: self.ctx.root.clone() });
        };
        curate_stdlib::primitives::open::viewed(&self.ctx, ws.clone())
    }

    /// Ask before an edit touches many samples (the interactive REPL does; scripts do not).
    pub fn set_confirm(&self, confirm: Option<curate_stdlib::primitives::Confirm>) {
        if let Ok(mut c) = self.ctx.confirm.lock() {
            *c = confirm;
        }
    }

    /// Call a rule a script declared (a closure), with the session's functions in reach.
    pub fn call(&self, f: &rhai::FnPtr) -> Result<Dynamic, Box<rhai::EvalAltResult>> {
        f.call::<Dynamic>(&self.engine, &self.lib, ())
    }

    pub fn cancel_flag(&self) -> &CancelFlag {
        &self.ctx.cancel
    }

    /// Check a cell's syntax and define its functions, before any cell runs (see
    /// `run::run_cells`). Variables are not checked here: earlier cells define them.
    pub fn prepare(&mut self, name: &str, source: &str, script: &str) -> Result<(), ScriptError> {
        // The session's own engine (its disabled symbols and limits), without strict variables
        // for this parse only.
        self.engine.set_strict_variables(false);
        let parsed = self.engine.compile(source);
        self.engine.set_strict_variables(true);
        let ast = parsed.map_err(|e| ScriptError::from_parse(name, script, &e))?;
        self.lib.combine(ast.clone_functions_only());
        Ok(())
    }

    /// Report an undefined variable in `script` before any of it runs. Only that error counts
    /// here: other parse errors of the whole text come from cells that end in a bare value and
    /// are checked cell by cell.
    pub fn check_variables(&self, name: &str, script: &str) -> Result<(), ScriptError> {
        match self.engine.compile_with_scope(&self.scope, script) {
            Err(e) if matches!(*e.0, rhai::ParseErrorType::VariableUndefined(_)) => Err(ScriptError::from_parse(name, script, &e)),
            _ => Ok(()),
        }
    }

    /// Evaluate one cell. `name` labels the source in error reports (a file path, or "repl").
    pub fn eval_cell(&mut self, name: &str, source: &str) -> Result<CellValue, ScriptError> {
        self.eval_cell_of(name, source, source)
    }

    /// Evaluate one cell of a script: `source` is the cell padded to its place in the script
    /// (see `cells::Cell::positioned`), `script` the whole text that errors are shown in, since
    /// an error may lie in a function another cell defined.
    pub fn eval_cell_of(&mut self, name: &str, source: &str, script: &str) -> Result<CellValue, ScriptError> {
        self.ctx.cancel.reset();
        if let Ok(mut n) = self.ctx.source_name.lock() {
            *n = name.to_string();
        }
        let ast = self.engine.compile_with_scope(&self.scope, source).map_err(|e| ScriptError::from_parse(name, script, &e))?;
        self.lib.combine(ast.clone_functions_only());
        let run = self.lib.merge(&ast.clone_statements_only());
        let value = self.engine.eval_ast_with_scope::<Dynamic>(&mut self.scope, &run).map_err(|e| ScriptError::from_eval(name, script, &e))?;
        Ok(CellValue { value })
    }

    /// Whether `source` parses as far as it goes but needs more lines (an open brace, an
    /// unfinished expression): Rhai's `UnexpectedEOF`.
    pub fn is_incomplete(source: &str) -> bool {
        is_incomplete(source)
    }

    /// The variables in scope: name, type and a one-line preview.
    pub fn variables(&self) -> Vec<(String, String, String)> {
        self.scope
            .iter()
            .filter(|(name, _, _)| *name != "params")
            .map(|(name, _, value)| {
                let ty = self.engine.map_type_name(value.type_name()).to_string();
                let preview = preview(&value);
                (name.to_string(), ty, preview)
            })
            .collect()
    }

    /// The names a completer should offer for variables.
    pub fn variable_names(&self) -> Vec<String> {
        self.scope.iter().map(|(n, _, _)| n.to_string()).collect()
    }

    /// The manifest columns of the session's workspace, with their types.
    pub fn schema(&self) -> Result<Vec<(String, String)>, CurateError> {
        let Some(ws) = &self.ctx.workspace else {
            return Err(CurateError::NotAWorkspace { path: self.ctx.root.clone() });
        };
        let mut lf = ws.scan_manifest()?;
        let schema = lf.collect_schema()?;
        Ok(schema.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect())
    }

    /// The output a cell's final value gives, if any.
    pub fn output_of(&self, value: &Dynamic) -> Result<Option<Output>, CurateError> {
        Output::from_value(value)
    }
}

/// Whether `source` is a statement cut short: the parser ran out of input (an open brace or
/// bracket, a dangling operator), as opposed to a mistake inside the text.
pub fn is_incomplete(source: &str) -> bool {
    let engine = Engine::new_raw();
    match engine.compile(source) {
        Ok(_) => false,
        Err(e) if matches!(*e.0, rhai::ParseErrorType::UnexpectedEOF) => true,
        Err(e) => at_end(source, e.1),
    }
}

/// Whether a position lies at or past the last non-blank character of `source`.
fn at_end(source: &str, pos: rhai::Position) -> bool {
    let (Some(line), Some(col)) = (pos.line(), pos.position()) else { return false };
    let trimmed = source.trim_end();
    let last_line = trimmed.lines().count().max(1);
    let last_len = trimmed.lines().last().map(|l| l.chars().count()).unwrap_or(0);
    line > last_line || (line == last_line && col > last_len)
}

fn preview(value: &Dynamic) -> String {
    let text = curate_stdlib::output::display_value(value);
    let first = text.lines().next().unwrap_or_default();
    if let Some(ds) = value.read_lock::<curate_stdlib::Dataset>() {
        return match ds.len() {
            Ok(n) => format!("{n} samples, {} columns", ds.column_names().len()),
            Err(e) => e.to_string(),
        };
    }
    let mut s: String = first.chars().take(60).collect();
    if first.chars().count() > 60 || text.lines().count() > 1 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::is_incomplete;

    #[test]
    fn open_blocks_and_dangling_operators_ask_for_more() {
        assert!(is_incomplete("for c in [1, 2] {"));
        assert!(is_incomplete("let x = [1,\n 2,"));
        assert!(is_incomplete("fn f(x) {\n  x +"));
        assert!(is_incomplete("let s = ds.filter("));
        assert!(!is_incomplete("let x = 1;"));
        assert!(!is_incomplete("let x = 1 +* 2;"), "a mistake in the middle is an error, not more input");
        assert!(!is_incomplete("}"));
    }
}
