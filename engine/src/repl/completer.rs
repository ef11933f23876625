//! Tab completion: primitive names, variables and meta-commands in code, and manifest column
//! names inside a string literal (where SQL predicates go).

use std::sync::{Arc, Mutex};

use reedline::{Completer, CompletionResult, Span, Suggestion};

/// The names the completer offers; the REPL refreshes them after every cell.
#[derive(Default, Clone)]
pub struct Names {
    pub variables: Vec<String>,
    pub columns: Vec<String>,
}

pub struct CurateCompleter {
    pub names: Arc<Mutex<Names>>,
}

impl Completer for CurateCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let suggestions: Vec<Suggestion> = candidates(line, pos, &names)
            .into_iter()
            .map(|(start, value, description)| Suggestion { value, description: Some(description), span: Span::new(start, pos), append_whitespace: false, ..Suggestion::default() })
            .collect();
        CompletionResult::fresh(suggestions)
    }
}

/// The completions at byte `pos` of `line`: (start of the replaced word, value, description).
pub fn candidates(line: &str, pos: usize, names: &Names) -> Vec<(usize, String, String)> {
    let pos = pos.min(line.len());
    let before = &line[..pos];
    let start = before.char_indices().rev().find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':')).map(|(i, c)| i + c.len_utf8()).unwrap_or(0);
    let word = &before[start..];
    let mut out = Vec::new();
    if in_string(before) {
        for c in &names.columns {
            if c.starts_with(word) {
                out.push((start, c.clone(), "column".to_string()));
            }
        }
        return out;
    }
    if word.starts_with(':') {
        for c in super::meta::COMMANDS {
            if c.name.starts_with(word) {
                out.push((start, c.name.to_string(), c.help.to_string()));
            }
        }
        return out;
    }
    if before.trim_start().starts_with(":help ") {
        for p in curate_stdlib::primitives::ALL {
            if p.name.starts_with(word) {
                out.push((start, p.name.to_string(), p.signatures[0].to_string()));
            }
        }
        return out;
    }
    if word.is_empty() {
        return out;
    }
    for v in &names.variables {
        if v.starts_with(word) {
            out.push((start, v.clone(), "variable".to_string()));
        }
    }
    for p in curate_stdlib::primitives::ALL {
        if p.name.starts_with(word) {
            out.push((start, p.name.to_string(), p.signatures[0].to_string()));
        }
    }
    out
}

/// Whether the text ends inside an unclosed double-quoted string.
fn in_string(before: &str) -> bool {
    let mut inside = false;
    let mut escaped = false;
    for c in before.chars() {
        match c {
            '\\' if inside && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => inside = !inside,
            _ => {}
        }
        escaped = false;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names { variables: vec!["ds".into(), "people".into()], columns: vec!["label".into(), "split".into(), "width".into()] }
    }

    fn values(line: &str) -> Vec<String> {
        candidates(line, line.len(), &names()).into_iter().map(|c| c.1).collect()
    }

    #[test]
    fn completes_primitives_variables_columns_and_commands() {
        assert_eq!(values("ds.fil"), vec!["filter"]);
        assert_eq!(values("peo"), vec!["people"]);
        assert_eq!(values("ds.filter(\"lab"), vec!["label"]);
        assert_eq!(values("ds.filter(\"label = 'x' AND wi"), vec!["width"]);
        assert_eq!(values(":sch"), vec![":schema"]);
        assert_eq!(values(":help gro"), vec!["group_count"]);
        // Every documented function completes, the edits and metrics included.
        assert_eq!(values("ds.unta"), vec!["untag"]);
        assert_eq!(values(":help none_"), vec!["none_predicted"]);
        for p in curate_stdlib::primitives::ALL {
            assert!(values(&format!("ds.{}", p.name)).contains(&p.name.to_string()), "{} does not complete", p.name);
        }
        let c = candidates("ds.fil", 6, &names());
        assert_eq!(c[0].0, 3, "replaces only the word");
    }
}
