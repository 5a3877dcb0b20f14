//! One writer task per sink; requests hand it finished lines and never wait.
//!
//! [`AccessLogWriter::send`] is a `try_send` on a queue bounded in lines and in bytes: when
//! either is full the line is dropped and counted ([`AccessLogWriter::dropped`]), so a slow or
//! stuck sink never slows a request nor grows memory without bound. The task takes everything
//! already queued and writes it in one blocking write (on tokio's blocking pool), then lingers
//! briefly (`LINGER`, 10 ms) before taking more: an idle sink writes a line at once, a busy
//! one writes a batch every 10 ms, and no request wakes a thread.
//! [`AccessLogWriter::reopen`] makes a file sink open its path again, for logrotate: every line
//! sent after `reopen()` returns lands in the newly opened file.
//!
//! The counts a writer keeps ([`WriterStats`]) are stats-store handles, so `/stats` shows them
//! as they change: the sink's dropped lines and Envoy's `filesystem.*` counters.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::config::model::AccessLogSink;
use crate::stats::{Counter, Gauge};

/// Lines a sink may have queued before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 16384;

/// Bytes a sink may have queued (or being written) before new lines are dropped: long lines
/// (big logged headers) fill memory long before [`QUEUE_CAPACITY`] lines do.
pub const QUEUE_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Stop adding queued lines to one write past this size.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// After a write, how long the task waits before taking more lines: at most this long a line
/// waits for its write, and under load a write carries this long's lines. Waking the task and
/// a blocking-pool thread for every line nearly doubled the proxy's CPU per request.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

/// Where a writer task writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// A file opened in append mode (created if absent).
    File(PathBuf),
    Stdout,
    Stderr,
}

impl From<&AccessLogSink> for Sink {
    fn from(sink: &AccessLogSink) -> Self {
        match sink {
            AccessLogSink::File(path) => Sink::File(path.clone()),
            AccessLogSink::Stdout => Sink::Stdout,
            AccessLogSink::Stderr => Sink::Stderr,
        }
    }
}

impl Sink {
    /// The sink's part of its stat names (`access_log.<name>.dropped`): `stdout`, `stderr`, or
    /// a file's path with every character but ASCII letters and digits turned into `_` and
    /// leading `_` dropped (`/var/log/access.log` is `var_log_access_log`).
    pub fn stat_name(&self) -> String {
        match self {
            Sink::Stdout => "stdout".to_string(),
            Sink::Stderr => "stderr".to_string(),
            Sink::File(path) => {
                let name: String =
                    path.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
                name.trim_start_matches('_').to_string()
            }
        }
    }
}

/// What a writer counts. Default handles count for nobody; the server passes the stats
/// store's, so that `/stats` reads them.
#[derive(Debug, Clone, Default)]
pub struct WriterStats {
    /// Lines dropped because this sink's queue was full (`access_log.<sink>.dropped`).
    pub dropped: Counter,
    /// Envoy's `filesystem.write_buffered`: lines taken off the queue into a write.
    pub write_buffered: Counter,
    /// Envoy's `filesystem.write_completed`: writes that succeeded.
    pub write_completed: Counter,
    /// Envoy's `filesystem.write_failed`: writes that failed (their lines are lost).
    pub write_failed: Counter,
    /// Envoy's `filesystem.reopen_failed`: reopens that failed (the old file stays in use).
    pub reopen_failed: Counter,
    /// Envoy's `filesystem.write_total_buffered`: bytes queued or being written.
    pub write_total_buffered: Gauge,
}

/// A cheap-to-clone handle to one sink's writer task.
#[derive(Debug, Clone)]
pub struct AccessLogWriter {
    tx: mpsc::Sender<Message>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
enum Message {
    Line(String),
    /// Answered once every line queued before it has been written.
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Shared {
    stats: WriterStats,
    /// Bytes of the lines queued or being written, against `max_bytes`.
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    reopen: AtomicBool,
    wake: Notify,
}

/// Opens `sink` and starts its writer task with the default queue bounds; its counts go
/// nowhere (see [`spawn_writer_with`]).
///
/// Must be called inside a tokio runtime; a file that cannot be opened is an error here, at
/// startup, rather than a silent loss of every line later.
pub fn spawn_writer(sink: Sink) -> io::Result<AccessLogWriter> {
    spawn_writer_with(sink, QUEUE_CAPACITY, QUEUE_MAX_BYTES, WriterStats::default())
}

/// [`spawn_writer`] with chosen queue bounds (lines, bytes) and stats handles.
pub fn spawn_writer_with(
    sink: Sink,
    capacity: usize,
    max_bytes: usize,
    stats: WriterStats,
) -> io::Result<AccessLogWriter> {
    let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    let output = Output::open(&sink)?;
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let shared = Arc::new(Shared {
        stats,
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
        reopen: AtomicBool::new(false),
        wake: Notify::new(),
    });
    runtime.spawn(run(sink, output, rx, shared.clone()));
    Ok(AccessLogWriter { tx, shared })
}

impl AccessLogWriter {
    /// Queues one line without waiting; returns `false` (and counts a drop) when the queue is
    /// full (in lines or bytes) or the writer task is gone.
    pub fn send(&self, line: String) -> bool {
        let len = line.len();
        let shared = &self.shared;
        // Check, then add: racing senders may overshoot the byte bound by a few lines.
        let queued = shared.queued_bytes.load(Ordering::Relaxed).saturating_add(len) <= shared.max_bytes
            && self.tx.try_send(Message::Line(line)).is_ok();
        if queued {
            shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
            shared.stats.write_total_buffered.add(len as i64);
        } else {
            shared.stats.dropped.inc();
        }
        queued
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.stats.dropped.value()
    }

