//! Pictures, reports and tables: every chart and the contact sheet render to PNG files that
//! decode back at the size reported and are not blank; thumbnails show the right images;
//! reports (`curate run --report`, the REPL's `:report`, `curate test --report`) hold every
//! cell, and their embedded or linked images decode.

use base64::Engine as _;
use image::RgbImage;

use crate::util::{example_dir, Test};

const SCRIPT: &str = r#"// Pictures of the example's test split.
// %% counts
let ds = open();
let test = ds.filter("split = 'test'").predict("vww").embed();
ds.plot_counts("class", #{by: "split"})
// %% histogram
test.plot_hist("pred_score", #{by: "label", bins: 12})
// %% confusion
test.plot_confusion()
// %% precision-recall
test.plot_pr("person")
// %% embedding map
test.plot_embedding(#{color: "class", highlight: test.filter("class = 'face'").head(5)})
// %% frogs
test.filter("class = 'frog'").grid(#{n: 10, cols: 5, size: 96})
// %% neighbours
test.similar(["lfw/face/005", "cifar/test/cat/0003"], 8, #{exact: true}).grid()
// %% table
show(test.head(3));
plot_hist([1, 2, 2, 3, 3, 3], #{bins: 3, title: "a plain array"})
"#;

/// Decode a PNG file, check its size and that it is not one flat colour and has dark ink
/// (text and axes drew).
fn check_png(path: &std::path::Path, width: u64, height: u64) -> RgbImage {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert_eq!((img.width() as u64, img.height() as u64), (width, height), "{}", path.display());
    let first = *img.get_pixel(0, 0);
    assert!(img.pixels().any(|p| *p != first), "{} is blank", path.display());
    let ink = img.pixels().filter(|p| p.0.iter().all(|&c| c < 90)).count();
    assert!(ink > 300, "{}: only {ink} dark pixels: no text?", path.display());
    img
}

fn images_of(doc: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut all: Vec<serde_json::Value> = doc["outputs"].as_array().expect("outputs").iter().filter(|o| o["type"] == "image").cloned().collect();
    if doc["result"]["type"] == "image" {
        all.push(doc["result"].clone());
    }
    all
}

#[test]
fn charts_and_grids_render_and_reports_hold_every_cell() {
    let t = Test::example().write("scripts/pictures.rhai", SCRIPT);
    let out = t.run_with(&["run", "scripts/pictures.rhai", "--json", "--report", "out/report.html"]).success();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let images = images_of(&doc);
    let titles: Vec<&str> = images.iter().map(|i| i["title"].as_str().unwrap_or_default()).collect();
    assert_eq!(images.len(), 8, "{titles:?}");
    let mut decoded = Vec::new();
    for img in &images {
        let path = t.path().join(img["path"].as_str().expect("path"));
        assert!(path.starts_with(t.path().join(".curate/out")), "{}", path.display());
        decoded.push(check_png(&path, img["width"].as_u64().expect("w"), img["height"].as_u64().expect("h")));
    }
    assert!(titles[0].starts_with("samples per class by split"), "{titles:?}");
    assert!(titles[2].contains("accuracy 0.904"), "{titles:?}");
    assert!(titles[3].starts_with("person by p_person: AP "), "{titles:?}");
    assert!(titles[4].contains("(240 samples, by class)"), "{titles:?}");

    // The frog sheet: 10 tiles of 96 px in 5 columns, 2 rows with 3 caption lines (id, label,
    // prediction), and each tile shows its image: 32×32 frogs enlarged 3× by nearest neighbour.
    let frogs = &decoded[5];
    assert_eq!((frogs.width(), frogs.height()), (5 * (96 + 16), 40 + 2 * (96 + 16 + 2 + 3 * 15)));
    let first = image::open(example_dir().join("media/cifar/test/frog/0000.jpg")).expect("frog").to_rgb8();
    for (x, y) in [(0u32, 0u32), (15, 16), (31, 31), (7, 25)] {
        assert_eq!(frogs.get_pixel(8 + 3 * x + 1, 40 + 8 + 3 * y + 1), first.get_pixel(x, y), "pixel ({x}, {y}) of the first frog");
    }
    // The neighbours: one row per query, each query framed blue in the first column.
    let near = &decoded[6];
    assert!(titles[6].contains("nearest to 2 queries"), "{titles:?}");
    assert_eq!(near.get_pixel(8 - 2, 40 + 8 + 20).0, [31, 119, 180], "the query's frame");
    assert!(near.width() >= 2 * (128 + 16));

    // The report: every cell's source, in order, and images that decode to the same sizes.
    let html = std::fs::read_to_string(t.path().join("out/report.html")).expect("report");
    assert_eq!(html.matches("<section").count(), 9, "a header cell and 8 marked cells");
    let mut at = 0;
    for needle in ["let test = ds.filter(", "test.plot_hist(", "test.plot_confusion()", "test.plot_pr(", "test.plot_embedding(", "grid(#{n: 10", ".similar(", "show(test.head(3))"] {
        let needle = needle.replace('\'', "&apos;").replace('"', "&quot;");
        let found = html[at..].find(&needle).unwrap_or_else(|| panic!("`{needle}` missing or out of order"));
        at += found;
    }
    assert!(html.contains("<table>") && html.contains("3 rows × 15 columns"), "the shown table is an HTML table");
    let pngs: Vec<&str> = html.split("data:image/png;base64,").skip(1).map(|s| &s[..s.find('"').expect("end of data uri")]).collect();
    assert_eq!(pngs.len(), 8);
    for (b64, img) in pngs.iter().zip(&images) {
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
        let png = image::load_from_memory(&bytes).expect("embedded PNG decodes");
        assert_eq!((png.width() as u64, png.height() as u64), (img["width"].as_u64().expect("w"), img["height"].as_u64().expect("h")));
    }
}

#[test]
fn markdown_reports_link_their_pictures_and_failures_keep_earlier_cells() {
    let t = Test::example().write("scripts/fails.rhai", "// %% counts\nopen().plot_counts(\"label\")\n// %% boom\nlet x = open().col(\"nope\");\n// %% after\nprint(\"never\");\n");
    let out = t.run_with(&["run", "scripts/fails.rhai", "--report", "r.md"]).code(2);
    assert!(out.stderr.contains("unknown column `nope`") && out.stderr.contains("report: "), "{}", out.stderr);
    let md = std::fs::read_to_string(t.path().join("r.md")).expect("report written despite the error");
    assert!(md.contains("## [1] line 1 · counts") && md.contains("## [2] line 3 · boom") && md.contains("## [3] line 5 · after"), "{md}");
    assert!(md.contains("unknown column `nope`") && md.contains("scripts/fails.rhai:4:"), "the error with its position:\n{md}");
    assert!(md.contains("_not run: an earlier cell failed_"), "{md}");
    let link = md.split("](<r_files/").nth(1).expect("an image link").split('>').next().expect("link end");
    let img = image::open(t.path().join("r_files").join(link)).expect("linked PNG decodes");
    assert!(img.width() > 400);
    // An unknown report format is refused before anything runs.
    let out = t.run_with(&["run", "scripts/fails.rhai", "--report", "r.pdf"]).code(2);
    assert!(out.stderr.contains("a report is .html or .md"), "{}", out.stderr);
}

#[test]
fn the_repl_saves_its_session_as_a_script_and_a_report() {
    let t = Test::example();
    let session = "let ds = open();\nds.len()\nnot_a_function()\nds.filter(\"class = 'frog'\").grid(#{n: 4})\n:save session.rhai\n:report session.html\n:save session.rhai\n";
    let out = t.run_with_stdin(&["repl"], session).code(1);
    assert!(out.stdout.contains("saved 3 cells to") && out.stdout.contains("wrote 4 cells to"), "{}\n{}", out.stdout, out.stderr);
    let script = std::fs::read_to_string(t.path().join("session.rhai")).expect("script");
    assert!(!script.contains("not_a_function"), "failed cells are left out:\n{script}");
    assert_eq!(script.matches("// %%").count(), 3, "{script}");
    // The saved script replays: the same count and the same picture (named by its content).
    let replay = t.run_with(&["run", "session.rhai"]).success();
    let grid_line = |s: &str| s.lines().find(|l| l.contains("[image ")).map(str::to_string);
    assert!(replay.stdout.contains("1400"), "{}", replay.stdout);
    assert_eq!(grid_line(&replay.stdout), grid_line(&out.stdout));
    let html = std::fs::read_to_string(t.path().join("session.html")).expect("report");
    assert_eq!(html.matches("<section").count(), 4);
    assert!(html.contains("not_a_function") && html.contains("class=\"cell failed\"") && html.contains("data:image/png;base64,"));
    // An existing file the session did not write is not overwritten without --force.
    std::fs::write(t.path().join("mine.rhai"), "keep me").expect("write");
    let out = t.run_with_stdin(&["repl"], "1 + 1\n:save mine.rhai\n").code(1);
    assert!(out.stderr.contains("exists; `:save mine.rhai --force` replaces it"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(t.path().join("mine.rhai")).expect("read"), "keep me");
}

#[test]
fn test_reports_chart_the_suite_and_show_failing_samples() {
    let t = Test::example();
    std::fs::create_dir_all(t.path().join("tests")).expect("mkdir");
    std::fs::copy(example_dir().join("tests/person.rhai"), t.path().join("tests/person.rhai")).expect("copy suite");
    let out = t.run_with(&["test", "--explain", "--report", "tests.md"]).code(1);
    assert!(out.stdout.contains("Unit Tests Passed: 6 / 12"), "{}", out.stdout);
    assert!(out.stdout.contains("[image ") && out.stdout.contains("dogs_are_not_people: 5 failing, most confident mistakes first"), "{}", out.stdout);
    // Each failing test also names the training samples that most lowered its margins, by
    // influence on the detector's own last layer, with a contact sheet of them.
    assert!(out.stdout.contains("most harmful training samples for dogs_are_not_people (vww's own last layer"), "{}", out.stdout);
    assert!(out.stdout.contains("faces_are_people: the 12 training samples that most lowered its margins"), "{}", out.stdout);
    let md = std::fs::read_to_string(t.path().join("tests.md")).expect("report");
    assert!(md.starts_with("# Unit Tests Passed: 6 / 12"), "{md}");
    // The summary cell and one cell per test that did not pass, with its source.
    assert_eq!(md.matches("\n## [").count(), 1 + 6, "{md}");
    assert!(md.contains("test(\"dogs_are_not_people\""), "{md}");
    let links: Vec<&str> = md.split("](<tests_files/").skip(1).map(|s| s.split('>').next().expect("link")).collect();
    assert_eq!(links.len(), 1 + 2 * 6, "the chart, and two sheets per failing test (failing, most harmful): {links:?}");
    for l in links {
        let img = image::open(t.path().join("tests_files").join(l)).expect("decodes").to_rgb8();
        assert!(img.width() >= 240 && img.height() >= 200, "{l}");
    }
    // A failing test's name is an influence query: its failing samples in the latest run.
    let t = t.write("scripts/why.rhai", "let h = open().filter(\"split = 'train'\").influence(\"faces_are_people\", 5);\nprint(`rows ${h.len()}`);\n");
    let out = t.run_with(&["run", "scripts/why.rhai"]).success();
    assert!(out.stdout.contains("rows 5") && out.stdout.contains("faces_are_people: margin mean"), "{}\n{}", out.stdout, out.stderr);
    let t = t.write("scripts/nope.rhai", "open().influence(\"no_such_test\", 5)\n");
    let out = t.run_with(&["run", "scripts/nope.rhai"]).code(2);
    assert!(out.stderr.contains("`no_such_test` is neither a sample id nor a test"), "{}", out.stderr);
}

#[test]
fn wide_tables_name_the_columns_they_leave_out() {
    let t = Test::example().write("scripts/wide.rhai", "open().filter(\"class = 'face'\").predict(\"vww\").head(2)");
    let out = t.run_with(&["run", "scripts/wide.rhai"]).success();
    assert!(out.stdout.contains("2 rows × 15 columns; not shown: pred_score (f64), p_no_person (f64), p_person (f64)"), "{}", out.stdout);
    let json = t.run_with(&["run", "scripts/wide.rhai", "--json"]).success();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(doc["result"]["columns"].as_array().expect("columns").len(), 15, "JSON keeps every column");
    assert_eq!(doc["result"]["columns"][13]["name"], "p_no_person");
}

#[test]
fn picture_arguments_are_checked() {
    let t = Test::example();
    let err = |script: &str| {
        let t = Test::example().write("scripts/x.rhai", script);
        let out = t.run_with(&["run", "scripts/x.rhai"]).code(2);
        out.stderr
    };
    let e = err("open().plot_counts(\"label\", #{bins: 5})");
    assert!(e.contains("unknown option `bins` for plot_counts") && e.contains("valid keys: by, title"), "{e}");
    let e = err("open().head(2).grid().save(\"../outside.png\")");
    assert!(e.contains("outside"), "{e}");
    let e = err("open().head(2).grid().save(\"curate.toml\")");
    assert!(e.contains("saved as a .png file"), "{e}");
    let e = err("open().grid(#{n: 0})");
    assert!(e.contains("invalid option `n` for grid"), "{e}");
    let e = err("open().filter(\"class = 'nope'\").grid()");
    assert!(e.contains("the dataset is empty"), "{e}");
    // A script's own folder is fine.
    let t = t.write("scripts/ok.rhai", "open().head(2).grid().save(\"pictures/two.png\")");
    t.run_with(&["run", "scripts/ok.rhai"]).success();
    assert!(image::open(t.path().join("pictures/two.png")).is_ok());
}
