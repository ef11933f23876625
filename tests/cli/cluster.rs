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
    let single = Test::example();
    single.run_with(&["embed", "--model", "vww"]).success();
    let sharded = Test::example();
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

#[test]
fn shards_on_separate_machines_merge_into_one_workspace() {
    let single = Test::example();
    single.run_with(&["embed", "--model", "vww"]).success();
    // Two machines, each with its own copy of the workspace: one leaves its parts, the other
    // has already merged them into its store (any command there compacts).
    let a = Test::example();
    a.run_with(&["embed", "--model", "vww", "--shard", "0/2"]).success();
    let b = Test::example();
    b.run_with(&["embed", "--model", "vww", "--shard", "1/2"]).success();
    b.run_with(&["predict", "--model", "vww", "--shard", "1/2"]).success();
    for entry in std::fs::read_dir(b.path().join(".curate/embeddings")).expect("b's embeddings") {
        curate_stdlib::store::compact(&entry.expect("entry").path(), curate_stdlib::store::Layout::EMBEDDINGS).expect("b compacts");
    }
    let merged = Test::example();
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
    let single = Test::example();
    single.run_with(&["embed", "--model", "vww"]).success();
    let t = Test::example();
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
