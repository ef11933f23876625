//! The dataset primitives. One file each: a module doc, a pure-Rust function (frames in, frames
//! out), a thin Rhai wrapper, and a `DOC` entry whose examples run as tests and feed `:help`.

use std::path::PathBuf;
use std::sync::Arc;

use rhai::Engine;

use crate::progress::CancelFlag;
use crate::workspace::Workspace;

pub mod assert;
pub mod augment;
pub mod checks;
pub mod classify;
pub mod col;
pub mod duplicates;
pub mod edit;
pub mod embed;
pub mod export;
pub mod filter;
pub mod get;
pub mod group_count;
pub mod head;
pub mod influence;
pub mod label_issues;
pub mod ids;
pub mod len;
pub mod open;
pub mod outliers;
pub mod param;
pub mod plot;
pub mod predict;
pub mod sample;
pub mod show;
pub mod similar;

/// What every primitive can reach: the session's root (the sandbox), its workspace if there is
/// one, the script parameters and the cancel flag.
pub struct Context {
    pub root: PathBuf,
    pub workspace: Option<Arc<Workspace>>,
    pub params: rhai::Map,
    pub cancel: CancelFlag,
    /// Where `print` and `show` send their outputs; the front end renders them.
    pub sink: Sink,
    /// Progress and cancellation for long primitives (embedding, index builds).
    pub progress: Arc<dyn crate::progress::Progress>,
    /// Models, embeddings and indexes, loaded once per session.
    pub registry: crate::vectors::Registry,
    /// Data unit tests declared by the scripts, and what `curate test` runs them against.
    pub tests: checks::TestState,
    /// The script (path) or cell ("repl#N") being evaluated, for the edit log.
    pub source_name: std::sync::Mutex<String>,
    /// Asks the user before an edit touches more than `confirm_over` samples (the REPL sets it;
    /// headless runs have none).
    pub confirm: std::sync::Mutex<Option<Confirm>>,
    pub confirm_over: usize,
}

/// A yes/no question to the user.
pub type Confirm = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Receives outputs as a script produces them.
pub type Sink = Arc<dyn Fn(crate::output::Output) + Send + Sync>;

impl Context {
    /// A context that drops every output, for tests and tools.
    pub fn quiet(root: PathBuf, workspace: Option<Arc<Workspace>>) -> Self {
        Context {
            root,
            workspace,
            params: rhai::Map::new(),
            cancel: CancelFlag::default(),
            sink: Arc::new(|_| {}),
            progress: Arc::new(crate::progress::Silent),
            registry: Default::default(),
            tests: Default::default(),
            source_name: Default::default(),
            confirm: Default::default(),
            confirm_over: 100,
        }
    }
}

/// One runnable example: the code and, where it is deterministic, the displayed result.
pub struct Example {
    pub code: &'static str,
    pub result: Option<&'static str>,
}

/// The documentation of a primitive: `:help`, completion and the example tests read it.
pub struct Primitive {
    pub name: &'static str,
    pub signatures: &'static [&'static str],
    pub summary: &'static str,
    pub examples: &'static [Example],
}

/// Every primitive, in the order `:help` lists them.
pub const ALL: &[&Primitive] = &[
    &open::DOC,
    &len::DOC,
    &head::DOC,
    &filter::DOC,
    &col::DOC,
    &sample::DOC,
    &group_count::DOC,
    &ids::DOC,
    &get::DOC,
    &param::DOC,
    &assert::DOC,
    &show::DOC,
    &embed::DOC,
    &similar::DOC,
    &duplicates::DOC,
    &outliers::DOC,
    &predict::DOC,
    &predict::LOAD_DOC,
    &classify::DOC,
    &classify::SCORE_DOC,
    &classify::PROBE_DOC,
    &classify::FIT_DOC,
    &influence::DOC,
    &influence::SELF_DOC,
    &label_issues::DOC,
    &label_issues::CONFUSION_DOC,
    &label_issues::METRICS_DOC,
    &checks::DOC,
    &edit::DOC,
    &export::DOC,
    &augment::DOC,
    &plot::GRID_DOC,
    &plot::HIST_DOC,
    &plot::COUNTS_DOC,
    &plot::CONFUSION_PLOT_DOC,
    &plot::PR_DOC,
    &plot::EMBEDDING_DOC,
];

pub fn find(name: &str) -> Option<&'static Primitive> {
    ALL.iter().copied().find(|p| p.name == name)
}

/// Register every primitive on `engine`.
pub fn register_all(engine: &mut Engine, ctx: &Arc<Context>) {
    engine.register_type_with_name::<crate::Dataset>("Dataset");
    engine.register_type_with_name::<crate::CurateError>("Error");
    engine.register_fn("to_string", |e: &mut crate::CurateError| e.to_string());
    engine.register_fn("to_string", |ds: &mut crate::Dataset| crate::output::display_value(&rhai::Dynamic::from(ds.clone())));
    engine.register_fn("to_debug", |ds: &mut crate::Dataset| format!("{ds:?}"));
    open::register(engine, ctx);
    len::register(engine);
    head::register(engine);
    filter::register(engine);
    col::register(engine);
    sample::register(engine);
    group_count::register(engine);
    ids::register(engine);
    get::register(engine);
    param::register(engine, ctx);
    assert::register(engine);
    show::register(engine, ctx);
    embed::register(engine, ctx);
    similar::register(engine, ctx);
    duplicates::register(engine, ctx);
    outliers::register(engine, ctx);
    predict::register(engine, ctx);
    classify::register(engine, ctx);
    label_issues::register(engine, ctx);
    influence::register(engine, ctx);
    checks::register(engine, ctx);
    edit::register(engine, ctx);
    export::register(engine, ctx);
    augment::register(engine, ctx);
    plot::register(engine, ctx);
}
