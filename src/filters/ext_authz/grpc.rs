//! The gRPC authorization service: one `envoy.service.auth.v3.Authorization/Check` call on
//! the cluster's (HTTP/2) connections, as Envoy's gRPC client makes it (`grpc-timeout` from
//! the timeout, `x-envoy-internal`, this machine's address in `x-forwarded-for`). The
//! `CheckRequest` carries the client's addresses, every request header (values of one name
//! joined with commas, the pseudo-headers included), the body read, and the route's
//! `context_extensions`.
//!
//! `OK` allows; another status in the answer denies (with its `denied_response`, else a bare
//! 403); a call that fails (no 200, a `grpc-status` other than 0, no message) is an error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, TE};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use prost::Message;

use super::decision::{protected, Action, Allowed, Decision, Denied, ResponseOp};
use super::http::{MAX_ANSWER, PARTIAL_BODY};
use super::proto;
use super::CheckRequest;
use crate::config::ext_authz::{BufferSettings, GrpcService};
use crate::proxy::forward::{self, AttemptTemplate, BodySource};
use crate::proxy::headers::{X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, X_ENVOY_INTERNAL};
use crate::upstream::Cluster;

const PATH: &str = "/envoy.service.auth.v3.Authorization/Check";
static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");

pub async fn check(
    s: &GrpcService,
    cluster: &Arc<Cluster>,
    req: &CheckRequest<'_>,
    buffering: Option<BufferSettings>,
) -> Decision {
    let message = check_request(req, buffering.is_some_and(|b| b.pack_as_bytes)).encode_to_vec();
    let mut frame = Vec::with_capacity(message.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let mut template = template(s, req.local_ip);
    let body = BodySource::Replayable(Some(Bytes::from(frame)));
    let sent = std::time::Instant::now();
    let out = match forward::forward(cluster, &mut template, body, Some(s.timeout), None, None, &[]).await {
        Ok(out) => out,
        Err(f) => {
            cluster.stats.charge(f.reason.status_and_body().0.as_u16(), true);
            return Decision::Error;
        }
    };
    let (parts, body) = out.response.into_parts();
    if parts.status != StatusCode::OK {
        return Decision::Error;
    }
    let Ok(collected) = http_body_util::Limited::new(body, MAX_ANSWER).collect().await else {
        return Decision::Error;
    };
    cluster.stats.upstream_rq_time.record_duration(sent.elapsed());
    // A trailers-only answer carries its status in the headers.
    let status = collected.trailers().and_then(grpc_status).or_else(|| grpc_status(&parts.headers));
    if status != Some(0) {
        return Decision::Error;
    }
    match decode_frame(collected.to_bytes()) {
        Some(answer) => decide(answer),
        None => Decision::Error,
    }
}

fn grpc_status(h: &HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()
}

fn template(s: &GrpcService, local_ip: Option<std::net::IpAddr>) -> AttemptTemplate {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(TE, HeaderValue::from_static("trailers"));
    let ms = s.timeout.as_millis() as u64;
    if let Ok(v) = HeaderValue::from_str(&format!("{ms}m")) {
        h.insert(GRPC_TIMEOUT.clone(), v);
    }
    if let Some(ip) = local_ip {
        if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
            h.insert(XFF.clone(), v);
        }
    }
    h.insert(X_ENVOY_INTERNAL.clone(), HeaderValue::from_static("true"));
    h.insert(X_ENVOY_EXPECTED_RQ_TIMEOUT_MS.clone(), HeaderValue::from(ms));
    AttemptTemplate {
        method: Method::POST,
        path: PATH.to_string(),
        target: None,
        authority: HeaderValue::from_str(&s.authority).unwrap_or_else(|_| HeaderValue::from_static("")),
        headers: h,
        set_attempt_count: false,
        auto_host_rewrite: false,
        append_xfh: false,
        internal: true,
        lb_hash: None,
        headers_read_after: false,
    }
}

fn peer(addr: std::net::SocketAddr) -> proto::Peer {
    proto::Peer {
        address: Some(proto::Address {
            socket_address: Some(proto::SocketAddress {
                address: addr.ip().to_string(),
                port_value: addr.port().into(),
            }),
        }),
    }
}

