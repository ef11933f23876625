//! The Jupyter kernel with real clients (nbclient, jupyter_client and nbconvert from PyPI, in the
//! test venv), and notebooks run headless by `curate run`.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::util::{example_dir, repo, Test};

const CLIENTS: &[&str] = &["nbclient==0.11.0", "jupyter_client==8.10.0", "nbconvert==7.17.2"];

fn notebook(cells: &[Value]) -> String {
    let doc = json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "curate", "display_name": "curate", "language": "rhai"}},
        "cells": cells,
    });
    serde_json::to_string_pretty(&doc).expect("json")
}

fn code(source: &str) -> Value {
    json!({"cell_type": "code", "metadata": {}, "execution_count": null, "outputs": [], "source": source})
}

/// Install the kernelspec under `prefix` with the binary under test; the JUPYTER_PATH that finds it.
fn install(t: &Test, prefix: &Path) -> String {
    let out = t.run_with(&["jupyter", "install", "--prefix", &prefix.display().to_string()]).success();
    let folder = prefix.join("share/jupyter/kernels/curate");
    assert!(out.stdout.contains(&folder.display().to_string()), "{}", out.stdout);
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(folder.join("kernel.json")).expect("kernel.json")).expect("json");
    assert_eq!(spec["argv"][0].as_str().map(Path::new), Some(Path::new(env!("CARGO_BIN_EXE_curate")).canonicalize().expect("exe").as_path()));
    prefix.join("share/jupyter").display().to_string()
}

fn python(python: &Path, jupyter_path: &str, runtime_dir: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.env("JUPYTER_PATH", jupyter_path).env("JUPYTER_RUNTIME_DIR", runtime_dir).env("JUPYTER_PLATFORM_DIRS", "1").env("PYDEVD_DISABLE_FILE_VALIDATION", "1").env_remove("CURATE_RUNTIME");
    cmd
}

fn outputs(cell: &Value) -> &Vec<Value> {
    cell["outputs"].as_array().expect("outputs")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

/// A PNG output decodes, at the size its metadata and its text state.
#[track_caller]
fn check_png(out: &Value) -> (u32, u32) {
    let b64 = text(&out["data"]["image/png"]);
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).expect("base64 PNG");
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).expect("a PNG");
    let (w, h) = (img.width(), img.height());
    assert_eq!(out["metadata"]["image/png"]["width"], w, "{}", out["metadata"]);
    assert_eq!(out["metadata"]["image/png"]["height"], h, "{}", out["metadata"]);
    assert!(text(&out["data"]["text/plain"]).contains(&format!("{w}×{h}")), "{}", out["data"]["text/plain"]);
    (w, h)
}

fn person_count() -> usize {
    use polars::prelude::*;
    let f = std::fs::File::open(example_dir().join("manifest.parquet")).expect("open the manifest");
    let df = ParquetReader::new(f).finish().expect("parquet");
    let labels = df.column("label").expect("label").str().expect("strings");
    labels.iter().filter(|l| *l == Some("person")).count()
}

