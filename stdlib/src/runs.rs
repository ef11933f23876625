//! The records of `curate test`: one JSON file per run of the data unit tests in
//! `.curate/runs/`, named by the run's id (`00007-20261125-215221.json`), so that the files sort
//! in the order the runs were made. `curate test --baseline` and `--compare` read them back, and
//! `influence("test name")` reads the failing samples of the latest one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::workspace::Workspace;

/// The outcome of a rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub pass: bool,
    pub metric: String,
    pub value: Option<f64>,
    pub op: String,
    pub threshold: Option<f64>,
    pub n: usize,
    /// Why it could not be judged (an empty slice, no baseline).
    pub error: Option<String>,
    #[serde(default)]
    pub failing: Vec<String>,
}

impl Verdict {
    pub fn describe(&self) -> String {
        let value = match self.value {
            Some(v) if self.metric == "count" => format!("{v}"),
            Some(v) => format!("{v:.3}"),
            None => "n/a".into(),
        };
        let op = match self.op.as_str() {
            ">=" => "≥",
            "<=" => "≤",
            other => other,
        };
        let rule = match self.threshold {
            Some(t) => format!("{} = {value} {op} {}", self.metric, trim(t)),
            None => format!("{} = {value} {op}", self.metric),
        };
        match &self.error {
            Some(e) => format!("{rule}: error: {e}"),
            None => format!("{rule}: {} (n={})", if self.pass { "pass" } else { "fail" }, self.n),
        }
    }
}

/// A threshold as written: short numbers as they are, long ones to four places.
pub(crate) fn trim(x: f64) -> String {
    let s = format!("{x}");
    if s.len() > 8 {
        format!("{x:.4}")
    } else {
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResult {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub status: Status,
    pub verdicts: Vec<Verdict>,
    /// The error, for a test that could not be judged.
    pub message: Option<String>,
    pub seconds: f64,
}

impl TestResult {
    /// The value the test measured (its first rule's), for baselines and comparisons.
    pub fn value(&self) -> Option<f64> {
        self.verdicts.first().and_then(|v| v.value)
    }

    /// What the test found, in one line: its error, or each rule's verdict.
    pub fn describe(&self) -> String {
        match (&self.message, self.verdicts.as_slice()) {
            (Some(m), _) => m.lines().next().unwrap_or_default().to_string(),
            (None, []) => "returned true".to_string(),
            (None, vs) => vs.iter().map(Verdict::describe).collect::<Vec<_>>().join("; "),
        }
    }

    /// The samples its rules counted against it, each once, in the order the rules list them
    /// (most confident mistakes first).
    pub fn failing(&self) -> Vec<String> {
        let mut failing: Vec<String> = Vec::new();
        for id in self.verdicts.iter().flat_map(|v| v.failing.iter()) {
            if !failing.contains(id) {
                failing.push(id.clone());
            }
        }
        failing
    }
}

/// One recorded run of the suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub time: String,
    pub curate_version: String,
    pub predictions: String,
    /// The model's file hash, or the predictions file's content hash.
    pub predictions_hash: Option<String>,
    /// The manifest's content hash: the dataset state tested.
    pub manifest_hash: String,
    /// The edit log's content hash (None without a log): with the manifest, the state tested.
    #[serde(default)]
    pub edits_hash: Option<String>,
    pub tests: Vec<TestResult>,
}

impl Run {
    /// A new run of `tests` on the workspace's current state, against `predictions` (a label
    /// such as "model vww", and the model's or file's hash), with the next id in `ws`'s runs.
    pub fn new(ws: &Workspace, predictions: String, predictions_hash: Option<String>, tests: Vec<TestResult>) -> Result<Run> {
        let manifest = std::fs::read(ws.manifest_path()).map_err(|e| CurateError::io(ws.manifest_path(), e))?;
        let (id, time) = new_id(&dir(ws));
        Ok(Run {
            id,
            time,
            curate_version: env!("CARGO_PKG_VERSION").to_string(),
            predictions,
            predictions_hash,
            manifest_hash: blake3::hash(&manifest).to_hex().to_string(),
            edits_hash: std::fs::read(ws.edits_path()).ok().map(|b| blake3::hash(&b).to_hex().to_string()),
            tests,
        })
    }

    pub fn count(&self, s: Status) -> usize {
        self.tests.iter().filter(|t| t.status == s).count()
    }

    /// Its values by (test, metric), which `no_drop(δ)` compares with.
    pub fn values(&self) -> Vec<(String, String, f64)> {
        self.tests.iter().flat_map(|t| t.verdicts.iter().filter_map(move |v| v.value.map(|x| (t.name.clone(), v.metric.clone(), x)))).collect()
    }
}

/// Where a workspace's runs are recorded.
pub fn dir(ws: &Workspace) -> PathBuf {
    ws.cache_dir().join("runs")
}

/// The recorded runs' files, oldest first (none when nothing was recorded).
pub fn list(ws: &Workspace) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir(ws)).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "json")).collect()).unwrap_or_default();
    files.sort();
    files
}

