//! `curate dedupe`: the near-duplicates of the whole manifest, or (with --shard) one shard of
//! the heavy stage for a later run to read.

use std::path::Path;

use curate_stdlib::dedupe;
use curate_stdlib::progress::CancelFlag;
use curate_stdlib::vectors::Registry;

use super::{fail, open_dataset, parse_shard};
use crate::progress_bar::Bar;

pub fn run(dir: &Path, model: Option<&str>, shard: Option<&str>, json: bool, cancel: CancelFlag) -> u8 {
    let shard = match parse_shard(shard) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (registry, bar) = (Registry::default(), Bar::new(cancel));
    let ds = match open_dataset(dir) {
        Ok(ds) => ds,
        Err(e) => return fail(&e),
    };
    if let Some(shard) = shard {
        return match dedupe::stage(&registry, &ds, model, shard, &bar) {
            Ok(r) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                } else {
                    println!("dedupe shard {}: neighbours of {} `{}` images ({} candidate pairs, {} perceptual hashes) in {:.1} s", r.shard, r.images, r.model, r.candidates, r.phashes, r.seconds);
                }
                0
            }
            Err(e) => fail(&e),
        };
    }
    match dedupe::report(&registry, &ds, model, &bar) {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                let from = match r.shards {
                    Some(n) => format!("the neighbours of {n} shards"),
                    None => "neighbours computed here".to_string(),
                };
                println!("{} images in {} clusters of duplicates, {} of them in clusters across splits ({from}, {:.1} s)", r.images, r.clusters, r.leaks, r.seconds);
            }
            0
        }
        Err(e) => fail(&e),
    }
}
