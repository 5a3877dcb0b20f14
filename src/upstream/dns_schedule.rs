//! When a DNS cluster looks a name up again: after `dns_refresh_rate`, or the answer's TTL
//! with `respect_dns_ttl`; after a failure, `dns_refresh_rate` again, or Envoy's jittered
//! exponential back-off when `dns_failure_refresh_rate` is set.

use std::time::Duration;

use crate::config::model;

/// The refresh schedule of one DNS name.
#[derive(Debug, Clone)]
pub struct Schedule {
    refresh: Duration,
    respect_ttl: bool,
    backoff: Option<Backoff>,
}

impl Schedule {
    pub fn new(c: &model::Cluster) -> Self {
        Schedule {
            refresh: c.dns_refresh_rate,
            respect_ttl: c.respect_dns_ttl,
            backoff: c.dns_failure_refresh_rate.map(|(base, max)| Backoff::new(base, max)),
        }
    }

    /// The wait after an answer whose records' smallest TTL is `ttl` (a TTL of 0 means
    /// "do not cache", and Envoy then keeps `dns_refresh_rate`).
    pub fn after_success(&mut self, ttl: Duration) -> Duration {
        if let Some(b) = &mut self.backoff {
            b.reset();
        }
        if self.respect_ttl && !ttl.is_zero() {
            ttl
        } else {
            self.refresh
        }
    }

    /// The wait after a failed lookup; `random` draws the jitter.
    pub fn after_failure(&mut self, random: u64) -> Duration {
        match &mut self.backoff {
            Some(b) => b.next(random),
            None => self.refresh,
        }
    }
}

/// Envoy's `JitteredExponentialBackOffStrategy`: a random wait below an interval that starts
/// at `base` and doubles up to `max` with each failure in a row.
#[derive(Debug, Clone)]
struct Backoff {
    base_ms: u64,
    max_ms: u64,
    next_ms: u64,
}

impl Backoff {
    fn new(base: Duration, max: Duration) -> Self {
        let base_ms = (base.as_millis() as u64).max(1);
        let max_ms = (max.as_millis() as u64).max(base_ms);
        Backoff { base_ms, max_ms, next_ms: base_ms }
    }

    fn next(&mut self, random: u64) -> Duration {
        let interval = self.next_ms;
        self.next_ms = if self.next_ms > self.max_ms / 2 { self.max_ms } else { self.next_ms * 2 };
        // At least 1 ms: a zero draw would retry at once, in a loop, against a failing server.
        Duration::from_millis((random % interval).clamp(1, self.max_ms))
    }

    fn reset(&mut self) {
        self.next_ms = self.base_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(refresh: u64, respect_ttl: bool, failure: Option<(u64, u64)>) -> Schedule {
        Schedule {
            refresh: Duration::from_secs(refresh),
            respect_ttl,
            backoff: failure.map(|(b, m)| Backoff::new(Duration::from_secs(b), Duration::from_secs(m))),
        }
    }

    #[test]
    fn success_waits_the_refresh_rate_or_the_ttl_when_respected() {
        assert_eq!(schedule(5, false, None).after_success(Duration::from_secs(30)), Duration::from_secs(5));
        assert_eq!(schedule(5, true, None).after_success(Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(schedule(5, true, None).after_success(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(schedule(5, true, None).after_success(Duration::ZERO), Duration::from_secs(5), "TTL 0");
    }

    #[test]
    fn failure_waits_the_refresh_rate_without_a_failure_rate() {
        let mut s = schedule(5, true, None);
        assert_eq!(s.after_failure(123_456), Duration::from_secs(5));
    }

    #[test]
    fn failure_backs_off_exponentially_with_jitter_up_to_max_and_resets_on_success() {
        let mut s = schedule(5, false, Some((1, 4)));
        let top = u64::MAX; // the largest draw shows each interval's bound
        let bounds: Vec<Duration> = (0..4).map(|_| s.after_failure(top)).collect();
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(bounds, [ms(top % 1000), ms(top % 2000), ms(top % 4000), ms(top % 4000)]);
        assert!(bounds.iter().all(|b| *b < Duration::from_secs(4)));
        assert_eq!(s.after_failure(2500), ms(2500), "a draw within the interval is the wait");
        assert_eq!(s.after_failure(0), ms(1), "never 0");
        s.after_success(Duration::ZERO);
        assert_eq!(s.after_failure(1500), ms(500), "back to the base interval after a success");
    }
}
