//! `curate test`: run the data unit tests of a workspace (`tests/*.rhai`), print
//! "Unit Tests Passed: N / M", record the run in `.curate/runs/`, write JUnit XML, compare runs
//! and explain failures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use curate_stdlib::output::Output;
use curate_stdlib::primitives::checks::PredictionSource;
use curate_stdlib::progress::CancelFlag;
use curate_stdlib::runs::{self, Run, Status, TestResult, Verdict};
use curate_stdlib::{CurateError, Workspace};
use rhai::Dynamic;

use crate::diagnostic::{render, ScriptError};
use crate::report::{CellRecord, Report, Status as ReportStatus};
use crate::session::Session;
use curate_stdlib::plot::chart::TestBar;
use curate_stdlib::plot::Picture;

#[derive(Debug, Default)]
pub struct TestOptions {
    pub pattern: Option<String>,
    pub model: Option<String>,
    pub predictions: Option<String>,
    pub baseline: Option<String>,
    pub junit: Option<PathBuf>,
    pub json: bool,
    pub explain: bool,
    pub report: Option<PathBuf>,
}

/// Run the suite; the exit code is 0 when every test passed, 1 when any failed or errored.
pub fn run_tests(dir: &Path, opts: &TestOptions, cancel: CancelFlag) -> u8 {
    match run_inner(dir, opts, cancel) {
        Ok(code) => code,
        Err(e) => {
            eprint!("{}", render(&e, crate::run::color()));
            2
        }
    }
}

