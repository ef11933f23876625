//! End-to-end tests of the `curate` binary: one test binary, one module per area.

mod util;

mod cluster;
mod duplicates;
mod edits;
mod embed;
mod errors;
mod examples;
mod import;
mod jupyter;
mod objects;
mod onnxruntime;
mod pictures;
mod probe;
mod readme;
mod repl;
mod run;
mod similar;
mod store;
mod test_cmd;
