//! The shared harness that runs every primitive's examples against the bundled example
//! workspace (`examples/people`), as nushell's `test_examples` does. Every evaluation works on a
//! temporary copy of it, so no test writes into the checkout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::Dynamic;

use crate::config::Limits;
use crate::primitives::{Context, Primitive};
use crate::workspace::Workspace;

/// The bundled example workspace.
pub fn example_workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/people")
}

/// Copy the example workspace into `dir`: its own files and folders copied, its media and models
/// linked (they are only read). What runs write (`.curate/`, `exports/`, reports) is left out.
pub fn copy_example(dir: &Path) {
    let src = example_workspace();
    for entry in std::fs::read_dir(&src).expect("examples/people lists").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let (from, to) = (entry.path(), dir.join(&name));
        if name.starts_with('.') || name == "exports" || name.ends_with(".html") || name.ends_with("_files") {
            continue;
        } else if name == "media" || name == "models" {
            link(&from.canonicalize().expect("examples/people's media and models"), &to);
        } else if from.is_dir() {
            copy_tree(&from, &to);
        } else {
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
    }
}

#[cfg(unix)]
fn link(from: &Path, to: &Path) {
    std::os::unix::fs::symlink(from, to).unwrap_or_else(|e| panic!("link {}: {e}", to.display()));
}

#[cfg(not(unix))]
fn link(from: &Path, to: &Path) {
    copy_tree(from, to);
}

/// Copy the folder `from` to `to`, recursively, leaving out lock files.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("list {}: {e}", from.display())).flatten() {
        let (path, dest) = (entry.path(), to.join(entry.file_name()));
        if path.is_dir() {
            copy_tree(&path, &dest);
        } else if path.extension().is_none_or(|x| x != "lock") {
            std::fs::copy(&path, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
        }
    }
}

/// Copy into the workspace `dest` the example's prepared vectors: every image embedded by both
/// models and predicted by the person detector (`.curate/embeddings/` and `.curate/predictions/`),
/// so that tests whose subject is not embedding do not embed. `build` fills them on a fresh copy
/// of the example, once: the copy lives under the system's temporary folder, keyed by the
/// content of the example's config, manifest and models and by the `builder` program (its path,
/// size and time), so it is built again when any of them changes. Concurrent tests and test
/// processes take turns through a file lock.
pub fn copy_prepared_vectors(builder: &Path, build: impl FnOnce(&Path), dest: &Path) {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        let example = example_workspace();
        let mut h = blake3::Hasher::new();
        let mut files = vec![example.join("curate.toml"), example.join("manifest.parquet")];
        let mut models: Vec<PathBuf> = walkdir::WalkDir::new(example.join("models")).into_iter().flatten().filter(|e| e.file_type().is_file()).map(|e| e.into_path()).collect();
        models.sort();
        files.extend(models);
        for f in &files {
            h.update(f.strip_prefix(&example).unwrap_or(f).to_string_lossy().as_bytes());
            h.update(&std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display())));
        }
        let meta = std::fs::metadata(builder).unwrap_or_else(|e| panic!("{}: {e}", builder.display()));
        let time = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
        h.update(format!("{}\n{}\n{}", builder.display(), meta.len(), time.as_nanos()).as_bytes());
        h.finalize().to_hex().to_string()
    });
    let home = std::env::temp_dir().join("curate-test-vectors").join(&blake3::hash(builder.to_string_lossy().as_bytes()).to_hex()[..16]);
    std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("mkdir {}: {e}", home.display()));
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(home.join("lock")).expect("the prepared vectors' lock file");
    fs4::FileExt::lock(&lock).expect("lock the prepared vectors");
    let (ws, stamp) = (home.join("ws"), home.join("key"));
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(key.as_str()) {
        let _ = std::fs::remove_file(&stamp);
        if ws.exists() {
            std::fs::remove_dir_all(&ws).unwrap_or_else(|e| panic!("remove {}: {e}", ws.display()));
        }
        std::fs::create_dir(&ws).unwrap_or_else(|e| panic!("mkdir {}: {e}", ws.display()));
        copy_example(&ws);
        build(&ws);
        crate::atomic::write_atomic(&stamp, |f| std::io::Write::write_all(f, key.as_bytes()).map_err(|e| crate::error::CurateError::io(&stamp, e))).expect("the prepared vectors' key");
    }
    for kind in ["embeddings", "predictions"] {
        copy_tree(&ws.join(".curate").join(kind), &dest.join(".curate").join(kind));
    }
    let _ = fs4::FileExt::unlock(&lock);
}

