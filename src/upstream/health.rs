//! A host's health: one atomic flags word, Envoy's `Host::HealthFlag`s, written by the active
//! health checker, the outlier detector and discovery (EDS `health_status`), read without a
//! lock when the balancer's per-priority state is rebuilt and by `/clusters`.
//!
//! The word lives in a [`HostHealth`] shared by every `Host` value of one identity (address
//! in its cluster): a host carried over by membership or by a reload keeps its flags, its
//! check schedule and its outlier state; a host removed and re-added starts anew.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::config::model::EdsHealth;

/// Envoy's `FAILED_ACTIVE_HC`: the active health checker marked the host unhealthy.
pub const FAILED_ACTIVE_HC: u32 = 1 << 0;
/// `FAILED_OUTLIER_CHECK`: ejected by outlier detection.
pub const FAILED_OUTLIER_CHECK: u32 = 1 << 1;
/// `FAILED_EDS_HEALTH`: EDS (or static config) said `UNHEALTHY` or `TIMEOUT`.
pub const FAILED_EDS_HEALTH: u32 = 1 << 2;
/// `DEGRADED_EDS_HEALTH`: EDS said `DEGRADED`.
pub const DEGRADED_EDS_HEALTH: u32 = 1 << 3;
/// `PENDING_ACTIVE_HC`: not yet checked once.
pub const PENDING_ACTIVE_HC: u32 = 1 << 4;
/// `ACTIVE_HC_TIMEOUT`: the last check timed out.
pub const ACTIVE_HC_TIMEOUT: u32 = 1 << 5;
/// `EDS_STATUS_DRAINING`: EDS said `DRAINING`.
pub const EDS_STATUS_DRAINING: u32 = 1 << 6;

const UNHEALTHY: u32 = FAILED_ACTIVE_HC | FAILED_OUTLIER_CHECK | FAILED_EDS_HEALTH | EDS_STATUS_DRAINING;
const EDS_BITS: u32 = FAILED_EDS_HEALTH | DEGRADED_EDS_HEALTH | EDS_STATUS_DRAINING;

/// Envoy's text names, in the order `/clusters` prints them.
const NAMES: &[(u32, &str)] = &[
    (FAILED_ACTIVE_HC, "/failed_active_hc"),
    (FAILED_OUTLIER_CHECK, "/failed_outlier_check"),
    (FAILED_EDS_HEALTH, "/failed_eds_health"),
    (DEGRADED_EDS_HEALTH, "/degraded_eds_health"),
    (PENDING_ACTIVE_HC, "/pending_active_hc"),
    (ACTIVE_HC_TIMEOUT, "/active_hc_timeout"),
    (EDS_STATUS_DRAINING, "/eds_status_draining"),
];

/// How the balancer sees a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coarse {
    Healthy,
    Degraded,
    Unhealthy,
}

/// One host identity's health, shared by the `Host` values that carry it.
#[derive(Default)]
pub struct HostHealth {
    flags: AtomicU32,
    /// The active checker's state of this host (touched by the checker only).
    pub(super) check: Mutex<super::hc::HostCheck>,
    /// The outlier detector's state of this host.
    pub(super) outlier: super::outlier::HostOutlier,
    /// When the host entered slow start (used when the cluster has `slow_start_config`).
    pub(super) slow_start: super::slow_start::SlowStartClock,
}

impl HostHealth {
    pub fn new(eds: EdsHealth, initial: u32) -> Self {
        let h = HostHealth::default();
        h.flags.store(initial | eds_bits(eds), Ordering::Relaxed);
        h
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    /// Sets or clears `flag`; true when the word changed.
    pub fn set(&self, flag: u32, on: bool) -> bool {
        let old = if on {
            self.flags.fetch_or(flag, Ordering::AcqRel)
        } else {
            self.flags.fetch_and(!flag, Ordering::AcqRel)
        };
        let changed = (old & flag != 0) != on;
        let checked = FAILED_ACTIVE_HC | PENDING_ACTIVE_HC;
        if !on && old & flag & checked != 0 && old & !flag & checked == 0 {
            // Back from unhealthy (or pending) by an active check: slow start begins again.
            self.slow_start.restart();
        }
        changed
    }

    /// Replaces the EDS bits (a new `health_status` for the same host).
    pub fn set_eds(&self, eds: EdsHealth) {
        let bits = eds_bits(eds);
        let _ = self.flags.fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| Some((f & !EDS_BITS) | bits));
    }

