//! The edit log, `edits.jsonl` in the workspace: an append-only record of curation actions.
//! The current view of the dataset is the manifest with the log replayed.
//!
//! Appends take an exclusive file lock (two sessions on one workspace interleave whole lines,
//! never bytes), write whole lines and fsync. A line torn by a crash is detected: readers warn
//! and ignore it, and the next append cuts it off before writing, so every complete entry
//! survives.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CurateError, Result};

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
    use std::collections::BTreeMap;
    // Polars' hasher (foldhash): SipHash over 1M ids was a visible share of a replay.
    let mut columns: BTreeMap<String, PlHashMap<&str, &Value>> = BTreeMap::new();
    let mut removed: PlHashMap<&str, bool> = PlHashMap::new();
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
    Final { columns: columns.into_iter().map(|(k, m)| (k, m.into_iter().unzip())).collect(), defaults, removed: removed.into_iter().filter(|(_, r)| *r).map(|(i, _)| i).collect() }
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

/// The manifest with `edits` replayed, as a lazy plan: each edited column's final value per id
/// is computed in one pass over the log, then joined in once. A caller that filters or selects
/// (an edit looking up old values, a time-travel query) keeps Polars' pushdown.
pub fn replay(manifest: LazyFrame, edits: &[Edit]) -> Result<LazyFrame> {
    replay_from(manifest, edits, usize::MAX)
}

/// The whole replayed view, for callers that need every row (the view cache): when the log
/// names [`EAGER_FROM`] ids or more, applied to the collected manifest (`apply_by_row`), which
/// at 30M rows and 1M edits took a third of the time of collecting the lazy join.
pub fn replay_collected(manifest: LazyFrame, edits: &[Edit]) -> Result<DataFrame> {
    Ok(replay_from(manifest, edits, EAGER_FROM)?.collect()?)
}

/// The replay with the switch from the lazy join to the collected path at `eager_from` ids
/// named by the log: 0 always collects, `usize::MAX` always joins. The `edits` bench measures both.
pub fn replay_from(manifest: LazyFrame, edits: &[Edit], eager_from: usize) -> Result<LazyFrame> {
    replay_parts(manifest, edits, eager_from, PART_ROWS)
}

/// [`replay_from`], with the collected path's parts cut to at most `part_rows` rows.
fn replay_parts(manifest: LazyFrame, edits: &[Edit], eager_from: usize, part_rows: usize) -> Result<LazyFrame> {
    if edits.is_empty() {
        return Ok(manifest);
    }
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
    // The ids the log's edits name: at least the number of distinct ids it edits.
    if edits.iter().filter(|e| e.action != "add").map(|e| e.ids.len()).sum::<usize>() >= eager_from {
        return Ok(apply_by_row(lf, edits, part_rows)?.lazy());
    }
    let Final { columns, defaults, removed } = final_values(edits);
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
        lf = lf.join(df.lazy(), [col("id")], [col("id")], JoinArgs::new(JoinType::Left)).with_columns(merges).drop(by_name(temporary.iter().map(String::as_str), true, false));
    }
    if !removed.is_empty() {
        let gone = Series::new("gone".into(), removed);
        // `nulls_equal`: a row without an id is not in the list, so it stays (as in
        // `apply_by_row`) rather than vanishing through a null predicate.
        lf = lf.filter(col("id").is_in(lit(gone).implode(false), true).not());
    }
    Ok(lf)
}

/// From this many ids named by the log's edits on, `replay_collected` works on the collected manifest
/// (`apply_by_row`) instead of collecting the lazy join: at 30M rows and 1M edits the join, the
/// per-column `when/then` merges and the `is_in` filter were each a full pass over every row.
/// At 10k edits the two measured 4.7 s and 5.1 s.
pub const EAGER_FROM: usize = 10_000;

