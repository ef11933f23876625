//! `curate predict`: run a model's `scores` over every image in the manifest, and optionally
//! write the predictions to a file.

use std::path::Path;

use curate_stdlib::predictions;
use curate_stdlib::progress::CancelFlag;
use curate_stdlib::vectors::Registry;

use super::{fail, open_dataset, parse_shard};
use crate::progress_bar::Bar;

pub fn run(dir: &Path, model: Option<&str>, out: Option<&Path>, shard: Option<&str>, json: bool, cancel: CancelFlag) -> u8 {
    let shard = match parse_shard(shard) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (registry, bar) = (Registry::default(), Bar::new(cancel));
    let result = open_dataset(dir).and_then(|ds| {
        if let Some(out) = out {
            predictions::predictions_format(out)?;
        }
        let report = predictions::predict_all(&registry, &ds, model, shard, &bar)?;
        if let Some(out) = out {
            predictions::write_predictions(&registry, &ds, model, out, &bar)?;
        }
        Ok(report)
    });
    match result {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                println!("{}", report.describe().replacen(" embedded,", " predicted,", 1));
                if let Some(out) = out {
                    println!("predictions: {}", out.display());
                }
            }
            0
        }
        Err(e) => fail(&e),
    }
}