#[test]
fn a_notebook_runs_on_the_kernel_with_tables_pictures_errors_and_an_interrupt() {
    let python_bin = curate_stdlib::testing::python_with(CLIENTS);
    // Nothing embedded: the interrupted cell must still be embedding when it is stopped.
    let t = Test::example_without_vectors();
    let jupyter = tempfile::tempdir().expect("tempdir");
    let jupyter_path = install(&t, &jupyter.path().join("prefix"));
    let mut interrupted = code("ds.embed()");
    // nbclient interrupts a cell that runs past its timeout, as a user's stop button does;
    // embedding 1,400 images takes far longer than this.
    interrupted["metadata"] = json!({"timeout": 3});
    let cells = vec![
        json!({"cell_type": "markdown", "metadata": {}, "source": "# The people workspace"}),
        code("let ds = open();\nds.len()"),
        code("let people = ds.filter(\"label = 'person'\");\npeople"),
        code("ds.group_count(\"class\")"),
        code("print(\"a grid of people\");\nshow(people.grid(#{n: 16, cols: 8, size: 32}));"),
        code("ds.plot_counts(\"class\")"),
        code("let n = 2;\nds.fliter(\"x\")"),
        interrupted,
        code("print(\"still here\");\nds.filter(\"split = 'test'\").len()"),
    ];
    let nb_in = t.path().join("people.ipynb");
    let nb_out = t.path().join("people.out.ipynb");
    std::fs::write(&nb_in, notebook(&cells)).expect("write notebook");
    let run = python(&python_bin, &jupyter_path, jupyter.path()).arg(repo().join("tests/cli/notebook_client.py")).arg(&nb_in).arg(&nb_out).arg(t.path()).output().expect("run the client");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "client failed:\n{}\n{stderr}", String::from_utf8_lossy(&run.stdout));
    let executed: Value = serde_json::from_str(&std::fs::read_to_string(&nb_out).expect("executed notebook")).expect("json");
    let cells = executed["cells"].as_array().expect("cells");

    // `open` and a value: the execute result's text.
    let len = outputs(&cells[1]);
    assert_eq!(len.len(), 1, "{len:?}");
    assert_eq!((len[0]["output_type"].as_str(), text(&len[0]["data"]["text/plain"])), (Some("execute_result"), "1400".to_string()));

    // A filtered dataset: an HTML table with types and the full row count, and a text table.
    let people = &outputs(&cells[2])[0];
    let html = text(&people["data"]["text/html"]);
    let n = person_count();
    assert!(n > 10, "the example has people");
    assert!(html.contains(&format!("10 of {n} rows")), "{html}");
    assert!(html.contains("<th>label<br><small>str</small></th>"), "{html}");
    assert_eq!(html.matches("<tr>").count(), 11, "a header row and ten rows: {html}");
    assert!(text(&people["data"]["text/plain"]).contains(&format!("10 of {n} rows")));

    // group_count: one row per class (10 CIFAR classes, faces, non-faces), the first ten shown.
    let classes = text(&outputs(&cells[3])[0]["data"]["text/html"]);
    assert!(classes.contains("10 of 12 rows × 2 columns"), "{classes}");
    assert_eq!(classes.matches("<tr>").count(), 11, "{classes}");

    // print on the stream, then a picture shown mid-cell; a cell ending in `;` has no result.
    let grid = outputs(&cells[4]);
    assert_eq!(grid.len(), 2, "{grid:?}");
    assert_eq!((grid[0]["output_type"].as_str(), grid[0]["name"].as_str()), (Some("stream"), Some("stdout")));
    assert_eq!(text(&grid[0]["text"]), "a grid of people\n");
    assert_eq!(grid[1]["output_type"], "display_data");
    let (w, h) = check_png(&grid[1]);
    assert!(w > 8 * 32 && h > 2 * 32, "8 columns × 2 rows of 32 px tiles: {w}×{h}");

    // A chart as the cell's value.
    let chart = &outputs(&cells[5])[0];
    assert_eq!(chart["output_type"], "execute_result");
    check_png(chart);

    // A script error names the line and column in its cell, with the code and the hint.
    let error = &outputs(&cells[6])[0];
    assert_eq!(error["output_type"], "error");
    assert_eq!(error["ename"], "curate::script::unknown_function");
    let evalue = error["evalue"].as_str().unwrap_or_default();
    assert!(evalue.contains("fliter") && evalue.ends_with("(line 2, column 4)"), "{evalue}");
    let traceback = error["traceback"].as_array().expect("traceback").iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n");
    assert!(traceback.contains("did you mean `filter`?"), "{traceback}");
    assert!(traceback.contains(":2:4"), "{traceback}");

    // The interrupted embed stops with `interrupted`, and the kernel runs the next cell.
    let stopped = outputs(&cells[7]);
    assert!(stopped.iter().any(|o| o["output_type"] == "error" && o["ename"] == "curate::interrupted"), "{stopped:?}");
    // Its progress line, updated in place, says where it stopped.
    let progress = stopped.iter().map(|o| text(&o["data"]["text/plain"])).find(|t| t.starts_with("embedding (mobilenet): ")).expect("a progress line");
    let done: usize = progress.split(['/']).next().and_then(|n| n.rsplit(' ').next()).and_then(|n| n.parse().ok()).expect("a count");
    assert!(done < 1400 && progress.contains(&format!("stopped at {done}/1400 in ")), "{progress}");
    let after = outputs(&cells[8]);
    assert_eq!(text(&after[0]["text"]), "still here\n", "{after:?}");
    assert_eq!(text(&after[1]["data"]["text/plain"]), "240");
    // Execution counts follow the cells that ran.
    assert_eq!(cells[8]["execution_count"], 8);

    // Completion, inspection and completeness from jupyter_client, then a clean shutdown.
    let replies: Value = serde_json::from_slice(&run.stdout).expect("the client's JSON");
    let c = &replies["complete_primitive"];
    assert!(c["matches"].as_array().expect("matches").contains(&json!("group_count")), "{c}");
    assert_eq!((c["cursor_start"].as_u64(), c["cursor_end"].as_u64()), (Some(3), Some(10)));
    assert!(replies["complete_variable"]["matches"].as_array().expect("matches").contains(&json!("ds")), "{replies}");
    assert_eq!(replies["complete_column"]["matches"], json!(["label"]));
    let doc = text(&replies["inspect_primitive"]["data"]["text/plain"]);
    assert!(replies["inspect_primitive"]["found"] == true && doc.contains("ds.group_count(") && doc.contains("Examples:"), "{doc}");
    assert!(text(&replies["inspect_variable"]["data"]["text/plain"]).starts_with("ds: Dataset\n1400 samples"), "{replies}");
    assert_eq!(replies["is_complete"], json!({"for x in [1, 2] {": "incomplete", "let a = 1;": "complete", "let a = 1 +* 2;": "invalid", "%workspace .\nds.len()": "complete"}));
    assert_eq!(replies["run_all"], json!(["error", "aborted"]), "{replies}");
    assert_eq!(replies["after_run_all"], "ok", "{replies}");
    assert_eq!(replies["heartbeat"], true, "{replies}");
    assert_eq!(replies["after_bad_message"], "ok", "{replies}");
    assert_eq!(replies["alive_after_shutdown"], false, "{replies}");

    // The same notebook headless: it stops at the error, shown in its cell (the 7th).
    let out = t.run_with(&["run", "people.ipynb"]).code(2);
    assert!(out.stdout.contains("1400") && out.stdout.contains("a grid of people"), "{}", out.stdout);
    assert!(out.stderr.contains("people.ipynb, cell 7:2:4"), "{}", out.stderr);
}

