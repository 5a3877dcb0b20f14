//! The connection manager's part of a request before the router: the request head's checks
//! (codec rejections, methods, authority, path normalization, upgrades), internal-only headers,
//! the route lookup, the decoding filters, and the route's action (a direct response, a
//! redirect, or forwarding through [`super::router`]); again for each internal redirect
//! followed ([`super::internal_redirect`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{HeaderValue, HOST, LOCATION};
use http::{Method, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::access::{RawHead, StreamInfo};
use super::body::ResBody;
use super::header_format::{self, FormatEnv, FormatRequest, FormatResponse};
use super::headers::{self, X_ENVOY_ORIGINAL_HOST, X_ENVOY_ORIGINAL_PATH};
use super::internal_redirect::{self, Followed};
use super::local_reply::{self, reply, LocalReason};
use super::mirror::Shadows;
use super::router::{forward_to, header_ops, Side};
use super::upgrade::{self, UpgradeRequest};
use super::{normalize, request_head, rewrite, stream_duration, ConnCtx};
use crate::filters::{self, RequestBody};
use crate::routing::hash_policy::{HashInput, LbKey};
use crate::routing::matcher::RequestView;
use crate::routing::{ActionRt, NoRoute, RouteTable};
use crate::snapshot::Hcm;

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

/// A direct response's body under its `body_format`: rendered on the request as the filters
/// left it, before any response exists (`%RESPONSE_CODE%` is 0, as in Envoy), with the
/// configured body as `%LOCAL_REPLY_BODY%`.
fn format_body(
    line: &crate::access_log::LineFormat,
    body: &Bytes,
    parts: &http::request::Parts,
    ctx: &ConnCtx,
    route: &crate::routing::RouteRt,
    (authority, path, method): (&str, &str, &str),
) -> Bytes {
    let env = FormatEnv {
        start: SystemTime::now(),
        version: parts.version,
        remote: ctx.remote,
        local: ctx.local,
        tls: ctx.tls.get().cloned(),
        route_name: route.name.clone(),
    };
    let text = String::from_utf8_lossy(body);
    let req = FormatRequest { headers: &parts.headers, method, path, authority };
    let mut log = env.context(req, FormatResponse::default());
    log.local_reply_body = Some(text.as_ref());
    let mut out = String::new();
    line.render(&log, &mut out);
    Bytes::from(out)
}

/// What routing sees of the connection: the client's certificate, and for `require_tls` the
/// `x-forwarded-proto` and `x-envoy-internal` the connection manager sets before routing
/// (legate sets them on the forwarded request only, in `headers::mutate_forwarding`).
fn routing_downstream(
    ctx: &ConnCtx,
    cfg: &crate::config::model::HttpConnectionManager,
    h: &http::HeaderMap,
    require_tls: bool,
) -> crate::routing::matcher::Downstream {
    let tls = ctx.tls.get();
    // legate's verifier refuses a certificate it cannot validate: one presented was validated.
    let presented = tls.is_some_and(|t| t.peer.is_some());
    let mut d = crate::routing::matcher::Downstream {
        cert_presented: presented,
        cert_validated: presented,
        ..Default::default()
    };
    if require_tls {
        d.https = match h.get(&headers::X_FORWARDED_PROTO) {
            Some(v) if !cfg.use_remote_address => v.as_bytes() == b"https",
            _ => tls.is_some(),
        };
        d.internal = headers::client_is_internal(h, cfg, ctx.remote)
            && (cfg.use_remote_address || h.get(&headers::X_ENVOY_INTERNAL).is_some_and(|v| v.as_bytes() == b"true"));
    }
    d
}

pub(super) async fn process(
    ctx: &ConnCtx,
    clusters: &std::collections::HashMap<String, Arc<crate::upstream::Cluster>>,
    hcm: &Hcm,
    parts: &mut http::request::Parts,
    body: Incoming,
    (trace, route_idle): (&mut StreamInfo, &std::sync::atomic::AtomicBool),
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
    if parts.version == Version::HTTP_2 && cfg.http2.allow_connect {
        trace.upgrade = UpgradeRequest::from_h2_connect(parts);
    }
    request_head::check(parts).map_err(LocalReason::Rejected)?;
    if parts.version != Version::HTTP_2 && !known_method(&parts.method) {
        return Err(LocalReason::BadRequest);
    }

    // The authority: `:authority` for h2; for HTTP/1 the request target's when it is in
    // absolute form (RFC 9112 3.2.2: `Host` is then ignored), else `Host`.
    let mut authority: HeaderValue = match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).map_err(|_| LocalReason::BadRequest)?,
        None => match parts.headers.get(HOST) {
            Some(h) => h.clone(),
            None => match (&cfg.default_host_for_http_10, parts.version) {
                (Some(d), Version::HTTP_10) => HeaderValue::from_str(d).map_err(|_| LocalReason::BadRequest)?,
                _ => return Err(LocalReason::BadRequest),
            },
        },
    };
    let mut authority_str = authority.to_str().map_err(|_| LocalReason::BadRequest)?.to_string();
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

    // HTTP/1.1 only: hyper's h2 codec refuses the connection-specific headers an upgrade needs.
    if parts.version != Version::HTTP_2 {
        trace.upgrade = UpgradeRequest::of(&parts.headers);
    }

    let mut body = RequestBody::Incoming(body);
    let mut followed: Option<Box<Followed>> = None;
    loop {
        let here = (&authority, authority_str.as_str(), full_path);
        let result =
            pass(ctx, clusters, hcm, parts, body, (&mut *trace, route_idle), &mut *chain, here, followed.is_some())
                .await;
        // Set only for a route with an internal redirect policy and an answer of its codes.
        let Some(candidate) = trace.redirect.take() else { return result };
        let Ok(resp) = result else { return result };
        let state = followed.get_or_insert_with(|| {
            let https = match parts.uri.scheme_str() {
                Some(s) => s != "http",
                None => ctx.tls.get().is_some(),
            };
            Box::new(Followed::new(https))
        });
        let table = &hcm.routes;
        let https = state.https;
        let lookup = |path: &str, method: &str, authority: &str, h: &http::HeaderMap| {
            let scheme = if https { "https" } else { "http" };
            let mut view = RequestView::new(path, method, authority, scheme, h);
            view.downstream = routing_downstream(ctx, cfg, h, table.require_tls);
            view.runtime = Some((&ctx.shared.runtime, rand::random()));
            table.find(&view).ok().map(|(_, r)| {
                let cluster = match &r.action {
                    ActionRt::Forward(fwd) => match &fwd.target {
                        crate::routing::Target::Cluster(c) => c.cluster.clone(),
                        _ => None,
                    },
                    _ => None,
                };
                (r.name.clone(), cluster)
            })
        };
        let Some(next) = internal_redirect::follow(*candidate, &resp, state, lookup) else { return Ok(resp) };
        if trace.logging {
            internal_redirect::log_followed(hcm, ctx, parts.version, &resp, &next, trace);
        }
        drop(resp);
        // Envoy sends the new request on a new stream of the same connection manager.
        hcm.stats.downstream_rq_total.inc();
        hcm.stats.rq_total.inc();
        if parts.version == Version::HTTP_2 {
            hcm.stats.downstream_rq_http2_total.inc();
        } else {
            hcm.stats.downstream_rq_http1_total.inc();
        }
        parts.method = next.method;
        parts.uri = next.uri;
        parts.headers = next.headers;
        authority_str = next.authority.to_str().map_err(|_| LocalReason::BadRequest)?.to_string();
        authority = next.authority;
        full_path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        body = RequestBody::Buffered(next.body);
        // The new stream's filters: a new chain.
        *chain = filters::Stream::default();
    }
}