/// The most rows `apply_by_row` gives one task: Polars' Parquet reader yields row groups of
/// this order, and a part's columns then stay in the caches while they are rebuilt.
const PART_ROWS: usize = 1 << 18;

/// The final values applied to the collected manifest, part by part in parallel, with as few
/// copies as the result allows (on a VM, first-touch page faults on fresh memory are much of
/// the cost of a copy): a part's `id` column is matched against a table keyed by each edited
/// id's 64-bit hash (so the 29M rows that miss never compare strings), its removed rows are
/// dropped, and its edited columns rebuilt (`ByRow::apply`). Same result as the lazy join, in
/// the manifest's row order.
fn apply_by_row(lf: LazyFrame, edits: &[Edit], part_rows: usize) -> Result<DataFrame> {
    // The manifest is read (by Polars' threads) while the log is worked out here: reading keeps
    // both cores busy, so this single-threaded work fits in beside it instead of after it.
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || lf.collect());
        let Final { columns, defaults, removed } = final_values(edits);
        let plan = ByRow::new(&columns, &defaults, &removed);
        let df = reading.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        plan.run(df, part_rows)
    })
}

impl<'a> ByRow<'a> {
    /// The edited ids' slots, each column's new values and the bits of the hash filter.
    fn new(columns: &'a std::collections::BTreeMap<String, (Vec<&'a str>, Vec<&'a Value>)>, defaults: &'a std::collections::BTreeMap<String, Value>, removed: &[&'a str]) -> Self {
        use std::hash::BuildHasher;
        const NONE: u32 = u32::MAX;
        let hasher = PlRandomState::default();
        // One slot per distinct id, found by its hash; ids whose hash another id already took (a
        // 64-bit collision) go in `spill`, matched by their text.
        let mut slot: PlHashMap<u64, u32> = PlHashMap::with_capacity(removed.len() + columns.values().map(|(i, _)| i.len()).max().unwrap_or(0));
        let mut spill: PlHashMap<&str, u32> = PlHashMap::new();
        let mut slot_ids: Vec<&str> = Vec::new();
        fn slot_of<'a>(id: &'a str, hasher: &PlRandomState, slot: &mut PlHashMap<u64, u32>, spill: &mut PlHashMap<&'a str, u32>, slot_ids: &mut Vec<&'a str>) -> usize {
            let h = hasher.hash_one(id);
            if let Some(&s) = slot.get(&h) {
                if slot_ids[s as usize] == id {
                    return s as usize;
                }
                let n = slot_ids.len() as u32;
                let s = *spill.entry(id).or_insert(n);
                if s == n {
                    slot_ids.push(id);
                }
                return s as usize;
            }
            let s = slot_ids.len() as u32;
            slot.insert(h, s);
            slot_ids.push(id);
            s as usize
        }
        // Per column, the position of each slot's value (or NONE); whether each slot is removed.
        let mut positions: Vec<Vec<u32>> = Vec::with_capacity(columns.len());
        let mut gone: Vec<bool> = Vec::new();
        for (ids, vals) in columns.values() {
            let mut pos = Vec::new();
            for (p, &id) in ids.iter().enumerate() {
                // A null value leaves the row as it was, as the lazy plan's `when(is_not_null)`.
                if vals[p].is_null() {
                    continue;
                }
                let s = slot_of(id, &hasher, &mut slot, &mut spill, &mut slot_ids);
                if pos.len() <= s {
                    pos.resize(s + 1, NONE);
                }
                pos[s] = p as u32;
            }
            positions.push(pos);
        }
        for &id in removed {
            let s = slot_of(id, &hasher, &mut slot, &mut spill, &mut slot_ids);
            if gone.len() <= s {
                gone.resize(s + 1, false);
            }
            gone[s] = true;
        }
        // A bit per 64-bit hash prefix, about 16 bits per edited id: a row whose bit is clear (about
        // 94% of the 29M rows that miss) is known unedited without probing the table, which is
        // too large for the caches.
        let log_bits = (slot.len().max(1) * 16).next_power_of_two().trailing_zeros().clamp(10, 30);
        let mut filter = vec![0u64; 1 << (log_bits - 6)];
        for h in slot.keys() {
            let b = h >> (64 - log_bits);
            filter[(b >> 6) as usize] |= 1 << (b & 63);
        }
        ByRow {
            filter,
            log_bits,
            slot,
            spill,
            slot_ids,
            hasher,
            gone,
            // Each column's new values, parsed once; cast per part, for the rows present only.
            news: columns.iter().zip(positions).map(|((name, (_, vals)), pos)| (name.as_str(), json_series(name, vals), pos)).collect(),
            defaults,
        }
    }

