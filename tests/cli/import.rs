//! `curate import` from each format, on real images, and what it does with bad input.

use polars::prelude::*;

use crate::util::{example_dir, Test};

fn manifest(t: &Test) -> DataFrame {
    let f = std::fs::File::open(t.path().join("manifest.parquet")).expect("manifest");
    ParquetReader::new(f).finish().expect("parquet")
}

fn strs(df: &DataFrame, col: &str) -> Vec<Option<String>> {
    df.column(col).expect(col).str().expect("str").iter().map(|v| v.map(str::to_string)).collect()
}

/// A fresh workspace with a few real images laid out as `train/<class>/` and `test/<class>/`.
fn workspace_with_folder() -> Test {
    let t = Test::new().args(&["init", "."]);
    t.run().success();
    let src = example_dir().join("media/cifar");
    for (split, class, n) in [("train", "cat", 3), ("train", "dog", 2), ("test", "cat", 1)] {
        let dir = t.path().join("images").join(split).join(class);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..n {
            let name = format!("{i:04}.jpg");
            std::fs::copy(src.join(split).join(class).join(&name), dir.join(&name)).expect("copy");
        }
    }
    t
}

#[test]
fn folder_import_takes_class_and_split_from_folders() {
    let t = workspace_with_folder().args(&["import", "images"]);
    let out = t.run().success();
    assert!(out.stdout.contains("imported 6 samples"), "{}", out.stdout);
    let df = manifest(&t);
    assert_eq!(strs(&df, "id")[0].as_deref(), Some("test/cat/0000"));
    assert_eq!(strs(&df, "path")[0].as_deref(), Some("images/test/cat/0000.jpg"));
    let labels: Vec<_> = strs(&df, "label").into_iter().flatten().collect();
    assert_eq!(labels, ["cat", "cat", "cat", "cat", "dog", "dog"]);
    let splits: Vec<_> = strs(&df, "split").into_iter().flatten().collect();
    assert_eq!(splits, ["test", "train", "train", "train", "train", "train"]);
    let widths: Vec<_> = df.column("width").expect("w").u32().expect("u32").iter().flatten().collect();
    assert_eq!(widths, [32; 6]);
    assert!(strs(&df, "format").iter().all(|f| f.as_deref() == Some("jpeg")));
    let hash = strs(&df, "hash")[0].clone().expect("hash");
    let bytes = std::fs::read(t.path().join("images/test/cat/0000.jpg")).expect("read");
    assert_eq!(hash, blake3::hash(&bytes).to_hex().to_string());
}

#[test]
fn corrupt_and_missing_images_are_reported_not_fatal() {
    let t = workspace_with_folder();
    std::fs::write(t.path().join("images/train/cat/0001.jpg"), b"\xff\xd8\xff not really a jpeg").expect("corrupt");
    let t = t.args(&["import", "images", "--json"]);
    let out = t.run().success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(report["imported"], 6);
    let issues = report["scan"]["issues"].as_array().expect("issues");
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["id"], "train/cat/0001");
    let df = manifest(&t);
    assert_eq!(df.column("width").expect("w").null_count(), 1);

    // A table that names a file that is not there.
    let t = t.write("list.csv", "path,label\nimages/train/dog/0000.jpg,dog\nimages/gone.jpg,dog\n").args(&["import", "list.csv"]);
    let out = t.run().success();
    assert!(out.stdout.contains("1 files could not be read"), "{}", out.stdout);
    assert!(out.stdout.contains("images/gone.jpg: cannot read"), "{}", out.stdout);
}

#[test]
fn csv_jsonl_and_parquet_tables_import_alike() {
    let csv = "path,label,split,scene\nimages/train/cat/0000.jpg,cat,train,indoor\nimages/train/dog/0001.jpg,dog,val,outdoor\n";
    let jsonl = "{\"path\":\"images/train/cat/0000.jpg\",\"label\":\"cat\",\"split\":\"train\",\"scene\":\"indoor\"}\n\
                 {\"path\":\"images/train/dog/0001.jpg\",\"label\":\"dog\",\"split\":\"val\",\"scene\":\"outdoor\"}\n";
    let t = workspace_with_folder().write("t.csv", csv).write("t.jsonl", jsonl);
    let mut table = CsvReadOptions::default().try_into_reader_with_file_path(Some(t.path().join("t.csv"))).and_then(|r| r.finish()).expect("csv");
    ParquetWriter::new(std::fs::File::create(t.path().join("t.parquet")).expect("create")).finish(&mut table).expect("parquet");

    let mut manifests = vec![];
    let mut t = t;
    for src in ["t.csv", "t.jsonl", "t.parquet"] {
        t = t.args(&["import", src]);
        t.run().success();
        manifests.push(manifest(&t));
    }
    let first = &manifests[0];
    assert_eq!(strs(first, "id"), [Some("images/train/cat/0000".to_string()), Some("images/train/dog/0001".to_string())]);
    assert_eq!(strs(first, "scene"), [Some("indoor".to_string()), Some("outdoor".to_string())]);
    assert_eq!(strs(first, "split"), [Some("train".to_string()), Some("val".to_string())]);
    for m in &manifests[1..] {
        for col in ["id", "path", "label", "split", "scene", "hash"] {
            assert_eq!(strs(m, col), strs(first, col), "column {col}");
        }
    }
}

