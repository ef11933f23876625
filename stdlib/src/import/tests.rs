use std::path::Path;

use super::*;

#[test]
fn formats_are_detected_from_the_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(ImportFormat::detect(dir.path()), Some(ImportFormat::Folder));
    assert_eq!(ImportFormat::detect(Path::new("a.csv")), Some(ImportFormat::Csv));
    assert_eq!(ImportFormat::detect(Path::new("a.JSONL")), Some(ImportFormat::Jsonl));
    assert_eq!(ImportFormat::detect(Path::new("a.parquet")), Some(ImportFormat::Parquet));
    assert_eq!(ImportFormat::detect(Path::new("instances_val2017.json")), Some(ImportFormat::Coco));
    assert_eq!(ImportFormat::detect(Path::new("a.txt")), None);
}

#[test]
fn rows_get_standard_columns_first() {
    let df = df!("scene" => ["a"], "path" => ["x.png"], "id" => ["x"]).expect("df");
    let opts = ImportOptions { split: Some("train".into()), id_prefix: Some("p/".into()), ..Default::default() };
    let out = finish_rows(df, &opts).expect("finish");
    let names: Vec<&str> = out.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["id", "path", "label", "split", "scene"]);
    assert_eq!(out.column("id").expect("id").str().expect("str").get(0), Some("p/x"));
    assert_eq!(out.column("split").expect("split").str().expect("str").get(0), Some("train"));
}

#[test]
fn images_are_recognised_by_extension() {
    assert!(is_image(Path::new("a/b.JPG")));
    assert!(is_image(Path::new("b.webp")));
    assert!(!is_image(Path::new("notes.txt")));
    assert!(!is_image(Path::new("noext")));
}