    /// The edits applied to the collected manifest `df`, in parts of at most `part_rows` rows.
    fn run(&self, mut df: DataFrame, part_rows: usize) -> Result<DataFrame> {
        // The parts are the collected chunks (the scan's row groups), cut to at most `part_rows`
        // rows (zero-copy slices) so that both threads stay busy when chunks are few or large
        // (rows added by the log make `split_chunks` rechunk), and a part's columns stay in the
        // caches while they are rebuilt.
        let mut parts: Vec<DataFrame> = Vec::new();
        for part in df.split_chunks() {
            let h = part.height();
            // Cut into equal parts: 263,157 rows into 2 of 131,579, not one of 262,144 and one of 1,013.
            let size = h.div_ceil(h.div_ceil(part_rows).max(1)).max(1);
            parts.extend((0..h).step_by(size).map(|o| part.slice(o as i64, size.min(h - o))));
        }
        if parts.is_empty() {
            parts.push(df.clear());
        }
        drop(df);
        let done: Vec<DataFrame> = parts.into_par_iter().map(|part| self.apply(part)).collect::<Result<_>>()?;
        let mut done = done.into_iter();
        let mut view = done.next().unwrap_or_default();
        for part in done {
            view.vstack_mut_owned(part)?;
        }
        Ok(view)
    }
}

/// What `apply_by_row` applies to each part: the edited ids' slots (found by hash, with the
/// rare 64-bit collision in `spill`), whether each slot is removed, and per column its new
/// values and the position of each slot's value.
struct ByRow<'a> {
    filter: Vec<u64>,
    log_bits: u32,
    slot: PlHashMap<u64, u32>,
    spill: PlHashMap<&'a str, u32>,
    slot_ids: Vec<&'a str>,
    hasher: PlRandomState,
    gone: Vec<bool>,
    news: Vec<(&'a str, Series, Vec<u32>)>,
    defaults: &'a std::collections::BTreeMap<String, Value>,
}

