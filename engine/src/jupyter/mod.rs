//! The Jupyter kernel: `curate jupyter kernel --connection-file F`, started by JupyterLab, VS Code,
//! nbclient or nbconvert from the kernelspec that `curate jupyter install` writes. Cells run on
//! the same [`Session`] the REPL uses; outputs go out as MIME bundles (tables as HTML and text,
//! pictures as PNG, `print` on the stdout stream).
//!
//! The protocol (message types, HMAC signing, ZeroMQ sockets) comes from `jupyter-protocol` and
//! `jupyter-zmq-client`, over the pure-Rust `zeromq` crate. Sockets are served by tasks on a
//! small tokio runtime; cells run on one thread of their own, so that the control channel
//! (interrupt, shutdown) and the heartbeat answer while a long primitive runs.

mod kernelspec;
mod progress;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use curate_stdlib::output::Output;
use curate_stdlib::primitives::Sink;
use curate_stdlib::progress::CancelFlag;
use curate_stdlib::{CurateError, Workspace};
use jupyter_protocol::{
    CodeMirrorMode, CommInfoReply, CompleteReply, CompleteRequest, ConnectionInfo, DisplayData, ErrorOutput, ExecuteInput, ExecuteReply, ExecuteRequest, ExecuteResult, ExecutionCount, HistoryReply,
    InspectReply, InspectRequest, InterruptReply, IoPubWelcome, IsCompleteReply, IsCompleteReplyStatus, JupyterMessage, JupyterMessageContent, KernelInfoReply, LanguageInfo, Media, MediaType,
    ReplyError, ReplyStatus, ShutdownReply, Status, StreamContent,
};
use jupyter_zmq_client::{
    create_kernel_control_connection, create_kernel_heartbeat_connection, create_kernel_iopub_xpub_connection, create_kernel_shell_connection, create_kernel_stdin_connection, SubscriptionEvent,
};
use tokio::sync::{mpsc, oneshot};

pub use kernelspec::{install, Target};

use crate::diagnostic::{render, ScriptError};
use crate::repl::completer::{candidates, Names};
use crate::session::Session;

/// Run the kernel until a shutdown request (exit code 0), or fail at start (2).
pub fn kernel(connection_file: &Path, dir: &Path, cancel: CancelFlag) -> u8 {
    let info = match read_connection_file(connection_file) {
        Ok(i) => i,
        Err(e) => {
            eprint!("{}", render(&e, crate::run::color()));
            return 2;
        }
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    exit_with_parent();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("curate kernel: cannot start its event loop: {e}");
            return 2;
        }
    };
    match runtime.block_on(serve(info, dir, cancel)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("curate kernel: {e}");
            2
        }
    }
}

/// A kernel whose client died would run on with nobody to shut it down: when jupyter_client
/// started it (it sets `JPY_PARENT_PID`), exit once the parent is gone, as ipykernel does.
fn exit_with_parent() {
    #[cfg(unix)]
    if std::env::var_os("JPY_PARENT_PID").is_some() {
        let parent = std::os::unix::process::parent_id();
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        });
    }
}

fn read_connection_file(path: &Path) -> Result<ConnectionInfo, CurateError> {
    let text = std::fs::read_to_string(path).map_err(|e| CurateError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CurateError::Io { path: path.to_path_buf(), message: format!("not a Jupyter connection file: {e}") })
}

/// A request for the cell thread, and where its reply goes.
type Job = (JupyterMessage, oneshot::Sender<Option<JupyterMessage>>);

