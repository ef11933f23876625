//! The REPL: reedline adapters (validator, highlighter, completer) over a [`Session`]. When stdin
//! is not a terminal, the same loop reads cells from stdin (a line continues while Rhai's parser
//! says the statement is unfinished), so sessions can be piped in and tested.

pub mod completer;
pub mod highlighter;
pub mod meta;

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use curate_stdlib::output::Output;
use curate_stdlib::progress::CancelFlag;
use reedline::{
    default_emacs_keybindings, ColumnarMenu, DefaultPrompt, DefaultPromptSegment, Emacs, FileBackedHistory, KeyCode, KeyModifiers, MenuBuilder, Reedline, ReedlineEvent, ReedlineMenu, Signal,
    ValidationResult, Validator,
};

use crate::diagnostic::render;
use crate::report::{CellRecord, Status};
use crate::run::{color, print_output};
use crate::session::{is_incomplete, Session};
use completer::{CurateCompleter, Names};
use meta::MetaOutcome;

pub struct Repl {
    pub session: Session,
    names: Arc<Mutex<Names>>,
    failures: usize,
    cells: usize,
    /// Where relative paths of `:save` and `:report` start (the `-C` folder).
    pub dir: PathBuf,
    /// Every code cell so far, with its outputs, for `:save` and `:report`.
    pub history: Vec<CellRecord>,
    /// Outputs of the running cell, filled by the session's sink.
    outputs: Arc<Mutex<Vec<Output>>>,
    /// Files this session wrote with `:save` (which it may overwrite without `--force`).
    pub saved: Vec<PathBuf>,
}

/// Lines ask for more input while the statement is unfinished.
struct RhaiValidator;

impl Validator for RhaiValidator {
    fn validate(&self, line: &str) -> ValidationResult {
        if !line.trim_start().starts_with(':') && is_incomplete(line) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Complete
        }
    }
}

enum Step {
    Continue,
    Quit,
}

impl Repl {
    pub fn new(dir: &Path, cancel: CancelFlag) -> Result<Self, curate_stdlib::CurateError> {
        let outputs: Arc<Mutex<Vec<Output>>> = Arc::default();
        let o = outputs.clone();
        let sink: curate_stdlib::primitives::Sink = Arc::new(move |out: Output| {
            print_output(&out);
            if let Ok(mut v) = o.lock() {
                v.push(out);
            }
        });
        let session = Session::new(dir, rhai::Map::new(), cancel, sink)?;
        let mut repl = Repl { session, names: Arc::default(), failures: 0, cells: 0, dir: dir.to_path_buf(), history: vec![], outputs, saved: vec![] };
        repl.refresh_names();
        Ok(repl)
    }

    fn refresh_names(&mut self) {
        let columns = self.session.schema().map(|c| c.into_iter().map(|(n, _)| n).collect()).unwrap_or_default();
        if let Ok(mut n) = self.names.lock() {
            n.variables = self.session.variable_names();
            n.columns = columns;
        }
    }

    /// Handle one complete cell: a meta-command or code.
    fn handle(&mut self, cell: &str) -> Step {
        let trimmed = cell.trim();
        if trimmed.is_empty() {
            return Step::Continue;
        }
        if trimmed.starts_with(':') {
            return match meta::dispatch(self, trimmed) {
                MetaOutcome::Text(t) => {
                    println!("{t}");
                    Step::Continue
                }
                MetaOutcome::Error(e) => {
                    self.failures += 1;
                    eprintln!("error: {e}");
                    Step::Continue
                }
                MetaOutcome::Quit => Step::Quit,
            };
        }
        self.cells += 1;
        let name = format!("repl#{}", self.cells);
        let mut record = CellRecord { line: 0, title: Some(name.clone()), source: cell.to_string(), outputs: vec![], error: None, status: Status::Ran };
        match self.session.eval_cell(&name, cell) {
            Ok(value) => match self.session.output_of(&value.value) {
                Ok(Some(out)) => (self.session.context().sink)(out),
                Ok(None) => {}
                Err(e) => {
                    self.failures += 1;
                    eprint!("{}", render(&e, color()));
                    record.error = Some(render(&e, false));
                }
            },
            Err(e) => {
                self.failures += 1;
                crate::run::print_script_error(&e);
                record.status = Status::Failed;
                record.error = Some(render(&e, false));
            }
        }
        record.outputs = self.outputs.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
        self.history.push(record);
        self.refresh_names();
        Step::Continue
    }

