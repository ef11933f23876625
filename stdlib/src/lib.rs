//! curate's standard library: the workspace, the manifest, import and scan, the `Dataset` type
//! and the primitives that scripts call, registered on a sandboxed Rhai engine.
//!
//! Nothing here prints. Long work reports through [`progress::Progress`]; results are values or
//! typed [`output::Output`]s that the front ends in `curate-engine` render.

pub mod atomic;
pub mod confident;
pub mod config;
pub mod dataset;
pub mod dedupe;
pub mod diff;
pub mod edits;
pub mod embed;
pub mod error;
pub mod import;
pub mod index;
pub mod manifest;
pub mod merge;
pub mod model;
pub mod objects;
pub mod options;
pub mod output;
pub mod phash;
pub mod plot;
pub mod predictions;
pub mod preprocess;
pub mod primitives;
pub mod probe;
pub mod progress;
pub mod runs;
pub mod sandbox;
pub mod scan;
pub mod services;
pub mod shard;
pub mod store;
pub mod value;
pub mod vectors;
pub mod workspace;

#[doc(hidden)]
pub mod testing;

pub use dataset::Dataset;
pub use error::{CurateError, Result};
pub use workspace::Workspace;
