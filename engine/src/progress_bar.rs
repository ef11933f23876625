//! A progress bar for long work, drawn on stderr when it is a terminal and never in CI.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use curate_stdlib::progress::{CancelFlag, Progress};
use indicatif::{ProgressBar, ProgressStyle};

pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    cancel: CancelFlag,
    enabled: bool,
}

impl Bar {
    pub fn new(cancel: CancelFlag) -> Self {
        Bar { bar: Mutex::new(None), cancel, enabled: interactive() }
    }
}

/// Whether to draw: stderr is a terminal and this is not a CI run.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

impl Progress for Bar {
    fn start(&self, what: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template("{msg:20} {wide_bar} {pos}/{len} {per_sec} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(b) = slot.as_ref() {
                b.inc(n);
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(b) = slot.take() {
                b.finish_and_clear();
            }
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.is_set()
    }
}
