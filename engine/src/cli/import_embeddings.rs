//! `curate import-embeddings FILES...`: vectors computed elsewhere, into a model's store.

use std::path::{Path, PathBuf};

use curate_stdlib::progress::CancelFlag;
use curate_stdlib::Workspace;

use super::{fail, parse_shard};
use crate::progress_bar::Bar;

#[allow(clippy::too_many_arguments)]
pub fn run(dir: &Path, files: &[PathBuf], model: Option<&str>, ids: Option<&Path>, column: Option<&str>, shard: Option<&str>, json: bool, cancel: CancelFlag) -> u8 {
    let shard = match parse_shard(shard) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let ws = match Workspace::discover(dir) {
        Ok(ws) => ws,
        Err(e) => return fail(&e),
    };
    let registry = curate_stdlib::vectors::Registry::default();
    let bar = Bar::new(cancel);
    let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let result = registry.model(&ws, model).and_then(|m| curate_stdlib::import::vectors::import_vectors(&ws, &m, &files, ids, column, shard, &bar));
    match result {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                return 0;
            }
            println!("imported {} of {} vectors ({}-d) into `{}` in {:.1} s; the store now holds {}", r.imported, r.rows, r.dim, r.model, r.seconds, r.stored);
            if r.unknown_count > 0 {
                println!("{} ids are not in the manifest (skipped), e.g. {}", r.unknown_count, r.unknown_ids.join(", "));
            }
            if r.without_hash > 0 {
                println!("{} samples have no content hash (unreadable images), so their vectors were skipped", r.without_hash);
            }
            0
        }
        Err(e) => fail(&e),
    }
}
