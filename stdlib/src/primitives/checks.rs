//! Data unit tests: `test(name, || rule)` declares a named test; metrics on a slice's
//! predictions (`recall`, `precision`, `fpr`, `accuracy`, `mean_score`, `count`) compared with a
//! threshold give a `Verdict` that remembers the value, the threshold, the slice size and the
//! failing samples. `curate test` collects the tests, runs them and reports.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use polars::prelude::*;
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext};

use super::{Context, Example, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};

pub const DOC: Primitive = Primitive {
    name: "test",
    signatures: &["test(name: string, rule: || -> Verdict | bool | [Verdict])"],
    summary: "Declare a data unit test in a workspace's tests/*.rhai, run by `curate test`. The \
              rule compares a metric of a slice's predictions with a threshold, e.g. \
              `test(\"faces\", || predictions().filter(\"class = 'face'\").recall(\"person\") >= 0.9)`. \
              Metrics (recall, precision, fpr, accuracy, mean_score, count) compare with >=, >, \
              <=, < and == into a Verdict that keeps the value, the threshold, the slice size and \
              the failing samples; every_predicted, none_predicted, min_count and no_drop give \
              verdicts directly. A metric of an empty slice (no samples, or none of the class) is \
              an error, not a pass. Names are unique.",
    options: &[],
    examples: &[Example {
        code: "let rule = || open().filter(\"class = 'face'\").predict(\"vww\").recall(\"person\") >= 0.5; test(\"faces\", rule); rule.call().to_string()",
        result: Some("recall(person) = 0.000 ≥ 0.5: fail (n=100)"),
    }],
};

pub const PREDICTIONS_DOC: Primitive = Primitive {
    name: "predictions",
    signatures: &["predictions() -> Dataset"],
    summary: "The workspace's current view with the predictions `curate test` was given: of \
              --model (by default the workspace's `[test] model`), or read from --predictions; \
              computed once per run. What data unit tests slice.",
    options: &[],
    examples: &[Example { code: "predictions().filter(\"class = 'nonface'\").group_count(\"pred_label\").len() > 0", result: Some("true") }],
};

pub const RECALL_DOC: Primitive = Primitive {
    name: "recall",
    signatures: &["slice.recall(class: string) -> Metric"],
    summary: "Of the slice's samples labelled `class`, the share predicted `class`. Failing \
              samples: the ones missed, most confident first. The slice needs `label` and \
              `pred_label` (predictions(), ds.predict, ds.load_predictions).",
    options: &[],
    examples: &[Example { code: "open().filter(\"class = 'face'\").predict(\"vww\").recall(\"person\").to_string()", result: Some("recall(person) = 0.000 (n=100)") }],
};

pub const PRECISION_DOC: Primitive = Primitive {
    name: "precision",
    signatures: &["slice.precision(class: string) -> Metric"],
    summary: "Of the slice's samples predicted `class`, the share labelled `class`. Failing \
              samples: the false positives, most confident first.",
    options: &[],
    examples: &[Example { code: "open().filter(\"class IN ('face', 'nonface')\").predict(\"vww\").precision(\"no_person\").to_string()", result: Some("precision(no_person) = 0.500 (n=200)") }],
};

pub const FPR_DOC: Primitive = Primitive {
    name: "fpr",
    signatures: &["slice.fpr(class: string) -> Metric"],
    summary: "False positive rate: of the slice's labelled samples not labelled `class`, the \
              share predicted `class`. Failing samples: those false positives.",
    options: &[],
    examples: &[Example { code: "let v = open().filter(\"class = 'nonface'\").predict(\"vww\").fpr(\"person\") <= 0.01; v.to_string()", result: Some("fpr(person) = 0.000 ≤ 0.01: pass (n=100)") }],
};

pub const ACCURACY_DOC: Primitive = Primitive {
    name: "accuracy",
    signatures: &["slice.accuracy() -> Metric"],
    summary: "Of the slice's labelled samples, the share whose prediction is their label.",
    options: &[],
    examples: &[Example { code: "open().filter(\"class IN ('face', 'nonface')\").predict(\"vww\").accuracy().to_string()", result: Some("accuracy = 0.500 (n=200)") }],
};

