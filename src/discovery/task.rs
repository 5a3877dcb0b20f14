//! The watcher task: routes notify events to the files they concern, reads the files that
//! are due, polls as a safety net, and hands batches to the reload task.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::handle::{Commands, Control};
use super::read::{observe, stamp_of};
use super::state::{classify, Entry, Signal};
use super::{FileChange, WatchOptions, WatchSpec};

/// Identity of a watched directory (device, inode): a change means it was replaced and must
/// be watched again.
type DirId = (u64, u64);

fn dir_id(dir: &Path) -> Option<DirId> {
    std::fs::metadata(dir).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

#[derive(Debug, Default)]
struct Dir {
    registered: bool,
    /// Watching failed already: retries are logged at debug level only.
    failed: bool,
    id: Option<DirId>,
}

/// Everything the task owns.
pub(crate) struct Core {
    opts: WatchOptions,
    notify: RecommendedWatcher,
    entries: Vec<Entry>,
    dirs: HashMap<PathBuf, Dir>,
    /// The coalescing window of complete changes: (opened, deadline).
    window: Option<(Instant, Instant)>,
    /// Changes read but not yet taken by the receiver; at most one per file.
    outbox: Vec<FileChange>,
}

impl Core {
    /// Watches the directories, then reads the baselines (in that order, so that a write in
    /// between is seen), blocking the caller.
    pub fn new(specs: Vec<WatchSpec>, opts: WatchOptions, notify: RecommendedWatcher) -> Self {
        let mut core =
            Core { opts, notify, entries: Vec::new(), dirs: HashMap::new(), window: None, outbox: Vec::new() };
        core.entries = dedup(specs).into_iter().map(Entry::new).collect();
        core.sync_dirs();
        for entry in &mut core.entries {
            entry.baseline(observe(&entry.abs));
        }
        core
    }

    /// Watches exactly the directories the entries need.
    fn sync_dirs(&mut self) {
        let wanted: HashSet<PathBuf> = self.entries.iter().flat_map(Entry::dirs).collect();
        let unwanted: Vec<PathBuf> = self.dirs.keys().filter(|d| !wanted.contains(*d)).cloned().collect();
        for dir in unwanted {
            if self.dirs.remove(&dir).is_some_and(|d| d.registered) {
                let _ = self.notify.unwatch(&dir);
            }
        }
        for dir in wanted {
            if !self.dirs.contains_key(&dir) {
                let id = dir_id(&dir);
                self.dirs.insert(dir.clone(), Dir::default());
                self.recheck_dir(&dir, id, false, Instant::now());
            }
        }
    }

    /// (Re-)watches `dir` when it appeared or was replaced since it was last watched; then,
    /// with `reread`, reads its files again, whose events may have been missed.
    fn recheck_dir(&mut self, dir: &Path, id: Option<DirId>, reread: bool, now: Instant) {
        let Some(state) = self.dirs.get_mut(dir) else { return };
        if state.registered && state.id == id {
            return;
        }
        let was_registered = std::mem::take(&mut state.registered);
        if was_registered {
            let _ = self.notify.unwatch(dir);
        }
        state.id = id;
        if id.is_none() {
            tracing::debug!(dir.path = %dir.display(), "watched directory does not exist (yet)");
            return;
        }
        match self.notify.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => (state.registered, state.failed) = (true, false),
            Err(e) if state.failed => {
                tracing::debug!(dir.path = %dir.display(), error = %e, "still cannot watch directory");
                return;
            }
            Err(e) => {
                tracing::warn!(dir.path = %dir.display(), error = %e, "cannot watch directory; relying on the poll");
                state.failed = true;
                return;
            }
        }
        if reread {
            for i in 0..self.entries.len() {
                if self.entries[i].dirs().iter().any(|d| d == dir) {
                    self.signal(i, Signal::Complete, now);
                }
            }
        }
    }

    fn signal(&mut self, i: usize, signal: Signal, now: Instant) {
        self.entries[i].signal(signal, now);
        if self.entries[i].in_window() {
            let cap = self.opts.quiet.max(self.opts.coalesce);
            // A window whose deadline passed without a flush (everything in it was
            // downgraded to an ongoing write) does not extend: open a new one.
            self.window = Some(match self.window.filter(|w| w.1 > now) {
                None => (now, now + self.opts.coalesce),
                Some((opened, _)) => (opened, (now + self.opts.coalesce).min(opened + cap)),
            });
        }
    }

    pub fn on_event(&mut self, event: notify::Result<Event>, now: Instant) {
        let event = match event {
            Ok(event) if !event.need_rescan() => event,
            Ok(_) => return self.rescan("inotify queue overflowed", now),
            Err(e) => return self.rescan(&e.to_string(), now),
        };
        let signal = classify(&event.kind);
        if signal == Signal::Ignore {
            return;
        }
        for path in &event.paths {
            for i in 0..self.entries.len() {
                if !self.entries[i].concerns(path, &event.kind) {
                    continue;
                }
                // A created symlink is complete the moment it exists.
                let created_link = matches!(event.kind, EventKind::Create(_))
                    && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
                self.signal(i, if created_link { Signal::Complete } else { signal }, now);
            }
        }
    }

    /// Events were lost: every file is read again once quiet.
    pub fn rescan(&mut self, why: &str, now: Instant) {
        tracing::warn!(reason = why, "file events lost; re-reading every watched file");
        for i in 0..self.entries.len() {
            self.signal(i, Signal::Modified, now);
        }
    }

    /// When the next read is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let window = self.entries.iter().any(Entry::in_window).then(|| self.window.map_or_else(Instant::now, |w| w.1));
        self.entries.iter().filter_map(|e| e.quiet_due(self.opts.quiet)).chain(window).min()
    }

    /// Reads the files that are due and queues what changed.
    pub async fn flush(&mut self) {
        let now = Instant::now();
        let window_due = self.window.is_none_or(|(_, deadline)| deadline <= now);
        if window_due {
            self.window = None;
        }
        let quiet = self.opts.quiet;
        let due: Vec<_> = (self.entries.iter().enumerate())
            .filter(|(_, e)| if e.in_window() { window_due } else { e.quiet_due(quiet).is_some_and(|t| t <= now) })
            .filter_map(|(i, e)| Some((i, e.pending?, e.abs.clone())))
            .collect();
        if due.is_empty() {
            return;
        }
        let paths: Vec<PathBuf> = due.iter().map(|d| d.2.clone()).collect();
        let Some(observations) = blocking(move || paths.iter().map(|p| observe(p)).collect::<Vec<_>>()).await else {
            return;
        };
        let now = Instant::now();
        for ((i, was, _), obs) in due.into_iter().zip(observations) {
            if let Some(change) = self.entries[i].settle(was, obs, now) {
                tracing::debug!(file.path = %change.path.display(), file.settled = change.settled, "watched file changed");
                self.outbox.retain(|c| c.path != change.path);
                self.outbox.push(change);
            }
        }
    }

    /// The safety net: re-watches replaced directories, re-reads files whose stamp changed.
    pub async fn poll(&mut self) {
        let files: Vec<PathBuf> = self.entries.iter().map(|e| e.abs.clone()).collect();
        let dirs: Vec<PathBuf> = self.dirs.keys().cloned().collect();
        let probe = move || {
            let stamps: Vec<_> = files.iter().map(|f| stamp_of(f)).collect();
            (stamps, dirs.into_iter().map(|d| (dir_id(&d), d)).collect::<Vec<_>>())
        };
        let Some((stamps, dirs)) = blocking(probe).await else { return };
        let now = Instant::now();
        for (id, dir) in dirs {
            self.recheck_dir(&dir, id, true, now);
        }
        for (i, stamp) in stamps.into_iter().enumerate() {
            if let Some(signal) = self.entries[i].poll(stamp, now) {
                tracing::debug!(file.path = %self.entries[i].abs.display(), "poll found a change");
                self.signal(i, signal, now);
            }
        }
    }

    pub async fn apply(&mut self, commands: Commands) {
        if let Some(specs) = commands.specs {
            self.replace_specs(specs).await;
        }
        let now = Instant::now();
        for (path, hash) in commands.applied {
            match self.entries.iter().position(|e| e.spec.path == path || e.abs == path) {
                Some(i) => {
                    if self.entries[i].mark_applied(hash) {
                        self.signal(i, Signal::Complete, now);
                    }
                }
                None => tracing::debug!(file.path = %path.display(), "applied() for a file not watched"),
            }
        }
    }

    /// Keeps the state of files still watched; reads the baselines of new ones.
    async fn replace_specs(&mut self, specs: Vec<WatchSpec>) {
        let mut old = std::mem::take(&mut self.entries);
        let mut fresh = Vec::new();
        for spec in dedup(specs) {
            match old.iter().position(|e| e.spec.path == spec.path) {
                Some(i) => {
                    let mut entry = old.swap_remove(i);
                    entry.respec(spec);
                    self.entries.push(entry);
                }
                None => {
                    fresh.push((
                        self.entries.len(),
                        std::path::absolute(&spec.path).unwrap_or_else(|_| spec.path.clone()),
                    ));
                    self.entries.push(Entry::new(spec));
                }
            }
        }
        let entries = &self.entries;
        self.outbox.retain(|c| entries.iter().any(|e| e.spec.path == c.path));
        self.sync_dirs();
        let paths: Vec<PathBuf> = fresh.iter().map(|f| f.1.clone()).collect();
        if let Some(observations) = blocking(move || paths.iter().map(|p| observe(p)).collect::<Vec<_>>()).await {
            for ((i, _), obs) in fresh.into_iter().zip(observations) {
                self.entries[i].baseline(obs);
            }
        }
    }
}

