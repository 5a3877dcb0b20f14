//! The connection manager's connection `idle_timeout`: a downstream connection with no
//! request in progress for that long is drained (Envoy's `downstream_cx_idle_timeout`), then
//! closed after the `drain_timeout`.
//!
//! Requests mark themselves on the connection (a counter and, when the last one ends, the
//! time); the connection's task has one timer that wakes at the earliest moment the
//! connection could have been idle long enough and looks again.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::proxy::ConnCtx;

/// What the requests of one connection tell its idle timer.
pub struct ConnActivity {
    opened: Instant,
    streams: AtomicU32,
    /// Milliseconds after `opened` the last request ended.
    idle_since_ms: AtomicU64,
}

impl ConnActivity {
    pub fn new() -> Self {
        ConnActivity { opened: Instant::now(), streams: AtomicU32::new(0), idle_since_ms: AtomicU64::new(0) }
    }

    fn started(&self) {
        self.streams.fetch_add(1, Ordering::Relaxed);
    }

    fn ended(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.idle_since_ms.fetch_max(ms, Ordering::Relaxed);
        self.streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// When the connection will have been idle for `timeout`, as far as is known now:
    /// `None` when that time has come.
    pub fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        let now = Instant::now();
        let at = if self.streams.load(Ordering::Relaxed) > 0 {
            now + timeout
        } else {
            self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed)) + timeout
        };
        (at > now).then_some(at)
    }
}

impl Default for ConnActivity {
    fn default() -> Self {
        Self::new()
    }
}

/// A request in progress on its connection, until its response ends (or is dropped).
pub struct StreamGuard(Arc<ConnCtx>);

impl StreamGuard {
    pub fn new(ctx: &Arc<ConnCtx>) -> Self {
        ctx.activity.started();
        StreamGuard(Arc::clone(ctx))
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.activity.ended();
    }
}

/// Resolves when the connection has had no request for `timeout`; never without one.
pub async fn idle_expired(activity: &ConnActivity, timeout: Option<Duration>) {
    let Some(timeout) = timeout else { return std::future::pending().await };
    while let Some(at) = activity.idle_deadline(timeout) {
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);

    async fn expiry(a: &ConnActivity) -> Duration {
        let start = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(3600), idle_expired(a, Some(IDLE))).await;
        assert!(r.is_ok(), "never expired");
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_expires_after_the_timeout() {
        assert_eq!(expiry(&ConnActivity::new()).await, IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_progress_hold_the_connection_and_the_last_one_restarts_the_count() {
        let a = Arc::new(ConnActivity::new());
        a.started();
        a.started();
        let ender = {
            let a = Arc::clone(&a);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(100)).await;
                a.ended();
                tokio::time::sleep(Duration::from_secs(100)).await;
                a.ended();
            })
        };
        assert_eq!(expiry(&a).await, Duration::from_secs(200) + IDLE);
        ender.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_never_expires() {
        let a = ConnActivity::new();
        let r = tokio::time::timeout(Duration::from_secs(36_000), idle_expired(&a, None)).await;
        assert!(r.is_err());
    }
}
