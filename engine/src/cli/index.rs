//! `curate index`: build the ANN index over a model's vectors (or one shard's).

use std::path::Path;

use curate_stdlib::progress::CancelFlag;
use curate_stdlib::Workspace;

use super::{fail, parse_shard};
use crate::progress_bar::Bar;

pub fn run(dir: &Path, model: Option<&str>, metric: &str, backend: Option<&str>, shard: Option<&str>, json: bool, cancel: CancelFlag) -> u8 {
    let shard = match parse_shard(shard) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let ws = match Workspace::discover(dir) {
        Ok(ws) => ws,
        Err(e) => return fail(&e),
    };
    let metric = curate_stdlib::index::Metric::parse(metric).unwrap_or_default();
    let backend = backend.and_then(curate_stdlib::index::Backend::parse);
    let registry = curate_stdlib::vectors::Registry::default();
    let bar = Bar::new(cancel);
    let started = std::time::Instant::now();
    let result = registry.model(&ws, model).and_then(|m| {
        let store = registry.vectors(&ws, &m)?;
        if store.is_empty() {
            return Err(curate_stdlib::CurateError::NotEmbedded { model: m.name.clone(), missing: 0 });
        }
        match shard {
            Some(shard) => registry.build_shard_index(&store, metric, backend, shard, &bar).map(|(idx, action)| (m.name.clone(), idx.live, idx.backend, action)),
            None => registry.build_index(&m, &store, metric, backend, &bar).map(|(idx, action)| (m.name.clone(), idx.live, idx.backend, action)),
        }
    });
    match result {
        Ok((model, n, backend, action)) => {
            let seconds = started.elapsed().as_secs_f64();
            let backend = format!("{backend:?}").to_lowercase();
            let action = format!("{action:?}").to_lowercase();
            let of = shard.map(|s| format!(" (shard {}/{})", s.index, s.count)).unwrap_or_default();
            if json {
                let shard = shard.map(|s| format!("{}/{}", s.index, s.count));
                println!(
                    "{}",
                    serde_json::json!({"model": model, "vectors": n, "metric": format!("{metric:?}").to_lowercase(), "backend": backend, "action": action, "shard": shard, "seconds": seconds})
                );
            } else {
                println!("index of {n} `{model}` vectors{of} ready ({backend}, {action}) in {seconds:.1} s");
            }
            0
        }
        Err(e) => fail(&e),
    }
}
