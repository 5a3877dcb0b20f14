//! Sends a request to a cluster: host choice, timeouts and Envoy's retry policy.
//!
//! As in Envoy, the route timeout counts from the end of the downstream request (a slow
//! upload does not eat into it), and so does the first attempt's per-try timeout; a retry's
//! counts from when it is sent. One timer per attempt covers both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::upstream::response::UpstreamResponse;
use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Method, Request, Uri, Version};

use super::body::ReqBody;
use super::headers::X_ENVOY_ATTEMPT_COUNT;
use super::local_reply::LocalReason;
use crate::body::progress::Progress;
use crate::body::replay::Recording;
use crate::config::model::{RateLimitedBackOff, RetryPolicy};
use crate::routing::matcher::{header_matches, RequestView};
use crate::stats::GaugeGuard;
use crate::upstream::breakers::RetrySlot;
use crate::upstream::{Cluster, Host, Local, UpstreamError};

/// The parts of an upstream request that every attempt repeats.
pub struct AttemptTemplate {
    pub method: Method,
    /// Path and query; the authority for HTTP/2 upstreams comes from `authority`.
    pub path: String,
    /// `path` parsed, when it is the client's own origin-form target: HTTP/1.1 attempts share
    /// it instead of parsing the path again.
    pub target: Option<http::uri::PathAndQuery>,
    pub authority: HeaderValue,
    pub headers: HeaderMap,
    pub set_attempt_count: bool,
    /// `auto_host_rewrite`: the chosen host's name replaces the authority.
    pub auto_host_rewrite: bool,
    /// `append_x_forwarded_host`, for the authority `auto_host_rewrite` replaces.
    pub append_xfh: bool,
    /// The request carries `x-envoy-internal: true` (its answer counts as `internal.`).
    pub internal: bool,
    /// The route's `hash_policy` key, for RING_HASH / MAGLEV clusters (every attempt).
    pub lb_hash: Option<u64>,
    /// The headers are read after the first attempt is built (a mirror sent later, an
    /// internal redirect, the access log, formatted response headers): each attempt copies
    /// them. Otherwise a request with one attempt moves them into it.
    pub headers_read_after: bool,
}

/// The request body: streamed once (no retry policy), held in memory, or recorded while it
/// streams so that retries can resend it.
pub enum BodySource {
    Stream(Option<ReqBody>),
    Replayable(Option<Bytes>),
    Recorded(Recording),
}

impl BodySource {
    fn take(&mut self) -> Option<ReqBody> {
        match self {
            BodySource::Stream(b) => b.take(),
            BodySource::Replayable(b) => Some(ReqBody::Full(b.clone())),
            BodySource::Recorded(r) => r.attempt(),
        }
    }

    /// A copy of the whole body for an attempt beside one still sending it (a hedge); `None`
    /// for a streamed body and a recording not (or no longer) whole.
    fn copy(&self) -> Option<ReqBody> {
        match self {
            BodySource::Stream(_) => None,
            BodySource::Replayable(b) => Some(ReqBody::Full(b.clone())),
            BodySource::Recorded(r) => {
                let (data, trailers) = r.whole()?;
                let frames = (!data.is_empty())
                    .then(|| http_body::Frame::data(data))
                    .into_iter()
                    .chain(trailers.map(http_body::Frame::trailers))
                    .collect();
                Some(ReqBody::Frames(Box::new(frames)))
            }
        }
    }

    /// Whether retries were given up because the body outgrew the retry buffer. Envoy then
    /// stops retrying the request and flags nothing (no `URX`).
    fn abandoned(&self) -> bool {
        match self {
            BodySource::Recorded(r) => !r.replayable(),
            BodySource::Stream(_) | BodySource::Replayable(_) => false,
        }
    }

    /// Stops the attempt that is still reading the body, for a retry; false if the body
    /// can no longer be sent again.
    fn hold(&self) -> bool {
        match self {
            BodySource::Recorded(r) => r.hold(),
            BodySource::Stream(_) | BodySource::Replayable(_) => true,
        }
    }
}

