//! Connections to one upstream host: a keep-alive pool of HTTP/1.1 connections, or one shared
//! HTTP/2 connection.
//!
//! An HTTP/1.1 connection goes back to the idle list only when hyper says it is ready for the
//! next request (the response body was read to its end); a request that finds an idle
//! connection already closed is sent again on a new one, since it never left the proxy.
//! An HTTP/1.1 connection idle for the cluster's `idle_timeout` is closed
//! (`upstream_cx_idle_timeout`) by the pool's one sweeper, which runs only while connections
//! are idle and wakes when the oldest one's time is up: putting a connection back arms no
//! timer of its own (that cost more than the rest of a request's pool work).
//!
//! Connections are made through a [`Connector`]: TCP, TLS over TCP for a cluster with an
//! `UpstreamTlsContext`, or in unit tests a scripted in-memory upstream, so that forwarding
//! and retries are tested against this very pool. A pool belongs to one host of one cluster
//! and has one connector, so TLS and plaintext connections never share a pool. When the
//! SNI or SAN check comes from each request (`auto_sni`), the host's connections are further
//! split by that name ([`named`]).
//!
//! With `auto_config` (HTTP/2 or HTTP/1.1 chosen by ALPN, Envoy's mixed pool) requests are
//! built as HTTP/1.1; a new connection whose handshake chose `h2` becomes the host's shared
//! HTTP/2 connection, and requests sent on it are turned into HTTP/2 ones ([`as_h2`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::breakers::{Breakers, ConnectionSlot};
use super::conn_life::{ConnLife, Lived};
use super::connect::Connector;
pub use super::error::UpstreamError;
use super::h1;
use super::response::{UpstreamBody, UpstreamResponse};
use crate::body::ReqBody;
use crate::config::model::{Http2Options, UpstreamProtocol};
use crate::stats::io::CountedIo;
use crate::stats::{Counter, Gauge, GaugeGuard, Histogram};
pub use raw::RawConnection;

mod named;
mod raw;

/// Connection counters shared by a cluster's hosts, plus the host's own.
#[derive(Clone)]
pub struct ConnStats {
    pub cx_total: Counter,
    pub cx_http1_total: Counter,
    pub cx_http2_total: Counter,
    pub cx_active: Gauge,
    pub cx_connect_fail: Counter,
    pub cx_connect_timeout: Counter,
    pub cx_destroy: Counter,
    pub cx_idle_timeout: Counter,
    pub cx_rx_bytes_total: Counter,
    pub cx_tx_bytes_total: Counter,
    pub cx_connect_ms: Histogram,
    pub cx_length_ms: Histogram,
    /// Requests that waited for a new connection (Envoy's pending requests).
    pub rq_pending_total: Counter,
    pub rq_pending_active: Gauge,
    /// Pending requests that failed because their connection could not be made.
    pub rq_pending_failure_eject: Counter,
    /// `upstream_cx_protocol_error`: responses whose framing broke HTTP/1.1.
    pub cx_protocol_error: Counter,
    pub host_cx_total: Counter,
    pub host_cx_active: Gauge,
    pub host_cx_connect_fail: Counter,
}

pub struct Pool {
    addr: SocketAddr,
    protocol: UpstreamProtocol,
    h2_options: Http2Options,
    /// The cluster's `per_connection_buffer_limit_bytes` (at least 64 KiB): hyper's read
    /// buffer (HTTP/1.1) or per-stream send buffer (HTTP/2) stops growing there.
    buffer_limit: usize,
    connect_timeout: Duration,
    stats: ConnStats,
    /// The cluster's circuit breakers, shared by its hosts.
    breakers: Arc<Breakers>,
    /// `common_http_protocol_options.idle_timeout` (HTTP/1.1 connections).
    idle_timeout: Option<Duration>,
    /// Oldest first: each is pushed with the time it came back.
    idle: Mutex<Vec<Idle>>,
    /// The idle watcher runs (only while some connection is idle).
    sweeping: std::sync::atomic::AtomicBool,
    /// Wakes the idle watcher; `idle_waker` is its waker, which idle sockets hold.
    idle_signal: Arc<IdleSignal>,
    idle_waker: Waker,
    h2: Mutex<Option<http2::SendRequest<ReqBody>>>,
    connector: Connector,
    /// `auto_config`: the protocol of each new connection is the one ALPN chose.
    auto: bool,
    /// `header_key_format.proper_case_words`: HTTP/1.1 request header names Proper-Cased.
    proper_case: bool,
    /// `auto_sni` / `auto_san_validation`: connections kept apart by request name.
    named: Option<named::Named>,
}

