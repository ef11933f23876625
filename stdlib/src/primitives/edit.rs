//! Edits: `relabel`, `remove`, `restore`, `tag`, `untag`, `set`, `weight`, `oversample` and
//! `checkpoint` append to the workspace's edit log (`edits.jsonl`) with the script line that made
//! them and a reason, and return the workspace's new current view.

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::*;
use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext};
use serde_json::Value;

use super::classify::ids_of;
use super::{Context, Example, Opt, Primitive};
use crate::dataset::Dataset;
use crate::edits::{self, Edit};
use crate::error::{CurateError, Result};

pub const DOC: Primitive = Primitive {
    name: "relabel",
    signatures: &["ds.relabel(ids, label: string, reason: string) -> Dataset"],
    summary: "Give samples a new label through the edit log, edits.jsonl. Every edit (relabel, \
              remove, restore, tag, untag, set, weight, oversample, balance, checkpoint) appends \
              entries with the ids, the old and new values, the reason, the script and line (or \
              \"repl\") and the time, and returns the workspace's new current view: the manifest \
              with the log replayed, not ds narrowed. `ids` is an id, an array of ids or a \
              dataset; an id not in the current view is an error. Edits of more samples than the \
              REPL's limit ask first.",
    options: &[],
    examples: &[Example { code: "let ds = open().relabel(\"lfw/nonface/104\", \"person\", \"a face after all\"); ds.get(\"lfw/nonface/104\").label", result: Some("person") }],
};

pub const REMOVE_DOC: Primitive = Primitive {
    name: "remove",
    signatures: &["ds.remove(ids, reason: string) -> Dataset"],
    summary: "Hide samples from the current view (and so from exports and tests) through the edit \
              log, with a reason. The manifest keeps them: restore(ids) brings them back, and \
              open(#{at: ...}) sees the states before.",
    options: &[],
    examples: &[Example { code: "open().remove([\"cifar/test/cat/0003\", \"cifar/test/cat/0004\"], \"blurry\").len()", result: Some("1398") }],
};

pub const RESTORE_DOC: Primitive = Primitive {
    name: "restore",
    signatures: &["ds.restore(ids) -> Dataset"],
    summary: "Bring removed samples back into the current view (an edit-log entry). The ids are \
              the manifest's, or those of samples that augment added.",
    options: &[],
    examples: &[Example { code: "let ds = open().remove(\"cifar/test/cat/0003\", \"blurry\"); ds.restore(\"cifar/test/cat/0003\").len()", result: Some("1400") }],
};

pub const TAG_DOC: Primitive = Primitive {
    name: "tag",
    signatures: &["ds.tag(ids, tag: string) -> Dataset"],
    summary: "Mark samples with a tag through the edit log: the view gets a boolean column \
              `tag_<tag>`, true for the tagged samples and false for the others, to filter on.",
    options: &[],
    examples: &[Example { code: "let ds = open().tag([\"lfw/face/000\", \"lfw/face/001\"], \"blue_bg\"); ds.filter(\"tag_blue_bg\").len()", result: Some("2") }],
};

pub const UNTAG_DOC: Primitive = Primitive {
    name: "untag",
    signatures: &["ds.untag(ids, tag: string) -> Dataset"],
    summary: "Take a tag off samples (an edit-log entry): their `tag_<tag>` becomes false.",
    options: &[],
    examples: &[Example {
        code: "let ds = open().tag([\"lfw/face/000\", \"lfw/face/001\"], \"blue_bg\"); ds.untag(\"lfw/face/000\", \"blue_bg\").filter(\"tag_blue_bg\").ids()",
        result: Some("[\"lfw/face/001\"]"),
    }],
};

pub const SET_DOC: Primitive = Primitive {
    name: "set",
    signatures: &["ds.set(col: string, ids, value) -> Dataset", "ds.set(col: string, ids, value, reason: string) -> Dataset"],
    summary: "Set a column of samples to a value (text, number or boolean) through the edit log. \
              A new column is added (null for the other samples); a value must fit an existing \
              column's type. `id`, `path` and `hash` cannot be set; use relabel for `label` \
              (set(\"label\", ...) with a reason relabels), weight for `weight`, tag and untag \
              for `tag_*` columns.",
    options: &[],
    examples: &[Example { code: "let ds = open().set(\"scene\", [\"lfw/face/000\", \"lfw/face/001\"], \"indoor\", \"checked by hand\"); ds.filter(\"scene = 'indoor'\").len()", result: Some("2") }],
};

