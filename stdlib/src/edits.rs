//! The edit log, `edits.jsonl` in the workspace: an append-only record of curation actions.
//! The current view of the dataset is the manifest with the log replayed.
//!
//! Appends take an exclusive file lock (two sessions on one workspace interleave whole lines,
//! never bytes), write whole lines and fsync. A line torn by a crash is detected: readers warn
//! and ignore it, and the next append cuts it off before writing, so every complete entry
//! survives.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CurateError, Result};
use crate::workspace::Workspace;

pub const FILE: &str = "edits.jsonl";

/// One entry of the log.
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


pub fn path(ws: &Workspace) -> PathBuf {
    ws.root().join(FILE)
}

/// The log's complete entries, and the torn last line if a crash left one.
#[derive(Debug, Default)]
pub struct Log {
    pub edits: Vec<Edit>,
    pub torn: Option<usize>,
}

pub fn read(path: &Path) -> Result<Log> {
    match read_bytes(path)? {
        Some(bytes) => parse(path, &bytes),
        None => Ok(Log::default()),
    }
}

/// The log file's bytes, or `None` when there is no log yet.
pub fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CurateError::io(path, e)),
    }
}

/// The entries in a log's bytes (`path` names it in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Log> {
    let mut log = Log::default();
    let complete = bytes.last() == Some(&b'\n');
    let text = String::from_utf8_lossy(bytes);
    let count = text.split_terminator('\n').count();
    let parsed = parse_lines(&text);
    log.edits.reserve(parsed.len());
    for (n, entry) in parsed {
        let last = n == count;
        match entry {
            // A last line without its newline is an append that did not finish.
            _ if last && !complete => log.torn = Some(n),
            Ok(e) => log.edits.push(e),
            Err(e) => return Err(CurateError::io(path, format!("line {n}: not an edit entry: {e}"))),
        }
    }
    Ok(log)
}

/// Append entries under an exclusive lock, cutting off a torn last line first.
pub fn append(path: &Path, edits: &[Edit]) -> Result<()> {
    let io = |e: std::io::Error| CurateError::io(path, e);
    let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
    fs4::FileExt::lock(&f).map_err(io)?;
    let result = (|| -> Result<()> {
        let len = f.seek(SeekFrom::End(0)).map_err(io)?;
        if len > 0 {
            f.seek(SeekFrom::End(-1)).map_err(io)?;
            let mut last = [0u8; 1];
            f.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                // Find the start of the torn line and cut it off.
                let mut buf = Vec::new();
                f.seek(SeekFrom::Start(0)).map_err(io)?;
                f.read_to_end(&mut buf).map_err(io)?;
                let keep = buf.iter().rposition(|&b| b == b'\n').map(|p| p + 1).unwrap_or(0);
                f.set_len(keep as u64).map_err(io)?;
            }
        }
        let out = to_lines(edits).map_err(|e| CurateError::io(path, e))?;
        f.seek(SeekFrom::End(0)).map_err(io)?;
        f.write_all(&out).map_err(io)?;
        f.sync_data().map_err(io)
    })();
    let _ = fs4::FileExt::unlock(&f);
    result
}

pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A state of the dataset: the first N edits, or up to a named checkpoint.
#[derive(Debug, Clone)]
pub enum At {
    Position(usize),
    Checkpoint(String),
}

impl At {
    pub fn parse(s: &str) -> At {
        match s.parse::<usize>() {
            Ok(n) => At::Position(n),
            Err(_) => At::Checkpoint(s.to_string()),
        }
    }

    /// How many edits of `log` this state includes.
    pub fn resolve(&self, log: &Log) -> Result<usize> {
        match self {
            At::Position(n) if *n <= log.edits.len() => Ok(*n),
            At::Position(n) => Err(CurateError::arg("open", format!("the edit log has {} entries, not {n}", log.edits.len()))),
            At::Checkpoint(name) if name == "manifest" => Ok(0),
            At::Checkpoint(name) if name == "current" || name == "latest" => Ok(log.edits.len()),
            At::Checkpoint(name) => log
                .edits
                .iter()
                .rposition(|e| e.action == "checkpoint" && e.column.as_deref() == Some(name.as_str()))
                .map(|p| p + 1)
                .ok_or_else(|| CurateError::arg("open", format!("no checkpoint called `{name}` in the edit log"))),
        }
    }
}