/// One pass of a request through routing, the decoding filters and the route's action: the
/// request as the client sent it, then each internal redirect's (`redirected`), which Envoy
/// handles as a new stream whose headers the connection manager does not set again.
#[allow(clippy::too_many_arguments)]
async fn pass(
    ctx: &ConnCtx,
    clusters: &std::collections::HashMap<String, Arc<crate::upstream::Cluster>>,
    hcm: &Hcm,
    parts: &mut http::request::Parts,
    mut body: RequestBody,
    (trace, route_idle): (&mut StreamInfo, &std::sync::atomic::AtomicBool),
    chain: &mut filters::Stream,
    (authority, authority_str, mut full_path): (&HeaderValue, &str, String),
    redirected: bool,
) -> Result<Response<ResBody>, LocalReason> {
    let cfg = &hcm.config;
    let authority = authority.clone();
    let table: &RouteTable = &hcm.routes;
    if !redirected
        && !table.internal_only_headers.is_empty()
        && !headers::client_is_internal(&parts.headers, cfg, ctx.remote)
    {
        // Envoy cleans them before routing: an external client cannot match a route by them.
        for name in table.internal_only_headers.iter() {
            parts.headers.remove(name);
        }
    }
    // The method as the client sent it (a copy, not an allocation, for the standard ones):
    // the filters may change the request's.
    let method = parts.method.clone();
    let method_str = method.as_str();
    let scheme = if redirected && parts.uri.scheme_str() == Some("https") { "https" } else { "http" };
    let mut view = RequestView::new(&full_path, method_str, authority_str, scheme, &parts.headers);
    view.downstream = routing_downstream(ctx, cfg, &parts.headers, table.require_tls);
    // Envoy's stream id: one random value a route's `runtime_fraction` is drawn with.
    view.runtime = Some((&ctx.shared.runtime, rand::random()));
    let found = table.find(&view);
    if let Some(up) = &trace.upgrade {
        // Decided with the route, before the filters, as Envoy builds the upgrade's chain.
        let route_upgrades = match &found {
            Ok((_, r)) => match &r.action {
                ActionRt::Forward(fwd) => Some(&*fwd.upgrades),
                _ => None,
            },
            Err(_) => None,
        };
        if !upgrade::allowed(&up.upgrade, route_upgrades, &cfg.upgrades) {
            hcm.stats.downstream_rq_ws_on_non_ws_route.inc();
            trace.details = Some("upgrade_failed");
            return Err(LocalReason::UpgradeForbidden);
        }
        hcm.stats.downstream_cx_upgrades_total.inc();
    }
    // The weighted cluster is chosen with the route, before the filters run, as in Envoy.
    let picked = match &found {
        Ok((_, route)) => match &route.action {
            ActionRt::Forward(fwd) => Some(fwd.target.pick(&parts.headers, clusters, || {
                // `use_hash_policy`: the route's hash, on the request as routing sees it.
                let policy = fwd.hash_policy.as_ref()?;
                // Before the filters: no filter state yet, as in Envoy.
                let req = RequestLine { path: &full_path, authority: authority_str, method: method_str };
                policy.key(&hash_input(parts, req, cfg, ctx, None)).hash
            })),
            _ => None,
        },
        Err(_) => None,
    };
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
        let rate_limits = match &found {
            Ok((_, r)) => match &r.action {
                ActionRt::Forward(fwd) => fwd.rate_limits.as_deref(),
                _ => None,
            },
            Err(_) => None,
        };
        let info = filters::RequestInfo {
            full_path: &full_path,
            method: method_str,
            authority: authority_str,
            cluster,
            remote: headers::trusted_remote(&parts.headers, cfg, ctx.remote),
            direct_remote: ctx.remote,
            local: ctx.local,
            tls: ctx.tls.get().map(|t| &**t),
            rate_limits,
            conn_buckets: &ctx.rate_limit_buckets,
            clusters,
            route_name: route.and_then(|r| r.name.as_deref()),
        };
        // Boxed: the filters' awaits (ext_authz, a buffered body...) are kilobytes of state
        // a request without filters should not carry in its future.
        Box::pin(hcm.filters.decode(&ctx.shared, parts, &mut body, info, chain)).await?;
        if chain.grpc.path_changed {
            // The gRPC bridge's `ignore_query_parameters`: the upstream gets the new path.
            full_path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        }
    }
    let (vh, route) = match found {
        Ok(found) => found,
        Err(NoRoute::NoVirtualHost | NoRoute::NoRouteMatch) => return Err(LocalReason::NoRoute),
    };
    if trace.logging {
        // Only a log line reads it: no copy of the name per request without a logger.
        trace.route_name.clone_from(&route.name);
    }
    let weighted_ops = picked.and_then(|(_, w)| w).map(|w| &w.headers);
    if header_format::formatted(Side::Request, weighted_ops, route, vh, table)
        || header_format::formatted(Side::Response, weighted_ops, route, vh, table)
    {
        trace.format = Some(Box::new(FormatEnv {
            start: SystemTime::now(),
            version: parts.version,
            remote: ctx.remote,
            local: ctx.local,
            tls: ctx.tls.get().cloned(),
            route_name: route.name.clone(),
        }));
    }

    match &route.action {
        ActionRt::Direct { status, body, format } => {
            trace.local_reply = true;
            trace.details = Some("direct_response");
            let mut body = body.clone().unwrap_or_default();
            if let Some((line, _)) = format.as_deref() {
                body = format_body(line, &body, parts, ctx, route, (authority_str, &full_path, method_str));
            }
            let mut resp = if local_reply::is_grpc_request(&parts.headers) {
                let head = parts.method == Method::HEAD;
                local_reply::grpc_direct_reply(*status, &body, None, &hcm.server_name, head)
            } else {
                let mut resp = reply(*status, body, &hcm.server_name);
                if let Some((_, content_type)) = format.as_deref() {
                    resp.headers_mut().insert(http::header::CONTENT_TYPE, content_type.clone());
                }
                resp
            };
            if *status == StatusCode::CREATED {
                if let Ok(v) = HeaderValue::from_str(&format!("http://{authority_str}{full_path}")) {
                    resp.headers_mut().insert(LOCATION, v);
                }
            }
            response_ops(resp.headers_mut(), parts, trace, route, vh, table, (authority_str, &full_path));
            Ok(resp)
        }
        ActionRt::Redirect(rd) => {
            let location = rewrite::redirect_location(rd, route, vh.matchers(), vh, authority_str, &full_path);
            trace.local_reply = true;
            trace.details = Some("direct_response");
            let status = StatusCode::from_u16(rd.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            let location = HeaderValue::from_str(&location).ok();
            let mut resp = if local_reply::is_grpc_request(&parts.headers) {
                let head = parts.method == Method::HEAD;
                local_reply::grpc_direct_reply(status, b"", location, &hcm.server_name, head)
            } else {
                let mut resp = reply(status, Bytes::new(), &hcm.server_name);
                if let Some(v) = location {
                    resp.headers_mut().insert(LOCATION, v);
                }
                resp
            };
            if !vh.is_tls_redirect(route) {
                response_ops(resp.headers_mut(), parts, trace, route, vh, table, (authority_str, &full_path));
            }
            Ok(resp)
        }
        ActionRt::Forward(fwd) => {
            let (cluster, weighted) = picked.unwrap_or((None, None));
            let Some(cluster) = cluster.cloned() else {
                hcm.stats.no_cluster.inc();
                return Err(LocalReason::NoCluster(fwd.cluster_not_found_status));
            };
            let weighted_ops = weighted.map(|w| w.headers.clone());
            let local_ip = ctx.shared.local_ip;
            let runtime = &ctx.shared.runtime;
            trace.cluster = Some(Arc::clone(&cluster));

            headers::strip_hop_by_hop(&mut parts.headers);
            if let Some(up) = &trace.upgrade {
                UpgradeRequest::restore(&mut parts.headers, up.upgrade.clone(), up.connection.clone());
            }
            headers::strip_expect_continue(&mut parts.headers);
            // A redirect's request carries what the first pass set.
            if !redirected {
                headers::mutate_forwarding(
                    &mut parts.headers,
                    cfg,
                    ctx.remote,
                    ctx.shared.local_ip,
                    ctx.tls.get().map(|t| &**t),
                );
                trace.forwarding_headers_set = true;
                if cfg.add_user_agent {
                    headers::add_user_agent(&mut parts.headers, &ctx.shared.local_node);
                }
            }
            // Envoy computes the key as it chooses the host: on the headers as the connection
            // manager and the filters left them, before the route's header operations.
            let lb_key = match &fwd.hash_policy {
                Some(policy) if cluster.config.lb_policy.is_hashing() => {
                    let req = RequestLine { path: &full_path, authority: authority_str, method: method_str };
                    policy.key(&hash_input(parts, req, cfg, ctx, chain.filter_state.as_deref()))
                }
                _ => LbKey::default(),
            };
            let limits = stream_duration::route_limits(fwd, &mut parts.headers, trace.started);
            if fwd.idle_timeout.is_some() {
                // The router keeps the route's idle timeout from here on.
                route_idle.store(true, Ordering::Relaxed);
            }
            let env = trace
                .format
                .as_deref()
                .filter(|_| header_format::formatted(Side::Request, weighted_ops.as_ref(), route, vh, table));
            let ctx = env.map(|env| {
                let req = FormatRequest {
                    headers: empty_headers(),
                    method: method_str,
                    path: &full_path,
                    authority: authority_str,
                };
                env.context(req, FormatResponse { cluster: Some(cluster.name()), ..FormatResponse::default() })
            });
            header_ops(Side::Request, &mut parts.headers, weighted_ops.as_ref(), route, vh, table, ctx.as_ref());

            let chosen_authority = match rewrite::rewritten_host(fwd, &parts.headers, &full_path) {
                Some(host) => {
                    if fwd.append_xfh {
                        headers::append_forwarded_host(&mut parts.headers, &authority);
                    }
                    parts.headers.insert(X_ENVOY_ORIGINAL_HOST.clone(), authority);
                    host
                }
                // `auto_host_rewrite` is resolved per upstream host.
                None => authority,
            };
            let path = match rewrite::rewrite_path(fwd, &full_path) {
                Some(new_path) => {
                    if let Ok(v) = HeaderValue::from_str(&full_path) {
                        parts.headers.insert(X_ENVOY_ORIGINAL_PATH.clone(), v);
                    }
                    new_path
                }
                None => full_path,
            };

            // The chosen weighted cluster's `host_rewrite_literal`: the host only (Envoy
            // sets neither `x-envoy-original-host` nor `x-forwarded-host` for it).
            let chosen_authority = match weighted.and_then(|w| w.host_rewrite.as_ref()) {
                Some(h) => h.clone(),
                None => chosen_authority,
            };
            let shadows = if fwd.mirrors.is_empty() {
                None
            } else {
                Shadows::choose(&fwd.mirrors, &parts.headers, clusters, local_ip, runtime)
            };
            let at = (path, chosen_authority);
            let levels = (&**fwd, vh, route, table);
            forward_to(hcm, &cluster, levels, &limits, parts, body, at, weighted_ops, lb_key, shadows, trace).await
        }
    }
}

