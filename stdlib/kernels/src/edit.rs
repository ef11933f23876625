//! Edit-log entries and their JSON lines. Here rather than in the stdlib so that serde's
//! generic code for them is compiled optimised even in dev builds: reading a long log was
//! 4× a plain manifest read and appending took seconds per 100k entries (edits bench).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edit {
    pub time: String,
    /// relabel, set, remove, restore, tag, untag, set_weight, add or checkpoint.
    pub action: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// The column a relabel/set/set_weight writes, or the tag name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The values before the edit, one per id (relabel, set, set_weight).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub old: Vec<Value>,
    /// New samples (action "add"): one object per row, column → value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<serde_json::Map<String, Value>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The script and line, or "repl", that made the edit.
    pub source: String,
}

/// Parse JSON lines in parallel: each line (1-based number) and its entry or error. Blank
/// lines are skipped.
pub fn parse_lines(text: &str) -> Vec<(usize, Result<Edit, String>)> {
    let lines: Vec<(usize, &str)> = text.split_terminator('\n').enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, l)).collect();
    lines.into_par_iter().map(|(n, l)| (n, serde_json::from_str::<Edit>(l).map_err(|e| e.to_string()))).collect()
}

/// Entries as JSON lines, each ending in a newline.
pub fn to_lines(edits: &[Edit]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for e in edits {
        serde_json::to_writer(&mut out, e).map_err(|e| e.to_string())?;
        out.push(b'\n');
    }
    Ok(out)
}

/// What replaying a log does to the manifest, computed in one pass: the final value of each
/// edited column per id, which columns get a default for unedited rows, and the removed ids.
#[derive(Debug, Default)]
pub struct Final<'a> {
    /// column → (ids, values), in no particular order.
    pub columns: std::collections::BTreeMap<String, (Vec<&'a str>, Vec<&'a Value>)>,
    /// Defaults of columns the manifest may lack (weight 1.0, tags false).
    pub defaults: std::collections::BTreeMap<String, Value>,
    pub removed: Vec<&'a str>,
}

/// The column a tag is kept in.
pub fn tag_column(tag: &str) -> String {
    format!("tag_{}", tag.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>())
}

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

pub fn final_values(edits: &[Edit]) -> Final<'_> {
    use std::collections::{BTreeMap, HashMap};
    let mut columns: BTreeMap<String, HashMap<&str, &Value>> = BTreeMap::new();
    let mut removed: HashMap<&str, bool> = HashMap::new();
    let mut defaults: BTreeMap<String, Value> = BTreeMap::new();
    for e in edits {
        let col_name = || e.column.clone().unwrap_or_default();
        match e.action.as_str() {
            "relabel" | "set" | "set_weight" => {
                let name = match e.action.as_str() {
                    "relabel" => "label".to_string(),
                    "set_weight" => {
                        defaults.insert("weight".into(), Value::from(1.0));
                        "weight".to_string()
                    }
                    _ => col_name(),
                };
                let Some(v) = e.value.as_ref() else { continue };
                let m = columns.entry(name).or_default();
                for id in &e.ids {
                    m.insert(id, v);
                }
            }
            "tag" | "untag" => {
                let name = tag_column(&col_name());
                defaults.insert(name.clone(), Value::Bool(false));
                let m = columns.entry(name).or_default();
                let v = if e.action == "tag" { &TRUE } else { &FALSE };
                for id in &e.ids {
                    m.insert(id, v);
                }
            }
            "remove" | "restore" => {
                for id in &e.ids {
                    removed.insert(id, e.action == "remove");
                }
            }
            _ => {}
        }
    }
    Final {
        columns: columns.into_iter().map(|(k, m)| (k, m.into_iter().unzip())).collect(),
        defaults,
        removed: removed.into_iter().filter(|(_, r)| *r).map(|(i, _)| i).collect(),
    }
}

/// A JSON document, pretty-printed (lock files list every exported file: 1M entries took
/// seconds through serde code compiled unoptimised).
pub fn pretty(v: &Value) -> Result<Vec<u8>, String> {
    serde_json::to_vec_pretty(v).map_err(|e| e.to_string())
}

/// One exported file of a lock file.
#[derive(Debug, Clone, Serialize)]
pub struct LockedFile {
    pub id: String,
    pub path: String,
    pub hash: String,
}

/// The lock file's `files` list as JSON values.
pub fn locked_files(files: Vec<LockedFile>) -> Value {
    Value::Array(files.into_iter().map(|f| serde_json::json!({"id": f.id, "path": f.path, "hash": f.hash})).collect())
}
