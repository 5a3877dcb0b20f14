//! One downstream request (Envoy's stream) from arrival to response: the connection manager's
//! stats, the stream's idle and request timeouts, local replies framed as Envoy's codecs frame
//! them, and the access-log entry the response body carries to its end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;

use super::access::{LoggedBody, LoggedRequest, PendingLog, RawHead, RqTiming, StreamInfo};
use super::body::ResBody;
use super::dispatch::process;
use super::local_reply::{self, local_reply, LocalReason};
use super::{headers, limits, stream_timer, upgrade, ConnCtx};
use crate::body::progress;
use crate::filters;
use crate::snapshot::Hcm;
use crate::stats::GaugeGuard;

pub async fn handle(
    ctx: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Result<Response<LoggedBody>, limits::HeadersOverLimit> {
    let snap = ctx.shared.snapshot.load_full();
    let Some(hcm) = ctx.hcm(&snap) else {
        // The listener is gone and its drain time over.
        let mut r = local_reply(LocalReason::NoRoute, &HeaderValue::from_static("envoy"));
        r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        let (parts, body) = r.into_parts();
        return Ok(Response::from_parts(parts, LoggedBody::plain(body)));
    };
    let started = Instant::now();
    let stream = crate::listener::idle::StreamGuard::new(&ctx);
    let stats = &hcm.stats;
    stats.downstream_rq_total.inc();
    stats.rq_total.inc();
    if req.version() == Version::HTTP_2 {
        stats.downstream_rq_http2_total.inc();
    } else {
        stats.downstream_rq_http1_total.inc();
    }
    let _active = GaugeGuard::new(&stats.downstream_rq_active);
    let head_request = req.method() == Method::HEAD;
    let version = req.version();
    // A local reply sent before the request body was read ends an HTTP/1 connection (Envoy).
    let mut unread_body = version != Version::HTTP_2 && !req.body().is_end_stream();
    let keep_alive_10 = version == Version::HTTP_10
        && req.headers().get(CONNECTION).is_some_and(|v| {
            v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("keep-alive")))
        });

    // Only when a logger is configured: when the request started, and a count of its body
    // bytes if it has a body.
    let mut trace = StreamInfo::default();
    let log_start = (!hcm.access_logs.is_empty()).then(|| {
        trace.logging = true;
        if !req.body().is_end_stream() {
            trace.rx_bytes = Some(Arc::new(AtomicU64::new(0)));
        }
        (SystemTime::now(), started)
    });
    let timeouts =
        stream_timer::StreamTimeouts { idle: hcm.config.stream_idle_timeout, request: hcm.config.request_timeout };
    let started_t = tokio::time::Instant::from_std(started);
    trace.started = Some(started_t);
    if timeouts.any() && !req.body().is_end_stream() {
        trace.progress = Some(Arc::new(progress::Progress::new(started_t)));
    }
    let (mut parts, body) = req.into_parts();
    if version == Version::HTTP_2 {
        let max_bytes = hcm.config.max_request_headers_kb as usize * 1024;
        if limits::over_limits(&parts, hcm.config.max_headers_count, max_bytes) {
            stats.downstream_rq_tx_reset.inc();
            warn_over_limits(&ctx);
            return Err(limits::HeadersOverLimit);
        }
    }

    // Asked before `process`, which moves the headers into the upstream request.
    let grpc = local_reply::is_grpc_request(&parts.headers);
    let progress = trace.progress.clone();
    let mut chain = filters::Stream::default();
    // Set by a route with its own `idle_timeout`, which then replaces the stream's.
    let route_idle = std::sync::atomic::AtomicBool::new(false);
    // Pinned where it is made: the request's whole future (filters, routing, forwarding) is
    // kilobytes, and each move into a combinator is a copy of all of it, per request.
    let result = {
        let mut processed = std::pin::pin!(process(
            &ctx,
            &snap.clusters,
            &hcm,
            &mut parts,
            body,
            (&mut trace, &route_idle),
            &mut chain
        ));
        if timeouts.any() {
            let watch = (version != Version::HTTP_2).then_some(&ctx.stream_watch);
            tokio::select! {
                r = processed.as_mut() => r,
                reason = stream_timer::expired_unless_routed(timeouts, started_t, progress.as_deref(), watch, &route_idle) => {
                    match reason {
                        LocalReason::RequestTimeout => stats.downstream_rq_timeout.inc(),
                        _ => stats.downstream_rq_idle_timeout.inc(),
                    }
                    Err(reason)
                }
            }
        } else {
            processed.await
        }
    };
    // The client went away mid-request: Envoy logs no response code and counts none.
    let mut client_gone = false;
    let mut resp = match result {
        Ok(r) => r,
        Err(reason) => {
            client_gone = reason == LocalReason::DownstreamDisconnect;
            if matches!(reason, LocalReason::NoRoute) {
                stats.no_route.inc();
            }
            trace.response_flags = local_reply::with_retry_stop(trace.retry_stop, reason.flag());
            if trace.details.is_none() {
                trace.details = reason.details();
            }
            trace.local_reply = true;
            let mut r = if grpc {
                local_reply::grpc_local_reply(reason, &hcm.server_name, parts.method == http::Method::HEAD)
            } else {
                local_reply(reason, &hcm.server_name)
            };
            if matches!(
                reason,
                LocalReason::BadRequest
                    | LocalReason::CodecError { .. }
                    | LocalReason::RequestTimeout
                    | LocalReason::PathRejected
            ) {
                r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            r
        }
    };
    if !hcm.filters.is_empty() {
        hcm.filters.encode(&ctx.shared.runtime, &mut chain, &mut resp).await;
        trace.filter_details = chain.details.take();
        unread_body &= !chain.body_read;
        trace.metadata = chain.metadata.take();
        if chain.delay_injected {
            trace.response_flags = filters::with_delay_flag(trace.response_flags);
        }
        drop(chain);
    }
    if trace.local_reply {
        shape_local_reply(&mut resp, version, head_request, unread_body);
    }
    if head_request && !matches!(resp.body(), ResBody::EmptyUnsized) {
        // hyper sends no body for HEAD; keep the headers that describe it.
        *resp.body_mut() = ResBody::empty();
    }
    // The tunnel of an upgrade the upstream accepted. Any other answer to an upgrade request
    // closes the connection, as Envoy's does: the request never ended.
    let tunnel = match trace.upgrade.as_mut() {
        Some(up) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            up.upstream.take().zip(parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
        }
        _ => None,
    };
    if trace.upgrade.is_some() && tunnel.is_none() {
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if version != Version::HTTP_2 && tunnel.is_none() && ctx.draining.load(Ordering::Relaxed) {
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        stats.downstream_cx_drain_close.inc();
    }
    if version == Version::HTTP_10 && !keep_alive_10 {
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if !client_gone {
        stats.codes.record(resp.status().as_u16());
    }
    stats.downstream_rq_completed.inc();
    let (mut rparts, body) = resp.into_parts();
    let h2_tunnel = tunnel.is_some() && trace.upgrade.as_ref().is_some_and(|u| u.h2);
    let timing = RqTiming {
        started,
        downstream: stats.downstream_rq_time.clone(),
        upstream: trace.upstream_sent.take(),
        _stream: stream,
    };
    // A `match`, not `Option::map`: a closure would take the request's parts and trace by
    // value, copying them even when nothing is logged.
    let log = match log_start {
        None => None,
        Some((start, started)) => Some(Box::new(PendingLog {
            loggers: Arc::clone(&hcm.access_logs),
            start,
            started,
            request: logged_request(&ctx, &hcm, parts, &mut trace),
            version,
            status: if client_gone { 0 } else { rparts.status.as_u16() },
            response_headers: logged_response_headers(&hcm.log_response_headers, &rparts.headers),
            trailers: None,
            trace,
            remote: ctx.remote,
            local: ctx.local,
            bytes_sent: 0,
            tls: ctx.tls.get().cloned(),
        })),
    };
    if h2_tunnel {
        // Logged and counted as the 101 it was; the client's stream gets its 200.
        upgrade::UpgradeRequest::to_h2_answer(&mut rparts.status, &mut rparts.headers);
    }
    let Some((upstream, downstream)) = tunnel else {
        let body = match log {
            None => LoggedBody::plain(body),
            Some(log) => LoggedBody::logged(body, log),
        };
        return Ok(Response::from_parts(rparts, body.timed(timing)));
    };
    // The request stays in progress, and its line unwritten, until the tunnel closes; Envoy
    // records no request time for it.
    upgrade::Tunnel {
        ctx: Arc::clone(&ctx),
        downstream,
        upstream,
        idle: hcm.config.stream_idle_timeout.map(|d| (d, stats.downstream_rq_idle_timeout.clone())),
        log,
        guards: (
            GaugeGuard::new(&stats.downstream_rq_active),
            GaugeGuard::new(&stats.downstream_cx_upgrades_active),
            timing,
        ),
    }
    .spawn();
    Ok(Response::from_parts(rparts, LoggedBody::plain(body)))
}

/// Once per connection, and at most once a second in all.
fn warn_over_limits(ctx: &ConnCtx) {
    if ctx.warned_limits.swap(true, Ordering::Relaxed) {
        return;
    }
    if let Some(suppressed) = limits::warning().admit() {
        tracing::warn!(
            client.addr = %ctx.remote,
            suppressed,
            "HTTP/2 request headers over max_request_headers_kb or max_headers_count: stream reset"
        );
    }
}

/// Copies of the response headers the loggers read (all values of each), not of them all.
pub(super) fn logged_response_headers(names: &[http::HeaderName], sent: &http::HeaderMap) -> http::HeaderMap {
    let mut kept = http::HeaderMap::new();
    for name in names {
        for value in sent.get_all(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// The request as Envoy's access log sees it: its headers after the connection manager's and
/// the router's changes (`x-request-id`, `x-forwarded-*`, rewritten `:path` and `:authority`,
/// `x-envoy-original-path`), because Envoy changes the downstream header map in place.
fn logged_request(ctx: &ConnCtx, hcm: &Hcm, mut parts: http::request::Parts, trace: &mut StreamInfo) -> LoggedRequest {
    match &trace.raw_head {
        Some(RawHead::Unparsed) => {
            return LoggedRequest {
                method: parts.method,
                path: String::new(),
                authority: HeaderValue::from_static(""),
                headers: http::HeaderMap::new(),
            }
        }
        Some(RawHead::Target(target)) => {
            let authority = parts.headers.get(HOST).cloned().unwrap_or_else(|| HeaderValue::from_static(""));
            return LoggedRequest { method: parts.method, path: target.to_string(), authority, headers: parts.headers };
        }
        None => {}
    }
    if let Some(forwarded) = trace.forwarded.take() {
        return LoggedRequest {
            method: parts.method,
            path: forwarded.path,
            authority: forwarded.authority,
            headers: forwarded.headers,
        };
    }
    // A local reply: Envoy changes the request headers before routing, so the log shows
    // them changed even though nothing was forwarded.
    if !trace.forwarding_headers_set {
        headers::mutate_forwarding(
            &mut parts.headers,
            &hcm.config,
            ctx.remote,
            ctx.shared.local_ip,
            ctx.tls.get().map(|t| &**t),
        );
    }
    let authority = match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => parts.headers.get(HOST).cloned(),
    };
    LoggedRequest {
        path: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        method: parts.method,
        authority: authority.unwrap_or_else(|| HeaderValue::from_static("")),
        headers: parts.headers,
    }
}

/// The framing headers of a local reply, as Envoy's codecs write them.
fn shape_local_reply(resp: &mut Response<ResBody>, version: Version, head: bool, unread_body: bool) {
    let empty = resp.body().is_end_stream();
    let h = resp.headers_mut();
    if version == Version::HTTP_10 && !h.contains_key(CONNECTION) {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if unread_body {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    // The gRPC-Web filter sets `content-length: 0` itself on the answers it converts.
    let grpc_web = h.get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"));
    if version == Version::HTTP_2 && empty && !grpc_web {
        // Headers with END_STREAM: no content-length in Envoy's local replies.
        h.remove(CONTENT_LENGTH);
    } else if head && empty && version != Version::HTTP_2 {
        // Envoy answers HEAD with an empty local reply as if a chunked body would follow.
        h.remove(CONTENT_LENGTH);
        *resp.body_mut() = ResBody::EmptyUnsized;
    }
}
