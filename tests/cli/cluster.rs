//! `examples/cluster/`: the shard command that Slurm, Kubernetes and Ray run, taking its index
//! from each engine's variable, and the merge of the shards' parts by the next command, equal
//! to one process's run.

use std::collections::HashMap;
use std::process::Command;

use crate::util::{repo, Test};

/// The stored embeddings, checking that no image has two rows.
fn vectors(t: &Test) -> HashMap<String, Vec<f32>> {
    let (rows, stored) = crate::util::stored_embeddings(t);
    assert_eq!(rows, stored.len(), "no row twice");
    stored
}

#[test]
fn shards_run_by_any_engine_merge_into_one_run() {
    let single = Test::example_without_vectors();
    single.run_with(&["embed", "--model", "vww"]).success();
    let sharded = Test::example_without_vectors();
    let script = repo().join("examples/cluster/embed-shard.sh");
    for (var, index) in [("SLURM_ARRAY_TASK_ID", "0"), ("JOB_COMPLETION_INDEX", "1"), ("CURATE_SHARD_INDEX", "2")] {
        let out = Command::new("bash")
            .arg(&script)
            .args([sharded.path().to_str().expect("utf-8"), "3", "", "vww"])
            .env("CURATE", env!("CARGO_BIN_EXE_curate"))
            .env("CI", "true")
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("CURATE_SHARD_INDEX")
            .env(var, index)
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "shard {index} ({var}): {}", String::from_utf8_lossy(&out.stderr));
    }
    // Three shards left their own parts; the next command merges them and has nothing to do.
    let out = sharded.run_with(&["embed", "--model", "vww", "--json"]).success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!((report["embedded"].as_u64(), report["cached"].as_u64()), (Some(0), Some(1400)), "{}", out.stdout);
    assert_eq!(vectors(&sharded), vectors(&single));
    // Predictions shard the same way.
    for i in 0..3 {
        sharded.run_with(&["predict", "--model", "vww", "--shard", &format!("{i}/3")]).success();
    }
    let out = sharded.run_with(&["predict", "--model", "vww", "--out", "p.csv", "--json"]).success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!((report["embedded"].as_u64(), report["cached"].as_u64()), (Some(0), Some(1400)), "{}", out.stdout);
    single.run_with(&["predict", "--model", "vww", "--out", "p.csv"]).success();
    assert_eq!(std::fs::read_to_string(sharded.path().join("p.csv")).expect("p.csv"), std::fs::read_to_string(single.path().join("p.csv")).expect("p.csv"));
    let out = sharded.run_with(&["predict", "--shard", "0/3", "--out", "q.csv"]);
    assert_ne!(out.code, 0, "a shard's predictions are not the dataset's");
    // Without an index, the script says where it looks for one.
    let out = Command::new("bash").arg(&script).args(["/nowhere", "3"]).env_remove("SLURM_ARRAY_TASK_ID").env_remove("JOB_COMPLETION_INDEX").env_remove("CURATE_SHARD_INDEX").output().expect("bash");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("JOB_COMPLETION_INDEX"));
}

/// Every file of the workspace's stores (embeddings and predictions), by path, but lock files.
fn store_files(t: &Test) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for kind in ["embeddings", "predictions"] {
        let base = t.path().join(".curate").join(kind);
        for dir in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(dir.path()).expect("store").flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                if !name.ends_with(".lock") {
                    out.insert(format!("{kind}/{}/{name}", dir.file_name().to_string_lossy()), std::fs::read(f.path()).expect("read"));
                }
            }
        }
    }
    out
}