/// A connection to send a request on.
enum Conn {
    H1(H1Conn),
    /// An `auto_config` connection on which ALPN chose HTTP/2.
    H2(http2::SendRequest<ReqBody>),
}

/// Watches `pool`'s idle connections: closes each the upstream closed (the own client's
/// connections have no task of their own to notice; hyper's close themselves) and, with an
/// idle `timeout`, each idle that long. Woken by the idle sockets themselves (registered with
/// `signal`'s waker when they come back) or by the oldest one's time; ends when none is idle
/// (a connection put back then starts another). Weak: a removed cluster's pool (and stats)
/// must go at once; its drop wakes this to end.
async fn watch_idle(pool: std::sync::Weak<Pool>, signal: Arc<IdleSignal>, timeout: Option<Duration>) {
    let waker = Waker::from(Arc::clone(&signal));
    // Bounded: each turn closes what ended and waits for a socket or the oldest one's time.
    loop {
        let next = {
            let Some(pool) = pool.upgrade() else { return };
            let now = tokio::time::Instant::now();
            let mut closed = Vec::new();
            let mut expired = 0;
            let mut idle = lock(&pool.idle);
            let mut i = 0;
            while i < idle.len() {
                let timed_out = timeout.is_some_and(|t| idle[i].since + t <= now);
                if timed_out || !idle[i].conn.is_open_watched(&waker) {
                    expired += usize::from(timed_out);
                    closed.push(idle.remove(i));
                } else {
                    i += 1;
                }
            }
            let next = timeout.and_then(|t| idle.first().map(|i| i.since + t));
            let empty = idle.is_empty();
            if empty {
                // Under the lock: a connection put back after this starts a new watcher.
                pool.sweeping.store(false, std::sync::atomic::Ordering::Release);
            }
            drop(idle);
            for _ in 0..expired {
                pool.stats.cx_idle_timeout.inc();
            }
            // Dropping them closes the connections.
            drop(closed);
            if empty {
                return;
            }
            next
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = signal.notify.notified() => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => signal.notify.notified().await,
        }
    }
}

/// What wakes a pool's idle watcher: a waker the idle sockets hold.
#[derive(Default)]
struct IdleSignal {
    notify: tokio::sync::Notify,
}

impl Wake for IdleSignal {
    fn wake(self: Arc<Self>) {
        self.notify.notify_one();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.notify.notify_one();
    }
}

/// Idle HTTP/1.1 connections kept per host; more are closed when they come back.
const MAX_IDLE: usize = 256;

/// An idle HTTP/1.1 connection, and since when.
struct Idle {
    conn: H1Conn,
    since: tokio::time::Instant,
}

/// An HTTP/1.1 connection: spoken by the own client, or handed to hyper's (for a request the
/// own client does not send) and kept there.
enum H1Conn {
    Own(Box<h1::Conn>),
    Hyper(http1::SendRequest<ReqBody>),
}

impl H1Conn {
    /// The upstream has not closed it.
    fn is_open(&mut self) -> bool {
        self.is_open_watched(Waker::noop())
    }

    /// The upstream has not closed it; an own connection's socket wakes `waker` when that
    /// changes.
    fn is_open_watched(&mut self, waker: &Waker) -> bool {
        match self {
            H1Conn::Own(c) => c.is_open(waker),
            H1Conn::Hyper(s) => !s.is_closed(),
        }
    }
}

/// How an exchange on the own client's connection ended without a response.
enum OwnFailure {
    /// Nothing was written: the idle connection was dead.
    Unsent(std::io::Error),
    Failed(UpstreamError),
}

