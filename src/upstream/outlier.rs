//! Outlier detection (`outlier_detection`): consecutive 5xx and consecutive gateway failures
//! (502, 503, 504) eject a host, Envoy's way:
//! - answers are charged on the request path with two atomic counters per host; a local-origin
//!   failure counts as its HTTP code (connect failure 503, timeout 504, reset 500), as Envoy
//!   does without `split_external_local_origin_errors`;
//! - the threshold's hit is detected (`ejections_detected_*`) and enforced with the
//!   `enforcing_*` probability unless ejecting would exceed `max_ejection_percent`
//!   (`ejections_overflow`);
//! - every `interval` a sweep brings back hosts ejected for `base_ejection_time` times their
//!   ejection count (at most `max_ejection_time`), and lowers the count of hosts that stayed in.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use rand::Rng;
use tokio::time::Instant;

use super::health::FAILED_OUTLIER_CHECK;
use super::{Cluster, Host};
use crate::config::model::OutlierDetection;
use crate::stats::{Counter, Gauge, Store};

pub struct OutlierStats {
    pub ejections_active: Gauge,
    pub ejections_total: Counter,
    pub ejections_overflow: Counter,
    pub ejections_enforced_total: Counter,
    pub ejections_consecutive_5xx: Counter,
    pub ejections_detected_consecutive_5xx: Counter,
    pub ejections_enforced_consecutive_5xx: Counter,
    pub ejections_detected_consecutive_gateway_failure: Counter,
    pub ejections_enforced_consecutive_gateway_failure: Counter,
    _zeros: Vec<Counter>,
}

impl OutlierStats {
    pub fn new(store: &Arc<Store>, name: &str) -> Self {
        let c = |s: &str| store.counter(&format!("cluster.{name}.outlier_detection.{s}"));
        // Envoy's other outlier stats, always 0 here (no success rate, failure percentage
        // or split local-origin detection).
        let zeros = [
            "ejections_detected_success_rate",
            "ejections_enforced_success_rate",
            "ejections_success_rate",
            "ejections_detected_failure_percentage",
            "ejections_enforced_failure_percentage",
            "ejections_detected_consecutive_local_origin_failure",
            "ejections_enforced_consecutive_local_origin_failure",
            "ejections_detected_local_origin_success_rate",
            "ejections_enforced_local_origin_success_rate",
            "ejections_detected_local_origin_failure_percentage",
            "ejections_enforced_local_origin_failure_percentage",
            "ejections_gateway_failure",
        ]
        .iter()
        .map(|s| c(s))
        .collect();
        OutlierStats {
            ejections_active: store.gauge(&format!("cluster.{name}.outlier_detection.ejections_active")),
            ejections_total: c("ejections_total"),
            ejections_overflow: c("ejections_overflow"),
            ejections_enforced_total: c("ejections_enforced_total"),
            ejections_consecutive_5xx: c("ejections_consecutive_5xx"),
            ejections_detected_consecutive_5xx: c("ejections_detected_consecutive_5xx"),
            ejections_enforced_consecutive_5xx: c("ejections_enforced_consecutive_5xx"),
            ejections_detected_consecutive_gateway_failure: c("ejections_detected_consecutive_gateway_failure"),
            ejections_enforced_consecutive_gateway_failure: c("ejections_enforced_consecutive_gateway_failure"),
            _zeros: zeros,
        }
    }
}

