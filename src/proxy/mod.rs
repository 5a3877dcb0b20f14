//! The request path: route a downstream request, forward it upstream (or answer locally),
//! and shape the response as Envoy does.
//!
//! Per request: one snapshot load, a route lookup in compiled tables, atomic stat adds on
//! pre-registered handles. Nothing here takes a lock except the host's connection pool.
//!
//! [`stream`] runs one request from arrival to response (stats, stream timeouts, local replies,
//! the access log); [`dispatch`] checks its head, routes it and carries out the route's action;
//! [`router`] forwards it to the chosen cluster and shapes the upstream's response.

mod access;
pub mod body;
mod dispatch;
pub mod forward;
mod header_format;
pub mod headers;
mod internal_redirect;
mod limits;
pub mod local_reply;
pub mod mirror;
pub mod normalize;
pub mod request_controls;
pub mod request_head;
mod retry_hosts;
mod rewrite;
mod router;
mod stream;
pub mod stream_duration;
pub mod stream_timer;
pub mod upgrade;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Weak};

use crate::server::ProcessState;
use crate::snapshot::{Hcm, ListenerRt, Snapshot};
pub use access::{log_codec_reply, LoggedBody, Logger};
pub use stream::handle;

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
    /// The tunnel of an upgraded request (WebSocket), which outlives hyper's connection.
    pub tunnel: upgrade::TunnelWatch,
    /// Local rate limit buckets of this connection (`local_rate_limit_per_downstream_connection`).
    pub rate_limit_buckets: crate::filters::local_ratelimit::ConnBuckets,
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
