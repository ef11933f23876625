//! Notebook-style reports: every cell's source and outputs in order, as one self-contained HTML
//! file (tables as HTML, pictures embedded as data: URIs) or as Markdown (pictures written to a
//! `<name>_files/` folder beside it and linked, since GitHub does not show data: URIs).
//! `curate run --report`, the REPL's `:report` and `curate test --report` write them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use curate_stdlib::output::{Output, TableView};
use curate_stdlib::CurateError;
use quick_xml::escape::escape;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status {
    Ran,
    Failed,
    /// An earlier cell failed, so this one did not run.
    NotRun,
}

#[derive(Debug, Clone)]
pub struct CellRecord {
    pub line: usize,
    pub title: Option<String>,
    pub source: String,
    pub outputs: Vec<Output>,
    /// The rendered error (plain text), when the cell failed.
    pub error: Option<String>,
    pub status: Status,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub title: String,
    /// Lines under the title: the workspace, parameters, the outcome.
    pub meta: Vec<String>,
    pub cells: Vec<CellRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    Html,
    Markdown,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format, CurateError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("html" | "htm") => Ok(Format::Html),
            Some("md" | "markdown") => Ok(Format::Markdown),
            _ => Err(CurateError::arg("--report", format!("{}: a report is .html or .md", path.display()))),
        }
    }
}

impl Report {
    /// Write the report to `path` (atomically; Markdown's pictures first, then the document).
    pub fn write(&self, path: &Path) -> Result<(), CurateError> {
        match Format::of(path)? {
            Format::Html => curate_stdlib::atomic::write_bytes_atomic(path, self.html().as_bytes()),
            Format::Markdown => {
                let (doc, files) = self.markdown(path);
                for (file, bytes) in files {
                    curate_stdlib::atomic::write_bytes_atomic(&file, &bytes)?;
                }
                curate_stdlib::atomic::write_bytes_atomic(path, doc.as_bytes())
            }
        }
    }

    pub fn html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>{}</title>\n<style>{CSS}</style></head><body>\n<h1>{}</h1>\n",
            escape(&self.title),
            escape(&self.title)
        );
        for m in &self.meta {
            let _ = writeln!(h, "<p class=\"meta\">{}</p>", escape(m));
        }
        for (i, c) in self.cells.iter().enumerate() {
            let class = match c.status {
                Status::Ran => "cell",
                Status::Failed => "cell failed",
                Status::NotRun => "cell notrun",
            };
            let _ = writeln!(h, "<section class=\"{class}\" id=\"cell-{}\">", i + 1);
            let title = c.title.as_deref().map(|t| format!(" · {}", escape(t))).unwrap_or_default();
            let _ = writeln!(h, "<div class=\"head\">[{}]{}{title}</div>", i + 1, at(c.line));
            if !c.source.trim().is_empty() {
                let _ = writeln!(h, "<pre class=\"src\"><code>{}</code></pre>", escape(c.source.trim_end()));
            }
            for o in &c.outputs {
                h.push_str(&output_html(o));
            }
            if let Some(e) = &c.error {
                let _ = writeln!(h, "<pre class=\"err\">{}</pre>", escape(e.trim_end()));
            }
            if c.status == Status::NotRun {
                h.push_str("<p class=\"meta\">not run: an earlier cell failed</p>\n");
            }
            h.push_str("</section>\n");
        }
        let _ = writeln!(h, "<p class=\"meta\">curate {}</p>\n</body></html>", env!("CARGO_PKG_VERSION"));
        h
    }

    /// The Markdown document and the picture files it links (paths beside `path`).
    pub fn markdown(&self, path: &Path) -> (String, Vec<(PathBuf, Vec<u8>)>) {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("report").to_string();
        let folder = format!("{stem}_files");
        let dir = path.parent().unwrap_or(Path::new("")).join(&folder);
        let mut files = Vec::new();
        let mut m = format!("# {}\n\n", self.title);
        for line in &self.meta {
            let _ = writeln!(m, "{line}  ");
        }
        for (i, c) in self.cells.iter().enumerate() {
            let title = c.title.as_deref().map(|t| format!(" · {t}")).unwrap_or_default();
            let _ = writeln!(m, "\n## [{}]{}{title}", i + 1, at(c.line));
            if !c.source.trim().is_empty() {
                let f = fence(&c.source);
                let _ = write!(m, "\n{f}rhai\n{}\n{f}\n", c.source.trim_end());
            }
            for (k, o) in c.outputs.iter().enumerate() {
                match o {
                    Output::Text(t) => {
                        let f = fence(t);
                        let _ = write!(m, "\n{f}text\n{}\n{f}\n", t.trim_end());
                    }
                    Output::Table(t) => {
                        m.push('\n');
                        m.push_str(&table_markdown(t));
                    }
                    Output::Image(p) => {
                        let name = format!("cell{:02}-{}.png", i + 1, k + 1);
                        files.push((dir.join(&name), p.png.as_ref().clone()));
                        // <...> keeps a folder name with spaces or parentheses one link.
                        let _ = write!(m, "\n![{}](<{folder}/{name}>)\n", p.title.replace(['[', ']', '<', '>'], ""));
                    }
                }
            }
            if let Some(e) = &c.error {
                let f = fence(e);
                let _ = write!(m, "\n**error**\n\n{f}text\n{}\n{f}\n", e.trim_end());
            }
            if c.status == Status::NotRun {
                m.push_str("\n_not run: an earlier cell failed_\n");
            }
        }
        (m, files)
    }
}