async fn serve(info: ConnectionInfo, dir: PathBuf, cancel: CancelFlag) -> jupyter_zmq_client::Result<()> {
    let session_id = uuid::Uuid::new_v4().to_string();
    let mut heartbeat = create_kernel_heartbeat_connection(&info).await?;
    let (mut shell_out, mut shell_in) = create_kernel_shell_connection(&info, &session_id).await?.split();
    let mut control = create_kernel_control_connection(&info, &session_id).await?;
    // Bound so that clients can connect; the kernel never asks for input (edits do not ask to
    // confirm in a notebook, as in a script).
    let _stdin = create_kernel_stdin_connection(&info, &session_id).await?;
    let mut iopub = create_kernel_iopub_xpub_connection(&info, &session_id).await?;

    // Every IOPub message goes through one channel, so that outputs, errors and status keep
    // their order whichever thread sends them.
    let (publish, mut to_publish) = mpsc::unbounded_channel::<JupyterMessage>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                m = to_publish.recv() => match m {
                    Some(m) => if iopub.send(m).await.is_err() { break },
                    None => break,
                },
                // JEP 65: welcome each subscriber, so that a client knows its subscription is live.
                s = iopub.recv_subscription() => if let Ok(SubscriptionEvent::Subscribe(topic)) = s {
                    let _ = iopub.send(IoPubWelcome::new(topic).into()).await;
                },
            }
        }
    });
    tokio::spawn(async move { while heartbeat.single_heartbeat().await.is_ok() {} });

    let (shutdown, shutdown_requested) = oneshot::channel::<()>();
    let interrupt = cancel.clone();
    tokio::spawn(async move {
        let mut shutdown = Some(shutdown);
        loop {
            let msg = match control.read().await {
                Ok(m) => m,
                Err(e) if fatal(&e) => break,
                Err(e) => {
                    eprintln!("curate kernel: a control message was dropped: {e}");
                    continue;
                }
            };
            let reply = match &msg.content {
                JupyterMessageContent::InterruptRequest(_) => {
                    interrupt.cancel();
                    InterruptReply::new().as_child_of(&msg)
                }
                JupyterMessageContent::KernelInfoRequest(_) => kernel_info().as_child_of(&msg),
                JupyterMessageContent::ShutdownRequest(req) => {
                    // Stop a running cell too: its finished work is already on disk.
                    interrupt.cancel();
                    ShutdownReply { restart: req.restart, status: ReplyStatus::Ok, error: None }.as_child_of(&msg)
                }
                _ => continue,
            };
            let stop = matches!(msg.content, JupyterMessageContent::ShutdownRequest(_));
            let _ = control.send(reply).await;
            if stop {
                if let Some(s) = shutdown.take() {
                    let _ = s.send(());
                }
            }
        }
    });

    let (jobs, incoming) = std::sync::mpsc::channel::<Job>();
    let cells_publish = publish.clone();
    std::thread::Builder::new()
        .name("curate-cells".into())
        .spawn(move || {
            let mut kernel = Kernel::new(dir, cancel, cells_publish);
            for (msg, reply) in incoming {
                let _ = reply.send(kernel.handle(&msg));
            }
        })
        .map_err(jupyter_zmq_client::RuntimeError::from)?;

    let shell = tokio::spawn(async move {
        // After a failed cell whose request says `stop_on_error`, the execute requests already
        // queued behind it (JupyterLab's "run all") are aborted rather than run on a broken
        // state, as ipykernel does. Only those that arrived before the error reply goes out:
        // a client that waits for each reply (nbclient) is never aborted.
        let mut queued: std::collections::VecDeque<(JupyterMessage, bool)> = Default::default();
        loop {
            let (msg, abort) = match queued.pop_front() {
                Some(m) => m,
                None => match shell_in.read().await {
                    Ok(m) => (m, false),
                    Err(e) if fatal(&e) => break,
                    // One message that does not decode (a bad signature, an unknown field) is
                    // dropped, not the kernel.
                    Err(e) => {
                        eprintln!("curate kernel: a shell message was dropped: {e}");
                        continue;
                    }
                },
            };
            let _ = publish.send(Status::busy().as_child_of(&msg));
            let reply = match &msg.content {
                JupyterMessageContent::ExecuteRequest(_) if abort => {
                    Some(ExecuteReply { status: ReplyStatus::Aborted, execution_count: ExecutionCount::new(0), payload: vec![], user_expressions: None, error: None }.as_child_of(&msg))
                }
                _ => {
                    let (tx, rx) = oneshot::channel();
                    if jobs.send((msg.clone(), tx)).is_err() {
                        break;
                    }
                    rx.await.ok().flatten()
                }
            };
            let failed = matches!(reply.as_ref().map(|r| &r.content), Some(JupyterMessageContent::ExecuteReply(r)) if r.status == ReplyStatus::Error);
            if failed && matches!(&msg.content, JupyterMessageContent::ExecuteRequest(r) if r.stop_on_error && !r.silent) {
                while let Ok(Ok(m)) = tokio::time::timeout(std::time::Duration::from_millis(1), shell_in.read()).await {
                    queued.push_back((m, true));
                }
            }
            if let Some(reply) = reply {
                if shell_out.send(reply).await.is_err() {
                    break;
                }
            }
            let _ = publish.send(Status::idle().as_child_of(&msg));
            if matches!(msg.content, JupyterMessageContent::ShutdownRequest(_)) {
                break;
            }
        }
    });
    tokio::select! {
        _ = shutdown_requested => {}
        _ = shell => {}
    }
    // Let the last replies leave before the sockets close.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    Ok(())
}

