//! `curate import SOURCE`: build the manifest from an image folder, a table, COCO JSON or an
//! object-store prefix.

use std::path::Path;

use curate_stdlib::import::{self, ImportOptions};
use curate_stdlib::progress::CancelFlag;
use curate_stdlib::Workspace;

use super::fail;
use crate::progress_bar::Bar;

pub fn run(dir: &Path, source: &Path, opts: &ImportOptions, json: bool, cancel: CancelFlag) -> u8 {
    let ws = match Workspace::discover(dir) {
        Ok(ws) => ws,
        Err(e) => return fail(&e),
    };
    let bar = Bar::new(cancel);
    match import::import(&ws, source, opts, &bar) {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                return 0;
            }
            if let Some(shard) = &report.shard {
                println!("scanned shard {shard}: {} images of {}; the same import without --shard writes the manifest", report.imported, source.display());
                return 0;
            }
            if report.scan.reused > 0 {
                println!("{} of {} images taken from the shards' scans", report.scan.reused, report.scan.scanned);
            }
            println!("imported {} samples from {} ({}); {} now holds {}", report.imported, source.display(), format!("{:?}", report.format).to_lowercase(), report.manifest.display(), report.total);
            if !report.scan.issues.is_empty() {
                println!("{} files could not be read (their size, format and hash are null):", report.scan.issues.len());
                for issue in report.scan.issues.iter().take(20) {
                    println!("  {}: {}", issue.path, issue.message);
                }
                if report.scan.issues.len() > 20 {
                    println!("  ... and {} more (see --json)", report.scan.issues.len() - 20);
                }
            }
            0
        }
        Err(e) => fail(&e),
    }
}
