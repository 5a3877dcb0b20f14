//! Certificate rotation: watches every file the running TLS contexts were read from
//! (`DataSource.filename` of certificates, keys and CAs, file-based SDS `DiscoveryResponse`s
//! and the files their secrets name) with the configuration's own watcher
//! ([`crate::discovery`], so every write style it follows works here too), and when one
//! changes, builds the contexts that read it again and swaps each one's certificates
//! atomically ([`ServerTls::swap`]): the listener keeps its sockets, established connections
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
//! and `listener.<name>.server_ssl_socket_factory.ssl_context_update_rejected` (legate's)
//! next to Envoy's `ssl_context_update_by_sds` for the successes.
//!
//! The watched set follows the snapshot: the reloader calls [`Rotation::track`] after every
//! configuration it applies. An upstream context would take part the same way: keep an
//! [`super::secrets::Origin`] and the [`super::secrets::Reads`] of its build, and be listed
//! by [`contexts`].

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Notify};

use super::server::ServerTls;
use crate::discovery::{content_hash, FileChange, WatchOptions, WatchSpec, Watcher};
use crate::reload::history::Attempt;
use crate::server::Server;
use crate::snapshot::Snapshot;
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

/// A running context whose certificates come from files, and the listener it serves.
pub struct Tracked {
    pub tls: Arc<ServerTls>,
    /// The listener's stat name (`listener.<it>.*`).
    pub listener: String,
}

/// Every context of `snap` that reads files, once each.
pub fn contexts(snap: &Snapshot) -> Vec<Tracked> {
    let mut out: Vec<Tracked> = Vec::new();
    for l in &snap.listeners {
        for chain in l.config.chains() {
            let Some(tls) = chain.tls.as_ref().filter(|t| t.origin.is_some()) else { continue };
            if !out.iter().any(|t| Arc::ptr_eq(&t.tls, tls)) {
                out.push(Tracked { tls: Arc::clone(tls), listener: l.config.stat_name() });
            }
        }
    }
    out
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
    tls: Arc<ServerTls>,
    listener: String,
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
            store.counter(&format!("listener.{}.server_ssl_socket_factory.ssl_context_update_by_sds", t.listener));
            store.counter(&format!("listener.{}.server_ssl_socket_factory.ssl_context_update_rejected", t.listener));
            let m = t.tls.material();
            for f in &m.config.reads.files {
                files.retain(|(s, _)| s.path != f.spec.path);
                files.push((f.spec.clone(), f.hash));
            }
            for s in &m.config.reads.sds {
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
            let before = t.tls.material();
            let reads = &before.config.reads;
            if !reads.files.iter().any(|f| changed.contains(&f.spec.path)) {
                continue;
            }
            let Some(origin) = t.tls.origin.clone() else { continue };
            // Retried now: an earlier failure of the same context was a half-written change.
            self.failed.retain(|f| !Arc::ptr_eq(&f.tls, &t.tls));
            let started = Instant::now();
            let files: Vec<PathBuf> = reads.files.iter().map(|f| f.spec.path.clone()).collect();
            let sds_changed: Vec<&super::secrets::SdsRead> =
                reads.sds.iter().filter(|s| changed.contains(&s.path)).collect();
            let read = files.clone();
            // What the files hold before the rebuild reads them: a failure is final only if
            // they still hold it after the quiet period.
            let result = tokio::task::spawn_blocking(move || (hashes_now(&read), crate::config::rebuild_tls(&origin)));
            let (on_disk, result) = match result.await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "certificate rebuild failed");
                    continue;
                }
            };
            let store = &self.server.shared.stats;
            let listener_counter =
                |s: &str| store.counter(&format!("listener.{}.server_ssl_socket_factory.{s}", t.listener));
            let changed_files: Vec<String> =
                files.iter().filter(|p| changed.contains(*p)).map(|p| p.display().to_string()).collect();
            match result {
                Ok(material) => {
                    if material.config == before.config {
                        continue;
                    }
                    let serials: Vec<String> =
                        material.certs.iter().filter_map(|c| c.first()).map(|c| c.serial_number.clone()).collect();
                    for s in &material.config.reads.sds {
                        if let Some((stats, applied)) = self.sds.get_mut(&s.name) {
                            if *applied != s.version_info || sds_changed.iter().any(|c| c.name == s.name) {
                                stats.success(&s.version_info);
                                applied.clone_from(&s.version_info);
                            }
                        }
                    }
                    t.tls.swap(material);
                    listener_counter("ssl_context_update_by_sds").inc();
                    tracing::info!(
                        listener = %t.listener,
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
                            "tls_context": before.config.path,
                            "listener": t.listener,
                            "serial_numbers": serials,
                        }),
                    });
                }
                Err(errors) => {
                    // A writer may still be at work (the key of a certificate renamed a
                    // moment ago): decided after the quiet period, or by the next change.
                    self.failed.push(Failure {
                        tls: Arc::clone(&t.tls),
                        listener: t.listener.clone(),
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
                tracing::debug!(listener = %f.listener, "certificate files changed after a failed read; waiting for the writer");
                continue;
            }
            self.reject(f);
        }
    }

    fn reject(&self, f: Failure) {
        let before = f.tls.material();
        for s in &before.config.reads.sds {
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
        store.counter(&format!("listener.{}.server_ssl_socket_factory.ssl_context_update_rejected", f.listener)).inc();
        tracing::error!(
            listener = %f.listener,
            "certificate update rejected, the running certificates stay:\n{}",
            crate::config::located(&f.errors).join("\n")
        );
        self.server.history.record(Attempt {
            files: f.changed,
            outcome: "rejected",
            error: Some(f.errors.to_string()),
            duration: f.started.elapsed(),
            changes: serde_json::json!({ "tls_context": before.config.path, "listener": f.listener }),
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

/// `server.days_until_first_cert_expiring`: the fewest whole days until a running
/// certificate (served or trusted) expires; `None` without TLS.
pub fn days_until_first_cert_expiring(snap: &Snapshot, now: i64) -> Option<u64> {
    let mut min: Option<u64> = None;
    for l in &snap.listeners {
        for chain in l.config.chains() {
            let Some(tls) = &chain.tls else { continue };
            let m = tls.material();
            for c in m.certs.iter().filter_map(|c| c.first()).chain(m.ca.iter()) {
                let d = c.days_until_expiration(now);
                min = Some(min.map_or(d, |m| m.min(d)));
            }
        }
    }
    min
}