pub struct Outcome {
    pub response: UpstreamResponse,
    pub host: Arc<Host>,
    pub service_time: Duration,
    /// When the answering attempt was sent (the start of Envoy's `upstream_rq_time`).
    pub sent: Instant,
    pub attempts: u32,
    /// When the route timeout ends; the response body must be complete by then. `None` also
    /// when the upstream answered before the request ended (the timeout had not started).
    pub deadline: Option<tokio::time::Instant>,
    /// Why the last answer was not retried, when the policy wanted to.
    pub retry_stop: Option<RetryStop>,
}

/// Why a request the retry policy wanted to retry was not: Envoy's `URX` and `UO` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryStop {
    /// `num_retries` were used up (`upstream_rq_retry_limit_exceeded`).
    LimitExceeded,
    /// `max_retries` retries were already in progress (`upstream_rq_retry_overflow`).
    Overflow,
}

pub struct Failure {
    pub reason: LocalReason,
    pub host: Option<Arc<Host>>,
    pub attempts: u32,
    /// Envoy's `%RESPONSE_CODE_DETAILS%` when they name the transport error.
    pub details: Option<&'static str>,
    /// The last host a connection was made to. Envoy applies `auto_host_rewrite` to the
    /// request when its connection pool is ready, so a request that never got a connection
    /// keeps (and logs) the client's authority.
    pub connected: Option<Arc<Host>>,
    pub retry_stop: Option<RetryStop>,
}

impl Failure {
    /// The proxy's own end of the request, no attempt answering (a stream deadline).
    pub fn local(reason: LocalReason) -> Self {
        Failure { reason, host: None, attempts: 1, details: None, connected: None, retry_stop: None }
    }
}

enum AttemptError {
    Upstream(UpstreamError),
    Timeout(Expiry),
}

/// Which of an attempt's timeouts ended it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expiry {
    /// The route timeout.
    Global,
    PerTry,
    /// `per_try_idle_timeout`: before the answer's head, no bytes at all from the upstream.
    PerTryIdle,
}

/// When the downstream request ended: `start` when it was whole before forwarding began.
fn request_end(start: tokio::time::Instant, progress: Option<&Progress>) -> Option<tokio::time::Instant> {
    match progress {
        None => Some(start),
        Some(p) => p.ended(),
    }
}

/// Resolves when the attempt sent at `sent` runs out of time: the route timeout, the per-try
/// timeout or the per-try idle timeout (`per_try.1`, which before the answer's head is one
/// more deadline); all start once the request has ended.
async fn attempt_timeout(
    timeout: Option<Duration>,
    per_try: (Option<Duration>, Option<Duration>),
    start: tokio::time::Instant,
    progress: Option<&Progress>,
    sent: tokio::time::Instant,
) -> Expiry {
    if timeout.is_none() && per_try.0.is_none() && per_try.1.is_none() {
        return std::future::pending().await;
    }
    let end = match progress {
        None => start,
        Some(p) => p.wait_end().await,
    };
    let try_start = end.max(sent);
    let deadlines = [
        (timeout.map(|t| end + t), Expiry::Global),
        (per_try.0.map(|p| try_start + p), Expiry::PerTry),
        (per_try.1.map(|p| try_start + p), Expiry::PerTryIdle),
    ];
    // The earliest; on a tie the route timeout, then the per-try one.
    let first = deadlines.into_iter().filter_map(|(at, e)| at.map(|at| (at, e))).min_by_key(|(at, _)| *at);
    let Some((at, expiry)) = first else {
        return std::future::pending().await;
    };
    tokio::time::sleep_until(at).await;
    expiry
}

