//! Meta-commands (`:help`, `:schema`, `:vars`, ...): one table of name, arguments, help and
//! function, as evcxr keeps them.

use std::fmt::Write;

use curate_stdlib::primitives::{self, Primitive};

use super::Repl;

pub struct MetaCommand {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
    pub run: fn(&mut Repl, &str) -> MetaOutcome,
}

pub enum MetaOutcome {
    Text(String),
    Error(String),
    Quit,
}

pub const COMMANDS: &[MetaCommand] = &[
    MetaCommand { name: ":help", args: "[NAME]", help: "list the primitives, or show one's signatures, doc and examples", run: help },
    MetaCommand { name: ":schema", args: "", help: "the manifest's columns and their types", run: schema },
    MetaCommand { name: ":vars", args: "", help: "the variables defined so far, with their types", run: vars },
    MetaCommand { name: ":save", args: "FILE [--force]", help: "save the cells that ran as a script, one `// %%` cell each", run: save },
    MetaCommand { name: ":report", args: "FILE [--force]", help: "write the session (sources, tables, charts, errors) as .html or .md", run: report },
    MetaCommand { name: ":quit", args: "", help: "leave the REPL (Ctrl-D does too)", run: quit },
];

pub fn find(name: &str) -> Option<&'static MetaCommand> {
    let name = if name == ":q" || name == ":exit" { ":quit" } else { name };
    COMMANDS.iter().find(|c| c.name == name)
}

/// Run a `:command args` line.
pub fn dispatch(repl: &mut Repl, line: &str) -> MetaOutcome {
    let (name, args) = line.trim().split_once(char::is_whitespace).unwrap_or((line.trim(), ""));
    match find(name) {
        Some(cmd) => (cmd.run)(repl, args.trim()),
        None => {
            let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
            MetaOutcome::Error(format!("unknown command `{name}`; commands: {}", names.join(" ")))
        }
    }
}

fn quit(_: &mut Repl, _: &str) -> MetaOutcome {
    MetaOutcome::Quit
}

fn help(_: &mut Repl, args: &str) -> MetaOutcome {
    match help_text(args) {
        Ok(t) => MetaOutcome::Text(t),
        Err(e) => MetaOutcome::Error(e),
    }
}

/// `:help [NAME]`: the overview, or one primitive's (or command's) help; the REPL and the
/// Jupyter kernel both answer it.
pub fn help_text(args: &str) -> Result<String, String> {
    let args = args.trim();
    if args.is_empty() {
        return Ok(overview());
    }
    let name = args.trim_start_matches(':');
    if let Some(p) = primitives::find(name) {
        return Ok(primitive_help(p));
    }
    if let Some(c) = find(&format!(":{name}")) {
        return Ok(format!("{} {}\n  {}", c.name, c.args, c.help));
    }
    let names: Vec<String> = primitives::ALL.iter().map(|p| p.name.to_string()).collect();
    let hint = match curate_stdlib::error::closest(name, &names) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => "; `:help` lists them".to_string(),
    };
    Err(format!("no primitive called `{name}`{hint}"))
}

pub fn overview() -> String {
    let mut s = String::from("Primitives (`:help NAME` for details):\n");
    let width = primitives::ALL.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in primitives::ALL {
        let first = p.summary.split(". ").next().unwrap_or(p.summary).trim_end_matches('.');
        let _ = writeln!(s, "  {:width$}  {first}", p.name);
    }
    s.push_str("\nCommands:\n");
    for c in COMMANDS {
        let _ = writeln!(s, "  {:18} {}", format!("{} {}", c.name, c.args), c.help);
    }
    s.trim_end().to_string()
}

pub fn primitive_help(p: &Primitive) -> String {
    let mut s = String::new();
    for sig in p.signatures {
        let _ = writeln!(s, "{sig}");
    }
    let _ = writeln!(s, "\n{}\n\nExamples:", p.summary);
    for ex in p.examples {
        let _ = writeln!(s, "  {}", ex.code);
        if let Some(r) = ex.result {
            let _ = writeln!(s, "  // => {r}");
        }
    }
    s.trim_end().to_string()
}