impl Pool {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        addr: SocketAddr,
        protocol: UpstreamProtocol,
        h2_options: Http2Options,
        buffer_limit: u32,
        connect_timeout: Duration,
        idle_timeout: Option<Duration>,
        stats: ConnStats,
        breakers: Arc<Breakers>,
    ) -> Self {
        let (idle, h2) = (Mutex::new(Vec::new()), Mutex::new(None));
        let signal = Arc::new(IdleSignal::default());
        // A soft limit in Envoy; in hyper the read buffer must also hold a whole response
        // head, which Envoy bounds separately at 60 KiB (`max_response_headers_kb`).
        let buffer_limit = (buffer_limit as usize).max(64 * 1024);
        Pool {
            addr,
            protocol,
            h2_options,
            buffer_limit,
            connect_timeout,
            stats,
            breakers,
            idle_timeout,
            idle,
            sweeping: std::sync::atomic::AtomicBool::new(false),
            idle_signal: Arc::clone(&signal),
            idle_waker: Waker::from(signal),
            h2,
            connector: Connector::Tcp,
            auto: false,
            proper_case: false,
            named: None,
        }
    }

    /// A pool to the same host with the same settings for the connections of one request
    /// name, through `connector`; it counts in the same stats and breakers.
    fn for_name(&self, connector: Connector) -> Pool {
        let signal = Arc::new(IdleSignal::default());
        Pool {
            addr: self.addr,
            protocol: self.protocol,
            h2_options: self.h2_options,
            buffer_limit: self.buffer_limit,
            connect_timeout: self.connect_timeout,
            stats: self.stats.clone(),
            breakers: Arc::clone(&self.breakers),
            idle_timeout: self.idle_timeout,
            idle: Mutex::new(Vec::new()),
            sweeping: std::sync::atomic::AtomicBool::new(false),
            idle_signal: Arc::clone(&signal),
            idle_waker: Waker::from(signal),
            h2: Mutex::new(None),
            connector,
            auto: self.auto,
            proper_case: self.proper_case,
            named: None,
        }
    }

    /// Whether the pool keeps a connection (idle, or the shared HTTP/2 one).
    fn has_connections(&self) -> bool {
        !lock(&self.idle).is_empty() || lock(&self.h2).as_ref().is_some_and(|s| !s.is_closed())
    }

    /// The same pool reaching its host through `connector` (TLS, or a fake upstream in unit
    /// tests).
    pub fn with_connector(mut self, connector: Connector) -> Self {
        self.named = match &connector {
            Connector::Tls(tls) if tls.per_request_names() => Some(named::Named::new(Arc::clone(tls))),
            _ => None,
        };
        self.connector = connector;
        self
    }

    /// The same pool choosing each connection's protocol by ALPN (`auto_config`).
    pub fn with_auto_protocol(mut self, auto: bool) -> Self {
        self.auto = auto;
        self
    }

    /// The same pool sending HTTP/1.1 request header names Proper-Cased
    /// (`header_key_format.proper_case_words`).
    pub fn with_proper_case(mut self, on: bool) -> Self {
        self.proper_case = on;
        self
    }

    /// How this pool reaches its host (health checks open their own connections with it).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes idle connections (a cluster removed or a host gone).
    pub fn close_idle(&self) {
        lock(&self.idle).clear();
        lock(&self.h2).take();
        if let Some(n) = &self.named {
            n.close_idle();
        }
    }

    /// Gives back the buffers of the own client's idle connections (the process went idle,
    /// [`crate::idle_release`]); each allocates them again for its next request.
    pub fn release_idle_buffers(&self) {
        for i in lock(&self.idle).iter_mut() {
            if let H1Conn::Own(c) = &mut i.conn {
                c.release_buffers();
            }
        }
        if let Some(n) = &self.named {
            n.release_idle_buffers();
        }
    }

    /// Sends a request on a pooled or new connection.
    ///
    /// One async fn for the whole HTTP/1.1 path: the request (and the future holding it) was
    /// moved down three nested futures before, a copy each. The rarer paths (a pool per
    /// request name, HTTP/2) are boxed, which keeps this future small.
    pub async fn send(self: &Arc<Self>, mut req: Request<ReqBody>) -> Result<UpstreamResponse, UpstreamError> {
        if let Some(pool) = self.named.as_ref().and_then(|n| n.pool_for(self, &req)) {
            // A per-name pool has no names of its own: this recurses once.
            return Box::pin(pool.send(req)).await;
        }
        if self.protocol == UpstreamProtocol::Http2 {
            return Box::pin(self.send_h2(req)).await;
        }
        if self.auto {
            // `auto_config`: on the host's HTTP/2 connection if ALPN gave it one, else as
            // HTTP/1.1 (where a new connection may still turn out to be HTTP/2).
            let existing = lock(&self.h2).as_ref().filter(|s| !s.is_closed()).cloned();
            if let Some(sender) = existing {
                as_h2(&mut req);
                return Box::pin(self.send_on_h2(sender, req)).await;
            }
        }
        // Every idle connection may have been closed by the upstream meanwhile; after that
        // many dead ones a new connection is made, so the loop is bounded.
        for dead in 0..=MAX_IDLE {
            let idle = if dead < MAX_IDLE { self.pop_idle() } else { None };
            let (conn, fresh) = match idle {
                Some(c) => (c, false),
                None => match req.body_mut().read_while(Box::pin(self.acquire_h1(dead == MAX_IDLE))).await {
                    Ok((Conn::H1(c), fresh)) => (c, fresh),
                    Ok((Conn::H2(s), _)) => {
                        as_h2(&mut req);
                        return Box::pin(self.send_on_h2(s, req)).await;
                    }
                    Err(e) => return Err(unsent(req, e)),
                },
            };
            if let Some(failure) = req.body().failure() {
                // Nothing was written on the connection: it stays usable.
                match conn {
                    H1Conn::Own(c) => self.keep(H1Conn::Own(c)),
                    H1Conn::Hyper(s) => self.recycle(s),
                }
                return Err(UpstreamError::DownstreamBody { addr: self.addr, failure });
            }
            let mut sender = match conn {
                H1Conn::Own(c) => match h1::encode::plan(&req) {
                    Some(plan) => match self.exchange(c, &req, &plan).await {
                        Ok(resp) => return Ok(resp),
                        Err(OwnFailure::Unsent(_)) if !fresh => continue,
                        Err(OwnFailure::Unsent(e)) => {
                            return Err(UpstreamError::Reset { addr: self.addr, source: Box::new(e) })
                        }
                        Err(OwnFailure::Failed(e)) => return Err(e),
                    },
                    None => Box::pin(self.to_hyper(c)).await?,
                },
                H1Conn::Hyper(s) => s,
            };
            if fresh {
                let resp = sender.send_request(req).await.map_err(|e| self.sent_error(e))?;
                return self.h1_response(sender, resp);
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return self.h1_response(sender, resp),
                Err(mut e) => match e.take_message() {
                    // Never sent: the connection was dead before we wrote. Try another.
                    Some(r) => req = r,
                    None => return Err(self.sent_error(e.into_error())),
                },
            }
        }
        // Not reached: the last turn takes a new connection.
        Err(UpstreamError::PendingOverflow { addr: self.addr })
    }

    /// Checks an HTTP/1.1 response's framing before it is passed on; the connection goes
    /// back to the pool only under a response that can be trusted. Envoy's codec rejects
    /// `content-length` with `transfer-encoding` (RFC 9112, 6.3: a request smuggling vector)
    /// where hyper lets chunked framing win and keeps both headers.
    fn h1_response(
        self: &Arc<Self>,
        sender: http1::SendRequest<ReqBody>,
        resp: http::Response<hyper::body::Incoming>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        self.check_framing(resp.headers())?;
        self.recycle(sender);
        Ok(resp.map(UpstreamBody::Hyper))
    }

    /// Envoy's codec rejects `content-length` with `transfer-encoding` (RFC 9112, 6.3: a
    /// request smuggling vector) where hyper lets chunked framing win and keeps both headers.
    /// Dropping the response then closes its connection.
    fn check_framing(&self, h: &http::HeaderMap) -> Result<(), UpstreamError> {
        if h.contains_key(http::header::TRANSFER_ENCODING) && h.contains_key(http::header::CONTENT_LENGTH) {
            self.stats.cx_protocol_error.inc();
            return Err(UpstreamError::Protocol { addr: self.addr });
        }
        Ok(())
    }

    /// Sends `req` on `conn` with the own client; the response's body hands the connection
    /// back to this pool when it ends.
    async fn exchange(
        self: &Arc<Self>,
        mut conn: Box<h1::Conn>,
        req: &Request<ReqBody>,
        plan: &h1::encode::Plan<'_>,
    ) -> Result<UpstreamResponse, OwnFailure> {
        match h1::exchange(&mut conn, req, plan, self.proper_case, self.buffer_limit).await {
            Ok(head) => {
                if head.length_and_transfer_encoding() {
                    self.stats.cx_protocol_error.inc();
                    return Err(OwnFailure::Failed(UpstreamError::Protocol { addr: self.addr }));
                }
                let home: Arc<dyn h1::decode::Home> = Arc::clone(self) as Arc<dyn h1::decode::Home>;
                Ok(h1::decode::response(head, conn, home).map(UpstreamBody::Own))
            }
            Err(h1::Failed::Unsent(e)) => Err(OwnFailure::Unsent(e)),
            Err(h1::Failed::Sent(e)) => {
                Err(OwnFailure::Failed(UpstreamError::Reset { addr: self.addr, source: Box::new(e) }))
            }
        }
    }

    /// The connection handed to hyper's client, for a request the own client does not send.
    async fn to_hyper(&self, conn: Box<h1::Conn>) -> Result<http1::SendRequest<ReqBody>, UpstreamError> {
        let (sender, conn) = self
            .h1_builder()
            .handshake(TokioIo::new((*conn).into_io()))
            .await
            .map_err(|source| UpstreamError::Handshake { addr: self.addr, source })?;
        // An upgrade (101) hands the socket to the tunnel, its stats with it.
        self.drive(conn.with_upgrades());
        Ok(sender)
    }

    fn h1_builder(&self) -> http1::Builder {
        let mut b = http1::Builder::new();
        b.max_buf_size(self.buffer_limit).title_case_headers(self.proper_case);
        b
    }

    /// The error of a request that was (maybe partly) written: the client's body failing is
    /// told apart from the upstream failing.
    fn sent_error(&self, source: hyper::Error) -> UpstreamError {
        match crate::body::client_body_failure(&source) {
            Some(failure) => UpstreamError::DownstreamBody { addr: self.addr, failure },
            None => UpstreamError::Reset { addr: self.addr, source: Box::new(source) },
        }
    }

    /// An idle connection that is still open.
    fn pop_idle(&self) -> Option<H1Conn> {
        let mut idle = lock(&self.idle);
        while let Some(mut i) = idle.pop() {
            if i.conn.is_open() {
                return Some(i.conn);
            }
        }
        None
    }

    /// For a request that found no idle connection: it is pending until a new connection is
    /// up or, at `max_connections`, until a busy one comes back idle (`fresh_only` waits for a
    /// new one). The bool says the connection is new.
    async fn acquire_h1(&self, fresh_only: bool) -> Result<(Conn, bool), UpstreamError> {
        let Some(_pending) = self.breakers.pending(&self.stats.rq_pending_active) else {
            return Err(UpstreamError::PendingOverflow { addr: self.addr });
        };
        self.stats.rq_pending_total.inc();
        let mut overflow_counted = false;
        // Each turn ends in a connection or in a wake-up by a connection freed: bounded by
        // the route timeout around the whole request, as in Envoy.
        loop {
            let host_has_none = self.stats.host_cx_active.value() == 0;
            if let Some(slot) = self.breakers.connection(host_has_none, !overflow_counted) {
                return Ok((self.connect_h1(slot).await?, true));
            }
            overflow_counted = true;
            let waiter = self.breakers.waiter();
            // Registered first, then looked again: a connection freed in between still wakes us.
            if let Some(s) = self.pop_idle().filter(|_| !fresh_only) {
                return Ok((Conn::H1(s), false));
            }
            if let Some(slot) = self.breakers.connection(host_has_none, false) {
                return Ok((self.connect_h1(slot).await?, true));
            }
            waiter.wait().await;
            if let Some(s) = self.pop_idle().filter(|_| !fresh_only) {
                return Ok((Conn::H1(s), false));
            }
        }
    }

    /// A connection of hyper's goes back to the pool when hyper says it can take the next
    /// request (its response body was read to the end).
    fn recycle(self: &Arc<Self>, mut sender: http1::SendRequest<ReqBody>) {
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            pool.keep(H1Conn::Hyper(sender));
        });
    }

    /// Puts a connection ready for the next request on the idle list (closed when the list
    /// is full), and tells a request waiting under `max_connections`.
    fn keep(self: &Arc<Self>, mut conn: H1Conn) {
        // From here its socket wakes the idle watcher if the upstream closes it.
        if !conn.is_open_watched(&self.idle_waker) {
            // Dropped: its slot under `max_connections` wakes a waiting request.
            return;
        }
        let kept = {
            let mut idle = lock(&self.idle);
            let kept = idle.len() < MAX_IDLE;
            if kept {
                // Taken under the lock: the list stays oldest first.
                idle.push(Idle { conn, since: tokio::time::Instant::now() });
            }
            kept
        };
        self.breakers.released();
        if kept && !self.sweeping.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tokio::spawn(watch_idle(Arc::downgrade(self), Arc::clone(&self.idle_signal), self.idle_timeout));
        }
    }

    /// Opens a TCP connection in the place `slot` holds under `max_connections`; the
    /// connection's IO holds the slot and its stats until it is dropped.
    /// The bool says ALPN chose HTTP/2.
    async fn connect_tcp(&self, slot: ConnectionSlot) -> Result<(h1::Io, bool), UpstreamError> {
        self.stats.cx_total.inc();
        self.stats.host_cx_total.inc();
        let addr = self.addr;
        let started = Instant::now();
        let stream = match tokio::time::timeout(self.connect_timeout, self.connector.connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                self.stats.cx_connect_fail.inc();
                self.stats.host_cx_connect_fail.inc();
                self.stats.rq_pending_failure_eject.inc();
                return Err(UpstreamError::ConnectFailure { addr, source });
            }
            Err(_) => {
                self.stats.cx_connect_fail.inc();
                self.stats.cx_connect_timeout.inc();
                self.stats.host_cx_connect_fail.inc();
                self.stats.rq_pending_failure_eject.inc();
                return Err(UpstreamError::ConnectTimeout { addr });
            }
        };
        self.stats.cx_connect_ms.record_duration(started.elapsed());
        let h2 = stream.alpn_h2();
        let counted =
            CountedIo::new(stream, self.stats.cx_rx_bytes_total.clone(), self.stats.cx_tx_bytes_total.clone());
        let life = ConnLife {
            _active: GaugeGuard::new(&self.stats.cx_active),
            _host_active: GaugeGuard::new(&self.stats.host_cx_active),
            destroy: self.stats.cx_destroy.clone(),
            length: self.stats.cx_length_ms.clone(),
            opened: Instant::now(),
            _slot: slot,
        };
        Ok((Lived::new(counted, life), h2))
    }

    /// Runs a connection's task; its IO carries the connection's stats and slot.
    fn drive<F>(&self, conn: F)
    where
        F: std::future::Future + Send + 'static,
    {
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }

    async fn connect_h1(&self, slot: ConnectionSlot) -> Result<Conn, UpstreamError> {
        // Counted with upstream_cx_total, per connection attempt, as Envoy does (with
        // `auto_config`, once ALPN has told which).
        if !self.auto {
            self.stats.cx_http1_total.inc();
        }
        let (io, h2) = self.connect_tcp(slot).await?;
        if self.auto && h2 {
            self.stats.cx_http2_total.inc();
            let sender = self.h2_handshake(io).await?;
            *lock(&self.h2) = Some(sender.clone());
            return Ok(Conn::H2(sender));
        }
        if self.auto {
            self.stats.cx_http1_total.inc();
        }
        Ok(Conn::H1(H1Conn::Own(h1::Conn::new(io))))
    }

    /// A new HTTP/2 connection for a request that found none: pending until it is up. A
    /// host's one h2 connection is always allowed, as Envoy allows a host with none.
    async fn connect_h2(&self) -> Result<http2::SendRequest<ReqBody>, UpstreamError> {
        let Some(_pending) = self.breakers.pending(&self.stats.rq_pending_active) else {
            return Err(UpstreamError::PendingOverflow { addr: self.addr });
        };
        self.stats.rq_pending_total.inc();
        let Some(slot) = self.breakers.connection(true, true) else {
            return Err(UpstreamError::PendingOverflow { addr: self.addr });
        };
        self.stats.cx_http2_total.inc();
        let (io, _) = self.connect_tcp(slot).await?;
        let sender = self.h2_handshake(io).await?;
        *lock(&self.h2) = Some(sender.clone());
        Ok(sender)
    }

    async fn h2_handshake(&self, io: h1::Io) -> Result<http2::SendRequest<ReqBody>, UpstreamError> {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(self.h2_options.initial_stream_window_size)
            .initial_connection_window_size(self.h2_options.initial_connection_window_size)
            .header_table_size(self.h2_options.hpack_table_size)
            .max_send_buf_size(self.buffer_limit)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|source| UpstreamError::Handshake { addr: self.addr, source })?;
        self.drive(conn);
        Ok(sender)
    }

    async fn send_h2(&self, mut req: Request<ReqBody>) -> Result<UpstreamResponse, UpstreamError> {
        let existing = lock(&self.h2).as_ref().filter(|s| !s.is_closed()).cloned();
        let sender = match existing {
            Some(s) => s,
            None => match req.body_mut().read_while(self.connect_h2()).await {
                Ok(s) => s,
                Err(e) => return Err(unsent(req, e)),
            },
        };
        self.send_on_h2(sender, req).await
    }

    async fn send_on_h2(
        &self,
        mut sender: http2::SendRequest<ReqBody>,
        req: Request<ReqBody>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        if let Some(failure) = req.body().failure() {
            return Err(UpstreamError::DownstreamBody { addr: self.addr, failure });
        }
        sender.ready().await.map_err(|source| UpstreamError::Reset { addr: self.addr, source: Box::new(source) })?;
        let resp = sender.send_request(req).await.map_err(|e| self.sent_error(e))?;
        Ok(resp.map(UpstreamBody::Hyper))
    }
}

