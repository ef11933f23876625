//! docs/primitives.md, rendered from the doc table ([`super::ALL`]) and checked by a test, so
//! the reference cannot drift from the functions.

use std::fmt::Write;

use super::{Primitive, ALL};

/// Where the rendered reference lives, relative to the repository root.
pub const PATH: &str = "docs/primitives.md";

/// The command that rewrites the committed file.
pub const REGENERATE: &str = "UPDATE_DOCS=1 cargo test -p curate-stdlib primitives_md_is_current";

/// The whole reference as Markdown: an index, then one section per function.
pub fn markdown() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Primitives\n");
    let _ = writeln!(s, "<!-- Generated from the doc table in stdlib/src/primitives; do not edit. Regenerate: {REGENERATE} -->\n");
    let _ = writeln!(
        s,
        "Every function a curate script can call, in the order `:help` lists them. The same entries \
         drive `:help NAME` in the REPL, tab completion and highlighting, and their examples run as \
         tests on a copy of `examples/people`.\n"
    );
    let _ = writeln!(s, "| function | what it does |\n|---|---|");
    for p in ALL {
        let _ = writeln!(s, "| [`{}`](#{}) | {} |", p.name, anchor(p.name), cell(first_sentence(p.summary)));
    }
    for p in ALL {
        s.push('\n');
        section(&mut s, p);
    }
    s
}

fn section(s: &mut String, p: &Primitive) {
    let _ = writeln!(s, "## {}\n", p.name);
    let _ = writeln!(s, "```rhai\n{}\n```\n", p.signatures.join("\n"));
    let _ = writeln!(s, "{}\n", prose(p.summary));
    if !p.options.is_empty() {
        let _ = writeln!(s, "| option | default | |\n|---|---|---|");
        for o in p.options {
            let _ = writeln!(s, "| `{}` | {} | {} |", o.name, cell(o.default), cell(o.help));
        }
        s.push('\n');
    }
    let _ = writeln!(s, "{}\n", if p.examples.len() == 1 { "Example:" } else { "Examples:" });
    let _ = writeln!(s, "```rhai");
    for ex in p.examples {
        let _ = writeln!(s, "{}", ex.code);
        if let Some(r) = ex.result {
            let _ = writeln!(s, "// => {r}");
        }
    }
    let _ = writeln!(s, "```");
}

/// The summary up to the full stop that ends its first sentence (not an "e.g." or "i.e.").
pub fn first_sentence(summary: &str) -> &str {
    let mut from = 0;
    while let Some(i) = summary[from..].find(". ").map(|i| from + i) {
        let before = &summary[..i];
        if !(before.ends_with("e.g") || before.ends_with("i.e")) {
            return before;
        }
        from = i + 2;
    }
    summary.trim_end_matches('.')
}

/// GitHub's heading anchor for a function name (they are lower-case identifiers already).
fn anchor(name: &str) -> String {
    name.to_string()
}

/// Text for a table cell: pipes escaped, on one line.
fn cell(text: &str) -> String {
    prose(text).replace('|', "\\|").replace('\n', " ")
}

/// Prose for Markdown: a `<` outside code spans (`p_<class>`) would start an HTML tag.
fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '<' if !in_code => out.push_str("&lt;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed docs/primitives.md is what the doc table renders. With UPDATE_DOCS=1 the
    /// test writes it instead (the only way a test writes into the checkout).
    #[test]
    fn primitives_md_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(PATH);
        let want = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
            crate::atomic::write_bytes_atomic(&path, want.as_bytes()).expect("write docs/primitives.md");
            return;
        }
        let got = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            let line = got.lines().zip(want.lines()).position(|(a, b)| a != b).map(|i| i + 1).unwrap_or(got.lines().count().min(want.lines().count()) + 1);
            panic!("{PATH} is not what the doc table renders (first difference at line {line}); regenerate it with:\n    {REGENERATE}");
        }
    }

    #[test]
    fn first_sentences_and_prose() {
        assert_eq!(first_sentence("Bars per value (e.g. the split) of a column. More."), "Bars per value (e.g. the split) of a column");
        assert_eq!(first_sentence("One sentence."), "One sentence");
        assert_eq!(prose("a p_<class> column, `p_<class>` in code"), "a p_&lt;class> column, `p_<class>` in code");
    }

    #[test]
    fn every_function_has_a_section_and_an_index_row() {
        let md = markdown();
        for p in ALL {
            assert!(md.contains(&format!("\n## {}\n", p.name)), "no section for {}", p.name);
            assert!(md.contains(&format!("| [`{}`](#{}) |", p.name, p.name)), "no index row for {}", p.name);
        }
    }
}