/// One host identity's outlier state.
#[derive(Default)]
pub struct HostOutlier {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Times ejected (the ejection time's multiplier), lowered while the host stays in.
    ejections: AtomicU32,
    /// Last ejection, or last time the count was lowered.
    since: Mutex<Option<Instant>>,
}

#[derive(Clone, Copy)]
enum Kind {
    Consecutive5xx,
    ConsecutiveGateway,
}

/// Charges one answer's code to `host`.
pub fn put_code(c: &Cluster, od: &OutlierDetection, host: &Host, code: u16) {
    let o = &host.health.outlier;
    if code < 500 {
        o.consecutive_5xx.store(0, Ordering::Relaxed);
        o.consecutive_gateway.store(0, Ordering::Relaxed);
        return;
    }
    if matches!(code, 502..=504) {
        if o.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1 == od.consecutive_gateway_failure {
            detected(c, od, host, Kind::ConsecutiveGateway);
        }
    } else {
        o.consecutive_gateway.store(0, Ordering::Relaxed);
    }
    if o.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1 == od.consecutive_5xx {
        detected(c, od, host, Kind::Consecutive5xx);
    }
}

fn detected(c: &Cluster, od: &OutlierDetection, host: &Host, kind: Kind) {
    let o = &host.health.outlier;
    match kind {
        Kind::Consecutive5xx => o.consecutive_5xx.store(0, Ordering::Relaxed),
        Kind::ConsecutiveGateway => o.consecutive_gateway.store(0, Ordering::Relaxed),
    }
    if host.health.flags() & FAILED_OUTLIER_CHECK != 0 {
        return;
    }
    let Some(stats) = &c.stats.outlier else { return };
    let (detected, enforced, enforcing) = match kind {
        Kind::Consecutive5xx => (
            &stats.ejections_detected_consecutive_5xx,
            &stats.ejections_enforced_consecutive_5xx,
            od.enforcing_consecutive_5xx,
        ),
        Kind::ConsecutiveGateway => (
            &stats.ejections_detected_consecutive_gateway_failure,
            &stats.ejections_enforced_consecutive_gateway_failure,
            od.enforcing_consecutive_gateway_failure,
        ),
    };
    detected.inc();
    if matches!(kind, Kind::Consecutive5xx) {
        stats.ejections_consecutive_5xx.inc();
    }
    let set = c.hosts.load();
    let active = set.all.iter().filter(|h| h.health.flags() & FAILED_OUTLIER_CHECK != 0).count();
    let percent = 100.0 * (active + 1) as f64 / set.all.len().max(1) as f64;
    if percent > f64::from(od.max_ejection_percent) {
        stats.ejections_overflow.inc();
        return;
    }
    if enforcing < 100 && rand::thread_rng().gen_range(0..100) >= enforcing {
        return;
    }
    if !host.health.set(FAILED_OUTLIER_CHECK, true) {
        return;
    }
    o.ejections.fetch_add(1, Ordering::Relaxed);
    *o.since.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    stats.ejections_total.inc();
    stats.ejections_enforced_total.inc();
    enforced.inc();
    stats.ejections_active.set(active as i64 + 1);
    c.refresh_lb();
}

/// The interval's sweep: brings back hosts whose ejection is over.
pub fn sweep(c: &Cluster, od: &OutlierDetection, now: Instant) {
    let set = c.hosts.load();
    let mut changed = false;
    let mut active = 0;
    let max = od.max_ejection_time.max(od.base_ejection_time);
    for h in set.all.iter() {
        let o = &h.health.outlier;
        let mut since = o.since.lock().unwrap_or_else(|e| e.into_inner());
        let n = o.ejections.load(Ordering::Relaxed);
        let Some(at) = *since else { continue };
        if h.health.flags() & FAILED_OUTLIER_CHECK != 0 {
            if now.duration_since(at) >= (od.base_ejection_time * n.max(1)).min(max) {
                h.health.set(FAILED_OUTLIER_CHECK, false);
                *since = Some(now);
                changed = true;
            } else {
                active += 1;
            }
        } else if n > 0 && now.duration_since(at) >= od.base_ejection_time {
            o.ejections.store(n - 1, Ordering::Relaxed);
            *since = Some(now);
        }
    }
    if let Some(stats) = &c.stats.outlier {
        stats.ejections_active.set(active);
    }
    if changed {
        c.refresh_lb();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::upstream::fake;

    const OD: &str = "outlier_detection: {consecutive_5xx: 2, consecutive_gateway_failure: 2, \
                      enforcing_consecutive_gateway_failure: 100, interval: 10s, base_ejection_time: 30s, \
                      max_ejection_percent: 50}";

    #[tokio::test(start_paused = true)]
    async fn consecutive_5xx_eject_until_the_sweep_after_the_ejection_time() {
        let up = fake::FakeUpstream::new([]);
        let (c, store) = fake::cluster(OD, 2, &up);
        let h = Arc::clone(&c.hosts.load().all[0]);
        c.outlier_result(&h, 500);
        c.outlier_result(&h, 200);
        c.outlier_result(&h, 500);
        assert_eq!(h.health.flags() & FAILED_OUTLIER_CHECK, 0, "a success in between resets the count");
        c.outlier_result(&h, 500);
        assert_ne!(h.health.flags() & FAILED_OUTLIER_CHECK, 0, "two in a row eject");
        assert_eq!(store.counter("cluster.c.outlier_detection.ejections_enforced_consecutive_5xx").value(), 1);
        assert_eq!(store.gauge("cluster.c.outlier_detection.ejections_active").value(), 1);
        for _ in 0..10 {
            assert!(Arc::ptr_eq(&c.choose().unwrap_or_else(|| panic!("no host")), &c.hosts.load().all[1]));
        }
        let od = c.config.outlier_detection.clone().unwrap_or_default();
        tokio::time::advance(Duration::from_secs(20)).await;
        sweep(&c, &od, Instant::now());
        assert_ne!(h.health.flags() & FAILED_OUTLIER_CHECK, 0, "still ejected after 20 s");
        tokio::time::advance(Duration::from_secs(10)).await;
        sweep(&c, &od, Instant::now());
        assert_eq!(h.health.flags() & FAILED_OUTLIER_CHECK, 0, "back after 30 s");
        assert_eq!(store.gauge("cluster.c.outlier_detection.ejections_active").value(), 0);
        // Ejected again at once: now for twice the base time.
        c.outlier_result(&h, 503);
        c.outlier_result(&h, 503);
        tokio::time::advance(Duration::from_secs(30)).await;
        sweep(&c, &od, Instant::now());
        assert_ne!(h.health.flags() & FAILED_OUTLIER_CHECK, 0, "the second ejection lasts 60 s");
    }

    #[tokio::test(start_paused = true)]
    async fn max_ejection_percent_overflows() {
        let up = fake::FakeUpstream::new([]);
        let (c, store) = fake::cluster(OD, 2, &up);
        let (a, b) = (Arc::clone(&c.hosts.load().all[0]), Arc::clone(&c.hosts.load().all[1]));
        for h in [&a, &a, &b, &b] {
            c.outlier_result(h, 502);
        }
        assert_ne!(a.health.flags() & FAILED_OUTLIER_CHECK, 0);
        assert_eq!(b.health.flags() & FAILED_OUTLIER_CHECK, 0, "a second ejection would be 100% > 50%");
        assert_eq!(store.counter("cluster.c.outlier_detection.ejections_overflow").value(), 2, "5xx and gateway");
    }
}
