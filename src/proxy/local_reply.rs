//! Every response legate makes up itself, with Envoy's status and body text. Proxy errors
//! become local replies here and nowhere else.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, SERVER};
use http::{Response, StatusCode};

use super::body::{ClientBodyFailure, ResBody};
use super::forward::RetryStop;
use super::request_head::HeadRejection;
use crate::upstream::UpstreamError;

/// Why the proxy answered by itself; the variants map to Envoy's response flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReason {
    /// NR
    NoRoute,
    /// NC: the route's cluster does not exist.
    NoCluster(StatusCode),
    /// UH
    NoHealthyUpstream,
    /// UF
    ConnectFailure,
    /// UF (timeout)
    ConnectTimeout,
    /// UC: the connection closed before the response.
    UpstreamReset,
    /// UR: the upstream reset the HTTP/2 stream (`refused`: with REFUSED_STREAM).
    StreamReset { refused: bool },
    /// UT
    UpstreamTimeout,
    /// UT, answered 204 without a body: `x-envoy-upstream-rq-timeout-alt-response`.
    UpstreamTimeoutNoContent,
    /// UT after the last attempt's per-try timeout.
    PerTryTimeout,
    /// UT: `per_try_idle_timeout`: the attempt's upstream sent nothing for that long.
    PerTryIdleTimeout,
    /// UO: a circuit breaker (`max_requests`, `max_pending_requests`) refused the request.
    Overflow,
    /// DPE: malformed request.
    BadRequest,
    /// DPE: what Envoy's HTTP/1 codec rejects (a malformed chunked body, `content-length`
    /// with `transfer-encoding`), with its `Bad Request` body and codec details.
    CodecError { details: &'static str },
    /// A request target Envoy's path checks refuse (a `#fragment`): 400, empty body, no flag.
    PathRejected,
    /// UPE: the upstream's response broke HTTP/1.1 framing.
    UpstreamProtocolError,
    /// DC: the client went away while its body was forwarded; nothing reaches it, and the
    /// log shows no response code, as Envoy's.
    DownstreamDisconnect,
    /// WebSocket upgrade on a route without upgrade_configs.
    UpgradeForbidden,
    /// The health check filter while failing.
    HealthCheckFailed,
    /// The health check filter while passing.
    HealthCheckOk,
    /// SI: `stream_idle_timeout` before the response; 408 while the request was still
    /// arriving, 504 after.
    StreamIdleTimeout { request_complete: bool },
    /// `request_timeout`: the request did not arrive whole in time.
    RequestTimeout,
    /// The route's `max_stream_duration` (or the `grpc-timeout` it takes) ended before the
    /// response: 408 while the request was still arriving, 504 after; no flag.
    MaxDuration { request_complete: bool },
    /// A request head Envoy's codec or connection manager refuses before routing.
    Rejected(HeadRejection),
    /// FI: the fault filter aborted the request with this status (and, for gRPC clients,
    /// this `grpc-status`).
    FaultAbort { status: StatusCode, grpc: Option<u32> },
    /// The buffer filter's `max_request_bytes` was exceeded: 413.
    PayloadTooLarge,
    /// A filter reading the response whole (the gRPC bridge) went over its buffer limit: 500.
    ResponsePayloadTooLarge,
    /// The CORS filter answered a preflight: 200, its headers added on the encoding side.
    CorsPreflight,
    /// The CSRF filter refused the request's origin: 403 `Invalid origin`.
    CsrfInvalidOrigin,
    /// RL: the local rate limit filter's bucket was empty (429 unless `status` says).
    RateLimited { status: StatusCode },
    /// The RBAC filter denied the request: 403 (its details name the policy).
    RbacDenied,
    /// UAEX: the ext_authz service denied the request with this status (its headers and
    /// body are the filter's to add).
    ExtAuthzDenied { status: StatusCode },
    /// UAEX: the ext_authz service could not be asked; `status_on_error`.
    ExtAuthzError { status: StatusCode },
    /// The gRPC-Web filter could not base64-decode the client's `-text` body: 400.
    GrpcWebBadText(crate::filters::GrpcWebTextFailure),
}

