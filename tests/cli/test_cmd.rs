//! `curate test`: data unit tests over predictions files (so that two "models" are two files),
//! checking counts, exit codes, JUnit XML, run comparison, empty slices, script errors and
//! --explain.

use crate::util::{example_dir, Test};

/// A workspace of 8 real images (4 LFW faces labelled person, 4 CIFAR photos labelled
/// no_person) and two predictions files: `a.csv` gets every face right and calls one cat a
/// person; `b.csv` misses two faces and gets the cat right.
fn workspace() -> Test {
    let t = Test::new().args(&["init", "."]);
    t.run().success();
    let mut csv = String::from("id,path,label,class\n");
    for i in 0..4 {
        let face = format!("lfw/face/{:03}.png", i);
        let cat = format!("cifar/test/cat/{:04}.jpg", i);
        for (rel, label, class, id) in [(face, "person", "face", format!("face{i}")), (cat, "no_person", "cat", format!("cat{i}"))] {
            let dst = t.path().join("media").join(&rel);
            std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
            std::fs::copy(example_dir().join("media").join(&rel), &dst).expect("copy image");
            csv.push_str(&format!("{id},media/{rel},{label},{class}\n"));
        }
    }
    let t = t.write("samples.csv", &csv);
    t.run_with(&["import", "samples.csv"]).success();
    let row = |id: &str, p: f64| format!("{id},{:.2},{:.2}\n", 1.0 - p, p);
    let mut a = String::from("id,p_no_person,p_person\n");
    let mut b = a.clone();
    for i in 0..4 {
        a.push_str(&row(&format!("face{i}"), 0.9));
        b.push_str(&row(&format!("face{i}"), if i < 2 { 0.2 } else { 0.9 }));
        a.push_str(&row(&format!("cat{i}"), if i == 0 { 0.8 } else { 0.1 }));
        b.push_str(&row(&format!("cat{i}"), 0.1));
    }
    t.write("a.csv", &a).write("b.csv", &b)
}

const SUITE: &str = r#"let ds = predictions();
let faces = ds.filter("class = 'face'");
test("faces_recall", || faces.recall("person") >= 0.75);
test("cats_empty", || ds.filter("class = 'cat'").none_predicted("person"));
test("enough_faces", || faces.min_count(4));
test("accuracy", || ds.accuracy() >= 0.8);
"#;

fn junit_counts(xml: &str) -> (usize, usize, usize, Vec<String>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut cases, mut failures, mut errors, mut names) = (0, 0, 0, vec![]);
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testcase" => {
                    cases += 1;
                    let name = e.try_get_attribute("name").expect("attr").expect("name attribute");
                    names.push(String::from_utf8(name.value.to_vec()).expect("utf8"));
                }
                b"failure" => failures += 1,
                b"error" => errors += 1,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    (cases, failures, errors, names)
}

#[test]
fn counts_exit_codes_junit_and_compare() {
    let t = workspace().write("tests/people.rhai", SUITE);
    // Predictions A: faces all found, one cat called a person.
    let out = t.run_with(&["test", "--predictions", "a.csv", "--junit", "a.xml"]).code(1);
    assert!(out.stdout.contains("Unit Tests Passed: 3 / 4  (1 failed, 0 errors)"), "{}", out.stdout);
    assert!(out.stdout.contains("✗ cats_empty"), "{}", out.stdout);
    assert!(out.stdout.contains("✓ faces_recall") && out.stdout.contains("recall(person) = 1.000 ≥ 0.75"), "{}", out.stdout);
    let xml = std::fs::read_to_string(t.path().join("a.xml")).expect("junit written");
    let (cases, failures, errors, names) = junit_counts(&xml);
    assert_eq!((cases, failures, errors), (4, 1, 0), "{xml}");
    assert_eq!(names, ["faces_recall", "cats_empty", "enough_faces", "accuracy"]);
    assert!(xml.contains("tests=\"4\" failures=\"1\" errors=\"0\""), "{xml}");

    // Predictions B: two faces missed, the cat right. A filter keeps only some tests.
    let out = t.run_with(&["test", "--predictions", "b.csv", "--explain"]).code(1);
    assert!(out.stdout.contains("Unit Tests Passed: 2 / 4  (2 failed, 0 errors)"), "{}", out.stdout);
    assert!(out.stdout.contains("2 failing samples"), "{}", out.stdout);
    assert!(out.stdout.contains("\"face0\"") && out.stdout.contains("\"face1\""), "--explain lists the missed faces: {}", out.stdout);

    // Comparing A with B: B fixes cats_empty and breaks faces_recall and accuracy.
    let out = t.run_with(&["test", "--compare", "previous", "latest", "--json"]).code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let change = |name: &str| doc["tests"].as_array().expect("tests").iter().find(|r| r["name"] == name).expect("row")["change"].as_str().expect("change").to_string();
    assert_eq!(change("cats_empty"), "fixed");
    assert_eq!(change("faces_recall"), "broken");
    assert_eq!(change("accuracy"), "broken");
    assert_eq!(change("enough_faces"), "same");
    assert_eq!((doc["fixed"].as_u64(), doc["broken"].as_u64()), (Some(1), Some(2)));
    let delta = doc["tests"].as_array().expect("tests").iter().find(|r| r["name"] == "faces_recall").expect("row")["delta"].as_f64().expect("delta");
    assert!((delta + 0.5).abs() < 1e-9, "recall 1.0 -> 0.5: {delta}");
    // B against itself breaks nothing.
    t.run_with(&["test", "--compare", "latest", "latest"]).success();

    // All passing exits 0; the pattern picks tests by name.
    let out = t.run_with(&["test", "enough", "--predictions", "b.csv"]).success();
    assert!(out.stdout.contains("Unit Tests Passed: 1 / 1"), "{}", out.stdout);
}

