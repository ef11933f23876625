//! `curate run SCRIPT`: run a script headlessly with the same engine and primitives as the REPL.
//! Outputs stream to stdout as the script makes them; `--json` gives one JSON document instead.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use curate_stdlib::output::{dynamic_to_json, Output};
use curate_stdlib::progress::CancelFlag;
use rhai::{Dynamic, Map};

use crate::diagnostic::{render, ScriptError};
use crate::session::Session;

pub struct RunOptions {
    pub script: PathBuf,
    pub params: Vec<(String, String)>,
    pub json: bool,
}

/// Run the script and return the process exit code.
pub fn run(dir: &Path, opts: &RunOptions, cancel: CancelFlag) -> u8 {
    let source = match std::fs::read_to_string(&opts.script) {
        Ok(s) => s,
        Err(e) => {
            let err = curate_stdlib::CurateError::io(&opts.script, e);
            return report_setup_error(opts.json, &err);
        }
    };
    let mut params = Map::new();
    for (k, v) in &opts.params {
        params.insert(k.as_str().into(), Dynamic::from(v.clone()));
    }
    let collected: Arc<Mutex<Vec<Output>>> = Arc::default();
    let sink: curate_stdlib::primitives::Sink = if opts.json {
        let c = collected.clone();
        Arc::new(move |o| {
            if let Ok(mut v) = c.lock() {
                v.push(o)
            }
        })
    } else {
        Arc::new(|o: Output| print_output(&o))
    };
    let mut session = match Session::new(dir, params, cancel, sink) {
        Ok(s) => s,
        Err(e) => return report_setup_error(opts.json, &e),
    };
    let name = opts.script.display().to_string();
    let result = session.eval_cell(&name, &source);
    if opts.json {
        let outputs: Vec<_> = collected.lock().map(|v| v.iter().map(Output::to_json).collect()).unwrap_or_default();
        let (doc, code) = match &result {
            Ok(cell) => (
                serde_json::json!({"ok": true, "outputs": outputs, "result": dynamic_to_json(&cell.value)}),
                0,
            ),
            Err(e) => (serde_json::json!({"ok": false, "outputs": outputs, "error": e.to_json()}), e.exit_code()),
        };
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return code;
    }
    match result {
        Ok(cell) => {
            match session.output_of(&cell.value) {
                Ok(Some(out)) => print_output(&out),
                Ok(None) => {}
                Err(e) => {
                    eprint!("{}", render(&e, color()));
                    return 2;
                }
            }
            0
        }
        Err(e) => {
            print_script_error(&e);
            e.exit_code()
        }
    }
}

pub fn print_script_error(e: &ScriptError) {
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

/// Print an output to stdout. Tables fit themselves to the terminal when there is one.
pub fn print_output(o: &Output) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`curate run x | head`) is not an error worth reporting.
    let _ = writeln!(out, "{}", o.render_text(None));
}

/// Whether stderr gets colours.
pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