impl LocalReason {
    pub fn status_and_body(self) -> (StatusCode, &'static str) {
        match self {
            LocalReason::NoRoute => (StatusCode::NOT_FOUND, ""),
            LocalReason::NoCluster(s) => (s, ""),
            LocalReason::NoHealthyUpstream => (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream"),
            LocalReason::ConnectFailure => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure",
            ),
            LocalReason::ConnectTimeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: connection timeout",
            ),
            LocalReason::UpstreamReset => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
            ),
            LocalReason::StreamReset { refused: false } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: remote reset",
            ),
            LocalReason::StreamReset { refused: true } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset",
            ),
            LocalReason::UpstreamTimeout | LocalReason::PerTryTimeout | LocalReason::PerTryIdleTimeout => {
                (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout")
            }
            LocalReason::UpstreamTimeoutNoContent => (StatusCode::NO_CONTENT, ""),
            LocalReason::Overflow => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            ),
            LocalReason::BadRequest => (StatusCode::BAD_REQUEST, ""),
            LocalReason::CodecError { .. } => (StatusCode::BAD_REQUEST, "Bad Request"),
            LocalReason::PathRejected => (StatusCode::BAD_REQUEST, ""),
            // Never delivered: the client is gone.
            LocalReason::DownstreamDisconnect => (StatusCode::BAD_REQUEST, ""),
            LocalReason::UpstreamProtocolError => (
                StatusCode::BAD_GATEWAY,
                "upstream connect error or disconnect/reset before headers. reset reason: protocol error",
            ),
            LocalReason::UpgradeForbidden => (StatusCode::FORBIDDEN, ""),
            LocalReason::HealthCheckFailed => (StatusCode::SERVICE_UNAVAILABLE, ""),
            LocalReason::HealthCheckOk => (StatusCode::OK, ""),
            LocalReason::StreamIdleTimeout { request_complete: true } => {
                (StatusCode::GATEWAY_TIMEOUT, "stream timeout")
            }
            LocalReason::StreamIdleTimeout { request_complete: false } => {
                (StatusCode::REQUEST_TIMEOUT, "stream timeout")
            }
            LocalReason::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request timeout"),
            LocalReason::MaxDuration { request_complete: true } => {
                (StatusCode::GATEWAY_TIMEOUT, "downstream duration timeout")
            }
            LocalReason::MaxDuration { request_complete: false } => {
                (StatusCode::REQUEST_TIMEOUT, "downstream duration timeout")
            }
            LocalReason::Rejected(r) => (r.status, r.body),
            LocalReason::FaultAbort { status, .. } => (status, "fault filter abort"),
            LocalReason::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"),
            LocalReason::ResponsePayloadTooLarge => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            LocalReason::CorsPreflight => (StatusCode::OK, ""),
            LocalReason::CsrfInvalidOrigin => (StatusCode::FORBIDDEN, "Invalid origin"),
            LocalReason::RateLimited { status } => (status, "local_rate_limited"),
            LocalReason::RbacDenied => (StatusCode::FORBIDDEN, "RBAC: access denied"),
            LocalReason::ExtAuthzDenied { status } | LocalReason::ExtAuthzError { status } => (status, ""),
            LocalReason::GrpcWebBadText(_) => (StatusCode::BAD_REQUEST, "Bad gRPC-web request, invalid base64 data."),
        }
    }

    /// Envoy's response code details (`%RESPONSE_CODE_DETAILS%`) where they are a fixed
    /// string; `None` where Envoy's carry the transport error or codec detail.
    pub fn details(self) -> Option<&'static str> {
        match self {
            LocalReason::NoRoute => Some("route_not_found"),
            LocalReason::NoCluster(_) => Some("cluster_not_found"),
            LocalReason::NoHealthyUpstream => Some("no_healthy_upstream"),
            LocalReason::UpstreamTimeout | LocalReason::UpstreamTimeoutNoContent => Some("response_timeout"),
            LocalReason::PerTryTimeout => Some("upstream_per_try_timeout"),
            LocalReason::PerTryIdleTimeout => Some("upstream_per_try_idle_timeout"),
            LocalReason::Overflow => Some("upstream_reset_before_response_started{overflow}"),
            LocalReason::CodecError { details } => Some(details),
            LocalReason::PathRejected => Some("path_normalization_failed"),
            LocalReason::DownstreamDisconnect => Some("downstream_remote_disconnect"),
            LocalReason::UpstreamProtocolError => Some("upstream_reset_before_response_started{protocol_error}"),
            LocalReason::StreamIdleTimeout { .. } => Some("stream_idle_timeout"),
            LocalReason::RequestTimeout => Some("request_overall_timeout"),
            LocalReason::MaxDuration { .. } => Some("max_duration_timeout"),
            LocalReason::Rejected(r) => Some(r.details),
            LocalReason::FaultAbort { .. } => Some("fault_filter_abort"),
            LocalReason::PayloadTooLarge => Some("request_payload_too_large"),
            LocalReason::ResponsePayloadTooLarge => Some("response_payload_too_large"),
            LocalReason::CorsPreflight => Some("cors_response"),
            LocalReason::CsrfInvalidOrigin => Some("csrf_origin_mismatch"),
            LocalReason::RateLimited { .. } => Some("local_rate_limited"),
            LocalReason::ExtAuthzDenied { .. } => Some("ext_authz_denied"),
            LocalReason::ExtAuthzError { .. } => Some("ext_authz_error"),
            LocalReason::GrpcWebBadText(f) => Some(f.details()),
            _ => None,
        }
    }

    /// Envoy's short response flag, for access logs.
    pub fn flag(self) -> &'static str {
        match self {
            LocalReason::NoRoute => "NR",
            LocalReason::NoCluster(_) => "NC",
            LocalReason::NoHealthyUpstream => "UH",
            LocalReason::ConnectFailure | LocalReason::ConnectTimeout => "UF",
            LocalReason::UpstreamReset => "UC",
            LocalReason::StreamReset { .. } => "UR",
            LocalReason::UpstreamTimeout
            | LocalReason::UpstreamTimeoutNoContent
            | LocalReason::PerTryTimeout
            | LocalReason::PerTryIdleTimeout => "UT",
            LocalReason::Overflow => "UO",
            LocalReason::BadRequest | LocalReason::CodecError { .. } => "DPE",
            LocalReason::UpstreamProtocolError => "UPE",
            LocalReason::DownstreamDisconnect => "DC",
            LocalReason::UpgradeForbidden | LocalReason::PathRejected => "",
            LocalReason::HealthCheckFailed | LocalReason::HealthCheckOk => "",
            LocalReason::StreamIdleTimeout { .. } => "SI",
            LocalReason::RequestTimeout | LocalReason::MaxDuration { .. } => "",
            LocalReason::Rejected(r) => r.flag,
            LocalReason::FaultAbort { .. } => "FI",
            LocalReason::PayloadTooLarge
            | LocalReason::ResponsePayloadTooLarge
            | LocalReason::CorsPreflight
            | LocalReason::CsrfInvalidOrigin
            | LocalReason::RbacDenied
            | LocalReason::GrpcWebBadText(_) => "",
            LocalReason::RateLimited { .. } => "RL",
            LocalReason::ExtAuthzDenied { .. } | LocalReason::ExtAuthzError { .. } => "UAEX",
        }
    }

    pub fn from_upstream_error(e: &UpstreamError) -> Self {
        match e {
            UpstreamError::ConnectFailure { .. } | UpstreamError::Handshake { .. } => LocalReason::ConnectFailure,
            UpstreamError::ConnectTimeout { .. } => LocalReason::ConnectTimeout,
            UpstreamError::Reset { .. } => match e.stream_reset() {
                Some(reason) => LocalReason::StreamReset { refused: reason == h2::Reason::REFUSED_STREAM },
                None => LocalReason::UpstreamReset,
            },
            UpstreamError::PendingOverflow { .. } => LocalReason::Overflow,
            UpstreamError::DownstreamBody { failure, .. } => LocalReason::from_client_body(*failure),
            UpstreamError::Protocol { .. } => LocalReason::UpstreamProtocolError,
        }
    }

    /// The answer to a client's request body that failed while it was read.
    pub fn from_client_body(failure: ClientBodyFailure) -> Self {
        match failure {
            ClientBodyFailure::Malformed => LocalReason::CodecError { details: BODY_CODEC_ERROR },
            ClientBodyFailure::Disconnected => LocalReason::DownstreamDisconnect,
            ClientBodyFailure::GrpcWebText(f) => LocalReason::GrpcWebBadText(f),
        }
    }

    /// The client's own request was at fault (or the client went away): the cluster does not
    /// count the answer.
    pub fn client_at_fault(self) -> bool {
        matches!(
            self,
            LocalReason::CodecError { .. } | LocalReason::DownstreamDisconnect | LocalReason::GrpcWebBadText(_)
        )
    }
}