impl ByRow<'_> {
    /// One part of the manifest with the edits applied: its rows whose id was removed are
    /// dropped, each edited column is rebuilt with one gather from the old chunk plus its new
    /// values (removed rows skipped), and a new weight or tag column is written over its
    /// default. A column no edit touches is kept as it is (or filtered).
    fn apply(&self, part: DataFrame) -> Result<DataFrame> {
        use std::hash::BuildHasher;
        let len = part.height();
        // (row, slot) of every row whose id was edited or removed, in row order. In three
        // passes, so that the memory accesses of many rows are in flight at once (one fused
        // loop waited on each row's cache miss in turn): hash every id, keep the rows whose
        // filter bit is set, then probe the table for those only.
        let ids = part.column("id")?.str()?.rechunk();
        let ids = ids.downcast_as_array();
        let hashes: Vec<u64> = ids.values_iter().map(|id| self.hasher.hash_one(id)).collect();
        let maybe: Vec<u32> = hashes
            .iter()
            .enumerate()
            .filter(|&(_, &h)| {
                let b = h >> (64 - self.log_bits);
                self.filter[(b >> 6) as usize] & (1 << (b & 63)) != 0
            })
            .map(|(i, _)| i as u32)
            .collect();
        let mut hits: Vec<(u32, u32)> = maybe
            .into_iter()
            .filter_map(|i| {
                // A row without an id is no edited id's row.
                let id = ids.get(i as usize)?;
                let s = match self.slot.get(&hashes[i as usize]) {
                    Some(&s) if self.slot_ids[s as usize] == id => s,
                    Some(_) => *self.spill.get(id)?,
                    None => return None,
                };
                Some((i, s))
            })
            .collect();
        // Removed rows: dropped, and the hits after them renumbered to their row in the output.
        let is_gone = |s: u32| self.gone.get(s as usize).copied().unwrap_or(false);
        let keep: Option<Vec<bool>> = hits.iter().any(|&(_, s)| is_gone(s)).then(|| {
            let mut keep = vec![true; len];
            let mut before = 0u32;
            hits.retain_mut(|(row, s)| {
                if is_gone(*s) {
                    keep[*row as usize] = false;
                    before += 1;
                    return false;
                }
                *row -= before;
                true
            });
            keep
        });
        let mask = keep.as_deref().map(|k| BooleanChunked::from_slice("keep".into(), k));
        let m = keep.as_ref().map_or(len, |k| k.iter().filter(|&&k| k).count());
        // (row in the output, position of its new value) for one column.
        let edited = |pos: &[u32]| -> Vec<(usize, usize)> { hits.iter().filter_map(|&(row, s)| pos.get(s as usize).filter(|&&p| p != u32::MAX).map(|&p| (row as usize, p as usize))).collect() };
        let mut out: Vec<Column> = Vec::with_capacity(part.width() + self.news.len());
        for c in part.columns() {
            let edited_here = self.news.iter().find(|(name, ..)| *name == c.name().as_str()).map(|(_, new, pos)| (new, edited(pos)));
            let Some((new, edits)) = edited_here.filter(|(_, edits)| !edits.is_empty()) else {
                out.push(match &mask {
                    Some(mask) => c.filter(mask)?,
                    None => c.clone(),
                });
                continue;
            };
            // A gather from the chunk with its new values appended (after a rechunk, which for
            // strings copies only the views, as the gather does: a gather across chunks copies
            // every string).
            let mut take: Vec<IdxSize> = match &keep {
                Some(k) => (0..len as IdxSize).filter(|&i| k[i as usize]).collect(),
                None => (0..len as IdxSize).collect(),
            };
            let from: Vec<IdxSize> = edits.iter().map(|&(_, p)| p as IdxSize).collect();
            for (k, &(row, _)) in edits.iter().enumerate() {
                take[row] = (len + k) as IdxSize;
            }
            let old = c.as_materialized_series();
            let mut both = old.clone();
            // Only the values of rows present are cast (strictly, as the lazy plan's join
            // does): a value for an id the manifest lacks is ignored.
            both.append(&new.take_slice(&from)?.strict_cast(old.dtype())?)?;
            out.push(both.rechunk().take_slice(&take)?.into_column());
        }
        // Columns the manifest lacks: their default (weight 1.0, tag false) or null, with the
        // edited rows written over it.
        for (name, new, pos) in &self.news {
            if part.column(name).is_ok() {
                continue;
            }
            let edits = edited(pos);
            let s = match (self.defaults.get(*name), new.dtype()) {
                (Some(Value::Bool(d)), DataType::Boolean) if new.null_count() == 0 => {
                    let vals = new.bool()?;
                    Series::new((*name).into(), over_default(m, *d, &edits, |p| vals.get(p)))
                }
                (Some(d @ Value::Number(_)), dt) if dt.is_primitive_numeric() && new.null_count() == 0 => {
                    let vals = new.cast(&DataType::Float64)?;
                    let vals = vals.f64()?;
                    Series::new((*name).into(), over_default(m, d.as_f64().unwrap_or(0.0), &edits, |p| vals.get(p)))
                }
                (d, _) => {
                    let first = match d {
                        Some(d) => json_series(name, &[d]).cast(new.dtype())?,
                        None => Series::full_null((*name).into(), 1, new.dtype()),
                    };
                    let mut take: Vec<IdxSize> = vec![0; m];
                    for &(row, p) in &edits {
                        take[row] = (1 + p) as IdxSize;
                    }
                    let mut all = first;
                    all.append(new)?;
                    all.take_slice(&take)?
                }
            };
            out.push(s.into_column());
        }
        Ok(DataFrame::new(m, out)?)
    }
}