    /// The interactive loop on a terminal.
    fn interactive(&mut self) -> std::io::Result<()> {
        let mut keybindings = default_emacs_keybindings();
        keybindings.add_binding(KeyModifiers::NONE, KeyCode::Tab, ReedlineEvent::UntilFound(vec![ReedlineEvent::Menu("completion_menu".to_string()), ReedlineEvent::MenuNext]));
        let history_path = match self.session.workspace() {
            Some(ws) => ws.cache_dir().join("history"),
            None => self.session.root().join(".curate_history"),
        };
        if let Some(dir) = history_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let history = FileBackedHistory::with_file(10_000, history_path).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut editor = Reedline::create()
            .with_history(Box::new(history))
            .with_validator(Box::new(RhaiValidator))
            .with_highlighter(Box::new(highlighter::CurateHighlighter))
            .with_completer(Box::new(CurateCompleter { names: self.names.clone() }))
            .with_menu(ReedlineMenu::EngineCompleter(Box::new(ColumnarMenu::default().with_name("completion_menu"))))
            .with_edit_mode(Box::new(Emacs::new(keybindings)));
        let name = self.session.workspace().map(|w| w.config.name.clone()).unwrap_or_else(|| "curate".to_string());
        let prompt = DefaultPrompt::new(DefaultPromptSegment::Basic(name), DefaultPromptSegment::Empty);
        println!("curate {} — `:help` lists the primitives, Ctrl-D quits", env!("CARGO_PKG_VERSION"));
        loop {
            match editor.read_line(&prompt)? {
                Signal::Success(buffer) => {
                    if let Step::Quit = self.handle(&buffer) {
                        break;
                    }
                }
                Signal::CtrlC => continue,
                Signal::CtrlD => break,
                _ => continue,
            }
        }
        Ok(())
    }

    /// Read cells from a pipe: lines accumulate until they form a complete statement.
    fn piped(&mut self, input: impl BufRead) -> std::io::Result<()> {
        let mut buffer = String::new();
        for line in input.lines() {
            let line = line?;
            if buffer.is_empty() && line.trim_start().starts_with(':') {
                if let Step::Quit = self.handle(&line) {
                    return Ok(());
                }
                continue;
            }
            buffer.push_str(&line);
            buffer.push('\n');
            if !is_incomplete(&buffer) {
                let cell = std::mem::take(&mut buffer);
                if let Step::Quit = self.handle(&cell) {
                    return Ok(());
                }
            }
        }
        if !buffer.trim().is_empty() {
            let cell = std::mem::take(&mut buffer);
            self.handle(&cell);
        }
        Ok(())
    }
}

/// Run the REPL on the workspace at `dir`. Exit code 0, or 1 when a piped session had errors.
pub fn run(dir: &Path, cancel: CancelFlag, yes: bool) -> u8 {
    let mut repl = match Repl::new(dir, cancel) {
        Ok(r) => r,
        Err(e) => {
            eprint!("{}", render(&e, color()));
            return 2;
        }
    };
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    if interactive && !yes {
        // An edit of more than `confirm_over` samples asks first (reedline is not reading
        // while a cell runs, so a plain line read is safe).
        repl.session.set_confirm(Some(Arc::new(|question: &str| {
            eprint!("{question} [y/N] ");
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer).is_ok() && answer.trim().eq_ignore_ascii_case("y")
        })));
    }
    let result = if interactive { repl.interactive() } else { repl.piped(stdin.lock()) };
    if let Err(e) = result {
        eprintln!("error: {e}");
        return 2;
    }
    u8::from(repl.failures > 0)
}