/// An HTTP/1.1 request (as the forwarder builds it for an `auto_config` cluster) made an
/// HTTP/2 one: its `host` becomes the `:authority`, under `https` (ALPN means TLS).
fn as_h2(req: &mut Request<ReqBody>) {
    *req.version_mut() = http::Version::HTTP_2;
    let Some(host) = req.headers_mut().remove(http::header::HOST) else { return };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Ok(uri) = http::Uri::builder().scheme("https").authority(host.as_bytes()).path_and_query(path).build() {
        *req.uri_mut() = uri;
    }
}

/// A request that never reached the upstream: what the client already sent of its body is
/// read (and counted for the access log) before it is dropped.
fn unsent(mut req: Request<ReqBody>, e: UpstreamError) -> UpstreamError {
    req.body_mut().read_ready();
    e
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl h1::decode::Home for Pool {
    fn take_back(self: Arc<Self>, conn: Box<h1::Conn>) {
        self.keep(H1Conn::Own(conn));
    }
}

impl Drop for Pool {
    /// Its idle watcher, if one runs, ends.
    fn drop(&mut self) {
        self.idle_signal.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::upstream::fake::{self, FakeUpstream};

    impl Pool {
        /// The read and request buffer capacities of the own client's idle connections.
        fn idle_buffers(&self) -> Vec<(usize, usize)> {
            lock(&self.idle)
                .iter()
                .filter_map(|i| match &i.conn {
                    H1Conn::Own(c) => Some(c.buffer_capacity()),
                    H1Conn::Hyper(_) => None,
                })
                .collect()
        }
    }

    #[tokio::test]
    async fn an_idle_connection_whose_buffers_were_released_carries_the_next_request() {
        let up = FakeUpstream::new([]);
        let (cluster, _store) = fake::cluster("", 1, &up);
        let pool = Arc::clone(&cluster.hosts.load().all[0].pool);
        for round in 0..2 {
            let req = Request::builder().uri("/").header("host", "h").body(ReqBody::Full(None)).unwrap();
            let resp = pool.send(req).await.unwrap_or_else(|e| panic!("request {round}: {e}"));
            assert_eq!(resp.status(), 200);
            assert!(resp.into_body().collect().await.is_ok());
            let before = pool.idle_buffers();
            assert!(matches!(before[..], [(r, w)] if r > 0 && w > 0), "kept with its buffers: {before:?}");
            cluster.release_idle_buffers();
            assert_eq!(pool.idle_buffers(), [(0, 0)]);
        }
        // The second request went on the same connection.
        assert_eq!(up.connections(), 1);
        assert_eq!(up.seen().len(), 2);
    }
}
