//! The docs' code blocks run (just's `tests/readme.rs`), their links resolve, and CI runs the
//! README's test command. The docs are README.md, ARCHITECTURE.md and docs/**/*.md.

use std::path::{Path, PathBuf};

use crate::util::{repo, Test};

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn readme() -> String {
    read("README.md")
}

/// Every Markdown file of the docs, as paths relative to the repository, sorted.
fn doc_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut found = vec![];
    walk(&repo().join("docs"), &mut found);
    let mut out: Vec<String> = found.iter().map(|p| p.strip_prefix(repo()).expect("under the repo").to_string_lossy().replace('\\', "/")).collect();
    out.extend(["README.md".to_string(), "ARCHITECTURE.md".to_string()]);
    out.sort();
    out
}

/// The fenced blocks of the given language.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = vec![];
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim_start() == format!("```{lang}") => current = Some(String::new()),
            Some(buf) if line.trim_start() == "```" => {
                out.push(std::mem::take(buf));
                current = None;
            }
            Some(buf) => {
                buf.push_str(line);
                buf.push('\n');
            }
            None => {}
        }
    }
    out
}

/// Run every ```rhai block of a doc file as a script, each on a fresh copy of the example
/// workspace; returns how many ran.
fn run_rhai_blocks(rel: &str) -> usize {
    let code = blocks(&read(rel), "rhai");
    for (i, block) in code.iter().enumerate() {
        let out = Test::example().write("block.rhai", block).args(&["run", "block.rhai"]).run();
        assert_eq!(out.code, 0, "{rel}: rhai block {i}:\n{block}\n{}", out.stderr);
    }
    code.len()
}

#[test]
fn readme_rhai_blocks_run_on_the_example() {
    assert!(run_rhai_blocks("README.md") > 0, "the README shows some Rhai");
}

/// One test per guide page, so they run side by side and a failure names its page.
macro_rules! guide_pages {
    ($($page:ident => $file:literal),* $(,)?) => {
        const GUIDE_PAGES: &[&str] = &[$($file),*];
        mod guide_rhai_blocks_run_on_the_example {
            $(
                #[test]
                fn $page() {
                    super::run_rhai_blocks(concat!("docs/guide/", $file));
                }
            )*
        }
    };
}

guide_pages! {
    index => "README.md",
    workspace => "workspace.md",
    language => "language.md",
    similarity => "similarity.md",
    predictions => "predictions.md",
    data_unit_tests => "data-unit-tests.md",
    influence => "influence.md",
    edits => "edits.md",
    pictures => "pictures.md",
    notebooks => "notebooks.md",
    runtimes => "runtimes.md",
    scale => "scale.md",
}

#[test]
fn every_guide_page_has_its_blocks_tested() {
    let pages: Vec<String> = doc_files().into_iter().filter_map(|f| f.strip_prefix("docs/guide/").map(str::to_string)).collect();
    let mut listed: Vec<String> = GUIDE_PAGES.iter().map(|p| p.to_string()).collect();
    listed.sort();
    assert_eq!(pages, listed, "add the page to `guide_pages!` in tests/cli/readme.rs");
    let blocks: usize = GUIDE_PAGES.iter().map(|p| blocks(&read(&format!("docs/guide/{p}")), "rhai").len()).sum();
    assert!(blocks >= 9, "the guide shows {blocks} rhai blocks");
}

#[test]
fn readme_is_at_most_200_lines_and_keeps_figures_out() {
    let text = readme();
    let lines = text.lines().count();
    assert!(lines <= 200, "README.md has {lines} lines; move detail into docs/guide/");
    // Measurements live in docs/performance.md, with their date, machine and commit.
    for unit in [" queries/s", " images/s", " GB/s", " ms ", " peak MB"] {
        assert!(!text.contains(unit), "README.md quotes a measurement ({unit:?}); put it in docs/performance.md");
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = readme();
    let ci = read(".ci/run");
    let test_cmd = blocks(&readme, "sh").iter().flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>()).find(|l| l.starts_with("cargo test")).expect("the README gives a `cargo test` command");
    assert!(ci.contains(&test_cmd), ".ci/run does not run `{test_cmd}`");
}

