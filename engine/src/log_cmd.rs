//! `curate log` lists the edit log; `curate diff A B` summarises what changed between two
//! states of the dataset (edit counts, checkpoint names, `manifest` or `current`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use curate_stdlib::edits::{self, At};
use curate_stdlib::{CurateError, Workspace};
use polars::prelude::*;

fn fail(e: &CurateError) -> u8 {
    eprint!("{}", crate::diagnostic::render(e, crate::run::color()));
    2
}

pub fn log(dir: &Path, json: bool) -> u8 {
    let result = (|| -> Result<(), CurateError> {
        let ws = Workspace::discover(dir)?;
        let path = edits::path(&ws);
        let log = edits::read(&path)?;
        if let Some(line) = log.torn {
            eprintln!("warning: {}: line {line} is incomplete (an append that did not finish); it is ignored and will be cut off by the next edit", path.display());
        }
        if json {
            println!("{}", serde_json::to_string_pretty(&log.edits).unwrap_or_default());
            return Ok(());
        }
        if log.edits.is_empty() {
            println!("no edits yet ({} does not exist or is empty)", path.display());
        }
        for (i, e) in log.edits.iter().enumerate() {
            let what = match (e.action.as_str(), &e.column, &e.value) {
                ("checkpoint", Some(name), _) => format!("checkpoint `{name}`"),
                ("relabel", _, Some(v)) => format!("relabel {} → {}", count(e.ids.len()), plain(v)),
                ("set" | "set_weight", Some(c), Some(v)) => format!("set {c} = {} on {}", plain(v), count(e.ids.len())),
                ("tag" | "untag", Some(t), _) => format!("{} {} `{t}`", e.action, count(e.ids.len())),
                (a, _, _) => format!("{a} {}", count(e.ids.len())),
            };
            let reason = if e.reason.is_empty() { String::new() } else { format!("  \"{}\"", e.reason) };
            println!("{:>5}  {}  {what}{reason}  ({})", i + 1, e.time, e.source);
        }
        Ok(())
    })();
    match result {
        Ok(()) => 0,
        Err(e) => fail(&e),
    }
}

fn count(n: usize) -> String {
    if n == 1 { "1 sample".into() } else { format!("{n} samples") }
}

fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// id → (label, split) of a state.
fn state(ws: &Workspace, at: &At) -> Result<HashMap<String, (String, String)>, CurateError> {
    let lf = ws.scan_at(Some(at))?;
    let schema = lf.clone().collect_schema()?;
    let pick = |c: &str| if schema.contains(c) { col(c).cast(DataType::String) } else { lit(NULL).cast(DataType::String).alias(c) };
    let df = lf.select([col("id"), pick("label"), pick("split")]).collect()?;
    let (ids, labels, splits) = (df.column("id")?.str()?.clone(), df.column("label")?.str()?.clone(), df.column("split")?.str()?.clone());
    Ok((0..df.height())
        .map(|i| (ids.get(i).unwrap_or_default().to_string(), (labels.get(i).unwrap_or("(none)").to_string(), splits.get(i).unwrap_or("(none)").to_string())))
        .collect())
}

pub fn diff(dir: &Path, a: &str, b: &str, json: bool) -> u8 {
    let result = (|| -> Result<serde_json::Value, CurateError> {
        let ws = Workspace::discover(dir)?;
        let (sa, sb) = (state(&ws, &At::parse(a))?, state(&ws, &At::parse(b))?);
        let mut removed: BTreeMap<String, usize> = BTreeMap::new();
        let mut added: BTreeMap<String, usize> = BTreeMap::new();
        let mut relabelled: BTreeMap<String, usize> = BTreeMap::new();
        let mut moved: BTreeMap<String, usize> = BTreeMap::new();
        for (id, (l, s)) in &sa {
            match sb.get(id) {
                None => *removed.entry(format!("{l} / {s}")).or_default() += 1,
                Some((l2, s2)) => {
                    if l != l2 {
                        *relabelled.entry(format!("{l} → {l2} ({s})")).or_default() += 1;
                    }
                    if s != s2 {
                        *moved.entry(format!("{s} → {s2}")).or_default() += 1;
                    }
                }
            }
        }
        for (id, (l, s)) in &sb {
            if !sa.contains_key(id) {
                *added.entry(format!("{l} / {s}")).or_default() += 1;
            }
        }
        let counts = |m: &HashMap<String, (String, String)>| {
            let mut c: BTreeMap<String, usize> = BTreeMap::new();
            for (l, s) in m.values() {
                *c.entry(format!("{l} / {s}")).or_default() += 1;
            }
            c
        };
        Ok(serde_json::json!({
            "a": a, "b": b, "samples_a": sa.len(), "samples_b": sb.len(),
            "removed": removed, "added": added, "relabelled": relabelled, "moved": moved,
            "by_label_split_a": counts(&sa), "by_label_split_b": counts(&sb),
        }))
    })();
    match result {
        Ok(doc) if json => {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            0
        }
        Ok(doc) => {
            println!("{a} → {b}: {} → {} samples", doc["samples_a"], doc["samples_b"]);
            for (key, title) in [("removed", "removed (label / split)"), ("added", "restored or added (label / split)"), ("relabelled", "relabelled"), ("moved", "changed split")] {
                if let Some(m) = doc[key].as_object().filter(|m| !m.is_empty()) {
                    println!("{title}:");
                    for (k, v) in m {
                        println!("  {v:>6}  {k}");
                    }
                }
            }
            println!("by label / split:");
            let (ca, cb) = (doc["by_label_split_a"].as_object().cloned().unwrap_or_default(), doc["by_label_split_b"].as_object().cloned().unwrap_or_default());
            let mut keys: Vec<&String> = ca.keys().chain(cb.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (x, y) = (ca.get(k).and_then(|v| v.as_i64()).unwrap_or(0), cb.get(k).and_then(|v| v.as_i64()).unwrap_or(0));
                println!("  {k:30} {x:>8} → {y:<8}{}", if x != y { format!(" ({:+})", y - x) } else { String::new() });
            }
            0
        }
        Err(e) => fail(&e),
    }
}
