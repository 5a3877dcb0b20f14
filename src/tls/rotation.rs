//! Certificate rotation: watches every file the running TLS contexts were read from
//! (`DataSource.filename` of certificates, keys and CAs, file-based SDS `DiscoveryResponse`s
//! and the files their secrets name) with the configuration's own watcher
//! ([`crate::discovery`], so every write style it follows works here too), and when one
//! changes, builds the contexts that read it again and swaps each one's certificates
//! atomically ([`super::contexts`]): a listener's (`ServerTls::swap`) and a cluster's
//! (`ClientTls::swap`, its client certificate for mTLS and the CA it checks the server
//! with). The listener keeps its sockets and the cluster its pools, established connections
//! keep their session, the next handshake uses the new certificate.
//!
//! A context is rebuilt whole from the files as they are then (a certificate and its key
//! renamed one after the other apply together: the pair is checked before it serves). A
//! rebuild that fails (unparsable, a key that does not match its certificate, an expired
//! certificate, a missing file) keeps the old certificates serving; the failure is counted
//! only if the files still hold what was read after the watcher's quiet period (otherwise a
//! writer was still at work and its next write is reported), and it is logged, recorded in
//! `/reloads` and counted: `sds.<secret>.update_rejected` (the SDS file changed) or
//! `sds.<secret>.key_rotation_failed` (a file the secret names changed), as Envoy names them,
//! and `listener.<name>.server_ssl_socket_factory.ssl_context_update_rejected` (or
//! `cluster.<name>.client_ssl_socket_factory.*`; legate's) next to Envoy's
//! `ssl_context_update_by_sds` for the successes.
//!
//! The watched set follows the snapshot: the reloader calls [`Rotation::track`] after every
//! configuration it applies.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Notify};

use super::contexts::{contexts, Context};
use crate::discovery::{content_hash, FileChange, WatchOptions, WatchSpec, Watcher};
use crate::reload::history::Attempt;
use crate::server::Server;
use crate::stats::{Counter, Gauge, Store, TextReadout};

/// The handle the reloader holds; dropping it stops the task.
pub struct Rotation {
    wake: Arc<Notify>,
    _stop: oneshot::Sender<()>,
}

impl Rotation {
    /// The running configuration changed: watch what its contexts read.
    pub fn track(&self) {
        self.wake.notify_one();
    }
}

/// Starts the rotation task (within a tokio runtime).
pub fn spawn(server: Arc<Server>, opts: WatchOptions) -> Rotation {
    let wake = Arc::new(Notify::new());
    let (stop, stop_rx) = oneshot::channel();
    let task = Task { server, opts, sds: HashMap::new(), watcher: None, failed: Vec::new() };
    tokio::spawn(task.run(Arc::clone(&wake), stop_rx));
    Rotation { wake, _stop: stop }
}

/// Envoy's `sds.<name>.*`.
struct SdsStats {
    update_attempt: Counter,
    update_success: Counter,
    update_rejected: Counter,
    key_rotation_failed: Counter,
    version: Gauge,
    version_text: TextReadout,
    update_time: Gauge,
}

impl SdsStats {
    fn new(store: &Store, name: &str) -> Self {
        let p = |s: &str| format!("sds.{name}.{s}");
        // Envoy shows these at zero: legate never fails to fetch nor waits for a file.
        store.counter(&p("update_failure"));
        store.counter(&p("init_fetch_timeout"));
        SdsStats {
            update_attempt: store.counter(&p("update_attempt")),
            update_success: store.counter(&p("update_success")),
            update_rejected: store.counter(&p("update_rejected")),
            key_rotation_failed: store.counter(&p("key_rotation_failed")),
            version: store.gauge(&p("version")),
            version_text: store.text(&p("version_text")),
            update_time: store.gauge(&p("update_time")),
        }
    }

    fn success(&self, version_info: &str) {
        use std::hash::{Hash, Hasher};
        self.update_attempt.inc();
        self.update_success.inc();
        self.version_text.set(version_info);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        version_info.hash(&mut h);
        self.version.set((h.finish() >> 1) as i64);
        self.update_time.set(unix_ms());
    }
}

fn unix_ms() -> i64 {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    i64::try_from(ms).unwrap_or(i64::MAX)
}

