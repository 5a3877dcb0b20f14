//! Hot reload: the one writer of the running configuration.
//!
//! ```text
//! watcher batch (files changed together) --load (parse + validate per role)--> Sources'
//!   --effective--> Effective' --cross checks--> diff(old, new) --build (bind new listeners,
//!   reuse unchanged clusters and tables)--> Snapshot' --ArcSwap store--> commit (start and
//!   stop accept loops) --> stats, /reloads, /config_dump
//! ```
//! A batch is applied whole or not at all: any error leaves the running snapshot untouched
//! (Envoy applies the valid part of a bad LDS/CDS update; legate does not).
//!
//! Cost follows the change, not the file: the reloader's `DocCache` parses and validates only
//! the changed items of a long file, unchanged route configs and endpoint lists stay the same
//! `Arc`s (compared by pointer), route tables take over the routes that did not change, and
//! what a reload replaces is freed off the runtime's worker thread. `/config_dump` renders the
//! files' JSON when it is asked for, from the bytes each `Loaded` keeps.

pub mod build;
pub mod history;
pub mod load;
pub mod sources;
pub mod state;
pub mod stats;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::config::model::{DiscoveryType, RouteSource};
use crate::config::{self as cfg, ConfigErrors, DocCache};
use crate::discovery::{content_hash, FileChange, WatchOptions, WatchSpec, Watcher};
use crate::listener::manager::ListenerManager;
use crate::server::Server;
use crate::snapshot::Snapshot;
use history::Attempt;
use load::LoadError;
use sources::{Role, Sources};
use state::{diff, Diff, Effective};
use stats::{Outcome, SubscriptionStats};

/// Why the initial configuration could not be served.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Build(#[from] build::BuildError),
    #[error("file watcher: {0}")]
    Watch(std::io::Error),
    #[error("the reloader ended before the first snapshot served")]
    Ended,
}

/// The running reloader; [`Running::finished`] resolves when it has stopped.
pub struct Running {
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn finished(self) {
        let _ = self.task.await;
    }
}

/// Starts the reloader as a runtime task (its first load, then every reload until
/// `shutdown` flips) and returns once the first snapshot serves.
///
/// Why the first load runs in the task too, not in the caller (the main thread): glibc gives
/// each thread that allocates its own malloc arena, and memory freed into an arena is reused
/// only by allocations from that arena. A first configuration parsed on the main thread and
/// every later one on a worker left the first copy's holes in the main arena for good (RSS
/// with 10,000 routes: 43 -> 48 MiB over the first reloads). With the load on the workers
/// (one worker: `--concurrency 1`), each reload reuses what the one before it freed. A
/// dedicated thread would pin it to one arena whatever the concurrency, but waking it costs
/// about a millisecond of change-to-effect latency when the proxy is pinned to one CPU.
pub async fn spawn(
    server: Arc<Server>,
    sources: Sources,
    manager: ListenerManager,
    watch: WatchOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<Running, StartError> {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        match Reloader::start(server, sources, manager, watch).await {
            Ok(r) => {
                let _ = started_tx.send(Ok(()));
                r.run(shutdown).await;
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
            }
        }
    });
    match started_rx.await {
        Ok(Ok(())) => Ok(Running { task }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StartError::Ended),
    }
}

pub struct Reloader {
    server: Arc<Server>,
    sources: Sources,
    effective: Effective,
    manager: ListenerManager,
    watcher: Option<Watcher>,
    changes: Option<mpsc::Receiver<Vec<FileChange>>>,
    /// The last parse of each discovery file, to parse the next version in pieces.
    docs: DocCache,
    /// The watcher's quiet period: how long a failed read waits for a writer to finish.
    quiet: std::time::Duration,
    /// Changes of a batch rejected only by what crosses files (a route to a cluster another
    /// file adds): retried with every later batch, as long as the file still holds them.
    deferred: Vec<FileChange>,
}

/// What an attempt to apply a batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tried {
    Applied,
    Rejected { cross_only: bool },
    Nothing,
}

