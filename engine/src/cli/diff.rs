//! `curate diff A B`: what changed between two states of the dataset (edit counts, checkpoint
//! names, `manifest` or `current`), as [`curate_stdlib::diff`] finds it.

use std::path::Path;

use curate_stdlib::Workspace;

use super::fail;

pub fn run(dir: &Path, a: &str, b: &str, json: bool) -> u8 {
    let d = match Workspace::discover(dir).and_then(|ws| curate_stdlib::diff::diff(&ws, a, b)) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
        return 0;
    }
    println!("{a} → {b}: {} → {} samples", d.samples_a, d.samples_b);
    for (counts, title) in [(&d.removed, "removed (label / split)"), (&d.added, "restored or added (label / split)"), (&d.relabelled, "relabelled"), (&d.moved, "changed split")] {
        if !counts.is_empty() {
            println!("{title}:");
            for (k, v) in counts {
                // Unpadded: these counts were always printed so (through JSON values, which
                // ignore a width).
                println!("  {v}  {k}");
            }
        }
    }
    println!("by label / split:");
    let (ca, cb) = (&d.by_label_split_a, &d.by_label_split_b);
    let mut keys: Vec<&String> = ca.keys().chain(cb.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (x, y) = (ca.get(k).copied().unwrap_or(0) as i64, cb.get(k).copied().unwrap_or(0) as i64);
        println!("  {k:30} {x:>8} → {y:<8}{}", if x != y { format!(" ({:+})", y - x) } else { String::new() });
    }
    0
}