/// Envoy's response flags when the retry policy wanted another attempt that was refused:
/// `URX` (retries used up) or `UO` (`max_retries` reached) comes first, as Envoy sets it
/// before the failure that then ends the request.
pub fn with_retry_stop(stop: Option<RetryStop>, flag: &'static str) -> &'static str {
    match (stop, flag) {
        (None, f) => f,
        (Some(RetryStop::LimitExceeded), "") => "URX",
        (Some(RetryStop::LimitExceeded), "UF") => "URX,UF",
        (Some(RetryStop::LimitExceeded), "UC") => "URX,UC",
        (Some(RetryStop::LimitExceeded), "UT") => "URX,UT",
        (Some(RetryStop::LimitExceeded), "UR") => "URX,UR",
        (Some(RetryStop::LimitExceeded), "UO") => "URX,UO",
        (Some(RetryStop::Overflow), "" | "UO") => "UO",
        (Some(RetryStop::Overflow), "UF") => "UO,UF",
        (Some(RetryStop::Overflow), "UC") => "UO,UC",
        (Some(RetryStop::Overflow), "UT") => "UO,UT",
        (Some(RetryStop::Overflow), "UR") => "UO,UR",
        (Some(_), f) => f,
    }
}

/// Envoy's details for a request body its HTTP/1 codec could not decode.
pub const BODY_CODEC_ERROR: &str = "http1.codec_error";

/// Envoy's `%RESPONSE_CODE_DETAILS%` for an upstream that failed before response headers:
/// the reset reason and, for a failed connect, the socket error (strerror, spaces as `_`).
pub fn reset_details(e: &UpstreamError) -> &'static str {
    use std::io::ErrorKind;
    match e {
        UpstreamError::ConnectFailure { source, .. } if crate::tls::connect::tls_error(source).is_some() => {
            crate::tls::connect::tls_error(source).map_or("", tls_details)
        }
        UpstreamError::ConnectFailure { source, .. } => match source.kind() {
            ErrorKind::ConnectionRefused => {
                "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
            }
            ErrorKind::NetworkUnreachable => {
                "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Network_is_unreachable}"
            }
            ErrorKind::HostUnreachable => {
                "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_No_route_to_host}"
            }
            ErrorKind::ConnectionReset => {
                "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_reset_by_peer}"
            }
            _ => "upstream_reset_before_response_started{remote_connection_failure}",
        },
        UpstreamError::Handshake { .. } => "upstream_reset_before_response_started{remote_connection_failure}",
        UpstreamError::ConnectTimeout { .. } => "upstream_reset_before_response_started{connection_timeout}",
        UpstreamError::Reset { .. } => match e.stream_reset() {
            Some(h2::Reason::REFUSED_STREAM) => "upstream_reset_before_response_started{remote_refused_stream_reset}",
            Some(_) => "upstream_reset_before_response_started{remote_reset}",
            None => "upstream_reset_before_response_started{connection_termination}",
        },
        UpstreamError::PendingOverflow { .. } => "upstream_reset_before_response_started{overflow}",
        UpstreamError::DownstreamBody { failure: ClientBodyFailure::Malformed, .. } => BODY_CODEC_ERROR,
        UpstreamError::DownstreamBody { failure: ClientBodyFailure::Disconnected, .. } => "downstream_remote_disconnect",
        UpstreamError::DownstreamBody { failure: ClientBodyFailure::GrpcWebText(f), .. } => f.details(),
        UpstreamError::Protocol { .. } => "upstream_reset_before_response_started{protocol_error}",
    }
}

