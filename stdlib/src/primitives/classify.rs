//! Interactive classification: `ds.classify(#{positive, negative})` trains a probe on the
//! embeddings of a few labelled samples, `ds.score(probe)` ranks the corpus with it, and
//! `ds.fit_probe(col)` cross-validates a probe on a whole label column for out-of-fold
//! probabilities (what `label_issues` needs).

use std::sync::Arc;

use polars::prelude::*;
use rhai::{Dynamic, Engine, EvalAltResult, Map};

use super::{Context, Example, Opt, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::output::Output;
use crate::probe::{self, Probe};

pub const DOC: Primitive = Primitive {
    name: "classify",
    signatures: &["ds.classify(#{positive: ids, negative: ids, model: string, extend: Probe}) -> Probe"],
    summary: "Train a probe (L2-regularised logistic regression on the embeddings) from labelled \
              samples: `positive` and `negative` are arrays of ids or datasets. The regularisation \
              is picked by cross-validation when every class has 5+ examples. `extend` adds the \
              labels of an earlier probe, for the label-a-few-more loop. Images without a cached \
              embedding are embedded first. Use with ds.score(probe); keep it with \
              probe.save(name) and reload it with probe(name).",
    options: &[
        Opt { name: "positive", default: "required", help: "The samples of the class: an id, an array of ids or a dataset." },
        Opt { name: "negative", default: "required", help: "The samples that are not: an id, an array of ids or a dataset." },
        Opt { name: "model", default: "the [defaults] embedding model", help: "The embedding model whose vectors the probe reads." },
        Opt { name: "extend", default: "none", help: "An earlier probe whose labels are kept (newer labels win), for the label-a-few-more loop." },
    ],
    examples: &[Example {
        code: "let ds = open().filter(\"split = 'test'\"); let p = ds.classify(#{positive: ds.filter(\"class = 'ship'\").head(5), negative: ds.filter(\"class != 'ship'\").head(5)}); p.positive.len()",
        result: Some("5"),
    }],
};

pub const SCORE_DOC: Primitive = Primitive {
    name: "score",
    signatures: &["ds.score(probe: Probe) -> Dataset", "ds.score(name: string) -> Dataset"],
    summary: "Rank ds with a probe (or a saved probe's name): a `score` column with the \
              probability of `positive`, highest first, and `labelled` (positive, negative, or \
              null for the samples the probe has not seen). Samples without an embedding come \
              last with a null score.",
    options: &[],
    examples: &[Example {
        code: "let ds = open().filter(\"split = 'test'\").embed(); let p = ds.classify(#{positive: ds.filter(\"class = 'face'\").head(5), negative: ds.filter(\"class != 'face'\").head(5)}); ds.score(p).filter(\"labelled IS NULL\").head(10).filter(\"class = 'face'\").len() >= 8",
        result: Some("true"),
    }],
};

pub const FIT_DOC: Primitive = Primitive {
    name: "fit_probe",
    signatures: &["ds.fit_probe(col: string) -> Dataset", "ds.fit_probe(col: string, #{model: string, folds: int}) -> Dataset"],
    summary: "Cross-validate a probe that predicts a label column from the embeddings (k-fold, 5 \
              by default, regularisation picked by held-out log loss) and add its out-of-fold \
              predictions: `pred_label`, `pred_score` and a `p_<class>` column per class. Every \
              sample's probabilities come from a model that did not see it, which is what \
              ds.label_issues() needs. Samples with a null label get nulls.",
    options: &[
        Opt { name: "model", default: "the [defaults] embedding model", help: "The embedding model whose vectors the probe reads." },
        Opt { name: "folds", default: "5", help: "The number of cross-validation folds (at least 2)." },
    ],
    examples: &[Example { code: "open().filter(\"split = 'test'\").fit_probe(\"label\").filter(\"pred_label = label\").len() > 200", result: Some("true") }],
};

pub const PROBE_DOC: Primitive = Primitive {
    name: "probe",
    signatures: &["probe(name: string) -> Probe", "probe.positive -> array", "probe.negative -> array", "probe.cv_accuracy -> float | ()"],
    summary: "Load a probe saved in the workspace (probes/NAME.json) with p.save(name). A saved \
              probe keeps its labelled ids, model and weights, so it can be reviewed, versioned \
              and re-applied to new data with ds.score(name).",
    options: &[],
    examples: &[Example {
        code: "let ds = open().filter(\"split = 'test'\"); ds.classify(#{positive: ds.filter(\"class = 'ship'\").head(5), negative: ds.filter(\"class = 'cat'\").head(5)}).save(\"ships\"); probe(\"ships\").negative.len()",
        result: Some("5"),
    }],
};

pub const SAVE_DOC: Primitive = Primitive {
    name: "save",
    signatures: &["probe.save(name: string) -> Probe", "image.save(path: string)"],
    summary: "Keep a probe in the workspace as probes/NAME.json (replacing one of that name), for \
              probe(name) and ds.score(name); or write a picture (grid, plot_*) to a .png file \
              inside the workspace. Both writes are atomic.",
    options: &[],
    examples: &[
        Example {
            code: "let ds = open().filter(\"split = 'test'\"); let p = ds.classify(#{positive: ds.filter(\"class = 'ship'\").head(5), negative: ds.filter(\"class = 'cat'\").head(5)}); p.save(\"ships\").positive.len()",
            result: Some("5"),
        },
        Example { code: "let sheet = open().filter(\"class = 'frog'\").grid(#{n: 4}); sheet.save(\"frogs.png\"); sheet.width", result: Some("576") },
    ],
};

#[derive(Debug, Default)]
pub struct ClassifyOptions {
    pub positive: Vec<String>,
    pub negative: Vec<String>,
    pub model: Option<String>,
    pub extend: Option<Probe>,
}

pub const CLASSIFY_KEYS: &[&str] = &["positive", "negative", "model", "extend"];

/// Ids from an array of ids or a dataset.
pub fn ids_of(function: &str, key: &str, v: &Dynamic) -> Result<Vec<String>> {
    if let Some(ds) = v.read_lock::<Dataset>() {
        let df = ds.lazy().select([col("id")]).collect()?;
        return Ok(df.column("id")?.str()?.iter().flatten().map(str::to_string).collect());
    }
    if v.is_array() {
        let arr = v.clone().into_array().unwrap_or_default();
        return crate::value::array_to_strings(&arr).map_err(|m| CurateError::InvalidOption { function: function.into(), key: key.into(), message: m });
    }
    if let Ok(s) = v.clone().into_string() {
        return Ok(vec![s]);
    }
    Err(CurateError::InvalidOption { function: function.into(), key: key.into(), message: format!("expected ids or a dataset, found a {}", v.type_name()) })
}

fn parse_classify(map: &Map) -> Result<ClassifyOptions> {
    let mut o = ClassifyOptions::default();
    for (k, v) in map {
        match k.as_str() {
            "positive" => o.positive = ids_of("classify", "positive", v)?,
            "negative" => o.negative = ids_of("classify", "negative", v)?,
            "model" => {
                o.model = Some(v.clone().into_string().map_err(|t| CurateError::InvalidOption {
                    function: "classify".into(),
                    key: "model".into(),
                    message: format!("expected a model name, found a {t}"),
                })?)
            }
            "extend" => {
                o.extend = Some(v.clone().try_cast::<Probe>().ok_or_else(|| CurateError::InvalidOption {
                    function: "classify".into(),
                    key: "extend".into(),
                    message: format!("expected a probe, found a {}", v.type_name()),
                })?)
            }
            other => return Err(CurateError::UnknownOption { function: "classify".into(), key: other.to_string(), valid: CLASSIFY_KEYS.iter().map(|s| s.to_string()).collect() }),
        }
    }
    Ok(o)
}

pub fn classify(ctx: &Context, ds: &Dataset, opts: ClassifyOptions) -> Result<Probe> {
    let classes = vec!["negative".to_string(), "positive".to_string()];
    let mut examples: Vec<(String, String)> = Vec::new();
    let mut model = opts.model.clone();
    if let Some(p) = &opts.extend {
        if p.classes != classes {
            return Err(CurateError::arg("classify", "`extend` takes a probe made by classify (positive/negative)"));
        }
        model = model.or_else(|| Some(p.model.clone()));
        // Newer labels win over the extended probe's.
        examples.extend(p.examples.iter().filter(|(id, _)| !opts.positive.contains(id) && !opts.negative.contains(id)).cloned());
    }
    examples.extend(opts.positive.iter().map(|i| (i.clone(), "positive".to_string())));
    examples.extend(opts.negative.iter().map(|i| (i.clone(), "negative".to_string())));
    if let Some(id) = opts.positive.iter().find(|i| opts.negative.contains(i)) {
        return Err(CurateError::arg("classify", format!("`{id}` is both positive and negative")));
    }
    let p = probe::train(&ctx.services(), ds.workspace(), model.as_deref(), classes, examples)?;
    Ok(p)
}

pub fn score(ctx: &Context, ds: &Dataset, probe: &Probe) -> Result<Dataset> {
    let (ids, probs) = probe::apply(&ctx.services(), ds, probe)?;
    let Some(pos) = probe.classes.iter().position(|c| c == "positive") else {
        return Err(CurateError::arg("score", "this probe has no `positive` class"));
    };
    let scores: Vec<Option<f64>> = probs.iter().map(|p| p.as_ref().map(|p| p[pos] as f64)).collect();
    let labelled: std::collections::HashMap<&str, &str> = probe.examples.iter().map(|(i, c)| (i.as_str(), c.as_str())).collect();
    let marks: Vec<Option<&str>> = ids.iter().map(|i| labelled.get(i.as_str()).copied()).collect();
    let extra = df!("id" => ids.clone(), "score" => scores, "labelled" => marks)?;
    let sorted = ds.annotate(extra).sort_by_exprs([col("score"), col("id")], SortMultipleOptions::default().with_order_descending_multi([true, false]).with_nulls_last(true));
    ds.derive(sorted)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitOptions {
    pub model: Option<String>,
    pub folds: Option<i64>,
}

impl crate::options::Options for FitOptions {
    const KEYS: &'static [&'static str] = &["model", "folds"];
}

pub fn fit_probe(ctx: &Context, ds: &Dataset, column: &str, opts: &FitOptions) -> Result<Dataset> {
    ds.check_column(column)?;
    let folds = opts.folds.unwrap_or(5);
    if folds < 2 {
        return Err(CurateError::InvalidOption { function: "fit_probe".into(), key: "folds".into(), message: format!("need at least 2 folds, got {folds}") });
    }
    let model = ctx.registry.model(ds.workspace(), opts.model.as_deref())?;
    let labelled = ds.derive(ds.lazy().filter(col(column).is_not_null()))?;
    let f = probe::features(&ctx.services(), &labelled, &model, true)?;
    let labels_df = labelled.lazy().select([col("id"), col(column).cast(DataType::String).alias("label")]).collect()?;
    let label_of: std::collections::HashMap<String, String> =
        labels_df.column("id")?.str()?.iter().zip(labels_df.column("label")?.str()?.iter()).filter_map(|(i, l)| Some((i?.to_string(), l?.to_string()))).collect();
    let mut classes: Vec<String> = label_of.values().cloned().collect();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return Err(CurateError::arg("fit_probe", format!("`{column}` needs at least two distinct values among embedded samples, found {}", classes.len())));
    }
    let y: Vec<usize> = f.ids.iter().map(|i| classes.binary_search(&label_of[i]).unwrap_or(0)).collect();
    let smallest = (0..classes.len()).map(|c| y.iter().filter(|&&v| v == c).count()).min().unwrap_or(0);
    let folds = (folds as usize).min(smallest.max(2));
    let cv = curate_kernels::probe::cross_validate(&f.design(), &y, classes.len(), probe::ALPHAS, folds, 0x5eed).map_err(|m| CurateError::arg("fit_probe", m))?;
    let chosen = match cv.sample {
        Some(s) => format!("alpha {} (chosen on a stratified sample of {s})", cv.alpha),
        None => format!("alpha {}", cv.alpha),
    };
    (ctx.sink)(Output::Text(format!("fit_probe({column}): {} samples, {} classes, {folds}-fold CV, {chosen}, out-of-fold accuracy {:.3}", f.ids.len(), classes.len(), cv.accuracy)));
    let k = classes.len();
    let probs: Vec<Option<Vec<f32>>> = cv.oof.chunks(k).map(|c| Some(c.to_vec())).collect();
    let preds = super::predict::prediction_frame(f.ids, &classes, &probs)?;
    super::predict::attach(ds, preds)
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    engine.register_type_with_name::<Probe>("Probe");
    engine.register_fn("to_string", |p: &mut Probe| p.summary());
    engine.register_fn("to_debug", |p: &mut Probe| p.summary());
    engine.register_get("positive", |p: &mut Probe| -> rhai::Array { p.ids_of("positive").into_iter().map(Dynamic::from).collect() });
    engine.register_get("negative", |p: &mut Probe| -> rhai::Array { p.ids_of("negative").into_iter().map(Dynamic::from).collect() });
    engine.register_get("cv_accuracy", |p: &mut Probe| -> Dynamic { p.cv_accuracy.map(Dynamic::from).unwrap_or(Dynamic::UNIT) });
    let c = ctx.clone();
    engine.register_fn("classify", move |ds: &mut Dataset, opts: Map| -> Result<Probe, Box<EvalAltResult>> { Ok(classify(&c, ds, parse_classify(&opts)?)?) });
    let c = ctx.clone();
    engine.register_fn("score", move |ds: &mut Dataset, p: Probe| -> Result<Dataset, Box<EvalAltResult>> { Ok(score(&c, ds, &p)?) });
    let c = ctx.clone();
    engine.register_fn("score", move |ds: &mut Dataset, name: &str| -> Result<Dataset, Box<EvalAltResult>> {
        let p = Probe::load(ds.workspace(), name)?;
        Ok(score(&c, ds, &p)?)
    });
    let c = ctx.clone();
    engine.register_fn("probe", move |name: &str| -> Result<Probe, Box<EvalAltResult>> {
        let ws = c.workspace.as_ref().ok_or_else(|| CurateError::NotAWorkspace { path: c.root.clone() })?;
        Ok(Probe::load(ws, name)?)
    });
    let c = ctx.clone();
    engine.register_fn("save", move |p: &mut Probe, name: &str| -> Result<Probe, Box<EvalAltResult>> {
        let ws = c.workspace.as_ref().ok_or_else(|| CurateError::NotAWorkspace { path: c.root.clone() })?;
        let path = p.save(ws, name)?;
        (c.sink)(Output::Text(format!("saved probe `{name}` to {}", path.strip_prefix(ws.root()).unwrap_or(&path).display())));
        Ok(p.clone())
    });
    let c = ctx.clone();
    engine.register_fn("fit_probe", move |ds: &mut Dataset, column: &str| -> Result<Dataset, Box<EvalAltResult>> { Ok(fit_probe(&c, ds, column, &FitOptions::default())?) });
    let c = ctx.clone();
    engine.register_fn("fit_probe", move |ds: &mut Dataset, column: &str, opts: Map| -> Result<Dataset, Box<EvalAltResult>> {
        let opts: FitOptions = crate::options::parse("fit_probe", &opts)?;
        Ok(fit_probe(&c, ds, column, &opts)?)
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
        crate::testing::check_examples(&super::SCORE_DOC);
        crate::testing::check_examples(&super::FIT_DOC);
    }

    #[test]
    fn saved_probe_examples() {
        crate::testing::check_examples_in_copy(&super::PROBE_DOC);
        crate::testing::check_examples_in_copy(&super::SAVE_DOC);
    }
}