/// Whether a read error means the socket is gone (else it was one undecodable message).
fn fatal(e: &jupyter_zmq_client::RuntimeError) -> bool {
    matches!(e, jupyter_zmq_client::RuntimeError::ZmqError(_) | jupyter_zmq_client::RuntimeError::IoError(_))
}

fn kernel_info() -> KernelInfoReply {
    KernelInfoReply {
        status: ReplyStatus::Ok,
        protocol_version: "5.3".to_string(),
        implementation: "curate".to_string(),
        implementation_version: env!("CARGO_PKG_VERSION").to_string(),
        language_info: LanguageInfo {
            name: "rhai".to_string(),
            version: "1".to_string(),
            mimetype: Some("text/x-rhai".to_string()),
            file_extension: Some(".rhai".to_string()),
            // Rhai's syntax is Rust's in the small: the closest lexer and editor mode there are.
            pygments_lexer: Some("rust".to_string()),
            codemirror_mode: Some(CodeMirrorMode::Simple("rust".to_string())),
            nbconvert_exporter: None,
        },
        banner: format!("curate {}: Rhai cells over a curate workspace (`:help` lists the primitives)", env!("CARGO_PKG_VERSION")),
        help_links: vec![],
        debugger: false,
        error: None,
    }
}

/// What the cell thread owns: the session and the request whose outputs are being published.
struct Kernel {
    /// The folder the kernel started in (the notebook's): `%workspace` paths start here.
    dir: PathBuf,
    session: Result<Session, CurateError>,
    cancel: CancelFlag,
    sink: Sink,
    progress: Arc<progress::CellProgress>,
    publish: mpsc::UnboundedSender<JupyterMessage>,
    /// The execute request being run; outputs of a silent one are not published.
    parent: Arc<Mutex<Option<JupyterMessage>>>,
    count: usize,
}

/// A failed cell, as the error message and reply carry it.
struct Failure {
    ename: String,
    evalue: String,
    traceback: Vec<String>,
    line: Option<usize>,
    column: Option<usize>,
}

impl Failure {
    fn script(e: &ScriptError) -> Self {
        let evalue = match (e.line, e.column) {
            (Some(l), Some(c)) => format!("{} (line {l}, column {c})", e.message),
            (Some(l), None) => format!("{} (line {l})", e.message),
            _ => e.message.clone(),
        };
        Failure { ename: e.code.clone(), evalue, traceback: traceback(e), line: e.line, column: e.column }
    }

    fn curate(e: &CurateError) -> Self {
        Failure { ename: e.code_str(), evalue: e.to_string(), traceback: traceback(e), line: None, column: None }
    }

