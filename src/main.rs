//! The `curate` binary: a thin wrapper over `curate-engine`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(curate_engine::cli::main())
}