fn run_inner(dir: &Path, opts: &TestOptions, cancel: CancelFlag) -> Result<u8, CurateError> {
    let json = opts.json;
    if let Some(r) = &opts.report {
        crate::report::Format::of(r)?;
    }
    let sink: curate_stdlib::primitives::Sink = if json {
        Arc::new(|_| {})
    } else {
        Arc::new(|o: Output| {
            let _ = writeln!(std::io::stderr(), "{}", o.render_text(None));
        })
    };
    let session = Session::new(dir, rhai::Map::new(), cancel, sink)?;
    let ws = session.workspace().cloned().ok_or_else(|| CurateError::NotAWorkspace { path: dir.to_path_buf() })?;
    let ctx = session.context();
    let (source, label, hash) = match (&opts.predictions, &opts.model) {
        (Some(_), Some(_)) => return Err(CurateError::arg("curate test", "give --model or --predictions, not both")),
        (Some(file), None) => {
            let path = curate_stdlib::workspace::resolve_inside(ws.root(), file)?;
            let bytes = std::fs::read(&path).map_err(|e| CurateError::io(&path, e))?;
            (PredictionSource::File(file.clone()), format!("file {file}"), Some(blake3::hash(&bytes).to_hex().to_string()))
        }
        (None, model) => {
            let name = match model.clone().or_else(|| ws.config.test.model.clone()) {
                Some(m) => m,
                None => curate_stdlib::vectors::default_model(&ws, "scores")?,
            };
            let m = ctx.registry.model(&ws, Some(&name))?;
            (PredictionSource::Model(Some(name.clone())), format!("model {name}"), Some(m.hash.clone()))
        }
    };
    if let Ok(mut s) = ctx.tests.source.lock() {
        *s = Some(source);
    }
    if let Some(b) = &opts.baseline {
        let base = runs::load(&ws, b)?;
        if let Ok(mut map) = ctx.tests.baseline.lock() {
            *map = base.values().into_iter().map(|(test, metric, x)| (curate_stdlib::primitives::checks::baseline_key(&test, &metric), x)).collect();
        }
    }
    let tests_dir = ws.root().join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tests_dir)
        .map_err(|e| CurateError::io(&tests_dir, format!("cannot list the test files: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CurateError::io(&tests_dir, "no *.rhai test files"));
    }
    let mut session = session;
    let mut results = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(ws.root()).unwrap_or(file).display().to_string();
        let src = std::fs::read_to_string(file).map_err(|e| CurateError::io(file, e))?;
        let before = session.context().tests.declared.lock().map(|d| d.len()).unwrap_or(0);
        if let Err(e) = session.eval_cell(&rel, &src) {
            results.push(TestResult {
                name: rel.clone(),
                file: rel.clone(),
                line: e.line.unwrap_or(0),
                status: Status::Error,
                verdicts: vec![],
                message: Some(format!("{rel}:{}:{}: {}", e.line.unwrap_or(0), e.column.unwrap_or(0), e.message)),
                seconds: 0.0,
            });
            continue;
        }
        let declared: Vec<_> = session.context().tests.declared.lock().map(|d| d[before..].to_vec()).unwrap_or_default();
        for d in declared {
            if opts.pattern.as_ref().is_some_and(|p| !d.name.contains(p.as_str())) {
                continue;
            }
            if let Ok(mut c) = session.context().tests.current.lock() {
                *c = Some(d.name.clone());
            }
            let started = std::time::Instant::now();
            let outcome = session.call(&d.rule);
            let seconds = started.elapsed().as_secs_f64();
            let mut r = TestResult { name: d.name.clone(), file: rel.clone(), line: d.line, status: Status::Pass, verdicts: vec![], message: None, seconds };
            match outcome {
                Ok(v) => judge(&mut r, v),
                Err(e) => {
                    let se = ScriptError::from_eval(&rel, &src, &e);
                    if matches!(curate_stdlib::error::find_curate_error(&e), Some(CurateError::Interrupted)) {
                        return Err(CurateError::Interrupted);
                    }
                    r.status = Status::Error;
                    r.message = Some(format!("{rel}:{}:{}: {}", se.line.unwrap_or(0), se.column.unwrap_or(0), se.message));
                }
            }
            results.push(r);
        }
    }
    if results.is_empty() {
        return Err(CurateError::arg(
            "curate test",
            match &opts.pattern {
                Some(p) => format!("no test matches `{p}`"),
                None => "the test files declare no tests: use test(name, || rule)".to_string(),
            },
        ));
    }
    let run = Run::new(&ws, label, hash, results)?;
    let path = runs::save(&ws, &run)?;
    if let Some(junit) = &opts.junit {
        let xml = junit_xml(&run);
        let target = if junit.is_absolute() { junit.clone() } else { dir.join(junit) };
        curate_stdlib::atomic::write_atomic(&target, |f| f.write_all(xml.as_bytes()).map_err(|e| CurateError::io(&target, e)))?;
    }
    // The failing samples of each failing test, as contact sheets.
    // A picture that cannot be drawn is reported in its place; the run stands.
    let mut sheets: Vec<(usize, Output)> = Vec::new();
    if opts.explain || opts.report.is_some() {
        for (i, t) in run.tests.iter().enumerate() {
            match failing_grid(session.context(), t) {
                Ok(Some(p)) => sheets.push((i, Output::Image(p))),
                Ok(None) => {}
                Err(e) => sheets.push((i, Output::Text(format!("(no picture of {}'s failing samples: {e})", t.name)))),
            }
            sheets.extend(harmful_training(session.context(), t).into_iter().map(|o| (i, o)));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&run).unwrap_or_default());
    } else {
        print!("{}", summary(&run, opts.explain));
        if opts.explain {
            for (_, o) in &sheets {
                crate::display::print_output(o);
            }
        }
        println!("recorded run {} ({})", run.id, path.strip_prefix(ws.root()).unwrap_or(&path).display());
    }
    if let Some(r) = &opts.report {
        test_report(&run, &sheets, &ws).write(r)?;
        if !json {
            println!("report: {}", r.display());
        }
    }
    Ok(if run.count(Status::Pass) == run.tests.len() { 0 } else { 1 })
}

