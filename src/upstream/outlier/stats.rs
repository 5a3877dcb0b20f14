//! `cluster.<name>.outlier_detection.*`: Envoy's `ALL_OUTLIER_DETECTION_STATS`, and which of
//! them each kind of detection moves.

use std::sync::Arc;

use super::Kind;
use crate::stats::{Counter, Gauge, Store};

/// A detected / enforced pair of one kind of detection.
pub struct Pair {
    pub detected: Counter,
    pub enforced: Counter,
}

pub struct OutlierStats {
    pub ejections_active: Gauge,
    /// Deprecated in Envoy: ejections allowed by `max_ejection_percent` of the consecutive
    /// 5xx and success-rate kinds, enforced or not.
    pub ejections_total: Counter,
    pub ejections_overflow: Counter,
    pub ejections_enforced_total: Counter,
    /// Deprecated: consecutive 5xx detections of a host not ejected yet.
    pub ejections_consecutive_5xx: Counter,
    /// Deprecated: success-rate detections, external and local origin.
    pub ejections_success_rate: Counter,
    consecutive_5xx: Pair,
    consecutive_gateway_failure: Pair,
    consecutive_local_origin_failure: Pair,
    success_rate: Pair,
    local_origin_success_rate: Pair,
    failure_percentage: Pair,
    local_origin_failure_percentage: Pair,
    /// `ejections_detected_degradation`: Envoy 1.40's `detect_degraded_hosts`, which legate
    /// refuses; listed at 0 as Envoy lists it.
    _degradation: Counter,
}

impl OutlierStats {
    pub fn new(store: &Arc<Store>, name: &str) -> Self {
        let c = |s: &str| store.counter(&format!("cluster.{name}.outlier_detection.{s}"));
        let pair = |s: &str| Pair {
            detected: c(&format!("ejections_detected_{s}")),
            enforced: c(&format!("ejections_enforced_{s}")),
        };
        OutlierStats {
            ejections_active: store.gauge(&format!("cluster.{name}.outlier_detection.ejections_active")),
            ejections_total: c("ejections_total"),
            ejections_overflow: c("ejections_overflow"),
            ejections_enforced_total: c("ejections_enforced_total"),
            ejections_consecutive_5xx: c("ejections_consecutive_5xx"),
            ejections_success_rate: c("ejections_success_rate"),
            consecutive_5xx: pair("consecutive_5xx"),
            consecutive_gateway_failure: pair("consecutive_gateway_failure"),
            consecutive_local_origin_failure: pair("consecutive_local_origin_failure"),
            success_rate: pair("success_rate"),
            local_origin_success_rate: pair("local_origin_success_rate"),
            failure_percentage: pair("failure_percentage"),
            local_origin_failure_percentage: pair("local_origin_failure_percentage"),
            _degradation: c("ejections_detected_degradation"),
        }
    }

    /// The `ejections_detected_*` / `ejections_enforced_*` pair of `kind`.
    pub fn of(&self, kind: Kind) -> &Pair {
        match kind {
            Kind::Consecutive5xx => &self.consecutive_5xx,
            Kind::ConsecutiveGateway => &self.consecutive_gateway_failure,
            Kind::ConsecutiveLocalOrigin => &self.consecutive_local_origin_failure,
            Kind::SuccessRate => &self.success_rate,
            Kind::LocalOriginSuccessRate => &self.local_origin_success_rate,
            Kind::FailurePercentage => &self.failure_percentage,
            Kind::LocalOriginFailurePercentage => &self.local_origin_failure_percentage,
        }
    }
}