/// Tries the request up to `1 + num_retries` times within the route timeout. `progress`:
/// the body, when it was still arriving as forwarding began.
pub async fn forward(
    cluster: &Arc<Cluster>,
    prepared: &mut AttemptTemplate,
    mut body: BodySource,
    timeout: Option<Duration>,
    policy: Option<&RetryPolicy>,
    progress: Option<&Progress>,
    deferred_codes: &[u16],
) -> Result<Outcome, Failure> {
    if let Some(p) = policy.filter(|p| p.hedge_on_per_try_timeout) {
        if p.per_try_timeout.is_some() || p.per_try_idle_timeout.is_some() {
            // Boxed: only hedged requests carry the race's state, not every request's future.
            return Box::pin(hedge::forward(cluster, &*prepared, body, timeout, p, progress, deferred_codes)).await;
        }
    }
    let stats = &cluster.stats;
    let start = tokio::time::Instant::now();
    // Known once the request has ended.
    let deadline = || timeout.and_then(|t| request_end(start, progress).map(|e| e + t));
    let max_attempts = match (&body, policy) {
        (BodySource::Replayable(_) | BodySource::Recorded(_), Some(p)) if request_retriable(p, prepared) => {
            1 + p.num_retries
        }
        _ => 1,
    };
    let mut hosts = super::retry_hosts::RetryHosts::new(policy);
    let h1 = cluster.config.protocol == crate::config::model::UpstreamProtocol::Http1;
    let mut attempt = 0u32;
    let mut connected = None;
    let mut retry_stop = None;
    // Whether the retry policy wants another attempt after this result; then whether the
    // body can still be sent again, the retry limit and the cluster's `max_retries` allow it.
    let retry = |wants: bool, body: &BodySource, attempt: u32, stop: &mut Option<RetryStop>| -> Option<RetrySlot<'_>> {
        if !wants || body.abandoned() || deadline().is_some_and(|d| tokio::time::Instant::now() >= d) {
            return None;
        }
        if attempt >= max_attempts {
            stats.upstream_rq_retry_limit_exceeded.inc();
            *stop = Some(RetryStop::LimitExceeded);
            return None;
        }
        let Some(slot) = cluster.breakers.retry() else {
            *stop = Some(RetryStop::Overflow);
            return None;
        };
        // The retry is certain only now, so only now does the attempt still reading stop.
        body.hold().then_some(slot)
    };
    loop {
        attempt += 1;
        let Some(host) = hosts.choose(cluster, prepared.lb_hash) else {
            stats.upstream_cx_none_healthy.inc();
            stats.lb_healthy_panic.inc();
            return Err(Failure {
                reason: LocalReason::NoHealthyUpstream,
                host: None,
                attempts: attempt,
                details: None,
                connected,
                retry_stop,
            });
        };
        let Some(req_body) = body.take() else {
            return Err(Failure {
                reason: LocalReason::UpstreamReset,
                host: Some(host),
                attempts: attempt,
                details: None,
                connected,
                retry_stop,
            });
        };
        let Some(request_slot) = cluster.breakers.request(&stats.upstream_rq_active) else {
            return Err(Failure {
                reason: LocalReason::Overflow,
                host: Some(host),
                attempts: attempt,
                details: None,
                connected,
                retry_stop,
            });
        };
        hosts.attempted(&host);
        // Only the last possible attempt may take the headers: every retry is bounded by
        // `max_attempts`.
        let headers = if max_attempts == 1 && !prepared.headers_read_after {
            std::mem::take(&mut prepared.headers)
        } else {
            prepared.headers.clone()
        };
        let req = build_request(cluster, prepared, headers, req_body, attempt, &host);
        if attempt > 1 {
            stats.upstream_rq_retry.inc();
        }
        let per_try = (policy.and_then(|p| p.per_try_timeout), policy.and_then(|p| p.per_try_idle_timeout));
        // On tokio's clock, as are the timeouts it starts (tests run it paused).
        let sent = tokio::time::Instant::now();
        let result = {
            let _host_active = GaugeGuard::new(&host.stats.rq_active);
            // Pinned where they are made: `select!` would otherwise move the pool's future,
            // kilobytes of state, on every request.
            let send = std::pin::pin!(host.pool.send(req));
            let expiry = std::pin::pin!(attempt_timeout(timeout, per_try, start, progress, sent));
            tokio::select! {
                r = send => r.map_err(AttemptError::Upstream),
                e = expiry => Err(AttemptError::Timeout(e)),
            }
        };
        drop(request_slot);
        // Envoy counts a request once it is on a connection.
        if !matches!(&result, Err(AttemptError::Upstream(e)) if e.before_connection()) {
            stats.upstream_rq_total.inc();
            host.stats.rq_total.inc();
        }
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                cluster.outlier_local(&host, Local::ConnectSuccess);
                cluster.outlier_result(&host, status);
                if status >= 500 {
                    host.stats.rq_error.inc();
                } else {
                    host.stats.rq_success.inc();
                }
                let wants = policy.is_some_and(|p| retry_on_answer(p, status, response.headers()));
                if let Some(_slot) = retry(wants, &body, attempt, &mut retry_stop) {
                    stats.charge_retried(status);
                    connected = Some(Arc::clone(&host));
                    let asked = policy
                        .and_then(|p| p.rate_limited.as_ref())
                        .and_then(|r| reset_interval(r, response.headers()));
                    drop(response);
                    backoff(cluster, policy, attempt, asked, deadline()).await;
                    continue;
                }
                // Only the answer that is passed on is charged to the cluster's codes; one an
                // internal redirect may follow is charged by the caller if it is passed on.
                if !deferred_codes.contains(&status) {
                    stats.charge(status, prepared.internal);
                }
                if attempt > 1 && retry_stop.is_none() {
                    stats.upstream_rq_retry_success.inc();
                }
                return Ok(Outcome {
                    response,
                    host,
                    // Envoy's `x-envoy-upstream-service-time` counts from the request's end.
                    service_time: request_end(start, progress).map_or(sent, |e| e.max(sent)).elapsed(),
                    sent: sent.into_std(),
                    attempts: attempt,
                    deadline: deadline(),
                    retry_stop,
                });
            }
            Err(AttemptError::Timeout(expiry)) => {
                // Counted as connected: a connect still pending at the timeout is rare (the
                // connect timeout is usually the shorter one) and is not told apart here.
                connected = Some(Arc::clone(&host));
                host.stats.rq_timeout.inc();
                // A timeout is a local-origin failure (a 504 without the split), after the
                // connection it was sent on (Envoy's pool-ready result).
                cluster.outlier_local(&host, Local::ConnectSuccess);
                cluster.outlier_local(&host, Local::Timeout);
                if h1 {
                    // The attempt's connection is dropped with its request.
                    stats.upstream_cx_destroy_with_active_rq.inc();
                    stats.upstream_cx_destroy_local_with_active_rq.inc();
                }
                let reason = if expiry == Expiry::Global {
                    stats.upstream_rq_timeout.inc();
                    LocalReason::UpstreamTimeout
                } else {
                    if expiry == Expiry::PerTry {
                        stats.upstream_rq_per_try_timeout.inc();
                    } else {
                        stats.upstream_rq_per_try_idle_timeout.inc();
                    }
                    let wants =
                        policy.is_some_and(|p| p.retry_on.five_xx || p.retry_on.gateway_error || p.retry_on.reset);
                    if let Some(_slot) = retry(wants, &body, attempt, &mut retry_stop) {
                        backoff(cluster, policy, attempt, None, deadline()).await;
                        continue;
                    }
                    if expiry == Expiry::PerTry {
                        LocalReason::PerTryTimeout
                    } else {
                        LocalReason::PerTryIdleTimeout
                    }
                };
                return Err(Failure {
                    reason,
                    host: Some(host),
                    attempts: attempt,
                    details: None,
                    connected,
                    retry_stop,
                });
            }
            Err(AttemptError::Upstream(e)) => {
                let reason = attempt_failed(cluster, &host, &e);
                if matches!(e, UpstreamError::Reset { .. }) {
                    connected = Some(Arc::clone(&host));
                }
                let wants = policy.is_some_and(|p| retry_on_error(p, reason));
                if let Some(_slot) = retry(wants, &body, attempt, &mut retry_stop) {
                    backoff(cluster, policy, attempt, None, deadline()).await;
                    continue;
                }
                let details = Some(super::local_reply::reset_details(&e));
                // A pending request refused by the breakers never had a host (Envoy logs none).
                let host = (!matches!(e, UpstreamError::PendingOverflow { .. })).then_some(host);
                return Err(Failure { reason, host, attempts: attempt, details, connected, retry_stop });
            }
        }
    }
}

