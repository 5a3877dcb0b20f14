//! Discovery: notices when the files that hold legate's configuration change and delivers
//! their new content to the reload task.
//!
//! ```text
//! files on disk --inotify (notify, parent directories, non-recursive)--> task::run
//!   --state (complete or still being written?)--> read + hash --> dedupe against
//!   last reported / applied --> Vec<FileChange> (one batch per coalescing window) --> reload task
//! ```
//!
//! Envoy's file-based xDS reacts only to atomic renames. legate accepts every way people and
//! tools write files, without ever delivering a half-written one:
//!
//! - **atomic rename** (`mv tmp file`, `sed -i`), **ConfigMap `..data` swap** (a symlink renamed
//!   over another one somewhere on the path's symlink chain), **close after write** (`cp`,
//!   `cat >`, editors writing in place) and **delete** are *complete*: the file is read as
//!   soon as the task wakes, with every other change it has received by then, in one batch
//!   (a ConfigMap swap is one event: one batch); [`WatchOptions::coalesce`], 0 by default,
//!   adds a window in which further complete changes join the batch;
//! - a bare modification (a writer still holds the file open) is read only after
//!   [`WatchOptions::quiet`] without further events, and reported with `settled: false`;
//! - a vanished file is reported (`content: None`) only if it is still gone after `quiet`, so a
//!   save dance (vim renames the file to `file~` before writing a new one) is one report;
//! - content whose hash equals the last one reported or [`Watcher::applied`] is not reported;
//! - a safety poll every [`WatchOptions::poll`] compares each file's (len, mtime, inode) and
//!   re-registers directories that were removed and recreated, covering inotify queue
//!   overflows and filesystems without events.
//!
//! Directories are watched, never the files themselves, so renames over a file and symlink swaps
//! are seen; the files are read through their symlinks.

mod handle;
mod read;
mod state;
mod task;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use handle::Watcher;
pub use read::{content_hash, MAX_FILE_SIZE};

/// One file to watch, as named in the configuration (`path_config_source`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchSpec {
    /// The file; reported back exactly as given.
    pub path: PathBuf,
    /// Envoy's `watched_directory`: a directory watched in addition to the file's parent, any
    /// rename in which makes the file be read again.
    pub watched_directory: Option<PathBuf>,
}

impl WatchSpec {
    /// A spec watching `path` through its parent directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        WatchSpec { path: path.into(), watched_directory: None }
    }

    /// Also watch `dir` (Envoy's `watched_directory`).
    pub fn with_watched_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.watched_directory = Some(dir.into());
        self
    }
}

/// Timing of the watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// How long after the last complete event (rename, close after write, delete, symlink
    /// swap) the changed files are read and reported together; 0: at once, with whatever
    /// else was received (the reloader retries an update that waits for another file).
    pub coalesce: Duration,
    /// How long a file modified without a close must stay untouched before it is read.
    pub quiet: Duration,
    /// Period of the safety re-check of every file's (len, mtime, inode).
    pub poll: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions { coalesce: Duration::ZERO, quiet: Duration::from_millis(100), poll: Duration::from_secs(1) }
    }
}

/// A watched file whose content changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The spec's path, as given.
    pub path: PathBuf,
    /// The whole new content; `None` when the file is gone (the caller keeps its last good
    /// configuration).
    pub content: Option<bytes::Bytes>,
    /// [`content_hash`] of the content; 0 when the file is gone.
    pub hash: u64,
    /// True when the change completed (a writer closed the file, a rename, a symlink swap, a
    /// delete); false when only the quiet period passed and a writer may still hold it open.
    pub settled: bool,
}
