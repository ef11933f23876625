//! What changed between two states of a dataset (`curate diff A B`): each state is the manifest
//! with a prefix of the edit log replayed (an edit count, a checkpoint's name, `manifest` or
//! `current`), compared sample by sample on label and split.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;
use serde::Serialize;

use crate::edits::At;
use crate::error::Result;
use crate::workspace::Workspace;

/// Counts by key (`label / split`, `old → new (split)`, `old → new`), in key order.
pub type Counts = BTreeMap<String, usize>;

/// The summary of what changed from state `a` to state `b`.
#[derive(Debug, Clone, Serialize)]
pub struct StateDiff {
    pub a: String,
    pub b: String,
    pub samples_a: usize,
    pub samples_b: usize,
    /// Samples of `a` that `b` does not have, by `label / split` in `a`.
    pub removed: Counts,
    /// Samples of `b` that `a` does not have (restored or added), by `label / split` in `b`.
    pub added: Counts,
    /// By `old → new (split in a)`.
    pub relabelled: Counts,
    /// By `old split → new split`.
    pub moved: Counts,
    pub by_label_split_a: Counts,
    pub by_label_split_b: Counts,
}

/// id → (label, split) of a state; a missing column or value is "(none)".
fn state(ws: &Workspace, at: &At) -> Result<HashMap<String, (String, String)>> {
    let lf = ws.scan_at(Some(at))?;
    let schema = lf.clone().collect_schema()?;
    let pick = |c: &str| if schema.contains(c) { col(c).cast(DataType::String) } else { lit(NULL).cast(DataType::String).alias(c) };
    let df = lf.select([col("id"), pick("label"), pick("split")]).collect()?;
    let (ids, labels, splits) = (df.column("id")?.str()?.clone(), df.column("label")?.str()?.clone(), df.column("split")?.str()?.clone());
    Ok((0..df.height()).map(|i| (ids.get(i).unwrap_or_default().to_string(), (labels.get(i).unwrap_or("(none)").to_string(), splits.get(i).unwrap_or("(none)").to_string()))).collect())
}

/// Compare the states `a` and `b` of `ws` (as [`At::parse`] reads them).
pub fn diff(ws: &Workspace, a: &str, b: &str) -> Result<StateDiff> {
    let (sa, sb) = (state(ws, &At::parse(a))?, state(ws, &At::parse(b))?);
    let (mut removed, mut added, mut relabelled, mut moved) = (Counts::new(), Counts::new(), Counts::new(), Counts::new());
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
        let mut c = Counts::new();
        for (l, s) in m.values() {
            *c.entry(format!("{l} / {s}")).or_default() += 1;
        }
        c
    };
    Ok(StateDiff { a: a.to_string(), b: b.to_string(), samples_a: sa.len(), samples_b: sb.len(), removed, added, relabelled, moved, by_label_split_a: counts(&sa), by_label_split_b: counts(&sb) })
}