struct Task {
    server: Arc<Server>,
    opts: WatchOptions,
    /// By secret name, with the version last applied.
    sds: HashMap<String, (SdsStats, String)>,
    watcher: Option<Watcher>,
    /// Rebuilds that failed, counted only if their files still hold what was read at `due`.
    failed: Vec<Failure>,
}

/// A failed rebuild waiting for the writer's quiet period.
struct Failure {
    tls: Context,
    /// `listener` or `cluster`, and its stat name.
    kind: &'static str,
    name: String,
    factory: String,
    files: Vec<PathBuf>,
    on_disk: Vec<u64>,
    /// The changed files, as `/reloads` lists them.
    changed: Vec<String>,
    /// The SDS secrets whose file changed (`update_rejected` rather than `key_rotation_failed`).
    sds_changed: Vec<String>,
    errors: crate::config::ConfigErrors,
    started: Instant,
    due: tokio::time::Instant,
}

impl Task {
    async fn run(mut self, wake: Arc<Notify>, mut stop: oneshot::Receiver<()>) {
        let mut changes: Option<mpsc::Receiver<Vec<FileChange>>> = None;
        loop {
            let deadline = self.failed.iter().map(|f| f.due).min();
            tokio::select! {
                _ = &mut stop => break,
                () = wake.notified() => self.track(&mut changes),
                () = sleep_until(deadline) => self.confirm_failures().await,
                batch = recv(&mut changes) => match batch {
                    Some(b) => {
                        self.rotate(b).await;
                        self.track(&mut changes);
                    }
                    None => {
                        tracing::error!("certificate file watcher stopped: rotated certificates are no longer applied");
                        changes = None;
                        self.watcher = None;
                    }
                },
            }
        }
    }

    /// Watches what the running contexts read; counts the SDS secrets seen for the first time
    /// (their initial load, as Envoy counts it).
    fn track(&mut self, changes: &mut Option<mpsc::Receiver<Vec<FileChange>>>) {
        let snap = self.server.shared.snapshot.load_full();
        let tracked = contexts(&snap);
        let store = &self.server.shared.stats;
        let mut files: Vec<(WatchSpec, u64)> = Vec::new();
        for t in &tracked {
            store.counter(&format!("{}.ssl_context_update_by_sds", t.factory()));
            store.counter(&format!("{}.ssl_context_update_rejected", t.factory()));
            let reads = t.tls.reads();
            for f in &reads.files {
                files.retain(|(s, _)| s.path != f.spec.path);
                files.push((f.spec.clone(), f.hash));
            }
            for s in &reads.sds {
                let entry =
                    self.sds.entry(s.name.clone()).or_insert_with(|| (SdsStats::new(store, &s.name), String::new()));
                if entry.1 != s.version_info || entry.0.update_success.value() == 0 {
                    entry.0.success(&s.version_info);
                    entry.1.clone_from(&s.version_info);
                }
            }
        }
        if files.is_empty() && self.watcher.is_none() {
            return;
        }
        let specs: Vec<WatchSpec> = files.iter().map(|(s, _)| s.clone()).collect();
        if self.watcher.is_none() {
            match Watcher::spawn(Vec::new(), self.opts) {
                Ok((w, rx)) => {
                    self.watcher = Some(w);
                    *changes = Some(rx);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch certificate files: rotated certificates are not applied");
                    return;
                }
            }
        }
        if let Some(w) = &self.watcher {
            w.set_specs(specs);
            // What the contexts were built from is the baseline: a write since is reported.
            for (s, hash) in &files {
                w.applied(&s.path, *hash);
            }
        }
    }

