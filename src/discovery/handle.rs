//! The handle the reload task holds: starts the watcher task, changes the watched set,
//! records what was applied. Dropping it stops the task.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, Notify};

use super::task::{self, Core};
use super::{FileChange, WatchOptions, WatchSpec};

/// Raw notify events buffered between notify's thread and the task; beyond it, events are
/// dropped and every file is re-read.
const EVENT_CAPACITY: usize = 4096;

/// Batches not yet taken by the reload task; beyond it, changes merge in the task (at most
/// one pending change per file).
const BATCH_CAPACITY: usize = 4;

/// Commands from the handle, merged until the task takes them (bounded: the latest spec
/// list, the latest applied hash per file).
#[derive(Debug, Default)]
pub(crate) struct Commands {
    pub specs: Option<Vec<WatchSpec>>,
    pub applied: HashMap<PathBuf, u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Control {
    commands: Mutex<Commands>,
    pub wake: Notify,
}

impl Control {
    fn update(&self, f: impl FnOnce(&mut Commands)) {
        f(&mut self.commands.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake.notify_one();
    }

    pub fn take(&self) -> Commands {
        std::mem::take(&mut *self.commands.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Watches configuration files; see the [module docs](super).
#[derive(Debug)]
pub struct Watcher {
    control: Arc<Control>,
    _shutdown: oneshot::Sender<()>,
}

impl Watcher {
    /// Starts watching; the initial contents are not reported (the caller read them at
    /// startup) but are hashed as the baseline. When the caller's startup read may predate
    /// the baseline, it passes the hashes it applied to [`Watcher::applied`], and a file that
    /// differs is reported.
    ///
    /// Must be called within a tokio runtime; reads the files before returning. Fails when
    /// there is no runtime or inotify cannot be initialised; directories that do not exist
    /// (yet) are watched once they appear.
    pub fn spawn(specs: Vec<WatchSpec>, opts: WatchOptions) -> io::Result<(Watcher, mpsc::Receiver<Vec<FileChange>>)> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let (event_tx, event_rx) = mpsc::channel(EVENT_CAPACITY);
        let overflow = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&overflow);
        let notify = notify::recommended_watcher(move |event| {
            if let Err(TrySendError::Full(_)) = event_tx.try_send(event) {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .map_err(task::io_error)?;
        let core = Core::new(specs, opts, notify);
        let (tx, rx) = mpsc::channel(BATCH_CAPACITY);
        let control = Arc::new(Control::default());
        let (shutdown, shutdown_rx) = oneshot::channel();
        runtime.spawn(task::run(core, event_rx, overflow, Arc::clone(&control), shutdown_rx, tx));
        Ok((Watcher { control, _shutdown: shutdown }, rx))
    }

    /// Replaces the watched set (an LDS update can add or drop an RDS file). Files already
    /// watched keep their state; new files are hashed as baseline without being reported.
    pub fn set_specs(&self, specs: Vec<WatchSpec>) {
        self.control.update(|c| c.specs = Some(specs));
    }

    /// Marks content as applied so an identical later write is not reported again. `hash` is
    /// [`super::content_hash`] of the content, or the [`FileChange::hash`] received.
    pub fn applied(&self, path: &Path, hash: u64) {
        self.control.update(|c| {
            c.applied.insert(path.to_path_buf(), hash);
        });
    }
}