/// A contact sheet of a failing test's samples (most confident mistakes first), with their
/// labels and predictions, or `None` when the test names no failing samples.
fn failing_grid(ctx: &curate_stdlib::primitives::Context, t: &TestResult) -> Result<Option<Picture>, CurateError> {
    const SHOWN: usize = 24;
    if t.status == Status::Pass {
        return Ok(None);
    }
    let mut failing = t.failing();
    if failing.is_empty() {
        return Ok(None);
    }
    let total = failing.len();
    failing.truncate(SHOWN);
    let ds = curate_stdlib::primitives::checks::predictions(ctx)?;
    let shown = runs::samples(&ds, failing)?;
    let more = if total > SHOWN { format!(", first {SHOWN} shown") } else { String::new() };
    let title = format!("{}: {total} failing{more}, most confident mistakes first", t.name);
    let opts = curate_stdlib::primitives::plot::GridOptions { n: Some(SHOWN as i64), title: Some(title), ..Default::default() };
    Ok(Some(curate_stdlib::primitives::plot::grid(ctx, &shown, &opts)?))
}

/// The training samples that most lowered a failing test's margins, by influence on the
/// default head (the tested model's own last layer when it declares an `embedding`): their ids,
/// and a contact sheet with their influence. Nothing when the test names no failing samples.
fn harmful_training(ctx: &curate_stdlib::primitives::Context, t: &TestResult) -> Vec<Output> {
    const SHOWN: usize = 12;
    if t.status == Status::Pass {
        return vec![];
    }
    let failing = t.failing();
    if failing.is_empty() {
        return vec![];
    }
    let explained = match curate_stdlib::primitives::influence::explain(ctx, &failing, SHOWN) {
        Ok(e) => e,
        Err(e) => return vec![Output::Text(format!("    (no influence for {}: {e})", t.name))],
    };
    let shown: Vec<String> = explained.rows.iter().map(|(id, v)| format!("\"{id}\" {v:.3}")).collect();
    let mut out = vec![Output::Text(format!(
        "    {} most harmful training samples for {} ({}; influence on the summed margin of {} failing samples):\n    [{}]",
        explained.rows.len(),
        t.name,
        explained.head,
        explained.tests,
        shown.join(", ")
    ))];
    let title = format!("{}: the {} training samples that most lowered its margins", t.name, explained.rows.len());
    let opts = curate_stdlib::primitives::plot::GridOptions { n: Some(SHOWN as i64), title: Some(title), ..Default::default() };
    match curate_stdlib::primitives::plot::grid(ctx, &explained.dataset, &opts) {
        Ok(p) => out.push(Output::Image(p)),
        Err(e) => out.push(Output::Text(format!("    (no picture of the harmful training samples: {e})"))),
    }
    out
}

/// The source of the `test(...)` call declared at `line` of `file`: lines until the call closes.
fn test_source(ws: &Workspace, t: &TestResult) -> String {
    let Ok(text) = std::fs::read_to_string(ws.root().join(&t.file)) else { return String::new() };
    let mut out = String::new();
    for l in text.lines().skip(t.line.saturating_sub(1)).take(40) {
        out.push_str(l);
        out.push('\n');
        if !crate::session::is_incomplete(&out) {
            break;
        }
    }
    out
}