/// One file's result inside a batch.
struct FileResult {
    role: Role,
    path: PathBuf,
    /// `content_hash` of the bytes loaded.
    hash: u64,
    result: Result<(Outcome, String), LoadError>,
    /// Tolerated values (`server.dynamic_unknown_fields`).
    warnings: Vec<cfg::ConfigError>,
}

impl Reloader {
    /// Loads the discovery files the bootstrap names, builds and serves the first snapshot,
    /// and starts watching every file.
    pub async fn start(
        server: Arc<Server>,
        sources: Sources,
        manager: ListenerManager,
        watch: WatchOptions,
    ) -> Result<Reloader, StartError> {
        let mut r = Reloader {
            server,
            sources,
            effective: Effective::default(),
            manager,
            watcher: None,
            changes: None,
            docs: DocCache::default(),
            quiet: watch.quiet,
            deferred: Vec::new(),
        };
        let started = Instant::now();
        let mut results = Vec::new();
        let mut next = r.sources.clone();
        load_missing(&mut next, &mut r.docs, &mut results);
        let (next, eff, errors) = r.checked(next, &results);
        if let Some(e) = &errors {
            tracing::error!("initial discovery files rejected:\n{e}");
        }
        let d = diff(&r.effective, &eff);
        r.apply(next, eff, &d).await?;
        r.record(&results, errors.is_none(), errors.map(|e| e.to_string()), started, &d);
        let files = r.watch_specs();
        if !files.is_empty() {
            let (w, rx) = Watcher::spawn(files, watch).map_err(StartError::Watch)?;
            // What was loaded is the baseline: a write after it (even before the watch
            // started) is reported.
            for res in &results {
                w.applied(&res.path, res.hash);
            }
            if let Some(p) = &r.sources.bootstrap_path {
                if let Ok(bytes) = std::fs::read(p) {
                    w.applied(p, content_hash(&bytes));
                }
            }
            r.watcher = Some(w);
            r.changes = Some(rx);
        }
        Ok(r)
    }

