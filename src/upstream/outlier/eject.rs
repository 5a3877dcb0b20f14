//! Ejecting and bringing back one host, Envoy's `ejectHost` and `unejectHost`: the
//! `max_ejection_percent` limit (or `always_eject_one_host`), the `enforcing_*` chance, the
//! backoff and jitter of the ejection time, and which stats each step moves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::stats::OutlierStats;
use super::Kind;
use crate::config::model::OutlierDetection;
use crate::upstream::health::FAILED_OUTLIER_CHECK;
use crate::upstream::{Cluster, Host, HostSet};

/// The detector's state of a cluster (shared, as hosts' health is, across reloads).
pub struct ClusterOutlier {
    /// Serialises ejection decisions: they are rare (a run reaching its threshold, the
    /// sweep), and the percentage limit needs a stable count of ejected hosts.
    lock: Mutex<()>,
    /// The last sweep's (mean, threshold) of the external and the local-origin success
    /// rates, f64 bits; -1 when not computed.
    numbers: [AtomicU64; 4],
}

impl Default for ClusterOutlier {
    fn default() -> Self {
        let none = || AtomicU64::new((-1f64).to_bits());
        ClusterOutlier { lock: Mutex::new(()), numbers: [none(), none(), none(), none()] }
    }
}

impl ClusterOutlier {
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [external mean, external threshold, local mean, local threshold].
    pub fn numbers(&self) -> [f64; 4] {
        [0, 1, 2, 3].map(|i| f64::from_bits(self.numbers[i].load(Ordering::Relaxed)))
    }

    /// Sets one origin's (mean, threshold), `local` for the local-origin pair.
    pub fn set_numbers(&self, local: bool, (mean, threshold): (f64, f64)) {
        let at = if local { 2 } else { 0 };
        self.numbers[at].store(mean.to_bits(), Ordering::Relaxed);
        self.numbers[at + 1].store(threshold.to_bits(), Ordering::Relaxed);
    }
}

pub fn ejected(h: &Host) -> bool {
    h.health.flags() & FAILED_OUTLIER_CHECK != 0
}

pub fn active(set: &HostSet) -> usize {
    set.all.iter().filter(|h| ejected(h)).count()
}

/// The `enforcing_*` percentage of `kind`.
fn enforcing(od: &OutlierDetection, kind: Kind) -> u32 {
    match kind {
        Kind::Consecutive5xx => od.enforcing_consecutive_5xx,
        Kind::ConsecutiveGateway => od.enforcing_consecutive_gateway_failure,
        Kind::ConsecutiveLocalOrigin => od.enforcing_consecutive_local_origin_failure,
        Kind::SuccessRate => od.enforcing_success_rate,
        Kind::LocalOriginSuccessRate => od.enforcing_local_origin_success_rate,
        Kind::FailurePercentage => od.enforcing_failure_percentage,
        Kind::LocalOriginFailurePercentage => od.enforcing_failure_percentage_local_origin,
    }
}

/// Envoy's `ejectHost` for a detected host, under the cluster's lock: true when the host
/// was not ejected and now is (the caller rebuilds what requests choose from).
///
/// The sweep may detect by failure percentage a host its success rate has just ejected:
/// Envoy 1.40 then ejects it again, and so does this (the enforced counters move twice and
/// the backoff grows twice), but `ejections_active` stays the count of ejected hosts where
/// Envoy's would count the host twice for good.
pub fn eject(
    od: &OutlierDetection,
    stats: &OutlierStats,
    set: &HostSet,
    host: &Host,
    kind: Kind,
    now: Instant,
) -> bool {
    let active = active(set);
    let percent = 100.0 * (active + 1) as f64 / set.all.len().max(1) as f64;
    let mut allowed = percent <= f64::from(od.max_ejection_percent.min(100));
    if od.always_eject_one_host {
        allowed = allowed || active == 0;
    }
    if !allowed {
        stats.ejections_overflow.inc();
        return false;
    }
    if matches!(kind, Kind::Consecutive5xx | Kind::SuccessRate) {
        // Deprecated in Envoy, kept as it counts: allowed by the limit, enforced or not.
        stats.ejections_total.inc();
    }
    let chance = enforcing(od, kind);
    if chance < 100 && rand::thread_rng().gen_range(0..100) >= chance {
        return false;
    }
    let newly = host.health.set(FAILED_OUTLIER_CHECK, true);
    stats.ejections_enforced_total.inc();
    stats.of(kind).enforced.inc();
    stats.ejections_active.set(active as i64 + i64::from(newly));
    let mut e = host.health.outlier.ejection();
    e.count += 1;
    e.last_ejection = Some(now);
    let jitter_ms = od.max_ejection_time_jitter.as_millis() as u64;
    e.jitter = Duration::from_millis(if jitter_ms == 0 { 0 } else { rand::thread_rng().gen_range(0..=jitter_ms) });
    // The multiplier stops growing once the base time times it passes the maximum.
    if od.base_ejection_time * e.backoff < od.max_ejection_time + od.base_ejection_time {
        e.backoff += 1;
    }
    newly
}

/// Brings an ejected host back (its time is over, or an active check passed): its
/// consecutive runs start anew. False when it was not ejected.
pub fn uneject(host: &Host, now: Instant) -> bool {
    if !host.health.set(FAILED_OUTLIER_CHECK, false) {
        return false;
    }
    host.health.outlier.reset_all();
    host.health.outlier.ejection().last_unejection = Some(now);
    true
}

/// A consecutive run reached its threshold on the request path (Envoy's
/// `onConsecutiveErrorWorker`): nothing for a host already out or no longer in the cluster;
/// else the detection is counted, the host ejected if allowed, and the run starts anew.
pub fn on_consecutive(c: &Cluster, od: &OutlierDetection, host: &Host, kind: Kind) {
    let Some(stats) = &c.stats.outlier else { return };
    let guard = c.health.outlier.lock();
    let set = c.hosts.load();
    if ejected(host) || !set.all.iter().any(|h| std::ptr::eq(&*h.health, &*host.health)) {
        return;
    }
    stats.of(kind).detected.inc();
    let now = Instant::now();
    let changed = eject(od, stats, &set, host, kind, now);
    if kind == Kind::Consecutive5xx {
        stats.ejections_consecutive_5xx.inc();
    }
    host.health.outlier.reset(kind);
    drop(guard);
    if changed {
        c.refresh_lb();
    }
}