    /// Rebuilds every context that read a changed file.
    async fn rotate(&mut self, batch: Vec<FileChange>) {
        let changed: HashSet<PathBuf> = batch.iter().map(|c| c.path.clone()).collect();
        let snap = self.server.shared.snapshot.load_full();
        for t in contexts(&snap) {
            let reads = t.tls.reads();
            if !reads.files.iter().any(|f| changed.contains(&f.spec.path)) {
                continue;
            }
            let Some(job) = t.tls.rebuild() else { continue };
            // Retried now: an earlier failure of the same context was a half-written change.
            self.failed.retain(|f| !f.tls.same(&t.tls));
            let started = Instant::now();
            let files: Vec<PathBuf> = reads.files.iter().map(|f| f.spec.path.clone()).collect();
            let sds_changed: Vec<&super::secrets::SdsRead> =
                reads.sds.iter().filter(|s| changed.contains(&s.path)).collect();
            let read = files.clone();
            // What the files hold before the rebuild reads them: a failure is final only if
            // they still hold it after the quiet period.
            let result = tokio::task::spawn_blocking(move || (hashes_now(&read), job()));
            let (on_disk, result) = match result.await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "certificate rebuild failed");
                    continue;
                }
            };
            let store = &self.server.shared.stats;
            let factory = t.factory();
            let changed_files: Vec<String> =
                files.iter().filter(|p| changed.contains(*p)).map(|p| p.display().to_string()).collect();
            match result {
                Ok(built) => {
                    if t.tls.unchanged(&built) {
                        continue;
                    }
                    let serials = built.serials();
                    for s in &built.reads().sds {
                        if let Some((stats, applied)) = self.sds.get_mut(&s.name) {
                            if *applied != s.version_info || sds_changed.iter().any(|c| c.name == s.name) {
                                stats.success(&s.version_info);
                                applied.clone_from(&s.version_info);
                            }
                        }
                    }
                    let path = t.tls.path();
                    t.tls.swap(built);
                    store.counter(&format!("{factory}.ssl_context_update_by_sds")).inc();
                    tracing::info!(
                        at = %format!("{} {}", t.kind, t.name),
                        files = %changed_files.join(", "),
                        serials = %serials.join(", "),
                        "TLS certificates rotated"
                    );
                    self.server.history.record(Attempt {
                        files: changed_files,
                        outcome: "applied",
                        error: None,
                        duration: started.elapsed(),
                        changes: serde_json::json!({
                            "tls_context": path,
                            t.kind: t.name,
                            "serial_numbers": serials,
                        }),
                    });
                }
                Err(errors) => {
                    // A writer may still be at work (the key of a certificate renamed a
                    // moment ago): decided after the quiet period, or by the next change.
                    self.failed.push(Failure {
                        tls: t.tls.clone(),
                        kind: t.kind,
                        name: t.name.clone(),
                        factory,
                        files,
                        on_disk,
                        changed: changed_files,
                        sds_changed: sds_changed.iter().map(|s| s.name.clone()).collect(),
                        errors,
                        started,
                        due: tokio::time::Instant::now() + self.opts.quiet,
                    });
                }
            }
        }
    }

    /// Counts the failed rebuilds whose files did not change since.
    async fn confirm_failures(&mut self) {
        let now = tokio::time::Instant::now();
        let (due, waiting): (Vec<Failure>, Vec<Failure>) =
            std::mem::take(&mut self.failed).into_iter().partition(|f| f.due <= now);
        self.failed = waiting;
        for f in due {
            if hashes(f.files.clone()).await != f.on_disk {
                tracing::debug!(at = %format!("{} {}", f.kind, f.name), "certificate files changed after a failed read; waiting for the writer");
                continue;
            }
            self.reject(f);
        }
    }

    fn reject(&self, f: Failure) {
        for s in &f.tls.reads().sds {
            if let Some((stats, _)) = self.sds.get(&s.name) {
                if f.sds_changed.contains(&s.name) {
                    stats.update_attempt.inc();
                    stats.update_rejected.inc();
                } else {
                    stats.key_rotation_failed.inc();
                }
            }
        }
        let store = &self.server.shared.stats;
        store.counter(&format!("{}.ssl_context_update_rejected", f.factory)).inc();
        tracing::error!(
            at = %format!("{} {}", f.kind, f.name),
            "certificate update rejected, the running certificates stay:\n{}",
            crate::config::located(&f.errors).join("\n")
        );
        self.server.history.record(Attempt {
            files: f.changed,
            outcome: "rejected",
            error: Some(f.errors.to_string()),
            duration: f.started.elapsed(),
            changes: serde_json::json!({ "tls_context": f.tls.path(), f.kind: f.name }),
        });
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The content hashes of `files` (0 for one that cannot be read).
fn hashes_now(files: &[PathBuf]) -> Vec<u64> {
    files.iter().map(|p| std::fs::read(p).map_or(0, |b| content_hash(&b))).collect()
}

async fn hashes(files: Vec<PathBuf>) -> Vec<u64> {
    tokio::task::spawn_blocking(move || hashes_now(&files)).await.unwrap_or_default()
}

async fn recv(rx: &mut Option<mpsc::Receiver<Vec<FileChange>>>) -> Option<Vec<FileChange>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