    /// Makes a file sink open its path again (after logrotate moved it); a no-op for stdio.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Waits until every line sent before this call is written (shutdown, tests). Unlike
    /// [`send`](Self::send) this waits for queue space; never call it on the request path.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            // Cut a linger short: the flush need not wait for it.
            self.shared.wake.notify_one();
            let _ = written.await;
        }
    }
}

/// The open sink, moved into the blocking pool for each write.
#[derive(Debug)]
enum Output {
    File(File),
    Stdout(io::Stdout),
    Stderr(io::Stderr),
}

impl Output {
    fn open(sink: &Sink) -> io::Result<Self> {
        Ok(match sink {
            Sink::File(path) => Output::File(OpenOptions::new().create(true).append(true).open(path)?),
            Sink::Stdout => Output::Stdout(io::stdout()),
            Sink::Stderr => Output::Stderr(io::stderr()),
        })
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::File(file) => file.write_all(bytes),
            Output::Stdout(out) => out.write_all(bytes).and_then(|()| out.flush()),
            Output::Stderr(out) => out.write_all(bytes).and_then(|()| out.flush()),
        }
    }
}

/// The writer task: wait for a line (or a reopen), take what else is queued, write once; then
/// linger before taking more, so that under load one write carries many lines.
async fn run(sink: Sink, mut output: Output, mut rx: mpsc::Receiver<Message>, shared: Arc<Shared>) {
    let mut batch = Batch::default();
    let mut flushed = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            () = shared.wake.notified() => {
                if shared.reopen.swap(false, Ordering::AcqRel) {
                    reopen(&sink, &mut output, &shared.stats);
                }
                continue;
            }
            message = rx.recv() => message,
        };
        let Some(first) = first else { return };
        let mut next = Some(first);
        // Runs while lines keep coming; back to waiting once a linger finds the queue empty.
        while let Some(message) = next.take() {
            let mut message = Some(message);
            while let Some(m) = message.take() {
                // A line received after the flag was set may have been sent after `reopen()`:
                // it and everything after it go to the new file.
                if shared.reopen.swap(false, Ordering::AcqRel) {
                    let Some(out) = batch.write(output, &shared).await else { return };
                    output = out;
                    reopen(&sink, &mut output, &shared.stats);
                }
                match m {
                    Message::Line(line) => {
                        batch.text.push_str(&line);
                        batch.lines += 1;
                    }
                    Message::Flush(done) => flushed.push(done),
                }
                if batch.text.len() < MAX_BATCH_BYTES {
                    message = rx.try_recv().ok();
                }
            }
            let full = batch.text.len() >= MAX_BATCH_BYTES;
            let Some(out) = batch.write(output, &shared).await else { return };
            output = out;
            for done in flushed.drain(..) {
                let _ = done.send(());
            }
            if !full {
                // While this sleeps no waker is registered on the queue, so senders wake
                // nobody: the lines of the next LINGER are taken in one go. A reopen or a
                // flush cuts the wait short.
                tokio::select! {
                    biased;
                    () = shared.wake.notified() => {}
                    () = tokio::time::sleep(LINGER) => {}
                }
            }
            next = match rx.try_recv() {
                Ok(message) => Some(message),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            };
            if next.is_none() && shared.reopen.swap(false, Ordering::AcqRel) {
                reopen(&sink, &mut output, &shared.stats);
            }
        }
    }
}

/// The lines taken off the queue for the next write.
#[derive(Default)]
struct Batch {
    text: String,
    lines: u64,
    /// The last write failed: the next failure is not logged again.
    failing: bool,
}

impl Batch {
    /// Writes and clears the batch on the blocking pool; `None` when the runtime is shutting
    /// down.
    async fn write(&mut self, mut output: Output, shared: &Shared) -> Option<Output> {
        if self.text.is_empty() {
            return Some(output);
        }
        let stats = &shared.stats;
        stats.write_buffered.add(std::mem::take(&mut self.lines));
        let bytes = std::mem::take(&mut self.text);
        let written = tokio::task::spawn_blocking(move || {
            let result = output.write_all(bytes.as_bytes());
            (output, bytes, result)
        })
        .await;
        let (output, mut bytes, result) = written.ok()?;
        shared.queued_bytes.fetch_sub(bytes.len(), Ordering::Relaxed);
        stats.write_total_buffered.add(-(bytes.len() as i64));
        match result {
            Ok(()) => {
                stats.write_completed.inc();
                self.failing = false;
            }
            Err(err) => {
                stats.write_failed.inc();
                // Once per run of failures: a full disk must not also flood the process log.
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(error = %err, bytes = bytes.len(), "access log write failed; lines lost");
                }
            }
        }
        bytes.clear();
        self.text = bytes;
        Some(output)
    }
}

/// Opens a file sink's path again; on failure keeps writing to the old file.
fn reopen(sink: &Sink, output: &mut Output, stats: &WriterStats) {
    let Sink::File(path) = sink else { return };
    match Output::open(sink) {
        Ok(reopened) => *output = reopened,
        Err(err) => {
            stats.reopen_failed.inc();
            tracing::warn!(path = %path.display(), error = %err, "access log reopen failed");
        }
    }
}

#[cfg(test)]
mod tests;