/// " line 12", or nothing for a REPL cell (line 0).
fn at(line: usize) -> String {
    if line > 0 {
        format!(" line {line}")
    } else {
        String::new()
    }
}

/// A code fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.5em}.meta{color:#666;margin:.2em 0}\
section.cell{border-left:3px solid #ccd;padding:.2em 0 .2em 1em;margin:1.6em 0}\
section.failed{border-left-color:#d62728}section.notrun{opacity:.55}\
.head{color:#888;font-size:.85em;margin-bottom:.3em}\
pre{background:#f6f8fa;padding:.6em .8em;overflow-x:auto;font-size:.9em;margin:.4em 0}\
pre.out{background:#fff;border:1px solid #eee}pre.err{background:#fff5f5;color:#a00;border:1px solid #f3c}\
table{border-collapse:collapse;font-size:.85em;margin:.4em 0}\
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}\
th small{color:#888;font-weight:normal}td.num{text-align:right;font-variant-numeric:tabular-nums}\
caption{caption-side:bottom;text-align:left;color:#666;font-size:.9em;padding-top:.2em}\
figure{margin:.6em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#666;font-size:.85em}";

pub(crate) fn output_html(o: &Output) -> String {
    match o {
        Output::Text(t) => format!("<pre class=\"out\">{}</pre>\n", escape(t.trim_end())),
        Output::Table(t) => table_html(t),
        Output::Image(p) => format!(
            "<figure><img alt=\"{}\" width=\"{}\" height=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{} ({}×{}, {})</figcaption></figure>\n",
            escape(&p.title),
            p.width,
            p.height,
            base64::engine::general_purpose::STANDARD.encode(p.png.as_slice()),
            escape(&p.title),
            p.width,
            p.height,
            escape(p.path.display().to_string()),
        ),
    }
}

pub(crate) fn table_html(t: &TableView) -> String {
    let cols = t.head.columns();
    let mut h = String::from("<table>\n<thead><tr>");
    for c in cols {
        let _ = write!(h, "<th>{}<br><small>{}</small></th>", escape(c.name().as_str()), escape(c.dtype().to_string()));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for i in 0..t.head.height() {
        h.push_str("<tr>");
        for c in cols {
            let v = c.get(i).map(|v| curate_stdlib::output::cell_text(&v, c.name() == "path")).unwrap_or_default();
            let class = if c.dtype().is_primitive_numeric() { " class=\"num\"" } else { "" };
            let _ = write!(h, "<td{class}>{}</td>", escape(&v));
        }
        h.push_str("</tr>\n");
    }
    let _ = writeln!(h, "</tbody>\n<caption>{}</caption></table>", escape(t.footer()));
    h
}

fn table_markdown(t: &TableView) -> String {
    let cols = t.head.columns();
    let cell = |s: &str| escape(s.replace('\\', "\\\\").replace('|', "\\|").replace('\n', " ")).into_owned();
    let mut m = String::from("|");
    for c in cols {
        let _ = write!(m, " {} ({}) |", cell(c.name().as_str()), cell(&c.dtype().to_string()));
    }
    m.push_str("\n|");
    for c in cols {
        m.push_str(if c.dtype().is_primitive_numeric() { " ---: |" } else { " --- |" });
    }
    m.push('\n');
    for i in 0..t.head.height() {
        m.push('|');
        for c in cols {
            let v = c.get(i).map(|v| curate_stdlib::output::cell_text(&v, c.name() == "path")).unwrap_or_default();
            let _ = write!(m, " {} |", cell(&v));
        }
        m.push('\n');
    }
    let _ = writeln!(m, "\n_{}_", t.footer());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_sources_and_marks_failures() {
        let r = Report {
            title: "t <1>".into(),
            meta: vec![],
            cells: vec![
                CellRecord { line: 1, title: None, source: "let a = 1 < 2;".into(), outputs: vec![Output::Text("x & y".into())], error: None, status: Status::Ran },
                CellRecord { line: 3, title: Some("boom".into()), source: "fail()".into(), outputs: vec![], error: Some("error: <nope>".into()), status: Status::Failed },
                CellRecord { line: 5, title: None, source: "later()".into(), outputs: vec![], error: None, status: Status::NotRun },
            ],
        };
        let h = r.html();
        assert!(h.contains("let a = 1 &lt; 2;") && h.contains("x &amp; y") && h.contains("error: &lt;nope&gt;"));
        assert!(h.contains("class=\"cell failed\"") && h.contains("not run"));
        assert_eq!(h.matches("<section").count(), 3);
        let (md, files) = r.markdown(Path::new("out/r.md"));
        assert!(md.contains("```rhai\nlet a = 1 < 2;\n```") && md.contains("_not run"));
        assert!(files.is_empty());
        assert!(Format::of(Path::new("r.pdf")).is_err());
    }
}