    fn magic(message: String) -> Self {
        let traceback = vec![format!("error: {message}")];
        Failure { ename: "curate::kernel::magic".to_string(), evalue: message, traceback, line: None, column: None }
    }
}

/// The error as the REPL prints it (with colours: notebooks render ANSI in tracebacks).
fn traceback(diag: &dyn miette::Diagnostic) -> Vec<String> {
    render(diag, true).trim_end().lines().map(str::to_string).collect()
}

impl Kernel {
    fn new(dir: PathBuf, cancel: CancelFlag, publish: mpsc::UnboundedSender<JupyterMessage>) -> Self {
        let parent: Arc<Mutex<Option<JupyterMessage>>> = Arc::default();
        let (p, out) = (parent.clone(), publish.clone());
        let sink: Sink = Arc::new(move |o: Output| {
            let Some(parent) = p.lock().ok().and_then(|g| g.clone()) else { return };
            let msg = match &o {
                Output::Text(t) => StreamContent::stdout(&format!("{t}\n")).as_child_of(&parent),
                _ => {
                    let (data, metadata) = bundle(&o);
                    DisplayData { data, metadata, transient: None }.as_child_of(&parent)
                }
            };
            let _ = out.send(msg);
        });
        let progress = Arc::new(progress::CellProgress::new(parent.clone(), publish.clone(), cancel.clone()));
        let session = Session::with_progress(&dir, rhai::Map::new(), cancel.clone(), sink.clone(), progress.clone());
        Kernel { dir, session, cancel, sink, progress, publish, parent, count: 0 }
    }

    fn handle(&mut self, msg: &JupyterMessage) -> Option<JupyterMessage> {
        Some(match &msg.content {
            JupyterMessageContent::KernelInfoRequest(_) => kernel_info().as_child_of(msg),
            JupyterMessageContent::ExecuteRequest(req) => self.execute(msg, req),
            JupyterMessageContent::CompleteRequest(req) => self.complete(req).as_child_of(msg),
            JupyterMessageContent::InspectRequest(req) => self.inspect(req).as_child_of(msg),
            JupyterMessageContent::IsCompleteRequest(req) => is_complete(&req.code).as_child_of(msg),
            JupyterMessageContent::HistoryRequest(_) => HistoryReply { history: vec![], status: ReplyStatus::Ok, error: None }.as_child_of(msg),
            JupyterMessageContent::CommInfoRequest(_) => CommInfoReply { status: ReplyStatus::Ok, comms: Default::default(), error: None }.as_child_of(msg),
            JupyterMessageContent::ShutdownRequest(req) => ShutdownReply { restart: req.restart, status: ReplyStatus::Ok, error: None }.as_child_of(msg),
            _ => return None,
        })
    }

    fn send(&self, msg: JupyterMessage) {
        let _ = self.publish.send(msg);
    }

    fn execute(&mut self, msg: &JupyterMessage, req: &ExecuteRequest) -> JupyterMessage {
        if !req.silent && req.store_history {
            self.count += 1;
        }
        let count = ExecutionCount::new(self.count);
        if !req.silent {
            self.send(ExecuteInput { code: req.code.clone(), execution_count: count }.as_child_of(msg));
        }
        if let Ok(mut p) = self.parent.lock() {
            *p = (!req.silent).then(|| msg.clone());
        }
        let ran = self.run(&req.code);
        if let Ok(mut p) = self.parent.lock() {
            *p = None;
        }
        match ran {
            Ok(value) => {
                if let (Some(o), false) = (value, req.silent) {
                    let (data, metadata) = bundle(&o);
                    self.send(ExecuteResult { execution_count: count, data, metadata, transient: None }.as_child_of(msg));
                }
                ExecuteReply { status: ReplyStatus::Ok, execution_count: count, payload: vec![], user_expressions: None, error: None }.as_child_of(msg)
            }
            Err(f) => {
                if !req.silent {
                    self.send(ErrorOutput { ename: f.ename.clone(), evalue: f.evalue.clone(), traceback: f.traceback.clone() }.as_child_of(msg));
                }
                let error = ReplyError { ename: f.ename, evalue: f.evalue, traceback: f.traceback };
                let mut reply = ExecuteReply { status: ReplyStatus::Error, execution_count: count, payload: vec![], user_expressions: None, error: Some(Box::new(error)) }.as_child_of(msg);
                // Where in the cell, for clients that point at it.
                reply.metadata = serde_json::json!({"curate": {"line": f.line, "column": f.column}});
                reply
            }
        }
    }

