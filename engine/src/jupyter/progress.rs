//! Progress of long work (embedding, index builds, exports) inside the running cell: one text
//! line published as `display_data` with a display id, then updated in place with
//! `update_display_data` at most twice a second, as tqdm's notebook fallback does. Clients that
//! keep outputs (nbclient, nbconvert) keep the last state: the phase, its count and its time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use curate_stdlib::progress::{CancelFlag, Progress};
use jupyter_protocol::{DisplayData, JupyterMessage, Media, MediaType, Transient, UpdateDisplayData};
use tokio::sync::mpsc;

const EVERY: Duration = Duration::from_millis(500);

pub struct CellProgress {
    parent: Arc<Mutex<Option<JupyterMessage>>>,
    publish: mpsc::UnboundedSender<JupyterMessage>,
    cancel: CancelFlag,
    phase: Mutex<Option<Phase>>,
}

struct Phase {
    what: String,
    total: u64,
    done: u64,
    started: Instant,
    shown: Option<Instant>,
    display_id: String,
}

impl Phase {
    fn line(&self, finished: bool) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { self.done as f64 / secs } else { 0.0 };
        if finished {
            let how = if self.done < self.total { "stopped at " } else { "" };
            return format!("{}: {how}{}/{} in {secs:.1} s ({rate:.0}/s)", self.what, self.done, self.total);
        }
        let eta = if rate > 0.0 { format!(", eta {:.0} s", self.total.saturating_sub(self.done) as f64 / rate) } else { String::new() };
        let pct = (self.done * 100).checked_div(self.total).unwrap_or(0);
        format!("{}: {}/{} ({pct}%, {rate:.0}/s{eta})", self.what, self.done, self.total)
    }
}

impl CellProgress {
    pub fn new(parent: Arc<Mutex<Option<JupyterMessage>>>, publish: mpsc::UnboundedSender<JupyterMessage>, cancel: CancelFlag) -> Self {
        CellProgress { parent, publish, cancel, phase: Mutex::new(None) }
    }

    /// Publish the phase's line: the first time as a new display, then as an update of it.
    fn show(&self, phase: &mut Phase, finished: bool) {
        let Some(parent) = self.parent.lock().ok().and_then(|p| p.clone()) else { return };
        let data = Media::new(vec![MediaType::Plain(phase.line(finished))]);
        let transient = Transient { display_id: Some(phase.display_id.clone()) };
        let msg = match phase.shown {
            None => DisplayData { data, metadata: Default::default(), transient: Some(transient) }.as_child_of(&parent),
            Some(_) => UpdateDisplayData { data, metadata: Default::default(), transient }.as_child_of(&parent),
        };
        phase.shown = Some(Instant::now());
        let _ = self.publish.send(msg);
    }
}

impl Progress for CellProgress {
    fn start(&self, what: &str, total: u64) {
        if total == 0 {
            // Nothing to do (everything cached): nothing to show.
            if let Ok(mut p) = self.phase.lock() {
                *p = None;
            }
            return;
        }
        let mut phase = Phase { what: what.to_string(), total, done: 0, started: Instant::now(), shown: None, display_id: uuid::Uuid::new_v4().to_string() };
        self.show(&mut phase, false);
        if let Ok(mut p) = self.phase.lock() {
            *p = Some(phase);
        }
    }

    fn advance(&self, n: u64) {
        let Ok(mut slot) = self.phase.lock() else { return };
        let Some(phase) = slot.as_mut() else { return };
        phase.done += n;
        if phase.shown.is_none_or(|t| t.elapsed() >= EVERY) {
            self.show(phase, false);
        }
    }

    fn finish(&self) {
        let Ok(mut slot) = self.phase.lock() else { return };
        if let Some(mut phase) = slot.take() {
            self.show(&mut phase, true);
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.is_set()
    }
}