/// The details of an upstream TLS handshake that failed, in BoringSSL's words as Envoy gives
/// them (Envoy also lists the certificate's SANs after `SAN_matcher`, which legate leaves out
/// to keep the details a fixed string).
fn tls_details(e: &rustls::Error) -> &'static str {
    use rustls::{AlertDescription, CertificateError, Error};
    match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_X509_verify_cert:_certificate_verification_error_at_depth_0:_unable_to_get_local_issuer_certificate:TLS_error_end}"
        }
        Error::InvalidCertificate(_) if crate::tls::verify::failure_of(e) == Some(crate::tls::verify::VerifyFailure::San) => {
            "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_SAN_matcher:TLS_error_end}"
        }
        Error::InvalidCertificate(_)
            if crate::tls::verify::failure_of(e) == Some(crate::tls::verify::VerifyFailure::SanList) =>
        {
            "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_verify_SAN_list:TLS_error_end}"
        }
        Error::InvalidCertificate(_) => {
            "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end}"
        }
        Error::AlertReceived(AlertDescription::HandshakeFailure) => {
            "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268436496:SSL_routines:OPENSSL_internal:SSLV3_ALERT_HANDSHAKE_FAILURE:TLS_error_end}"
        }
        _ => "upstream_reset_before_response_started{remote_connection_failure|TLS_error:TLS_error_end}",
    }
}

