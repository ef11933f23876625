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
    let (cols, _) = viuer::terminal_size();
    match help_text_at(args, help_width(cols as usize)) {
        Ok(t) => MetaOutcome::Text(t),
        Err(e) => MetaOutcome::Error(e),
    }
}

/// The width help text is wrapped to where there is no terminal (the Jupyter kernel).
pub const DEFAULT_WIDTH: usize = 80;

/// The width to wrap help to on a terminal `columns` wide: the terminal's, but no wider than
/// 100 columns (lines stay readable, as clap's `--help` does) and no narrower than 40.
pub fn help_width(columns: usize) -> usize {
    columns.clamp(40, 100)
}

/// `:help [NAME]` at [`DEFAULT_WIDTH`]; the Jupyter kernel answers it.
pub fn help_text(args: &str) -> Result<String, String> {
    help_text_at(args, DEFAULT_WIDTH)
}

/// `:help [NAME]`: the overview, or one primitive's (or command's) help, wrapped to `width`.
pub fn help_text_at(args: &str, width: usize) -> Result<String, String> {
    let args = args.trim();
    if args.is_empty() {
        return Ok(overview_at(width));
    }
    let name = args.trim_start_matches(':');
    if let Some(p) = primitives::find(name) {
        return Ok(primitive_help_at(p, width));
    }
    if let Some(c) = find(&format!(":{name}")) {
        return Ok(format!("{} {}\n{}", c.name, c.args, wrap(c.help, width, "  ", "  ")));
    }
    let names: Vec<String> = primitives::ALL.iter().map(|p| p.name.to_string()).collect();
    let hint = match curate_stdlib::error::closest(name, &names) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => "; `:help` lists them".to_string(),
    };
    Err(format!("no primitive called `{name}`{hint}"))
}

pub fn overview() -> String {
    overview_at(DEFAULT_WIDTH)
}

pub fn overview_at(width: usize) -> String {
    let mut s = String::from("Primitives (`:help NAME` for details):\n");
    let w = primitives::ALL.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let indent = " ".repeat(w + 4);
    for p in primitives::ALL {
        let first = primitives::reference::first_sentence(p.summary);
        let _ = writeln!(s, "{}", wrap(first, width, &format!("  {:w$}  ", p.name), &indent));
    }
    s.push_str("\nCommands:\n");
    let indent = " ".repeat(21);
    for c in COMMANDS {
        let _ = writeln!(s, "{}", wrap(c.help, width, &format!("  {:18} ", format!("{} {}", c.name, c.args)), &indent));
    }
    s.trim_end().to_string()
}

/// One primitive's help at [`DEFAULT_WIDTH`].
pub fn primitive_help(p: &Primitive) -> String {
    primitive_help_at(p, DEFAULT_WIDTH)
}

/// One primitive's help as a `--help` page: its signatures, its summary wrapped at word
/// boundaries to `width`, its options one per line with their defaults, and its examples.
/// Code (signatures, examples) is never wrapped, so it can be copied.
pub fn primitive_help_at(p: &Primitive, width: usize) -> String {
    let mut s = String::from("Usage:\n");
    for sig in p.signatures {
        let _ = writeln!(s, "  {sig}");
    }
    let _ = writeln!(s, "\n{}", wrap(p.summary, width, "", ""));
    if !p.options.is_empty() {
        s.push_str("\nOptions:\n");
        let name_width = p.options.iter().map(|o| o.name.len()).max().unwrap_or(0);
        // Help beside the names when there is room for it, else under each name.
        let beside = width >= name_width + 4 + 30;
        for o in p.options {
            let text = format!("{} [default: {}]", o.help, o.default);
            if beside {
                let indent = " ".repeat(name_width + 4);
                let _ = writeln!(s, "{}", wrap(&text, width, &format!("  {:name_width$}  ", o.name), &indent));
            } else {
                let _ = writeln!(s, "  {}\n{}", o.name, wrap(&text, width, "      ", "      "));
            }
        }
    }
    s.push_str(if p.examples.len() == 1 { "\nExample:\n" } else { "\nExamples:\n" });
    for ex in p.examples {
        let _ = writeln!(s, "  {}", ex.code);
        if let Some(r) = ex.result {
            let _ = writeln!(s, "  // => {r}");
        }
    }
    s.trim_end().to_string()
}

/// `text` wrapped at word boundaries so that no line is wider than `width` (a word longer than
/// a line gets a line of its own, unbroken). The first line starts with `first`, the others
/// with `rest`.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::from(first);
    let mut line_len = first.chars().count();
    let mut at_start = true;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if !at_start && line_len + 1 + len > width {
            out.push('\n');
            out.push_str(rest);
            line_len = rest.chars().count();
            at_start = true;
        }
        if !at_start {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
        at_start = false;
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_words_within_the_width() {
        let text = "the sample's presence adds to the test margin: negative is harmful";
        let wrapped = wrap(text, 20, "> ", "  ");
        assert_eq!(wrapped, "> the sample's\n  presence adds to\n  the test margin:\n  negative is\n  harmful");
        for line in wrapped.lines() {
            assert!(line.chars().count() <= 20, "{line:?}");
        }
        assert_eq!(wrap(&text.replace(' ', "\n  "), 20, "> ", "  "), wrapped, "wrapping ignores the source's line breaks");
        assert_eq!(wrap("a verylongwordthatdoesnotfit b", 10, "", ""), "a\nverylongwordthatdoesnotfit\nb");
    }

    #[test]
    fn influence_help_is_a_help_page() {
        let p = primitives::find("influence").expect("influence is documented");
        let text = primitive_help_at(p, 80);
        insta::assert_snapshot!(text);
        // Prose lines fit; only code (signatures, examples) may be wider.
        let code: Vec<String> = p.signatures.iter().chain(p.examples.iter().map(|e| &e.code)).map(|c| format!("  {c}")).collect();
        for line in text.lines().filter(|l| !code.iter().any(|c| c == l)) {
            assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
        }
        for o in p.options {
            assert!(text.lines().any(|l| l.starts_with(&format!("  {} ", o.name))), "option {} is not on a line of its own", o.name);
        }
    }

    #[test]
    fn help_finds_every_documented_function() {
        for p in primitives::ALL {
            let text = help_text_at(p.name, 60).unwrap_or_else(|e| panic!(":help {}: {e}", p.name));
            assert!(text.contains(p.signatures[0]), ":help {} lacks its signature", p.name);
        }
        let tag = help_text("tag").expect(":help tag");
        assert!(tag.contains("ds.tag(ids, tag: string) -> Dataset"), "{tag}");
        assert!(help_text("tga").unwrap_err().contains("did you mean `tag`"));
    }

    #[test]
    fn narrow_terminals_put_option_help_under_the_name() {
        let p = primitives::find("sample").expect("sample is documented");
        let text = primitive_help_at(p, 40);
        assert!(text.contains("\n  replace\n      Draw with replacement"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with("  ds.") && !l.starts_with("  open()") && !l.starts_with("  // =>")) {
            assert!(line.chars().count() <= 40, "wider than 40: {line:?}");
        }
    }
}
