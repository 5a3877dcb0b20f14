//! The registry of access-log writers: one writer task per sink, opened when a configuration
//! first names the sink and kept across reloads (a reload does not reopen files), with the
//! stats they count into. Snapshots hold only the writer handles it hands out.

use std::sync::Arc;

use super::writer::{spawn_writer_with, AccessLogWriter, Sink, WriterStats, QUEUE_CAPACITY, QUEUE_MAX_BYTES};
use crate::stats::{Counter, Store};

/// One writer task per sink, shared by every connection manager that logs there (and kept
/// across snapshots, so a reload does not reopen files), and the stats they count into:
/// `access_log.<sink>.dropped` per sink and Envoy's `filesystem.*` for all of them (present
/// from startup, as in Envoy).
pub struct LogWriters {
    store: Arc<Store>,
    filesystem: WriterStats,
    /// Each sink with the name its stats carry.
    writers: std::sync::Mutex<Vec<(Sink, String, AccessLogWriter)>>,
}

impl LogWriters {
    pub fn new(store: &Arc<Store>) -> Self {
        let c = |name: &str| store.counter(&format!("filesystem.{name}"));
        // Envoy's `flushed_by_timer` has no counterpart: every batch is written at once.
        let filesystem = WriterStats {
            dropped: Counter::default(),
            write_buffered: c("write_buffered"),
            write_completed: c("write_completed"),
            write_failed: c("write_failed"),
            reopen_failed: c("reopen_failed"),
            write_total_buffered: store.gauge("filesystem.write_total_buffered"),
        };
        LogWriters { store: Arc::clone(store), filesystem, writers: std::sync::Mutex::new(Vec::new()) }
    }

    pub fn get(&self, sink: Sink) -> std::io::Result<AccessLogWriter> {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, w)) = writers.iter().find(|(s, _, _)| *s == sink) {
            return Ok(w.clone());
        }
        // Two paths may map to one name (`a.log`, `a_log`): the later sink gets a suffix.
        let base = sink.stat_name();
        let taken = |name: &str| writers.iter().any(|(_, taken, _)| taken == name);
        let mut name = base.clone();
        let mut n = 1;
        while taken(&name) && n <= writers.len() {
            n += 1;
            name = format!("{base}_{n}");
        }
        let stats = WriterStats {
            dropped: self.store.counter(&format!("access_log.{name}.dropped")),
            ..self.filesystem.clone()
        };
        let w = spawn_writer_with(sink.clone(), QUEUE_CAPACITY, QUEUE_MAX_BYTES, stats).inspect_err(|_| {
            // The config is refused: no stat for a sink that never was.
            self.store.retain_live(&format!("access_log.{name}."));
        })?;
        writers.push((sink, name, w.clone()));
        Ok(w)
    }

    /// Waits until every line queued so far is written.
    pub async fn flush(&self) {
        let writers: Vec<AccessLogWriter> =
            self.writers.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(_, _, w)| w.clone()).collect();
        for w in writers {
            w.flush().await;
        }
    }

    /// Reopens every file sink (`/reopen_logs`, SIGUSR1).
    pub fn reopen(&self) {
        for (_, _, w) in self.writers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            w.reopen();
        }
    }
}
