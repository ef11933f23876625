//! Jupyter notebooks as curation scripts. A notebook written with the curate kernel keeps its
//! code cells in nbformat 4 JSON; `curate run notebook.ipynb` runs them as the cells of a script
//! (one `// %%` cell each), so that a notebook is versioned with the data and runs headless in CI.
//!
//! One line is the kernel's own rather than Rhai: `%workspace PATH` opens the session on another
//! workspace (PATH is relative to the notebook's folder, which is where Jupyter starts kernels).

use std::path::Path;

use curate_stdlib::CurateError;

/// A notebook's code cells, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Notebook {
    pub cells: Vec<CodeCell>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodeCell {
    /// The cell's place among all the notebook's cells (markdown ones too), from 1.
    pub index: usize,
    pub source: String,
}

/// A cell's `%workspace` line, taken out of its code.
#[derive(Debug, Clone, PartialEq)]
pub struct Magic {
    /// The folder named by `%workspace`, if the cell has that line.
    pub workspace: Option<String>,
    /// The cell's code with the magic line blanked, so that lines and columns stay the cell's.
    pub code: String,
}

/// Take the `%workspace PATH` line out of a cell. An error names a `%` line curate does not know,
/// and a `%workspace` without a path.
pub fn magic(source: &str) -> Result<Magic, String> {
    let mut workspace = None;
    let mut code = String::with_capacity(source.len());
    for (i, line) in source.split_inclusive('\n').enumerate() {
        let t = line.trim();
        // `%name` is a magic; `% b` (a modulo continued on its own line) is code.
        if let Some(rest) = t.strip_prefix('%').filter(|r| r.starts_with(|c: char| c.is_ascii_alphabetic())) {
            let (name, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if name != "workspace" {
                return Err(format!("line {}: unknown magic `%{name}`; the curate kernel knows only `%workspace PATH`", i + 1));
            }
            let arg = arg.trim().trim_matches(|c| c == '"' || c == '\'');
            if arg.is_empty() {
                return Err(format!("line {}: `%workspace` needs a path (the folder of a curate.toml)", i + 1));
            }
            if workspace.is_some() {
                return Err(format!("line {}: a second `%workspace` in one cell", i + 1));
            }
            workspace = Some(arg.to_string());
            code.push_str(if line.ends_with('\n') { "\n" } else { "" });
            continue;
        }
        code.push_str(line);
    }
    Ok(Magic { workspace, code })
}

/// Read an nbformat 4 notebook's code cells.
pub fn read(path: &Path) -> Result<Notebook, CurateError> {
    let text = std::fs::read_to_string(path).map_err(|e| CurateError::io(path, e))?;
    parse(&text).map_err(|message| CurateError::Io { path: path.to_path_buf(), message: format!("not a Jupyter notebook: {message}") })
}

fn parse(text: &str) -> Result<Notebook, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let major = doc.get("nbformat").and_then(serde_json::Value::as_u64);
    if major != Some(4) {
        return Err(match major {
            Some(v) => format!("nbformat {v}; curate reads nbformat 4 (`jupyter nbconvert --to notebook` upgrades older ones)"),
            None => "no `nbformat` field".to_string(),
        });
    }
    let cells = doc.get("cells").and_then(serde_json::Value::as_array).ok_or("no `cells` list")?;
    let mut out = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        if cell.get("cell_type").and_then(serde_json::Value::as_str) != Some("code") {
            continue;
        }
        // nbformat keeps a source as one string or as a list of lines (each with its newline).
        let source = match cell.get("source") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(lines)) => lines.iter().map(|l| l.as_str().ok_or_else(|| format!("cell {}: a source line is not a string", i + 1))).collect::<Result<String, _>>()?,
            _ => return Err(format!("cell {}: no `source`", i + 1)),
        };
        out.push(CodeCell { index: i + 1, source });
    }
    Ok(Notebook { cells: out })
}

/// A notebook as one script: each code cell after a `// %% cell N` marker line.
#[derive(Debug)]
pub struct Script {
    pub text: String,
    /// The workspace the first code cell names with `%workspace`.
    pub workspace: Option<String>,
    /// Per code cell: the script line of its first line, its index and its code.
    pub cells: Vec<(usize, usize, String)>,
}

impl Notebook {
    /// The code cells as a script. Only the first code cell may say `%workspace`: a script runs
    /// on one session, and the workspace is chosen before it starts.
    pub fn script(&self) -> Result<Script, String> {
        let mut text = String::new();
        let mut workspace = None;
        let mut cells = Vec::new();
        let mut line = 1;
        for (n, cell) in self.cells.iter().enumerate() {
            let m = magic(&cell.source).map_err(|e| format!("cell {}, {e}", cell.index))?;
            if let Some(w) = m.workspace {
                if n > 0 {
                    return Err(format!("cell {}: `%workspace` may only open the notebook (its first code cell) when run as a script", cell.index));
                }
                workspace = Some(w);
            }
            let mut code = m.code;
            if !code.ends_with('\n') {
                code.push('\n');
            }
            text.push_str(&format!("// %% cell {}\n", cell.index));
            line += 1;
            cells.push((line, cell.index, code.clone()));
            line += code.lines().count();
            text.push_str(&code);
        }
        Ok(Script { text, workspace, cells })
    }
}

impl Script {
    /// The code cell holding script line `line`: (its first script line, index, code).
    pub fn cell_at(&self, line: usize) -> Option<&(usize, usize, String)> {
        self.cells.iter().rev().find(|(first, _, _)| *first <= line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_cells_in_either_source_form_become_a_script() {
        let nb = r##"{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n"]},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null,
             "source": ["%workspace ../ws\n", "let ds = open();\n", "ds.len()"]},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null, "source": "print(1)"}
        ]}"##;
        let notebook = parse(nb).expect("parses");
        assert_eq!(notebook.cells.iter().map(|c| c.index).collect::<Vec<_>>(), vec![2, 3]);
        let s = notebook.script().expect("a script");
        assert_eq!(s.workspace.as_deref(), Some("../ws"));
        assert_eq!(s.text, "// %% cell 2\n\nlet ds = open();\nds.len()\n// %% cell 3\nprint(1)\n");
        // Script line 4 (`ds.len()`) is cell 2's third line; line 6 is cell 3's first.
        assert_eq!(s.cell_at(4).map(|c| (c.0, c.1)), Some((2, 2)));
        assert_eq!(s.cell_at(6).map(|c| (c.0, c.1)), Some((6, 3)));
        assert_eq!(s.text.lines().nth(5), Some("print(1)"));
    }

    #[test]
    fn bad_notebooks_and_magics_say_what_is_wrong() {
        assert!(parse("{").unwrap_err().contains("invalid JSON"));
        assert!(parse(r#"{"nbformat": 3, "worksheets": []}"#).unwrap_err().contains("nbformat 3"));
        assert!(magic("%time open()").unwrap_err().contains("unknown magic `%time`"));
        assert!(magic("let a = 1;\n%workspace\n").unwrap_err().starts_with("line 2"));
        let later = r#"{"nbformat": 4, "cells": [{"cell_type": "code", "source": "1"}, {"cell_type": "code", "source": "%workspace x\n2"}]}"#;
        assert!(parse(later).expect("parses").script().unwrap_err().contains("cell 2"));
        // `%` inside code (the modulo operator) is not a magic, even at the start of a line.
        assert_eq!(magic("let x = 5 % 2;\n").expect("code").workspace, None);
        assert_eq!(magic("let x = 5\n    % 2;\n").expect("code").code, "let x = 5\n    % 2;\n");
    }
}
