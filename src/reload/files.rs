//! The file source: the bootstrap and the discovery files it names, delivered to the reloader
//! core as typed updates.
//!
//! ```text
//! watcher batch (files changed together) --load (parse + validate per role, DocCache)-->
//!   Sources' --settle: an unsettled or superseded failure waits for its writer-->
//!   --cross-file checks--> Effective' --updates(accepted, Effective')--> core --ACK/NACK-->
//!   stats, /reloads, /config_dump, watcher baseline; a batch NACKed only for what crosses
//!   files is retried with the next batches
//! ```
//! Everything that knows about files lives here: paths and roles, the document cache, the
//! settle-and-retry of half-written files and the retry of changes that wait for another file.
//! What the core receives is what an xDS management server would send: per type, the
//! resources added or changed by name, and the names removed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::config::model::{DiscoveryType, RouteSource};
use crate::config::{self as cfg, ConfigErrors, DocCache};
use crate::discovery::{content_hash, FileChange, WatchOptions, WatchSpec, Watcher};
use crate::server::Server;
use crate::xds::{Response, SourceHandle};

use super::history::Attempt;
use super::load::{self, FileResult};
use super::sources::{stat_prefixes, Role, Sources};
use super::state::{diff, Diff, Effective};
use super::stats::{Outcome, SubscriptionStats};
use super::to_updates::{render, updates};
use super::StartError;

/// What an attempt to apply a batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tried {
    Applied,
    Rejected { cross_only: bool },
    Nothing,
}

/// The files' state: what was accepted, and how to watch for more.
pub struct FileSource {
    server: Arc<Server>,
    /// The files as the core last accepted them (for `/config_dump`).
    sources: Sources,
    /// What the accepted files flatten to: what the core holds from this source.
    effective: Effective,
    core: SourceHandle,
    watcher: Option<Watcher>,
    changes: Option<mpsc::Receiver<Vec<FileChange>>>,
    /// The last parse of each discovery file, to parse the next version in pieces.
    docs: DocCache,
    /// The watcher's quiet period: how long a failed read waits for a writer to finish.
    quiet: std::time::Duration,
    /// Changes of a batch rejected only by what crosses files (a route to a cluster another
    /// file adds): retried with every later batch, as long as the file still holds them.
    deferred: Vec<FileChange>,
    /// The content hash of each file as it runs, to tell which files of a watched directory
    /// a swap changed.
    running: HashMap<PathBuf, u64>,
    /// The files and hashes of the last rejected attempt: the same set arriving again (the
    /// rest of one swap, reported late) is not counted twice.
    last_rejected: Vec<(PathBuf, u64)>,
    /// Watches the certificate files of the running TLS contexts.
    rotation: crate::tls::rotation::Rotation,
}

