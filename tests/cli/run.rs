use crate::util::Test;

#[test]
fn a_script_prints_its_outputs_and_final_value() {
    let out = Test::example().write("scripts/a.rhai", "let ds = open();\nprint(`n = ${ds.len()}`);\nds.filter(\"class = 'cat'\").len()\n").args(&["run", "scripts/a.rhai"]).run().success();
    assert_eq!(out.stdout, "n = 1400\n120\n");
}

#[test]
fn params_reach_the_script() {
    let t = Test::example().write("s.rhai", "open().filter(`width >= ${param(\"min\", 1000)}`).len()");
    assert_eq!(t.args(&["run", "s.rhai"]).run().success().stdout, "0\n");
    let t = Test::example().write("s.rhai", "open().filter(`width >= ${param(\"min\", 1000)}`).len()");
    assert_eq!(t.args(&["run", "s.rhai", "--param", "min=32"]).run().success().stdout, "1200\n");
    let t = Test::example().write("s.rhai", "params");
    let out = t.args(&["run", "s.rhai", "--param", "a=1", "--param", "b=x y"]).run().success();
    assert_eq!(out.stdout, "#{\"a\": \"1\", \"b\": \"x y\"}\n");
}

#[test]
fn a_dataset_result_prints_as_a_table() {
    let out = Test::example().write("s.rhai", "open().head(3)").args(&["run", "s.rhai"]).run().success();
    assert!(out.stdout.contains("cifar/test/airplane/0002"), "{}", out.stdout);
    assert!(out.stdout.contains("3 rows × 11 columns"), "{}", out.stdout);
    assert!(out.stdout.contains("u32"), "types are shown: {}", out.stdout);
}

#[test]
fn json_output_is_machine_readable() {
    let out = Test::example().write("s.rhai", "print(\"hi\");\nshow(open().group_count(\"label\"));\nopen().len()").args(&["run", "s.rhai", "--json"]).run().success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(v["result"], 1400);
    assert_eq!(v["outputs"][0]["text"], "hi");
    assert_eq!(v["outputs"][1]["type"], "table");
    assert_eq!(v["outputs"][1]["rows"][0]["label"], "no_person");
    assert_eq!(v["outputs"][1]["rows"][0]["count"], 1300);
}

#[test]
fn json_errors_carry_the_position() {
    let out = Test::example().write("s.rhai", "let ds = open();\nds.filter(\"nope > 1\")").args(&["run", "s.rhai", "--json"]).run().code(2);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "curate::column::unknown");
    assert_eq!(v["error"]["line"], 2);
    assert_eq!(v["error"]["column"], 4);
}

#[test]
fn failed_assertions_exit_with_1() {
    let out = Test::example().write("s.rhai", "let n = open().len();\nassert(n < 10, `too many samples: ${n}`);\n").args(&["run", "s.rhai"]).run().code(1);
    assert!(out.stderr.contains("assertion failed: too many samples: 1400"), "{}", out.stderr);
}

#[test]
fn the_sandbox_keeps_scripts_inside_the_workspace() {
    let out = Test::example().write("s.rhai", "open(\"../..\")").args(&["run", "s.rhai"]).run().code(2);
    assert!(out.stderr.contains("is outside the workspace"), "{}", out.stderr);
}

#[test]
fn endless_loops_stop_at_the_operation_limit() {
    let t = Test::example();
    let config = std::fs::read_to_string(t.path().join("curate.toml")).expect("config");
    let t = t.write("curate.toml", &format!("{config}\n[limits]\nmax_operations = 200000\n")).write("s.rhai", "let i = 0;\nwhile true { i += 1; }\n");
    let out = t.args(&["run", "s.rhai"]).run().code(2);
    assert!(out.stderr.contains("too many operations"), "{}", out.stderr);
    assert!(out.stderr.contains("max_operations"), "{}", out.stderr);
}

#[test]
fn init_creates_a_workspace_once() {
    let t = Test::new().args(&["init", "ws", "--name", "demo"]);
    let out = t.run().success();
    assert!(out.stdout.contains("created workspace `demo`"), "{}", out.stdout);
    for f in ["ws/curate.toml", "ws/manifest.parquet", "ws/.gitignore", "ws/scripts", "ws/tests"] {
        assert!(t.path().join(f).exists(), "{f} missing");
    }
    let gitignore = std::fs::read_to_string(t.path().join("ws/.gitignore")).expect("gitignore");
    assert!(gitignore.contains(".curate/"));
    let t = t.args(&["init", "ws"]);
    let out = t.run().code(2);
    assert!(out.stderr.contains("already a curate workspace"), "{}", out.stderr);
    let out = t.write("ws/s.rhai", "open().len()").args(&["-C", "ws", "run", "s.rhai"]).run().success();
    assert_eq!(out.stdout, "0\n");
}
