//! The connection manager's per-request timers until the response starts, as one timer:
//! `stream_idle_timeout` (nothing from the client, nor a response, for that long; counted
//! from the client's last bytes) and `request_timeout` (the request not whole by then).
//! Activity does not re-arm the timer: it wakes at the earliest deadline it knows, looks
//! again at what arrived meanwhile, and sleeps on if nothing expired.

use std::time::Duration;

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
/// was whole then).
pub async fn expired(t: StreamTimeouts, started: Instant, progress: Option<&Progress>) -> LocalReason {
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

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    async fn expiry_at(t: StreamTimeouts, progress: Option<&Progress>) -> (LocalReason, Duration) {
        let start = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(3600), expired(t, start, progress)).await;
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
    async fn disabled_timeouts_never_expire() {
        let (r, _) = expiry_at(StreamTimeouts::default(), None).await;
        assert_eq!(r, LocalReason::HealthCheckOk);
    }
}
