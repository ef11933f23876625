//! Embeddings, the cache, and similarity on real images.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{example_dir, Test};

fn cache_vectors(t: &Test) -> HashMap<String, Vec<f32>> {
    crate::util::stored_embeddings(t).1
}

fn temp_files(t: &Test) -> usize {
    walk(&t.path().join(".curate")).into_iter().filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".curate-tmp"))).count()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn embed_is_incremental() {
    let t = Test::example_without_vectors().write("s.rhai", "open().filter(\"split = 'test'\").embed()").args(&["run", "s.rhai"]);
    let out = t.run().success();
    assert!(out.stdout.contains("240 images, 240 embedded, 0 already cached, 0 failed"), "{}", out.stdout);
    let first = cache_vectors(&t);
    assert_eq!(first.len(), 240);
    assert!(first.values().all(|v| v.len() == 1280));
    let t = t.write("s.rhai", "open().filter(\"split = 'test' OR class = 'face'\").embed()");
    let out = t.run().success();
    assert!(out.stdout.contains("320 images, 80 embedded, 240 already cached"), "{}", out.stdout);
}

#[test]
fn a_killed_embed_resumes_and_matches_a_clean_run() {
    // 700 real images: the kill lands after the first part of 256 is written.
    let csv = std::fs::read_to_string(example_dir().join("samples.csv")).expect("samples.csv");
    let subset: Vec<&str> = csv.lines().take(701).collect();
    let t = Test::example_without_vectors().write("subset.csv", &(subset.join("\n") + "\n")).args(&["import", "subset.csv"]);
    t.run().success();
    let mut child = Command::new(env!("CARGO_BIN_EXE_curate")).args(["embed"]).current_dir(t.path()).env("CI", "true").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let dir = t.path().join(".curate/embeddings");
    let started = Instant::now();
    loop {
        let parts = walk(&dir).iter().filter(|p| p.extension().is_some_and(|e| e == "arrow")).count();
        let exited = child.try_wait().expect("try_wait").is_some();
        assert!(!exited, "embed ended before it could be killed");
        if parts >= 1 || started.elapsed() > Duration::from_secs(300) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    let partial = cache_vectors(&t).len();
    assert!(partial > 0 && partial < 700, "killed halfway: {partial} cached");

    let out = t.run_with(&["embed", "--json"]).success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(report["embedded"].as_u64().unwrap_or(0) as usize + partial, 700, "{report}");
    let resumed = cache_vectors(&t);
    assert_eq!(temp_files(&t), 0, "no temp files survive a finished run");

    let clean = Test::example_without_vectors().write("subset.csv", &(subset.join("\n") + "\n")).args(&["import", "subset.csv"]);
    clean.run().success();
    let clean = clean.args(&["embed"]);
    clean.run().success();
    let clean = cache_vectors(&clean);
    assert_eq!(resumed.len(), clean.len());
    for (h, v) in &clean {
        assert_eq!(resumed.get(h), Some(v), "vector of {h} differs");
    }
}

#[test]
fn unreadable_images_are_reported_and_skipped() {
    let t = Test::example_without_vectors()
        .write("bad/corrupt.jpg", "\u{ff}\u{d8} not a jpeg")
        .write("list.csv", "id,path,label\nok,media/cifar/test/cat/0000.jpg,cat\ncorrupt,bad/corrupt.jpg,cat\ngone,bad/gone.png,cat\n");
    let t = t.args(&["import", "list.csv"]);
    t.run().success();
    let out = t.args(&["embed", "--json"]).run().success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(report["embedded"], 1, "{report}");
    let failed: Vec<&str> = report["failed"].as_array().expect("failed").iter().map(|f| f["id"].as_str().unwrap_or("")).collect();
    assert_eq!(failed, ["corrupt", "gone"], "{report}");
    assert!(report["failed"][0]["message"].as_str().unwrap_or("").contains("cannot decode"), "{report}");
    assert!(report["failed"][1]["message"].as_str().unwrap_or("").contains("cannot read"), "{report}");
}

#[test]
fn similar_by_id_by_set_and_by_outside_image() {
    let t = Test::example();
    std::fs::copy(example_dir().join("media/lfw/face/013.png"), t.path().join("query.png")).expect("copy");
    let script = r#"
let ds = open().filter("split = 'test'").embed();
let by_id = ds.similar("cifar/test/ship/0004", 10);
assert(by_id.len() == 10, "ten neighbours");
assert(!by_id.ids().contains("cifar/test/ship/0004"), "the query is left out");
let d = by_id.col("distance");
for i in 1..d.len() { assert(d[i - 1] <= d[i], "sorted by distance"); }
let exact = ds.similar("cifar/test/ship/0004", 10, #{exact: true});
assert(by_id.ids() == exact.ids(), `ANN ${by_id.ids()} != exact ${exact.ids()}`);
let faces = ds.filter("class = 'face'").sample(3, 1);
let by_set = ds.similar(faces, 5, #{exact: true});
assert(by_set.len() == 5, "five");
for q in by_set.col("query") { assert(faces.ids().contains(q), "query column names a query"); }
let outside = ds.similar("query.png", 5);
assert(outside.len() == 5, "five");
for q in outside.col("query") { assert(q == "query.png", "query is the file"); }
print(outside.filter("class = 'face'").len());
"#;
    let out = t.write("s.rhai", script).args(&["run", "s.rhai"]).run().success();
    let faces: usize = out.stdout.lines().last().and_then(|l| l.trim().parse().ok()).expect("a count");
    assert!(faces >= 4, "an LFW face finds faces: {faces} of 5\n{}", out.stdout);
}

#[test]
fn model_declaration_errors_name_the_model() {
    let t = Test::example_without_vectors();
    let config = std::fs::read_to_string(t.path().join("curate.toml")).expect("config");
    // The VWW model takes NHWC input; declare it NCHW.
    let wrong = config.replace("layout = \"nhwc\"", "layout = \"nchw\"");
    let t = t.write("curate.toml", &wrong).write("s.rhai", "open().head(2).embed(\"vww\")");
    let out = t.run_with(&["run", "s.rhai"]).code(2);
    assert!(out.stderr.contains("model `vww`"), "{}", out.stderr);
    assert!(out.stderr.contains("[1, 3, 96, 96]"), "{}", out.stderr);

    let t = t.write("s.rhai", "open().head(2).embed(\"mobilenet\")").write("curate.toml", &config.replace("embedding = \"embedding\"", "embedding = \"pool_out\""));
    let out = t.run_with(&["run", "s.rhai"]).code(2);
    assert!(out.stderr.contains("model `mobilenet`"), "{}", out.stderr);
    assert!(out.stderr.contains("pool_out"), "{}", out.stderr);
    assert!(out.stderr.contains("outputs are: logits, embedding") || out.stderr.contains("outputs are: embedding, logits"), "{}", out.stderr);

    let out = t.write("s.rhai", "open().embed(\"nope\")").args(&["run", "s.rhai"]).run().code(2);
    assert!(out.stderr.contains("model `nope`: not declared in curate.toml (models: mobilenet, vww)"), "{}", out.stderr);
}

#[test]
fn shards_split_the_work_and_merge_by_content_hash() {
    let csv = std::fs::read_to_string(example_dir().join("samples.csv")).expect("samples.csv");
    let subset: Vec<&str> = csv.lines().take(161).collect();
    let t = Test::example_without_vectors().write("subset.csv", &(subset.join("\n") + "\n"));
    t.run_with(&["import", "subset.csv"]).success();
    let count = |args: &[&str]| -> u64 {
        let out = t.run_with(args).success();
        let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        report["embedded"].as_u64().expect("embedded")
    };
    let a = count(&["embed", "--shard", "0/2", "--json"]);
    let b = count(&["embed", "--shard", "1/2", "--json"]);
    assert!(a > 0 && b > 0, "both shards get work: {a} + {b}");
    assert_eq!(a + b, 160);
    assert_eq!(count(&["embed", "--json"]), 0, "the two shards together cover everything");
    let out = t.run_with(&["embed", "--shard", "2/2"]).code(2);
    assert!(out.stderr.contains("need 0 <= i < n"), "{}", out.stderr);
}

/// A query sample outside the embedded view (a missed test image against the training split)
/// is embedded on the fly, and finds what it finds once everything is embedded.
#[test]
fn a_query_outside_the_embedded_view_is_embedded_on_the_fly() {
    let t = Test::example_without_vectors()
        .write("scripts/fresh.rhai", "let train = open().filter(\"split = 'train' AND class = 'face'\").embed();\ntrain.similar(\"lfw/face/005\", 4, #{exact: true}).ids()")
        .write("scripts/all.rhai", "open().filter(\"class = 'face'\").embed().filter(\"split = 'train'\").similar(\"lfw/face/005\", 4, #{exact: true}).ids()");
    let fresh = t.run_with(&["run", "scripts/fresh.rhai"]).success();
    assert!(fresh.stdout.contains("lfw/face/"), "{}", fresh.stdout);
    let all = t.run_with(&["run", "scripts/all.rhai"]).success();
    let last = |s: &str| s.lines().last().unwrap_or_default().to_string();
    assert_eq!(last(&fresh.stdout), last(&all.stdout));
}
