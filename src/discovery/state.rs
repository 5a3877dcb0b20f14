//! Per-file state, free of I/O: which events concern a file, whether its change is complete,
//! when it is due to be read, and whether what was read is news.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::EventKind;
use tokio::time::Instant;

use super::read::{content_hash, Observation, Outcome, Stamp};
use super::{FileChange, WatchSpec};

/// What an event means for a file it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Rename, delete, close after write, symlink creation: the new state is final.
    Complete,
    /// Data written or file created: a writer may still hold it open.
    Modified,
    /// Metadata only (chmod, touch): final unless a write is still going on.
    Attrib,
    /// Reads and opens.
    Ignore,
}

/// Classifies a notify event kind; a created symlink is upgraded to complete by the caller.
pub(crate) fn classify(kind: &EventKind) -> Signal {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Signal::Complete,
        EventKind::Access(_) => Signal::Ignore,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => Signal::Complete,
        EventKind::Modify(ModifyKind::Metadata(_)) => Signal::Attrib,
        _ => Signal::Modified,
    }
}

/// A change noticed but not yet read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The last event completed the change: read after the coalescing window.
    pub complete: bool,
    /// The last read found the file gone: confirm after the quiet period before reporting.
    pub gone_check: bool,
    /// When the last event arrived.
    pub since: Instant,
}

/// One watched file.
#[derive(Debug)]
pub(crate) struct Entry {
    pub spec: WatchSpec,
    /// `spec.path` made absolute.
    pub abs: PathBuf,
    /// `spec.watched_directory` made absolute.
    pub watched_dir: Option<PathBuf>,
    /// Paths whose events concern this file: the file itself and the symlinks on its path.
    pub names: HashSet<PathBuf>,
    /// As of the last read, for the safety poll.
    pub stamp: Option<Stamp>,
    /// Hash of the content on disk at the last read; 0 when gone.
    pub disk: u64,
    /// Hash of the last content considered (baseline or reported); 0 when gone.
    pub last: u64,
    /// Hash the caller says it applied.
    pub applied: Option<u64>,
    /// Nothing reported since the baseline was read.
    pub baseline_only: bool,
    /// The last read found the content the caller last applied, after another content was
    /// reported: not news unless the caller then applies that other content.
    pub back_to_applied: bool,
    pub pending: Option<Pending>,
    /// Reported while a writer may still have held the file (the quiet period passed before
    /// its close): that content's hash and when. Reported again, settled, when the file is
    /// known to be complete.
    pub unsettled: Option<(u64, Instant)>,
}

