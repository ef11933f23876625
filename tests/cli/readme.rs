//! The README's code blocks run (just's `tests/readme.rs`), and CI runs the README's test command.

use crate::util::{repo, Test};

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("README.md")
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

#[test]
fn readme_rhai_blocks_run_on_the_example() {
    let code = blocks(&readme(), "rhai");
    assert!(!code.is_empty(), "the README shows some Rhai");
    for (i, block) in code.iter().enumerate() {
        let out = Test::example().write("block.rhai", block).args(&["run", "block.rhai"]).run();
        assert_eq!(out.code, 0, "README rhai block {i}:\n{block}\n{}", out.stderr);
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = readme();
    let ci = std::fs::read_to_string(repo().join(".ci/run")).expect(".ci/run");
    let test_cmd = blocks(&readme, "sh")
        .iter()
        .flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>())
        .find(|l| l.starts_with("cargo test"))
        .expect("the README gives a `cargo test` command");
    assert!(ci.contains(&test_cmd), ".ci/run does not run `{test_cmd}`");
}

/// The README shows the example suite's real `curate test` output; it must still be what the
/// suite prints (the run id line aside).
#[test]
fn readme_shows_the_example_suites_real_output() {
    let text = readme();
    let shown = blocks(&text, "text")
        .into_iter()
        .find(|b| b.starts_with("$ curate -C examples/people test\n"))
        .expect("the README shows `curate -C examples/people test`");
    let t = Test::example();
    std::fs::create_dir(t.path().join("tests")).expect("mkdir tests");
    std::fs::copy(crate::util::example_dir().join("tests/person.rhai"), t.path().join("tests/person.rhai")).expect("copy suite");
    let out = t.run_with(&["test"]).code(1);
    let actual: String = out.stdout.lines().filter(|l| !l.starts_with("recorded run")).map(|l| format!("{l}\n")).collect();
    let shown = shown.trim_start_matches("$ curate -C examples/people test\n");
    assert_eq!(shown.trim_end(), actual.trim_end(), "update the README's curate test block");
    let tests = actual.lines().filter(|l| l.starts_with('✓') || l.starts_with('✗') || l.starts_with('!')).count();
    assert!(tests >= 10, "the example suite has {tests} tests");
}
