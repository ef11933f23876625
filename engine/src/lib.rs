//! curate's scripting engine: the session (a sandboxed Rhai engine with a persistent scope), the
//! REPL, the script runner and the command line. It renders what the stdlib computes; the stdlib
//! never touches the terminal.

pub mod cells;
pub mod cli;
pub mod diagnostic;
pub mod display;
pub mod jupyter;
pub mod notebook;
pub mod progress_bar;
pub mod repl;
pub mod report;
pub mod run;
pub mod session;