/// A copy of the example workspace for one test, with its prepared vectors (built here by the
/// primitives themselves), in a temporary folder removed when it is dropped.
pub fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    copy_example(dir.path());
    let builder = std::env::current_exe().expect("the test program");
    let build = |ws: &Path| {
        let code = "let ds = open(); ds.embed(); ds.embed(\"vww\"); ds.predict(\"vww\");";
        let root = ws.canonicalize().expect("the copy");
        let workspace = Workspace::open(&root).expect("the copy opens");
        let ctx = Arc::new(Context::quiet(root, Some(Arc::new(workspace))));
        crate::sandbox::build_engine(&ctx, &Limits::default()).run(code).unwrap_or_else(|e| panic!("preparing the example's vectors: {e}"));
    };
    copy_prepared_vectors(&builder, build, dir.path());
    dir
}

fn eval_with(code: &str, limits: &Limits) -> Result<Dynamic, String> {
    let copy = example_copy();
    eval_in_with(copy.path(), code, limits)
}

/// Evaluate `code` and display the result as the REPL would.
pub fn eval(code: &str) -> String {
    match eval_with(code, &Limits::default()) {
        Ok(v) => crate::output::display_value(&v),
        Err(e) => panic!("`{code}` failed: {e}"),
    }
}

/// Evaluate `code`, which must fail; the error and its help, as text.
pub fn eval_err(code: &str) -> String {
    eval_err_with(code, &Limits::default())
}

pub fn eval_err_with(code: &str, limits: &Limits) -> String {
    match eval_with(code, limits) {
        Ok(v) => panic!("`{code}` should fail but gave {}", crate::output::display_value(&v)),
        Err(e) => e,
    }
}

/// Run every example of `p`, checking the result where the example states one.
pub fn check_examples(p: &Primitive) {
    assert!(!p.examples.is_empty(), "{} has no examples", p.name);
    for ex in p.examples {
        assert!(ex.code.contains(p.name), "an example of {} does not use it: {}", p.name, ex.code);
        let got = eval(ex.code);
        if let Some(want) = ex.result {
            assert_eq!(got, want, "example of {}: {}", p.name, ex.code);
        }
    }
}

/// The onnxruntime release the tests run against (the wheel's `capi/libonnxruntime.so`).
pub const ONNXRUNTIME_WHEEL: &str = "onnxruntime==1.32.0";

