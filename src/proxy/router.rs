//! The router's work around [`super::forward::forward`]: the request body as the attempts need
//! it (replayable for retries and internal redirects, streamed otherwise), the request as the
//! access log sees it, the answer an internal redirect may follow, and the upstream's response
//! shaped for the downstream (hop-by-hop headers, `server`, `x-envoy-upstream-service-time`,
//! header operations, the body's route and idle timers).

use std::sync::Arc;

use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, SERVER, UPGRADE};
use http::{Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;

use super::access::{ForwardedRequest, StreamInfo};
use super::body::{self, ReqBody, ResBody};
use super::forward::{self, AttemptTemplate, BodySource};
use super::header_format::{self, FormatRequest, FormatResponse};
use super::headers::{self, X_ENVOY_UPSTREAM_SERVICE_TIME};
use super::local_reply::{self, LocalReason};
use super::mirror::{MirrorBody, Shadows};
use super::request_controls::Effective;
use super::stream_duration;
use super::upgrade::UpgradeRequest;
use crate::access_log::LogContext;
use crate::body::{progress, replay};
use crate::config::model::{HostRewrite, ServerHeaderTransformation};
use crate::filters::RequestBody;
use crate::routing::hash_policy::LbKey;
use crate::routing::header_ops::{apply_adds, apply_removes, HeaderOpsRt, Target};
use crate::routing::{ForwardRt, RouteRt, RouteTable, VirtualHostRt};
use crate::snapshot::Hcm;

#[allow(clippy::too_many_arguments)]
pub(super) async fn forward_to(
    hcm: &Hcm,
    cluster: &Arc<crate::upstream::Cluster>,
    (fwd, vh, route, table): (&ForwardRt, &VirtualHostRt, &RouteRt, &RouteTable),
    limits: &Effective<'_>,
    parts: &mut http::request::Parts,
    body: RequestBody,
    (path, authority): (String, HeaderValue),
    weighted_ops: Option<HeaderOpsRt>,
    lb_key: LbKey,
    shadows: Option<Shadows>,
    trace: &mut StreamInfo,
) -> Result<Response<ResBody>, LocalReason> {
    let policy = limits.policy.as_deref();
    let retries = policy.filter(|p| p.num_retries > 0);
    // An upgrade's request never ends before its answer: Envoy never redirects it.
    let redirects = fwd.internal_redirect.as_deref().filter(|_| trace.upgrade.is_none());
    // Kept as it streams for retries, mirrors and internal redirects alike.
    let recorded = retries.is_some() || shadows.is_some() || redirects.is_some();
    // The route's idle timeout, or the connection manager's.
    let idle = fwd.idle_timeout.unwrap_or(hcm.config.stream_idle_timeout);
    let route_timed = limits.timeout.is_some()
        || limits.stream_deadline.is_some()
        || fwd.idle_timeout.is_some_and(|i| i.is_some())
        || policy.is_some_and(|p| p.per_try_timeout.is_some() || p.per_try_idle_timeout.is_some());
    let streamed = match &body {
        RequestBody::Incoming(b) => !b.is_end_stream(),
        coded @ RequestBody::Coded(..) => !coded.is_buffered(),
        RequestBody::Read(b) => !b.is_end_stream(),
        RequestBody::Buffered(_) => false,
    };
    if route_timed && trace.progress.is_none() && streamed {
        // The route's timeouts start when the body has arrived: they need to know when.
        trace.progress = Some(Arc::new(progress::Progress::new(tokio::time::Instant::now())));
    }
    let mut progress = trace.progress.clone();
    let text_probe = body.grpc_web_probe();
    let body = match body {
        // Transformed by filters as it streams: a retry replays what was recorded of it.
        coded @ (RequestBody::Coded(..) | RequestBody::Read(_)) => {
            if !streamed {
                progress = None;
            }
            let stream = coded.into_stream(trace.rx_bytes.clone(), progress.clone());
            if recorded {
                let abandoned = cluster.stats.retry_or_shadow_abandoned.clone();
                BodySource::Recorded(replay::Recording::new(stream, hcm.buffer_limit, abandoned))
            } else {
                BodySource::Stream(Some(stream))
            }
        }
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
                let Some(collected) = stream_duration::within(limits.stream_deadline, stream.collect()).await else {
                    return Err(duration_reached(hcm, trace));
                };
                let bytes = collected
                    .map_err(|e| {
                        LocalReason::from_client_body(
                            body::client_body_failure(&*e).unwrap_or(body::ClientBodyFailure::Malformed),
                        )
                    })?
                    .to_bytes();
                BodySource::Replayable(Some(bytes))
            } else if recorded {
                let stream = ReqBody::Stream(body, trace.rx_bytes.clone(), progress.clone());
                let abandoned = cluster.stats.retry_or_shadow_abandoned.clone();
                BodySource::Recorded(replay::Recording::new(stream, hcm.buffer_limit, abandoned))
            } else {
                BodySource::Stream(Some(ReqBody::Stream(body, trace.rx_bytes.clone(), progress.clone())))
            }
        }
    };
    let internal = parts.headers.get(&headers::X_ENVOY_INTERNAL).is_some_and(|v| v == "true");
    let target = parts.uri.path_and_query().filter(|t| parts.uri.scheme().is_none() && t.as_str() == path).cloned();
    let mut prepared = AttemptTemplate {
        method: parts.method.clone(),
        path,
        target,
        authority,
        headers: std::mem::take(&mut parts.headers),
        set_attempt_count: vh.include_request_attempt_count,
        internal,
        auto_host_rewrite: matches!(fwd.host_rewrite, HostRewrite::Auto),
        append_xfh: fwd.append_xfh,
        lb_hash: lb_key.hash,
        headers_read_after: shadows.is_some() || redirects.is_some() || trace.logging || trace.format.is_some(),
    };
    // A body already whole goes to the mirrors now; a streamed one once it has been sent.
    let shadows = match (shadows, &body) {
        (Some(s), BodySource::Replayable(bytes)) => {
            s.spawn(&prepared, MirrorBody::Whole(bytes.clone()), limits.timeout);
            None
        }
        (Some(s), BodySource::Recorded(r)) => Some((s, r.handle())),
        _ => None,
    };
    // What an internal redirect would send again: the body whole, when it has ended.
    let kept = match (redirects, &body) {
        (None, _) => None,
        (Some(_), BodySource::Replayable(bytes)) => Some(Ok(bytes.clone().unwrap_or_default())),
        (Some(_), BodySource::Recorded(r)) => Some(Err(r.handle())),
        (Some(_), BodySource::Stream(_)) => None,
    };
    let deferred = redirects.map_or(&[][..], |p| &p.codes[..]);
    // Pinned where it is made, as in `stream::handle`: the combinators below then move a
    // pointer, not the kilobytes of the forwarding's state.
    let outcome = {
        let forwarding = std::pin::pin!(forward::forward(
            cluster,
            &mut prepared,
            body,
            limits.timeout,
            policy,
            progress.as_deref(),
            deferred
        ));
        let route_idle = fwd.idle_timeout.flatten();
        let forwarding = stream_duration::idle_within(route_idle, trace.progress.as_deref(), forwarding);
        stream_duration::within(limits.stream_deadline, forwarding).await
    };
    let outcome = match outcome {
        Some(Some(outcome)) => outcome,
        Some(None) => {
            hcm.stats.downstream_rq_idle_timeout.inc();
            let request_complete = trace.progress.as_ref().is_none_or(|p| p.ended().is_some());
            Err(forward::Failure::local(LocalReason::StreamIdleTimeout { request_complete }))
        }
        None => Err(forward::Failure::local(duration_reached(hcm, trace))),
    };
    if let Some((s, recording)) = shadows {
        if let Some((data, trailers)) = recording.whole() {
            s.spawn(&prepared, MirrorBody::Streamed(data, trailers), limits.timeout);
        }
    }
    // Under auto_host_rewrite Envoy logs the name of the last host it got a connection to.
    let logged_host = match &outcome {
        _ if !trace.logging || !prepared.auto_host_rewrite => None,
        Ok(out) => out.host.hostname.clone(),
        Err(f) => f.connected.as_ref().and_then(|h| h.hostname.clone()),
    };
    let result = match outcome {
        Ok(out) => {
            trace.upstream_host = Some(out.host.addr);
            trace.upstream_sent = Some((out.sent, cluster.stats.upstream_rq_time.clone()));
            trace.details = Some("via_upstream");
            trace.retry_stop = out.retry_stop;
            trace.response_flags = local_reply::with_retry_stop(out.retry_stop, "");
            trace.attempts = out.attempts;
            let (mut rparts, rbody) = out.response.into_parts();
            let upgrade_kept = match trace.upgrade.as_mut() {
                Some(up) if rparts.status == StatusCode::SWITCHING_PROTOCOLS => {
                    up.upstream = rparts.extensions.remove::<hyper::upgrade::OnUpgrade>();
                    rparts.headers.get(UPGRADE).cloned().zip(rparts.headers.get(CONNECTION).cloned())
                }
                _ => None,
            };
            headers::strip_hop_by_hop(&mut rparts.headers);
            if let Some((upgrade, connection)) = upgrade_kept {
                UpgradeRequest::restore(&mut rparts.headers, upgrade, connection);
            }
            // Envoy sets it only once the request has ended, which an upgrade request never
            // does before its answer.
            if trace.upgrade.is_none() {
                let ms = out.service_time.as_millis() as u64;
                rparts.headers.insert(X_ENVOY_UPSTREAM_SERVICE_TIME.clone(), HeaderValue::from(ms));
            }
            set_server(&mut rparts.headers, hcm);
            if vh.include_attempt_count_in_response {
                rparts.headers.insert(headers::X_ENVOY_ATTEMPT_COUNT.clone(), HeaderValue::from(out.attempts));
            }
            let env = trace
                .format
                .as_deref()
                .filter(|_| header_format::formatted(Side::Response, weighted_ops.as_ref(), route, vh, table));
            let ctx = env.map(|env| {
                let req = FormatRequest {
                    headers: &prepared.headers,
                    method: prepared.method.as_str(),
                    path: &prepared.path,
                    authority: prepared.authority.to_str().unwrap_or_default(),
                };
                let resp = FormatResponse {
                    code: Some(rparts.status.as_u16()),
                    flags: trace.response_flags,
                    upstream_host: Some(out.host.addr),
                    cluster: Some(cluster.name()),
                };
                env.context(req, resp)
            });
            header_ops(Side::Response, &mut rparts.headers, weighted_ops.as_ref(), route, vh, table, ctx.as_ref());
            if let Some(cookie) = lb_key.set_cookie {
                rparts.headers.append(http::header::SET_COOKIE, cookie);
            }
            // Envoy's HTTP/1 codec drops an upstream's trailers unless the cluster's
            // `http_protocol_options.enable_trailers` (an `auto_config` connection may be h2).
            let drop_trailers = rparts.version != Version::HTTP_2 && !cluster.config.h1_trailers;
            // The downstream connection may speak another HTTP version.
            rparts.version = Version::HTTP_11;
            if rbody.is_end_stream()
                && !rparts.status.is_informational()
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
                let idle = idle.map(|i| (i, hcm.stats.downstream_rq_idle_timeout.clone()));
                let duration =
                    limits.stream_deadline.map(|d| (d, hcm.stats.downstream_rq_max_duration_reached.clone()));
                let try_idle = policy
                    .and_then(|p| p.per_try_idle_timeout)
                    .map(|i| (i, cluster.stats.upstream_rq_per_try_idle_timeout.clone()));
                body::BodyTimers::new(route, idle, (duration, try_idle))
            };
            let body = match timers {
                Some(timers) => ResBody::UpstreamUntil { body: rbody, timers, drop_trailers },
                None => ResBody::Upstream(rbody, drop_trailers),
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
            // The gRPC-Web filter's answer to a body it could not decode, whatever the upstream
            // request's end looked like (hyper's h2 client resets the stream).
            let bad_text = text_probe.as_ref().and_then(|p| p.failure());
            let reason = match (f.reason, bad_text) {
                (_, Some(bad)) => {
                    trace.details = None;
                    LocalReason::GrpcWebBadText(bad)
                }
                (LocalReason::UpstreamTimeout, None) if limits.alt_response => LocalReason::UpstreamTimeoutNoContent,
                (r, None) => r,
            };
            // The connection manager's own timeouts are not the cluster's answers.
            let stream_timer =
                matches!(reason, LocalReason::MaxDuration { .. } | LocalReason::StreamIdleTimeout { .. });
            if !reason.client_at_fault() && !stream_timer {
                cluster.stats.charge(reason.status_and_body().0.as_u16(), internal);
            }
            Err(reason)
        }
    };
    if let (Some(p), Ok(resp)) = (redirects, &result) {
        if p.codes.contains(&resp.status().as_u16()) {
            let body = kept.and_then(|k| match k {
                Ok(bytes) => Some(bytes),
                Err(recording) => recording.whole().map(|(data, _)| data),
            });
            trace.redirect = Some(Box::new(super::internal_redirect::Candidate {
                policy: Box::new(p.clone()),
                route_name: route.name.clone().unwrap_or_default(),
                cluster: Arc::clone(cluster),
                method: prepared.method.clone(),
                path: prepared.path.clone(),
                authority: prepared.authority.clone(),
                headers: prepared.headers.clone(),
                body,
                internal,
            }));
        }
    }
    if trace.logging {
        // A logger wants the request as forwarded; the attempts sent copies of it.
        let AttemptTemplate { path, mut authority, headers, .. } = prepared;
        if let Some(v) = logged_host.and_then(|name| HeaderValue::from_str(&name).ok()) {
            authority = v;
        }
        trace.forwarded = Some(ForwardedRequest { path, authority, headers });
    }
    result
}