pub const WEIGHT_DOC: Primitive = Primitive {
    name: "weight",
    signatures: &["ds.weight(ids, w: float) -> Dataset"],
    summary: "Set the training weight of samples (a finite number >= 0) through the edit log, in \
              the `weight` column that train_export writes (or, with #{expand: true}, turns into \
              repeats).",
    options: &[],
    examples: &[Example { code: "open().weight(\"lfw/face/007\", 2.5).get(\"lfw/face/007\").weight", result: Some("2.5") }],
};

pub const OVERSAMPLE_DOC: Primitive = Primitive {
    name: "oversample",
    signatures: &["ds.oversample(ids, factor: float) -> Dataset"],
    summary: "Multiply the training weight of samples by `factor` (> 0) through the edit log: a \
              sample without a weight counts as 1, one weighted 2 becomes 2 × factor.",
    options: &[],
    examples: &[Example { code: "let ds = open().weight(\"lfw/face/007\", 2.0); ds.oversample(ds.filter(\"class = 'face'\"), 3.0).get(\"lfw/face/007\").weight", result: Some("6.0") }],
};

/// The keys of balance's options map.
pub const BALANCE_KEYS: &[&str] = &["target"];

pub const BALANCE_DOC: Primitive = Primitive {
    name: "balance",
    signatures: &["ds.balance(col: string) -> Dataset", "ds.balance(col: string, #{target: #{value: share}}) -> Dataset"],
    summary: "Set the weights of ds's samples (one edit-log entry per value of `col`) so that each \
              value of `col` carries its target share of the total weight; the total stays the \
              number of samples. train_export(#{expand: true}) turns the weights into repeats.",
    options: &[Opt {
        name: "target",
        default: "equal shares",
        help: "The share of the total weight per value of `col`, e.g. #{person: 1, no_person: 3}; values left out get none. Shares are normalised to add up to 1.",
    }],
    examples: &[Example { code: "let ds = open().balance(\"label\"); ds.filter(\"label = 'person'\").head(1).col(\"weight\")", result: Some("[7.0]") }],
};

pub const CHECKPOINT_DOC: Primitive = Primitive {
    name: "checkpoint",
    signatures: &["ds.checkpoint(name: string) -> Dataset"],
    summary: "Name the current position of the edit log, for open(#{at: name}), `curate diff` and \
              `curate log`. Numbers and manifest/current/latest are positions, not names.",
    options: &[],
    examples: &[Example {
        code: "open().remove(\"lfw/face/000\", \"blurry\").checkpoint(\"v1\").remove(\"lfw/face/001\", \"blurry\"); [open(#{at: \"v1\"}).len(), open().len()]",
        result: Some("[1399, 1398]"),
    }],
};

/// `path:line` of the call, or "repl".
fn source(ctx: &Context, call: &NativeCallContext) -> String {
    source_label(ctx, Some(call.call_position().line().unwrap_or(0)))
}

/// What an edit-log entry names as its source: the script being evaluated (with `line` when
/// known), or "repl" for REPL cells.
pub(crate) fn source_label(ctx: &Context, line: Option<usize>) -> String {
    let name = ctx.source_name.lock().map(|n| n.clone()).unwrap_or_default();
    match line {
        _ if name.is_empty() || name.starts_with("repl") => "repl".to_string(),
        Some(line) => format!("{name}:{line}"),
        None => name,
    }
}

/// The workspace an edit of `ds` goes to: always ds's own (a dataset opened from another
/// workspace edits that one's log).
fn workspace(_ctx: &Context, ds: &Dataset) -> Arc<crate::workspace::Workspace> {
    ds.workspace().clone()
}

/// The current values of `column` for `ids`, checking every id is in the current view.
fn current_values(ds: &Dataset, ids: &[String], column: Option<&str>) -> Result<Vec<Value>> {
    let ws = ds.workspace();
    values_in(&Dataset::new(ws.clone(), ws.scan_manifest()?)?, ids, column)
}

/// The values of `column` for `ids` in `view`; an id not in it is an error that names it.
fn values_in(view: &Dataset, ids: &[String], column: Option<&str>) -> Result<Vec<Value>> {
    let want = Series::new("id".into(), ids.to_vec());
    let mut select = vec![col("id")];
    let has = column.is_some_and(|c| view.schema().contains(c));
    if let (Some(c), true) = (column, has) {
        select.push(col(c).alias("__v"));
    }
    let df = view.lazy().filter(col("id").is_in(lit(want).implode(false), false)).select(select).collect()?;
    let mut found: HashMap<String, Value> = HashMap::new();
    let idc = df.column("id")?.str()?.clone();
    for i in 0..df.height() {
        let id = idc.get(i).unwrap_or_default().to_string();
        let v = if has { crate::output::any_to_json(&df.column("__v")?.get(i)?) } else { Value::Null };
        found.insert(id, v);
    }
    ids.iter().map(|id| found.remove(id).ok_or_else(|| CurateError::UnknownId { id: id.clone() })).collect()
}

