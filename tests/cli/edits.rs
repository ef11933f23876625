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
    let script = |class: &str| format!("let ids = open().filter(\"class = '{class}' AND split = 'train'\").head(25).ids();\nfor id in ids {{ open().tag(id, \"seen\"); }}\n");
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

fn digest(path: &std::path::Path) -> String {
    blake3::hash(&std::fs::read(path).expect("exported file")).to_hex().to_string()
}

#[test]
fn export_is_deterministic_and_stays_inside_its_folder() {
    let t = Test::example().write(
        "export.rhai",
        r#"let ds = open().oversample(open().filter("class = 'face' AND split = 'test'"), 3.0);
let ds = ds.filter("split = 'test'");
print(ds.train_export("exports/a", #{format: "csv"}).rows);
print(ds.train_export("exports/b", #{format: "csv"}).rows);
print(ds.train_export("exports/x", #{format: "csv", expand: true}).rows);
print(ds.train_export("exports/p", #{format: "parquet", mode: "copy"}).files);
print(ds.train_export("exports/q", #{format: "parquet", mode: "copy"}).files);
"#,
    );
    let out = t.run_with(&["run", "export.rhai"]).success();
    // 240 test samples; expanded, the 20 test faces count 3 times each.
    assert_eq!(out.stdout, "240\n240\n280\n240\n240\n");
    let e = t.path().join("exports");
    assert_eq!(digest(&e.join("a/manifest.csv")), digest(&e.join("b/manifest.csv")));
    assert_eq!(digest(&e.join("a/lock.json")), digest(&e.join("b/lock.json")));
    assert_eq!(digest(&e.join("p/manifest.parquet")), digest(&e.join("q/manifest.parquet")));
    let lock: serde_json::Value = serde_json::from_slice(&std::fs::read(e.join("a/lock.json")).expect("lock")).expect("json");
    assert_eq!(lock["state"]["edits"], 1);
    assert_eq!(lock["counts"]["by_label"]["person"], 20);
    assert_eq!(lock["counts"]["by_weight"]["3"], 20);
    assert_eq!(lock["files"].as_array().expect("files").len(), 240);
    let copied = e.join("q/images/person/lfw_face_000.png");
    assert_eq!(digest(&copied), digest(&crate::util::example_dir().join("media/lfw/face/000.png")));
    // Exporting again after an edit changes the state recorded in the lock.
    let t = t.write("again.rhai", "open().relabel(\"lfw/face/000\", \"no_person\", \"x\").filter(\"split = 'test'\").train_export(\"exports/b\").rows");
    t.run_with(&["run", "again.rhai"]).success();
    assert_ne!(digest(&e.join("a/lock.json")), digest(&e.join("b/lock.json")));
}

#[test]
fn hostile_ids_and_paths_cannot_escape_the_export() {
    let t = Test::new().args(&["init", "ws"]);
    t.run().success();
    let ws = t.path().join("ws");
    std::fs::create_dir_all(ws.join("media")).expect("mkdir");
    std::fs::copy(crate::util::example_dir().join("media/lfw/face/000.png"), ws.join("media/a.png")).expect("copy");
    let outside = t.path().join("outside.png");
    std::fs::copy(crate::util::example_dir().join("media/lfw/face/001.png"), &outside).expect("copy");
    let csv = format!("id,path,label\n../../etc/passwd,media/a.png,../../up\n/abs/olute,{},person\n", outside.display());
    std::fs::write(ws.join("s.csv"), csv).expect("csv");
    t.run_with(&["-C", "ws", "import", "s.csv"]).success();
    std::fs::write(ws.join("e.rhai"), "open().train_export(\"exports/safe\", #{format: \"imagefolder\", mode: \"copy\"}).files").expect("script");
    let before: Vec<_> = walk(t.path()).into_iter().filter(|p| !p.starts_with(ws.join("exports"))).collect();
    let out = t.run_with(&["-C", "ws", "run", "e.rhai"]).success();
    assert_eq!(out.stdout.trim(), "2");
    let after: Vec<_> = walk(t.path()).into_iter().filter(|p| !p.starts_with(ws.join("exports"))).collect();
    assert_eq!(before, after, "nothing was written outside the export folder");
    let exported = walk(&ws.join("exports/safe"));
    assert!(exported.iter().all(|p| p.starts_with(ws.join("exports/safe"))));
    assert!(ws.join("exports/safe/images/_._.._up/_._.._etc_passwd.png").is_file(), "{exported:?}");
    std::fs::write(ws.join("e2.rhai"), "open().train_export(\"../escape\")").expect("script");
    let out = t.run_with(&["-C", "ws", "run", "e2.rhai"]).code(2);
    assert!(out.stderr.contains("outside the workspace"), "{}", out.stderr);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn augmentation_is_deterministic_and_recorded() {
    let script = r#"let faces = open().filter("class = 'face' AND split = 'test'").head(4);
let added = open().augment(faces, #{ops: ["flip", "crop", "brightness", "noise"], copies: 2, seed: 7});
print(`added ${added.len()} total ${open().len()}`);
let again = open().augment(faces, #{ops: ["flip", "crop", "brightness", "noise"], copies: 2, seed: 7});
print(`again ${again.len()} total ${open().len()}`);
let one = open().get("lfw/face/000~aug7.1");
print(`${one.parent_id} ${one.label} ${one.recipe}`);
"#;
    let a = Test::example().write("aug.rhai", script);
    let b = Test::example().write("aug.rhai", script);
    let out_a = a.run_with(&["run", "aug.rhai"]).success();
    let out_b = b.run_with(&["run", "aug.rhai"]).success();
    assert!(out_a.stdout.starts_with("added 8 total 1408\nagain 0 total 1408\nlfw/face/000 person {"), "{}", out_a.stdout);
    assert!(out_a.stdout.contains("\"seed\":7,\"copy\":1,\"ops\":[{\"op\":\"flip\"},{\"op\":\"crop\""), "{}", out_a.stdout);
    assert_eq!(out_a.stdout, out_b.stdout, "the same seed gives the same recipes");
    for k in 0..2 {
        let name = format!("augmented/lfw_face_000_aug7.{k}.png");
        let (x, y) = (digest(&a.path().join(&name)), digest(&b.path().join(&name)));
        assert_eq!(x, y, "{name} differs between two runs with one seed");
    }
    assert_ne!(digest(&a.path().join("augmented/lfw_face_000_aug7.0.png")), digest(&a.path().join("augmented/lfw_face_000_aug7.1.png")));
    let img = image::open(a.path().join("augmented/lfw_face_000_aug7.0.png")).expect("decodes");
    assert_eq!((img.width(), img.height()), (25, 25), "crop resizes back to the parent's size");
    let log = std::fs::read_to_string(a.path().join("edits.jsonl")).expect("log");
    let add: serde_json::Value = serde_json::from_str(log.lines().next().expect("the add entry")).expect("json");
    assert_eq!(add["source"], "aug.rhai:2", "the add entry names the script line");
    let bad = a.write("bad.rhai", "open().head(1).augment(#{ops: [\"swirl\"]})");
    let out = bad.run_with(&["run", "bad.rhai"]).code(2);
    assert!(out.stderr.contains("`swirl` is not an op"), "{}", out.stderr);
}

#[test]
fn a_value_that_does_not_fit_its_column_is_refused() {
    let t = Test::example().write("s.rhai", "open().set(\"width\", \"lfw/face/000\", \"wide\")");
    let out = t.run_with(&["run", "s.rhai"]).code(2);
    assert!(out.stderr.contains("does not fit column `width`"), "{}", out.stderr);
    assert!(!t.path().join("edits.jsonl").exists() || std::fs::read_to_string(t.path().join("edits.jsonl")).expect("log").is_empty());
    let t = t.write("ok.rhai", "print(open().set(\"width\", \"lfw/face/000\", 30).get(\"lfw/face/000\").width)");
    assert_eq!(t.run_with(&["run", "ok.rhai"]).success().stdout.trim(), "30");
}

/// Re-exporting into a folder leaves exactly the new export: files of samples no longer
/// exported and manifests of another format are removed (session 2's leftover).
#[test]
fn reexport_removes_what_the_earlier_export_left() {
    let t = Test::example()
        .write("first.rhai", "open().filter(\"split = 'test' AND (class = 'face' OR class = 'cat')\").train_export(\"exports/v\", #{format: \"csv\", mode: \"copy\"}).files")
        .write("second.rhai", "open().filter(\"split = 'test' AND class = 'face'\").train_export(\"exports/v\", #{format: \"parquet\", mode: \"copy\"}).files");
    t.run_with(&["run", "first.rhai"]).success();
    let v = t.path().join("exports/v");
    assert!(v.join("images/no_person").is_dir() && v.join("manifest.csv").exists());
    std::fs::write(v.join("NOTES.txt"), "mine").expect("a file of the user's");
    t.run_with(&["run", "second.rhai"]).success();
    let files: Vec<_> = walkdir::WalkDir::new(v.join("images")).into_iter().filter_map(|e| e.ok()).filter(|e| e.file_type().is_file()).collect();
    assert_eq!(files.len(), 20, "only the 20 test faces");
    assert!(!v.join("images/no_person").exists() && !v.join("manifest.csv").exists() && v.join("manifest.parquet").exists());
    assert!(v.join("NOTES.txt").exists(), "nothing else is touched");
    let lock: serde_json::Value = serde_json::from_slice(&std::fs::read(v.join("lock.json")).expect("lock")).expect("json");
    assert!(lock["state"]["edits_hash"].is_null(), "no edit log yet: {}", lock["state"]);
}

/// An augmented sample that was removed can be restored (its id is in the log's `add` entry,
/// not in the manifest: session 2's leftover).
#[test]
fn removed_augmented_samples_can_be_restored() {
    let t = Test::example().write(
        "aug.rhai",
        r#"let ds = open();
let added = ds.augment(ds.filter("class = 'face'").head(1), #{ops: ["flip"], copies: 1, seed: 3});
let id = added.ids()[0];
let gone = open().remove([id], "too similar");
print(`${gone.len()} ${open().restore([id]).len()} ${open().filter(`id = '${id}'`).len()}`);
"#,
    );
    let out = t.run_with(&["run", "aug.rhai"]).success();
    assert_eq!(out.stdout.trim_end().lines().last(), Some("1400 1401 1"), "{}", out.stdout);
}

/// A long log's replayed view is cached by the manifest and the log: an unchanged log is read
/// from the cache, an appended edit makes a new view (older ones stay a while: open datasets may
/// still read them), and the cached view equals a fresh replay.
#[test]
fn a_long_logs_view_is_cached_until_the_log_changes() {
    let t = with_long_log();
    let views =
        |t: &Test| -> Vec<String> { std::fs::read_dir(t.path().join(".curate/views")).map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect()).unwrap_or_default() };
    let t = t.write("count.rhai", "print(open().filter(\"label = 'person'\").len());\nprint(open(#{at: \"current\"}).filter(\"label = 'person'\").len());");
    let first = t.run_with(&["run", "count.rhai"]).success();
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert_eq!(lines[0], lines[1], "cached view = fresh replay\n{}", first.stdout);
    let cached = views(&t);
    assert_eq!(cached.len(), 1, "{cached:?}");
    let again = t.run_with(&["run", "count.rhai"]).success();
    assert_eq!(again.stdout, first.stdout);
    assert_eq!(views(&t), cached, "an unchanged log reuses its view");
    // One more edit: a new view, the old one gone, and the change is seen.
    let t = t.write("undo.rhai", "open().relabel(\"cifar/train/cat/0000\", \"no_person\", \"undo\").len()");
    t.run_with(&["run", "undo.rhai"]).success();
    let after = t.run_with(&["run", "count.rhai"]).success();
    let n: Vec<usize> = after.stdout.lines().map(|l| l.trim().parse().expect("count")).collect();
    let before: usize = lines[0].trim().parse().expect("count");
    assert_eq!((n[0], n[1]), (before - 1, before - 1), "{}", after.stdout);
    let now = views(&t);
    assert_eq!(now.len(), 2, "the newest views are kept: {now:?}");
    assert!(now.contains(&cached[0]) && now.iter().any(|v| v != &cached[0]), "{now:?}");
}

/// A view that cannot be saved (here `.curate/views` is a file, as a full disk would fail it)
/// still opens, replayed, and the session is told once.
#[test]
fn a_view_that_cannot_be_saved_is_reported_once() {
    let t = with_long_log();
    std::fs::create_dir_all(t.path().join(".curate")).expect("mkdir");
    std::fs::write(t.path().join(".curate/views"), "not a directory").expect("block the cache");
    let t = t.write(
        "twice.rhai",
        "print(open().filter(\"label = 'person'\").len());\nprint(open().filter(\"label = 'person'\").len());\nprint(open(#{at: \"current\"}).filter(\"label = 'person'\").len());",
    );
    let out = t.run_with(&["run", "twice.rhai"]).success();
    let warned: Vec<&str> = out.stdout.lines().chain(out.stderr.lines()).filter(|l| l.contains("could not be saved")).collect();
    assert_eq!(warned.len(), 1, "{}\n{}", out.stdout, out.stderr);
    assert!(warned[0].contains("views") && warned[0].contains("1200 edits"), "{}", warned[0]);
    let counts: Vec<&str> = out.stdout.lines().filter(|l| !l.contains("could not be saved")).collect();
    assert_eq!(counts.len(), 3, "{}", out.stdout);
    assert!(counts[0] == counts[1] && counts[1] == counts[2], "{}", out.stdout);
}

/// The example workspace with a log of 1,200 relabels, over the view cache's threshold.
fn with_long_log() -> Test {
    let t = Test::example().write("one.rhai", "open().relabel(\"cifar/test/cat/0000\", \"person\", \"seed\").len()");
    t.run_with(&["run", "one.rhai"]).success();
    let log_path = t.path().join("edits.jsonl");
    let line = std::fs::read_to_string(&log_path).expect("log");
    let line = line.trim_end();
    // 1,200 relabels of distinct cat and dog images, in the format the primitive wrote.
    let mut text = String::new();
    for class in ["cat", "dog", "frog", "ship", "truck", "horse", "bird", "deer", "automobile", "airplane"] {
        for (split, n) in [("train", 100), ("test", 20)] {
            for i in 0..n {
                text.push_str(&line.replace("cifar/test/cat/0000", &format!("cifar/{split}/{class}/{i:04}")));
                text.push('\n');
            }
        }
    }
    std::fs::write(&log_path, &text).expect("log");
    t
}
