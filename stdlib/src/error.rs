//! The one error type of the stdlib. Every variant has a stable code and, where it helps, a hint.
//!
//! Errors cross the Rhai boundary as `EvalAltResult::ErrorRuntime(Dynamic(CurateError))`, so the
//! front end can downcast them back and render the code and help beside the script's caret.

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use rhai::{Dynamic, EvalAltResult, Position};
use thiserror::Error;

/// A result whose error is [`CurateError`].
pub type Result<T, E = CurateError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Error, Diagnostic)]
pub enum CurateError {
    #[error("unknown column `{column}`")]
    #[diagnostic(code(curate::column::unknown), help("{}", column_help(.suggestion, .available)))]
    UnknownColumn { column: String, available: Vec<String>, suggestion: Option<String> },

    #[error("unknown option `{key}` for {function}")]
    #[diagnostic(code(curate::option::unknown), help("valid keys: {}", .valid.join(", ")))]
    UnknownOption { function: String, key: String, valid: Vec<String> },

    #[error("invalid option `{key}` for {function}: {message}")]
    #[diagnostic(code(curate::option::invalid))]
    InvalidOption { function: String, key: String, message: String },

    #[error("invalid argument to {function}: {message}")]
    #[diagnostic(code(curate::argument::invalid))]
    InvalidArgument { function: String, message: String },

    #[error("invalid filter expression `{expr}`: {message}")]
    #[diagnostic(code(curate::filter::invalid), help("filters use SQL expression syntax, e.g. \"label = 'person' AND width >= 96\""))]
    InvalidFilter { expr: String, message: String },

    #[error("no sample with id `{id}`")]
    #[diagnostic(code(curate::sample::unknown_id), help("list ids with `ds.ids()` or look one up with `ds.filter(\"id LIKE '...%'\")`"))]
    UnknownId { id: String },

    #[error("{path}: not a curate workspace (no curate.toml)")]
    #[diagnostic(code(curate::workspace::missing), help("create one with `curate init {}`", .path.display()))]
    NotAWorkspace { path: PathBuf },

    #[error("{path}: already a curate workspace")]
    #[diagnostic(code(curate::workspace::exists))]
    WorkspaceExists { path: PathBuf },

    #[error("{path}: invalid workspace config: {message}")]
    #[diagnostic(code(curate::config::invalid))]
    Config { path: PathBuf, message: String },

    #[error("{path}: {message}")]
    #[diagnostic(code(curate::manifest::invalid), help("re-create it with `curate import`"))]
    Manifest { path: PathBuf, message: String },

    #[error("{path}: {message}")]
    #[diagnostic(code(curate::import::invalid))]
    Import { path: PathBuf, message: String },

    #[error("path `{path}` is outside the workspace {root}")]
    #[diagnostic(code(curate::sandbox::path), help("scripts may only reach files inside the workspace they run in"))]
    PathOutsideWorkspace { path: String, root: PathBuf },

    #[error("{path}: {message}")]
    #[diagnostic(code(curate::io))]
    Io { path: PathBuf, message: String },

    #[error("{0}")]
    #[diagnostic(code(curate::polars))]
    Polars(String),

    #[error("model `{model}`: {message}")]
    #[diagnostic(code(curate::model::invalid), help("models are declared under [models.NAME] in curate.toml"))]
    Model { model: String, message: String },

    #[error("model `{model}` cannot run on {runtime}: {message}")]
    #[diagnostic(code(curate::model::runtime), help("{help}"))]
    Runtime { model: String, runtime: String, message: String, help: String },

    #[error("no embeddings from `{model}` for these samples ({missing} not embedded)")]
    #[diagnostic(code(curate::embedding::missing), help("compute them first with `ds.embed()` or `curate embed`"))]
    NotEmbedded { model: String, missing: usize },

    #[error("assertion failed: {message}")]
    #[diagnostic(code(curate::assert::failed))]
    AssertionFailed { message: String },

    #[error("could not draw {what}: {message}")]
    #[diagnostic(code(curate::plot::draw))]
    Plot { what: String, message: String },

    #[error("interrupted")]
    #[diagnostic(code(curate::interrupted), help("work already finished was kept"))]
    Interrupted,
}

fn column_help(suggestion: &Option<String>, available: &[String]) -> String {
    let list = available.join(", ");
    match suggestion {
        Some(s) => format!("did you mean `{s}`? available columns: {list}"),
        None => format!("available columns: {list}"),
    }
}

impl CurateError {
    pub fn io(path: impl AsRef<Path>, err: impl std::fmt::Display) -> Self {
        CurateError::Io { path: path.as_ref().to_path_buf(), message: err.to_string() }
    }

    pub fn manifest(path: impl AsRef<Path>, err: impl std::fmt::Display) -> Self {
        CurateError::Manifest { path: path.as_ref().to_path_buf(), message: err.to_string() }
    }

    pub fn import(path: impl AsRef<Path>, err: impl std::fmt::Display) -> Self {
        CurateError::Import { path: path.as_ref().to_path_buf(), message: err.to_string() }
    }

    pub fn arg(function: &str, message: impl Into<String>) -> Self {
        CurateError::InvalidArgument { function: function.to_string(), message: message.into() }
    }

    /// An unknown column error with the closest available name as a suggestion.
    pub fn unknown_column(column: &str, available: Vec<String>) -> Self {
        let suggestion = closest(column, &available);
        CurateError::UnknownColumn { column: column.to_string(), available, suggestion }
    }

    /// The stable code, as shown in rendered errors and `--json` output.
    pub fn code_str(&self) -> String {
        self.code().map(|c| c.to_string()).unwrap_or_default()
    }

    pub fn help_str(&self) -> Option<String> {
        self.help().map(|h| h.to_string())
    }
}

/// The candidate closest to `name` by edit distance, if any is plausibly a typo of it.
pub fn closest(name: &str, candidates: &[String]) -> Option<String> {
    candidates.iter().map(|c| (strsim::damerau_levenshtein(name, c), c)).filter(|(d, c)| *d <= 2.max(c.len() / 3)).min_by_key(|(d, _)| *d).map(|(_, c)| c.clone())
}

impl From<polars::error::PolarsError> for CurateError {
    fn from(e: polars::error::PolarsError) -> Self {
        CurateError::Polars(e.to_string())
    }
}

impl From<CurateError> for Box<EvalAltResult> {
    fn from(e: CurateError) -> Self {
        Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(e), Position::NONE))
    }
}

/// Find a [`CurateError`] inside a Rhai error, looking through function-call wrappers.
pub fn find_curate_error(err: &EvalAltResult) -> Option<CurateError> {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => value.clone().try_cast::<CurateError>(),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) => find_curate_error(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_suggests_typos_only() {
        let cols = vec!["label".to_string(), "split".to_string(), "width".to_string()];
        assert_eq!(closest("lable", &cols).as_deref(), Some("label"));
        assert_eq!(closest("widht", &cols).as_deref(), Some("width"));
        assert_eq!(closest("distance_m", &cols), None);
    }
}
