//! Outlier detection (`outlier_detection`), Envoy's detector:
//! - the request path charges each result to its host with atomics only
//!   ([`counters`]): an answer's code (consecutive 5xx, consecutive gateway failures, the
//!   external success rate) and, with `split_external_local_origin_errors`, local-origin
//!   results (connect failures, timeouts and resets against connections made); without the
//!   split a local-origin failure counts as its code (connect failure or reset 503, timeout
//!   504), as in Envoy;
//! - a consecutive run reaching its threshold is detected (`ejections_detected_*`) and
//!   ejected ([`eject`]) with the `enforcing_*` chance unless `max_ejection_percent` is
//!   reached (`ejections_overflow`);
//! - every `interval` the sweep ([`sweep`]) brings back hosts whose ejection time is over
//!   (`base_ejection_time` times the backoff, at most `max_ejection_time`, plus jitter), and
//!   runs the success-rate and failure-percentage detections ([`rates`]) on the interval's
//!   counts; their rates are what `/clusters` shows;
//! - a passing active health check brings an ejected host back
//!   (`successful_active_health_check_uneject_host`);
//! - `tcp_proxy` reports its connects as Envoy's does (success final, failure, timeout).

mod counters;
mod eject;
mod rates;
mod stats;
mod sweep;

pub use counters::HostOutlier;
pub use eject::ClusterOutlier;
pub use stats::OutlierStats;
pub use sweep::sweep;

use tokio::time::Instant;

use super::{Cluster, Host};
use crate::config::model::OutlierDetection;

/// Envoy's ejection types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Consecutive5xx,
    ConsecutiveGateway,
    ConsecutiveLocalOrigin,
    SuccessRate,
    LocalOriginSuccessRate,
    FailurePercentage,
    LocalOriginFailurePercentage,
}

/// A local-origin result of one attempt (Envoy's `LocalOrigin*` results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// The attempt got onto a connection (new or kept); the answer's code follows.
    ConnectSuccess,
    /// `tcp_proxy` connected: the whole exchange's result (a 200 without the split).
    ConnectSuccessFinal,
    /// The connect failed, or the connection was reset under the request.
    ConnectFailed,
    /// The attempt timed out.
    Timeout,
}

/// Charges an answer's code to `host`.
pub fn put_code(c: &Cluster, od: &OutlierDetection, host: &Host, code: u16) {
    for kind in host.health.outlier.put_code(od, code).into_iter().flatten() {
        eject::on_consecutive(c, od, host, kind);
    }
}

/// Charges a local-origin result to `host`: apart under the split, else as its code.
pub fn put_local(c: &Cluster, od: &OutlierDetection, host: &Host, result: Local) {
    if !od.split_external_local_origin_errors {
        match result {
            Local::ConnectSuccess => {}
            Local::ConnectSuccessFinal => put_code(c, od, host, 200),
            Local::ConnectFailed => put_code(c, od, host, 503),
            Local::Timeout => put_code(c, od, host, 504),
        }
        return;
    }
    let failure = matches!(result, Local::ConnectFailed | Local::Timeout);
    if let Some(kind) = host.health.outlier.put_local(od, failure) {
        eject::on_consecutive(c, od, host, kind);
    }
}

/// An active health check of `host` passed: an ejected host that the checker counts healthy
/// comes back, unless `successful_active_health_check_uneject_host` is false.
pub fn active_check_passed(c: &Cluster, host: &Host) {
    let Some(od) = &c.config.outlier_detection else { return };
    let flags = host.health.flags();
    if !od.successful_active_health_check_uneject_host
        || flags & super::health::FAILED_ACTIVE_HC != 0
        || !eject::ejected(host)
    {
        return;
    }
    let guard = c.health.outlier.lock();
    let back = eject::uneject(host, Instant::now());
    if let Some(stats) = &c.stats.outlier {
        stats.ejections_active.set(eject::active(&c.hosts.load()) as i64);
    }
    drop(guard);
    if back {
        c.refresh_lb();
    }
}

/// `host`'s success rates of the last sweep (external, local origin), -1 when not computed.
pub fn host_rates(host: &Host) -> (f64, f64) {
    let o = &host.health.outlier;
    (o.external.rate(), o.local.rate())
}

impl Cluster {
    /// Charges an answer's code to `host`'s outlier detection; nothing when the cluster has
    /// none.
    #[inline]
    pub fn outlier_result(&self, host: &Host, code: u16) {
        if let Some(od) = &self.config.outlier_detection {
            put_code(self, od, host, code);
        }
    }

    /// Charges a local-origin result of an attempt on `host` to its outlier detection.
    #[inline]
    pub fn outlier_local(&self, host: &Host, result: Local) {
        if let Some(od) = &self.config.outlier_detection {
            put_local(self, od, host, result);
        }
    }

    /// `host`'s success rates of the last outlier sweep, (external, local origin); -1 when
    /// not computed (as Envoy shows them in `/clusters`).
    pub fn outlier_rates(&self, host: &Host) -> (f64, f64) {
        if self.config.outlier_detection.is_none() {
            return (-1.0, -1.0);
        }
        host_rates(host)
    }

    /// The last outlier sweep's [success rate average, ejection threshold, local-origin
    /// average, local-origin threshold] (-1 when not computed); `None` without outlier
    /// detection.
    pub fn outlier_numbers(&self) -> Option<[f64; 4]> {
        self.config.outlier_detection.as_ref().map(|_| self.health.outlier.numbers())
    }
}

#[cfg(test)]
mod tests;
