//! `curate embed`: compute and cache the embeddings of every image in the manifest.

use std::path::Path;

use curate_stdlib::progress::CancelFlag;
use curate_stdlib::vectors::Registry;

use super::{fail, open_dataset, parse_shard};
use crate::progress_bar::Bar;

pub fn run(dir: &Path, model: Option<&str>, shard: Option<&str>, json: bool, cancel: CancelFlag) -> u8 {
    let shard = match parse_shard(shard) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let bar = Bar::new(cancel);
    let result = open_dataset(dir).and_then(|ds| curate_stdlib::embed::embed_dataset(&Registry::default(), &ds, model, shard, &bar));
    match result {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                println!("{}", report.describe());
            }
            0
        }
        Err(e) => fail(&e),
    }
}