pub const MEAN_SCORE_DOC: Primitive = Primitive {
    name: "mean_score",
    signatures: &["slice.mean_score() -> Metric", "slice.mean_score(col: string) -> Metric"],
    summary: "The mean of a numeric column over the slice (`pred_score`, the predicted class's \
              probability, by default; or a `p_<class>` column). Failing samples: lowest first.",
    options: &[],
    examples: &[Example {
        code: "(open().filter(\"class = 'nonface'\").predict(\"vww\").mean_score(\"p_no_person\") >= 0.5).to_string()",
        result: Some("mean(p_no_person) = 0.949 ≥ 0.5: pass (n=100)"),
    }],
};

pub const COUNT_DOC: Primitive = Primitive {
    name: "count",
    signatures: &["slice.count() -> Metric"],
    summary: "The number of samples in the slice, as a metric: `leaks.count() == 0` is a rule. \
              Unlike the other metrics, a count of an empty slice is a measurement, not an error.",
    options: &[],
    examples: &[Example { code: "(open().filter(\"class = 'face' AND split = 'test'\").count() == 20).to_string()", result: Some("count = 20 == 20: pass (n=20)") }],
};

pub const MIN_COUNT_DOC: Primitive = Primitive {
    name: "min_count",
    signatures: &["slice.min_count(n: int) -> Verdict"],
    summary: "Passes when the slice has at least n samples: a guard that the slices a suite \
              depends on are big enough to mean something.",
    options: &[],
    examples: &[Example { code: "open().filter(\"class = 'face'\").min_count(50).to_string()", result: Some("count = 100 ≥ 50: pass (n=100)") }],
};

pub const EVERY_PREDICTED_DOC: Primitive = Primitive {
    name: "every_predicted",
    signatures: &["slice.every_predicted(class: string) -> Verdict"],
    summary: "Passes when every sample of the slice is predicted `class`. Failing samples: the \
              ones predicted otherwise.",
    options: &[],
    examples: &[Example { code: "open().filter(\"class = 'nonface'\").predict(\"vww\").every_predicted(\"no_person\").pass", result: Some("true") }],
};

pub const NONE_PREDICTED_DOC: Primitive = Primitive {
    name: "none_predicted",
    signatures: &["slice.none_predicted(class: string) -> Verdict"],
    summary: "Passes when no sample of the slice is predicted `class`: scenes without people \
              must stay empty. Failing samples: the ones predicted `class`.",
    options: &[],
    examples: &[Example { code: "open().filter(\"class = 'nonface'\").predict(\"vww\").none_predicted(\"person\").to_string()", result: Some("share_predicted(person) = 0.000 ≤ 0: pass (n=100)") }],
};

pub const NO_DROP_DOC: Primitive = Primitive {
    name: "no_drop",
    signatures: &["metric.no_drop(delta: float) -> Verdict"],
    summary: "Fails when the metric fell by more than `delta` since the baseline run (`curate \
              test --baseline RUN`), looked up by test and metric. Without a baseline it passes \
              and says so; with a baseline that lacks this metric it fails.",
    options: &[],
    examples: &[Example { code: "open().filter(\"class = 'face'\").count().no_drop(0.01).to_string()", result: Some("count = 100 no_drop (no baseline; pass --baseline RUN): pass (n=100)") }],
};

/// A metric measured on a slice.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    /// None when the denominator is empty.
    pub value: Option<f64>,
    /// Samples in the denominator.
    pub n: usize,
    /// The samples counting against the metric, most confident mistakes first.
    pub failing: Vec<String>,
}

use crate::runs::trim;
/// The outcome of a rule (kept in the run records, so defined there).
pub use crate::runs::Verdict;

/// One declared test.
#[derive(Clone)]
pub struct Declared {
    pub name: String,
    pub rule: FnPtr,
    pub line: usize,
}

/// What `curate test` shares with the scripts: declared tests, the predictions to test, the
/// baseline's values and the test being run (for `no_drop`).
#[derive(Default)]
pub struct TestState {
    pub declared: Mutex<Vec<Declared>>,
    /// The model to predict with, or a predictions file.
    pub source: Mutex<Option<PredictionSource>>,
    pub predictions: Mutex<Option<Dataset>>,
    /// Baseline metric values by [`baseline_key`].
    pub baseline: Mutex<HashMap<String, f64>>,
    pub current: Mutex<Option<String>>,
}