/// A local reply: `text/plain` when it has a body, and `content-length` always.
pub fn local_reply(reason: LocalReason, server: &HeaderValue) -> Response<ResBody> {
    let (status, body) = reason.status_and_body();
    let mut resp = reply(status, Bytes::from_static(body.as_bytes()), server);
    if reason == LocalReason::Overflow {
        resp.headers_mut().insert(super::headers::X_ENVOY_OVERLOADED.clone(), HeaderValue::from_static("true"));
    }
    if matches!(reason, LocalReason::Rejected(r) if r.close) {
        resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Whether a request is gRPC as Envoy tells it (`Grpc::Common::hasGrpcContentType`): its
/// `content-type` is `application/grpc` or starts `application/grpc+` (grpc-web is not).
pub fn is_grpc_request(headers: &http::HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.strip_prefix(b"application/grpc").is_some_and(|rest| rest.is_empty() || rest[0] == b'+')
    })
}

/// Envoy's local reply to a gRPC request: a trailers-only gRPC answer (HTTP 200,
/// `content-type: application/grpc`, the HTTP status mapped to a `grpc-status`, the reply's
/// text percent-encoded in `grpc-message`, no body), so that gRPC clients see the error as a
/// gRPC status rather than a protocol failure.
pub fn grpc_local_reply(reason: LocalReason, server: &HeaderValue, head: bool) -> Response<ResBody> {
    let (status, body) = reason.status_and_body();
    let grpc_status = match reason {
        LocalReason::FaultAbort { grpc: Some(g), .. } => Some(g),
        // Envoy's DeadlineExceeded, whatever the HTTP status.
        LocalReason::MaxDuration { .. } => Some(4),
        _ => None,
    };
    let mut resp = Response::new(ResBody::empty());
    if reason == LocalReason::Overflow {
        // Envoy adds it before the gRPC headers; kept first so the answers read the same.
        resp.headers_mut().insert(super::headers::X_ENVOY_OVERLOADED.clone(), HeaderValue::from_static("true"));
    }
    grpc_reply(resp, status, body.as_bytes(), grpc_status, server, head)
}

