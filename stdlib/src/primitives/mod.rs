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
pub mod ids;
pub mod influence;
pub mod label_issues;
pub mod len;
pub mod open;
pub mod outliers;
pub mod param;
pub mod plot;
pub mod predict;
pub mod reference;
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
    /// What operations may use of this session.
    pub fn services(&self) -> crate::services::Services<'_> {
        crate::services::Services { registry: &self.registry, progress: self.progress.as_ref(), notify: &*self.sink }
    }

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

/// One key of a primitive's options map (`#{k: 10}`), as `:help` lists it.
pub struct Opt {
    pub name: &'static str,
    /// What an absent key means, as a script would write it (`10`, `"margin"`), or a phrase.
    pub default: &'static str,
    pub help: &'static str,
}

/// The documentation of a script function: `:help`, completion, highlighting,
/// docs/primitives.md and the example tests read it. Every function the engine registers has
/// one (`registered_functions_are_documented` checks it), under the name scripts call.
pub struct Primitive {
    pub name: &'static str,
    pub signatures: &'static [&'static str],
    pub summary: &'static str,
    /// The keys of its options map, if it takes one; the parser's keys and these are the same
    /// set (`documented_options_are_the_parsers_keys`).
    pub options: &'static [Opt],
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
    &classify::SAVE_DOC,
    &classify::FIT_DOC,
    &influence::DOC,
    &influence::SELF_DOC,
    &label_issues::DOC,
    &label_issues::CONFUSION_DOC,
    &label_issues::METRICS_DOC,
    &checks::DOC,
    &checks::PREDICTIONS_DOC,
    &checks::RECALL_DOC,
    &checks::PRECISION_DOC,
    &checks::FPR_DOC,
    &checks::ACCURACY_DOC,
    &checks::MEAN_SCORE_DOC,
    &checks::COUNT_DOC,
    &checks::MIN_COUNT_DOC,
    &checks::EVERY_PREDICTED_DOC,
    &checks::NONE_PREDICTED_DOC,
    &checks::NO_DROP_DOC,
    &edit::DOC,
    &edit::REMOVE_DOC,
    &edit::RESTORE_DOC,
    &edit::TAG_DOC,
    &edit::UNTAG_DOC,
    &edit::SET_DOC,
    &edit::WEIGHT_DOC,
    &edit::OVERSAMPLE_DOC,
    &edit::BALANCE_DOC,
    &edit::CHECKPOINT_DOC,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The script functions the sandboxed engine has beyond Rhai's standard packages, by name:
    /// what a script can call. Operators, getters and setters (`get$x`), and `to_string` /
    /// `to_debug` (how values display) are not functions a user looks up.
    fn registered_names() -> BTreeSet<String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = Arc::new(Context::quiet(dir.path().to_path_buf(), None));
        let engine = crate::sandbox::build_engine(&ctx, &crate::config::Limits::default());
        engine
            .collect_fn_metadata(None, |f| Some(f.metadata.name.to_string()), false)
            .into_iter()
            .filter(|n| n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .filter(|n| !matches!(n.as_str(), "to_string" | "to_debug"))
            .collect()
    }

    #[test]
    fn registered_functions_are_documented() {
        let registered = registered_names();
        assert!(registered.len() >= ALL.len(), "the engine registers too few functions: {registered:?}");
        let documented: BTreeSet<String> = ALL.iter().map(|p| p.name.to_string()).collect();
        assert_eq!(documented.len(), ALL.len(), "a name is documented twice");
        let undocumented: Vec<&String> = registered.difference(&documented).collect();
        let unregistered: Vec<&String> = documented.difference(&registered).collect();
        assert!(
            undocumented.is_empty() && unregistered.is_empty(),
            "registered without a doc entry (add a `Primitive` to primitives::ALL): {undocumented:?}; documented but not registered: {unregistered:?}"
        );
    }

    #[test]
    fn every_doc_is_complete() {
        for p in ALL {
            assert!(!p.signatures.is_empty(), "{} has no signature", p.name);
            assert!(!p.summary.trim().is_empty(), "{} has no summary", p.name);
            assert!(!p.examples.is_empty(), "{} has no example", p.name);
            for sig in p.signatures {
                assert!(sig.contains(p.name), "a signature of {} does not name it: {sig}", p.name);
            }
            // A function that takes an options map lists its keys, and only such a function.
            let takes_map = p.signatures.iter().any(|s| s.contains("#{"));
            assert_eq!(takes_map, !p.options.is_empty(), "{}: options listed {} but a signature with #{{...}} {}", p.name, !p.options.is_empty(), takes_map);
            for o in p.options {
                assert!(!o.default.is_empty() && !o.help.is_empty(), "{}: option {} needs a default and a help", p.name, o.name);
            }
        }
    }

    fn keys(p: &Primitive) -> BTreeSet<&'static str> {
        p.options.iter().map(|o| o.name).collect()
    }

    fn set(keys: &[&'static str]) -> BTreeSet<&'static str> {
        keys.iter().copied().collect()
    }

    /// The documented options and the keys each parser accepts are the same set, so `:help`
    /// cannot list an option that is refused, or miss one that is taken.
    #[test]
    fn documented_options_are_the_parsers_keys() {
        use crate::options::Options;
        let chart = |name: &str| set(plot::CHART_KEYS.iter().find(|(f, _)| *f == name).map(|(_, k)| *k).unwrap_or(&[]));
        let pairs: Vec<(&Primitive, BTreeSet<&'static str>)> = vec![
            (&open::DOC, set(open::KEYS)),
            (&sample::DOC, set(sample::SampleOptions::KEYS)),
            (&duplicates::DOC, set(duplicates::DuplicatesOptions::KEYS)),
            (&similar::DOC, set(similar::SimilarOptions::KEYS)),
            (&classify::DOC, set(classify::CLASSIFY_KEYS)),
            (&classify::FIT_DOC, set(classify::FitOptions::KEYS)),
            (&influence::DOC, set(influence::InfluenceOptions::KEYS)),
            (&label_issues::DOC, set(label_issues::IssueOptions::KEYS)),
            (&label_issues::CONFUSION_DOC, set(label_issues::PairOptions::KEYS)),
            (&label_issues::METRICS_DOC, set(label_issues::PairOptions::KEYS)),
            (&edit::BALANCE_DOC, set(edit::BALANCE_KEYS)),
            (&export::DOC, set(export::ExportOptions::KEYS)),
            (&augment::DOC, set(augment::KEYS)),
            (&plot::GRID_DOC, set(plot::GridOptions::KEYS)),
            (&plot::HIST_DOC, chart("plot_hist")),
            (&plot::COUNTS_DOC, chart("plot_counts")),
            (&plot::CONFUSION_PLOT_DOC, chart("plot_confusion")),
            (&plot::PR_DOC, chart("plot_pr")),
            (&plot::EMBEDDING_DOC, set(plot::EmbeddingOptions::KEYS)),
        ];
        for (doc, parser) in &pairs {
            assert_eq!(&keys(doc), parser, "{}: the documented options differ from the parser's keys", doc.name);
        }
        // self_influence parses influence's options and uses these.
        assert!(keys(&influence::SELF_DOC).is_subset(&set(influence::InfluenceOptions::KEYS)));
        // Every documented options list is checked above.
        for p in ALL.iter().filter(|p| !p.options.is_empty() && p.name != "self_influence") {
            assert!(pairs.iter().any(|(d, _)| d.name == p.name), "{} documents options that no parser's keys are checked against", p.name);
        }
    }
}
