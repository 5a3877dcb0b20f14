//! One host identity's outlier state: what the request path charges (consecutive counters
//! and the interval's success-rate buckets, atomics only) and what ejection keeps (under a
//! mutex taken on ejection, unejection and the sweep, never by a plain request).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::Kind;
use crate::config::model::OutlierDetection;

/// One origin's requests of the current interval and the success rate of the last sweep.
pub struct Bucket {
    /// `total << 32 | successes`: one atomic add per request keeps the pair consistent.
    counts: AtomicU64,
    /// The last sweep's success rate in percent (f64 bits); -1 when it computed none.
    rate: AtomicU64,
}

const ONE_TOTAL: u64 = 1 << 32;
const SUCCESSES: u64 = ONE_TOTAL - 1;

impl Default for Bucket {
    fn default() -> Self {
        Bucket { counts: AtomicU64::new(0), rate: AtomicU64::new((-1f64).to_bits()) }
    }
}

impl Bucket {
    fn put(&self, success: bool) {
        self.counts.fetch_add(ONE_TOTAL + u64::from(success), Ordering::Relaxed);
    }

    /// The interval's (requests, successes), starting the next interval at 0.
    pub fn take(&self) -> (u64, u64) {
        let v = self.counts.swap(0, Ordering::Relaxed);
        (v >> 32, v & SUCCESSES)
    }

    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    pub fn set_rate(&self, rate: f64) {
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
    }
}

/// What ejection keeps of a host (Envoy's `DetectorHostMonitorImpl` times and backoff).
#[derive(Default)]
pub struct Ejection {
    /// The ejection time's multiplier: up by one on each ejection (while under
    /// `max_ejection_time + base_ejection_time`), down by one on each sweep once the host
    /// has been back for an `interval`.
    pub backoff: u32,
    /// Times ejected.
    pub count: u32,
    pub last_ejection: Option<Instant>,
    pub last_unejection: Option<Instant>,
    /// This ejection's random part, in [0, `max_ejection_time_jitter`].
    pub jitter: Duration,
}

impl Ejection {
    /// Whether an ejected host's time is over at `now`: the base time times the backoff, at
    /// most `max_ejection_time`, plus the jitter.
    pub fn over(&self, od: &OutlierDetection, now: Instant) -> bool {
        let Some(at) = self.last_ejection else { return true };
        let time = (od.base_ejection_time * self.backoff).min(od.max_ejection_time) + self.jitter;
        now.saturating_duration_since(at) >= time
    }
}

/// One host identity's outlier state.
#[derive(Default)]
pub struct HostOutlier {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// Answers (and, without the split, local-origin failures as their codes).
    pub external: Bucket,
    /// Local-origin results, with `split_external_local_origin_errors` only.
    pub local: Bucket,
    ejection: Mutex<Ejection>,
}

impl HostOutlier {
    /// Charges an answer's code (Envoy's `putHttpResponseCode`); the consecutive runs it
    /// completes, gateway failures first.
    pub fn put_code(&self, od: &OutlierDetection, code: u16) -> [Option<Kind>; 2] {
        let five_xx = (500..600).contains(&code);
        self.external.put(!five_xx);
        if !five_xx {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
            self.consecutive_gateway.store(0, Ordering::Relaxed);
            return [None, None];
        }
        let mut out = [None, None];
        if matches!(code, 502..=504) {
            if self.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1 == od.consecutive_gateway_failure {
                out[0] = Some(Kind::ConsecutiveGateway);
            }
        } else {
            self.consecutive_gateway.store(0, Ordering::Relaxed);
        }
        if self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1 == od.consecutive_5xx {
            out[1] = Some(Kind::Consecutive5xx);
        }
        out
    }

    /// Charges a local-origin result under the split (Envoy's `localOriginFailure` and
    /// `localOriginNoFailure`); the consecutive run it completes.
    pub fn put_local(&self, od: &OutlierDetection, failure: bool) -> Option<Kind> {
        self.local.put(!failure);
        if !failure {
            self.consecutive_local.store(0, Ordering::Relaxed);
            return None;
        }
        let n = self.consecutive_local.fetch_add(1, Ordering::Relaxed) + 1;
        (n == od.consecutive_local_origin_failure).then_some(Kind::ConsecutiveLocalOrigin)
    }

    /// Starts `kind`'s consecutive run anew (after its detection).
    pub fn reset(&self, kind: Kind) {
        let counter = match kind {
            Kind::Consecutive5xx => &self.consecutive_5xx,
            Kind::ConsecutiveGateway => &self.consecutive_gateway,
            Kind::ConsecutiveLocalOrigin => &self.consecutive_local,
            _ => return,
        };
        counter.store(0, Ordering::Relaxed);
    }

    /// Starts every consecutive run anew (on unejection, so that a few errors right after do
    /// not eject again).
    pub fn reset_all(&self) {
        for k in [Kind::Consecutive5xx, Kind::ConsecutiveGateway, Kind::ConsecutiveLocalOrigin] {
            self.reset(k);
        }
    }

    pub fn ejection(&self) -> MutexGuard<'_, Ejection> {
        self.ejection.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_pairs_and_start_anew() {
        let b = Bucket::default();
        assert_eq!(b.rate(), -1.0);
        for i in 0..10 {
            b.put(i % 5 != 0);
        }
        assert_eq!(b.take(), (10, 8));
        assert_eq!(b.take(), (0, 0));
    }

    #[test]
    fn codes_make_runs_envoy_s_way() {
        let od = OutlierDetection { consecutive_5xx: 3, consecutive_gateway_failure: 2, ..Default::default() };
        let o = HostOutlier::default();
        assert_eq!(o.put_code(&od, 503), [None, None]);
        assert_eq!(o.put_code(&od, 502), [Some(Kind::ConsecutiveGateway), None]);
        assert_eq!(o.put_code(&od, 500), [None, Some(Kind::Consecutive5xx)], "a 500 breaks the gateway run");
        assert_eq!(o.put_code(&od, 404), [None, None]);
        assert_eq!(o.external.take(), (4, 1), "a 404 is a success");
        let od = OutlierDetection { consecutive_local_origin_failure: 2, ..od };
        assert_eq!(o.put_local(&od, true), None);
        assert_eq!(o.put_local(&od, false), None, "a connect success breaks the run");
        assert_eq!(o.put_local(&od, true), None);
        assert_eq!(o.put_local(&od, true), Some(Kind::ConsecutiveLocalOrigin));
        assert_eq!(o.local.take(), (4, 1));
    }

    #[test]
    fn ejection_time_is_capped_and_jittered() {
        let od = OutlierDetection {
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(25),
            ..Default::default()
        };
        let t0 = Instant::now();
        let mut e =
            Ejection { backoff: 3, last_ejection: Some(t0), jitter: Duration::from_secs(2), ..Default::default() };
        assert!(!e.over(&od, t0 + Duration::from_secs(26)), "min(30, 25) + 2");
        assert!(e.over(&od, t0 + Duration::from_secs(27)));
        e.backoff = 1;
        e.jitter = Duration::ZERO;
        assert!(e.over(&od, t0 + Duration::from_secs(10)));
    }
}
