//! When a host entered slow start (`slow_start_config`): the moment its identity joined the
//! cluster, moved again when an active health check brings it back from unhealthy (Envoy's
//! rule). One atomic per host identity, read when the balancer's weights are rebuilt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// The process's reference instant (tokio's clock, so paused-time tests move it).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    Instant::now().saturating_duration_since(epoch()).as_millis() as u64
}

/// A host's slow-start start.
pub struct SlowStartClock(AtomicU64);

impl Default for SlowStartClock {
    fn default() -> Self {
        SlowStartClock(AtomicU64::new(now_ms()))
    }
}

impl SlowStartClock {
    /// The host (re)enters slow start now.
    pub fn restart(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    /// Time since the host entered slow start.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}
