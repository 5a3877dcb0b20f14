//! How far a downstream request has come, for Envoy's stream timers: when its body ended
//! (the route and per-try timeouts count from there, `request_timeout` stops there) and when
//! the client last sent something (the `stream_idle_timeout` counts from there).
//!
//! The body's reader (often hyper's upstream connection task) writes it; the request's own
//! task waits on it. One is made only for a request whose body is still arriving.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub struct Progress {
    /// What the activity times count from.
    base: Instant,
    ended: OnceLock<Instant>,
    /// Milliseconds after `base` the client last sent something.
    activity_ms: AtomicU64,
    notify: Notify,
}

impl Progress {
    pub fn new(base: Instant) -> Self {
        Progress { base, ended: OnceLock::new(), activity_ms: AtomicU64::new(0), notify: Notify::new() }
    }

    /// Some of the body arrived.
    pub fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.activity_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// The last of the body arrived (or the stream failed: nothing more will come).
    pub fn end(&self) {
        self.touch();
        if self.ended.set(Instant::now()).is_ok() {
            self.notify.notify_waiters();
        }
    }

    /// When the body ended, if it has.
    pub fn ended(&self) -> Option<Instant> {
        self.ended.get().copied()
    }

    /// When the client last sent something.
    pub fn last_activity(&self) -> Instant {
        self.base + Duration::from_millis(self.activity_ms.load(Ordering::Relaxed))
    }

    /// Waits until the body ended; at once if it has.
    pub async fn wait_end(&self) -> Instant {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so that an `end` in between still wakes us.
            notified.as_mut().enable();
            if let Some(at) = self.ended() {
                return at;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waiters_wake_when_the_body_ends() {
        let p = std::sync::Arc::new(Progress::new(Instant::now()));
        let waiter = tokio::spawn({
            let p = std::sync::Arc::clone(&p);
            async move { p.wait_end().await }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!waiter.is_finished());
        p.end();
        let at = tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
        assert_eq!(Some(at), p.ended());
        // A second end changes nothing; a late waiter returns at once.
        p.end();
        assert_eq!(tokio::time::timeout(Duration::from_millis(1), p.wait_end()).await.ok(), Some(at));
    }

    #[test]
    fn activity_only_moves_forward() {
        let base = Instant::now() - Duration::from_secs(10);
        let p = Progress::new(base);
        assert_eq!(p.last_activity(), base);
        p.touch();
        assert!(p.last_activity() >= base + Duration::from_secs(10));
    }
}
