//! What one access-log line is rendered from.
//!
//! The proxy builds a [`LogContext`] once per finished request, and only when a logger is
//! configured. It borrows everything (headers, names, the flags string) so building it costs no
//! allocation; each configured format then renders from the same context.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// The data of one finished request, borrowed from the proxy's request state.
#[derive(Debug, Clone, Copy)]
pub struct LogContext<'a> {
    /// When the request started (`%START_TIME%`).
    pub start: SystemTime,
    /// Downstream request headers as received (`%REQ(...)%`).
    pub request_headers: &'a http::HeaderMap,
    /// `:method`.
    pub method: &'a str,
    /// `:path`, including the query.
    pub path: &'a str,
    /// `:authority` (the `Host` header for HTTP/1).
    pub authority: &'a str,
    /// `:scheme`.
    pub scheme: &'a str,
    /// Downstream protocol (`%PROTOCOL%`); `None` for a TCP connection (`-`).
    pub protocol: Option<http::Version>,
    /// Status sent downstream; `None` when no response started (`%RESPONSE_CODE%` renders 0).
    pub response_code: Option<u16>,
    /// Envoy's response code details (`via_upstream`, `route_not_found`, ...).
    pub response_code_details: Option<&'a str>,
    /// Response headers sent downstream (`%RESP(...)%`).
    pub response_headers: Option<&'a http::HeaderMap>,
    /// Response trailers sent downstream (`%TRAILER(...)%`).
    pub response_trailers: Option<&'a http::HeaderMap>,
    /// Envoy's short response flags (`UH,UF`), empty when none (`%RESPONSE_FLAGS%` renders `-`).
    pub response_flags: &'a str,
    /// Request body bytes received from downstream.
    pub bytes_received: u64,
    /// Response body bytes sent downstream.
    pub bytes_sent: u64,
    /// From start to the last byte sent downstream.
    pub duration: Option<Duration>,
    /// From start until the request was fully received.
    pub request_duration: Option<Duration>,
    /// From start until the first upstream response byte.
    pub response_duration: Option<Duration>,
    /// The upstream host the request was sent to.
    pub upstream_host: Option<SocketAddr>,
    /// The upstream cluster's name.
    pub upstream_cluster: Option<&'a str>,
    /// Local address of the upstream connection.
    pub upstream_local_address: Option<SocketAddr>,
    /// Why connecting upstream failed (TLS or connect error text).
    pub upstream_transport_failure_reason: Option<&'a str>,
    /// Upstream attempts made, 0 when none was (`%UPSTREAM_REQUEST_ATTEMPT_COUNT%`).
    pub upstream_request_attempt_count: u32,
    /// The downstream peer.
    pub downstream_remote: SocketAddr,
    /// The local address the downstream connection was accepted on.
    pub downstream_local: SocketAddr,
    /// The matched route's name.
    pub route_name: Option<&'a str>,
    /// The connection's TLS session (`%DOWNSTREAM_TLS_*%`, `%DOWNSTREAM_PEER_*%`).
    pub tls: Option<&'a crate::tls::Session>,
    /// The stream's dynamic metadata (`%DYNAMIC_METADATA(...)%`).
    pub dynamic_metadata: Option<&'a crate::filters::DynamicMetadata>,
    /// The body of the local reply being formatted (`%LOCAL_REPLY_BODY%`, a direct
    /// response's `body_format`); `None` elsewhere.
    pub local_reply_body: Option<&'a str>,
}