/// The manifest with `edits` replayed: each edited column's final value per id is computed in
/// one pass over the log, then joined in once per column.
pub fn replay(manifest: LazyFrame, edits: &[Edit]) -> Result<LazyFrame> {
    if edits.is_empty() {
        return Ok(manifest);
    }
    let Final { columns, defaults, removed } = final_values(edits);
    let mut lf = manifest;
    let schema = lf.collect_schema()?;
    // Added samples first: later edits may touch them.
    let added: Vec<&serde_json::Map<String, Value>> = edits.iter().filter(|e| e.action == "add").flat_map(|e| e.rows.iter()).collect();
    if !added.is_empty() {
        let mut names: Vec<&String> = Vec::new();
        for r in &added {
            for k in r.keys() {
                if !names.contains(&k) {
                    names.push(k);
                }
            }
        }
        let mut cols = Vec::new();
        for name in names {
            let vals: Vec<&Value> = added.iter().map(|r| r.get(name).unwrap_or(&Value::Null)).collect();
            let mut s = json_series(name, &vals);
            if let Some(dt) = schema.get(name.as_str()) {
                s = s.cast(dt)?;
            }
            cols.push(s.into_column());
        }
        let df = DataFrame::new(added.len(), cols)?;
        // Concatenated eagerly: a lazy union of the Parquet scan and in-memory rows trips
        // Polars' predicate pushdown ("casting from UInt32 to UInt128 not supported").
        let base = lf.collect()?;
        lf = polars::functions::concat_df_diagonal(&[base, df])?.lazy();
    }
    let schema = lf.collect_schema()?;
    // Every edited column's final values in one frame keyed by id, joined in once: one join of
    // the manifest, whatever the number of edited columns (a join per column was 6 passes over
    // 30M rows for a log of relabels, tags and weights).
    if !columns.is_empty() {
        let mut slot: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut ids: Vec<&str> = Vec::new();
        for (edited, _) in columns.values() {
            for &id in edited {
                slot.entry(id).or_insert_with(|| {
                    ids.push(id);
                    ids.len() - 1
                });
            }
        }
        let mut frame = vec![Column::new("id".into(), ids.clone())];
        let mut merges = Vec::new();
        let mut temporary = Vec::new();
        for (name, (edited, vals)) in &columns {
            let new = format!("__new_{name}");
            let mut aligned: Vec<&Value> = vec![&Value::Null; ids.len()];
            for (id, v) in edited.iter().zip(vals) {
                aligned[slot[id]] = v;
            }
            frame.push(json_series(&new, &aligned).into_column());
            let default = defaults.get(name).map(|d| match d {
                Value::Bool(b) => lit(*b),
                Value::Number(n) => lit(n.as_f64().unwrap_or(0.0)),
                other => lit(other.to_string()),
            });
            merges.push(
                match schema.get(name.as_str()) {
                    Some(dt) => when(col(new.as_str()).is_not_null()).then(col(new.as_str()).strict_cast(dt.clone())).otherwise(col(name.as_str())),
                    None => match default {
                        Some(d) => col(new.as_str()).fill_null(d),
                        None => col(new.as_str()),
                    },
                }
                .alias(name.as_str()),
            );
            temporary.push(new);
        }
        let df = DataFrame::new(ids.len(), frame)?;
        lf = lf
            .join(df.lazy(), [col("id")], [col("id")], JoinArgs::new(JoinType::Left))
            .with_columns(merges)
            .drop(by_name(temporary.iter().map(String::as_str), true, false));
    }
    if !removed.is_empty() {
        let gone = Series::new("gone".into(), removed);
        lf = lf.filter(col("id").is_in(lit(gone).implode(false), false).not());
    }
    Ok(lf)
}