    /// Applies watcher batches until `shutdown` flips.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let Some(mut rx) = self.changes.take() else {
            let _ = shutdown.changed().await;
            return;
        };
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(b) => self.apply_batch(b).await,
                    None => {
                        // The watcher is gone; the listeners this reloader owns keep serving.
                        tracing::error!("file watcher stopped: configuration changes are no longer applied");
                        let _ = shutdown.changed().await;
                        return;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    fn watch_specs(&self) -> Vec<WatchSpec> {
        self.sources
            .files()
            .into_iter()
            .map(|(_, s)| WatchSpec { path: s.path, watched_directory: s.watched_directory })
            .collect()
    }

    /// Applies a batch, with the changes deferred earlier when they still hold: the result
    /// does not depend on the order in which related files land (an LDS file naming a
    /// cluster whose CDS file is renamed a moment later applies with it). A failed retry is
    /// not recorded again; the batch is then tried alone.
    async fn apply_batch(&mut self, batch: Vec<FileChange>) {
        let retry = self.still_deferred(&batch);
        if !retry.is_empty() {
            let mut combined = batch.clone();
            combined.extend(retry.iter().cloned());
            if self.attempt(combined, true).await == Tried::Applied {
                return;
            }
        }
        let tried = self.attempt(batch.clone(), false).await;
        self.deferred = retry;
        if tried == (Tried::Rejected { cross_only: true }) {
            for c in batch.into_iter().filter(|c| c.content.is_some()) {
                self.deferred.retain(|d| d.path != c.path);
                self.deferred.push(c);
            }
        }
    }

    /// The deferred changes the batch does not replace and whose file still holds them.
    fn still_deferred(&mut self, batch: &[FileChange]) -> Vec<FileChange> {
        let mut deferred = std::mem::take(&mut self.deferred);
        deferred.retain(|d| {
            !batch.iter().any(|c| c.path == d.path)
                && std::fs::read(&d.path).is_ok_and(|bytes| content_hash(&bytes) == d.hash)
        });
        deferred
    }

    /// One attempt at a batch; `silent`: a rejection is neither waited on nor recorded.
    async fn attempt(&mut self, batch: Vec<FileChange>, silent: bool) -> Tried {
        let started = Instant::now();
        let mut next = self.sources.clone();
        let mut results = Vec::new();
        // Bootstrap first: it says which other files exist.
        let mut ordered: Vec<(Role, &FileChange)> =
            batch.iter().flat_map(|c| self.sources.roles_of(&c.path).into_iter().map(move |r| (r, c))).collect();
        ordered.sort_by(|a, b| a.0.cmp(&b.0));
        for (role, change) in ordered {
            let Some(bytes) = &change.content else {
                tracing::info!(config.file = %change.path.display(), config.role = %role, "file removed; keeping its last good configuration");
                continue;
            };
            let mut warnings = Vec::new();
            let result = load::load(&mut next, &mut self.docs, &role, &change.path, bytes, &mut warnings);
            if let (Err(e), false) = (&result, change.settled) {
                // A writer may still be writing: wait for it to close the file.
                tracing::debug!(config.file = %change.path.display(), error = %e.errors(), "unsettled file does not validate yet");
                continue;
            }
            results.push(FileResult { role, path: change.path.clone(), hash: change.hash, result, warnings });
        }
        let load_failed = results.iter().any(|r| r.result.is_err());
        if load_failed && silent {
            return Tried::Rejected { cross_only: false };
        }
        if load_failed {
            // A rename completes a change, but a writer may have opened the file for an
            // in-place rewrite before the window's read (its truncation's event not yet
            // delivered): that read was half of a write. A failure is counted only if the file
            // still holds what was read after the quiet period a writer gets; otherwise the
            // watcher reports what the writer leaves.
            tokio::time::sleep(self.quiet).await;
            results.retain(|r| {
                let now = std::fs::read(&r.path).map(|b| content_hash(&b));
                let superseded = r.result.is_err() && now.is_ok_and(|h| h != r.hash);
                if superseded {
                    tracing::debug!(config.file = %r.path.display(), "file changed after a failed read; waiting for the writer");
                }
                !superseded
            });
        }
        if results.is_empty() {
            return Tried::Nothing;
        }
        load_missing(&mut next, &mut self.docs, &mut results);
        let (next, eff, errors) = self.checked(next, &results);
        let cross_only = errors.is_some() && !results.iter().any(|r| r.result.is_err());
        let d = diff(&self.effective, &eff);
        let mut error = errors.map(|e| e.to_string());
        if silent && error.is_some() {
            return Tried::Rejected { cross_only };
        }
        if error.is_none() {
            if let Err(e) = self.apply(next, eff, &d).await {
                error = Some(e.to_string());
            }
        }
        match &error {
            None => {
                tracing::info!(reload.ms = started.elapsed().as_secs_f64() * 1000.0, changes = %d.summary(), "configuration applied")
            }
            Some(e) => tracing::error!("configuration update rejected, the running configuration stays:\n{e}"),
        }
        let applied = error.is_none();
        let tried = if applied { Tried::Applied } else { Tried::Rejected { cross_only } };
        if silent && !applied {
            return tried;
        }
        self.record(&results, applied, error, started, &d);
        let files: HashSet<PathBuf> = self.sources.files().into_iter().map(|(_, s)| s.path).collect();
        self.docs.retain(|p| files.contains(p));
        if let Some(w) = &self.watcher {
            w.set_specs(self.watch_specs());
            if applied {
                // What runs now is the baseline: writing an older content back is a change.
                for r in results.iter().filter(|r| r.result.is_ok()) {
                    w.applied(&r.path, r.hash);
                }
            }
        }
        tried
    }

    /// Validates what crosses files; returns the sources to apply (or the running ones with
    /// the errors).
    fn checked(&self, next: Sources, results: &[FileResult]) -> (Sources, Effective, Option<ConfigErrors>) {
        let mut errors: Vec<cfg::ConfigError> = Vec::new();
        for r in results {
            if let Err(e) = &r.result {
                errors.extend(e.errors().0.iter().cloned());
            }
        }
        let names: HashSet<String> = next.clusters().map(|c| c.name.clone()).collect();
        let mut seen = HashSet::new();
        for c in next.clusters() {
            if !seen.insert(c.name.as_str()) {
                errors.push(err_in(
                    next.cds.as_ref().map(|c| c.path.clone()),
                    "resources",
                    format!("cluster {:?} is also a static cluster", c.name),
                ));
            }
        }
        if let Some(lds) = &next.lds {
            for mut e in cfg::check_cluster_refs(&lds.value, &names, "resources") {
                e.file.clone_from(&lds.path);
                errors.push(e);
            }
            let static_names: HashSet<&str> = next.bootstrap.listeners.iter().map(|l| l.name.as_str()).collect();
            for (i, l) in lds.value.iter().enumerate() {
                if static_names.contains(l.name.as_str()) {
                    errors.push(err_in(
                        Some(lds.path.clone()),
                        &format!("resources[{i}].name"),
                        format!("listener {:?} is also a static listener", l.name),
                    ));
                }
            }
        }
        for mut e in cfg::check_cluster_refs(&next.bootstrap.listeners, &names, "static_resources.listeners") {
            if let Some(p) = &next.bootstrap_path {
                e.file.clone_from(p);
            }
            e.message.push_str(" (a CDS update may not remove a cluster static routes use)");
            errors.push(e);
        }
        if errors.is_empty() {
            let eff = next.effective();
            (next, eff, None)
        } else {
            (self.sources.clone(), self.effective.clone(), Some(ConfigErrors(errors)))
        }
    }

    async fn apply(&mut self, next: Sources, eff: Effective, d: &Diff) -> Result<(), build::BuildError> {
        let server = Arc::clone(&self.server);
        let prev = server.shared.snapshot.load_full();
        let order: Vec<String> = next.listeners().map(|l| l.name.clone()).collect();
        let bootstrap = Arc::new(next.bootstrap.clone());
        let built =
            build::build(&prev, &eff, d, &order, bootstrap, &server.shared.stats, &server.log_writers, &self.manager)
                .await?;
        let removed_clusters: Vec<_> = prev
            .clusters
            .iter()
            .filter(|(n, _)| !built.snapshot.clusters.contains_key(*n))
            .map(|(_, c)| Arc::clone(c))
            .collect();
        // Listeners removed or rebuilt: the old version's stats may be orphans once it drains.
        let replaced_listeners: Vec<_> = prev
            .listeners
            .iter()
            .filter(|l| !built.snapshot.listeners.iter().any(|n| Arc::ptr_eq(n, l)))
            .map(|l| {
                let prefixes: Vec<String> = l.config.hcms().map(|h| h.stat_prefix.clone()).collect();
                (Arc::downgrade(l), l.config.stat_name(), prefixes)
            })
            .collect();
        // Connections on chains this reload changes or removes keep their last version.
        let retired = crate::snapshot::retire_chains(&prev, &built.snapshot);
        server.shared.snapshot.store(Arc::new(built.snapshot));
        if !retired.is_empty() {
            let drain_time = server.shared.drain_time;
            tokio::spawn(async move {
                tokio::time::sleep(drain_time).await;
                drop(retired);
            });
        }
        let snapshots = Arc::clone(&server.shared.snapshot);
        let lookup: crate::upstream::eds_rest::Lookup =
            Arc::new(move |name: &str| snapshots.load().clusters.get(name).cloned());
        built.staged.commit(&lookup, &next.bootstrap.node);
        self.manager.commit(built.plan, &prev);
        server.set_bound(self.manager.bound());
        for c in removed_clusters {
            // In-flight requests hold their own Arc; idle connections can go now.
            c.shutdown();
            let (stats, prefix) = (Arc::clone(&server.shared.stats), format!("cluster.{}.", c.config.stat_name()));
            forget_when_gone(&server, Arc::downgrade(&c), move || stats.retain_live(&prefix));
        }
        for (weak, listener_name, stat_prefixes) in replaced_listeners {
            let shared = Arc::clone(&server.shared);
            forget_when_gone(&server, weak, move || {
                // Another listener may use the same address or stat prefix: its handles keep
                // the shared names, and only names no listener uses go (RDS stats included).
                let snap = shared.snapshot.load();
                if !snap.listeners.iter().any(|l| l.config.stat_name() == listener_name) {
                    shared.stats.retain_live(&format!("listener.{listener_name}."));
                }
                for stat_prefix in &stat_prefixes {
                    if !snap.listeners.iter().flat_map(|l| l.config.hcms()).any(|h| h.stat_prefix == *stat_prefix) {
                        shared.stats.retain_live(&format!("http.{stat_prefix}."));
                    }
                }
            });
        }
        count_changes(&server, d, &prev);
        let old_sources = std::mem::replace(&mut self.sources, next);
        let old_effective = std::mem::replace(&mut self.effective, eff);
        server.set_sources(Arc::new(self.sources.clone()));
        // What the new snapshot replaced can hold a 10,000-route configuration and its compiled
        // table: freeing them takes milliseconds, which would delay the first requests on the
        // new snapshot when the runtime has one worker. A blocking-pool thread frees them.
        tokio::task::spawn_blocking(move || drop((prev, old_sources, old_effective)));
        Ok(())
    }

    fn record(&self, results: &[FileResult], applied: bool, error: Option<String>, started: Instant, d: &Diff) {
        let server = &self.server;
        for r in results {
            for w in &r.warnings {
                // Envoy accepts such a dynamic resource with a warning and counts it.
                tracing::warn!(config.file = %w.file.display(), config.field = %w.path, "{}", w.message);
                server.dynamic_unknown_field();
            }
            let outcome = match (&r.result, applied) {
                (Ok((o, _)), true) => *o,
                (Ok(_), false) => Outcome::Rejected,
                (Err(e), _) => e.outcome(),
            };
            let version = r.result.as_ref().map(|(_, v)| v.as_str()).unwrap_or("");
            for prefix in stat_prefixes(&r.role, &self.sources) {
                SubscriptionStats::new(&server.shared.stats, &prefix).record(outcome, version);
            }
            if let Err(e) = &r.result {
                server.set_error(&r.role.to_string(), &r.path, &e.errors().to_string());
            } else if !applied {
                server.set_error(&r.role.to_string(), &r.path, error.as_deref().unwrap_or(""));
            } else {
                server.clear_error(&r.role.to_string());
            }
        }
        server.history.record(Attempt {
            files: results.iter().map(|r| r.path.display().to_string()).collect(),
            outcome: if applied { "applied" } else { "rejected" },
            error,
            duration: started.elapsed(),
            changes: if applied { d.summary() } else { serde_json::Value::Null },
        });
    }
}

