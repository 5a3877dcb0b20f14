//! One writer task per sink; requests hand it finished lines and never wait.
//!
//! [`AccessLogWriter::send`] is a `try_send` on a bounded queue: when the queue is full the line
//! is dropped and counted ([`AccessLogWriter::dropped`]), so a slow disk never slows a request.
//! The task takes everything already queued and writes it in one blocking write (on tokio's
//! blocking pool). [`AccessLogWriter::reopen`] makes a file sink open its path again, for
//! logrotate: every line sent after `reopen()` returns lands in the newly opened file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::config::model::AccessLogSink;

/// Lines a sink may have queued before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 16384;

/// Stop adding queued lines to one write past this size.
const MAX_BATCH_BYTES: usize = 256 * 1024;

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

#[derive(Debug, Default)]
struct Shared {
    dropped: Arc<AtomicU64>,
    reopen: AtomicBool,
    wake: Notify,
}

/// Opens `sink` and starts its writer task with the default queue capacity.
///
/// Must be called inside a tokio runtime; a file that cannot be opened is an error here, at
/// startup, rather than a silent loss of every line later.
pub fn spawn_writer(sink: Sink) -> io::Result<AccessLogWriter> {
    spawn_writer_with_capacity(sink, QUEUE_CAPACITY)
}

/// [`spawn_writer`] with a chosen queue capacity (tests use a tiny one).
pub fn spawn_writer_with_capacity(sink: Sink, capacity: usize) -> io::Result<AccessLogWriter> {
    let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    let output = Output::open(&sink)?;
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let shared = Arc::new(Shared::default());
    runtime.spawn(run(sink, output, rx, shared.clone()));
    Ok(AccessLogWriter { tx, shared })
}

impl AccessLogWriter {
    /// Queues one line without waiting; returns `false` (and counts a drop) when the queue is
    /// full or the writer task is gone.
    pub fn send(&self, line: String) -> bool {
        let queued = self.tx.try_send(Message::Line(line)).is_ok();
        if !queued {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// The drop count itself, for a stats gauge to read.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.shared.dropped.clone()
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

/// The writer task: wait for a line (or a reopen), take what else is queued, write once.
async fn run(sink: Sink, mut output: Output, mut rx: mpsc::Receiver<Message>, shared: Arc<Shared>) {
    let mut batch = String::new();
    let mut flushed = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            () = shared.wake.notified() => {
                if shared.reopen.swap(false, Ordering::AcqRel) {
                    reopen(&sink, &mut output);
                }
                continue;
            }
            message = rx.recv() => message,
        };
        let Some(first) = first else { return };
        let mut next = Some(first);
        while let Some(message) = next.take() {
            // A line received after the flag was set may have been sent after `reopen()`:
            // it and everything after it go to the new file.
            if shared.reopen.swap(false, Ordering::AcqRel) {
                let Some(out) = write_batch(output, &mut batch).await else { return };
                output = out;
                reopen(&sink, &mut output);
            }
            match message {
                Message::Line(line) => batch.push_str(&line),
                Message::Flush(done) => flushed.push(done),
            }
            if batch.len() < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        let Some(out) = write_batch(output, &mut batch).await else { return };
        output = out;
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes and clears `batch` on the blocking pool; `None` when the runtime is shutting down.
async fn write_batch(mut output: Output, batch: &mut String) -> Option<Output> {
    if batch.is_empty() {
        return Some(output);
    }
    let bytes = std::mem::take(batch);
    let written = tokio::task::spawn_blocking(move || {
        let result = output.write_all(bytes.as_bytes());
        (output, bytes, result)
    })
    .await;
    let (output, mut bytes, result) = written.ok()?;
    if let Err(err) = result {
        tracing::warn!(error = %err, bytes = bytes.len(), "access log write failed; lines lost");
    }
    bytes.clear();
    *batch = bytes;
    Some(output)
}

/// Opens a file sink's path again; on failure keeps writing to the old file.
fn reopen(sink: &Sink, output: &mut Output) {
    let Sink::File(path) = sink else { return };
    match Output::open(sink) {
        Ok(reopened) => *output = reopened,
        Err(err) => tracing::warn!(path = %path.display(), error = %err, "access log reopen failed"),
    }
}

#[cfg(test)]
mod tests;
