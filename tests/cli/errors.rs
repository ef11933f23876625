//! Rendered errors, asserted in full as snapshots: the file, line and column, the offending line
//! with a caret, the code and the hint.

use crate::util::Test;

fn stderr_of(script: &str) -> String {
    let out = Test::example().write("scripts/check.rhai", script).args(&["run", "scripts/check.rhai"]).run();
    assert_ne!(out.code, 0, "the script should fail");
    out.stderr
}

#[test]
fn unknown_column_lists_the_columns() {
    insta::assert_snapshot!(stderr_of("let ds = open();\nlet people = ds.filter(\"lable = 'person' AND width >= 24\");\n"));
}

#[test]
fn unknown_option_lists_the_valid_keys() {
    insta::assert_snapshot!(stderr_of("let ds = open();\n\nds.sample(10, #{seed: 1, stratify: \"label\"})\n"));
}

#[test]
fn syntax_error_points_at_the_token() {
    insta::assert_snapshot!(stderr_of("let ds = open();\nlet n = ds.len(;\n"));
}

#[test]
fn undefined_variable_is_caught_before_running() {
    insta::assert_snapshot!(stderr_of("let ds = open();\nprint(\"never printed\");\nlet n = dataset.len();\n"));
}

#[test]
fn unknown_function_suggests_a_primitive() {
    insta::assert_snapshot!(stderr_of("let ds = open();\nds.fliter(\"label = 'person'\")\n"));
}

#[test]
fn error_inside_a_function_points_inside_it() {
    insta::assert_snapshot!(stderr_of("fn people(ds) {\n    ds.filter(\"label = 'person'\").col(\"age\")\n}\n\npeople(open())\n"));
}

#[test]
fn error_inside_a_filter_closure_names_the_property() {
    insta::assert_snapshot!(stderr_of("open().filter(|s| s.lable == \"person\")\n"));
}

#[test]
fn bad_sql_predicate() {
    insta::assert_snapshot!(stderr_of("open().filter(\"label = = 'person'\")\n"));
}

#[test]
fn missing_manifest_names_the_file() {
    let t = Test::example().write("s.rhai", "open().len()");
    std::fs::remove_file(t.path().join("manifest.parquet")).expect("rm");
    let out = t.args(&["run", "s.rhai"]).run().code(2);
    assert!(out.stderr.contains("manifest.parquet: manifest not found"), "{}", out.stderr);
}

#[test]
fn corrupt_manifest_names_the_file() {
    let t = Test::example().write("s.rhai", "open().len()").write("manifest.parquet", "PAR1 garbage");
    let out = t.args(&["run", "s.rhai"]).run().code(2);
    assert!(out.stderr.contains("manifest.parquet: not a readable Parquet manifest"), "{}", out.stderr);
}

#[test]
fn malformed_config_names_the_file_and_line() {
    let t = Test::example().write("s.rhai", "1").write("curate.toml", "name = \"x\"\nmanifets = \"m.parquet\"\n");
    let out = t.args(&["run", "s.rhai"]).run().code(2);
    assert!(out.stderr.contains("curate.toml: invalid workspace config"), "{}", out.stderr);
    assert!(out.stderr.contains("line 2"), "{}", out.stderr);
}

#[test]
fn missing_script_names_it() {
    let out = Test::example().args(&["run", "nope.rhai"]).run().code(2);
    assert!(out.stderr.contains("nope.rhai"), "{}", out.stderr);
}