/// Drops a removed cluster's or listener's stats from the store once its last user has ended
/// (the last `Arc` gone), so thousands of reloads do not grow `/stats`. Bounded: it checks once
/// a second for at most the drain time plus a minute. A cluster or listener of the same name
/// added back meanwhile holds its own handles, which `retain_live` keeps.
fn forget_when_gone<T: Send + Sync + 'static>(
    server: &Arc<Server>,
    gone: std::sync::Weak<T>,
    forget: impl FnOnce() + Send + 'static,
) {
    let checks = server.shared.drain_time.as_secs().saturating_add(60);
    tokio::spawn(async move {
        for _ in 0..checks {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if gone.upgrade().is_none() {
                forget();
                return;
            }
        }
    });
}

fn err_in(file: Option<PathBuf>, path: &str, message: String) -> cfg::ConfigError {
    cfg::ConfigError { file: file.unwrap_or_default(), path: path.to_string(), message }
}

/// Reads the discovery files the sources name but have not loaded (startup, a new LDS
/// listener with RDS, a new EDS cluster, new LDS/CDS paths); drops what nothing names.
fn load_missing(next: &mut Sources, docs: &mut DocCache, results: &mut Vec<FileResult>) {
    for _ in 0..3 {
        // LDS/CDS first, then the RDS/EDS files they name: at most a few rounds.
        let mut loaded_any = false;
        for (role, src) in next.files() {
            let missing = match &role {
                Role::Bootstrap => false,
                Role::Lds => next.lds.is_none(),
                Role::Cds => next.cds.is_none(),
                Role::Rds(n) => !next.rds.contains_key(n),
                Role::Eds(s) => !next.eds.contains_key(s),
            };
            if !missing || results.iter().any(|r| r.role == role) {
                continue;
            }
            match std::fs::read(&src.path) {
                Ok(bytes) => {
                    let mut warnings = Vec::new();
                    let result = load::load(next, docs, &role, &src.path, &bytes, &mut warnings);
                    loaded_any = true;
                    results.push(FileResult { role, path: src.path, hash: content_hash(&bytes), result, warnings });
                }
                Err(e) => {
                    tracing::warn!(config.file = %src.path.display(), config.role = %role, error = %e, "cannot read discovery file yet; waiting for it");
                }
            }
        }
        if !loaded_any {
            break;
        }
    }
    let rds: HashSet<String> = next
        .listeners()
        .flat_map(|l| l.hcms())
        .filter_map(|h| match &h.routes {
            RouteSource::Rds { route_config_name, .. } => Some(route_config_name.clone()),
            RouteSource::Inline(_) => None,
        })
        .collect();
    next.rds.retain(|n, _| rds.contains(n));
    let eds: HashSet<String> = next
        .clusters()
        .filter_map(|c| match &c.discovery {
            DiscoveryType::Eds { service_name, .. } => Some(service_name.clone()),
            _ => None,
        })
        .collect();
    next.eds.retain(|n, _| eds.contains(n));
}