#[test]
fn four_shard_processes_and_a_merge_give_one_process_stores_byte_for_byte() {
    let single = Test::example_without_vectors();
    single.run_with(&["embed", "--model", "vww"]).success();
    single.run_with(&["predict", "--model", "vww", "--out", "p.csv"]).success();
    let want = store_files(&single);
    assert!(want.keys().any(|k| k.starts_with("embeddings/")) && want.keys().any(|k| k.starts_with("predictions/")), "{:?}", want.keys());

    // On one workspace: embedding shards one after another (a later shard finds the earlier
    // ones' parts and must leave them be), prediction shards all at once; then the next command
    // merges their parts.
    let shared = Test::example_without_vectors();
    for i in 0..4 {
        shared.run_with(&["embed", "--model", "vww", "--shard", &format!("{i}/4")]).success();
    }
    for step in [["predict", "--model", "vww"]] {
        let children: Vec<_> = (0..4)
            .map(|i| {
                Command::new(env!("CARGO_BIN_EXE_curate"))
                    .current_dir(shared.path())
                    .args(step)
                    .args(["--shard", &format!("{i}/4")])
                    .env("CI", "true")
                    .env_remove("CURATE_RUNTIME")
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn a shard")
            })
            .collect();
        for mut c in children {
            assert!(c.wait().expect("wait").success(), "a shard of {step:?} failed");
        }
    }
    shared.run_with(&["predict", "--model", "vww", "--out", "p.csv"]).success();
    let out = shared.run_with(&["embed", "--model", "vww", "--json"]).success();
    assert!(out.stdout.contains("\"embedded\": 0"), "{}", out.stdout);
    assert_eq!(store_files(&shared), want, "shards on one workspace");

    // Four machines, each with its own copy, merged into a fifth.
    let machines: Vec<Test> = (0..4).map(|_| Test::example_without_vectors()).collect();
    for (i, m) in machines.iter().enumerate() {
        m.run_with(&["embed", "--model", "vww", "--shard", &format!("{i}/4")]).success();
        m.run_with(&["predict", "--model", "vww", "--shard", &format!("{i}/4")]).success();
    }
    let merged = Test::example_without_vectors();
    let paths: Vec<String> = machines.iter().map(|m| m.path().display().to_string()).collect();
    let mut args = vec!["merge"];
    args.extend(paths.iter().map(String::as_str));
    merged.run_with(&args).success();
    assert_eq!(store_files(&merged), want, "shards on separate machines");
    assert_eq!(std::fs::read(shared.path().join("p.csv")).expect("p.csv"), std::fs::read(single.path().join("p.csv")).expect("p.csv"));
}

#[test]
fn the_index_built_per_shard_answers_as_one() {
    // The prepared MobileNetV2 vectors of all 1,400 images (the script embeds nothing more);
    // each of 24 test images' 5 nearest test images through the shards' indexes and exactly.
    let t = Test::example().write("embed.rhai", "open().filter(\"split = 'test'\").embed().len()").write(
        "near.rhai",
        "let ds = open().filter(\"split = 'test'\");\nlet out = [];\nfor id in ds.sample(24, 3).ids() {\n  let a = ds.similar(id, 5);\n  let b = ds.similar(id, 5, #{exact: true});\n  out.push([a.col(\"id\"), a.col(\"distance\"), b.col(\"id\"), b.col(\"distance\")]);\n}\nout",
    );
    t.run_with(&["run", "embed.rhai"]).success();
    let mut total = 0;
    for i in 0..4 {
        let out = t.run_with(&["index", "--shard", &format!("{i}/4"), "--json"]).success();
        let r: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        assert_eq!((r["shard"].as_str(), r["action"].as_str()), (Some(format!("{i}/4").as_str()), Some("built")), "{r}");
        total += r["vectors"].as_u64().expect("vectors");
    }
    assert_eq!(total, 1400, "the shards hold every vector once");
    let out = t.run_with(&["run", "near.rhai", "--json"]).success();
    let r: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let queries = r["result"].as_array().expect("results");
    assert_eq!(queries.len(), 24);
    for q in queries {
        assert_eq!(q[0], q[2], "{q}: the shards' merged neighbours are the exact ones");
        for (a, b) in q[1].as_array().expect("distances").iter().zip(q[3].as_array().expect("distances")) {
            assert!((a.as_f64().expect("f") - b.as_f64().expect("f")).abs() < 2e-3, "{a} vs {b}");
        }
    }
    // A rebuilt shard is fresh; a shard out of range is refused.
    let out = t.run_with(&["index", "--shard", "2/4", "--json"]).success();
    assert!(out.stdout.contains("\"fresh\""), "{}", out.stdout);
    t.run_with(&["index", "--shard", "4/4"]).code(2);
}