#[test]
fn the_example_notebook_executes_with_nbconvert() {
    let python_bin = curate_stdlib::testing::python_with(CLIENTS);
    // Nothing embedded, as for a new user: the README quotes the notebook's embedding line.
    let t = Test::example_without_vectors();
    let jupyter = tempfile::tempdir().expect("tempdir");
    let jupyter_path = install(&t, &jupyter.path().join("prefix"));
    std::fs::copy(example_dir().join("explore.ipynb"), t.path().join("explore.ipynb")).expect("copy the notebook");
    let jupyter_bin = python_bin.parent().expect("venv bin").join("jupyter");
    let run = python(&jupyter_bin, &jupyter_path, jupyter.path())
        .current_dir(t.path())
        .args(["nbconvert", "--to", "notebook", "--execute", "explore.ipynb", "--output", "explored.ipynb"])
        .output()
        .expect("run nbconvert");
    assert!(run.status.success(), "nbconvert failed:\n{}", String::from_utf8_lossy(&run.stderr));
    let executed: Value = serde_json::from_str(&std::fs::read_to_string(t.path().join("explored.ipynb")).expect("executed")).expect("json");
    let code_cells: Vec<&Value> = executed["cells"].as_array().expect("cells").iter().filter(|c| c["cell_type"] == "code").collect();
    assert!(code_cells.len() >= 6);
    let mut pictures = 0;
    for (i, cell) in code_cells.iter().enumerate() {
        for o in outputs(cell) {
            assert_ne!(o["output_type"], "error", "code cell {i} failed: {o}");
            if o["data"]["image/png"].is_string() || o["data"]["image/png"].is_array() {
                check_png(o);
                pictures += 1;
            }
        }
        assert!(!outputs(cell).is_empty() || text(&cell["source"]).trim_end().ends_with(';'), "code cell {i} shows nothing");
    }
    assert!(pictures >= 3, "the grid, the chart and the neighbours: {pictures}");

    // The guide's excerpt of this notebook shows its real outputs: every cell it quotes, with
    // that cell's printed lines and pictures' sizes.
    let guide = std::fs::read_to_string(repo().join("docs/guide/notebooks.md")).expect("docs/guide/notebooks.md");
    let quoted: Vec<&&Value> = code_cells.iter().filter(|c| guide.contains(text(&c["source"]).trim())).collect();
    assert!(quoted.len() >= 3, "docs/guide/notebooks.md quotes the notebook's cells");
    for cell in quoted {
        for o in outputs(cell) {
            if o["output_type"] == "stream" {
                for line in text(&o["text"]).lines() {
                    // A time is the run's own: `(8.8 s, tract)` is quoted as `(… s, tract)`.
                    let line = match line.split_once(" s, ") {
                        Some((head, tail)) => format!("{}… s, {tail}", head.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')),
                        None => line.to_string(),
                    };
                    assert!(guide.contains(&line), "docs/guide/notebooks.md lacks the output {line}");
                }
            }
            if !o["data"]["image/png"].is_null() {
                let (w, h) = check_png(o);
                assert!(guide.contains(&format!("{w}×{h} PNG")), "docs/guide/notebooks.md lacks the {w}×{h} picture");
            }
        }
    }
    let near = code_cells.last().map(|c| text(&outputs(c)[0]["data"]["text/html"])).unwrap_or_default();
    // The neighbours' distances, nearest and farthest, as the guide gives them.
    let distances: Vec<f64> = near.split("<tr>").filter_map(|row| row.split("<td").nth(12).and_then(|td| td.split(['>', '<']).nth(1)).and_then(|v| v.parse().ok())).collect();
    assert_eq!(distances.len(), 8, "8 neighbours: {near}");
    let range = format!("({:.3} … {:.3})", distances[0], distances[7]);
    assert!(guide.contains(&range), "docs/guide/notebooks.md lacks the distances {range}");

    // `curate run` runs the same notebook headless, with a report.
    t.run_with(&["run", "explore.ipynb", "--report", "explore.html"]).success();
    let report = std::fs::read_to_string(t.path().join("explore.html")).expect("report");
    assert!(report.contains("cell 2") && report.contains("data:image/png;base64,"), "the report has the cells and pictures");
}

#[test]
fn notebooks_run_headless_on_the_workspace_they_name() {
    // A notebook outside the workspace names it with `%workspace`, relative to the notebook's
    // folder (the kernel's), whatever folder `curate run` starts in.
    let t = Test::new().write("nb/look.ipynb", &notebook(&[code("%workspace ../ws\nlet ds = open();\nprint(`${ds.len()} samples`);"), code("ds.group_count(\"split\")")]));
    let ws = t.path().join("ws");
    std::fs::create_dir_all(&ws).expect("mkdir");
    for f in ["curate.toml", "manifest.parquet"] {
        std::fs::copy(example_dir().join(f), ws.join(f)).expect("copy");
    }
    let out = t.run_with(&["run", "nb/look.ipynb", "--json"]).success();
    let doc: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(doc["outputs"][0]["text"], "1400 samples", "{doc}");
    assert_eq!(doc["result"]["total_rows"], 2, "{doc}");

    // A file that is no notebook, and a magic the kernel does not know, name the file and cell.
    let t = t.write("bad.ipynb", "{\"cells\": []}").write("magic.ipynb", &notebook(&[code("1"), code("%time open()")]));
    let out = t.run_with(&["run", "bad.ipynb"]).code(2);
    assert!(out.stderr.contains("bad.ipynb") && out.stderr.contains("no `nbformat` field"), "{}", out.stderr);
    let out = t.run_with(&["run", "magic.ipynb"]).code(2);
    assert!(out.stderr.contains("cell 2, line 1: unknown magic `%time`"), "{}", out.stderr);
    // A misspelt variable is found before anything runs, and shown in its own cell.
    let t = t.write("typo.ipynb", &notebook(&[code("let a = 1;"), code("print(a);"), code("let c = 2;\nprint(b);")]));
    let out = t.run_with(&["run", "typo.ipynb", "--json", "--report", "typo.md"]).code(2);
    let doc: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!((doc["error"]["file"].as_str(), doc["error"]["line"].as_u64()), (Some("typo.ipynb, cell 3"), Some(2)), "{doc}");
    let report = std::fs::read_to_string(t.path().join("typo.md")).expect("report");
    let failed = report.find("typo.ipynb, cell 3").expect("the error in the report");
    assert!(report[..failed].contains("print(b)"), "the error is under the cell that has it:\n{report}");
}
