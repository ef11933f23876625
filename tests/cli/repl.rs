//! The REPL fed through stdin: state persists between cells, statements continue over lines,
//! meta-commands answer, and an error does not end the session.

use crate::util::Test;

#[test]
fn state_persists_between_cells() {
    let out = Test::example().stdin("let ds = open();\nlet people = ds.filter(\"label = 'person'\");\npeople.len()\nfn twice(x) { x * 2 }\ntwice(people.len())\n").args(&["repl"]).run().success();
    assert_eq!(out.stdout, "100\n200\n");
}

#[test]
fn unfinished_statements_continue_on_the_next_line() {
    let out = Test::example().stdin("let n = 0;\nfor c in [\"cat\", \"dog\"] {\n  n += open().filter(`class = '${c}'`).len();\n}\nn\n").args(&["repl"]).run().success();
    assert_eq!(out.stdout, "240\n");
}

#[test]
fn meta_commands() {
    let out = Test::example().stdin("let ds = open();\n:vars\n:schema\n:help filter\n:help\n").args(&[]).run().success();
    assert!(out.stdout.contains("ds  Dataset  1400 samples, 11 columns"), "{}", out.stdout);
    assert!(out.stdout.contains("manifest columns:\n  id      str"), "{}", out.stdout);
    assert!(out.stdout.contains("ds.filter(predicate: string) -> Dataset"), "{}", out.stdout);
    assert!(out.stdout.contains("group_count"), "{}", out.stdout);
    assert!(out.stdout.contains(":schema"), "{}", out.stdout);
}

#[test]
fn errors_do_not_end_the_session() {
    let out = Test::example().stdin("let ds = open();\nds.filter(\"nope = 1\")\nds.len()\n:nope\n").args(&["repl"]).run().code(1);
    assert_eq!(out.stdout, "1400\n");
    assert!(out.stderr.contains("unknown column `nope`"), "{}", out.stderr);
    assert!(out.stderr.contains("[repl#2:1:4]"), "{}", out.stderr);
    assert!(out.stderr.contains("unknown command `:nope`"), "{}", out.stderr);
}

#[test]
fn quit_stops_reading() {
    let out = Test::example().stdin("1 + 1\n:quit\n3 + 3\n").args(&["repl"]).run().success();
    assert_eq!(out.stdout, "2\n");
}
