//! `envoy.filters.http.ext_authz`: each request is checked by an authorization service
//! before it is routed upstream, as Envoy 1.40 does it (checked side by side):
//!
//! - the HTTP service ([`http`]) gets the client's method and path (after `path_prefix`),
//!   `Host`, `Authorization`, the `allowed_headers` and `headers_to_add` (Envoy format strings:
//!   `%REQ(...)%` reads the client's request); a `200` allows the
//!   request, any other status is the denial the client gets, a `5xx` or a transport failure
//!   is an error;
//! - the gRPC service ([`grpc`]) gets `envoy.service.auth.v3.Authorization/Check` over the
//!   cluster's HTTP/2 connections; `OK` allows, another status denies, a failed call is an
//!   error.
//!
//! An allowed request goes on with the service's headers added ([`decision`]); a denied one
//! gets the service's status, headers and body (`UAEX`, `ext_authz_denied`); an error gets
//! `status_on_error` (403) unless `failure_mode_allow`. `with_request_body` sends the body's
//! first `max_request_bytes` ([`body`]). Stats `http.<prefix>.ext_authz.[<stat_prefix>.]*` and
//! `cluster.<routed cluster>.ext_authz.[<stat_prefix>.]ok|denied|error|failure_mode_allowed`.
//! Per route: `ExtAuthzPerRoute` disables the filter or sets `check_settings`.

mod body;
mod decision;
mod grpc;
mod http;
mod proto;

use std::sync::Arc;
use std::time::Duration;

use ::http::header::{HeaderName, HeaderValue};
use ::http::StatusCode;

pub use decision::{Decision, Denied, Reply};

use super::chain::{RequestBody, RequestInfo, Stream};
use crate::config::ext_authz::{AuthzService, CheckSettings, ExtAuthzConfig};
use crate::config::model::StringMatcher;
use crate::proxy::local_reply::LocalReason;
use crate::routing::header_ops::{header_text, HeaderText};
use crate::routing::matcher::string_matches;
use crate::stats::{Counter, Store};

static FAILURE_MODE_ALLOWED: HeaderName = HeaderName::from_static("x-envoy-auth-failure-mode-allowed");

/// `http.<prefix>.ext_authz.*`: Envoy makes them all with the filter.
struct Stats {
    ok: Counter,
    denied: Counter,
    error: Counter,
    failure_mode_allowed: Counter,
}

/// The filter, compiled from its `ExtAuthz`.
pub struct ExtAuthz {
    config: ExtAuthzConfig,
    /// The HTTP service's `headers_to_add`, their values compiled (formats rendered per check).
    headers_to_add: Box<[(HeaderName, HeaderText)]>,
    stats: Stats,
    store: Arc<Store>,
    /// `ext_authz.` or `ext_authz.<stat_prefix>.`, the scope of the routed cluster's stats.
    scope: Box<str>,
}

/// What a check is about: the request as the filter sees it.
pub struct CheckRequest<'a> {
    pub parts: &'a ::http::request::Parts,
    pub info: RequestInfo<'a>,
    /// The body's first bytes when `with_request_body` read them, and whether that was all.
    pub body: Option<(bytes::Bytes, bool)>,
    pub settings: Option<&'a CheckSettings>,
    pub local_ip: Option<std::net::IpAddr>,
}

impl ExtAuthz {
    pub fn new(config: &ExtAuthzConfig, store: &Arc<Store>, hcm_prefix: &str) -> Self {
        let scope = if config.stat_prefix.is_empty() {
            "ext_authz.".to_string()
        } else {
            format!("ext_authz.{}.", config.stat_prefix)
        };
        let c = |s: &str| store.counter(&format!("http.{hcm_prefix}.{scope}{s}"));
        let stats = Stats {
            ok: c("ok"),
            denied: c("denied"),
            error: c("error"),
            failure_mode_allowed: c("failure_mode_allowed"),
        };
        // Envoy makes these with the others; legate has nothing that counts in them.
        for s in [
            "disabled",
            "filter_state_name_collision",
            "ignored_dynamic_metadata",
            "invalid",
            "omitted_response_headers",
            "request_header_limits_reached",
            "response_header_limits_reached",
            "shadow_denied",
            "shadow_error",
        ] {
            let _ = c(s);
        }
        // Validated with the configuration: a name or value that does not compile is left out.
        let headers_to_add = match &config.service {
            AuthzService::Http(s) => s
                .headers_to_add
                .iter()
                .filter_map(|(k, v)| Some((HeaderName::from_bytes(k.as_bytes()).ok()?, header_text(v).ok()?)))
                .collect(),
            AuthzService::Grpc(_) => Box::default(),
        };
        ExtAuthz { config: config.clone(), headers_to_add, stats, store: Arc::clone(store), scope: scope.into() }
    }