/// What an attempt that failed in the upstream (no answer) counts: the host's error, the
/// outlier detector's local-origin events, the cluster's reset counters; its local reply.
fn attempt_failed(cluster: &Cluster, host: &Arc<Host>, e: &UpstreamError) -> LocalReason {
    let stats = &cluster.stats;
    host.stats.rq_error.inc();
    if !matches!(e, UpstreamError::PendingOverflow { .. }) {
        // A connect failure or a reset is a local-origin failure (a 503 without the split);
        // a reset comes after the connection's success, as in Envoy.
        if !e.before_connection() {
            cluster.outlier_local(host, Local::ConnectSuccess);
        }
        cluster.outlier_local(host, Local::ConnectFailed);
    }
    let reason = LocalReason::from_upstream_error(e);
    match reason {
        LocalReason::UpstreamReset => {
            stats.upstream_cx_destroy_with_active_rq.inc();
            stats.upstream_cx_destroy_remote_with_active_rq.inc();
        }
        // Envoy counts a refused stream as no reset: it never started.
        LocalReason::StreamReset { refused: false } => stats.upstream_rq_rx_reset.inc(),
        _ => {}
    }
    tracing::debug!(cluster.name = %cluster.name(), error = %e, "upstream attempt failed");
    reason
}

/// `retriable_request_headers`: when the policy lists some, the request must match one to be
/// retried at all.
fn request_retriable(p: &RetryPolicy, prepared: &AttemptTemplate) -> bool {
    p.retriable_request_headers.is_empty() || {
        let authority = prepared.authority.to_str().unwrap_or_default();
        let view = RequestView::new(&prepared.path, prepared.method.as_str(), authority, "", &prepared.headers);
        p.retriable_request_headers.iter().any(|m| header_matches(m, &view))
    }
}

