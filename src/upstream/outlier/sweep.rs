//! The interval's sweep (Envoy's `onIntervalTimer`), off the request path, in this order:
//! 1. ejected hosts whose time is over come back; every host's interval buckets are taken
//!    and its shown success rates reset to -1;
//! 2. for the external origin, then the local one: the success-rate and failure-percentage
//!    detections over the hosts not ejected at that point ([`super::rates`]), each outlier
//!    ejected as [`super::eject`] allows;
//! 3. hosts that have been back for at least an `interval` lower their backoff by one.

use tokio::time::Instant;

use super::eject::{self, ejected};
use super::rates::{self, Limits};
use super::Kind;
use crate::config::model::OutlierDetection;
use crate::upstream::{Cluster, HostSet};

pub fn sweep(c: &Cluster, od: &OutlierDetection, now: Instant) {
    let Some(stats) = &c.stats.outlier else { return };
    let guard = c.health.outlier.lock();
    let set = c.hosts.load();
    let mut changed = false;
    let mut external = Vec::with_capacity(set.all.len());
    let mut local = Vec::with_capacity(set.all.len());
    for h in set.all.iter() {
        let o = &h.health.outlier;
        if ejected(h) && o.ejection().over(od, now) {
            changed |= eject::uneject(h, now);
        }
        external.push(o.external.take());
        local.push(o.local.take());
        o.external.set_rate(-1.0);
        o.local.set_rate(-1.0);
    }
    for (samples, is_local) in [(external, false), (local, true)] {
        changed |= detect(c, od, &set, &samples, is_local, now);
    }
    for h in set.all.iter().filter(|h| !ejected(h)) {
        let mut e = h.health.outlier.ejection();
        let back_long = e.last_unejection.is_some_and(|u| now.saturating_duration_since(u) >= od.interval);
        if back_long && e.backoff > 0 {
            e.backoff -= 1;
        }
    }
    stats.ejections_active.set(eject::active(&set) as i64);
    drop(guard);
    if changed {
        c.refresh_lb();
    }
}

/// One origin's statistics and the ejections they call for; true when a host was ejected.
fn detect(
    c: &Cluster,
    od: &OutlierDetection,
    set: &HostSet,
    samples: &[(u64, u64)],
    is_local: bool,
    now: Instant,
) -> bool {
    let Some(stats) = &c.stats.outlier else { return false };
    // Hosts ejected when the origin's turn comes are not judged (the local origin's turn
    // comes after the external one's ejections).
    let samples: Vec<Option<(u64, u64)>> =
        samples.iter().zip(set.all.iter()).map(|(s, h)| (!ejected(h)).then_some(*s)).collect();
    let limits = Limits {
        sr_minimum_hosts: od.success_rate_minimum_hosts.into(),
        sr_request_volume: od.success_rate_request_volume.into(),
        sr_stdev_factor: f64::from(od.success_rate_stdev_factor) / 1000.0,
        fp_minimum_hosts: od.failure_percentage_minimum_hosts.into(),
        fp_request_volume: od.failure_percentage_request_volume.into(),
        fp_threshold: od.failure_percentage_threshold.into(),
    };
    let v = rates::judge(&samples, set.all.len(), &limits);
    for &(i, rate) in &v.shown {
        let o = &set.all[i].health.outlier;
        if is_local {
            o.local.set_rate(rate);
        } else {
            o.external.set_rate(rate);
        }
    }
    c.health.outlier.set_numbers(is_local, v.numbers.unwrap_or((-1.0, -1.0)));
    let (sr, fp) = if is_local {
        (Kind::LocalOriginSuccessRate, Kind::LocalOriginFailurePercentage)
    } else {
        (Kind::SuccessRate, Kind::FailurePercentage)
    };
    let mut changed = false;
    for &i in &v.sr_outliers {
        stats.ejections_success_rate.inc();
        stats.of(sr).detected.inc();
        changed |= eject::eject(od, stats, set, &set.all[i], sr, now);
    }
    for &i in &v.fp_outliers {
        // A host the success rate has just ejected is ejected again, as in Envoy.
        stats.of(fp).detected.inc();
        changed |= eject::eject(od, stats, set, &set.all[i], fp, now);
    }
    changed
}