/// The run as a report: the summary with a pass/fail chart, then each test that did not pass
/// with its source, its verdict and its failing samples.
fn test_report(run: &Run, sheets: &[(usize, Output)], ws: &Workspace) -> Report {
    let bars: Vec<TestBar> = run
        .tests
        .iter()
        .map(|t| {
            let v = t.verdicts.first();
            TestBar {
                name: t.name.clone(),
                passed: match t.status {
                    Status::Pass => Some(true),
                    Status::Fail => Some(false),
                    Status::Error => None,
                },
                value: v.and_then(|v| v.value),
                threshold: v.and_then(|v| v.threshold),
                op: v.map(|v| v.op.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let mut summary_outputs = vec![Output::Text(summary(run, false))];
    match curate_stdlib::plot::chart::tests(&bars, "data unit tests")
        .and_then(|img| Picture::save_new(&img, "data unit tests", "tests", &curate_stdlib::plot::out_dir(ws.root())))
        .map(|p| p.relative_to(ws.root()))
    {
        Ok(p) => summary_outputs.push(Output::Image(p)),
        Err(e) => summary_outputs.push(Output::Text(format!("(no chart: {e})"))),
    }
    let mut cells = vec![CellRecord { line: 0, title: Some("summary".into()), source: String::new(), outputs: summary_outputs, error: None, status: ReportStatus::Ran }];
    for (i, t) in run.tests.iter().enumerate().filter(|(_, t)| t.status != Status::Pass) {
        let mut outputs = vec![Output::Text(format!("{} {}  {}", mark(t.status), t.name, t.describe()))];
        outputs.extend(sheets.iter().filter(|(k, _)| *k == i).map(|(_, o)| o.clone()));
        cells.push(CellRecord {
            line: t.line,
            title: Some(format!("{} ({})", t.name, t.file)),
            source: test_source(ws, t),
            outputs,
            error: t.message.clone(),
            status: if t.status == Status::Error { ReportStatus::Failed } else { ReportStatus::Ran },
        });
    }
    let passed = run.count(Status::Pass);
    Report {
        title: format!("Unit Tests Passed: {passed} / {}", run.tests.len()),
        meta: vec![format!("run {} at {}, {}", run.id, run.time, run.predictions), format!("manifest {}", &run.manifest_hash[..16.min(run.manifest_hash.len())])],
        cells,
    }
}

/// A rule's value: a verdict, a bool, or an array of them (all must pass).
fn judge(r: &mut TestResult, v: Dynamic) {
    let items: Vec<Dynamic> = if v.is_array() { v.into_array().unwrap_or_default() } else { vec![v] };
    if items.is_empty() {
        r.status = Status::Error;
        r.message = Some("the rule returned an empty array: nothing was checked".into());
        return;
    }
    let mut pass = true;
    for item in items {
        if let Some(b) = item.clone().try_cast::<bool>() {
            pass &= b;
        } else if let Some(verdict) = item.clone().try_cast::<Verdict>() {
            if let Some(e) = &verdict.error {
                r.status = Status::Error;
                r.message = Some(format!("{}: {e}", verdict.metric));
            }
            pass &= verdict.pass;
            r.verdicts.push(verdict);
        } else {
            r.status = Status::Error;
            r.message = Some(format!("the rule returned a {}, not a verdict (metric >= x) or a bool", item.type_name()));
            return;
        }
    }
    if r.status != Status::Error {
        r.status = if pass { Status::Pass } else { Status::Fail };
    }
}

fn mark(s: Status) -> &'static str {
    match s {
        Status::Pass => "✓",
        Status::Fail => "✗",
        Status::Error => "!",
    }
}

pub fn summary(run: &Run, explain: bool) -> String {
    let mut out = String::new();
    let width = run.tests.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
    for t in &run.tests {
        out.push_str(&format!("{} {:width$}  {}\n", mark(t.status), t.name, t.describe()));
        if explain && t.status != Status::Pass {
            let failing: Vec<&String> = t.verdicts.iter().flat_map(|v| v.failing.iter()).collect();
            if failing.is_empty() {
                out.push_str(&format!("    ({}:{}) no failing samples to list\n", t.file, t.line));
            } else {
                let shown: Vec<String> = failing.iter().take(50).map(|i| format!("\"{i}\"")).collect();
                out.push_str(&format!("    ({}:{}) {} failing samples, most confident mistakes first:\n    [{}]", t.file, t.line, failing.len(), shown.join(", ")));
                if failing.len() > 50 {
                    out.push_str(&format!(" ... and {} more", failing.len() - 50));
                }
                out.push('\n');
            }
        }
    }
    let (fail, err) = (run.count(Status::Fail), run.count(Status::Error));
    out.push_str(&format!("\nUnit Tests Passed: {} / {}", run.count(Status::Pass), run.tests.len()));
    if fail + err > 0 {
        out.push_str(&format!("  ({fail} failed, {err} errors)"));
    }
    out.push_str(&format!("  [{}]\n", run.predictions));
    out
}

/// JUnit XML, as CI systems read it: one testsuite per test file.
pub fn junit_xml(run: &Run) -> String {
    use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
    let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    let mut files: Vec<&str> = run.tests.iter().map(|t| t.file.as_str()).collect();
    files.dedup();
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let mut root = BytesStart::new("testsuites");
    root.push_attribute(("name", "curate"));
    root.push_attribute(("tests", run.tests.len().to_string().as_str()));
    root.push_attribute(("failures", run.count(Status::Fail).to_string().as_str()));
    root.push_attribute(("errors", run.count(Status::Error).to_string().as_str()));
    let _ = w.write_event(Event::Start(root));
    for file in files {
        let tests: Vec<&TestResult> = run.tests.iter().filter(|t| t.file == file).collect();
        let mut suite = BytesStart::new("testsuite");
        suite.push_attribute(("name", file));
        suite.push_attribute(("tests", tests.len().to_string().as_str()));
        suite.push_attribute(("failures", tests.iter().filter(|t| t.status == Status::Fail).count().to_string().as_str()));
        suite.push_attribute(("errors", tests.iter().filter(|t| t.status == Status::Error).count().to_string().as_str()));
        suite.push_attribute(("timestamp", run.time.as_str()));
        let _ = w.write_event(Event::Start(suite));
        for t in tests {
            let mut case = BytesStart::new("testcase");
            case.push_attribute(("name", t.name.as_str()));
            case.push_attribute(("classname", file.trim_end_matches(".rhai").replace('/', ".").as_str()));
            case.push_attribute(("file", file));
            case.push_attribute(("line", t.line.to_string().as_str()));
            case.push_attribute(("time", format!("{:.3}", t.seconds).as_str()));
            let _ = w.write_event(Event::Start(case));
            let tag = match t.status {
                Status::Pass => None,
                Status::Fail => Some("failure"),
                Status::Error => Some("error"),
            };
            if let Some(tag) = tag {
                let mut e = BytesStart::new(tag);
                e.push_attribute(("message", t.describe().as_str()));
                let _ = w.write_event(Event::Start(e));
                let failing: Vec<&String> = t.verdicts.iter().flat_map(|v| v.failing.iter()).take(50).collect();
                let body = format!("{}\nfailing samples: {:?}", t.describe(), failing);
                let _ = w.write_event(Event::Text(BytesText::new(&body)));
                let _ = w.write_event(Event::End(BytesEnd::new(tag)));
            }
            let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
        }
        let _ = w.write_event(Event::End(BytesEnd::new("testsuite")));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("testsuites")));
    String::from_utf8(w.into_inner()).unwrap_or_default() + "\n"
}

/// `curate test --compare A B`: which tests B fixes and breaks relative to A. Exit code 1 when
/// B breaks any test A passed.
pub fn compare(dir: &Path, a: &str, b: &str, json: bool) -> u8 {
    let ws = match Workspace::discover(dir) {
        Ok(ws) => ws,
        Err(e) => {
            eprint!("{}", render(&e, crate::run::color()));
            return 2;
        }
    };
    let (ra, rb) = match (runs::load(&ws, a), runs::load(&ws, b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => {
            eprint!("{}", render(&e, crate::run::color()));
            return 2;
        }
    };
    let c = runs::compare(&ra, &rb);
    if json {
        println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
    } else {
        println!("{} ({}) -> {} ({})", ra.id, ra.predictions, rb.id, rb.predictions);
        let width = c.tests.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
        let status = |s: Option<Status>| s.map_or("-", Status::as_str);
        // As JSON shows them: a value that is not a finite number is none.
        let value = |v: Option<f64>| v.filter(|x| x.is_finite()).map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
        for t in &c.tests {
            let values = t.values.as_ref();
            let delta = values.and_then(|v| v.delta).filter(|d| d.is_finite()).map(|d| format!(" ({d:+.3})")).unwrap_or_default();
            println!(
                "  {:8} {:width$}  {} -> {}   {} -> {}{delta}",
                t.change.as_str(),
                t.name,
                status(t.before),
                status(t.after),
                value(values.and_then(|v| v.value_before)),
                value(values.and_then(|v| v.value_after)),
            );
        }
        println!("\nfixed {}, broken {}, passing {} -> {}", c.fixed, c.broken, ra.count(Status::Pass), rb.count(Status::Pass));
    }
    u8::from(c.broken > 0)
}
