//! `ds.label_issues()`: likely mislabelled samples by confident learning (Northcutt et al.,
//! 2021, as in cleanlab), from out-of-sample class probabilities; and `ds.confusion()` and
//! `ds.class_metrics()` over labels and predictions.

use std::collections::HashMap;

use polars::prelude::*;
use rhai::{Engine, EvalAltResult, Map};

use super::predict::{class_column, probabilities_of};
use super::{Example, Opt, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::options::{self, Options};

pub const DOC: Primitive = Primitive {
    name: "label_issues",
    signatures: &["ds.label_issues() -> Dataset", "ds.label_issues(#{label: string, method: string}) -> Dataset"],
    summary: "Samples whose label is likely wrong, by confident learning over the p_<class> \
              probability columns (from ds.fit_probe(col), which are out-of-fold, or from \
              ds.predict / ds.load_predictions on data the model did not train on). Each flagged \
              sample has `self_confidence` (the probability of its given label; lowest, most \
              suspect, first) and `suggested_label`. `label` is the label column (\"label\"); \
              `method` is \"prune_by_noise_rate\" (default: per-class thresholds, the confident \
              joint calibrated to the class counts, the largest margins pruned), \"confident_joint\" \
              (every off-diagonal sample of the joint) or \"argmax\" (the unregularised baseline: \
              wherever the most probable class is not the label), or \"combined\": needs no \
              probability columns; it fits a probe to the label on the embeddings and ranks by \
              three signals together (the out-of-fold probability of the given label, the share \
              of the 10 nearest neighbours labelled otherwise, and self-influence), flagging as \
              many samples as confident learning and the neighbours' majority flag together; \
              each signal is a column.",
    options: &[
        Opt { name: "label", default: "\"label\"", help: "The label column to check." },
        Opt { name: "method", default: "\"prune_by_noise_rate\"", help: "\"prune_by_noise_rate\" (per-class thresholds, the confident joint calibrated to the class counts, the largest margins pruned), \"confident_joint\" (every off-diagonal sample of the joint), \"argmax\" (wherever the most probable class is not the label) or \"combined\" (a probe, the nearest neighbours and self-influence together; needs no probability columns)." },
    ],
    examples: &[Example {
        code: "open().filter(\"split = 'test'\").fit_probe(\"label\").label_issues().len() < 20",
        result: Some("true"),
    }],
};

pub const CONFUSION_DOC: Primitive = Primitive {
    name: "confusion",
    signatures: &["ds.confusion() -> Dataset", "ds.confusion(#{label: string, pred: string}) -> Dataset"],
    summary: "The confusion matrix: one row per label value, one count column per predicted \
              value, and the row's `total`. The columns default to `label` and `pred_label`.",
    options: &[Opt { name: "label", default: "\"label\"", help: "The column of true labels." }, Opt { name: "pred", default: "\"pred_label\"", help: "The column of predictions." }],
    examples: &[Example { code: "open().filter(\"class = 'face'\").predict(\"vww\").confusion().len()", result: Some("1") }],
};

pub const METRICS_DOC: Primitive = Primitive {
    name: "class_metrics",
    signatures: &["ds.class_metrics() -> Dataset", "ds.class_metrics(#{label: string, pred: string}) -> Dataset"],
    summary: "Per-class `support` (samples with the label), `predicted`, `correct`, `precision`, \
              `recall` and `f1`, plus an `(all)` row with the accuracy in every metric column.",
    options: &[Opt { name: "label", default: "\"label\"", help: "The column of true labels." }, Opt { name: "pred", default: "\"pred_label\"", help: "The column of predictions." }],
    examples: &[Example { code: "open().filter(\"split = 'test'\").predict(\"vww\").class_metrics().len()", result: Some("3") }],
};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssueOptions {
    pub label: Option<String>,
    pub method: Option<String>,
}

impl Options for IssueOptions {
    const KEYS: &'static [&'static str] = &["label", "method"];
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairOptions {
    pub label: Option<String>,
    pub pred: Option<String>,
}

impl Options for PairOptions {
    const KEYS: &'static [&'static str] = &["label", "pred"];
}

pub use crate::confident::{find_issues, Issue, Method};

