//! The edit log: edits replay to the same state in a new process, earlier states open by count
//! or checkpoint, a torn last line is detected and survived, concurrent appends lose nothing,
//! and `curate log` / `curate diff` report what changed.

use crate::util::Test;

const SCRIPT: &str = r#"let ds = open();
let ds = ds.relabel(["cifar/test/cat/0000", "cifar/test/cat/0001"], "person", "looks like a person");
let ds = ds.checkpoint("v1");
let ds = ds.remove("cifar/test/dog/0000", "blurry");
let ds = ds.tag(ds.filter("class = 'face'").head(3), "reviewed");
let ds = ds.oversample(ds.filter("class = 'face'"), 2.0);
print(`now ${ds.len()} ${ds.get("cifar/test/cat/0000").label} ${ds.filter("tag_reviewed").len()} ${ds.get("lfw/face/000").weight} ${ds.get("cifar/test/cat/0005").weight}`);
let v1 = open(#{at: "v1"});
print(`v1 ${v1.len()} ${v1.get("cifar/test/cat/0000").label}`);
let two = open(#{at: 1});
print(`at1 ${two.len()} ${two.get("cifar/test/cat/0001").label}`);
let m = open(#{at: "manifest"});
print(`manifest ${m.len()} ${m.get("cifar/test/cat/0000").label}`);
let back = open().restore("cifar/test/dog/0000");
print(`restored ${back.len()}`);
"#;

#[test]
fn edits_replay_open_at_earlier_states_and_report() {
    let t = Test::example().write("scripts/edit.rhai", SCRIPT);
    let out = t.run_with(&["run", "scripts/edit.rhai"]).success();
    assert!(out.stdout.contains("now 1399 person 3 2.0 1.0\n"), "{}", out.stdout);
    assert!(out.stdout.contains("v1 1400 person\n"), "{}", out.stdout);
    assert!(out.stdout.contains("at1 1400 person\n"), "{}", out.stdout);
    assert!(out.stdout.contains("manifest 1400 no_person\n"), "{}", out.stdout);
    assert!(out.stdout.contains("restored 1400\n"), "{}", out.stdout);

    // A new process replays the log to the same state.
    let t = t.write("check.rhai", "let ds = open(); print(`${ds.len()} ${ds.get(\"cifar/test/cat/0000\").label} ${ds.get(\"lfw/face/001\").weight}`)");
    let out = t.run_with(&["run", "check.rhai"]).success();
    assert_eq!(out.stdout.trim(), "1400 person 2.0");

    // The log records old values, reasons and the script line.
    let out = t.run_with(&["log", "--json"]).success();
    let log: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let entries = log.as_array().expect("array");
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().expect("action")).collect();
    assert_eq!(actions, ["relabel", "checkpoint", "remove", "tag", "set_weight", "restore"]);
    assert_eq!(entries[0]["old"], serde_json::json!(["no_person", "no_person"]));
    assert_eq!(entries[0]["reason"], "looks like a person");
    assert_eq!(entries[0]["source"], "scripts/edit.rhai:2");
    assert_eq!(entries[4]["ids"].as_array().expect("ids").len(), 100);
    let text = t.run_with(&["log"]).success().stdout;
    assert!(text.contains("relabel 2 samples → person  \"looks like a person\"  (scripts/edit.rhai:2)"), "{text}");

    // diff summarises by label and split.
    let out = t.run_with(&["diff", "manifest", "current", "--json"]).success();
    let d: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(d["relabelled"]["no_person → person (test)"], 2);
    assert_eq!(d["samples_a"], 1400);
    let out = t.run_with(&["diff", "v1", "3", "--json"]).success();
    let d: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(d["removed"]["no_person / test"], 1, "{d}");

    // A crash in the middle of an append: the torn line is reported and ignored, and the next
    // edit cuts it off; every earlier entry survives.
    let log_path = t.path().join("edits.jsonl");
    let mut bytes = std::fs::read(&log_path).expect("log");
    bytes.extend_from_slice(b"{\"time\":\"2026-11-25T");
    std::fs::write(&log_path, bytes).expect("tear");
    let out = t.run_with(&["log"]).success();
    assert!(out.stderr.contains("line 7 is incomplete"), "{}", out.stderr);
    let out = t.run_with(&["run", "check.rhai"]).success();
    assert_eq!(out.stdout.trim(), "1400 person 2.0");
    let t = t.write("more.rhai", "open().untag(\"lfw/face/000\", \"reviewed\").len()");
    t.run_with(&["run", "more.rhai"]).success();
    let out = t.run_with(&["log", "--json"]).success();
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let log: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(log.as_array().expect("array").len(), 7);

    // Errors name what is wrong.
    let t = t.write("bad.rhai", "open().relabel(\"no/such/id\", \"person\", \"x\")");
    let out = t.run_with(&["run", "bad.rhai"]).code(2);
    assert!(out.stderr.contains("no/such/id"), "{}", out.stderr);
    let t = t.write("bad2.rhai", "open(#{at: \"v9\"})");
    let out = t.run_with(&["run", "bad2.rhai"]).code(2);
    assert!(out.stderr.contains("no checkpoint called `v9`"), "{}", out.stderr);
}

#[test]
fn concurrent_sessions_lose_no_edits() {
    let t = Test::example();
    let script = |class: &str| {
        format!("let ids = open().filter(\"class = '{class}' AND split = 'train'\").head(25).ids();\nfor id in ids {{ open().tag(id, \"seen\"); }}\n")
    };
    let t = t.write("a.rhai", &script("cat")).write("b.rhai", &script("dog"));
    std::thread::scope(|s| {
        let a = s.spawn(|| t.run_with(&["run", "a.rhai"]));
        let b = s.spawn(|| t.run_with(&["run", "b.rhai"]));
        a.join().expect("a").success();
        b.join().expect("b").success();
    });
    let out = t.run_with(&["log", "--json"]).success();
    let log: serde_json::Value = serde_json::from_str(&out.stdout).expect("every line parses");
    assert_eq!(log.as_array().expect("array").len(), 50, "two sessions x 25 appends");
    let t = t.write("count.rhai", "print(open().filter(\"tag_seen\").len())");
    assert_eq!(t.run_with(&["run", "count.rhai"]).success().stdout.trim(), "50");
}
