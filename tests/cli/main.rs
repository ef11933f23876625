//! End-to-end tests of the `curate` binary: one test binary, one module per area.

mod util;

mod cluster;
mod edits;
mod embed;
mod duplicates;
mod errors;
mod examples;
mod import;
mod jupyter;
mod objects;
mod onnxruntime;
mod pictures;
mod readme;
mod repl;
mod probe;
mod run;
mod similar;
mod store;
mod test_cmd;