pub fn label_issues(ctx: &super::Context, ds: &Dataset, opts: &IssueOptions) -> Result<Dataset> {
    let label_col = opts.label.as_deref().unwrap_or("label");
    ds.check_column(label_col)?;
    let method = match opts.method.as_deref() {
        None | Some("prune_by_noise_rate") => Method::PruneByNoiseRate,
        Some("confident_joint") => Method::ConfidentJoint,
        Some("argmax") => Method::Argmax,
        Some("combined") => return super::influence::combined_issues(ctx, ds, label_col),
        Some(other) => {
            return Err(CurateError::InvalidOption {
                function: "label_issues".into(),
                key: "method".into(),
                message: format!("`{other}` is not a method; use \"prune_by_noise_rate\", \"confident_joint\", \"argmax\" or \"combined\""),
            })
        }
    };
    let (ids, classes, probs) = probabilities_of(ds)?;
    let labels_df = ds.lazy().select([col(label_col).cast(DataType::String)]).collect()?;
    let labels = labels_df.column(label_col)?.str()?.clone();
    let column_of: HashMap<String, usize> = classes.iter().enumerate().map(|(i, c)| (format!("p_{c}"), i)).collect();
    let (mut rows, mut p, mut y) = (vec![], vec![], vec![]);
    for (i, (l, pr)) in labels.iter().zip(&probs).enumerate() {
        let (Some(l), Some(pr)) = (l, pr) else { continue };
        let Some(&c) = column_of.get(&class_column(l)) else {
            return Err(CurateError::arg(
                "label_issues",
                format!("label `{l}` of `{}` has no probability column {} (columns: {})", ids[i], class_column(l), classes.iter().map(|c| format!("p_{c}")).collect::<Vec<_>>().join(", ")),
            ));
        };
        rows.push(i);
        p.push(pr.clone());
        y.push(c);
    }
    // Suggest the label as it is written in the label column, not the column's sanitised name.
    let mut written: HashMap<usize, String> = HashMap::new();
    for (&c, l) in y.iter().zip(rows.iter().filter_map(|&i| labels.get(i))) {
        written.entry(c).or_insert_with(|| l.to_string());
    }
    let issues = find_issues(&p, &y, classes.len(), method);
    let out_ids: Vec<String> = issues.iter().map(|is| ids[rows[is.row]].clone()).collect();
    let suggested: Vec<String> = issues.iter().map(|is| written.get(&is.suggested).cloned().unwrap_or_else(|| classes[is.suggested].clone())).collect();
    let conf: Vec<f64> = issues.iter().map(|is| is.self_confidence as f64).collect();
    let extra = df!("id" => out_ids, "self_confidence" => conf, "suggested_label" => suggested)?;
    ds.derive(ds.annotate(extra))
}

pub(crate) fn pair_columns(ds: &Dataset, opts: &PairOptions) -> Result<(String, String)> {
    let label = opts.label.clone().unwrap_or_else(|| "label".to_string());
    let pred = opts.pred.clone().unwrap_or_else(|| "pred_label".to_string());
    ds.check_column(&label)?;
    if !ds.schema().contains(&pred) && pred == "pred_label" {
        return Err(CurateError::arg("confusion", "ds has no `pred_label` column: run ds.predict(model), ds.load_predictions(file) or ds.fit_probe(col) first"));
    }
    ds.check_column(&pred)?;
    Ok((label, pred))
}

/// (label, prediction) → count, over rows where both are set.
pub(crate) fn pair_counts(ds: &Dataset, label: &str, pred: &str) -> Result<(Vec<String>, Vec<String>, HashMap<(String, String), u64>)> {
    let df = ds
        .lazy()
        .select([col(label).cast(DataType::String).alias("l"), col(pred).cast(DataType::String).alias("p")])
        .filter(col("l").is_not_null().and(col("p").is_not_null()))
        .group_by([col("l"), col("p")])
        .agg([len().alias("n")])
        .collect()?;
    let mut counts = HashMap::new();
    let (mut labels, mut preds) = (vec![], vec![]);
    let n = df.column("n")?.cast(&DataType::UInt64)?;
    for ((l, p), n) in df.column("l")?.str()?.iter().zip(df.column("p")?.str()?.iter()).zip(n.u64()?.iter()) {
        let (Some(l), Some(p), Some(n)) = (l, p, n) else { continue };
        labels.push(l.to_string());
        preds.push(p.to_string());
        counts.insert((l.to_string(), p.to_string()), n);
    }
    labels.sort();
    labels.dedup();
    preds.sort();
    preds.dedup();
    Ok((labels, preds, counts))
}

pub fn confusion(ds: &Dataset, opts: &PairOptions) -> Result<Dataset> {
    let (label, pred) = pair_columns(ds, opts)?;
    let (labels, preds, counts) = pair_counts(ds, &label, &pred)?;
    let mut cols = vec![Column::new(label.as_str().into(), labels.clone())];
    for p in &preds {
        let v: Vec<u64> = labels.iter().map(|l| counts.get(&(l.clone(), p.clone())).copied().unwrap_or(0)).collect();
        let name = if p == &label { format!("pred_{p}") } else { p.clone() };
        cols.push(Column::new(name.into(), v));
    }
    let totals: Vec<u64> = labels.iter().map(|l| preds.iter().map(|p| counts.get(&(l.clone(), p.clone())).copied().unwrap_or(0)).sum()).collect();
    cols.push(Column::new("total".into(), totals));
    let df = DataFrame::new(labels.len(), cols)?;
    ds.derive(df.lazy())
}