/// The route's `max_stream_duration` ended the stream before its response: Envoy's 408 while
/// the request was still arriving, 504 after.
fn duration_reached(hcm: &Hcm, trace: &StreamInfo) -> LocalReason {
    hcm.stats.downstream_rq_max_duration_reached.inc();
    let request_complete = trace.progress.as_ref().is_none_or(|p| p.ended().is_some());
    LocalReason::MaxDuration { request_complete }
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
pub(super) enum Side {
    Request,
    Response,
}

/// Weighted cluster, then route, then virtual host, then route configuration; each level
/// removes before it adds. `ctx` is what formatted values read (see [`super::header_format`]).
pub(super) fn header_ops(
    side: Side,
    h: &mut http::HeaderMap,
    weighted: Option<&HeaderOpsRt>,
    route: &RouteRt,
    vh: &VirtualHostRt,
    table: &RouteTable,
    ctx: Option<&LogContext<'_>>,
) {
    for ops in weighted.into_iter().chain([&route.headers, &vh.headers, &table.headers]) {
        let (remove, add, target) = match side {
            Side::Request => (&ops.request_remove, &ops.request_add, Target::Request),
            Side::Response => (&ops.response_remove, &ops.response_add, Target::Response),
        };
        apply_removes(h, remove);
        apply_adds(h, add, ctx, target);
    }
}
