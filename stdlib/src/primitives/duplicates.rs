//! `ds.duplicates(#{threshold})`: clusters of exact (same content hash) and near duplicates
//! (embedding cosine similarity, confirmed by a perceptual hash below the embedding's own bar),
//! flagging clusters that span splits.

use std::sync::Arc;

use rhai::{Engine, EvalAltResult, Map};

use super::{Context, Example, Opt, Primitive};
use crate::dataset::Dataset;
use crate::options::{self, Options};

pub const DOC: Primitive = Primitive {
    name: "duplicates",
    signatures: &["ds.duplicates() -> Dataset", "ds.duplicates(#{threshold: float, loose: float, max_hamming: int, phash: bool, model: string, near: bool}) -> Dataset"],
    summary: "Clusters of duplicates: samples with the same content hash, and near duplicates \
              (re-encoded, resized copies). Candidates are each sample's 20 nearest by embedding \
              with cosine similarity at least `loose` (0.7); a candidate is a duplicate when the \
              images' 64-bit perceptual hashes (pHash, computed for candidates only and cached) \
              differ in at most `max_hamming` bits (8), or in twice that at a similarity of at \
              least `threshold` (0.9). `phash: false`, or an unreadable image, leaves the \
              embedding alone at `threshold`; `near: false` finds exact duplicates only, which \
              needs no embeddings. One row per \
              sample in a cluster, with `cluster`, `cluster_size`, `similarity` (to its closest \
              member) and `leak` (the cluster spans more than one split: train/test leakage).",
    options: &[
        Opt {
            name: "threshold",
            default: "0.9",
            help: "The cosine similarity at which a pair may differ in twice `max_hamming` bits, or at which the embedding alone decides when there is no perceptual hash.",
        },
        Opt { name: "loose", default: "0.7", help: "Pairs below this cosine similarity are never candidates." },
        Opt { name: "max_hamming", default: "8", help: "The bits in which two 64-bit perceptual hashes may differ for a duplicate." },
        Opt { name: "phash", default: "true", help: "Confirm candidates with perceptual hashes; false leaves the embedding alone at `threshold`." },
        Opt { name: "model", default: "the [defaults] embedding model", help: "The embedding model whose neighbours are candidates." },
        Opt { name: "near", default: "true", help: "Find near duplicates; false finds exact duplicates (same content hash) only, which needs no embeddings." },
    ],
    examples: &[
        Example { code: "open().duplicates(#{near: false}).len()", result: Some("0") },
        Example { code: "let ds = open().filter(\"split = 'test'\").embed(); ds.duplicates(#{threshold: 0.999, phash: false}).len()", result: Some("0") },
    ],
};

pub use crate::dedupe::{duplicates, DuplicatesOptions, DEFAULT_LOOSE, DEFAULT_MAX_HAMMING, DEFAULT_THRESHOLD};

impl Options for DuplicatesOptions {
    const KEYS: &'static [&'static str] = &["threshold", "loose", "max_hamming", "phash", "model", "near"];
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("duplicates", move |ds: &mut Dataset| -> Result<Dataset, Box<EvalAltResult>> { Ok(duplicates(&c.registry, ds, &DuplicatesOptions::default(), c.progress.as_ref())?) });
    let c = ctx.clone();
    engine.register_fn("duplicates", move |ds: &mut Dataset, opts: Map| -> Result<Dataset, Box<EvalAltResult>> {
        let opts: DuplicatesOptions = options::parse("duplicates", &opts)?;
        Ok(duplicates(&c.registry, ds, &opts, c.progress.as_ref())?)
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }
}
