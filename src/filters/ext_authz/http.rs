//! The HTTP authorization service. The check request is what Envoy's raw HTTP client sends:
//! the client's method, `path_prefix` + its path, its authority, `content-length` of the
//! body sent (0 without one), `Authorization` and the `allowed_headers`, `headers_to_add`
//! (format strings rendered against the client's request),
//! `x-envoy-auth-partial-body` when the body was read, then `x-envoy-internal` and
//! `x-envoy-expected-rq-timeout-ms` as Envoy's async client adds them.
//!
//! Only `200` allows (Envoy's rule: a `201` is a denial); a `5xx` is an error.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, HOST};
use http::StatusCode;
use http_body_util::BodyExt;

use super::decision::{protected, Action, Allowed, Decision, Denied, ResponseOp};
use super::{listed, CheckRequest};
use crate::access_log::LogContext;
use crate::config::ext_authz::HttpService;
use crate::proxy::forward::{self, AttemptTemplate, BodySource};
use crate::proxy::headers::{X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, X_ENVOY_INTERNAL, X_ENVOY_UPSTREAM_SERVICE_TIME};
use crate::routing::header_ops::HeaderText;
use crate::upstream::Cluster;

pub static PARTIAL_BODY: HeaderName = HeaderName::from_static("x-envoy-auth-partial-body");
static HEADERS_TO_REMOVE: HeaderName = HeaderName::from_static("x-envoy-auth-headers-to-remove");
/// A larger answer from the service is an error.
pub const MAX_ANSWER: usize = 1024 * 1024;

/// Asks the service; bounded by the caller's timeout.
pub async fn check(
    s: &HttpService,
    adds: &[(HeaderName, HeaderText)],
    cluster: &Arc<Cluster>,
    req: &CheckRequest<'_>,
) -> Decision {
    let mut template = template(s, adds, req);
    let body = req.body.as_ref().map(|(b, _)| b.clone()).filter(|b| !b.is_empty());
    let sent = std::time::Instant::now();
    match forward::forward(cluster, &mut template, BodySource::Replayable(body), Some(s.timeout), None, None, &[]).await
    {
        Ok(out) => {
            let (mut parts, body) = out.response.into_parts();
            let Ok(body) = http_body_util::Limited::new(body, MAX_ANSWER).collect().await else {
                return Decision::Error;
            };
            cluster.stats.upstream_rq_time.record_duration(sent.elapsed());
            // Envoy's async client adds it, and a denial passes it on.
            parts
                .headers
                .insert(X_ENVOY_UPSTREAM_SERVICE_TIME.clone(), HeaderValue::from(out.service_time.as_millis() as u64));
            decide(s, parts.status, parts.headers, body.to_bytes())
        }
        Err(f) => {
            if !matches!(f.reason, crate::proxy::local_reply::LocalReason::Overflow) {
                cluster.stats.charge(f.reason.status_and_body().0.as_u16(), true);
            }
            Decision::Error
        }
    }
}

/// The check request.
pub(super) fn template(s: &HttpService, adds: &[(HeaderName, HeaderText)], req: &CheckRequest<'_>) -> AttemptTemplate {
    let client = &req.parts.headers;
    let mut h = HeaderMap::new();
    let length = req.body.as_ref().map_or(0, |(b, _)| b.len());
    h.insert(CONTENT_LENGTH, HeaderValue::from(length));
    for name in client.keys() {
        if name == HOST || name == CONTENT_LENGTH {
            continue;
        }
        if name == AUTHORIZATION || listed(&s.allowed_headers, name.as_str()) {
            for v in client.get_all(name) {
                h.append(name.clone(), v.clone());
            }
        }
    }
    if let Some((_, whole)) = &req.body {
        h.insert(PARTIAL_BODY.clone(), HeaderValue::from_static(if *whole { "false" } else { "true" }));
    }
    // Envoy's header parser: each one set (overwriting), an empty value left out; a format
    // reads the client's request, not the check request being built.
    let formatted = adds.iter().any(|(_, v)| matches!(v, HeaderText::Formatted(_)));
    let ctx = formatted.then(|| format_context(req));
    for (k, v) in adds {
        let value = match v {
            HeaderText::Static(v) => Some(v.clone()),
            HeaderText::Formatted(f) => ctx.as_ref().and_then(|ctx| {
                let mut out = String::new();
                f.render_header(ctx, &mut out);
                HeaderValue::from_str(&out).ok()
            }),
        };
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            h.insert(k.clone(), v);
        }
    }
    h.insert(X_ENVOY_INTERNAL.clone(), HeaderValue::from_static("true"));
    h.insert(X_ENVOY_EXPECTED_RQ_TIMEOUT_MS.clone(), HeaderValue::from(s.timeout.as_millis() as u64));
    AttemptTemplate {
        method: req.parts.method.clone(),
        path: format!("{}{}", s.path_prefix, req.info.full_path),
        target: None,
        authority: HeaderValue::from_str(req.info.authority).unwrap_or_else(|_| HeaderValue::from_static("")),
        headers: h,
        set_attempt_count: false,
        auto_host_rewrite: false,
        append_xfh: false,
        internal: true,
        lb_hash: None,
        headers_read_after: false,
    }
}

/// What a formatted `headers_to_add` value reads: the client's request as the filter sees
/// it, nothing answered yet (`%RESPONSE_CODE%` is 0).
fn format_context<'a>(req: &'a CheckRequest<'a>) -> LogContext<'a> {
    req.info.log_context(&req.parts.headers, req.parts.version, None)
}

/// The decision an answer makes.
pub fn decide(s: &HttpService, status: StatusCode, mut h: HeaderMap, body: Bytes) -> Decision {
    if status.is_server_error() {
        return Decision::Error;
    }
    let remove: Vec<HeaderName> = h
        .get_all(&HEADERS_TO_REMOVE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().to_ascii_lowercase().as_bytes()).ok())
        .filter(|n| !protected(n))
        .collect();
    h.remove(&HEADERS_TO_REMOVE);
    let pick = |list: &[crate::config::model::StringMatcher]| -> Vec<(HeaderName, HeaderValue)> {
        h.iter().filter(|(k, _)| listed(list, k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    if status == StatusCode::OK {
        let response = pick(&s.allowed_client_headers_on_success)
            .into_iter()
            .map(|(name, value)| ResponseOp { name, value, action: Action::Add })
            .collect();
        return Decision::Allow(Allowed {
            set: pick(&s.allowed_upstream_headers).into_iter().filter(|(k, _)| !protected(k)).collect(),
            add: pick(&s.allowed_upstream_headers_to_append).into_iter().filter(|(k, _)| !protected(k)).collect(),
            append: Vec::new(),
            remove,
            response,
        });
    }
    let headers = h.iter().filter(|(k, _)| client_header(s, k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    Decision::Deny(Denied { status, headers, body })
}

/// Whether a denial's header reaches the client: every one but `Host` when
/// `allowed_client_headers` is empty, else the listed ones and Envoy's `content-length`,
/// `www-authenticate` and `location`. The connection's own headers, and `date` and `server`
/// (which Envoy overwrites), never do.
fn client_header(s: &HttpService, k: &HeaderName) -> bool {
    if matches!(k.as_str(), "host" | "connection" | "transfer-encoding" | "keep-alive" | "date" | "server") {
        return false;
    }
    s.allowed_client_headers.is_empty()
        || listed(&s.allowed_client_headers, k.as_str())
        || matches!(k.as_str(), "content-length" | "www-authenticate" | "location")
}