/// The `CheckRequest` of a request.
pub fn check_request(req: &CheckRequest<'_>, pack_as_bytes: bool) -> proto::CheckRequest {
    let info = &req.info;
    let mut headers: HashMap<String, String> = HashMap::new();
    for (k, v) in &req.parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes());
        headers
            .entry(k.as_str().to_string())
            .and_modify(|old| {
                old.push(',');
                old.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    headers.remove("host");
    let scheme = if info.tls.is_some() { "https" } else { "http" };
    for (k, v) in
        [(":authority", info.authority), (":method", info.method), (":path", info.full_path), (":scheme", scheme)]
    {
        headers.insert(k.to_string(), v.to_string());
    }
    if let Some((_, whole)) = &req.body {
        headers.insert(PARTIAL_BODY.as_str().to_string(), if *whole { "false" } else { "true" }.to_string());
    }
    let size = req
        .parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<i64>().ok())
        .or_else(|| req.body.as_ref().map(|(b, _)| b.len() as i64))
        .unwrap_or(0);
    let (body, raw_body) = match (&req.body, pack_as_bytes) {
        (Some((b, _)), false) => (b.to_vec(), Vec::new()),
        (Some((b, _)), true) => (Vec::new(), b.to_vec()),
        (None, _) => (Vec::new(), Vec::new()),
    };
    let protocol = match req.parts.version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    };
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let http = proto::HttpRequest {
        id: rand::random::<u64>().to_string(),
        method: info.method.to_string(),
        headers,
        path: info.full_path.to_string(),
        host: info.authority.to_string(),
        scheme: scheme.to_string(),
        size,
        protocol: protocol.to_string(),
        body,
        raw_body,
    };
    proto::CheckRequest {
        attributes: Some(proto::AttributeContext {
            source: Some(peer(info.direct_remote)),
            destination: Some(peer(info.local)),
            request: Some(proto::Request {
                time: Some(proto::Timestamp { seconds: now.as_secs() as i64, nanos: now.subsec_nanos() as i32 }),
                http: Some(http),
            }),
            context_extensions: req
                .settings
                .map(|s| s.context_extensions.iter().cloned().collect())
                .unwrap_or_default(),
        }),
    }
}

/// The one message of the answer's body.
fn decode_frame(mut body: Bytes) -> Option<proto::CheckResponse> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    body.advance(1);
    let len = body.get_u32() as usize;
    if body.len() != len {
        return None;
    }
    proto::CheckResponse::decode(body).ok()
}

fn header(o: &proto::HeaderValueOption) -> Option<(HeaderName, HeaderValue)> {
    let h = o.header.as_ref()?;
    let name = HeaderName::from_bytes(h.key.to_ascii_lowercase().as_bytes()).ok()?;
    let value = if h.value.is_empty() && !h.raw_value.is_empty() {
        HeaderValue::from_bytes(&h.raw_value).ok()?
    } else {
        HeaderValue::from_str(&h.value).ok()?
    };
    Some((name, value))
}

/// The decision an answer makes, as Envoy reads it: on the request, `append: true` joins the
/// value to an existing header and anything else sets it; on the client's response,
/// `append` when given, else `append_action`, decides.
pub fn decide(answer: proto::CheckResponse) -> Decision {
    let code = answer.status.map_or(0, |s| s.code);
    if code != 0 {
        let Some(d) = answer.denied_response else {
            return Decision::Deny(Denied { status: StatusCode::FORBIDDEN, headers: Vec::new(), body: Bytes::new() });
        };
        let status = d
            .status
            .and_then(|s| u16::try_from(s.code).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(|s| s.as_u16() >= 200)
            .unwrap_or(StatusCode::FORBIDDEN);
        let headers = d.headers.iter().filter_map(header).collect();
        return Decision::Deny(Denied { status, headers, body: Bytes::from(d.body) });
    }
    let Some(ok) = answer.ok_response else { return Decision::Allow(Allowed::default()) };
    let mut allowed = Allowed::default();
    for o in &ok.headers {
        let Some((k, v)) = header(o) else { continue };
        if protected(&k) {
            continue;
        }
        if o.append.as_ref().is_some_and(|a| a.value) {
            allowed.append.push((k, v));
        } else {
            allowed.set.push((k, v));
        }
    }
    allowed.remove = ok
        .headers_to_remove
        .iter()
        .filter(|n| !n.starts_with(':'))
        .filter_map(|n| HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).ok())
        .filter(|n| !protected(n))
        .collect();
    allowed.response = ok
        .response_headers_to_add
        .iter()
        .filter_map(|o| {
            let (name, value) = header(o)?;
            let action = match (o.append.as_ref().map(|a| a.value), o.append_action) {
                (Some(true), _) => Action::Add,
                (Some(false), _) => Action::Set,
                (None, 1) => Action::AddIfAbsent,
                (None, 2) => Action::Set,
                (None, 3) => Action::OverwriteIfExists,
                (None, _) => Action::Add,
            };
            Some(ResponseOp { name, value, action })
        })
        .collect();
    Decision::Allow(allowed)
}