impl FileSource {
    /// Loads the discovery files the bootstrap names, delivers them and waits until the first
    /// snapshot serves, then starts watching every file.
    pub async fn start(
        server: Arc<Server>,
        sources: Sources,
        core: SourceHandle,
        watch: WatchOptions,
    ) -> Result<FileSource, StartError> {
        let rotation = crate::tls::rotation::spawn(Arc::clone(&server), watch);
        let mut r = FileSource {
            rotation,
            server,
            sources,
            effective: Effective::default(),
            core,
            watcher: None,
            changes: None,
            docs: DocCache::default(),
            quiet: watch.quiet,
            deferred: Vec::new(),
            running: HashMap::new(),
            last_rejected: Vec::new(),
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
        r.deliver(next, eff).await.map_err(|e| StartError::Rejected(render(&e)))?;
        if errors.is_none() {
            r.running.extend(results.iter().map(|res| (res.path.clone(), res.hash)));
        }
        r.record(&results, errors.is_none(), errors.map(|e| e.to_string()), started, &d);
        r.rotation.track();
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
        let batch = self.with_swapped_siblings(batch);
        let set = change_set(&batch);
        if !self.last_rejected.is_empty() && set == self.last_rejected {
            // The rest of a rejected swap, reported late: rejected again, counted once.
            if self.attempt(batch, true).await != Tried::Applied {
                tracing::debug!("a rejected set of files arrived again; the running configuration stays");
            }
            return;
        }
        let retry = self.still_deferred(&batch);
        if !retry.is_empty() {
            let mut combined = batch.clone();
            combined.extend(retry.iter().cloned());
            if self.attempt(combined, true).await == Tried::Applied {
                return;
            }
        }
        let tried = self.attempt(batch.clone(), false).await;
        self.last_rejected = if matches!(tried, Tried::Rejected { .. }) { set } else { Vec::new() };
        self.deferred = retry;
        if tried == (Tried::Rejected { cross_only: true }) {
            for c in batch.into_iter().filter(|c| c.content.is_some()) {
                self.deferred.retain(|d| d.path != c.path);
                self.deferred.push(c);
            }
        }
    }

    /// A ConfigMap swap changes every file under its `watched_directory` at once, but the
    /// watcher may report them in two batches (a file that joins the watched set during the
    /// swap is read on its own). The batch therefore takes in, with its current content, each
    /// file sharing a watched directory with a changed file whose content differs from what
    /// runs: a swap applies, or is rejected, whole.
    fn with_swapped_siblings(&self, mut batch: Vec<FileChange>) -> Vec<FileChange> {
        let files = self.sources.files();
        let dirs: HashSet<&PathBuf> = files
            .iter()
            .filter(|(_, s)| batch.iter().any(|c| c.path == s.path))
            .filter_map(|(_, s)| s.watched_directory.as_ref())
            .collect();
        if dirs.is_empty() {
            return batch;
        }
        for (_, s) in &files {
            let shares = s.watched_directory.as_ref().is_some_and(|d| dirs.contains(d));
            if !shares || batch.iter().any(|c| c.path == s.path) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&s.path) else { continue };
            let hash = content_hash(&bytes);
            if self.running.get(&s.path) != Some(&hash) {
                tracing::debug!(config.file = %s.path.display(), "joins the batch of its watched directory");
                batch.push(FileChange { path: s.path.clone(), content: Some(bytes.into()), hash, settled: true });
            }
        }
        batch
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
            results.push(FileResult::new(role, &change.path, bytes, change.hash, result, warnings));
        }
        let load_failed = results.iter().any(|r| r.result.is_err());
        if load_failed && silent {
            return Tried::Rejected { cross_only: false };
        }
        if load_failed {
            // A rename completes a change, but a writer may have opened the file for an
            // in-place rewrite before the window's read (its truncation's event not yet
            // delivered): that read was half of a write. A failure is counted only if the file
            // still holds what was read after the quiet period a writer gets (the wait ends as
            // soon as the writer changes the file again); otherwise the
            // watcher reports what the writer leaves.
            let failed: Vec<(PathBuf, u64)> =
                results.iter().filter(|r| r.result.is_err()).map(|r| (r.path.clone(), r.hash)).collect();
            wait_for_writer(&failed, self.quiet).await;
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
        // The log shows each error's line in its file; `/reloads` keeps the text
        // `/config_dump` shows.
        let mut logged = errors.as_ref().map(|e| cfg::located(e).join("\n"));
        let mut error = errors.map(|e| e.to_string());
        if silent && error.is_some() {
            return Tried::Rejected { cross_only };
        }
        let admin_or_node_changed =
            next.bootstrap.admin != self.sources.bootstrap.admin || next.bootstrap.node != self.sources.bootstrap.node;
        if error.is_none() {
            if let Err(e) = self.deliver(next, eff).await {
                error = Some(render(&e));
                logged = error.clone();
            }
        }
        match &error {
            None => {
                // Once per change that is applied: a rejected or retried attempt says nothing.
                if admin_or_node_changed {
                    let file = self.sources.bootstrap_path.as_deref().unwrap_or(Path::new("")).display();
                    tracing::warn!(config.file = %file, "admin or node changed: they take effect after a restart; the rest applies now");
                }
                let ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0);
                let files: Vec<String> = results.iter().map(|r| r.path.display().to_string()).collect();
                tracing::info!(files = %files.join(", "), reload.ms = %ms, changes = %d.summary(), "configuration applied")
            }
            Some(e) => {
                let e = logged.as_deref().unwrap_or(e);
                tracing::error!("configuration update rejected, the running configuration stays:\n{e}")
            }
        }
        let applied = error.is_none();
        let tried = if applied { Tried::Applied } else { Tried::Rejected { cross_only } };
        if silent && !applied {
            return tried;
        }
        self.record(&results, applied, error, started, &d);
        if applied {
            self.rotation.track();
        }
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
        if applied {
            self.running.extend(results.iter().map(|r| (r.path.clone(), r.hash)));
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
        let broken = results.iter().flat_map(|r| r.broken_clusters.iter().cloned());
        let names: HashSet<String> = next.clusters().map(|c| c.name.clone()).chain(broken).collect();
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

    /// Sends the core what changes from the accepted files to `next`; on an ACK, `next` is
    /// what was accepted.
    async fn deliver(&mut self, next: Sources, eff: Effective) -> Result<(), ConfigErrors> {
        let updates = updates(&self.effective, &eff, &next);
        match self.core.deliver(updates).await {
            Some(Response::Ack) => {}
            Some(Response::Nack(e)) => return Err(e),
            None => {
                return Err(ConfigErrors(vec![cfg::ConfigError {
                    file: PathBuf::new(),
                    path: String::new(),
                    message: "the reloader has stopped".to_string(),
                }]))
            }
        }
        let old_sources = std::mem::replace(&mut self.sources, next);
        let old_effective = std::mem::replace(&mut self.effective, eff);
        self.server.set_sources(Arc::new(self.sources.clone()));
        // Freed off the worker: the old files can hold 10,000 routes.
        tokio::task::spawn_blocking(move || drop((old_sources, old_effective)));
        Ok(())
    }

    fn record(&self, results: &[FileResult], applied: bool, error: Option<String>, started: Instant, d: &Diff) {
        let server = &self.server;
        // `/reloads` first: whoever sees a counter move finds the attempt it counted.
        server.history.record(Attempt {
            files: results.iter().map(|r| r.path.display().to_string()).collect(),
            outcome: if applied { "applied" } else { "rejected" },
            error: error.clone(),
            duration: started.elapsed(),
            changes: if applied { d.summary() } else { serde_json::Value::Null },
        });
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
    }
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
                    results.push(FileResult::new(role, &src.path, &bytes, content_hash(&bytes), result, warnings));
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

/// The files and content hashes of a batch, in a comparable order.
fn change_set(batch: &[FileChange]) -> Vec<(PathBuf, u64)> {
    let mut set: Vec<(PathBuf, u64)> = batch.iter().map(|c| (c.path.clone(), c.hash)).collect();
    set.sort();
    set.dedup();
    set
}

/// How often [`wait_for_writer`] looks at the files' metadata.
const WRITER_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Waits up to `quiet` for a writer to change any of the `failed` files (path, hash of what
/// was read) again. It ends as soon as one no longer holds what was read, so that a read that
/// raced a delete-and-recreate or an editor's save dance costs the writer's time, not the
/// whole quiet period: the watcher then reports what the writer leaves. Looks at the metadata
/// every few milliseconds and reads a file again only when its metadata changed.
async fn wait_for_writer(failed: &[(PathBuf, u64)], quiet: std::time::Duration) {
    let holds = |path: &Path, hash: u64| std::fs::read(path).is_ok_and(|b| content_hash(&b) == hash);
    if failed.iter().any(|(path, hash)| !holds(path, *hash)) {
        return;
    }
    let stamp = |path: &Path| {
        std::fs::metadata(path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.len(), m.mtime(), m.mtime_nsec(), m.ino())
        })
    };
    let mut stamps: Vec<_> = failed.iter().map(|(path, _)| stamp(path)).collect();
    let deadline = tokio::time::Instant::now() + quiet;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + WRITER_POLL)).await;
        for ((path, hash), seen) in failed.iter().zip(stamps.iter_mut()) {
            let now = stamp(path);
            if now != *seen {
                if !holds(path, *hash) {
                    return;
                }
                *seen = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hash_of(path: &Path) -> u64 {
        content_hash(&std::fs::read(path).unwrap_or_default())
    }

    #[tokio::test]
    async fn the_wait_for_a_writer_ends_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("rds.yaml");
        std::fs::write(&path, "").unwrap_or_else(|e| panic!("write: {e}"));
        let read = vec![(path.clone(), hash_of(&path))];
        let writer = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                std::fs::write(&path, "version_info: x\n").unwrap_or_else(|e| panic!("write: {e}"));
            })
        };
        let started = Instant::now();
        wait_for_writer(&read, Duration::from_secs(20)).await;
        assert!(started.elapsed() < Duration::from_secs(10), "waited {:?}", started.elapsed());
        assert_ne!(hash_of(&path), read[0].1);
        writer.await.unwrap_or_else(|e| panic!("writer: {e}"));
    }

    #[tokio::test]
    async fn an_unchanged_file_is_waited_on_for_the_quiet_period() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("rds.yaml");
        std::fs::write(&path, "broken: [").unwrap_or_else(|e| panic!("write: {e}"));
        let read = vec![(path.clone(), hash_of(&path))];
        let started = Instant::now();
        wait_for_writer(&read, Duration::from_millis(150)).await;
        assert!(started.elapsed() >= Duration::from_millis(150), "waited {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_file_changed_before_the_wait_ends_it_at_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("rds.yaml");
        std::fs::write(&path, "half").unwrap_or_else(|e| panic!("write: {e}"));
        let read = vec![(path.clone(), 42)];
        let started = Instant::now();
        wait_for_writer(&read, Duration::from_secs(20)).await;
        assert!(started.elapsed() < Duration::from_secs(10), "waited {:?}", started.elapsed());
    }
}