/// How long a file reported while possibly still open must stay unchanged before the poll
/// takes it as complete: its writer's close can go unseen (a network file system, a write
/// that raced the watch being set up, a close processed after the read), and an unsettled
/// file that does not validate would otherwise wait for that close forever.
pub(crate) const UNSETTLED_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Entry {
    pub fn new(spec: WatchSpec) -> Self {
        let abs = std::path::absolute(&spec.path).unwrap_or_else(|_| spec.path.clone());
        let watched_dir = spec.watched_directory.as_ref().map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()));
        let names = HashSet::from([abs.clone()]);
        Entry {
            spec,
            abs,
            watched_dir,
            names,
            stamp: None,
            disk: 0,
            last: 0,
            applied: None,
            baseline_only: true,
            back_to_applied: false,
            pending: None,
            unsettled: None,
        }
    }

    /// Takes a new spec for the same path (its `watched_directory` may differ), keeping the
    /// hashes and anything pending.
    pub fn respec(&mut self, spec: WatchSpec) {
        let fresh = Entry::new(spec);
        self.spec = fresh.spec;
        self.watched_dir = fresh.watched_dir;
    }

    /// The directories to watch for this file.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.abs.parent().map(Path::to_path_buf).into_iter().collect();
        if let Some(dir) = self.watched_dir.as_ref().filter(|d| !dirs.contains(d)) {
            dirs.push(dir.clone());
        }
        dirs
    }

    /// Does an event on `path` concern this file? Any rename in the watched directory does
    /// (Envoy's `watched_directory` semantics).
    pub fn concerns(&self, path: &Path, kind: &EventKind) -> bool {
        self.names.contains(path)
            || (matches!(kind, EventKind::Modify(ModifyKind::Name(_)))
                && self.watched_dir.as_deref().is_some_and(|d| path.parent() == Some(d)))
    }

    /// Records an event.
    pub fn signal(&mut self, signal: Signal, now: Instant) {
        let pending = |complete| Some(Pending { complete, gone_check: false, since: now });
        match signal {
            Signal::Complete => self.pending = pending(true),
            Signal::Modified => self.pending = pending(false),
            Signal::Attrib => match self.pending {
                Some(p) if p.complete && !p.gone_check => {}
                _ => self.pending = pending(false),
            },
            Signal::Ignore => {}
        }
    }

    /// Waits on the coalescing window (rather than on its own quiet period)?
    pub fn in_window(&self) -> bool {
        self.pending.is_some_and(|p| p.complete && !p.gone_check)
    }

    /// When a change waiting on the quiet period is due.
    pub fn quiet_due(&self, quiet: std::time::Duration) -> Option<Instant> {
        self.pending.filter(|p| !p.complete || p.gone_check).map(|p| p.since + quiet)
    }

    /// Takes the first read: nothing is reported.
    pub fn baseline(&mut self, obs: Observation) {
        self.remember(&obs);
        self.disk = match obs.outcome {
            Outcome::Content(ref c) => content_hash(c),
            Outcome::Gone | Outcome::Failed => 0,
        };
        self.last = self.disk;
        self.baseline_only = true;
    }

    /// Takes a read made for `was`; returns the change to report, if any.
    pub fn settle(&mut self, was: Pending, obs: Observation, now: Instant) -> Option<FileChange> {
        self.remember(&obs);
        self.pending = None;
        match obs.outcome {
            Outcome::Content(content) => {
                let hash = content_hash(&content);
                self.disk = hash;
                let was_last = self.last;
                // A complete read of what was reported unsettled and not applied (it did not
                // validate while its writer might still be writing): report it again, settled.
                let resettle =
                    was.complete && self.unsettled.is_some_and(|(h, _)| h == hash) && Some(hash) != self.applied;
                if was.complete {
                    self.unsettled = None;
                }
                let news = resettle || (hash != self.last && Some(hash) != self.applied);
                self.last = hash;
                // Written back to what the caller applied, maybe before the caller applied
                // the change reported last: news if the caller then says it applied that.
                self.back_to_applied = !news && Some(hash) == self.applied && hash != was_last;
                news.then(|| {
                    self.baseline_only = false;
                    if !was.complete {
                        self.unsettled = Some((hash, now));
                    }
                    FileChange { path: self.spec.path.clone(), content: Some(content), hash, settled: was.complete }
                })
            }
            Outcome::Gone => {
                self.disk = 0;
                if self.last == 0 {
                    None
                } else if was.gone_check {
                    self.last = 0;
                    self.baseline_only = false;
                    Some(FileChange { path: self.spec.path.clone(), content: None, hash: 0, settled: true })
                } else {
                    self.pending = Some(Pending { complete: true, gone_check: true, since: now });
                    None
                }
            }
            Outcome::Failed => None,
        }
    }

    /// The caller applied content with `hash`. When the file on disk differs and nothing was
    /// reported yet (it changed between the caller's read and the baseline), or it went back
    /// to the content applied before (before the caller applied the change reported last), it
    /// is read again and reported: returns whether a read is due.
    #[must_use]
    pub fn mark_applied(&mut self, hash: u64) -> bool {
        self.applied = Some(hash);
        let stale = (self.baseline_only || std::mem::take(&mut self.back_to_applied)) && self.disk != hash;
        if stale {
            self.last = hash;
        }
        stale
    }

    /// The safety poll found `stamp`: a read is due when it differs from the last read's,
    /// at once when the file was replaced, after the quiet period when it was written to.
    /// A file reported unsettled that stayed unchanged for [`UNSETTLED_LIMIT`] is read again
    /// as complete.
    pub fn poll(&self, stamp: Option<Stamp>, now: Instant) -> Option<Signal> {
        if self.pending.is_some() {
            return None;
        }
        if stamp == self.stamp {
            let stale = self.unsettled.is_some_and(|(_, at)| now >= at + UNSETTLED_LIMIT);
            return stale.then_some(Signal::Complete);
        }
        let same_file = matches!((&self.stamp, &stamp), (Some(old), Some(new)) if old.same_file(new));
        Some(if same_file { Signal::Modified } else { Signal::Complete })
    }

    fn remember(&mut self, obs: &Observation) {
        self.stamp = obs.stamp;
        self.names = std::iter::once(self.abs.clone()).chain(obs.links.iter().cloned()).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};
    use std::time::Duration;

    fn obs(content: Option<&'static str>) -> Observation {
        let outcome = content.map_or(Outcome::Gone, |c| Outcome::Content(Bytes::from_static(c.as_bytes())));
        Observation { outcome, stamp: None, links: Vec::new() }
    }

    fn entry(content: Option<&'static str>) -> Entry {
        let mut e = Entry::new(WatchSpec::new("/cfg/rds.yaml").with_watched_directory("/cfg"));
        e.baseline(obs(content));
        e
    }

    fn take(e: &mut Entry) -> Pending {
        e.pending.take().unwrap_or_else(|| panic!("nothing pending"))
    }

    #[test]
    fn classifies_event_kinds() {
        use EventKind as K;
        assert_eq!(classify(&K::Access(AccessKind::Close(AccessMode::Write))), Signal::Complete);
        assert_eq!(classify(&K::Access(AccessKind::Open(AccessMode::Any))), Signal::Ignore);
        assert_eq!(classify(&K::Modify(ModifyKind::Name(RenameMode::To))), Signal::Complete);
        assert_eq!(classify(&K::Remove(RemoveKind::File)), Signal::Complete);
        assert_eq!(classify(&K::Modify(ModifyKind::Data(DataChange::Any))), Signal::Modified);
        assert_eq!(classify(&K::Create(CreateKind::File)), Signal::Modified);
        assert_eq!(classify(&K::Modify(ModifyKind::Metadata(MetadataKind::Any))), Signal::Attrib);
    }

    #[test]
    fn concerns_own_name_and_renames_in_watched_directory() {
        let e = entry(Some("a"));
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let moved = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(e.concerns(Path::new("/cfg/rds.yaml"), &data));
        assert!(!e.concerns(Path::new("/cfg/.rds.yaml.swp"), &data));
        assert!(e.concerns(Path::new("/cfg/..data"), &moved));
        assert_eq!(e.dirs(), vec![PathBuf::from("/cfg")]);
    }

    #[test]
    fn a_write_after_close_downgrades_but_attrib_does_not() {
        let now = Instant::now();
        let mut e = entry(Some("a"));
        e.signal(Signal::Complete, now);
        e.signal(Signal::Attrib, now);
        assert!(e.in_window());
        e.signal(Signal::Modified, now);
        assert!(!e.in_window());
        assert_eq!(e.quiet_due(Duration::from_millis(100)), Some(now + Duration::from_millis(100)));
    }

    #[test]
    fn reports_only_news() {
        let now = Instant::now();
        let mut e = entry(Some("a"));
        e.signal(Signal::Complete, now);
        let was = take(&mut e);
        assert_eq!(e.settle(was, obs(Some("a")), now), None);
        let change = e.settle(was, obs(Some("b")), now).unwrap_or_else(|| panic!("b is news"));
        assert_eq!(
            (change.content.as_deref(), change.hash, change.settled),
            (Some(&b"b"[..]), content_hash(b"b"), true)
        );
        assert_eq!(e.settle(was, obs(Some("b")), now), None);
        let unsettled = Pending { complete: false, ..was };
        assert_eq!(e.settle(unsettled, obs(Some("c")), now).map(|c| c.settled), Some(false));
    }

    #[test]
    fn applied_content_is_not_reported_again() {
        let now = Instant::now();
        let mut e = entry(Some("a"));
        e.settle(Pending { complete: true, gone_check: false, since: now }, obs(Some("b")), now);
        assert!(!e.mark_applied(content_hash(b"a"))); // the caller rejected b and still runs a
        assert_eq!(e.settle(Pending { complete: true, gone_check: false, since: now }, obs(Some("a")), now), None);
    }

    #[test]
    fn content_written_back_before_the_caller_applied_the_change_is_news() {
        let now = Instant::now();
        let was = Pending { complete: true, gone_check: false, since: now };
        let mut e = entry(Some("a"));
        assert!(!e.mark_applied(content_hash(b"a")));
        assert!(e.settle(was, obs(Some("b")), now).is_some());
        // a again, before the caller's applied(b) arrives: what runs, for now.
        assert_eq!(e.settle(was, obs(Some("a")), now), None);
        assert!(e.mark_applied(content_hash(b"b")), "b runs now: a is to be read again");
        assert_eq!(e.settle(was, obs(Some("a")), now).map(|c| c.hash), Some(content_hash(b"a")));
        assert!(!e.mark_applied(content_hash(b"a")));
        assert_eq!(e.settle(was, obs(Some("a")), now), None);
    }

    #[test]
    fn a_torn_read_then_the_running_content_is_not_news() {
        let now = Instant::now();
        let was = Pending { complete: true, gone_check: false, since: now };
        let mut e = entry(Some("a"));
        assert!(!e.mark_applied(content_hash(b"a")));
        assert!(e.settle(was, obs(Some("")), now).is_some(), "the truncated file is reported");
        assert_eq!(e.settle(was, obs(Some("a")), now), None, "the rewrite of what runs is not");
    }

    #[test]
    fn applied_differing_from_baseline_reports_the_disk() {
        let now = Instant::now();
        let mut e = entry(Some("new"));
        assert!(e.mark_applied(content_hash(b"old")));
        let was = Pending { complete: true, gone_check: false, since: now };
        assert_eq!(e.settle(was, obs(Some("new")), now).map(|c| c.hash), Some(content_hash(b"new")));
    }

    #[test]
    fn gone_is_confirmed_after_quiet_then_reported_once() {
        let now = Instant::now();
        let mut e = entry(Some("a"));
        e.signal(Signal::Complete, now);
        let was = take(&mut e);
        assert_eq!(e.settle(was, obs(None), now), None);
        let check = take(&mut e);
        assert!(check.gone_check);
        let gone = e.settle(check, obs(None), now).unwrap_or_else(|| panic!("gone is reported"));
        assert_eq!((gone.content, gone.hash, gone.settled), (None, 0, true));
        e.signal(Signal::Complete, now);
        let was = take(&mut e);
        assert_eq!(e.settle(was, obs(None), now), None);
        assert_eq!(e.pending, None);
    }

    #[test]
    fn poll_schedules_on_stamp_change() {
        let mut e = entry(Some("a"));
        let s = Stamp { len: 1, mtime: None, dev: 1, ino: 1 };
        e.stamp = Some(s);
        let now = Instant::now();
        assert_eq!(e.poll(Some(s), now), None);
        assert_eq!(e.poll(Some(Stamp { len: 2, ..s }), now), Some(Signal::Modified));
        assert_eq!(e.poll(Some(Stamp { ino: 2, ..s }), now), Some(Signal::Complete));
        assert_eq!(e.poll(None, now), Some(Signal::Complete));
        e.signal(Signal::Modified, now);
        assert_eq!(e.poll(None, now), None);
    }

    #[test]
    fn an_unsettled_report_is_reported_again_once_complete() {
        // The quiet period passed while a writer held the file empty: reported unsettled. Its
        // close (or the poll, when no close is seen) reads the same content as complete.
        let now = Instant::now();
        let mut e = entry(Some("a"));
        e.signal(Signal::Modified, now);
        let was = take(&mut e);
        let first = e.settle(was, obs(Some("")), now).unwrap_or_else(|| panic!("reported"));
        assert!(!first.settled);
        assert_eq!(e.poll(e.stamp, now + Duration::from_secs(1)), None, "a writer may still hold it");
        assert_eq!(e.poll(e.stamp, now + UNSETTLED_LIMIT), Some(Signal::Complete), "unchanged: taken as done");
        e.signal(Signal::Complete, now + UNSETTLED_LIMIT);
        let was = take(&mut e);
        let again = e.settle(was, obs(Some("")), now).unwrap_or_else(|| panic!("reported again"));
        assert_eq!((again.content.as_deref(), again.settled), (Some(&b""[..]), true));
        // Once settled, the same content is no news.
        e.signal(Signal::Complete, now);
        let was = take(&mut e);
        assert_eq!(e.settle(was, obs(Some("")), now), None);
        assert_eq!(e.poll(e.stamp, now + UNSETTLED_LIMIT * 2), None);
    }
}
