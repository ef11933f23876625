//! A script as notebook cells. `// %%` lines (the percent format of Jupytext, VS Code and
//! Spyder) start cells explicitly, with any text after the marker as the cell's title. A script
//! without markers is cut at blank lines between complete statements, so that each paragraph
//! of a plainly written script becomes a cell with its own outputs.

use rhai::Engine;

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The line (1-based) of the script where the cell starts.
    pub line: usize,
    /// The cell's text, as written.
    pub source: String,
    /// The text after `// %%`, if any.
    pub title: Option<String>,
}

impl Cell {
    /// The cell's text preceded by blank lines, so that positions in it are the script's own
    /// lines and columns.
    pub fn positioned(&self) -> String {
        let mut s = "\n".repeat(self.line.saturating_sub(1));
        s.push_str(&self.source);
        s
    }

    /// Whether the cell holds anything but comments and blank lines.
    pub fn has_code(&self) -> bool {
        has_code(&self.source)
    }
}

fn marker(line: &str) -> Option<String> {
    let t = line.trim_start();
    let rest = t.strip_prefix("//")?.trim_start().strip_prefix("%%")?;
    Some(rest.trim().to_string())
}

pub fn has_code(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with("//")
    })
}

/// The last character of code in `text`, ignoring blank lines and `//` comment lines.
fn last_code_char(text: &str) -> Option<char> {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("//")).and_then(|l| l.chars().last())
}

/// Whether the cell's value should be shown: not when its code ends with `;` (as in Jupyter).
pub fn shows_value(text: &str) -> bool {
    last_code_char(text) != Some(';')
}

/// A top-level `return` or `exit` ends a whole script; split into cells it would end only its
/// own cell. Conservatively, any such word keeps a script without markers whole.
fn ends_early(source: &str) -> bool {
    source.lines().map(|l| l.split("//").next().unwrap_or_default()).any(|l| l.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == "return" || w == "exit"))
}

/// Whether `text` parses alone (syntax only: variables from earlier cells are fine).
fn parses(engine: &Engine, text: &str) -> bool {
    engine.compile(text).is_ok()
}

/// Split a script into cells. Joining the cells' sources gives the script back.
pub fn split(source: &str) -> Vec<Cell> {
    let lines: Vec<&str> = source.split_inclusive('\n').collect();
    let mut cells: Vec<Cell> = Vec::new();
    if lines.iter().any(|l| marker(l).is_some()) {
        for (i, l) in lines.iter().enumerate() {
            match marker(l) {
                Some(title) => cells.push(Cell { line: i + 1, source: l.to_string(), title: (!title.is_empty()).then_some(title) }),
                None => match cells.last_mut() {
                    Some(c) => c.source.push_str(l),
                    None => cells.push(Cell { line: i + 1, source: l.to_string(), title: None }),
                },
            }
        }
        return cells;
    }
    if ends_early(source) {
        return vec![Cell { line: 1, source: source.to_string(), title: None }];
    }
    let engine = Engine::new_raw();
    let mut current = Cell { line: 1, source: String::new(), title: None };
    for (i, l) in lines.iter().enumerate() {
        if current.source.is_empty() {
            current.line = i + 1;
        }
        current.source.push_str(l);
        // A paragraph ends a cell only after a finished statement (`;` or a block's `}`), so
        // that `let t = a` / blank / `+ b;` stays one statement.
        let blank = l.trim().is_empty();
        let finished = matches!(last_code_char(&current.source), Some(';' | '}'));
        if blank && finished && parses(&engine, &current.source) {
            cells.push(std::mem::replace(&mut current, Cell { line: i + 2, source: String::new(), title: None }));
        }
    }
    if !current.source.is_empty() {
        match cells.last_mut() {
            // Trailing comments or blank lines belong to the last cell.
            Some(last) if !has_code(&current.source) => last.source.push_str(&current.source),
            _ => cells.push(current),
        }
    }
    // A paragraph that parses alone but whose successor does not (`if … {}` then `else {…}`
    // after a blank line) is one statement: merge until every cell parses.
    let mut i = 1;
    while i < cells.len() {
        if !parses(&engine, &cells[i].source) {
            let next = cells.remove(i);
            cells[i - 1].source.push_str(&next.source);
        } else {
            i += 1;
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(cells: &[Cell]) -> String {
        cells.iter().map(|c| c.source.as_str()).collect()
    }

    #[test]
    fn markers_start_cells_with_titles() {
        let src = "let a = 1;\n// %% Counts\nshow(a)\n\n// %%\na + 1\n";
        let cells = split(src);
        assert_eq!(cells.len(), 3);
        assert_eq!((cells[0].line, cells[1].line, cells[2].line), (1, 2, 5));
        assert_eq!(cells[1].title.as_deref(), Some("Counts"));
        assert_eq!(cells[2].title, None);
        assert_eq!(joined(&cells), src);
        // Positions inside a cell are the script's.
        assert_eq!(cells[2].positioned().lines().nth(5), Some("a + 1"));
    }

    #[test]
    fn statements_cut_by_blank_lines_and_early_returns_stay_whole() {
        let cells = split("let t = 1\n\n+ 2;\nprint(t);\n\nprint(t);\n");
        assert_eq!(cells.len(), 2, "{cells:#?}");
        assert!(cells[0].source.contains("+ 2;"));
        let whole = "if true { return; }\n\nprint(1);\n";
        assert_eq!(split(whole).len(), 1);
        assert!(shows_value("ds.len()\n// note\n") && !shows_value("ds.len();\n"));
    }

    #[test]
    fn paragraphs_become_cells_but_statements_stay_whole() {
        let src = "// header\n\nlet a = 1;\nlet b = 2;\n\nfor x in [1] {\n\n  print(x);\n}\n\nif a > 0 { print(1); }\n\nelse { print(2); }\n// trailing\n";
        let cells = split(src);
        assert_eq!(joined(&cells), src);
        assert_eq!(cells.len(), 3, "{cells:#?}");
        assert!(cells[0].source.starts_with("// header") && cells[0].source.contains("let b"));
        assert!(cells[1].source.contains("for x") && cells[1].source.contains('}'));
        assert!(cells[2].source.contains("if a") && cells[2].source.contains("else") && cells[2].source.ends_with("// trailing\n"));
        assert_eq!(cells[1].line, 6);
    }
}
