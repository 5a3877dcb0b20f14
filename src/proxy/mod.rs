//! The request path: route a downstream request, forward it upstream (or answer locally),
//! and shape the response as Envoy does.
//!
//! Per request: one snapshot load, a route lookup in compiled tables, atomic stat adds on
//! pre-registered handles. Nothing here takes a lock except the host's connection pool.

mod access;
pub mod body;
pub mod forward;
pub mod headers;
mod limits;
pub mod local_reply;
pub mod normalize;
pub mod request_head;
mod rewrite;
pub mod stream_timer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, LOCATION, SERVER, UPGRADE};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{progress, replay};
use crate::config::model::{HostRewrite, ServerHeaderTransformation};
use crate::filters::{self, RequestBody};
use crate::routing::header_ops::{apply_adds, apply_removes, HeaderOpsRt};
use crate::routing::matcher::RequestView;
use crate::routing::{ActionRt, ForwardRt, NoRoute, RouteRt, RouteTable, VirtualHostRt};
use crate::server::ProcessState;
use crate::snapshot::{Hcm, ListenerRt, Snapshot};
use crate::stats::GaugeGuard;
pub use access::{log_codec_reply, LoggedBody, Logger};
use access::{ForwardedRequest, LoggedRequest, PendingLog, RawHead, RqTiming, StreamInfo};
use body::{ReqBody, ResBody};
use forward::{AttemptTemplate, BodySource};
use headers::{X_ENVOY_ORIGINAL_HOST, X_ENVOY_ORIGINAL_PATH, X_ENVOY_UPSTREAM_SERVICE_TIME};
use local_reply::{local_reply, reply, LocalReason};

/// One downstream connection.
pub struct ConnCtx {
    pub shared: Arc<ProcessState>,
    pub listener_name: Arc<str>,
    /// The listener's last version, for requests after a reload removed it (it lives while it
    /// drains). Weak, so that keep-alive connections do not pin old route tables.
    pub listener: Weak<ListenerRt>,
    /// The filter chain chosen for this connection ([`crate::snapshot::ChainRt::key`]).
    pub chain_key: u64,
    pub chain: Arc<crate::snapshot::ChainLife>,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// The listener is draining: HTTP/1 responses close the connection.
    pub draining: AtomicBool,
    /// This connection already warned of requests over the header limits.
    pub warned_limits: AtomicBool,
    /// Requests in progress, for the connection's idle timeout.
    pub activity: crate::listener::idle::ConnActivity,
    /// HTTP/1 requests the service has seen on this connection.
    pub h1_requests: AtomicU64,
    /// The first HTTP/1 request whose head hyper would let through flawed (the listener's
    /// head scanner sets it before hyper parses that head).
    pub head_flaw: std::sync::OnceLock<crate::listener::head_scan::Flagged>,
    /// The stream idle timer of its HTTP/1 requests.
    pub stream_watch: stream_timer::ConnWatch,
    /// The connection's TLS session, once its handshake is done (a chain with a
    /// `transport_socket`).
    pub tls: std::sync::OnceLock<Arc<crate::tls::Session>>,
}

