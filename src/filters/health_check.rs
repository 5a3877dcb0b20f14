//! `envoy.filters.http.health_check` without pass-through: answers `200` on its path, or
//! `503` while the admin's `/healthcheck/fail` is in force, and never routes that request.

use std::sync::atomic::Ordering;

use crate::proxy::local_reply::LocalReason;
use crate::server::ProcessState;

pub struct HealthCheck {
    path: String,
}

impl HealthCheck {
    pub fn new(path: String) -> Self {
        HealthCheck { path }
    }

    pub fn decode_headers(&self, parts: &http::request::Parts, shared: &ProcessState) -> Result<(), LocalReason> {
        if parts.uri.path() != self.path {
            return Ok(());
        }
        Err(if shared.health_failing.load(Ordering::Relaxed) {
            LocalReason::HealthCheckFailed
        } else {
            LocalReason::HealthCheckOk
        })
    }
}
