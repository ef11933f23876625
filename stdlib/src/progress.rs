//! Progress reporting and cancellation for long work. The core never draws anything: a front
//! end passes an implementation (a progress bar on a TTY, nothing in CI).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub trait Progress: Send + Sync {
    /// A new phase of `total` steps begins.
    fn start(&self, _what: &str, _total: u64) {}
    /// `n` more steps are done.
    fn advance(&self, _n: u64) {}
    /// The phase is over.
    fn finish(&self) {}
    /// Whether the user asked to stop; long loops check it and end cleanly.
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Reports nothing and never cancels.
pub struct Silent;

impl Progress for Silent {}

/// A shared flag that a Ctrl-C handler (or a test) sets to stop long work.
#[derive(Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