/// One entry per path; the last spec given wins.
fn dedup(specs: Vec<WatchSpec>) -> Vec<WatchSpec> {
    let mut out: Vec<WatchSpec> = Vec::with_capacity(specs.len());
    for spec in specs {
        out.retain(|s| s.path != spec.path);
        out.push(spec);
    }
    out
}

/// Runs file-system work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::error!(error = %e, "file watcher read failed");
            None
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => precise_sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// tokio's timer fires on whole-millisecond ticks, which would stretch the 2 ms coalescing
/// window to up to 3 ms of change-to-effect latency; the last millisecond is slept on a
/// blocking thread, accurate to tens of microseconds. If the wait is cancelled (an event
/// arrived), that thread wakes within the millisecond and nothing waits for it.
async fn precise_sleep_until(deadline: Instant) {
    const TICK: Duration = Duration::from_millis(1);
    if let Some(coarse) = deadline.checked_sub(TICK) {
        if coarse > Instant::now() {
            tokio::time::sleep_until(coarse).await;
        }
    }
    let rest = deadline.saturating_duration_since(Instant::now()).min(TICK);
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// The task: ends when the handle is dropped (`shutdown`) or the receiver of batches is.
pub(crate) async fn run(
    mut core: Core,
    mut events: mpsc::Receiver<notify::Result<Event>>,
    overflow: Arc<AtomicBool>,
    control: Arc<Control>,
    mut shutdown: oneshot::Receiver<()>,
    tx: mpsc::Sender<Vec<FileChange>>,
) {
    let period = core.opts.poll.max(Duration::from_millis(1));
    let mut poll = tokio::time::interval_at(Instant::now() + period, period);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let deadline = core.next_deadline();
        // Biased: commands first (a `set_specs` is in force before any later write is
        // reported), then delivery, due reads and the poll, which a flood of events in a busy
        // directory must not starve.
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            () = tx.closed() => break,
            () = control.wake.notified() => core.apply(control.take()).await,
            permit = tx.reserve(), if !core.outbox.is_empty() => match permit {
                Ok(permit) => permit.send(std::mem::take(&mut core.outbox)),
                Err(_) => break,
            },
            () = sleep_until(deadline) => core.flush().await,
            _ = poll.tick() => core.poll().await,
            event = events.recv() => {
                let Some(event) = event else { break };
                let now = Instant::now();
                core.on_event(event, now);
                while let Ok(event) = events.try_recv() {
                    core.on_event(event, now);
                }
            }
        }
        if overflow.swap(false, Ordering::Relaxed) {
            core.rescan("event channel full", Instant::now());
        }
    }
    tracing::debug!("file watcher stopped");
}

/// Maps notify's error to the I/O error `spawn` returns.
pub(crate) fn io_error(e: notify::Error) -> io::Error {
    match e.kind {
        notify::ErrorKind::Io(e) => e,
        _ => io::Error::other(e),
    }
}
