//! `filter` with a SQL expression on a 1,000,000-row synthetic manifest, against a plain Polars
//! lazy filter on the same frame in the same process. The target: under 1.2× the baseline.
//!
//! Run: cargo bench -p curate-stdlib --bench filter

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use curate_stdlib::primitives::filter::filter_sql;
use curate_stdlib::primitives::Context;
use curate_stdlib::{Dataset, Workspace};
use polars::prelude::*;

const ROWS: usize = 1_000_000;
const PREDICATE: &str = "label = 'person' AND width >= 96 AND split = 'train'";

fn synthetic_manifest() -> DataFrame {
    let labels = ["person", "no_person", "person", "no_person", "no_person"];
    let splits = ["train", "train", "train", "val", "test"];
    let ids: Vec<String> = (0..ROWS).map(|i| format!("img_{i:08}")).collect();
    let paths: Vec<String> = (0..ROWS).map(|i| format!("media/{:04}/img_{i:08}.jpg", i % 1000)).collect();
    let label: Vec<&str> = (0..ROWS).map(|i| labels[(i * 7) % 5]).collect();
    let split: Vec<&str> = (0..ROWS).map(|i| splits[(i * 13) % 5]).collect();
    let width: Vec<u32> = (0..ROWS).map(|i| 32 + ((i * 31) % 640) as u32).collect();
    let height: Vec<u32> = (0..ROWS).map(|i| 32 + ((i * 17) % 480) as u32).collect();
    let distance: Vec<f64> = (0..ROWS).map(|i| (i % 1000) as f64 / 100.0).collect();
    df!(
        "id" => ids, "path" => paths, "label" => label, "split" => split,
        "width" => width, "height" => height, "distance_m" => distance,
    )
    .expect("frame")
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = Arc::new(Workspace::init(dir.path(), Some("bench")).expect("workspace"));
    let df = synthetic_manifest();
    let ds = Dataset::new(ws.clone(), df.clone().lazy()).expect("dataset");

    let mut group = c.benchmark_group("filter_1m");
    group.sample_size(30);
    group.bench_function("polars_lazy_baseline", |b| {
        b.iter(|| {
            let pred = col("label").eq(lit("person")).and(col("width").gt_eq(lit(96))).and(col("split").eq(lit("train")));
            df.clone().lazy().filter(pred).collect().expect("collect").height()
        })
    });
    group.bench_function("curate_filter_sql", |b| b.iter(|| filter_sql(ds.lazy(), ds.schema(), PREDICATE).expect("filter").collect().expect("collect").height()));
    let ctx = Arc::new(Context::quiet(ws.root().to_path_buf(), Some(ws.clone())));
    let engine = curate_stdlib::sandbox::build_engine(&ctx, &Default::default());
    let mut scope = rhai::Scope::new();
    scope.push("ds", ds.clone());
    let ast = engine.compile_with_scope(&scope, format!("ds.filter(\"{PREDICATE}\").len()")).expect("compile");
    group.bench_function("curate_filter_via_rhai_len", |b| b.iter(|| engine.eval_ast_with_scope::<i64>(&mut scope, &ast).expect("eval")));
    group.bench_function("polars_lazy_baseline_len", |b| {
        b.iter(|| {
            let pred = col("label").eq(lit("person")).and(col("width").gt_eq(lit(96))).and(col("split").eq(lit("train")));
            df.clone().lazy().filter(pred).select([len()]).collect().expect("collect").height()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
