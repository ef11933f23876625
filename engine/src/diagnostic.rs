//! Script errors as diagnostics: the file, line and column, the offending line with a caret, a
//! stable code and a hint. Rhai positions (line, column) become byte spans in the source, as
//! evcxr does.

use curate_stdlib::error::{closest, find_curate_error};
use curate_stdlib::CurateError;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use rhai::{EvalAltResult, ParseError, ParseErrorType, Position};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Syntax,
    Runtime,
    Assertion,
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct ScriptError {
    pub kind: ErrorKind,
    pub message: String,
    pub code: String,
    pub help: Option<String>,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// A note on where the error passed through (`in call to function 'f'`).
    pub context: Vec<String>,
    source: NamedSource<String>,
    span: Option<SourceSpan>,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScriptError {}

impl Diagnostic for ScriptError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(&self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        let mut parts: Vec<String> = self.context.clone();
        if let Some(h) = &self.help {
            parts.push(h.clone());
        }
        if parts.is_empty() {
            None
        } else {
            Some(Box::new(parts.join("\n")))
        }
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.span.map(|_| &self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        let label = match self.kind {
            ErrorKind::Syntax => "here",
            ErrorKind::Assertion => "this assertion failed",
            _ => "this failed",
        };
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(Some(label.to_string()), span))))
    }
}

impl ScriptError {
    pub fn from_parse(file: &str, source: &str, err: &ParseError) -> Self {
        let message = format!("syntax error: {}", err.0);
        let help = match &*err.0 {
            ParseErrorType::UnexpectedEOF => Some("the script ends in the middle of a statement; is a brace or bracket unclosed?".to_string()),
            ParseErrorType::VariableUndefined(name) => Some(format!("`{name}` is not defined; declare it with `let {name} = ...`")),
            _ => None,
        };
        let code = match &*err.0 {
            ParseErrorType::VariableUndefined(_) => "curate::script::unknown_variable",
            _ => "curate::script::syntax",
        };
        Self::at(ErrorKind::Syntax, file, source, err.1, message, code.to_string(), help)
    }

    pub fn from_eval(file: &str, source: &str, err: &EvalAltResult) -> Self {
        let mut context = Vec::new();
        let (inner, pos) = innermost(err, &mut context);
        if let Some(ce) = find_curate_error(inner) {
            let kind = match ce {
                CurateError::AssertionFailed { .. } => ErrorKind::Assertion,
                CurateError::Interrupted => ErrorKind::Interrupted,
                _ => ErrorKind::Runtime,
            };
            let mut e = Self::at(kind, file, source, pos, ce.to_string(), ce.code_str(), ce.help_str());
            e.context = context;
            return e;
        }
        let bare = without_position(inner);
        let (kind, code, help) = match inner {
            EvalAltResult::ErrorTooManyOperations(_) => {
                (ErrorKind::Runtime, "curate::script::limit", Some("the script ran too many operations (an endless loop?); raise [limits] max_operations in curate.toml if it is meant to".to_string()))
            }
            EvalAltResult::ErrorStackOverflow(_) => {
                (ErrorKind::Runtime, "curate::script::limit", Some("calls nest too deep (endless recursion?); raise [limits] max_call_levels in curate.toml if it is meant to".to_string()))
            }
            EvalAltResult::ErrorDataTooLarge(..) => {
                (ErrorKind::Runtime, "curate::script::limit", Some("a value grew past a limit; filter the dataset before turning it into an array, or raise [limits] in curate.toml".to_string()))
            }
            EvalAltResult::ErrorTerminated(..) => (ErrorKind::Interrupted, "curate::interrupted", None),
            EvalAltResult::ErrorFunctionNotFound(sig, _) => {
                let name = sig.split([' ', '(']).next().unwrap_or_default().to_string();
                let names: Vec<String> = curate_stdlib::primitives::ALL.iter().map(|p| p.name.to_string()).collect();
                let help = match closest(&name, &names) {
                    Some(s) if s != name => Some(format!("did you mean `{s}`? `:help {s}` shows its signatures")),
                    Some(s) => Some(format!("`{s}` takes other arguments; `:help {s}` shows its signatures")),
                    None => Some("`:help` lists the primitives".to_string()),
                };
                (ErrorKind::Runtime, "curate::script::unknown_function", help)
            }
            EvalAltResult::ErrorPropertyNotFound(..) => (
                ErrorKind::Runtime,
                "curate::script::unknown_property",
                Some("the map has no such key (a sample has one key per manifest column: `:schema` lists them); `m.get(key) ?? default` reads an optional key".to_string()),
            ),
            EvalAltResult::ErrorVariableNotFound(..) => (ErrorKind::Runtime, "curate::script::unknown_variable", None),
            EvalAltResult::ErrorMismatchDataType(..) | EvalAltResult::ErrorMismatchOutputType(..) => (ErrorKind::Runtime, "curate::script::type_mismatch", None),
            _ => (ErrorKind::Runtime, "curate::script::runtime", None),
        };
        let message = match inner {
            EvalAltResult::ErrorTerminated(..) => "interrupted".to_string(),
            _ => lowercase_first(&bare),
        };
        let mut e = Self::at(kind, file, source, pos, message, code.to_string(), help);
        e.context = context;
        e
    }

