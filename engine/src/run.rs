//! `curate run SCRIPT`: run a script headlessly with the same engine and primitives as the REPL.
//! The script runs cell by cell (`// %%` markers, or its paragraphs: see [`crate::cells`]), each
//! cell's outputs streaming to stdout as they come; `--json` gives one JSON document instead, and
//! `--report FILE` also records every cell's source and outputs as HTML or Markdown.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use curate_stdlib::output::{dynamic_to_json, Output};
use curate_stdlib::progress::CancelFlag;
use rhai::{Dynamic, Map};

use crate::cells;
use crate::diagnostic::{render, ScriptError};
use crate::report::{CellRecord, Report, Status};
use crate::session::Session;

pub use crate::display::print_output;

pub struct RunOptions {
    /// A .rhai script, or a Jupyter notebook (.ipynb) whose code cells are the script's cells.
    pub script: PathBuf,
    /// Whether `-C` named the folder: without it a notebook runs on its own folder's workspace,
    /// as the Jupyter kernel does.
    pub explicit_dir: bool,
    pub params: Vec<(String, String)>,
    pub json: bool,
    pub report: Option<PathBuf>,
}

/// What running the cells gave: a record per cell, the last cell's value, the first error.
pub struct Outcome {
    pub records: Vec<CellRecord>,
    pub value: Dynamic,
    /// The output of the last cell's value: printed after the cells' streamed outputs, and
    /// the `result` of `--json` rather than one of its outputs.
    pub result: Option<Output>,
    pub error: Option<ScriptError>,
}

/// Run `source` as cells on `session`. `outputs` is the buffer the session's sink fills; it is
/// drained into each cell's record. Every cell is syntax-checked and its functions defined
/// before the first runs, so a typo at the end fails before anything has run, and a function
/// may be called above its definition, as in a whole script.
pub fn run_cells(session: &mut Session, name: &str, source: &str, outputs: &Arc<Mutex<Vec<Output>>>) -> Outcome {
    let cells = cells::split(source);
    let drain = || outputs.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
    let record = |c: &cells::Cell, status| CellRecord { line: c.line, title: c.title.clone(), source: c.source.clone(), outputs: vec![], error: None, status };
    let mut records: Vec<CellRecord> = cells.iter().map(|c| record(c, Status::NotRun)).collect();
    // A misspelt variable anywhere fails before anything runs, as in a whole-script run (when
    // the script parses whole; cells ending in a bare value do not, and are checked as they run).
    if let Err(e) = session.check_variables(name, source) {
        return failed(records, 0, e);
    }
    for (i, c) in cells.iter().enumerate() {
        if let Err(e) = session.prepare(name, &c.positioned(), source) {
            return failed(records, i, e);
        }
    }
    let mut value = Dynamic::UNIT;
    let mut result = None;
    let last = cells.iter().rposition(|c| c.has_code());
    for (i, c) in cells.iter().enumerate() {
        if !c.has_code() {
            records[i].status = Status::Ran;
            continue;
        }
        let is_last = Some(i) == last;
        let ran = session.eval_cell_of(name, &c.positioned(), source).and_then(|cell| {
            // The last cell's value is the script's result: the caller shows it (or puts it in
            // the JSON); another cell's shows now unless its code ends with `;`.
            let shown = if is_last || cells::shows_value(&c.source) { session.output_of(&cell.value) } else { Ok(None) };
            let shown = shown.map_err(|e| ScriptError::from_eval(name, source, &Box::<rhai::EvalAltResult>::from(e)))?;
            if is_last {
                value = cell.value;
                result = shown;
            } else if let Some(o) = shown {
                (session.context().sink)(o);
            }
            Ok(())
        });
        records[i].outputs = drain();
        match ran {
            Ok(()) => records[i].status = Status::Ran,
            Err(e) => return failed(records, i, e),
        }
        if let (true, Some(o)) = (is_last, &result) {
            records[i].outputs.push(o.clone());
        }
    }
    Outcome { records, value, result, error: None }
}

/// The outcome of a run that stopped at cell `i` with `e`.
fn failed(mut records: Vec<CellRecord>, i: usize, e: ScriptError) -> Outcome {
    if let Some(r) = records.get_mut(i) {
        r.status = Status::Failed;
        r.error = Some(render(&e, false));
    }
    Outcome { records, value: Dynamic::UNIT, result: None, error: Some(e) }
}