fn schema(repl: &mut Repl, _: &str) -> MetaOutcome {
    match repl.session.schema() {
        Ok(cols) => {
            let width = cols.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            let lines: Vec<String> = cols.iter().map(|(n, t)| format!("  {n:width$}  {t}")).collect();
            MetaOutcome::Text(format!("manifest columns:\n{}", lines.join("\n")))
        }
        Err(e) => MetaOutcome::Error(e.to_string()),
    }
}

fn vars(repl: &mut Repl, _: &str) -> MetaOutcome {
    let vars = repl.session.variables();
    if vars.is_empty() {
        return MetaOutcome::Text("no variables yet; define one with `let ds = open();`".to_string());
    }
    let w0 = vars.iter().map(|v| v.0.len()).max().unwrap_or(0);
    let w1 = vars.iter().map(|v| v.1.len()).max().unwrap_or(0);
    let lines: Vec<String> = vars.iter().map(|(n, t, p)| format!("  {n:w0$}  {t:w1$}  {p}")).collect();
    MetaOutcome::Text(lines.join("\n"))
}

/// The file a `:save`/`:report` line names (relative to the `-C` folder). An existing file is
/// replaced only with `--force` or when this session wrote it.
fn target(repl: &Repl, command: &str, args: &str, usage: &str) -> Result<std::path::PathBuf, String> {
    let mut force = false;
    let mut file = None;
    for a in args.split_whitespace() {
        match a {
            "--force" | "-f" => force = true,
            f if file.is_none() => file = Some(f),
            _ => return Err(format!("usage: {command} {usage}")),
        }
    }
    let Some(file) = file else { return Err(format!("usage: {command} {usage}")) };
    let path = std::path::Path::new(file);
    let path = if path.is_absolute() { path.to_path_buf() } else { repl.dir.join(path) };
    if path.exists() && !force && !repl.saved.contains(&path) {
        return Err(format!("{} exists; `{command} {} --force` replaces it", path.display(), args.trim()));
    }
    Ok(path)
}

/// The session's successful cells as a script: `curate run FILE` replays it, cell by cell.
pub fn session_script(repl: &Repl) -> String {
    let ws = repl.session.workspace().map(|w| format!(" on workspace `{}`", w.config.name)).unwrap_or_default();
    let mut s = format!("// Saved from a curate REPL session{ws}. Cells that failed are left out.\n// Run: curate run FILE [--report FILE.html]\n");
    for c in repl.history.iter().filter(|c| c.status == crate::report::Status::Ran) {
        let _ = write!(s, "\n// %% {}\n{}\n", c.title.as_deref().unwrap_or(""), c.source.trim_end());
    }
    s
}

fn save(repl: &mut Repl, args: &str) -> MetaOutcome {
    let path = match target(repl, ":save", args, "FILE [--force]") {
        Ok(p) => p,
        Err(e) => return MetaOutcome::Error(e),
    };
    let ran = repl.history.iter().filter(|c| c.status == crate::report::Status::Ran).count();
    match curate_stdlib::atomic::write_bytes_atomic(&path, session_script(repl).as_bytes()) {
        Ok(()) => {
            repl.saved.push(path.clone());
            MetaOutcome::Text(format!("saved {ran} cells to {}", path.display()))
        }
        Err(e) => MetaOutcome::Error(e.to_string()),
    }
}

fn report(repl: &mut Repl, args: &str) -> MetaOutcome {
    let path = match target(repl, ":report", args, "FILE.html|FILE.md [--force]") {
        Ok(p) => p,
        Err(e) => return MetaOutcome::Error(e),
    };
    let mut meta = vec![];
    if let Some(ws) = repl.session.workspace() {
        meta.push(format!("workspace: {} ({})", ws.config.name, ws.root().display()));
    }
    let failed = repl.history.iter().filter(|c| c.status == crate::report::Status::Failed).count();
    meta.push(format!("{} cells, {failed} failed", repl.history.len()));
    let report = crate::report::Report { title: "curate REPL session".to_string(), meta, cells: repl.history.clone() };
    match report.write(&path) {
        Ok(()) => {
            repl.saved.push(path.clone());
            MetaOutcome::Text(format!("wrote {} cells to {}", repl.history.len(), path.display()))
        }
        Err(e) => MetaOutcome::Error(e.to_string()),
    }
}
