//! Every shipped script and every example workspace script runs, as STYLE rule 2 asks.

use crate::util::{example_dir, repo, Test};

fn rhai_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "rhai")).collect()).unwrap_or_default();
    files.sort();
    files
}

/// A copy of the example workspace with its own scripts, to run them where they are meant to run
/// without writing into the checkout.
fn example_with_scripts() -> Test {
    let t = Test::example();
    for script in rhai_files(&example_dir().join("scripts")) {
        std::fs::copy(&script, t.path().join("scripts").join(script.file_name().expect("a file"))).expect("copy a script");
    }
    t
}

#[test]
fn example_workspace_scripts_run() {
    let scripts = rhai_files(&example_dir().join("scripts"));
    assert!(!scripts.is_empty());
    for script in scripts {
        let rel = std::path::Path::new("scripts").join(script.file_name().expect("a file"));
        let out = example_with_scripts().args(&["run", rel.to_str().expect("utf-8")]).run();
        assert_eq!(out.code, 0, "{}:\n{}\n{}", script.display(), out.stdout, out.stderr);
    }
}

#[test]
fn shipped_scripts_run_on_the_example() {
    let scripts = rhai_files(&repo().join("scripts"));
    assert!(!scripts.is_empty());
    for script in scripts {
        let out = Test::example().args(&["run", script.to_str().expect("utf-8")]).run();
        assert_eq!(out.code, 0, "{}:\n{}\n{}", script.display(), out.stdout, out.stderr);
    }
}

#[test]
fn the_tour_reports_what_it_checks() {
    let out = example_with_scripts().args(&["run", "scripts/tour.rhai"]).run().success();
    assert!(out.stdout.starts_with("1400 samples\n"), "{}", out.stdout);
    assert!(out.stdout.contains("test: 240 samples, 20 person (8%)"), "{}", out.stdout);
    assert!(out.stdout.contains("5 rows × 11 columns"), "{}", out.stdout);
}

#[test]
fn the_committed_manifest_matches_a_fresh_import() {
    let t = Test::example();
    let committed = polars_ids_and_hashes(&t.path().join("manifest.parquet"));
    std::fs::remove_file(t.path().join("manifest.parquet")).expect("rm");
    let t = t.args(&["import", "samples.csv"]);
    t.run().success();
    assert_eq!(polars_ids_and_hashes(&t.path().join("manifest.parquet")), committed);
}

fn polars_ids_and_hashes(p: &std::path::Path) -> Vec<(String, String)> {
    use polars::prelude::*;
    let df = ParquetReader::new(std::fs::File::open(p).expect("open")).finish().expect("parquet");
    let ids = df.column("id").expect("id").str().expect("str").clone();
    let hashes = df.column("hash").expect("hash").str().expect("str").clone();
    ids.iter().zip(hashes.iter()).map(|(a, b)| (a.unwrap_or_default().to_string(), b.unwrap_or_default().to_string())).collect()
}