#[derive(Debug, Clone)]
pub enum PredictionSource {
    Model(Option<String>),
    File(String),
}

fn compare(m: &Metric, op: &str, t: f64) -> Verdict {
    // A count of 0 is a measurement (`leaks.count() == 0`); any other metric of nothing is not.
    let error = if m.n == 0 && m.name != "count" { Some(format!("empty slice: no samples to measure {}", m.name)) } else { None };
    let pass = error.is_none()
        && m.value.is_some_and(|v| match op {
            ">=" => v >= t - 1e-12,
            ">" => v > t,
            "<=" => v <= t + 1e-12,
            "<" => v < t,
            _ => (v - t).abs() < 1e-12,
        });
    Verdict { pass, metric: m.name.clone(), value: m.value, op: op.to_string(), threshold: Some(t), n: m.n, error, failing: m.failing.clone() }
}

/// (id, label, pred, pred_score) of a slice, as strings; errors name what is missing.
fn predictions_of(ds: &Dataset, function: &str) -> Result<Vec<(String, Option<String>, Option<String>, f64)>> {
    for c in ["label", "pred_label"] {
        if !ds.schema().contains(c) {
            return Err(CurateError::arg(function, format!("the slice has no `{c}` column: test a slice of predictions() (or of ds.predict(model))")));
        }
    }
    let score = if ds.schema().contains("pred_score") { col("pred_score").cast(DataType::Float64) } else { lit(0.0) };
    let df = ds.lazy().select([col("id"), col("label").cast(DataType::String), col("pred_label").cast(DataType::String), score.alias("s")]).collect()?;
    let ids = df.column("id")?.str()?.clone();
    let labels = df.column("label")?.str()?.clone();
    let preds = df.column("pred_label")?.str()?.clone();
    let scores = df.column("s")?.f64()?.clone();
    let mut out: Vec<_> =
        (0..df.height()).map(|i| (ids.get(i).unwrap_or_default().to_string(), labels.get(i).map(str::to_string), preds.get(i).map(str::to_string), scores.get(i).unwrap_or(0.0))).collect();
    // Most confident first, so failing samples list the most confident mistakes first.
    out.sort_by(|a, b| b.3.total_cmp(&a.3).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// A ratio metric: over the rows where `within` holds, the share where `good` holds.
fn ratio(ds: &Dataset, name: String, function: &str, within: impl Fn(&Option<String>, &Option<String>) -> bool, good: impl Fn(&Option<String>, &Option<String>) -> bool) -> Result<Metric> {
    let rows = predictions_of(ds, function)?;
    let (mut n, mut hits, mut failing) = (0usize, 0usize, Vec::new());
    for (id, l, p, _) in &rows {
        if p.is_none() || !within(l, p) {
            continue;
        }
        n += 1;
        if good(l, p) {
            hits += 1;
        } else {
            failing.push(id.clone());
        }
    }
    let value = if n == 0 { None } else { Some(hits as f64 / n as f64) };
    Ok(Metric { name, value, n, failing })
}

fn is(v: &Option<String>, c: &str) -> bool {
    v.as_deref() == Some(c)
}

pub fn recall(ds: &Dataset, c: &str) -> Result<Metric> {
    ratio(ds, format!("recall({c})"), "recall", |l, _| is(l, c), |_, p| is(p, c))
}

pub fn precision(ds: &Dataset, c: &str) -> Result<Metric> {
    ratio(ds, format!("precision({c})"), "precision", |_, p| is(p, c), |l, _| is(l, c))
}

pub fn fpr(ds: &Dataset, c: &str) -> Result<Metric> {
    // The share of samples not labelled c that are predicted c; failing = those false positives.
    let m = ratio(ds, format!("fpr({c})"), "fpr", |l, _| l.is_some() && !is(l, c), |_, p| !is(p, c))?;
    Ok(Metric { value: m.value.map(|v| 1.0 - v), ..m })
}

pub fn accuracy(ds: &Dataset) -> Result<Metric> {
    ratio(ds, "accuracy".into(), "accuracy", |l, _| l.is_some(), |l, p| l == p)
}

/// The share of the slice predicted `c`.
pub fn predicted_share(ds: &Dataset, c: &str) -> Result<Metric> {
    ratio(ds, format!("share_predicted({c})"), "every_predicted", |_, _| true, |_, p| is(p, c))
}

pub fn mean_score(ds: &Dataset, column: &str) -> Result<Metric> {
    ds.check_column(column)?;
    let df = ds.lazy().select([col("id"), col(column).cast(DataType::Float64).alias("v")]).collect()?;
    let mut vals: Vec<(f64, String)> = df.column("v")?.f64()?.iter().zip(df.column("id")?.str()?.iter()).filter_map(|(v, id)| Some((v?, id?.to_string()))).collect();
    vals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = vals.len();
    let value = if n == 0 { None } else { Some(vals.iter().map(|v| v.0).sum::<f64>() / n as f64) };
    Ok(Metric { name: format!("mean({column})"), value, n, failing: vals.into_iter().map(|v| v.1).collect() })
}

pub fn count(ds: &Dataset) -> Result<Metric> {
    let n = ds.len()?;
    Ok(Metric { name: "count".into(), value: Some(n as f64), n, failing: vec![] })
}

fn no_drop(ctx: &Context, m: &Metric, delta: f64) -> Verdict {
    let current = ctx.tests.current.lock().ok().and_then(|c| c.clone());
    let loaded = ctx.tests.baseline.lock().map(|b| !b.is_empty()).unwrap_or(false);
    let base = current.as_ref().and_then(|t| ctx.tests.baseline.lock().ok().and_then(|b| b.get(&baseline_key(t, &m.name)).copied()));
    if base.is_none() && loaded {
        return Verdict {
            pass: false,
            metric: m.name.clone(),
            value: m.value,
            op: "no_drop".into(),
            threshold: Some(delta),
            n: m.n,
            error: Some("the baseline run has no value of this metric for this test".into()),
            failing: vec![],
        };
    }
    match base {
        Some(b) => {
            let mut v = compare(m, ">=", b - delta);
            v.op = format!(">= baseline {} -", trim(b));
            v.threshold = Some(delta);
            v
        }
        // Without a baseline there is nothing to regress from: the rule holds, and says so.
        None => Verdict {
            pass: m.n > 0,
            metric: m.name.clone(),
            value: m.value,
            op: "no_drop (no baseline; pass --baseline RUN)".into(),
            threshold: None,
            n: m.n,
            error: (m.n == 0).then(|| format!("empty slice: no samples to measure {}", m.name)),
            failing: vec![],
        },
    }
}

/// How a baseline value is looked up: by test and metric, so a rule with several verdicts
/// compares each with its own.
pub fn baseline_key(test: &str, metric: &str) -> String {
    format!("{test}\u{0}{metric}")
}

/// The predictions `curate test` was asked to test, computed once per run.
pub fn predictions(ctx: &Context) -> Result<Dataset> {
    if let Some(ds) = ctx.tests.predictions.lock().ok().and_then(|p| p.clone()) {
        return Ok(ds);
    }
    let ws = ctx.workspace.clone().ok_or_else(|| CurateError::NotAWorkspace { path: ctx.root.clone() })?;
    let all = Dataset::new(ws.clone(), ws.scan_manifest()?)?;
    let source = ctx.tests.source.lock().ok().and_then(|s| s.clone()).unwrap_or_else(|| PredictionSource::Model(ws.config.test.model.clone()));
    let ds = match source {
        PredictionSource::Model(m) => super::predict::predict(ctx, &all, m.as_deref())?,
        PredictionSource::File(f) => super::predict::load_predictions(ctx, &all, &f)?,
    };
    if let Ok(mut p) = ctx.tests.predictions.lock() {
        *p = Some(ds.clone());
    }
    Ok(ds)
}

type R<T> = std::result::Result<T, Box<EvalAltResult>>;

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    engine.register_type_with_name::<Metric>("Metric");
    engine.register_type_with_name::<Verdict>("Verdict");
    engine.register_fn("to_string", |m: &mut Metric| format!("{} = {} (n={})", m.name, m.value.map(|v| format!("{v:.3}")).unwrap_or("n/a".into()), m.n));
    engine.register_fn("to_string", |v: &mut Verdict| v.describe());
    engine.register_get("value", |m: &mut Metric| -> Dynamic { m.value.map(Dynamic::from).unwrap_or(Dynamic::UNIT) });
    engine.register_get("n", |m: &mut Metric| m.n as i64);
    engine.register_get("pass", |v: &mut Verdict| v.pass);
    for op in [">=", ">", "<=", "<", "=="] {
        let o = op.to_string();
        engine.register_fn(op, move |m: Metric, t: f64| compare(&m, &o, t));
        let o = op.to_string();
        engine.register_fn(op, move |m: Metric, t: i64| compare(&m, &o, t as f64));
    }
    engine.register_fn("recall", |ds: &mut Dataset, c: &str| -> R<Metric> { Ok(recall(ds, c)?) });
    engine.register_fn("precision", |ds: &mut Dataset, c: &str| -> R<Metric> { Ok(precision(ds, c)?) });
    engine.register_fn("fpr", |ds: &mut Dataset, c: &str| -> R<Metric> { Ok(fpr(ds, c)?) });
    engine.register_fn("accuracy", |ds: &mut Dataset| -> R<Metric> { Ok(accuracy(ds)?) });
    engine.register_fn("mean_score", |ds: &mut Dataset| -> R<Metric> { Ok(mean_score(ds, "pred_score")?) });
    engine.register_fn("mean_score", |ds: &mut Dataset, c: &str| -> R<Metric> { Ok(mean_score(ds, c)?) });
    engine.register_fn("count", |ds: &mut Dataset| -> R<Metric> { Ok(count(ds)?) });
    engine.register_fn("every_predicted", |ds: &mut Dataset, c: &str| -> R<Verdict> { Ok(compare(&predicted_share(ds, c)?, ">=", 1.0)) });
    engine.register_fn("none_predicted", |ds: &mut Dataset, c: &str| -> R<Verdict> {
        let m = predicted_share(ds, c)?;
        // Failing samples are the ones predicted c.
        let rows = predictions_of(ds, "none_predicted")?;
        let failing = rows.into_iter().filter(|r| is(&r.2, c)).map(|r| r.0).collect();
        Ok(compare(&Metric { failing, ..m }, "<=", 0.0))
    });
    engine.register_fn("min_count", |ds: &mut Dataset, n: i64| -> R<Verdict> {
        let size = ds.len()?;
        let m = Metric { name: "count".into(), value: Some(size as f64), n: size, failing: vec![] };
        Ok(compare(&m, ">=", n as f64))
    });
    let c = ctx.clone();
    engine.register_fn("no_drop", move |m: &mut Metric, delta: f64| no_drop(&c, m, delta));
    let c = ctx.clone();
    engine.register_fn("predictions", move || -> R<Dataset> { Ok(predictions(&c)?) });
    let c = ctx.clone();
    engine.register_fn("test", move |call: NativeCallContext, name: &str, rule: FnPtr| -> R<()> {
        let line = call.call_position().line().unwrap_or(0);
        let mut declared = c.tests.declared.lock().map_err(|_| CurateError::arg("test", "poisoned"))?;
        if declared.iter().any(|d| d.name == name) {
            return Err(CurateError::arg("test", format!("a test called `{name}` is already declared")).into());
        }
        declared.push(Declared { name: name.to_string(), rule, line });
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn metric_and_verdict_examples() {
        use super::*;
        for doc in [&PREDICTIONS_DOC, &RECALL_DOC, &PRECISION_DOC, &FPR_DOC, &ACCURACY_DOC, &MEAN_SCORE_DOC, &COUNT_DOC, &MIN_COUNT_DOC, &EVERY_PREDICTED_DOC, &NONE_PREDICTED_DOC, &NO_DROP_DOC] {
            crate::testing::check_examples_in_copy(doc);
        }
    }
}
