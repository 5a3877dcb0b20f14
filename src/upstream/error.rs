//! Why a request got no response from its upstream host: the pool's error, which the
//! forwarder maps to Envoy's response flags and retry conditions.

use std::net::SocketAddr;

use crate::body::ClientBodyFailure;

/// Why a request got no response from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {addr} failed: {source}")]
    ConnectFailure { addr: SocketAddr, source: std::io::Error },
    #[error("connect to {addr} timed out")]
    ConnectTimeout { addr: SocketAddr },
    #[error("HTTP handshake with {addr} failed: {source}")]
    Handshake { addr: SocketAddr, source: hyper::Error },
    /// The connection broke after the request was (maybe partly) sent, before response headers.
    #[error("upstream {addr} reset: {source}")]
    Reset { addr: SocketAddr, source: crate::body::BodyError },
    /// The request had to wait for a connection and `max_pending_requests` were waiting.
    #[error("too many requests pending for {addr}")]
    PendingOverflow { addr: SocketAddr },
    /// The client's request body broke before it was all sent: the upstream request was
    /// abandoned unfinished (or never sent), so the upstream never saw a complete request.
    #[error("client request body failed while sent to {addr}")]
    DownstreamBody { addr: SocketAddr, failure: ClientBodyFailure },
    /// The upstream's response head breaks HTTP/1.1 framing (`content-length` with
    /// `transfer-encoding`): its body cannot be trusted, nor the connection after it.
    #[error("upstream {addr} sent a response with both content-length and transfer-encoding")]
    Protocol { addr: SocketAddr },
}

impl UpstreamError {
    /// The request never got onto a connection (Envoy counts `upstream_rq_total` only for
    /// requests that did).
    pub fn before_connection(&self) -> bool {
        !matches!(self, UpstreamError::Reset { .. } | UpstreamError::Protocol { .. })
    }

    /// The reason of the HTTP/2 RST_STREAM the upstream sent, when that ended the request
    /// (rather than the connection closing).
    pub fn stream_reset(&self) -> Option<h2::Reason> {
        let UpstreamError::Reset { source, .. } = self else { return None };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        // hyper wraps the h2 error once; the bound only guards against a cyclic chain.
        for _ in 0..4 {
            let e = cause?;
            if let Some(h2) = e.downcast_ref::<h2::Error>() {
                return h2.reason().filter(|_| h2.is_reset() && h2.is_remote());
            }
            cause = e.source();
        }
        None
    }
}