/// Run the script and return the process exit code.
pub fn run(dir: &Path, opts: &RunOptions, cancel: CancelFlag) -> u8 {
    let notebook = opts.script.extension().is_some_and(|e| e.eq_ignore_ascii_case("ipynb"));
    let mut dir = dir.to_path_buf();
    let (source, script) = if notebook {
        let script = match crate::notebook::read(&opts.script).and_then(|nb| nb.script().map_err(|message| curate_stdlib::CurateError::Io { path: opts.script.clone(), message })) {
            Ok(s) => s,
            Err(e) => return report_setup_error(opts.json, &e),
        };
        let folder = opts.script.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        match &script.workspace {
            Some(w) => dir = folder.join(w),
            None if !opts.explicit_dir => dir = folder.to_path_buf(),
            None => {}
        }
        (script.text.clone(), Some(script))
    } else {
        match std::fs::read_to_string(&opts.script) {
            Ok(s) => (s, None),
            Err(e) => {
                let err = curate_stdlib::CurateError::io(&opts.script, e);
                return report_setup_error(opts.json, &err);
            }
        }
    };
    let dir = dir.as_path();
    if let Some(r) = &opts.report {
        if let Err(e) = crate::report::Format::of(r) {
            return report_setup_error(opts.json, &e);
        }
    }
    let mut params = Map::new();
    for (k, v) in &opts.params {
        params.insert(k.as_str().into(), Dynamic::from(v.clone()));
    }
    let collected: Arc<Mutex<Vec<Output>>> = Arc::default();
    let c = collected.clone();
    let json = opts.json;
    let sink: curate_stdlib::primitives::Sink = Arc::new(move |o: Output| {
        if !json {
            print_output(&o);
        }
        if let Ok(mut v) = c.lock() {
            v.push(o)
        }
    });
    let mut session = match Session::new(dir, params, cancel, sink) {
        Ok(s) => s,
        Err(e) => return report_setup_error(opts.json, &e),
    };
    let name = opts.script.display().to_string();
    let started = std::time::Instant::now();
    let mut outcome = run_cells(&mut session, &name, &source, &collected);
    // A notebook's error is shown in its cell, with the cell's own line and column.
    if let (Some(script), Some(e)) = (&script, &outcome.error) {
        if let Some((first, index, code)) = e.line.and_then(|l| script.cell_at(l)) {
            let e = e.clone().relocated(&format!("{name}, cell {index}"), code, *first);
            // The record of the cell the error is in (a misspelt variable is found before any
            // cell runs, and was marked on the first).
            let rendered = render(&e, false);
            for r in outcome.records.iter_mut() {
                if r.status == Status::Failed {
                    r.status = Status::NotRun;
                    r.error = None;
                }
            }
            if let Some(r) = outcome.records.iter_mut().rev().find(|r| r.line <= *first) {
                r.status = Status::Failed;
                r.error = Some(rendered);
            }
            outcome.error = Some(e);
        }
    }
    let elapsed = started.elapsed();

    let mut code = match &outcome.error {
        Some(e) => e.exit_code(),
        None => 0,
    };
    if opts.json {
        let mut outputs: Vec<_> = outcome.records.iter().flat_map(|r| r.outputs.iter()).map(Output::to_json).collect();
        if outcome.result.is_some() {
            // The result is reported on its own, not among the outputs (it was pushed last).
            outputs.pop();
        }
        let doc = match &outcome.error {
            None => serde_json::json!({"ok": true, "outputs": outputs, "result": dynamic_to_json(&outcome.value)}),
            Some(e) => serde_json::json!({"ok": false, "outputs": outputs, "error": e.to_json()}),
        };
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        match &outcome.error {
            None => {
                if let Some(o) = &outcome.result {
                    print_output(o);
                }
            }
            Some(e) => print_script_error(e),
        }
    }
    if let Some(path) = &opts.report {
        let status = match &outcome.error {
            None => format!("{} cells ran in {:.1} s", outcome.records.len(), elapsed.as_secs_f64()),
            Some(e) => format!("stopped: {} (exit code {})", e.message, e.exit_code()),
        };
        let mut meta = vec![];
        if let Some(ws) = session.workspace() {
            meta.push(format!("workspace: {} ({})", ws.config.name, ws.root().display()));
        }
        if !opts.params.is_empty() {
            meta.push(format!("parameters: {}", opts.params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")));
        }
        meta.push(status);
        let report = Report { title: name.clone(), meta, cells: outcome.records };
        match report.write(path) {
            Ok(()) => {
                if !opts.json {
                    eprintln!("report: {}", path.display());
                }
            }
            Err(e) => {
                eprint!("{}", render(&e, color()));
                code = code.max(2);
            }
        }
    }
    code
}

pub fn print_script_error(e: &ScriptError) {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    eprint!("{}", render(e, color()));
}

fn report_setup_error(json: bool, err: &curate_stdlib::CurateError) -> u8 {
    if json {
        let doc = serde_json::json!({"ok": false, "outputs": [], "error": {
            "kind": "setup", "code": err.code_str(), "message": err.to_string(), "help": err.help_str(),
        }});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        eprint!("{}", render(err, color()));
    }
    2
}

/// Whether stderr gets colours.
pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