#[test]
fn append_adds_and_keeps_ids_unique() {
    let t = workspace_with_folder().args(&["import", "images/train", "--id-prefix", "a/"]);
    t.run().success();
    let t = t.args(&["import", "images/test", "--id-prefix", "b/", "--append"]);
    let out = t.run().success();
    assert!(out.stdout.contains("now holds 6"), "{}", out.stdout);
    let t = t.args(&["import", "images/test", "--id-prefix", "b/", "--append"]);
    let out = t.run().code(2);
    assert!(out.stderr.contains("`b/cat/0000` appears more than once"), "{}", out.stderr);
    assert_eq!(manifest(&t).height(), 6, "a failed import leaves the manifest as it was");
}

#[test]
fn a_table_without_paths_is_refused_by_name() {
    let t = workspace_with_folder().write("bad.csv", "file,label\na.jpg,cat\n").args(&["import", "bad.csv"]);
    let out = t.run().code(2);
    assert!(out.stderr.contains("bad.csv: the table has no `path` column (columns: file, label)"), "{}", out.stderr);
}

#[test]
fn coco_instances_become_image_level_labels() {
    // Real images, COCO-style boxes: one image with a large person, one with a person too small
    // to count (as Visual Wake Words rules), one with only a dog.
    let coco = r#"{
      "images": [
        {"id": 1, "file_name": "train/cat/0000.jpg", "width": 32, "height": 32},
        {"id": 2, "file_name": "train/cat/0001.jpg", "width": 32, "height": 32},
        {"id": 3, "file_name": "train/dog/0000.jpg", "width": 32, "height": 32}
      ],
      "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 16, 20], "area": 320},
        {"id": 11, "image_id": 1, "category_id": 18, "bbox": [0, 0, 5, 5], "area": 25},
        {"id": 12, "image_id": 2, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4},
        {"id": 13, "image_id": 3, "category_id": 18, "bbox": [1, 1, 20, 20], "area": 400}
      ],
      "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
    }"#;
    let t = workspace_with_folder().write("images/instances_train.json", coco).args(&["import", "images/instances_train.json"]);
    let out = t.run().success();
    assert!(out.stdout.contains("(coco)"), "{}", out.stdout);
    let df = manifest(&t);
    assert_eq!(strs(&df, "label"), [Some("person".into()), Some("no_person".into()), Some("no_person".into())]);
    assert_eq!(strs(&df, "split"), [Some("train".into()), Some("train".into()), Some("train".into())]);
    let person: Vec<_> = df.column("person").expect("person").bool().expect("bool").iter().flatten().collect();
    assert_eq!(person, [true, false, false]);
    let cats = df.column("categories").expect("categories").list().expect("list").clone();
    let first: Vec<String> = cats.get_as_series(0).expect("row").str().expect("str").iter().flatten().map(str::to_string).collect();
    assert_eq!(first, ["dog", "person"]);
    assert!(df.column("width").expect("w").null_count() == 0, "images were scanned");

    let out = t.write("bad.json", "{\"images\": 3}").args(&["import", "bad.json"]).run().code(2);
    assert!(out.stderr.contains("bad.json: not COCO instances JSON"), "{}", out.stderr);
}

#[test]
fn shards_of_an_import_scan_once_and_the_manifest_is_one_import_s() {
    // The example's 1,400 images from its table: one import, against 4 shard processes at once
    // and the import that writes the manifest from their scans.
    let single = Test::example();
    single.run_with(&["import", "samples.csv"]).success();
    let sharded = Test::example();
    std::fs::remove_file(sharded.path().join("manifest.parquet")).expect("no manifest yet");
    let children: Vec<_> = (0..4)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_curate")).current_dir(sharded.path()).args(["import", "samples.csv", "--shard", &format!("{i}/4"), "--json"]).env("CI", "true").output()
        })
        .collect();
    let mut scanned = 0;
    for c in children {
        let out = c.expect("a shard runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert!(r["shard"].is_string(), "{r}");
        scanned += r["scan"]["scanned"].as_u64().expect("scanned");
    }
    assert_eq!(scanned, 1400, "every image in exactly one shard");
    assert!(!sharded.path().join("manifest.parquet").exists(), "shards write no manifest");
    let out = sharded.run_with(&["import", "samples.csv", "--json"]).success();
    let r: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!((r["scan"]["scanned"].as_u64(), r["scan"]["reused"].as_u64()), (Some(1400), Some(1400)), "{r}");
    let bytes = |t: &Test| std::fs::read(t.path().join("manifest.parquet")).expect("manifest");
    assert_eq!(bytes(&sharded), bytes(&single), "the same manifest, byte for byte");
    assert_eq!(std::fs::read_dir(sharded.path().join(".curate/scan")).expect("scan dir").count(), 0, "the shards' scans are used up");

    // A file changed after its shard scanned it is read again.
    let t = workspace_with_folder();
    t.run_with(&["import", "images", "--shard", "0/1"]).success();
    let changed = t.path().join("images/train/dog/0001.jpg");
    std::fs::copy(example_dir().join("media/cifar/train/dog/0005.jpg"), &changed).expect("replace an image");
    let out = t.run_with(&["import", "images", "--json"]).success();
    let r: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(r["scan"]["reused"], 5, "{r}");
    let df = manifest(&t);
    let ids = strs(&df, "id");
    let at = ids.iter().position(|i| i.as_deref() == Some("train/dog/0001")).expect("the changed image");
    let want = blake3::hash(&std::fs::read(&changed).expect("read")).to_hex().to_string();
    assert_eq!(strs(&df, "hash")[at].as_deref(), Some(want.as_str()));
    // --shard with --append is refused (a shard writes no manifest to append to).
    t.run_with(&["import", "images", "--shard", "0/2", "--append"]).code(2);
}