    /// Checks the request; `Ok` lets it go on (changed as the service said), `Err` is the
    /// denial or the error's local reply, whose headers and body wait in `stream.ext_authz`.
    pub async fn decode(
        &self,
        settings: Option<&CheckSettings>,
        parts: &mut ::http::request::Parts,
        body: &mut RequestBody,
        info: RequestInfo<'_>,
        stream: &mut Stream,
        local_ip: Option<std::net::IpAddr>,
    ) -> Result<(), LocalReason> {
        let c = &self.config;
        let read = match c.with_request_body {
            Some(b) if !settings.is_some_and(|s| s.disable_request_body_buffering) => {
                body::read_prefix(body, b, stream).await?
            }
            _ => None,
        };
        let req = CheckRequest { parts, info, body: read, settings, local_ip };
        let clusters = info.clusters;
        let decision = match &c.service {
            AuthzService::Http(s) => match clusters.get(&s.cluster) {
                Some(cluster) => bounded(s.timeout, http::check(s, &self.headers_to_add, cluster, &req)).await,
                None => Decision::Error,
            },
            AuthzService::Grpc(s) => match clusters.get(&s.cluster) {
                Some(cluster) => bounded(s.timeout, grpc::check(s, cluster, &req, c.with_request_body)).await,
                None => Decision::Error,
            },
        };
        let routed = info.cluster;
        match decision {
            Decision::Allow(allowed) => {
                self.count(&self.stats.ok, routed, "ok");
                allowed.apply(&mut parts.headers);
                if !allowed.response.is_empty() {
                    stream.ext_authz = Some(Box::new(Reply::Success(allowed.response)));
                }
                Ok(())
            }
            Decision::Deny(denied) => {
                self.count(&self.stats.denied, routed, "denied");
                let status = denied.status;
                stream.ext_authz = Some(Box::new(Reply::Denied(denied)));
                Err(LocalReason::ExtAuthzDenied { status })
            }
            Decision::Error => {
                self.count(&self.stats.error, routed, "error");
                if c.failure_mode_allow {
                    self.count(&self.stats.failure_mode_allowed, routed, "failure_mode_allowed");
                    if c.failure_mode_allow_header_add {
                        parts.headers.insert(FAILURE_MODE_ALLOWED.clone(), HeaderValue::from_static("true"));
                    }
                    return Ok(());
                }
                let status = StatusCode::from_u16(c.status_on_error).unwrap_or(StatusCode::FORBIDDEN);
                Err(LocalReason::ExtAuthzError { status })
            }
        }
    }

    /// The filter's counter and the routed cluster's (`cluster.<name>.ext_authz.*`).
    fn count(&self, own: &Counter, routed: Option<&str>, name: &str) {
        own.inc();
        if let Some(cluster) = routed {
            self.store.counter(&format!("cluster.{cluster}.{}{name}", self.scope)).inc();
        }
    }
}

/// The response side: the denial's headers and body on the local reply, or the headers an
/// allowing service wants the client to get.
pub fn encode(reply: Option<&Reply>, resp: &mut ::http::Response<crate::proxy::body::ResBody>) {
    match reply {
        Some(Reply::Denied(d)) => d.apply(resp),
        Some(Reply::Success(ops)) => decision::apply_response(ops, resp.headers_mut()),
        None => {}
    }
}

/// The check, bounded by the service's timeout (an error when it runs out).
async fn bounded(timeout: Duration, check: impl std::future::Future<Output = Decision>) -> Decision {
    tokio::time::timeout(timeout, check).await.unwrap_or(Decision::Error)
}

/// Whether a header name matches one of a `ListStringMatcher`'s patterns.
fn listed(list: &[StringMatcher], name: &str) -> bool {
    list.iter().any(|m| string_matches(m, name))
}

#[cfg(test)]
mod tests;