impl ConnCtx {
    /// The connection manager now serving this connection's chain: its latest version while
    /// the chain is configured, its last one once a reload retired it.
    pub fn hcm(&self, snap: &Snapshot) -> Option<Arc<Hcm>> {
        if let Some(last) = self.chain.retired() {
            return last;
        }
        match snap.listener(&self.listener_name).and_then(|l| l.chain(self.chain_key)) {
            Some(c) => c.hcm().cloned(),
            None => self.listener.upgrade().and_then(|l| l.chain(self.chain_key).and_then(|c| c.hcm().cloned())),
        }
    }
}

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
    let unread_body = version != Version::HTTP_2 && !req.body().is_end_stream();
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
    let processed = process(&ctx, &snap.clusters, &hcm, &mut parts, body, &mut trace, &mut chain);
    let result = if timeouts.any() {
        tokio::select! {
            r = processed => r,
            reason = stream_timer::expired(timeouts, started_t, progress.as_deref(), (version != Version::HTTP_2).then_some(&ctx.stream_watch)) => {
                match reason {
                    LocalReason::RequestTimeout => stats.downstream_rq_timeout.inc(),
                    _ => stats.downstream_rq_idle_timeout.inc(),
                }
                Err(reason)
            }
        }
    } else {
        processed.await
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
        hcm.filters.encode(&chain, &mut resp);
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
    if version != Version::HTTP_2 && ctx.draining.load(Ordering::Relaxed) {
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
    let (rparts, body) = resp.into_parts();
    let timing = RqTiming {
        started,
        downstream: stats.downstream_rq_time.clone(),
        upstream: trace.upstream_sent.take(),
        _stream: stream,
    };
    let body = match log_start {
        None => LoggedBody::plain(body),
        Some((start, started)) => {
            let request = logged_request(&ctx, &hcm, parts, &mut trace);
            LoggedBody::logged(
                body,
                Box::new(PendingLog {
                    loggers: Arc::clone(&hcm.access_logs),
                    start,
                    started,
                    request,
                    version,
                    status: if client_gone { 0 } else { rparts.status.as_u16() },
                    response_headers: logged_response_headers(&hcm.log_response_headers, &rparts.headers),
                    trailers: None,
                    trace,
                    remote: ctx.remote,
                    local: ctx.local,
                    bytes_sent: 0,
                    tls: ctx.tls.get().cloned(),
                }),
            )
        }
    };
    Ok(Response::from_parts(rparts, body.timed(timing)))
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
fn logged_response_headers(names: &[http::HeaderName], sent: &http::HeaderMap) -> http::HeaderMap {
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
            ctx.tls.get().is_some(),
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
    if version == Version::HTTP_2 && empty {
        // Headers with END_STREAM: no content-length in Envoy's h2 codec.
        h.remove(CONTENT_LENGTH);
    } else if head && empty && version != Version::HTTP_2 {
        // Envoy answers HEAD with an empty local reply as if a chunked body would follow.
        h.remove(CONTENT_LENGTH);
        *resp.body_mut() = ResBody::EmptyUnsized;
    }
}

/// Methods Envoy's HTTP/1 codec knows; anything else is a 400 there.
fn known_method(m: &Method) -> bool {
    matches!(
        m.as_str(),
        "GET"
            | "HEAD"
            | "POST"
            | "PUT"
            | "DELETE"
            | "CONNECT"
            | "OPTIONS"
            | "TRACE"
            | "PATCH"
            | "COPY"
            | "LOCK"
            | "MKCOL"
            | "MOVE"
            | "PROPFIND"
            | "PROPPATCH"
            | "SEARCH"
            | "UNLOCK"
            | "BIND"
            | "REBIND"
            | "UNBIND"
            | "ACL"
            | "REPORT"
            | "MKACTIVITY"
            | "CHECKOUT"
            | "MERGE"
            | "M-SEARCH"
            | "NOTIFY"
            | "SUBSCRIBE"
            | "UNSUBSCRIBE"
            | "PURGE"
            | "MKCALENDAR"
            | "LINK"
            | "UNLINK"
            | "SOURCE"
    )
}

async fn process(
    ctx: &ConnCtx,
    clusters: &std::collections::HashMap<String, Arc<crate::upstream::Cluster>>,
    hcm: &Hcm,
    parts: &mut http::request::Parts,
    body: Incoming,
    trace: &mut StreamInfo,
    chain: &mut filters::Stream,
) -> Result<Response<ResBody>, LocalReason> {
    let cfg = &hcm.config;
    if parts.version != Version::HTTP_2 {
        let index = ctx.h1_requests.fetch_add(1, Ordering::Relaxed);
        if let Some(flagged) = ctx.head_flaw.get().filter(|f| f.request == index) {
            return Err(match flagged.flaw.rejection() {
                Some(r) => {
                    trace.raw_head = Some(RawHead::Unparsed);
                    LocalReason::Rejected(r)
                }
                None => {
                    trace.raw_head = flagged.target.clone().map(RawHead::Target);
                    LocalReason::PathRejected
                }
            });
        }
    }
    if parts.version == Version::HTTP_10 && !cfg.accept_http_10 {
        // Only when the head scanner stopped following the connection.
        trace.raw_head = Some(RawHead::Unparsed);
        return Err(LocalReason::Rejected(request_head::LOW_VERSION));
    }
    request_head::check(parts).map_err(LocalReason::Rejected)?;
    if parts.version != Version::HTTP_2 && !known_method(&parts.method) {
        return Err(LocalReason::BadRequest);
    }

    // The authority: `:authority` for h2; for HTTP/1 the request target's when it is in
    // absolute form (RFC 9112 3.2.2: `Host` is then ignored), else `Host`.
    let authority: HeaderValue = match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).map_err(|_| LocalReason::BadRequest)?,
        None => match parts.headers.get(HOST) {
            Some(h) => h.clone(),
            None => match (&cfg.default_host_for_http_10, parts.version) {
                (Some(d), Version::HTTP_10) => HeaderValue::from_str(d).map_err(|_| LocalReason::BadRequest)?,
                _ => return Err(LocalReason::BadRequest),
            },
        },
    };
    let authority_str = authority.to_str().map_err(|_| LocalReason::BadRequest)?.to_string();
    let mut full_path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    if cfg.normalize_path || cfg.merge_slashes {
        if let Some(normal) = normalize::normalize(&full_path, cfg.normalize_path, cfg.merge_slashes) {
            // Envoy rewrites `:path` itself: filters, routes, the upstream and the log see it.
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            uri.path_and_query = Some(normal.parse().map_err(|_| LocalReason::BadRequest)?);
            parts.uri = http::Uri::from_parts(uri).map_err(|_| LocalReason::BadRequest)?;
            full_path = normal;
        }
    }

    if let Some(up) = parts.headers.get(UPGRADE).filter(|_| headers::is_upgrade_request(&parts.headers)) {
        if !up.as_bytes().eq_ignore_ascii_case(b"h2c") {
            return Err(LocalReason::UpgradeForbidden);
        }
    }

    let table: &RouteTable = &hcm.routes;
    if !table.internal_only_headers.is_empty() && !headers::client_is_internal(&parts.headers, cfg, ctx.remote) {
        // Envoy cleans them before routing: an external client cannot match a route by them.
        for name in table.internal_only_headers.iter() {
            parts.headers.remove(name);
        }
    }
    let method_str = parts.method.as_str().to_string();
    let view = RequestView::new(&full_path, &method_str, &authority_str, "http", &parts.headers);
    let found = table.find(&view);
    // The weighted cluster is chosen with the route, before the filters run, as in Envoy.
    let picked = match &found {
        Ok((_, route)) => match &route.action {
            ActionRt::Forward(fwd) => Some(fwd.target.pick(&parts.headers, clusters)),
            _ => None,
        },
        Err(_) => None,
    };
    let mut body = RequestBody::Incoming(body);
    if !hcm.filters.is_empty() {
        let (route, weighted) = match (&found, picked) {
            (Ok((_, r)), Some((_, w))) => (Some(*r), w),
            (Ok((_, r)), None) => (Some(*r), None),
            (Err(_), _) => (None, None),
        };
        chain.slots = match weighted {
            Some(w) => w.filters.clone(),
            None => route.and_then(|r| r.filters.clone()),
        };
        chain.rx_bytes.clone_from(&trace.rx_bytes);
        chain.progress.clone_from(&trace.progress);
        let cluster = picked.and_then(|(c, _)| c).map(|c| c.name());
        let info =
            filters::RequestInfo { full_path: &full_path, method: &method_str, authority: &authority_str, cluster };
        hcm.filters.decode(&ctx.shared, parts, &mut body, info, chain).await?;
    }
    let (vh, route) = match found {
        Ok(found) => found,
        Err(NoRoute::NoVirtualHost | NoRoute::NoRouteMatch) => return Err(LocalReason::NoRoute),
    };
    trace.route_name.clone_from(&route.name);

    match &route.action {
        ActionRt::Direct { status, body } => {
            trace.local_reply = true;
            trace.details = Some("direct_response");
            let mut resp = reply(*status, body.clone().unwrap_or_default(), &hcm.server_name);
            if *status == StatusCode::CREATED {
                if let Ok(v) = HeaderValue::from_str(&format!("http://{authority_str}{full_path}")) {
                    resp.headers_mut().insert(LOCATION, v);
                }
            }
            header_ops(Side::Response, resp.headers_mut(), None, route, vh, table);
            Ok(resp)
        }
        ActionRt::Redirect(rd) => {
            let location = rewrite::redirect_location(rd, route, vh.matchers(), vh, &authority_str, &full_path);
            trace.local_reply = true;
            trace.details = Some("direct_response");
            let status = StatusCode::from_u16(rd.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            let mut resp = reply(status, Bytes::new(), &hcm.server_name);
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(LOCATION, v);
            }
            header_ops(Side::Response, resp.headers_mut(), None, route, vh, table);
            Ok(resp)
        }
        ActionRt::Forward(fwd) => {
            let (cluster, weighted) = picked.unwrap_or((None, None));
            let Some(cluster) = cluster.cloned() else {
                hcm.stats.no_cluster.inc();
                return Err(LocalReason::NoCluster(fwd.cluster_not_found_status));
            };
            let weighted_ops = weighted.map(|w| w.headers.clone());
            trace.cluster = Some(Arc::clone(&cluster));

            headers::strip_hop_by_hop(&mut parts.headers);
            headers::strip_expect_continue(&mut parts.headers);
            headers::mutate_forwarding(
                &mut parts.headers,
                cfg,
                ctx.remote,
                ctx.shared.local_ip,
                ctx.tls.get().is_some(),
            );
            trace.forwarding_headers_set = true;
            if let Some(t) = &fwd.timeout_header {
                parts.headers.insert(headers::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS.clone(), t.clone());
            }
            header_ops(Side::Request, &mut parts.headers, weighted_ops.as_ref(), route, vh, table);

            let path = match rewrite::rewrite_path(fwd, &full_path) {
                Some(new_path) => {
                    if let Ok(v) = HeaderValue::from_str(&full_path) {
                        parts.headers.insert(X_ENVOY_ORIGINAL_PATH.clone(), v);
                    }
                    new_path
                }
                None => full_path,
            };

            let chosen_authority = match &fwd.host_rewrite {
                HostRewrite::None => authority,
                HostRewrite::Literal(h) => {
                    parts.headers.insert(X_ENVOY_ORIGINAL_HOST.clone(), authority.clone());
                    HeaderValue::from_str(h).unwrap_or(authority)
                }
                // Resolved per host below.
                HostRewrite::Auto => authority,
            };
            forward_to(hcm, &cluster, fwd, vh, route, table, parts, body, path, chosen_authority, weighted_ops, trace)
                .await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward_to(
    hcm: &Hcm,
    cluster: &Arc<crate::upstream::Cluster>,
    fwd: &ForwardRt,
    vh: &VirtualHostRt,
    route: &RouteRt,
    table: &RouteTable,
    parts: &mut http::request::Parts,
    body: RequestBody,
    path: String,
    authority: HeaderValue,
    weighted_ops: Option<HeaderOpsRt>,
    trace: &mut StreamInfo,
) -> Result<Response<ResBody>, LocalReason> {
    let retries = fwd.retry_policy.as_ref().filter(|p| p.num_retries > 0);
    let route_timed = fwd.timeout.is_some() || fwd.retry_policy.as_ref().is_some_and(|p| p.per_try_timeout.is_some());
    let streamed = matches!(&body, RequestBody::Incoming(b) if !b.is_end_stream());
    if route_timed && trace.progress.is_none() && streamed {
        // The route's timeouts start when the body has arrived: they need to know when.
        trace.progress = Some(Arc::new(progress::Progress::new(tokio::time::Instant::now())));
    }
    let mut progress = trace.progress.clone();
    let body = match body {
        RequestBody::Buffered(bytes) => {
            progress = None;
            BodySource::Replayable((!bytes.is_empty()).then_some(bytes))
        }
        RequestBody::Incoming(body) if body.is_end_stream() => {
            progress = None;
            BodySource::Replayable(None)
        }
        RequestBody::Incoming(body) => {
            if retries.is_some() && body.size_hint().exact().is_some_and(|n| n <= hcm.buffer_limit) {
                let stream = ReqBody::Stream(body, trace.rx_bytes.clone(), progress.take());
                let bytes = stream
                    .collect()
                    .await
                    .map_err(|e| match body::client_body_failure(&*e) {
                        Some(body::ClientBodyFailure::Disconnected) => LocalReason::DownstreamDisconnect,
                        _ => LocalReason::CodecError { details: local_reply::BODY_CODEC_ERROR },
                    })?
                    .to_bytes();
                BodySource::Replayable(Some(bytes))
            } else if retries.is_some() {
                let stream = ReqBody::Stream(body, trace.rx_bytes.clone(), progress.clone());
                let abandoned = cluster.stats.retry_or_shadow_abandoned.clone();
                BodySource::Recorded(replay::Recording::new(stream, hcm.buffer_limit, abandoned))
            } else {
                BodySource::Stream(Some(ReqBody::Stream(body, trace.rx_bytes.clone(), progress.clone())))
            }
        }
    };
    let internal = parts.headers.get(&headers::X_ENVOY_INTERNAL).is_some_and(|v| v == "true");
    let prepared = AttemptTemplate {
        method: parts.method.clone(),
        path,
        authority,
        headers: std::mem::take(&mut parts.headers),
        set_attempt_count: vh.include_request_attempt_count,
        internal,
        auto_host_rewrite: matches!(fwd.host_rewrite, HostRewrite::Auto),
    };
    let outcome =
        forward::forward(cluster, &prepared, body, fwd.timeout, fwd.retry_policy.as_ref(), progress.as_deref()).await;
    if trace.logging {
        // A logger wants the request as forwarded; the attempts sent copies of it. Under
        // auto_host_rewrite Envoy logs the name of the last host it got a connection to.
        let AttemptTemplate { path, mut authority, headers, auto_host_rewrite, .. } = prepared;
        let host = match &outcome {
            Ok(out) => Some(&out.host),
            Err(f) => f.connected.as_ref(),
        };
        if let Some(name) = host.and_then(|h| h.hostname.as_deref()).filter(|_| auto_host_rewrite) {
            if let Ok(v) = HeaderValue::from_str(name) {
                authority = v;
            }
        }
        trace.forwarded = Some(ForwardedRequest { path, authority, headers });
    }
    match outcome {
        Ok(out) => {
            trace.upstream_host = Some(out.host.addr);
            trace.upstream_sent = Some((out.sent, cluster.stats.upstream_rq_time.clone()));
            trace.details = Some("via_upstream");
            trace.retry_stop = out.retry_stop;
            trace.response_flags = local_reply::with_retry_stop(out.retry_stop, "");
            trace.attempts = out.attempts;
            let (mut rparts, rbody) = out.response.into_parts();
            headers::strip_hop_by_hop(&mut rparts.headers);
            let ms = out.service_time.as_millis() as u64;
            rparts.headers.insert(X_ENVOY_UPSTREAM_SERVICE_TIME.clone(), HeaderValue::from(ms));
            set_server(&mut rparts.headers, hcm);
            if vh.include_attempt_count_in_response {
                rparts.headers.insert(headers::X_ENVOY_ATTEMPT_COUNT.clone(), HeaderValue::from(out.attempts));
            }
            header_ops(Side::Response, &mut rparts.headers, weighted_ops.as_ref(), route, vh, table);
            // The downstream connection may speak another HTTP version.
            rparts.version = Version::HTTP_11;
            if rbody.is_end_stream()
                && !rparts.headers.contains_key(CONTENT_LENGTH)
                && rparts.status != StatusCode::NOT_MODIFIED
                && rparts.status != StatusCode::NO_CONTENT
            {
                rparts.headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            }
            let timers = if rbody.is_end_stream() {
                None
            } else {
                let route = out.deadline.map(|d| (d, cluster.stats.upstream_rq_timeout.clone()));
                let idle = hcm.config.stream_idle_timeout.map(|i| (i, hcm.stats.downstream_rq_idle_timeout.clone()));
                body::BodyTimers::new(route, idle)
            };
            let body = match timers {
                Some(timers) => ResBody::UpstreamUntil { body: rbody, timers },
                None => ResBody::Upstream(rbody),
            };
            Ok(Response::from_parts(rparts, body))
        }
        Err(f) => {
            trace.details = f.details;
            trace.upstream_host = f.host.map(|h| h.addr);
            trace.retry_stop = f.retry_stop;
            trace.attempts = f.attempts;
            // Envoy counts its own answer for the cluster too (upstream_rq_503 for UH, _504 for
            // UT), but not the client's own broken request.
            if !matches!(f.reason, LocalReason::CodecError { .. } | LocalReason::DownstreamDisconnect) {
                cluster.stats.charge(f.reason.status_and_body().0.as_u16(), internal);
            }
            Err(f.reason)
        }
    }
}

fn set_server(h: &mut http::HeaderMap, hcm: &Hcm) {
    match hcm.config.server_header {
        ServerHeaderTransformation::Overwrite => {
            h.insert(SERVER, hcm.server_name.clone());
        }
        ServerHeaderTransformation::AppendIfAbsent => {
            if !h.contains_key(SERVER) {
                h.insert(SERVER, hcm.server_name.clone());
            }
        }
        ServerHeaderTransformation::PassThrough => {}
    }
}

/// Which side of a message header operations apply to.
#[derive(Clone, Copy)]
enum Side {
    Request,
    Response,
}

/// Weighted cluster, then route, then virtual host, then route configuration; each level
/// removes before it adds.
fn header_ops(
    side: Side,
    h: &mut http::HeaderMap,
    weighted: Option<&HeaderOpsRt>,
    route: &RouteRt,
    vh: &VirtualHostRt,
    table: &RouteTable,
) {
    for ops in weighted.into_iter().chain([&route.headers, &vh.headers, &table.headers]) {
        let (remove, add) = match side {
            Side::Request => (&ops.request_remove, &ops.request_add),
            Side::Response => (&ops.response_remove, &ops.response_add),
        };
        apply_removes(h, remove);
        apply_adds(h, add);
    }
}