pub fn class_metrics(ds: &Dataset, opts: &PairOptions) -> Result<Dataset> {
    let (label, pred) = pair_columns(ds, opts)?;
    let (labels, preds, counts) = pair_counts(ds, &label, &pred)?;
    let mut classes: Vec<String> = labels.iter().chain(&preds).cloned().collect();
    classes.sort();
    classes.dedup();
    let get = |l: &str, p: &str| counts.get(&(l.to_string(), p.to_string())).copied().unwrap_or(0);
    let ratio = |a: u64, b: u64| if b == 0 { None } else { Some(a as f64 / b as f64) };
    let (mut name, mut support, mut predicted, mut correct, mut precision, mut recall, mut f1) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for c in &classes {
        let s: u64 = classes.iter().map(|p| get(c, p)).sum();
        let pr: u64 = classes.iter().map(|l| get(l, c)).sum();
        let tp = get(c, c);
        let (p, r) = (ratio(tp, pr), ratio(tp, s));
        name.push(c.clone());
        support.push(s);
        predicted.push(pr);
        correct.push(tp);
        precision.push(p);
        recall.push(r);
        f1.push(match (p, r) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        });
    }
    let total: u64 = support.iter().sum();
    let right: u64 = correct.iter().sum();
    let acc = ratio(right, total);
    name.push("(all)".to_string());
    support.push(total);
    predicted.push(total);
    correct.push(right);
    precision.push(acc);
    recall.push(acc);
    f1.push(acc);
    let df = df!("class" => name, "support" => support, "predicted" => predicted, "correct" => correct, "precision" => precision, "recall" => recall, "f1" => f1)?;
    ds.derive(df.lazy())
}

pub fn register(engine: &mut Engine, ctx: &std::sync::Arc<super::Context>) {
    let c = ctx.clone();
    engine.register_fn("label_issues", move |ds: &mut Dataset| -> Result<Dataset, Box<EvalAltResult>> { Ok(label_issues(&c, ds, &IssueOptions::default())?) });
    let c = ctx.clone();
    engine.register_fn("label_issues", move |ds: &mut Dataset, opts: Map| -> Result<Dataset, Box<EvalAltResult>> { Ok(label_issues(&c, ds, &options::parse("label_issues", &opts)?)?) });
    engine.register_fn("confusion", |ds: &mut Dataset| -> Result<Dataset, Box<EvalAltResult>> { Ok(confusion(ds, &PairOptions::default())?) });
    engine.register_fn("confusion", |ds: &mut Dataset, opts: Map| -> Result<Dataset, Box<EvalAltResult>> { Ok(confusion(ds, &options::parse("confusion", &opts)?)?) });
    engine.register_fn("class_metrics", |ds: &mut Dataset| -> Result<Dataset, Box<EvalAltResult>> { Ok(class_metrics(ds, &PairOptions::default())?) });
    engine.register_fn("class_metrics", |ds: &mut Dataset, opts: Map| -> Result<Dataset, Box<EvalAltResult>> { Ok(class_metrics(ds, &options::parse("class_metrics", &opts)?)?) });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        crate::testing::check_examples(&DOC);
        crate::testing::check_examples(&CONFUSION_DOC);
        crate::testing::check_examples(&METRICS_DOC);
    }

    /// Three well-separated classes with two flipped labels: the flipped ones are found, with
    /// the true class suggested, and nothing else is.
    #[test]
    fn confident_learning_finds_flipped_labels() {
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        for i in 0..60 {
            let true_class = i % 3;
            let mut p = vec![0.1f32; 3];
            p[true_class] = 0.8;
            probs.push(p);
            labels.push(true_class);
        }
        labels[4] = 0; // truly 1
        labels[8] = 0; // truly 2
        for method in [Method::PruneByNoiseRate, Method::ConfidentJoint, Method::Argmax] {
            let found = find_issues(&probs, &labels, 3, method);
            let rows: Vec<usize> = found.iter().map(|i| i.row).collect();
            assert_eq!(rows.len(), 2, "{method:?}: {found:?}");
            assert!(rows.contains(&4) && rows.contains(&8), "{method:?}: {found:?}");
            let four = found.iter().find(|i| i.row == 4).expect("row 4");
            assert_eq!(four.suggested, 1);
            assert!((four.self_confidence - 0.1).abs() < 1e-6);
        }
    }

    /// A label whose probabilities are merely below the argmax but above its own class's
    /// threshold is not pruned, where the argmax baseline flags it.
    #[test]
    fn per_class_thresholds_spare_uncertain_but_plausible_labels() {
        let mut probs = vec![vec![0.9f32, 0.1]; 20];
        probs.extend(vec![vec![0.35f32, 0.65]; 20]);
        let mut labels = vec![0; 20];
        labels.extend(vec![1; 20]);
        // A class-1 sample the model finds slightly more like class 0, but whose p_1 (0.45)
        // is still well within class 1's own spread.
        probs.push(vec![0.55, 0.45]);
        labels.push(1);
        assert_eq!(find_issues(&probs, &labels, 2, Method::Argmax).len(), 1);
        assert!(find_issues(&probs, &labels, 2, Method::PruneByNoiseRate).is_empty());
    }
}