    /// Run a cell: its `%workspace` line, then its code. The value to show, if any.
    fn run(&mut self, code: &str) -> Result<Option<Output>, Failure> {
        let magic = crate::notebook::magic(code).map_err(Failure::magic)?;
        if let Some(w) = &magic.workspace {
            self.open(w)?;
        }
        let trimmed = magic.code.trim();
        if let Some(args) = trimmed.strip_prefix(":help") {
            return match crate::repl::meta::help_text(args) {
                Ok(t) => Ok(Some(Output::Text(t))),
                Err(e) => Err(Failure::magic(e)),
            };
        }
        if !crate::cells::has_code(&magic.code) {
            return Ok(None);
        }
        let session = self.session.as_mut().map_err(|e| Failure::curate(e))?;
        let name = format!("cell {}", self.count);
        let value = session.eval_cell(&name, &magic.code).map_err(|e| Failure::script(&e))?;
        if !crate::cells::shows_value(&magic.code) {
            return Ok(None);
        }
        session.output_of(&value.value).map_err(|e| Failure::script(&ScriptError::from_eval(&name, &magic.code, &Box::<rhai::EvalAltResult>::from(e))))
    }

    /// `%workspace PATH`: a fresh session on the workspace at PATH (relative to the kernel's folder).
    fn open(&mut self, path: &str) -> Result<(), Failure> {
        let dir = self.dir.join(path);
        let ws = Workspace::discover(&dir).map_err(|e| Failure::curate(&e))?;
        let session = Session::with_progress(ws.root(), rhai::Map::new(), self.cancel.clone(), self.sink.clone(), self.progress.clone()).map_err(|e| Failure::curate(&e))?;
        (self.sink)(Output::Text(format!("workspace `{}` ({}); variables start afresh", ws.config.name, ws.root().display())));
        self.session = Ok(session);
        Ok(())
    }

    fn names(&self) -> Names {
        match &self.session {
            Ok(s) => Names { variables: s.variable_names(), columns: s.schema().map(|c| c.into_iter().map(|(n, _)| n).collect()).unwrap_or_default() },
            Err(_) => Names::default(),
        }
    }

    fn complete(&self, req: &CompleteRequest) -> CompleteReply {
        let pos = byte_of(&req.code, req.cursor_pos);
        let found = candidates(&req.code, pos, &self.names());
        let start = found.first().map(|c| c.0).unwrap_or(pos);
        let mut matches: Vec<String> = Vec::new();
        let mut types = Vec::new();
        for (_, value, description) in &found {
            if matches.contains(value) {
                continue;
            }
            matches.push(value.clone());
            let kind = match description.as_str() {
                "variable" | "column" => description.clone(),
                _ => "function".to_string(),
            };
            types.push(serde_json::json!({
                "start": char_of(&req.code, start), "end": req.cursor_pos, "text": value, "type": kind, "signature": description,
            }));
        }
        let mut metadata = serde_json::Map::new();
        metadata.insert("_jupyter_types_experimental".to_string(), serde_json::Value::Array(types));
        CompleteReply { matches, cursor_start: char_of(&req.code, start), cursor_end: req.cursor_pos, metadata, status: ReplyStatus::Ok, error: None }
    }

