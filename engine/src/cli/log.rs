//! `curate log`: list the edit log, one line per edit.

use std::path::Path;

use curate_stdlib::edits;
use curate_stdlib::{CurateError, Workspace};

use super::fail;

pub fn run(dir: &Path, json: bool) -> u8 {
    let result = (|| -> Result<(), CurateError> {
        let ws = Workspace::discover(dir)?;
        let path = ws.edits_path();
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
    if n == 1 {
        "1 sample".into()
    } else {
        format!("{n} samples")
    }
}

fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