/// Envoy's stat prefixes for a role: one per connection manager using an RDS name, one per
/// cluster using an EDS service.
fn stat_prefixes(role: &Role, sources: &Sources) -> Vec<String> {
    match role {
        Role::Bootstrap => vec!["server.bootstrap".to_string()],
        Role::Lds => vec!["listener_manager.lds".to_string()],
        Role::Cds => vec!["cluster_manager.cds".to_string()],
        Role::Rds(name) => {
            let mut v: Vec<String> = sources
                .listeners()
                .flat_map(|l| l.hcms())
                .filter(
                    |h| matches!(&h.routes, RouteSource::Rds { route_config_name, .. } if route_config_name == name),
                )
                .map(|h| format!("http.{}.rds.{name}", h.stat_prefix))
                .collect();
            v.dedup();
            v
        }
        Role::Eds(service) => sources
            .clusters()
            .filter(|c| matches!(&c.discovery, DiscoveryType::Eds { service_name, .. } if service_name == service))
            .map(|c| format!("cluster.{}", c.stat_name()))
            .collect(),
    }
}

fn count_changes(server: &Server, d: &Diff, prev: &Snapshot) {
    let s = &server.shared.stats;
    let initial = prev.listeners.is_empty() && prev.clusters.is_empty();
    s.counter("listener_manager.listener_added").add(d.listeners.added.len() as u64);
    s.counter("cluster_manager.cluster_added").add(d.clusters.added.len() as u64);
    if !initial {
        s.counter("listener_manager.listener_modified").add(d.listeners.modified.len() as u64);
        s.counter("listener_manager.listener_removed").add(d.listeners.removed.len() as u64);
        s.counter("cluster_manager.cluster_modified").add(d.clusters.modified.len() as u64);
        s.counter("cluster_manager.cluster_removed").add(d.clusters.removed.len() as u64);
    }
    let snap = server.shared.snapshot.load();
    s.gauge("cluster_manager.active_clusters").set(snap.clusters.len() as i64);
    s.gauge("cluster_manager.warming_clusters").set(0);
    if d.listeners.modified.iter().flat_map(|(_, l)| l.hcms()).any(|h| matches!(h.routes, RouteSource::Rds { .. }))
        || !d.routes.is_empty()
    {
        // RDS-fed tables were recompiled.
        tracing::debug!(routes = %d.routes.summary(), "route configurations changed");
    }
}