/// Ask the user (the interactive REPL sets `confirm`) before an edit of many samples.
fn confirm(ctx: &Context, action: &str, n: usize) -> Result<()> {
    if let Some(confirm) = ctx.confirm.lock().ok().and_then(|c| c.clone()) {
        if n > ctx.confirm_over && !confirm(&format!("{action} {n} samples?")) {
            return Err(CurateError::arg(action, "cancelled: the edit was not recorded"));
        }
    }
    Ok(())
}

fn append_and_reopen(ctx: &Context, ds: &Dataset, edit: Edit) -> Result<Dataset> {
    let ws = workspace(ctx, ds);
    confirm(ctx, &edit.action, edit.ids.len())?;
    edits::append(&ws.edits_path(), &[edit])?;
    Dataset::new(ws.clone(), ws.scan_manifest()?)
}

fn entry(action: &str, ids: Vec<String>, column: Option<&str>, value: Option<Value>, old: Vec<Value>, reason: &str, source: String) -> Edit {
    Edit { time: edits::now(), action: action.into(), ids, column: column.map(str::to_string), value, old, rows: vec![], reason: reason.into(), source }
}

fn unique(function: &str, ids: Vec<String>) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Err(CurateError::arg(function, "no ids given"));
    }
    let mut seen = std::collections::HashSet::new();
    Ok(ids.into_iter().filter(|i| seen.insert(i.clone())).collect())
}

pub fn set_value(ctx: &Context, call: &NativeCallContext, ds: &Dataset, action: &str, column: &str, ids: &Dynamic, value: Value, reason: &str) -> Result<Dataset> {
    if matches!(column, "id" | "path" | "hash") {
        return Err(CurateError::arg(action, format!("`{column}` identifies the file and cannot be edited")));
    }
    let ids = unique(action, ids_of(action, "ids", ids)?)?;
    // A value that does not fit the column's type would break every later replay: refuse it now.
    if let Some(dt) = ds.workspace().scan_manifest()?.collect_schema()?.get(column).cloned() {
        let probe = match &value {
            Value::Bool(b) => Series::new("v".into(), [*b]),
            Value::Number(n) if n.is_i64() => Series::new("v".into(), [n.as_i64().unwrap_or(0)]),
            Value::Number(n) => Series::new("v".into(), [n.as_f64().unwrap_or(0.0)]),
            other => Series::new("v".into(), [other.as_str().unwrap_or_default().to_string()]),
        };
        let lossy = matches!(&value, Value::Number(n) if !n.is_i64() && !n.is_u64()) && dt.is_integer();
        if lossy || probe.strict_cast(&dt).is_err() {
            return Err(CurateError::arg(action, format!("{value} does not fit column `{column}` ({dt})")));
        }
    }
    let old = current_values(ds, &ids, Some(column))?;
    let e = entry(action, ids, if action == "relabel" { None } else { Some(column) }, Some(value), old, reason, source(ctx, call));
    append_and_reopen(ctx, ds, e)
}

fn json_of(v: &Dynamic, action: &str) -> Result<Value> {
    let j = crate::output::dynamic_to_json(v);
    match j {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(j),
        _ => Err(CurateError::arg(action, format!("values are text, numbers or booleans, not a {}", v.type_name()))),
    }
}