/// A workspace of 48 real photos, 8 of them again as resized, re-encoded copies and 4 as
/// byte-identical copies: the near-duplicates a dedupe must find.
fn photos_with_copies() -> Test {
    let t = Test::new();
    std::fs::copy(crate::util::example_dir().join("curate.toml"), t.path().join("curate.toml")).expect("config");
    #[cfg(unix)]
    std::os::unix::fs::symlink(crate::util::example_dir().join("models"), t.path().join("models")).expect("link models");
    let src = crate::util::example_dir().join("media/cifar/train");
    let dir = t.path().join("images");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let classes = ["cat", "dog", "ship", "truck", "horse", "frog"];
    for (c, class) in classes.iter().enumerate() {
        for i in 0..8 {
            let from = src.join(class).join(format!("{i:04}.jpg"));
            let name = format!("{class}-{i}.jpg");
            std::fs::copy(&from, dir.join(&name)).expect("copy");
            if i == 0 || (i == 1 && c < 2) {
                let img = image::open(&from).expect("decode").resize_exact(28, 28, image::imageops::FilterType::Triangle).to_rgb8();
                let mut out = std::fs::File::create(dir.join(format!("{class}-{i}-small.jpg"))).expect("create");
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 60).encode_image(&img).expect("encode");
            }
            if i == 2 && c < 4 {
                std::fs::copy(&from, dir.join(format!("{class}-{i}-copy.jpg"))).expect("copy");
            }
        }
    }
    t.run_with(&["import", "images"]).success();
    t.run_with(&["embed", "--model", "mobilenet"]).success();
    t
}

#[test]
fn dedupe_shards_give_one_process_clusters() {
    let t = photos_with_copies();
    let out = t.run_with(&["dedupe", "--model", "mobilenet", "--json"]).success();
    let single: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert!(single["shards"].is_null(), "{single}");
    assert!(single["clusters"].as_u64() >= Some(8), "the copies are found: {single}");
    // Four shard processes at once, then the same dedupe reads their neighbours.
    let children: Vec<_> = (0..4)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_curate"))
                .current_dir(t.path())
                .args(["dedupe", "--model", "mobilenet", "--shard", &format!("{i}/4"), "--json"])
                .env("CI", "true")
                .output()
                .expect("a shard runs")
        })
        .collect();
    let mut images = 0;
    for out in children {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        images += r["images"].as_u64().expect("images");
    }
    assert_eq!(images, 56, "every distinct image in one shard (the 4 byte-identical copies share a vector)");
    let out = t.run_with(&["dedupe", "--model", "mobilenet", "--json"]).success();
    let sharded: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(sharded["shards"], 4, "{sharded}");
    assert_eq!(sharded["duplicates"], single["duplicates"], "the same clusters, row for row");
    assert_eq!((sharded["clusters"].clone(), sharded["leaks"].clone()), (single["clusters"].clone(), single["leaks"].clone()));
    // A script's `duplicates()` reads them too, and agrees.
    let t = t.write("d.rhai", "open().duplicates(#{model: \"mobilenet\"}).len()");
    let out = t.run_with(&["run", "d.rhai", "--json"]).success();
    assert!(out.stdout.contains(&format!("\"result\": {}", single["images"])), "{}", out.stdout);
}