#[test]
fn empty_slices_and_script_errors_are_errors_with_lines() {
    let t = workspace().write(
        "tests/broken.rhai",
        "let ds = predictions();\ntest(\"dogs\", || ds.filter(\"class = 'dog'\").recall(\"person\") >= 0.5);\ntest(\"typo\", || ds.filter(\"class = 'face'\").recal(\"person\") >= 0.5);\ntest(\"fine\", || ds.accuracy() >= 0.5);\n",
    );
    let out = t.run_with(&["test", "--predictions", "a.csv", "--junit", "out.xml"]).code(1);
    assert!(out.stdout.contains("Unit Tests Passed: 1 / 3  (0 failed, 2 errors)"), "{}", out.stdout);
    assert!(out.stdout.contains("! dogs") && out.stdout.contains("empty slice"), "{}", out.stdout);
    assert!(out.stdout.contains("! typo") && out.stdout.contains("tests/broken.rhai:3:"), "the error names the file and line: {}", out.stdout);
    let (cases, failures, errors, _) = junit_counts(&std::fs::read_to_string(t.path().join("out.xml")).expect("xml"));
    assert_eq!((cases, failures, errors), (3, 0, 2));
    // A syntax error in a test file is an error of that file, and the others still run.
    let t = t.write("tests/zz_syntax.rhai", "test(\"x\", || 1 +* 2);\n");
    let out = t.run_with(&["test", "--predictions", "a.csv"]).code(1);
    assert!(out.stdout.contains("tests/zz_syntax.rhai:1:"), "{}", out.stdout);
    assert!(out.stdout.contains("✓ fine"), "{}", out.stdout);
}

#[test]
fn no_drop_compares_with_the_baseline_run() {
    let t = workspace().write("tests/regress.rhai", "let ds = predictions();\ntest(\"accuracy_holds\", || ds.accuracy().no_drop(0.05));\n");
    let out = t.run_with(&["test", "--predictions", "a.csv"]).success();
    assert!(out.stdout.contains("no baseline"), "{}", out.stdout);
    // b.csv is less accurate (6/8 against 7/8): a drop of 0.125 > 0.05 against the baseline.
    let out = t.run_with(&["test", "--predictions", "b.csv", "--baseline", "latest"]).code(1);
    assert!(out.stdout.contains("✗ accuracy_holds"), "{}", out.stdout);
    let out = t.run_with(&["test", "--predictions", "a.csv", "--baseline", "previous"]).success();
    assert!(out.stdout.contains("✓ accuracy_holds"), "{}", out.stdout);
}

/// `curate predict --out` writes the table that `curate test --predictions` reads: the suite
/// judges the file exactly as it judges the model.
#[test]
fn predict_writes_what_test_reads() {
    let t = Test::example_without_vectors();
    std::fs::create_dir_all(t.path().join("tests")).expect("mkdir");
    std::fs::copy(crate::util::example_dir().join("tests/person.rhai"), t.path().join("tests/person.rhai")).expect("copy suite");
    let out = t.run_with(&["predict", "--out", "preds.parquet"]).success();
    assert!(out.stdout.starts_with("vww: 1400 images, 1400 predicted"), "{}", out.stdout);
    let from_file = t.run_with(&["test", "--predictions", "preds.parquet"]).code(1);
    let from_model = t.run_with(&["test"]).code(1);
    let verdicts = |s: &str| s.lines().filter(|l| l.starts_with('✓') || l.starts_with('✗')).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(verdicts(&from_file.stdout), verdicts(&from_model.stdout));
    assert!(from_file.stdout.contains("Unit Tests Passed: 6 / 12"), "{}", from_file.stdout);
    let again = t.run_with(&["predict"]).success();
    assert!(again.stdout.contains("0 predicted, 1400 already cached"), "{}", again.stdout);
    let bad = t.run_with(&["predict", "--out", "preds.txt"]).code(2);
    assert!(bad.stderr.contains(".csv, .parquet or .jsonl"), "{}", bad.stderr);
}