/// Read one run record.
pub fn read(path: &Path) -> Result<Run> {
    let bytes = std::fs::read(path).map_err(|e| CurateError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| CurateError::io(path, format!("not a test run record: {e}")))
}

/// The latest recorded run, if there is one.
pub fn latest(ws: &Workspace) -> Result<Option<Run>> {
    list(ws).last().map(|p| read(p)).transpose()
}

/// A run by id, by `latest` / `previous`, or by the path of its JSON file.
pub fn load(ws: &Workspace, which: &str) -> Result<Run> {
    let path = if which == "latest" || which == "previous" {
        let files = list(ws);
        let back = if which == "latest" { 1 } else { 2 };
        files.len().checked_sub(back).map(|i| files[i].clone()).ok_or_else(|| CurateError::arg("--baseline", format!("no {which} run in {}: run `curate test` first", dir(ws).display())))?
    } else if which.ends_with(".json") {
        PathBuf::from(which)
    } else {
        dir(ws).join(format!("{which}.json"))
    };
    read(&path)
}

/// Record `run` in the workspace's runs, atomically; returns its file.
pub fn save(ws: &Workspace, run: &Run) -> Result<PathBuf> {
    let path = dir(ws).join(format!("{}.json", run.id));
    let bytes = serde_json::to_vec_pretty(run).map_err(|e| CurateError::io(&path, e))?;
    crate::atomic::write_atomic(&path, |f| f.write_all(&bytes).map_err(|e| CurateError::io(&path, e)))?;
    Ok(path)
}

/// A new run's id and time. Ids start with a sequence number, so that they sort in the order
/// the runs were made even within one second: `00007-20261125-215221`.
fn new_id(dir: &Path) -> (String, String) {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact = stamp.replace(['-', ':'], "").trim_end_matches('Z').replace('T', "-");
    let mut seq = std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()?.file_name().to_str()?.split('-').next()?.parse::<u64>().ok()).max().unwrap_or(0)).unwrap_or(0);
    loop {
        seq += 1;
        let id = format!("{seq:05}-{compact}");
        if !dir.join(format!("{id}.json")).exists() {
            return (id, stamp);
        }
    }
}

/// The failing samples of the test `name` in the latest recorded run, and the run's id; `None`
/// when there is no run or it has no such test.
pub fn failing_in_latest(ws: &Workspace, name: &str) -> Result<Option<(String, Vec<String>)>> {
    let Some(run) = latest(ws)? else { return Ok(None) };
    let Some(test) = run.tests.iter().find(|t| t.name == name) else { return Ok(None) };
    Ok(Some((run.id.clone(), test.failing())))
}

/// The rows of `ds` named by `ids`, in that order (a failing test's samples, to draw).
pub fn samples(ds: &Dataset, ids: Vec<String>) -> Result<Dataset> {
    let order = DataFrame::new(ids.len(), vec![Column::new("id".into(), ids)])?;
    ds.derive(ds.annotate(order))
}

/// How a test changed from one run to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the later run.
    New,
    /// Passed before, does not now.
    Broken,
    /// Did not pass before, does now.
    Fixed,
    /// Failed before and errors now, or the other way round.
    Changed,
    Same,
    /// Only in the earlier run.
    Removed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Broken => "broken",
            Change::Fixed => "fixed",
            Change::Changed => "changed",
            Change::Same => "same",
            Change::Removed => "removed",
        }
    }
}

/// The values a test measured in both runs (absent for a removed test).
#[derive(Debug, Clone, Serialize)]
pub struct Values {
    pub value_before: Option<f64>,
    pub value_after: Option<f64>,
    pub delta: Option<f64>,
}

/// One test in a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct TestChange {
    pub name: String,
    pub change: Change,
    pub before: Option<Status>,
    pub after: Option<Status>,
    #[serde(flatten)]
    pub values: Option<Values>,
}