/// The docs show the example suite's real `curate test` output; it must still be what the suite
/// prints (the run id line aside).
#[test]
fn readme_shows_the_example_suites_real_output() {
    const PROMPT: &str = "$ curate -C examples/people test\n";
    let shown: Vec<(String, String)> = doc_files().into_iter().flat_map(|f| blocks(&read(&f), "text").into_iter().filter(|b| b.starts_with(PROMPT)).map(move |b| (f.clone(), b))).collect();
    assert_eq!(shown.len(), 1, "the docs show `curate -C examples/people test` once: {shown:?}");
    let (file, shown) = &shown[0];
    let t = Test::example();
    std::fs::create_dir(t.path().join("tests")).expect("mkdir tests");
    std::fs::copy(crate::util::example_dir().join("tests/person.rhai"), t.path().join("tests/person.rhai")).expect("copy suite");
    let out = t.run_with(&["test"]).code(1);
    let actual: String = out.stdout.lines().filter(|l| !l.starts_with("recorded run")).map(|l| format!("{l}\n")).collect();
    let shown = shown.trim_start_matches(PROMPT);
    assert_eq!(shown.trim_end(), actual.trim_end(), "update the curate test block in {file}");
    let tests = actual.lines().filter(|l| l.starts_with('✓') || l.starts_with('✗') || l.starts_with('!')).count();
    assert!(tests >= 10, "the example suite has {tests} tests");
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The text outside fenced code blocks, line by line.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = vec![];
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push(line);
        }
    }
    out
}

/// The anchors of a Markdown file's headings (a repeated heading gets `-1`, `-2`, … as on GitHub).
fn anchors(text: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for line in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else { continue };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let seen = out.iter().filter(|a| **a == base || a.strip_prefix(&format!("{base}-")).is_some_and(|n| n.parse::<u32>().is_ok())).count();
        out.push(if seen == 0 { base } else { format!("{base}-{seen}") });
    }
    out
}

/// The targets of the inline links `[text](target)` outside code.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = vec![];
    for line in prose_lines(text) {
        // Drop code spans: between backtick runs nothing is a link.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            out.push(rest[..end].trim().to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// Every relative link of the Markdown file `file` (under `root`) that does not resolve: to a
/// missing file or folder, or to an anchor that no heading of the target has.
fn broken_links(root: &Path, file: &str) -> Vec<String> {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let dir = path.parent().expect("a file has a folder");
    let mut broken = vec![];
    for target in link_targets(&text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (rel, anchor) = match target.split_once('#') {
            Some((rel, anchor)) => (rel, Some(anchor)),
            None => (target.as_str(), None),
        };
        let dest = if rel.is_empty() { path.clone() } else { dir.join(rel) };
        if rel.starts_with('/') || !dest.exists() {
            broken.push(format!("{file}: ({target}): no such file"));
            continue;
        }
        if let Some(anchor) = anchor {
            let heads = std::fs::read_to_string(&dest).map(|t| anchors(&t)).unwrap_or_default();
            if !heads.iter().any(|h| h == anchor) {
                broken.push(format!("{file}: ({target}): no heading with that anchor in {}", dest.display()));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let files = doc_files();
    assert!(files.len() >= 14, "README, ARCHITECTURE, performance and the guide: {files:?}");
    let broken: Vec<String> = files.iter().flat_map(|f| broken_links(&repo(), f)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    let links: usize = files.iter().map(|f| link_targets(&read(f)).len()).sum();
    assert!(links >= 40, "the docs link to each other: {links} links");
}

#[test]
fn the_link_check_finds_what_does_not_resolve() {
    let t = Test::new().write("docs/a.md", "# Title\n\n## Two words, and more\n\n## Two words, and more\n").write(
        "README.md",
        "[ok](docs/a.md) [ok](docs/a.md#title) [ok](docs/a.md#two-words-and-more) [ok](docs/a.md#two-words-and-more-1) \
         [ok](https://example.com/x) `[not a link](gone.md)`\n\
         [missing](docs/b.md) [bad anchor](docs/a.md#nowhere) [absolute](/docs/a.md) [self](#no-such)\n\
         ```\n[in code](gone.md)\n```\n",
    );
    let broken = broken_links(t.path(), "README.md");
    let targets: Vec<&str> = broken.iter().map(|b| b.split(['(', ')']).nth(1).unwrap_or("")).collect();
    assert_eq!(targets, ["docs/b.md", "docs/a.md#nowhere", "/docs/a.md", "#no-such"], "{broken:?}");
}

#[test]
fn anchors_follow_githubs_rules() {
    assert_eq!(slug("Manifest, edit log and export at 30M rows"), "manifest-edit-log-and-export-at-30m-rows");
    assert_eq!(slug("Influence: which training images pushed a prediction"), "influence-which-training-images-pushed-a-prediction");
    assert_eq!(slug("`curate test` in CI"), "curate-test-in-ci");
    assert_eq!(anchors("# A\n```\n# not a heading\n```\n## A\n#nope\n"), ["a", "a-1"]);
}
