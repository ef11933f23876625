//! The command line: the clap definitions and the dispatch; each command is a file of its own,
//! which calls the stdlib's operations and renders what they return. With no command, the REPL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use curate_stdlib::import::{CocoOptions, ImportFormat, ImportOptions};
use curate_stdlib::progress::CancelFlag;
use curate_stdlib::{CurateError, Dataset, Workspace};

use crate::diagnostic::render;
use crate::run::{color, RunOptions};

mod dedupe;
mod diff;
mod embed;
mod import;
mod import_embeddings;
mod index;
mod init;
mod jupyter;
mod log;
mod merge;
mod predict;
pub mod test;

#[derive(Parser, Debug)]
#[command(name = "curate", version, about = "Curate computer-vision training data: a REPL, scripts and data unit tests")]
pub struct Cli {
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
    /// Run every model with this runtime, whatever curate.toml says (also CURATE_RUNTIME).
    /// onnxruntime is found through ORT_DYLIB_PATH or the Python package `onnxruntime`.
    #[arg(long, global = true, value_parser = ["tract", "onnxruntime"])]
    pub runtime: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a workspace: curate.toml, an empty manifest, scripts/, tests/ and a .gitignore.
    Init {
        /// The folder to create it in (the current one by default).
        dir: Option<PathBuf>,
        /// The dataset's name (the folder's name by default).
        #[arg(long)]
        name: Option<String>,
    },
    /// Build the manifest from an image folder, a CSV, JSONL or Parquet table, or COCO JSON; or
    /// from a prefix in object storage (s3://bucket/photos/, gs://, az://, http(s)://).
    Import {
        /// The folder, file or object-store prefix to import.
        source: PathBuf,
        /// The source format (detected from the source by default).
        #[arg(long, value_parser = ["folder", "csv", "jsonl", "parquet", "coco"])]
        format: Option<String>,
        /// Set this split on every imported sample.
        #[arg(long)]
        split: Option<String>,
        /// Prefix every derived id, to keep two sources apart.
        #[arg(long)]
        id_prefix: Option<String>,
        /// Add to the existing manifest instead of replacing it.
        #[arg(long)]
        append: bool,
        /// COCO: the folder holding the images (the JSON's folder by default).
        #[arg(long)]
        images: Option<PathBuf>,
        /// COCO: the category that makes an image a person image.
        #[arg(long, default_value = "person")]
        person_category: String,
        /// COCO: the smallest person box, as a fraction of the image area (VWW uses 0.005).
        #[arg(long, default_value_t = 0.005)]
        min_person_area: f64,
        /// Scan only shard I of N of the images (by id), e.g. --shard 0/4, one per machine, and
        /// keep the scan in .curate/scan/; the same import without --shard then writes the
        /// manifest, reading only what no shard scanned.
        #[arg(long, value_name = "I/N", conflicts_with = "append")]
        shard: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compute and cache embeddings for every image in the manifest (only what is missing).
    Embed {
        /// The model, as declared in curate.toml (the only embedding model by default).
        #[arg(long)]
        model: Option<String>,
        /// Take only shard I of N (by content hash), e.g. --shard 0/4, to spread work over machines.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bring the cached embeddings and predictions of other workspaces (shards run on machines
    /// that share no filesystem) into this one, then merge them into its stores.
    Merge {
        /// The shard workspaces (only read).
        #[arg(required = true)]
        workspaces: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Feed vectors computed elsewhere into a model's vector store: Parquet or Arrow files with an
    /// `id` or `hash` column and one vector column, or .npy files with --ids.
    ImportEmbeddings {
        /// The files to import (each is read and checked before anything is written).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The model the vectors belong to, as declared in curate.toml (the only embedding model by default).
        #[arg(long)]
        model: Option<String>,
        /// For .npy: a table (.csv, .parquet, .jsonl, or .txt with one id per line) of each row's id, in order.
        #[arg(long, value_name = "FILE")]
        ids: Option<PathBuf>,
        /// The vector column, when a table has several.
        #[arg(long)]
        column: Option<String>,
        /// Take only shard I of N (by content hash), e.g. --shard 0/4; the next command merges the shards' parts.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Near-duplicates of the whole manifest (exact copies, then near ones by embedding and
    /// perceptual hash), as `open().duplicates()` finds them; with --shard, one shard of the
    /// heavy stage (nearest neighbours and perceptual hashes) for a later run to read.
    Dedupe {
        /// The embedding model, as declared in curate.toml (the only embedding model by default).
        #[arg(long)]
        model: Option<String>,
        /// Compute only shard I of N (by content hash), e.g. --shard 0/4, one per machine; once
        /// a whole set is saved, `curate dedupe` and `duplicates()` read it.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Print the report (and every duplicate) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Jupyter: install the curate kernel (then pick "curate" in JupyterLab, VS Code or
    /// nbclient), or run it as Jupyter does.
    Jupyter {
        #[command(subcommand)]
        command: JupyterCommand,
    },
    /// Build the ANN index over a model's vectors and save it beside them. `similar` uses it while
    /// the vectors are unchanged; without it, searches are exact.
    Index {
        /// The model, as declared in curate.toml (the only embedding model by default).
        #[arg(long)]
        model: Option<String>,
        /// cosine (default) or l2.
        #[arg(long, default_value = "cosine", value_parser = ["cosine", "l2"])]
        metric: String,
        /// usearch (HNSW, f16), ivf (k-means lists searched exactly) or hnsw (instant-distance,
        /// pure Rust). By default chosen by the number of vectors (usearch below 200,000, ivf
        /// from there; see the README), also when an index grows.
        #[arg(long, value_parser = ["usearch", "ivf", "hnsw"])]
        backend: Option<String>,
        /// Index only shard I of N of the vectors (by content hash), e.g. --shard 0/4, one per
        /// machine; once every shard's index is built, `similar` searches them all and merges.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a model with `scores` over every image in the manifest (only what is not cached) and
    /// optionally write the predictions: id, pred_label, pred_score and p_<class> per sample.
    Predict {
        /// The model, as declared in curate.toml (`[test] model`, else the only model with `scores`).
        #[arg(long)]
        model: Option<String>,
        /// Write the predictions to this .csv, .parquet or .jsonl file (what `curate test --predictions` and `load_predictions` read).
        #[arg(long, value_name = "FILE", conflicts_with = "shard")]
        out: Option<PathBuf>,
        /// Take only shard I of N (by content hash), e.g. --shard 0/4; the next command merges the shards' parts.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the workspace's data unit tests (tests/*.rhai) on a model's predictions. Exit code 0
    /// when all pass, 1 when any fails or errors, 2 when the suite cannot run.
    Test {
        /// Run only the tests whose name contains this.
        pattern: Option<String>,
        /// The model to predict with (the only model with `scores` by default).
        #[arg(long)]
        model: Option<String>,
        /// Test these predictions (CSV, JSONL or Parquet with id and p_<class> or pred_label) instead of a model's.
        #[arg(long, value_name = "FILE")]
        predictions: Option<String>,
        /// The run that `no_drop(δ)` rules compare with: a run id, `latest`, `previous` or a run's JSON file.
        #[arg(long, value_name = "RUN")]
        baseline: Option<String>,
        /// Also write JUnit XML here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Print the run as JSON.
        #[arg(long)]
        json: bool,
        /// List the failing samples of each failing test, and draw them as a contact sheet.
        #[arg(long)]
        explain: bool,
        /// Also write the run as an .html or .md report: the summary, a pass/fail chart, and the failing samples of each failing test as pictures.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Compare two recorded runs instead (ids, `latest`, `previous` or files): what B fixes and breaks. Exit code 1 when B breaks a test.
        #[arg(long, num_args = 2, value_names = ["RUN_A", "RUN_B"])]
        compare: Option<Vec<String>>,
    },
    /// List the edit log (edits.jsonl): every relabel, removal, tag, weight and checkpoint.
    Log {
        /// Print the entries as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Summarise what changed between two states: edit counts, checkpoint names, `manifest` or `current`.
    Diff {
        /// The earlier state (e.g. `manifest`, `3`, `v7`).
        a: String,
        /// The later state (`current` by default).
        #[arg(default_value = "current")]
        b: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Open the interactive REPL on the workspace.
    Repl {
        /// Do not ask before an edit touches more than 100 samples.
        #[arg(long)]
        yes: bool,
    },
    /// Run a script headlessly. Exit code 0 on success, 1 on a failed assertion, 2 on an error.
    Run {
        /// The .rhai script, or a Jupyter notebook (.ipynb) whose code cells run as its cells.
        script: PathBuf,
        /// A parameter the script reads with `param("k", default)`; repeatable.
        #[arg(long = "param", value_name = "K=V", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Print outputs, the result or the error as one JSON document.
        #[arg(long)]
        json: bool,
        /// Also write every cell's source and outputs (tables, charts, grids) to this .html or .md file.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum JupyterCommand {
    /// Write the kernelspec `kernels/curate/kernel.json` (for the user by default).
    Install {
        /// In the user's Jupyter data folder ($JUPYTER_DATA_DIR, else ~/.local/share/jupyter).
        #[arg(long, conflicts_with_all = ["sys_prefix", "prefix"])]
        user: bool,
        /// In the active Python environment (VIRTUAL_ENV, CONDA_PREFIX, else python3's sys.prefix).
        #[arg(long, conflicts_with = "prefix")]
        sys_prefix: bool,
        /// Under PREFIX/share/jupyter.
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<PathBuf>,
        /// The kernel's name (its folder).
        #[arg(long, default_value = "curate")]
        name: String,
        /// The name notebooks show.
        #[arg(long, default_value = "curate")]
        display_name: String,
    },
    /// Run the kernel on a connection file (Jupyter starts it so, from the kernelspec); its
    /// workspace is the one containing the current folder, which Jupyter sets to the notebook's.
    Kernel {
        /// The connection file Jupyter wrote (ports and key).
        #[arg(long, short = 'f', value_name = "FILE")]
        connection_file: PathBuf,
    },
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected K=V, got `{s}`")),
    }
}

/// Ctrl-C sets the cancel flag so that long work stops cleanly; a second Ctrl-C exits at once.
fn install_interrupt_handler(cancel: &CancelFlag) {
    let flag = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.is_set() {
            std::process::exit(130);
        }
        flag.cancel();
    });
}

/// Parse the command line, run it and return the exit code.
pub fn main() -> u8 {
    let cli = Cli::parse();
    if let Some(r) = cli.runtime.as_deref().and_then(|r| curate_stdlib::model::Runtime::parse(r).ok()) {
        curate_stdlib::model::set_runtime_override(r);
    }
    let dir = cli.chdir.clone().unwrap_or_else(|| PathBuf::from("."));
    let cancel = CancelFlag::default();
    install_interrupt_handler(&cancel);
    match cli.command {
        None => crate::repl::run(&dir, cancel, false),
        Some(Command::Repl { yes }) => crate::repl::run(&dir, cancel, yes),
        Some(Command::Run { script, params, json, report }) => {
            let script = if script.is_absolute() || cli.chdir.is_none() { script } else { dir.join(script) };
            let report = report.map(|r| if r.is_absolute() { r } else { dir.join(r) });
            crate::run::run(&dir, &RunOptions { script, explicit_dir: cli.chdir.is_some(), params, json, report }, cancel)
        }
        Some(Command::Init { dir: target, name }) => init::run(&target.map(|t| dir.join(t)).unwrap_or(dir), name.as_deref()),
        Some(Command::Test { pattern, model, predictions, baseline, junit, json, explain, report, compare }) => match compare {
            Some(runs) => test::compare(&dir, &runs[0], &runs[1], json),
            None => {
                let report = report.map(|r| if r.is_absolute() { r } else { dir.join(r) });
                test::run_tests(&dir, &test::TestOptions { pattern, model, predictions, baseline, junit, json, explain, report }, cancel)
            }
        },
        Some(Command::Log { json }) => log::run(&dir, json),
        Some(Command::Diff { a, b, json }) => diff::run(&dir, &a, &b, json),
        Some(Command::Predict { model, out, shard, json }) => {
            let out = out.map(|o| if o.is_absolute() { o } else { dir.join(o) });
            predict::run(&dir, model.as_deref(), out.as_deref(), shard.as_deref(), json, cancel)
        }
        Some(Command::ImportEmbeddings { files, model, ids, column, shard, json }) => {
            let abs = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
            let files: Vec<PathBuf> = files.into_iter().map(abs).collect();
            import_embeddings::run(&dir, &files, model.as_deref(), ids.map(abs).as_deref(), column.as_deref(), shard.as_deref(), json, cancel)
        }
        Some(Command::Merge { workspaces, json }) => {
            let abs = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
            let sources: Vec<PathBuf> = workspaces.into_iter().map(abs).collect();
            merge::run(&dir, &sources, json, cancel)
        }
        Some(Command::Index { model, metric, backend, shard, json }) => index::run(&dir, model.as_deref(), &metric, backend.as_deref(), shard.as_deref(), json, cancel),
        Some(Command::Dedupe { model, shard, json }) => dedupe::run(&dir, model.as_deref(), shard.as_deref(), json, cancel),
        Some(Command::Jupyter { command: JupyterCommand::Kernel { connection_file } }) => {
            let file = if connection_file.is_absolute() { connection_file } else { dir.join(connection_file) };
            crate::jupyter::kernel(&file, &dir, cancel)
        }
        Some(Command::Jupyter { command: JupyterCommand::Install { user: _, sys_prefix, prefix, name, display_name } }) => {
            let target = match (sys_prefix, prefix) {
                (true, _) => crate::jupyter::Target::SysPrefix,
                (false, Some(p)) => crate::jupyter::Target::Prefix(if p.is_absolute() { p } else { dir.join(p) }),
                (false, None) => crate::jupyter::Target::User,
            };
            jupyter::install(&target, &name, &display_name)
        }
        Some(Command::Embed { model, shard, json }) => embed::run(&dir, model.as_deref(), shard.as_deref(), json, cancel),
        Some(Command::Import { source, format, split, id_prefix, append, images, person_category, min_person_area, shard, json }) => {
            let shard = match parse_shard(shard.as_deref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let opts = ImportOptions { shard, format: format.as_deref().and_then(ImportFormat::parse), split, id_prefix, append, coco: CocoOptions { images, person_category, min_person_area } };
            let remote = source.to_str().is_some_and(curate_stdlib::objects::is_url);
            let source = if source.is_absolute() || remote { source } else { dir.join(source) };
            import::run(&dir, &source, &opts, json, cancel)
        }
    }
}

/// The current view of the workspace containing `dir` (the manifest with the edit log
/// replayed), as a script's `open()` gives it.
fn open_dataset(dir: &Path) -> Result<Dataset, CurateError> {
    let ws = match Workspace::discover(dir) {
        Ok(ws) => Arc::new(ws),
        // Named by its full path, as a session outside a workspace names its root.
        Err(CurateError::NotAWorkspace { .. }) => return Err(CurateError::NotAWorkspace { path: dir.canonicalize().map_err(|e| CurateError::io(dir, e))? }),
        Err(e) => return Err(e),
    };
    let view = ws.open_view()?;
    // A view that could not be saved costs the next open a replay, nothing else; these
    // commands have never shown that warning.
    let _ = ws.take_warning();
    Dataset::new(ws, view)
}

/// `--shard I/N`, or the exit code of its error (rendered as every argument error is).
fn parse_shard(shard: Option<&str>) -> Result<Option<curate_stdlib::embed::Shard>, u8> {
    shard.map(curate_stdlib::embed::Shard::parse).transpose().map_err(|message| fail(&CurateError::arg("--shard", message)))
}

/// Render `e` on stderr; the exit code is 130 for an interruption, else 2.
fn fail(e: &CurateError) -> u8 {
    eprint!("{}", render(e, color()));
    match e {
        CurateError::Interrupted => 130,
        _ => 2,
    }
}