/// Stands for the request headers in a request-side context until a level puts the map it
/// changes there.
/// The request's own `:path` (with its query), `:authority` and `:method`.
#[derive(Clone, Copy)]
struct RequestLine<'a> {
    path: &'a str,
    authority: &'a str,
    method: &'a str,
}

/// What the route's hash policy reads of the request, the connection and the filter state.
fn hash_input<'a>(
    parts: &'a http::request::Parts,
    req: RequestLine<'a>,
    cfg: &crate::config::model::HttpConnectionManager,
    ctx: &ConnCtx,
    filter_state: Option<&'a filters::FilterState>,
) -> HashInput<'a> {
    HashInput {
        headers: &parts.headers,
        path: req.path,
        authority: req.authority,
        method: req.method,
        remote: headers::trusted_remote(&parts.headers, cfg, ctx.remote),
        peer: ctx.remote,
        local: ctx.local,
        filter_state,
    }
}

fn empty_headers() -> &'static http::HeaderMap {
    static EMPTY: std::sync::OnceLock<http::HeaderMap> = std::sync::OnceLock::new();
    EMPTY.get_or_init(http::HeaderMap::new)
}

/// The route's response header operations on a direct response or redirect. Envoy formats
/// them before it knows its own answer: `%RESPONSE_CODE%` is 0, no cluster, the request's
/// headers as received.
fn response_ops(
    headers: &mut http::HeaderMap,
    parts: &http::request::Parts,
    trace: &StreamInfo,
    route: &crate::routing::RouteRt,
    vh: &crate::routing::VirtualHostRt,
    table: &RouteTable,
    (authority, path): (&str, &str),
) {
    let env = trace.format.as_deref().filter(|_| header_format::formatted(Side::Response, None, route, vh, table));
    let ctx = env.map(|env| {
        let req = FormatRequest { headers: &parts.headers, method: parts.method.as_str(), path, authority };
        env.context(req, FormatResponse::default())
    });
    header_ops(Side::Response, headers, None, route, vh, table, ctx.as_ref());
}

#[cfg(test)]
#[path = "future_sizes.rs"]
mod future_sizes;