    fn at(kind: ErrorKind, file: &str, source: &str, pos: Position, message: String, code: String, help: Option<String>) -> Self {
        let (line, column) = (pos.line(), pos.position());
        let span = line.and_then(|l| span_at(source, l, column.unwrap_or(1)));
        ScriptError { kind, message, code, help, file: file.to_string(), line, column, context: Vec::new(), source: NamedSource::new(file, source.to_string()), span }
    }

    /// Exit code for `curate run`: 1 for a failed assertion, 2 for any other error, 130 when
    /// interrupted.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::Assertion => 1,
            ErrorKind::Interrupted => 130,
            _ => 2,
        }
    }

    /// The same error shown within one part of the text it was found in (a notebook's cell):
    /// `source` is that part, which starts at line `first_line` of the whole, and `file` names it.
    pub fn relocated(mut self, file: &str, source: &str, first_line: usize) -> Self {
        self.line = self.line.map(|l| (l + 1).saturating_sub(first_line).max(1));
        self.span = self.line.and_then(|l| span_at(source, l, self.column.unwrap_or(1)));
        self.file = file.to_string();
        self.source = NamedSource::new(file, source.to_string());
        self
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": format!("{:?}", self.kind).to_lowercase(),
            "code": self.code,
            "message": self.message,
            "help": self.help,
            "file": self.file,
            "line": self.line,
            "column": self.column,
        })
    }
}

/// The innermost error and its position: a native function's error has the call site, a script
/// function's error the line inside the function. `context` collects the call chain.
fn innermost<'a>(err: &'a EvalAltResult, context: &mut Vec<String>) -> (&'a EvalAltResult, Position) {
    match err {
        EvalAltResult::ErrorInFunctionCall(name, _, inner, pos) => {
            let (e, p) = innermost(inner, context);
            let what = if name.starts_with("anon$") { "in a closure called".to_string() } else { format!("in call to function '{name}'") };
            context.push(match pos.line() {
                Some(l) => format!("{what} at line {l}"),
                None => what,
            });
            (e, if p.is_none() { *pos } else { p })
        }
        EvalAltResult::ErrorInModule(_, inner, pos) => {
            let (e, p) = innermost(inner, context);
            (e, if p.is_none() { *pos } else { p })
        }
        other => (other, other.position()),
    }
}

/// Rhai's message without the ` (line 2, position 4)` it appends: we show the position ourselves.
fn without_position(err: &EvalAltResult) -> String {
    let text = err.to_string();
    let pos = err.position();
    if pos.is_none() {
        return text;
    }
    let suffix = format!(" ({pos})");
    text.strip_suffix(&suffix).map(str::to_string).unwrap_or(text)
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The byte span of the token at (line, column), both 1-based, columns counted in characters.
fn span_at(source: &str, line: usize, column: usize) -> Option<SourceSpan> {
    let mut offset = 0;
    for (i, text) in source.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col_byte = text.char_indices().nth(column.saturating_sub(1)).map(|(b, _)| b).unwrap_or(text.trim_end().len());
            let rest = &text[col_byte..];
            let len = token_len(rest);
            return Some(SourceSpan::new((offset + col_byte).into(), len));
        }
        offset += text.len();
    }
    // Past the end (an unexpected end of input): point at the last character.
    let end = source.trim_end().len();
    Some(SourceSpan::new(end.saturating_sub(1).into(), usize::from(end > 0)))
}

fn token_len(rest: &str) -> usize {
    let mut chars = rest.char_indices();
    match chars.next() {
        None => 0,
        Some((_, q @ ('"' | '\'' | '`'))) => chars.find(|(_, c)| *c == q).map(|(i, c)| i + c.len_utf8()).unwrap_or(rest.trim_end().len()),
        Some((_, c)) if c.is_alphanumeric() || c == '_' => rest.char_indices().find(|(_, c)| !(c.is_alphanumeric() || *c == '_')).map(|(i, _)| i).unwrap_or(rest.len()),
        Some((_, c)) => c.len_utf8(),
    }
}

/// Render a diagnostic as text, the way the CLI prints it.
pub fn render(diag: &dyn Diagnostic, color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    let mut out = String::new();
    if handler.render_report(&mut out, diag).is_err() {
        return diag.to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_token() {
        let src = "let a = 1;\nopen().filter(\"x = 1\")\n";
        let s = span_at(src, 2, 8).expect("span");
        assert_eq!(&src[s.offset()..s.offset() + s.len()], "filter");
        let s = span_at(src, 2, 15).expect("span");
        assert_eq!(&src[s.offset()..s.offset() + s.len()], "\"x = 1\"");
    }
}