/// A route's `direct_response` or `redirect` answering a gRPC request: Envoy sends those
/// through the same local-reply path, so the client gets `grpc-status` (from the HTTP
/// status: 2 for a 200 or a 301) and the body as `grpc-message`; a redirect keeps its
/// `location`.
pub fn grpc_direct_reply(
    status: StatusCode,
    body: &[u8],
    location: Option<HeaderValue>,
    server: &HeaderValue,
    head: bool,
) -> Response<ResBody> {
    let mut resp = Response::new(ResBody::empty());
    if let Some(l) = location {
        resp.headers_mut().insert(http::header::LOCATION, l);
    }
    grpc_reply(resp, status, body, None, server, head)
}

fn grpc_reply(
    mut resp: Response<ResBody>,
    status: StatusCode,
    body: &[u8],
    grpc_status: Option<u32>,
    server: &HeaderValue,
    head: bool,
) -> Response<ResBody> {
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    let grpc_status = grpc_status.unwrap_or_else(|| u32::from(http_to_grpc_status(status)));
    h.insert(GRPC_STATUS, HeaderValue::from(grpc_status));
    if !body.is_empty() && !head {
        if let Ok(message) = HeaderValue::from_str(&grpc_percent_encode(body)) {
            h.insert(GRPC_MESSAGE, message);
        }
    }
    h.insert(SERVER, server.clone());
    resp
}

const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
fn http_to_grpc_status(status: StatusCode) -> u16 {
    match status.as_u16() {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// gRPC's percent-encoding of `grpc-message`: bytes outside printable ASCII, and `%`.
fn grpc_percent_encode(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        if (b' '..=b'~').contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn reply(status: StatusCode, body: Bytes, server: &HeaderValue) -> Response<ResBody> {
    let mut resp = Response::new(ResBody::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    if !body.is_empty() {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    h.insert(SERVER, server.clone());
    *resp.body_mut() = ResBody::full(body);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_requests_are_told_by_content_type() {
        let with = |ct: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            is_grpc_request(&h)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(!with("application/grpc-web"));
        assert!(!with("application/json"));
        assert!(!is_grpc_request(&http::HeaderMap::new()));
    }

    #[test]
    fn grpc_local_replies_are_trailers_only_answers() {
        let server = HeaderValue::from_static("envoy");
        let r = grpc_local_reply(LocalReason::NoHealthyUpstream, &server, false);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(r.headers()["grpc-message"], "no healthy upstream");
        assert!(r.headers().get(CONTENT_LENGTH).is_none());
        let r = grpc_local_reply(LocalReason::NoRoute, &server, false);
        assert_eq!(r.headers()["grpc-status"], "12");
        assert!(r.headers().get("grpc-message").is_none());
        let r = grpc_local_reply(LocalReason::NoHealthyUpstream, &server, true);
        assert!(r.headers().get("grpc-message").is_none(), "a HEAD request gets no message");
        assert_eq!(grpc_percent_encode(b"50% off\n"), "50%25 off%0A");
        let r = grpc_local_reply(LocalReason::Overflow, &server, false);
        assert_eq!(r.headers().keys().next().map(|k| k.as_str()), Some("x-envoy-overloaded"));
    }

    #[test]
    fn direct_answers_to_grpc_map_their_status_and_body() {
        let server = HeaderValue::from_static("envoy");
        let r = grpc_direct_reply(StatusCode::OK, b"hello", None, &server, false);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "2");
        assert_eq!(r.headers()["grpc-message"], "hello");
        let loc = HeaderValue::from_static("http://x/elsewhere");
        let r = grpc_direct_reply(StatusCode::MOVED_PERMANENTLY, b"", Some(loc), &server, false);
        assert_eq!(r.headers()["grpc-status"], "2");
        assert_eq!(r.headers()["location"], "http://x/elsewhere");
        assert!(r.headers().get("grpc-message").is_none());
        let r = grpc_direct_reply(StatusCode::SERVICE_UNAVAILABLE, b"down", None, &server, false);
        assert_eq!(r.headers()["grpc-status"], "14");
    }
}
