//! The connection manager's per-request timers until the response starts, as one timer:
//! `stream_idle_timeout` (nothing from the client, nor a response, for that long; counted
//! from the client's last bytes) and `request_timeout` (the request not whole by then).
//! Activity does not re-arm the timer: it wakes at the earliest deadline it knows, looks
//! again at what arrived meanwhile, and sleeps on if nothing expired.
//!
//! The common case, an HTTP/1 request whose head came whole with only the idle timeout, arms
//! no timer of its own: it writes its deadline into its connection's [`ConnWatch`], whose one
//! timer (in the connection's task) wakes at most once per timeout period and marks the
//! request expired. Registering a timer per request cost more than the rest of its timing.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::Instant;

use super::local_reply::LocalReason;
use crate::body::progress::Progress;

/// The connection manager's stream timeouts (`None`: disabled).
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamTimeouts {
    pub idle: Option<Duration>,
    pub request: Option<Duration>,
}

impl StreamTimeouts {
    pub fn any(&self) -> bool {
        self.idle.is_some() || self.request.is_some()
    }
}

/// Resolves when one of the timeouts expires, with the local reply it calls for; never when
/// both are disabled. `progress`: the body still arriving at `started` (`None`: the request
/// was whole then). `watch`: the HTTP/1 connection's, when its task drives it.
pub async fn expired(
    t: StreamTimeouts,
    started: Instant,
    progress: Option<&Progress>,
    watch: Option<&ConnWatch>,
) -> LocalReason {
    if let (None, None, Some(idle), Some(w)) = (progress, t.request, t.idle, watch) {
        if w.period() == Some(idle) {
            w.expired(started + idle).await;
            return LocalReason::StreamIdleTimeout { request_complete: true };
        }
    }
    loop {
        let now = Instant::now();
        let ended = progress.is_none_or(|p| p.ended().is_some());
        let request_deadline = t.request.filter(|_| !ended).map(|r| started + r);
        let idle_deadline = t.idle.map(|i| progress.map_or(started, |p| p.last_activity().max(started)) + i);
        if request_deadline.is_some_and(|d| d <= now) {
            return LocalReason::RequestTimeout;
        }
        if idle_deadline.is_some_and(|d| d <= now) {
            return LocalReason::StreamIdleTimeout { request_complete: ended };
        }
        let next = match (request_deadline, idle_deadline) {
            (Some(a), Some(b)) => a.min(b),
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => return std::future::pending().await,
        };
        tokio::time::sleep_until(next).await;
    }
}

/// [`expired`], where the stream idle timeout stands down once `routed` is set: the route's
/// `idle_timeout` replaced it (the router keeps that one), leaving only the request timeout.
pub async fn expired_unless_routed(
    t: StreamTimeouts,
    started: Instant,
    progress: Option<&Progress>,
    watch: Option<&ConnWatch>,
    routed: &std::sync::atomic::AtomicBool,
) -> LocalReason {
    let reason = expired(t, started, progress, watch).await;
    if !(matches!(reason, LocalReason::StreamIdleTimeout { .. }) && routed.load(Ordering::Relaxed)) {
        return reason;
    }
    expired(StreamTimeouts { idle: None, ..t }, started, progress, None).await
}

const NONE: u64 = u64::MAX;

/// One HTTP/1 connection's stream idle timer: the deadline of its request in progress (HTTP/1
/// serves one at a time), checked by one timer that [`ConnWatch::drive`] runs in the
/// connection's task.
pub struct ConnWatch {
    base: Instant,
    /// The timeout the driver's period is, in milliseconds; `NONE` until driven.
    period_ms: AtomicU64,
    /// Milliseconds after `base` the request in progress expires; `NONE`: no request.
    deadline_ms: AtomicU64,
    /// The deadline the driver found expired.
    fired_ms: AtomicU64,
    waker: AtomicWaker,
}

impl Default for ConnWatch {
    fn default() -> Self {
        ConnWatch {
            base: Instant::now(),
            period_ms: AtomicU64::new(NONE),
            deadline_ms: AtomicU64::new(NONE),
            fired_ms: AtomicU64::new(NONE),
            waker: AtomicWaker::new(),
        }
    }
}

/// Disarms the watch when the request's wait ends (answered or expired).
struct Armed<'a>(&'a ConnWatch);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.deadline_ms.store(NONE, Ordering::Relaxed);
    }
}

impl ConnWatch {
    /// The timeout the driver serves, once it runs.
    fn period(&self) -> Option<Duration> {
        let ms = self.period_ms.load(Ordering::Relaxed);
        (ms != NONE).then(|| Duration::from_millis(ms))
    }