/// What run `b` fixes and breaks relative to run `a` (`curate test --compare A B`).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub fixed: usize,
    pub broken: usize,
    /// `b`'s tests in its order, then those only `a` has.
    pub tests: Vec<TestChange>,
}

pub fn compare(a: &Run, b: &Run) -> Comparison {
    let before: HashMap<&str, &TestResult> = a.tests.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut tests = Vec::new();
    for t in &b.tests {
        let old = before.get(t.name.as_str());
        let change = match old.map(|o| o.status) {
            None => Change::New,
            Some(Status::Pass) if t.status != Status::Pass => Change::Broken,
            Some(s) if s != Status::Pass && t.status == Status::Pass => Change::Fixed,
            Some(s) if s != t.status => Change::Changed,
            _ => Change::Same,
        };
        let delta = match (old.and_then(|o| o.value()), t.value()) {
            (Some(x), Some(y)) => Some(y - x),
            _ => None,
        };
        let values = Values { value_before: old.and_then(|o| o.value()), value_after: t.value(), delta };
        tests.push(TestChange { name: t.name.clone(), change, before: old.map(|o| o.status), after: Some(t.status), values: Some(values) });
    }
    for t in &a.tests {
        if !b.tests.iter().any(|x| x.name == t.name) {
            tests.push(TestChange { name: t.name.clone(), change: Change::Removed, before: Some(t.status), after: None, values: None });
        }
    }
    let count = |c: Change| tests.iter().filter(|t| t.change == c).count();
    Comparison { a: a.id.clone(), b: b.id.clone(), fixed: count(Change::Fixed), broken: count(Change::Broken), tests }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, status: Status, value: Option<f64>) -> TestResult {
        let verdicts =
            value.map(|v| Verdict { pass: status == Status::Pass, metric: "recall(person)".into(), value: Some(v), op: ">=".into(), threshold: Some(0.5), n: 10, error: None, failing: vec![] });
        TestResult { name: name.into(), file: "tests/t.rhai".into(), line: 1, status, verdicts: verdicts.into_iter().collect(), message: None, seconds: 0.0 }
    }

    fn run(id: &str, tests: Vec<TestResult>) -> Run {
        Run { id: id.into(), time: "t".into(), curate_version: "0".into(), predictions: "model m".into(), predictions_hash: None, manifest_hash: "h".into(), edits_hash: None, tests }
    }

    #[test]
    fn a_comparison_serialises_as_the_compare_command_always_printed_it() {
        let a = run("1", vec![result("kept", Status::Pass, Some(0.9)), result("gone", Status::Fail, None), result("mended", Status::Fail, Some(0.2))]);
        let b = run("2", vec![result("kept", Status::Fail, Some(0.4)), result("mended", Status::Pass, Some(0.7)), result("fresh", Status::Pass, None)]);
        let c = compare(&a, &b);
        assert_eq!((c.fixed, c.broken), (1, 1));
        let json = serde_json::to_string(&c).expect("serialises");
        assert_eq!(
            json,
            r#"{"a":"1","b":"2","fixed":1,"broken":1,"tests":[{"name":"kept","change":"broken","before":"pass","after":"fail","value_before":0.9,"value_after":0.4,"delta":-0.5},{"name":"mended","change":"fixed","before":"fail","after":"pass","value_before":0.2,"value_after":0.7,"delta":0.49999999999999994},{"name":"fresh","change":"new","before":null,"after":"pass","value_before":null,"value_after":null,"delta":null},{"name":"gone","change":"removed","before":"fail","after":null}]}"#
        );
    }

    #[test]
    fn a_record_without_an_edits_hash_still_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00001-x.json");
        let json = r#"{"id":"00001-x","time":"t","curate_version":"0.1.0","predictions":"model m","predictions_hash":null,"manifest_hash":"h",
            "tests":[{"name":"a","file":"tests/a.rhai","line":3,"status":"fail","verdicts":[{"pass":false,"metric":"count","value":2.0,"op":">=","threshold":5.0,"n":2,"error":null}],"message":null,"seconds":0.5}]}"#;
        std::fs::write(&path, json).expect("write");
        let run = read(&path).expect("reads");
        assert_eq!(run.edits_hash, None);
        assert_eq!(run.tests[0].verdicts[0].failing, Vec::<String>::new());
        assert_eq!(run.tests[0].describe(), "count = 2 ≥ 5: fail (n=2)");
        std::fs::write(&path, "{\"id\": 3}").expect("write");
        let err = read(&path).expect_err("not a record").to_string();
        assert!(err.contains("not a test run record"), "{err}");
    }
}
