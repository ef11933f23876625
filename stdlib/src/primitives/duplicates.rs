//! `ds.duplicates(#{threshold})`: clusters of exact (same content hash) and near duplicates
//! (embedding cosine similarity at or above the threshold), flagging clusters that span splits.

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::*;
use rhai::{Engine, EvalAltResult, Map};

use super::{Context, Example, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::options::{self, Options};

pub const DOC: Primitive = Primitive {
    name: "duplicates",
    signatures: &["ds.duplicates() -> Dataset", "ds.duplicates(#{threshold: float, model: string, near: bool}) -> Dataset"],
    summary: "Clusters of duplicates: samples with the same content hash, and samples whose \
              embeddings have cosine similarity of at least `threshold` (0.9 by default, tuned on resized and re-encoded copies; \
              `near: false` for exact duplicates only, which needs no embeddings). One row per \
              sample in a cluster, with `cluster`, `cluster_size`, `similarity` (to its closest \
              member) and `leak` (the cluster spans more than one split: train/test leakage).",
    examples: &[
        Example { code: "open().duplicates(#{near: false}).len()", result: Some("0") },
        Example { code: "let ds = open().filter(\"split = 'test'\").embed(); ds.duplicates(#{threshold: 0.999}).len()", result: Some("0") },
    ],
};

/// Measured on resized and re-encoded CIFAR copies: 0.9 finds 90% of copied pairs with no false
/// pair; 0.88 finds all, but tiny grayscale faces (LFW 25x25) start to cluster together.
pub const DEFAULT_THRESHOLD: f64 = 0.9;

#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DuplicatesOptions {
    pub threshold: f64,
    pub model: Option<String>,
    pub near: bool,
}

impl Default for DuplicatesOptions {
    fn default() -> Self {
        DuplicatesOptions { threshold: DEFAULT_THRESHOLD, model: None, near: true }
    }
}

impl Options for DuplicatesOptions {
    const KEYS: &'static [&'static str] = &["threshold", "model", "near"];
}

/// Union-find over sample indices.
struct Groups {
    parent: Vec<usize>,
}

impl Groups {
    fn new(n: usize) -> Self {
        Groups { parent: (0..n).collect() }
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

pub fn duplicates(ctx: &Context, ds: &Dataset, opts: &DuplicatesOptions) -> Result<Dataset> {
    if !(0.0..=1.0).contains(&opts.threshold) {
        return Err(CurateError::InvalidOption { function: "duplicates".into(), key: "threshold".into(), message: format!("a cosine similarity in [0, 1], got {}", opts.threshold) });
    }
    let df = ds.lazy().select([col("id"), col("hash"), col("split")]).collect()?;
    let ids: Vec<String> = df.column("id")?.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect();
    let hashes: Vec<Option<String>> = df.column("hash")?.str()?.iter().map(|v| v.map(str::to_string)).collect();
    let splits: Vec<Option<String>> = df.column("split")?.cast(&DataType::String)?.str()?.iter().map(|v| v.map(str::to_string)).collect();
    let index_of: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut groups = Groups::new(ids.len());
    let mut similarity: Vec<f64> = vec![f64::NAN; ids.len()];

    let mut first_with_hash: HashMap<&str, usize> = HashMap::new();
    for (i, h) in hashes.iter().enumerate() {
        let Some(h) = h else { continue };
        if let Some(&j) = first_with_hash.get(h.as_str()) {
            groups.union(i, j);
            similarity[i] = 1.0;
            similarity[j] = 1.0;
        } else {
            first_with_hash.insert(h, i);
        }
    }

    if opts.near {
        let (view, rows, neighbours) = ctx.registry.knn_view(ds, opts.model.as_deref(), 10)?;
        let max_distance = (1.0 - opts.threshold) as f32;
        for (r, near) in rows.iter().zip(neighbours) {
            let a = index_of[view.ids_of_row[r][0].as_str()];
            for n in near.into_iter().filter(|n| n.distance <= max_distance) {
                let b = index_of[view.ids_of_row[&n.row][0].as_str()];
                groups.union(a, b);
                let sim = 1.0 - n.distance as f64;
                for x in [a, b] {
                    if similarity[x].is_nan() || sim > similarity[x] {
                        similarity[x] = sim;
                    }
                }
            }
        }
        // Identical files share a vector row; give every one of them the row's similarity.
        for members in view.ids_of_row.values() {
            let best = members.iter().map(|m| similarity[index_of[m.as_str()]]).fold(f64::NAN, f64::max);
            for m in members {
                let i = index_of[m.as_str()];
                if similarity[i].is_nan() || best > similarity[i] {
                    similarity[i] = best;
                }
            }
        }
    }

    let mut clusters: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..ids.len() {
        let root = groups.find(i);
        clusters.entry(root).or_default().push(i);
    }
    let mut clusters: Vec<Vec<usize>> = clusters.into_values().filter(|c| c.len() > 1).collect();
    clusters.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| ids[a[0]].cmp(&ids[b[0]])));
    let (mut out_id, mut out_cluster, mut out_size, mut out_sim, mut out_leak) = (vec![], vec![], vec![], vec![], vec![]);
    for (c, members) in clusters.iter().enumerate() {
        let distinct_splits: std::collections::HashSet<&Option<String>> = members.iter().map(|&i| &splits[i]).collect();
        for &i in members {
            out_id.push(ids[i].clone());
            out_cluster.push(c as i64);
            out_size.push(members.len() as i64);
            out_sim.push(similarity[i]);
            out_leak.push(distinct_splits.len() > 1);
        }
    }
    let hits = df!("id" => out_id, "cluster" => out_cluster, "cluster_size" => out_size, "similarity" => out_sim, "leak" => out_leak)?;
    ds.derive(ds.annotate(hits).sort(["cluster", "id"], SortMultipleOptions::default()))
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("duplicates", move |ds: &mut Dataset| -> Result<Dataset, Box<EvalAltResult>> {
        Ok(duplicates(&c, ds, &DuplicatesOptions::default())?)
    });
    let c = ctx.clone();
    engine.register_fn("duplicates", move |ds: &mut Dataset, opts: Map| -> Result<Dataset, Box<EvalAltResult>> {
        let opts: DuplicatesOptions = options::parse("duplicates", &opts)?;
        Ok(duplicates(&c, ds, &opts)?)
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }
}