    pub fn coarse(&self) -> Coarse {
        coarse(self.flags())
    }

    pub(super) fn check(&self) -> MutexGuard<'_, super::hc::HostCheck> {
        self.check.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn coarse(flags: u32) -> Coarse {
    if flags & UNHEALTHY != 0 {
        Coarse::Unhealthy
    } else if flags & DEGRADED_EDS_HEALTH != 0 {
        Coarse::Degraded
    } else {
        Coarse::Healthy
    }
}

/// Excluded from its priority's host count (Envoy's excluded hosts): draining, or waiting for
/// its first check.
pub fn excluded(flags: u32) -> bool {
    flags & (EDS_STATUS_DRAINING | PENDING_ACTIVE_HC) != 0
}

fn eds_bits(eds: EdsHealth) -> u32 {
    match eds {
        EdsHealth::Healthy => 0,
        EdsHealth::Unhealthy => FAILED_EDS_HEALTH,
        EdsHealth::Draining => EDS_STATUS_DRAINING,
        EdsHealth::Degraded => DEGRADED_EDS_HEALTH,
    }
}

/// `/clusters`' `health_flags`: `healthy`, or the set flags (`/failed_active_hc/...`).
pub fn flags_text(flags: u32) -> String {
    let s: String = NAMES.iter().filter(|(f, _)| flags & f != 0).map(|(_, n)| *n).collect();
    if s.is_empty() {
        "healthy".to_string()
    } else {
        s
    }
}

/// `/clusters?format=json`'s `health_status` of a host.
pub fn flags_json(flags: u32) -> serde_json::Value {
    let eds = if flags & FAILED_EDS_HEALTH != 0 {
        "UNHEALTHY"
    } else if flags & EDS_STATUS_DRAINING != 0 {
        "DRAINING"
    } else if flags & DEGRADED_EDS_HEALTH != 0 {
        "DEGRADED"
    } else {
        "HEALTHY"
    };
    let mut m = serde_json::Map::new();
    for (flag, name) in [
        (FAILED_ACTIVE_HC, "failed_active_health_check"),
        (FAILED_OUTLIER_CHECK, "failed_outlier_check"),
        (PENDING_ACTIVE_HC, "pending_active_hc"),
        (ACTIVE_HC_TIMEOUT, "active_hc_timeout"),
    ] {
        if flags & flag != 0 {
            m.insert(name.to_string(), serde_json::Value::Bool(true));
        }
    }
    m.insert("eds_health_status".to_string(), eds.into());
    serde_json::Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_as_envoy_prints_them() {
        assert_eq!(flags_text(0), "healthy");
        assert_eq!(flags_text(FAILED_ACTIVE_HC | PENDING_ACTIVE_HC), "/failed_active_hc/pending_active_hc");
        assert_eq!(flags_json(FAILED_EDS_HEALTH)["eds_health_status"], "UNHEALTHY");
        assert_eq!(flags_json(FAILED_OUTLIER_CHECK)["failed_outlier_check"], true);
    }

    #[test]
    fn unhealthy_wins_over_degraded_and_eds_bits_are_replaced() {
        let h = HostHealth::new(EdsHealth::Degraded, 0);
        assert_eq!(h.coarse(), Coarse::Degraded);
        assert!(h.set(FAILED_ACTIVE_HC, true));
        assert!(!h.set(FAILED_ACTIVE_HC, true), "no change the second time");
        assert_eq!(h.coarse(), Coarse::Unhealthy);
        h.set(FAILED_ACTIVE_HC, false);
        h.set_eds(EdsHealth::Healthy);
        assert_eq!(h.flags(), 0);
    }
}