static X_ENVOY_RATELIMITED: http::HeaderName = http::HeaderName::from_static("x-envoy-ratelimited");

fn retry_on_answer(p: &RetryPolicy, status: u16, headers: &HeaderMap) -> bool {
    let r = &p.retry_on;
    // An upstream Envoy's rate limiting: retried under `envoy-ratelimited` only, whatever
    // the status.
    if headers.contains_key(&X_ENVOY_RATELIMITED) {
        return r.envoy_ratelimited;
    }
    (r.five_xx && status >= 500)
        || (r.gateway_error && matches!(status, 502..=504))
        || (r.retriable_4xx && status == 409)
        || (r.retriable_status_codes && p.retriable_status_codes.contains(&status))
        || (r.grpc_statuses != 0 && grpc_status(headers).is_some_and(|c| r.grpc_status(c)))
        || (r.retriable_headers && p.retriable_headers.iter().any(|m| answer_header_matches(m, headers)))
}

/// A `retriable_headers` matcher against an answer's headers.
fn answer_header_matches(m: &crate::config::model::HeaderMatcher, headers: &HeaderMap) -> bool {
    header_matches(m, &RequestView::new("", "", "", "", headers))
}

/// The wait an answer's reset header asks for (`rate_limited_retry_back_off`): the first of
/// the configured headers that parses to no more than `max_interval`, as Envoy reads them
/// (whole seconds, or a Unix time in seconds still to come).
fn reset_interval(r: &RateLimitedBackOff, headers: &HeaderMap) -> Option<Duration> {
    r.reset_headers.iter().find_map(|h| {
        let v = headers.get(h.name.as_str())?.to_str().ok()?;
        let n: u64 = v.parse().ok()?;
        let secs = if h.unix_timestamp {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
            n.checked_sub(now)?
        } else {
            n
        };
        Some(Duration::from_secs(secs)).filter(|d| *d <= r.max_interval)
    })
}

/// The `grpc-status` of a trailers-only gRPC answer (the only one Envoy retries: a status in
/// trailers comes after the answer was passed on).
fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

fn retry_on_error(p: &RetryPolicy, reason: LocalReason) -> bool {
    let r = &p.retry_on;
    match reason {
        // Envoy's `reset`, `5xx` and `gateway-error` retry every reset, a failed connect too.
        LocalReason::ConnectFailure | LocalReason::ConnectTimeout => {
            r.connect_failure || r.reset || r.five_xx || r.gateway_error
        }
        LocalReason::UpstreamReset | LocalReason::StreamReset { refused: false } => {
            r.reset || r.five_xx || r.gateway_error
        }
        LocalReason::StreamReset { refused: true } => r.reset || r.five_xx || r.gateway_error || r.refused_stream,
        _ => false,
    }
}