    /// Milliseconds after `base`, rounded up: never early.
    fn ms(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.base);
        d.as_millis() as u64 + u64::from(d.subsec_nanos() % 1_000_000 != 0)
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// Resolves once the driver found `deadline` passed.
    async fn expired(&self, deadline: Instant) {
        let ms = self.ms(deadline);
        self.deadline_ms.store(ms, Ordering::Relaxed);
        let _armed = Armed(self);
        poll_fn(|cx| {
            if self.fired_ms.load(Ordering::Acquire) == ms {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.fired_ms.load(Ordering::Acquire) == ms {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// The connection's side, for as long as it lives: never resolves. It wakes at the armed
    /// deadline or one `period` after it last woke, whichever is first. A request's deadline
    /// is its start plus `period`, so no deadline falls before the next wake.
    pub async fn drive(&self, period: Duration) {
        self.period_ms.store(period.as_millis() as u64, Ordering::Relaxed);
        let mut next = Instant::now() + period;
        loop {
            tokio::time::sleep_until(next).await;
            let now = Instant::now();
            next = now + period;
            let armed = self.deadline_ms.load(Ordering::Relaxed);
            if armed == NONE {
                continue;
            }
            if self.at(armed) <= now {
                self.fired_ms.store(armed, Ordering::Release);
                self.waker.wake();
            } else {
                next = next.min(self.at(armed));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    async fn expiry_at(t: StreamTimeouts, progress: Option<&Progress>) -> (LocalReason, Duration) {
        let start = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(3600), expired(t, start, progress, None)).await;
        (r.unwrap_or(LocalReason::HealthCheckOk), start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_complete_request_expires_as_504() {
        let t = StreamTimeouts { idle: Some(IDLE), request: None };
        let (r, at) = expiry_at(t, None).await;
        assert_eq!(r, LocalReason::StreamIdleTimeout { request_complete: true });
        assert_eq!(at, IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn client_activity_pushes_the_idle_timeout_back() {
        let p = std::sync::Arc::new(Progress::new(Instant::now()));
        let feeder = {
            let p = std::sync::Arc::clone(&p);
            tokio::spawn(async move {
                for _ in 0..3 {
                    tokio::time::sleep(Duration::from_secs(6)).await;
                    p.touch();
                }
            })
        };
        let t = StreamTimeouts { idle: Some(IDLE), request: None };
        let (r, at) = expiry_at(t, Some(&p)).await;
        // Still arriving: Envoy's 408.
        assert_eq!(r, LocalReason::StreamIdleTimeout { request_complete: false });
        assert_eq!(at, Duration::from_secs(18) + IDLE);
        feeder.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_timeout_counts_from_the_start_and_stops_at_the_end() {
        let p = Progress::new(Instant::now());
        let t = StreamTimeouts { idle: None, request: Some(Duration::from_secs(5)) };
        let (r, at) = expiry_at(t, Some(&p)).await;
        assert_eq!((r, at), (LocalReason::RequestTimeout, Duration::from_secs(5)));

        let p = std::sync::Arc::new(Progress::new(Instant::now()));
        let ender = {
            let p = std::sync::Arc::clone(&p);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(4)).await;
                p.end();
            })
        };
        // Ended in time: only the idle timeout, from the request's end, is left.
        let t = StreamTimeouts { idle: Some(IDLE), request: Some(Duration::from_secs(5)) };
        let (r, at) = expiry_at(t, Some(&p)).await;
        assert_eq!(r, LocalReason::StreamIdleTimeout { request_complete: true });
        assert_eq!(at, Duration::from_secs(4) + IDLE);
        ender.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_connection_watch_expires_each_request_at_its_own_deadline() {
        let w = std::sync::Arc::new(ConnWatch::default());
        let driver = tokio::spawn({
            let w = std::sync::Arc::clone(&w);
            async move { w.drive(IDLE).await }
        });
        tokio::task::yield_now().await;
        let t = StreamTimeouts { idle: Some(IDLE), request: None };
        // A quick request disarms it; a later one still gets its whole timeout.
        let quick = tokio::time::timeout(Duration::from_secs(3), expired(t, Instant::now(), None, Some(&w))).await;
        assert!(quick.is_err());
        tokio::time::sleep(Duration::from_millis(6500)).await;
        let start = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(3600), expired(t, start, None, Some(&w))).await;
        assert_eq!(r.ok(), Some(LocalReason::StreamIdleTimeout { request_complete: true }));
        assert_eq!(start.elapsed(), IDLE);
        // Another timeout than the driver's (a reload changed it) runs its own timer.
        let t = StreamTimeouts { idle: Some(Duration::from_secs(2)), request: None };
        let start = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(3600), expired(t, start, None, Some(&w))).await;
        assert_eq!(r.ok(), Some(LocalReason::StreamIdleTimeout { request_complete: true }));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        driver.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_timeouts_never_expire() {
        let (r, _) = expiry_at(StreamTimeouts::default(), None).await;
        assert_eq!(r, LocalReason::HealthCheckOk);
    }
}