/// A Python with `packages` installed, for tests that need a real peer (onnxruntime's library,
/// say): a venv at `$CURATE_TEST_VENV`, else `~/.cache/curate-test-venv`, created with
/// `python3 -m venv` and filled from PyPI on first use, and reused after. Concurrent tests
/// take turns through a file lock. Panics with what failed: a test that needs the peer must
/// not pass without it.
pub fn python_with(packages: &[&str]) -> PathBuf {
    let venv = std::env::var_os("CURATE_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        home.join(".cache/curate-test-venv")
    });
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent).expect("the test venv's folder");
    }
    let lock_path = venv.with_extension("lock");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).expect("the test venv's lock file");
    fs4::FileExt::lock(&lock).expect("lock the test venv");
    let python = venv.join("bin/python");
    let run = |cmd: &mut std::process::Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
        assert!(out.status.success(), "{what} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    };
    if !python.is_file() {
        run(std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv (the tests need Python 3 with venv)");
    }
    let installed = |spec: &str| {
        let (name, version) = spec.split_once("==").unwrap_or((spec, ""));
        std::process::Command::new(&python)
            .args(["-c", &format!("import importlib.metadata as m, sys; v = m.version('{name}'); sys.exit(0 if '{version}' in ('', v) else 1)")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        run(std::process::Command::new(&python).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(&missing), &format!("pip install {}", missing.join(" ")));
    }
    let _ = fs4::FileExt::unlock(&lock);
    python
}

/// The executable `bin` of the npm package `spec` (`name@version`), for tests that need a real
/// peer written in JavaScript (Azurite, the Azure Storage emulator): installed with `npm` into
/// `$CURATE_TEST_NODE`, else `~/.cache/curate-test-node`, on first use and reused after.
/// Concurrent tests take turns through a file lock. Panics with what failed.
pub fn node_package(bin: &str, spec: &str) -> PathBuf {
    let dir = std::env::var_os("CURATE_TEST_NODE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        home.join(".cache/curate-test-node")
    });
    std::fs::create_dir_all(&dir).expect("the test node folder");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.with_extension("lock")).expect("the test node lock file");
    fs4::FileExt::lock(&lock).expect("lock the test node folder");
    let (name, version) = spec.rsplit_once('@').unwrap_or((spec, ""));
    let manifest = dir.join("node_modules").join(name).join("package.json");
    let current = std::fs::read_to_string(&manifest).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()).and_then(|v| v["version"].as_str().map(str::to_string));
    if current.as_deref() != Some(version) {
        let out = std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(spec)
            .output()
            .unwrap_or_else(|e| panic!("npm install {spec}: cannot run npm (the tests need Node.js with npm): {e}"));
        assert!(out.status.success(), "npm install {spec} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    let _ = fs4::FileExt::unlock(&lock);
    let path = dir.join("node_modules/.bin").join(bin);
    assert!(path.is_file(), "npm installed {spec} but there is no {}", path.display());
    path
}

/// The onnxruntime shared library from the test venv's wheel.
pub fn onnxruntime_library() -> PathBuf {
    let python = python_with(&[ONNXRUNTIME_WHEEL]);
    let out =
        std::process::Command::new(&python).args(["-c", "import os, onnxruntime; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"]).output().expect("the test venv's python runs");
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::read_dir(&dir)
        .expect("onnxruntime's capi folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so")))
        .unwrap_or_else(|| panic!("no libonnxruntime.so in {}", dir.display()))
}

// Examples that write (edits, exports, augmented images, caches) run in a copy of the example
// workspace, so no test writes into the checkout.

/// A fresh copy of the example workspace in a temporary folder, without its caches
/// (`.curate/`) and exports: what a new user who cloned the repository has.
pub fn example_workspace_copy() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("curate-example-").tempdir().expect("a temporary folder");
    copy_example(dir.path());
    dir
}

/// Evaluate `code` on a fresh session over the workspace at `root`.
pub fn eval_in(root: &std::path::Path, code: &str) -> Result<Dynamic, String> {
    eval_in_with(root, code, &Limits::default())
}

fn eval_in_with(root: &Path, code: &str, limits: &Limits) -> Result<Dynamic, String> {
    let root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
    let ws = Workspace::open(&root).map_err(|e| e.to_string())?;
    let ctx = Arc::new(Context::quiet(root, Some(Arc::new(ws))));
    crate::sandbox::build_engine(&ctx, limits).eval::<Dynamic>(code).map_err(|e| match crate::error::find_curate_error(&e) {
        Some(ce) => format!("{ce}\nhelp: {}", ce.help_str().unwrap_or_default()),
        None => e.to_string(),
    })
}

/// Run every example of `p` in one fresh copy of the example workspace, in order, each on a
/// new session, checking the result where the example states one. The examples of one
/// primitive share the copy (and so its caches), so each must state what it depends on. The
/// copy starts with the example's prepared vectors ([`example_copy`]).
pub fn check_examples_in_copy(p: &Primitive) {
    assert!(!p.examples.is_empty(), "{} has no examples", p.name);
    let copy = example_copy();
    for ex in p.examples {
        assert!(ex.code.contains(p.name), "an example of {} does not use it: {}", p.name, ex.code);
        let got = match eval_in(copy.path(), ex.code) {
            Ok(v) => crate::output::display_value(&v),
            Err(e) => panic!("example of {} failed: {}\n{e}", p.name, ex.code),
        };
        if let Some(want) = ex.result {
            assert_eq!(got, want, "example of {}: {}", p.name, ex.code);
        }
    }
}