#[test]
fn shards_on_separate_machines_merge_into_one_workspace() {
    let single = Test::example_without_vectors();
    single.run_with(&["embed", "--model", "vww"]).success();
    // Two machines, each with its own copy of the workspace: one leaves its parts, the other
    // has already merged them into its store (any command there compacts).
    let a = Test::example_without_vectors();
    a.run_with(&["embed", "--model", "vww", "--shard", "0/2"]).success();
    let b = Test::example_without_vectors();
    b.run_with(&["embed", "--model", "vww", "--shard", "1/2"]).success();
    b.run_with(&["predict", "--model", "vww", "--shard", "1/2"]).success();
    for entry in std::fs::read_dir(b.path().join(".curate/embeddings")).expect("b's embeddings") {
        curate_stdlib::store::compact(&entry.expect("entry").path(), curate_stdlib::store::Layout::EMBEDDINGS).expect("b compacts");
    }
    let merged = Test::example_without_vectors();
    let (pa, pb) = (a.path().to_str().expect("utf-8"), b.path().to_str().expect("utf-8"));
    let out = merged.run_with(&["merge", pa, pb, "--json"]).success();
    let r: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let stores = r["stores"].as_array().expect("stores");
    assert_eq!(stores.len(), 2, "{r}");
    assert!(stores.iter().any(|s| s["store"].as_str().is_some_and(|n| n.starts_with("embeddings/vww-")) && s["stored"] == 1400), "{r}");
    assert!(stores.iter().any(|s| s["store"].as_str().is_some_and(|n| n.starts_with("predictions/vww-")) && s["parts"].as_u64() > Some(0)), "{r}");
    let out = merged.run_with(&["embed", "--model", "vww", "--json"]).success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!((report["embedded"].as_u64(), report["cached"].as_u64()), (Some(0), Some(1400)), "{}", out.stdout);
    // Rows from a's parts are a single run's exactly; rows from b's store went through its f16
    // unit vector once more, so they agree to the f16 step.
    let (want, got) = (vectors(&single), vectors(&merged));
    assert_eq!(want.len(), got.len());
    for (h, x) in &want {
        let y = &got[h];
        for (p, q) in x.iter().zip(y) {
            assert!((p - q).abs() <= 2e-3 * p.abs().max(q.abs()) + 1e-6, "{h}: {p} vs {q}");
        }
    }
    // Merging again changes nothing; merging a workspace with itself is refused.
    merged.run_with(&["merge", pa]).success();
    assert_eq!(vectors(&merged).len(), 1400);
    let me = merged.path().to_str().expect("utf-8").to_string();
    merged.run_with(&["merge", &me]).code(2);
}

/// A Ray head started here (`ray` from PyPI in the test venv), stopped when dropped.
struct RayHead {
    ray: std::path::PathBuf,
}

impl Drop for RayHead {
    fn drop(&mut self) {
        let _ = Command::new(&self.ray).args(["stop", "--force"]).output();
    }
}

#[test]
fn a_ray_driver_runs_the_shard_commands_as_tasks() {
    let python = curate_stdlib::testing::python_with(&["ray==2.52.1"]);
    let ray = python.parent().expect("venv bin").join("ray");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    // Ray's workers inherit the head's environment: that is where they find `curate`.
    let out = Command::new(&ray)
        .args(["start", "--head", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", "--node-ip-address=127.0.0.1", &format!("--port={port}")])
        .env("CURATE", env!("CARGO_BIN_EXE_curate"))
        .env("CI", "true")
        .output()
        .expect("ray start");
    let _head = RayHead { ray: ray.clone() };
    assert!(out.status.success(), "ray start: {}", String::from_utf8_lossy(&out.stderr));
    let single = Test::example_without_vectors();
    single.run_with(&["embed", "--model", "vww"]).success();
    let t = Test::example_without_vectors();
    let out = Command::new(&python)
        .arg(repo().join("examples/cluster/ray_driver.py"))
        .args([t.path().to_str().expect("utf-8"), "3", "vww"])
        .env("RAY_ADDRESS", format!("127.0.0.1:{port}"))
        .env("CURATE", env!("CARGO_BIN_EXE_curate"))
        .env("CI", "true")
        .output()
        .expect("the driver runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "driver: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("vww: 1400 images")).collect();
    assert_eq!(lines.len(), 4, "three shards and the merge: {stdout}");
    assert!(lines[3].contains("0 embedded, 1400 already cached"), "{stdout}");
    assert_eq!(vectors(&t), vectors(&single));
}