type R<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Weights per value of `column` so that each value's share of the total weight is its target.
pub fn balance(ctx: &Context, call: &NativeCallContext, ds: &Dataset, column: &str, target: Option<&rhai::Map>) -> Result<Dataset> {
    ds.check_column(column)?;
    let df = ds.lazy().select([col("id"), col(column).cast(DataType::String).alias("v")]).collect()?;
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for (id, v) in df.column("id")?.str()?.iter().zip(df.column("v")?.str()?.iter()) {
        if let (Some(id), Some(v)) = (id, v) {
            groups.entry(v.to_string()).or_default().push(id.to_string());
        }
    }
    if groups.is_empty() {
        return Err(CurateError::arg("balance", format!("no samples with a value of `{column}`")));
    }
    let shares: std::collections::BTreeMap<String, f64> = match target {
        None => groups.keys().map(|k| (k.clone(), 1.0 / groups.len() as f64)).collect(),
        Some(t) => {
            let mut m = std::collections::BTreeMap::new();
            for (k, v) in t {
                let share = v.as_float().or_else(|_| v.as_int().map(|i| i as f64)).map_err(|_| CurateError::InvalidOption {
                    function: "balance".into(),
                    key: "target".into(),
                    message: format!("the share of `{k}` is not a number"),
                })?;
                if !groups.contains_key(k.as_str()) {
                    return Err(CurateError::InvalidOption {
                        function: "balance".into(),
                        key: "target".into(),
                        message: format!("`{k}` is not a value of `{column}` in ds (values: {})", groups.keys().cloned().collect::<Vec<_>>().join(", ")),
                    });
                }
                m.insert(k.to_string(), share);
            }
            let total: f64 = m.values().sum();
            if total.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return Err(CurateError::InvalidOption { function: "balance".into(), key: "target".into(), message: "the shares must add up to more than 0".into() });
            }
            m.into_iter().map(|(k, v)| (k, v / total)).collect()
        }
    };
    let n: usize = groups.values().map(Vec::len).sum();
    confirm(ctx, "balance", n)?;
    let ws = workspace(ctx, ds);
    let src = source(ctx, call);
    let mut entries = Vec::new();
    for (value, ids) in groups {
        let share = shares.get(&value).copied().unwrap_or(0.0);
        let w = share * n as f64 / ids.len() as f64;
        let old = current_values(ds, &ids, Some("weight"))?;
        entries.push(entry(
            "set_weight",
            ids,
            Some("weight"),
            Some(Value::from((w * 1e6).round() / 1e6)),
            old,
            &format!("balance {column}: {value} to {:.1}% of the weight", share * 100.0),
            src.clone(),
        ));
    }
    edits::append(&ws.edits_path(), &entries)?;
    Dataset::new(ws.clone(), ws.scan_manifest()?)
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("balance", move |call: NativeCallContext, ds: &mut Dataset, column: &str| -> R<Dataset> { Ok(balance(&c, &call, ds, column, None)?) });
    let c = ctx.clone();
    engine.register_fn("balance", move |call: NativeCallContext, ds: &mut Dataset, column: &str, opts: rhai::Map| -> R<Dataset> {
        for k in opts.keys() {
            if !BALANCE_KEYS.contains(&k.as_str()) {
                return Err(CurateError::UnknownOption { function: "balance".into(), key: k.to_string(), valid: BALANCE_KEYS.iter().map(|k| k.to_string()).collect() }.into());
            }
        }
        let target = opts.get("target").and_then(|t| t.read_lock::<rhai::Map>().map(|m| m.clone()));
        Ok(balance(&c, &call, ds, column, target.as_ref())?)
    });
    let c = ctx.clone();
    engine.register_fn("relabel", move |call: NativeCallContext, ds: &mut Dataset, ids: Dynamic, label: &str, reason: &str| -> R<Dataset> {
        Ok(set_value(&c, &call, ds, "relabel", "label", &ids, Value::String(label.into()), reason)?)
    });
    let c = ctx.clone();
    engine.register_fn("set", move |call: NativeCallContext, ds: &mut Dataset, column: &str, ids: Dynamic, value: Dynamic| -> R<Dataset> {
        let v = json_of(&value, "set")?;
        if column.starts_with("tag_") || column == "weight" || column == "label" {
            return Err(CurateError::arg(
                "set",
                format!(
                    "use {} for `{column}`",
                    if column == "label" {
                        "relabel"
                    } else if column == "weight" {
                        "weight"
                    } else {
                        "tag/untag"
                    }
                ),
            )
            .into());
        }
        Ok(set_value(&c, &call, ds, "set", column, &ids, v, "")?)
    });
    let c = ctx.clone();
    engine.register_fn("set", move |call: NativeCallContext, ds: &mut Dataset, column: &str, ids: Dynamic, value: Dynamic, reason: &str| -> R<Dataset> {
        let v = json_of(&value, "set")?;
        if column == "label" {
            return Ok(set_value(&c, &call, ds, "relabel", "label", &ids, v, reason)?);
        }
        if column.starts_with("tag_") || column == "weight" {
            return Err(CurateError::arg("set", format!("use {} for `{column}`", if column == "weight" { "weight" } else { "tag/untag" })).into());
        }
        Ok(set_value(&c, &call, ds, "set", column, &ids, v, reason)?)
    });
    let c = ctx.clone();
    engine.register_fn("weight", move |call: NativeCallContext, ds: &mut Dataset, ids: Dynamic, w: f64| -> R<Dataset> {
        if !(w >= 0.0 && w.is_finite()) {
            return Err(CurateError::arg("weight", format!("a weight must be a finite number >= 0, got {w}")).into());
        }
        Ok(set_value(&c, &call, ds, "set_weight", "weight", &ids, Value::from(w), "")?)
    });
    let c = ctx.clone();
    engine.register_fn("oversample", move |call: NativeCallContext, ds: &mut Dataset, ids: Dynamic, factor: f64| -> R<Dataset> {
        if !(factor > 0.0 && factor.is_finite()) {
            return Err(CurateError::arg("oversample", format!("the factor must be a finite number > 0, got {factor}")).into());
        }
        // One entry per distinct current weight, so each sample's weight is multiplied.
        let ids = unique("oversample", ids_of("oversample", "ids", &ids)?)?;
        confirm(&c, "oversample", ids.len())?;
        let old = current_values(ds, &ids, Some("weight"))?;
        let mut groups: Vec<(f64, Vec<String>, Vec<Value>)> = Vec::new();
        for (id, o) in ids.into_iter().zip(old) {
            let w = o.as_f64().unwrap_or(1.0) * factor;
            match groups.iter_mut().find(|g| g.0 == w) {
                Some(g) => {
                    g.1.push(id);
                    g.2.push(o);
                }
                None => groups.push((w, vec![id], vec![o])),
            }
        }
        let ws = workspace(&c, ds);
        let src = source(&c, &call);
        let entries: Vec<Edit> = groups.into_iter().map(|(w, ids, old)| entry("set_weight", ids, Some("weight"), Some(Value::from(w)), old, &format!("oversample x{factor}"), src.clone())).collect();
        edits::append(&ws.edits_path(), &entries)?;
        Ok(Dataset::new(ws.clone(), ws.scan_manifest()?)?)
    });
    for (name, action) in [("remove", "remove"), ("tag", "tag"), ("untag", "untag")] {
        let c = ctx.clone();
        engine.register_fn(name, move |call: NativeCallContext, ds: &mut Dataset, ids: Dynamic, arg: &str| -> R<Dataset> {
            let ids = unique(action, ids_of(action, "ids", &ids)?)?;
            current_values(ds, &ids, None)?;
            let (column, reason) = if action == "remove" { (None, arg) } else { (Some(arg), "") };
            if column.is_some_and(|t| t.trim().is_empty()) {
                return Err(CurateError::arg(action, "the tag name is empty").into());
            }
            Ok(append_and_reopen(&c, ds, entry(action, ids, column, None, vec![], reason, source(&c, &call)))?)
        });
    }
    let c = ctx.clone();
    engine.register_fn("restore", move |call: NativeCallContext, ds: &mut Dataset, ids: Dynamic| -> R<Dataset> {
        let ids = unique("restore", ids_of("restore", "ids", &ids)?)?;
        let ws = workspace(&c, ds);
        // Removed samples are not in the current view; they are in the manifest, or were added
        // by an `add` entry of the log (augmented samples).
        let log = edits::read(&ws.edits_path())?;
        let added: std::collections::HashSet<&String> = log.edits.iter().filter(|e| e.action == "add").flat_map(|e| e.ids.iter()).collect();
        let from_manifest: Vec<String> = ids.iter().filter(|i| !added.contains(i)).cloned().collect();
        if !from_manifest.is_empty() {
            let raw = Dataset::new(ws.clone(), crate::manifest::scan(&ws.manifest_path())?)?;
            values_in(&raw, &from_manifest, None)?;
        }
        Ok(append_and_reopen(&c, ds, entry("restore", ids, None, None, vec![], "", source(&c, &call)))?)
    });
    let c = ctx.clone();
    engine.register_fn("checkpoint", move |call: NativeCallContext, ds: &mut Dataset, name: &str| -> R<Dataset> {
        if name.parse::<usize>().is_ok() || name.trim().is_empty() || matches!(name, "manifest" | "current" | "latest") {
            return Err(CurateError::arg("checkpoint", format!("`{name}` cannot name a checkpoint (numbers and manifest/current/latest are positions)")).into());
        }
        let ws = workspace(&c, ds);
        edits::append(&ws.edits_path(), &[entry("checkpoint", vec![], Some(name), None, vec![], "", source(&c, &call))])?;
        Ok(Dataset::new(ws.clone(), ws.scan_manifest()?)?)
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        for doc in [
            &super::DOC,
            &super::REMOVE_DOC,
            &super::RESTORE_DOC,
            &super::TAG_DOC,
            &super::UNTAG_DOC,
            &super::SET_DOC,
            &super::WEIGHT_DOC,
            &super::OVERSAMPLE_DOC,
            &super::BALANCE_DOC,
            &super::CHECKPOINT_DOC,
        ] {
            crate::testing::check_examples_in_copy(doc);
        }
    }
}
