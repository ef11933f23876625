//! The `Test` builder: each test gets a fresh temporary directory, runs the real `curate` binary
//! in it and inspects exit code, stdout and stderr (just's and ripgrep's pattern).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example_dir() -> PathBuf {
    repo().join("examples/people")
}

pub struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    stdin: Option<String>,
    envs: Vec<(String, String)>,
}

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    /// An empty directory.
    pub fn new() -> Self {
        Test { dir: tempfile::tempdir().expect("tempdir"), args: vec![], stdin: None, envs: vec![] }
    }

    /// A copy of the example workspace's config and manifest, with its media and models linked
    /// in, and its prepared vectors: every image already embedded by both models and predicted by
    /// the person detector, so a test that is not about embedding does not embed.
    pub fn example() -> Self {
        let t = Self::example_without_vectors();
        curate_stdlib::testing::copy_prepared_vectors(Path::new(env!("CARGO_BIN_EXE_curate")), prepare_vectors, t.path());
        t
    }

    /// The example workspace as `example` gives it, but with nothing embedded yet: for the tests
    /// whose subject is embedding (or predicting), which count what a run computes.
    pub fn example_without_vectors() -> Self {
        let t = Self::new();
        for f in ["curate.toml", "manifest.parquet", "samples.csv"] {
            std::fs::copy(example_dir().join(f), t.path().join(f)).expect("copy example file");
        }
        std::fs::create_dir(t.path().join("scripts")).expect("mkdir scripts");
        #[cfg(unix)]
        for linked in ["media", "models"] {
            std::os::unix::fs::symlink(example_dir().join(linked), t.path().join(linked)).expect("link media and models");
        }
        t
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(self, rel: &str, contents: &str) -> Self {
        let p = self.path().join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(p, contents).expect("write");
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn stdin(mut self, s: &str) -> Self {
        self.stdin = Some(s.to_string());
        self
    }

    /// Set an environment variable for every run of this test.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    pub fn run(&self) -> Outcome {
        self.run_with(&self.args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Run with these arguments instead of the builder's, keeping the test usable afterwards.
    pub fn run_with(&self, args: &[&str]) -> Outcome {
        self.spawn(args, self.stdin.as_deref())
    }

    /// Run with these arguments and this standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Outcome {
        self.spawn(args, Some(stdin))
    }

    fn spawn(&self, args: &[&str], input: Option<&str>) -> Outcome {
        let mut cmd = curate(args, self.path());
        cmd.envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn curate");
        {
            let mut stdin = child.stdin.take().expect("stdin");
            if let Some(s) = input {
                stdin.write_all(s.as_bytes()).expect("write stdin");
            }
        }
        let out = child.wait_with_output().expect("wait");
        Outcome { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
    }
}

/// The `curate` binary with these arguments, in `dir`, without colour, and with the runtime and
/// where onnxruntime comes from left to the test to say.
fn curate(args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_curate"));
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1").env("CI", "true").env_remove("CURATE_RUNTIME").env_remove("ORT_DYLIB_PATH").env_remove("CURATE_PYTHON");
    cmd
}

/// Fill the example workspace at `ws` with its vectors, through the binary under test: the
/// MobileNetV2 embeddings, and the person detector's embeddings and predictions.
fn prepare_vectors(ws: &Path) {
    for args in [&["embed"][..], &["embed", "--model", "vww"], &["predict", "--model", "vww"]] {
        let out = curate(args, ws).stdin(Stdio::null()).output().expect("run curate");
        assert!(out.status.success(), "preparing the example's vectors: curate {} failed:\n{}{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
}

impl Outcome {
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "wrong exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Every embedding the workspace stores, by content hash, after merging the parts runs left (what
/// the next use does), and how many rows its stores hold (more than the hashes if one is twice).
pub fn stored_embeddings(t: &Test) -> (usize, std::collections::HashMap<String, Vec<f32>>) {
    let mut rows = 0;
    let mut out = std::collections::HashMap::new();
    for entry in std::fs::read_dir(t.path().join(".curate/embeddings")).expect("embeddings dir") {
        let dir = entry.expect("entry").path();
        curate_stdlib::store::compact(&dir, curate_stdlib::store::Layout::EMBEDDINGS).expect("compaction");
        let store = curate_stdlib::store::Store::open(&dir).expect("store opens");
        rows += store.rows();
        for (h, row) in store.entries().expect("hash table") {
            out.insert(h, store.raw_row(row as usize));
        }
    }
    (rows, out)
}