    /// The doc and examples of the primitive under the cursor, or a variable's type and preview.
    fn inspect(&self, req: &InspectRequest) -> InspectReply {
        let word = word_at(&req.code, byte_of(&req.code, req.cursor_pos));
        let text = if let Some(p) = curate_stdlib::primitives::find(word) {
            Some(crate::repl::meta::primitive_help(p))
        } else {
            self.session.as_ref().ok().and_then(|s| s.variables().into_iter().find(|(n, _, _)| n == word).map(|(n, ty, preview)| format!("{n}: {ty}\n{preview}")))
        };
        match text {
            Some(t) => InspectReply { found: true, data: Media::new(vec![MediaType::Plain(t)]), ..Default::default() },
            None => InspectReply::default(),
        }
    }
}

/// Rhai's parser decides, as in the REPL: an unfinished statement asks for more lines.
fn is_complete(code: &str) -> IsCompleteReply {
    let Ok(magic) = crate::notebook::magic(code) else {
        return IsCompleteReply { status: IsCompleteReplyStatus::Invalid, indent: String::new() };
    };
    if magic.code.trim_start().starts_with(':') {
        return IsCompleteReply { status: IsCompleteReplyStatus::Complete, indent: String::new() };
    }
    if crate::session::is_incomplete(&magic.code) {
        return IsCompleteReply { status: IsCompleteReplyStatus::Incomplete, indent: "    ".to_string() };
    }
    let status = if rhai::Engine::new_raw().compile(&magic.code).is_ok() { IsCompleteReplyStatus::Complete } else { IsCompleteReplyStatus::Invalid };
    IsCompleteReply { status, indent: String::new() }
}

/// An output as a MIME bundle: tables as HTML (names, types, the row count) and text; pictures
/// as PNG with their size; text as text.
pub fn bundle(o: &Output) -> (Media, serde_json::Map<String, serde_json::Value>) {
    let mut metadata = serde_json::Map::new();
    let data = match o {
        Output::Text(t) => vec![MediaType::Plain(t.clone())],
        Output::Table(t) => vec![MediaType::Html(crate::report::table_html(t)), MediaType::Plain(t.render_text(None))],
        Output::Image(p) => {
            metadata.insert("image/png".to_string(), serde_json::json!({"width": p.width, "height": p.height}));
            vec![MediaType::Png(base64::engine::general_purpose::STANDARD.encode(p.png.as_slice())), MediaType::Plain(p.describe())]
        }
    };
    (Media::new(data), metadata)
}

/// The byte offset of the `chars`-th character (Jupyter counts cursor positions in code points).
fn byte_of(text: &str, chars: usize) -> usize {
    text.char_indices().nth(chars).map(|(b, _)| b).unwrap_or(text.len())
}

fn char_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].chars().count()
}

/// The identifier around byte `pos`.
fn word_at(text: &str, pos: usize) -> &str {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let pos = pos.min(text.len());
    let start = text[..pos].char_indices().rev().find(|(_, c)| !ident(*c)).map(|(i, c)| i + c.len_utf8()).unwrap_or(0);
    let end = text[pos..].char_indices().find(|(_, c)| !ident(*c)).map(|(i, _)| pos + i).unwrap_or(text.len());
    &text[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_words_and_completeness() {
        let code = "é.filter(\"lab";
        assert_eq!(byte_of(code, 2), 3);
        assert_eq!(char_of(code, 3), 2);
        assert_eq!(word_at("ds.group_count(\"label\")", 5), "group_count");
        assert_eq!(word_at("ds.group_count", 14), "group_count");
        assert_eq!(is_complete("for x in [1] {").status, IsCompleteReplyStatus::Incomplete);
        assert_eq!(is_complete("let a = 1;").status, IsCompleteReplyStatus::Complete);
        assert_eq!(is_complete("let a = 1 +* 2;").status, IsCompleteReplyStatus::Invalid);
        assert_eq!(is_complete("%workspace ../x\nopen()").status, IsCompleteReplyStatus::Complete);
        assert_eq!(is_complete("%time 1").status, IsCompleteReplyStatus::Invalid);
    }
}
