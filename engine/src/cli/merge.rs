//! `curate merge WORKSPACES...`: bring shard workspaces' cached embeddings and predictions into
//! this one's stores.

use std::path::{Path, PathBuf};

use curate_stdlib::progress::CancelFlag;
use curate_stdlib::Workspace;

use super::fail;
use crate::progress_bar::Bar;

pub fn run(dir: &Path, sources: &[PathBuf], json: bool, cancel: CancelFlag) -> u8 {
    let ws = match Workspace::discover(dir) {
        Ok(ws) => ws,
        Err(e) => return fail(&e),
    };
    let bar = Bar::new(cancel);
    let sources: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();
    match curate_stdlib::merge::merge(&ws, &sources, &bar) {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                return 0;
            }
            if r.stores.is_empty() {
                println!("nothing to merge from {}", r.sources.join(", "));
            }
            for s in &r.stores {
                println!("{}: {} parts and {} stored rows merged; it now holds {}", s.store, s.parts, s.rows, s.stored);
            }
            0
        }
        Err(e) => fail(&e),
    }
}