/// `m` copies of `default`, with `(row, position)` edits written over them from `value`.
fn over_default<T: Copy>(m: usize, default: T, edits: &[(usize, usize)], value: impl Fn(usize) -> Option<T>) -> Vec<T> {
    let mut out = vec![default; m];
    for &(row, p) in edits {
        out[row] = value(p).unwrap_or(default);
    }
    out
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

    pub(super) fn edit(action: &str, ids: &[&str], column: Option<&str>, value: Option<Value>) -> Edit {
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
mod by_row_tests {
    use super::tests::edit;
    use super::*;

    /// The collected path (`apply_by_row`) and the lazy join give the same frame on a random
    /// history: relabels (some with integer text), sets of new and existing columns, tags and
    /// untags, weights (integer and float), removals and restores, with ids repeated and some
    /// not in the manifest.
    #[test]
    fn the_collected_replay_equals_the_lazy_join() {
        // Two histories: integer and float weights mixed, then integer weights only. With rows
        // added, the parts are rechunked into one (then cut into parts of 50 rows); without,
        // the manifest's five chunks are the parts.
        for (seed, int_weights, adds, part_rows) in [(12345u64, false, true, PART_ROWS), (777, true, true, 50), (4242, false, false, PART_ROWS), (99, true, false, 50)] {
            collected_equals_joined(seed, int_weights, adds, part_rows);
        }
    }

    fn collected_equals_joined(seed: u64, int_weights: bool, adds: bool, part_rows: usize) {
        let n = 500usize;
        let mut state = seed;
        let mut rnd = |m: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % m
        };
        // Ids in no particular order, one of them null.
        let mut ids: Vec<String> = (0..n).map(|i| format!("img/{i:04}")).collect();
        for i in (1..n).rev() {
            ids.swap(i, rnd(i + 1));
        }
        let id_col: Vec<Option<&str>> = ids.iter().enumerate().map(|(i, s)| (i != 7).then_some(s.as_str())).collect();
        let df = df!(
            "id" => &id_col,
            "label" => (0..n).map(|i| if i % 3 == 0 { "person" } else { "no_person" }).collect::<Vec<_>>(),
            "width" => (0..n as u32).collect::<Vec<_>>(),
        )
        .expect("df");
        // Several chunks, as a Parquet scan of several row groups gives.
        let df = {
            let mut m = df.slice(0, 120);
            for k in 1..5 {
                m.vstack_mut_owned(df.slice(k * 120, if k == 4 { n - 480 } else { 120 })).expect("vstack");
            }
            assert_eq!((m.first_col_n_chunks(), m.height()), (5, n));
            m
        };
        let mut edits = Vec::new();
        // Added rows (with a column of their own), which later edits may touch.
        let mut added = Vec::new();
        for (a, parent) in ids.iter().enumerate().take(6) {
            let mut row = serde_json::Map::new();
            row.insert("id".into(), Value::from(format!("new/{a}")));
            row.insert("label".into(), Value::from("person"));
            row.insert("parent_id".into(), Value::from(parent.clone()));
            added.push(row);
        }
        if adds {
            edits.push(Edit {
                time: now(),
                action: "add".into(),
                ids: (0..6).map(|a| format!("new/{a}")).collect(),
                column: None,
                value: None,
                old: vec![],
                rows: added,
                reason: String::new(),
                source: "test".into(),
            });
        }
        // A value that does not fit the column, for an id the manifest lacks: ignored by both.
        edits.push(edit("set", &["missing/x"], Some("width"), Some(Value::from(-1))));
        for k in 0..400 {
            let pick: Vec<String> = (0..1 + rnd(4))
                .map(|_| match rnd(20) {
                    0 => format!("missing/{k}"),
                    1 => format!("new/{}", rnd(6)),
                    _ => ids[rnd(n)].clone(),
                })
                .collect();
            let pick: Vec<&str> = pick.iter().map(String::as_str).collect();
            let weight = if int_weights || rnd(2) == 0 { Value::from(2) } else { Value::from(0.5) };
            let e = match rnd(9) {
                0 | 1 => edit("relabel", &pick, None, Some(["cat", "dog", "person"][rnd(3)].into())),
                2 => edit("set", &pick, Some("scene"), Some(["desk", "hall"][rnd(2)].into())),
                3 => edit("set", &pick, Some("width"), Some(Value::from(rnd(100) as u64))),
                4 => edit("tag", &pick, Some(["blue", "red bg"][rnd(2)]), None),
                5 => edit("untag", &pick, Some("blue"), None),
                6 => edit("set_weight", &pick, Some("weight"), Some(weight)),
                7 => edit("remove", &pick, None, None),
                _ => edit("restore", &pick, None, None),
            };
            edits.push(e);
        }
        let collect = |eager_from| replay_parts(df.clone().lazy(), &edits, eager_from, part_rows).expect("replay").collect().expect("collect");
        let sorted = |eager_from| collect(eager_from).sort(["id"], Default::default()).expect("sort");
        let (by_row, joined) = (sorted(0), sorted(usize::MAX));
        assert!(by_row.height() < n && by_row.height() > n / 2, "{}", by_row.height());
        assert_eq!(by_row.column("id").expect("id").null_count(), 1, "the row without an id stays");
        assert_eq!(by_row.get_column_names(), joined.get_column_names());
        // Integer weights meet the default 1.0 as Float64, as in the lazy plan's `fill_null`.
        assert_eq!(by_row.column("weight").expect("weight").dtype(), &DataType::Float64);
        for (a, b) in by_row.columns().iter().zip(joined.columns()) {
            assert_eq!(a.dtype(), b.dtype(), "{}", a.name());
            assert!(a.as_materialized_series().equals_missing(b.as_materialized_series()), "{} differs", a.name());
        }
        // The collected path keeps the manifest's row order (added rows last).
        let order: std::collections::HashMap<&str, usize> = ids.iter().map(String::as_str).chain(["new/0", "new/1", "new/2", "new/3", "new/4", "new/5"]).enumerate().map(|(i, s)| (s, i)).collect();
        let mut view = collect(0);
        // The parts: the five chunks (one when added rows made the columns chunked unlike each
        // other), or the rows cut into parts of 50.
        let parts = view.first_col_n_chunks();
        assert!(
            match (part_rows == 50, adds) {
                (true, _) => parts >= n / 50,
                (false, true) => parts == 1,
                (false, false) => parts == 5,
            },
            "{parts} parts"
        );
        let positions: Vec<usize> = view.column("id").expect("id").str().expect("str").iter().flatten().map(|s| order[s]).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "rows out of the manifest's order");
        // The view is written and read back as the view cache is.
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("view.parquet");
        ParquetWriter::new(std::fs::File::create(&path).expect("create")).with_compression(ParquetCompression::Lz4Raw).finish(&mut view).expect("the replayed view writes as Parquet");
        let back = LazyFrame::scan_parquet(PlRefPath::try_from_path(&path).expect("path"), Default::default()).expect("scan").collect().expect("read back");
        assert!(back.equals_missing(&view), "the cached view reads back as written");
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
