//! What the process gives back when its last downstream connection closes: the buffers of
//! the idle upstream connections, then (through the binary's hook, since the binary owns the
//! allocator) the allocator's cached objects and freed pages. Without it, a burst's memory
//! stays in the allocator's decay (a second or so) and the pooled connections keep their
//! buffers for good.
//!
//! Nothing of it is on the request path: a connection's close only checks whether it was the
//! last one, and a release runs at most once per [`MIN_INTERVAL`], so clients that open one
//! connection at a time do not pay for a release on each.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::server::ProcessState;

/// The shortest time between two releases.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

static HOOK: OnceLock<fn()> = OnceLock::new();
static PACER: Pacer = Pacer::new();

/// Sets what runs when the process went idle, after the upstream buffers were released: the
/// binary returns the allocator's free memory (`main.rs`). The first hook set stays.
pub fn on_idle(hook: fn()) {
    let _ = HOOK.set(hook);
}

/// A downstream connection's place in `server.total_connections`; the last one to close
/// releases the process's idle memory.
pub struct OpenConnection<'a>(&'a Arc<ProcessState>);

impl<'a> OpenConnection<'a> {
    pub fn new(shared: &'a Arc<ProcessState>) -> Self {
        shared.total_connections.inc();
        OpenConnection(shared)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        if self.0.total_connections.dec_get() == 0 && PACER.due(Instant::now()) {
            release(self.0);
        }
    }
}

/// Releases in a task of its own, which runs once the closing connection's task has ended
/// and freed what it held.
fn release(shared: &Arc<ProcessState>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    let shared = Arc::clone(shared);
    rt.spawn(async move {
        if shared.total_connections.value() != 0 {
            // A connection opened meanwhile: the process is busy again.
            return;
        }
        release_idle_buffers(&shared);
        if let Some(hook) = HOOK.get() {
            hook();
        }
    });
}

/// The buffers of every cluster's idle upstream connections.
fn release_idle_buffers(shared: &ProcessState) {
    for cluster in shared.snapshot.load().clusters.values() {
        cluster.release_idle_buffers();
    }
}

/// When the last release ran: one is due when none ran for [`MIN_INTERVAL`].
struct Pacer(Mutex<Option<Instant>>);

impl Pacer {
    const fn new() -> Pacer {
        Pacer(Mutex::new(None))
    }

    fn due(&self, now: Instant) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|l| now.saturating_duration_since(l) < MIN_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_is_due_at_most_once_per_interval() {
        let pacer = Pacer::new();
        let t0 = Instant::now();
        assert!(pacer.due(t0));
        assert!(!pacer.due(t0));
        assert!(!pacer.due(t0 + MIN_INTERVAL / 2));
        assert!(pacer.due(t0 + MIN_INTERVAL));
        assert!(!pacer.due(t0 + MIN_INTERVAL + MIN_INTERVAL / 2));
        assert!(pacer.due(t0 + MIN_INTERVAL * 3));
    }
}