/// Envoy's fully jittered exponential back-off before retry `retry` (1 for the first), given
/// a random number: a wait below an interval that starts at `base_ms` and doubles, becoming
/// `max_ms` once doubling would pass half of it.
fn backoff_ms(base_ms: u64, max_ms: u64, retry: u32, random: u64) -> u64 {
    let mut interval = base_ms.max(1);
    // Bounded: the interval reaches the max within 64 doublings.
    for _ in 1..retry.min(64) {
        if interval >= max_ms / 2 {
            interval = max_ms;
            break;
        }
        interval *= 2;
    }
    random % interval.max(1)
}

/// Envoy's wait for an answer's reset header: between the interval asked for and half as
/// long again.
fn ratelimited_backoff_ms(asked_ms: u64, random: u64) -> u64 {
    asked_ms + random % (asked_ms / 2).max(1)
}

/// Waits out the back-off after attempt `attempt` failed: the wait an answer's reset header
/// asked for (`asked`), else the policy's exponential back-off; never past the deadline.
async fn backoff(
    cluster: &Cluster,
    policy: Option<&RetryPolicy>,
    attempt: u32,
    asked: Option<Duration>,
    deadline: Option<tokio::time::Instant>,
) {
    let ms = match asked.map(|d| d.as_millis() as u64).filter(|ms| *ms > 1) {
        Some(asked) => {
            cluster.stats.upstream_rq_retry_backoff_ratelimited.inc();
            ratelimited_backoff_ms(asked, rand::random())
        }
        None => {
            cluster.stats.upstream_rq_retry_backoff_exponential.inc();
            let (base, max) =
                policy.map_or((25, 250), |p| (p.backoff_base.as_millis() as u64, p.backoff_max.as_millis() as u64));
            backoff_ms(base, max, attempt, rand::random())
        }
    };
    let mut wait = Duration::from_millis(ms);
    if let Some(d) = deadline {
        wait = wait.min(d.saturating_duration_since(tokio::time::Instant::now()));
    }
    tokio::time::sleep(wait).await;
}

/// The attempt's request: `headers` are the template's, moved or copied.
fn build_request(
    cluster: &Cluster,
    p: &AttemptTemplate,
    mut headers: HeaderMap,
    body: ReqBody,
    attempt: u32,
    host: &Host,
) -> Request<ReqBody> {
    let mut req = Request::new(body);
    *req.method_mut() = p.method.clone();
    if p.set_attempt_count {
        headers.insert(X_ENVOY_ATTEMPT_COUNT.clone(), HeaderValue::from(attempt));
    }
    let mut authority = &p.authority;
    let rewritten;
    if p.auto_host_rewrite {
        if let Some(v) = host.hostname.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            if p.append_xfh {
                super::headers::append_forwarded_host(&mut headers, &p.authority);
            }
            headers.insert(super::headers::X_ENVOY_ORIGINAL_HOST.clone(), p.authority.clone());
            rewritten = v;
            authority = &rewritten;
        }
    }
    match cluster.config.protocol {
        crate::config::model::UpstreamProtocol::Http1 => {
            *req.version_mut() = Version::HTTP_11;
            headers.insert(http::header::HOST, authority.clone());
            if hyper::body::Body::is_end_stream(req.body()) {
                super::headers::length_of_empty_body(&p.method, &mut headers);
            }
            *req.uri_mut() = match &p.target {
                Some(target) => Uri::from(target.clone()),
                None => Uri::try_from(p.path.as_str()).unwrap_or_else(|_| Uri::from_static("/")),
            };
        }
        crate::config::model::UpstreamProtocol::Http2 => {
            *req.version_mut() = Version::HTTP_2;
            headers.remove(http::header::HOST);
            let uri = Uri::builder()
                .scheme("http")
                .authority(authority.as_bytes())
                .path_and_query(p.path.as_str())
                .build()
                .or_else(|_| Uri::try_from(p.path.as_str()))
                .unwrap_or_else(|_| Uri::from_static("/"));
            *req.uri_mut() = uri;
        }
    }
    *req.headers_mut() = headers;
    req
}

mod hedge;
#[cfg(test)]
mod tests;
