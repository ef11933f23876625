//! What an operation may use of the session that calls it, passed in rather than reached for:
//! the models and stores loaded once per session, where long work reports its progress, and
//! where a note to the user goes. Every front end (REPL, runner, kernel, CLI) provides them.

use crate::output::Output;
use crate::progress::Progress;
use crate::vectors::Registry;

pub struct Services<'a> {
    pub registry: &'a Registry,
    pub progress: &'a dyn Progress,
    /// A line for the user ("embedded 240 images"), rendered by the front end.
    pub notify: &'a (dyn Fn(Output) + Send + Sync),
}