/// A series from JSON values (nulls allowed): booleans, integers, numbers, or else text.
fn json_series(name: &str, vals: &[&Value]) -> Series {
    let set = || vals.iter().filter(|v| !v.is_null());
    if set().all(|v| v.is_boolean()) {
        return Series::new(name.into(), vals.iter().map(|v| v.as_bool()).collect::<Vec<_>>());
    }
    if set().all(|v| v.is_i64()) {
        return Series::new(name.into(), vals.iter().map(|v| v.as_i64()).collect::<Vec<_>>());
    }
    if set().all(|v| v.is_number()) {
        return Series::new(name.into(), vals.iter().map(|v| v.as_f64()).collect::<Vec<_>>());
    }
    Series::new(
        name.into(),
        vals.iter()
            .map(|v| match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            })
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(action: &str, ids: &[&str], column: Option<&str>, value: Option<Value>) -> Edit {
        Edit {
            time: now(),
            action: action.into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            column: column.map(str::to_string),
            value,
            old: vec![],
            rows: vec![],
            reason: String::new(),
            source: "test".into(),
        }
    }

    #[test]
    fn a_torn_last_line_is_ignored_then_cut_off() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join(FILE);
        append(&p, &[edit("remove", &["a"], None, None), edit("relabel", &["b"], None, Some("x".into()))]).expect("append");
        // A crash in the middle of the third append.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).expect("open");
        f.write_all(b"{\"time\":\"2026-").expect("torn write");
        let log = read(&p).expect("read");
        assert_eq!(log.edits.len(), 2);
        assert_eq!(log.torn, Some(3));
        append(&p, &[edit("tag", &["c"], Some("t"), None)]).expect("append after a crash");
        let log = read(&p).expect("read");
        assert_eq!(log.edits.len(), 3);
        assert_eq!(log.torn, None);
        assert_eq!(log.edits[2].action, "tag");
        // A corrupt line in the middle is an error that names the line.
        let good = serde_json::to_string(&edit("remove", &["a"], None, None)).expect("json");
        std::fs::write(&p, format!("{good}\nnot json\n{good}\n")).expect("write");
        let err = read(&p).expect_err("corrupt");
        assert!(err.to_string().contains("line 2:"), "{err}");
    }

    #[test]
    fn replay_applies_edits_in_order() {
        let df = df!("id" => ["a", "b", "c"], "label" => ["x", "y", "z"]).expect("df");
        let edits = vec![
            edit("relabel", &["a", "b"], None, Some("q".into())),
            edit("relabel", &["a"], None, Some("r".into())),
            edit("remove", &["c"], None, None),
            edit("tag", &["b"], Some("blue bg"), None),
            edit("set_weight", &["b"], Some("weight"), Some(Value::from(3.0))),
            edit("set", &["a"], Some("scene"), Some("desk".into())),
        ];
        let out = replay(df.clone().lazy(), &edits).expect("replay").collect().expect("collect");
        assert_eq!(out.height(), 2);
        let get = |c: &str, i: usize| out.column(c).expect(c).get(i).expect("row").to_string();
        assert_eq!(get("label", 0), "\"r\"");
        assert_eq!(get("label", 1), "\"q\"");
        assert_eq!(get("tag_blue_bg", 0), "false");
        assert_eq!(get("tag_blue_bg", 1), "true");
        assert_eq!(get("weight", 0), "1.0");
        assert_eq!(get("weight", 1), "3.0");
        assert_eq!(get("scene", 0), "\"desk\"");
        let restored = replay(df.lazy(), &[edits[2].clone(), edit("restore", &["c"], None, None)]).expect("replay").collect().expect("collect");
        assert_eq!(restored.height(), 3);
    }
}

#[cfg(test)]
mod add_tests {
    use super::*;

    #[test]
    fn added_rows_take_the_manifest_types() {
        let df = df!("id" => ["a"], "width" => [25u32], "bytes" => [100u64], "label" => ["x"]).expect("df");
        let mut row = serde_json::Map::new();
        row.insert("id".into(), Value::from("b"));
        row.insert("width".into(), Value::from(30));
        row.insert("bytes".into(), Value::from(7));
        row.insert("label".into(), Value::from("y"));
        row.insert("parent_id".into(), Value::from("a"));
        let e = Edit { time: now(), action: "add".into(), ids: vec!["b".into()], column: None, value: None, old: vec![], rows: vec![row], reason: String::new(), source: "t".into() };
        let out = replay(df.lazy(), &[e]).expect("replay").collect().expect("collect");
        assert_eq!(out.height(), 2);
        assert_eq!(out.column("width").expect("w").dtype(), &DataType::UInt32);
    }
}
