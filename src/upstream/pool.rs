//! Connections to one upstream host: a keep-alive pool of HTTP/1.1 connections, or one shared
//! HTTP/2 connection.
//!
//! An HTTP/1.1 connection goes back to the idle list only when hyper says it is ready for the
//! next request (the response body was read to its end); a request that finds an idle
//! connection already closed is sent again on a new one, since it never left the proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::config::model::UpstreamProtocol;
use crate::proxy::body::ReqBody;
use crate::stats::io::CountedIo;
use crate::stats::{Counter, Gauge, GaugeGuard, Histogram};

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
    Reset { addr: SocketAddr, source: hyper::Error },
}

/// Connection counters shared by a cluster's hosts, plus the host's own.
#[derive(Clone)]
pub struct ConnStats {
    pub cx_total: Counter,
    pub cx_active: Gauge,
    pub cx_connect_fail: Counter,
    pub cx_connect_timeout: Counter,
    pub cx_destroy: Counter,
    pub cx_rx_bytes_total: Counter,
    pub cx_tx_bytes_total: Counter,
    pub cx_connect_ms: Histogram,
    pub cx_length_ms: Histogram,
    /// Requests that waited for a new connection (Envoy's pending requests).
    pub rq_pending_total: Counter,
    pub rq_pending_active: Gauge,
    /// Pending requests that failed because their connection could not be made.
    pub rq_pending_failure_eject: Counter,
    pub host_cx_total: Counter,
    pub host_cx_active: Gauge,
    pub host_cx_connect_fail: Counter,
}

pub struct Pool {
    addr: SocketAddr,
    protocol: UpstreamProtocol,
    connect_timeout: Duration,
    stats: ConnStats,
    idle: Mutex<Vec<http1::SendRequest<ReqBody>>>,
    h2: Mutex<Option<http2::SendRequest<ReqBody>>>,
}

/// Idle HTTP/1.1 connections kept per host; more are closed when they come back.
const MAX_IDLE: usize = 256;

impl Pool {
    pub fn new(addr: SocketAddr, protocol: UpstreamProtocol, connect_timeout: Duration, stats: ConnStats) -> Self {
        Pool { addr, protocol, connect_timeout, stats, idle: Mutex::new(Vec::new()), h2: Mutex::new(None) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a request on a pooled or new connection.
    pub async fn send(self: &Arc<Self>, req: Request<ReqBody>) -> Result<Response<Incoming>, UpstreamError> {
        match self.protocol {
            UpstreamProtocol::Http1 => self.send_h1(req).await,
            UpstreamProtocol::Http2 => self.send_h2(req).await,
        }
    }

    /// Closes idle connections (a cluster removed or a host gone).
    pub fn close_idle(&self) {
        lock(&self.idle).clear();
        lock(&self.h2).take();
    }

    async fn send_h1(self: &Arc<Self>, mut req: Request<ReqBody>) -> Result<Response<Incoming>, UpstreamError> {
        // Every idle connection may have been closed by the upstream meanwhile; after that
        // many tries a new connection is made, so the loop is bounded.
        for _ in 0..=MAX_IDLE {
            let sender = lock(&self.idle).pop();
            let mut sender = match sender {
                Some(s) if !s.is_closed() => s,
                Some(_) => continue,
                None => match req.body_mut().read_while(self.connect_h1()).await {
                    Ok(s) => s,
                    Err(e) => return Err(unsent(req, e)),
                },
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.recycle(sender);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    // Never sent: the connection was dead before we wrote. Try another.
                    Some(r) => req = r,
                    None => return Err(UpstreamError::Reset { addr: self.addr, source: e.into_error() }),
                },
            }
        }
        let mut sender = match req.body_mut().read_while(self.connect_h1()).await {
            Ok(s) => s,
            Err(e) => return Err(unsent(req, e)),
        };
        sender.send_request(req).await.map_err(|source| UpstreamError::Reset { addr: self.addr, source })
    }

    fn recycle(self: &Arc<Self>, mut sender: http1::SendRequest<ReqBody>) {
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let mut idle = lock(&pool.idle);
                if idle.len() < MAX_IDLE {
                    idle.push(sender);
                }
            }
        });
    }

    /// Connects for a request that found no connection to use: the request is pending
    /// until the connection is up.
    async fn connect_tcp(&self) -> Result<TokioIo<CountedIo<TcpStream>>, UpstreamError> {
        self.stats.cx_total.inc();
        self.stats.host_cx_total.inc();
        self.stats.rq_pending_total.inc();
        let _pending = GaugeGuard::new(&self.stats.rq_pending_active);
        let addr = self.addr;
        let started = Instant::now();
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
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
        let _ = stream.set_nodelay(true);
        let counted =
            CountedIo::new(stream, self.stats.cx_rx_bytes_total.clone(), self.stats.cx_tx_bytes_total.clone());
        Ok(TokioIo::new(counted))
    }

    fn track<F>(&self, conn: F)
    where
        F: std::future::Future + Send + 'static,
    {
        let active = GaugeGuard::new(&self.stats.cx_active);
        let host_active = GaugeGuard::new(&self.stats.host_cx_active);
        let destroy = self.stats.cx_destroy.clone();
        let length = self.stats.cx_length_ms.clone();
        let opened = Instant::now();
        tokio::spawn(async move {
            let _ = conn.await;
            length.record_duration(opened.elapsed());
            destroy.inc();
            drop((active, host_active));
        });
    }

    async fn connect_h1(&self) -> Result<http1::SendRequest<ReqBody>, UpstreamError> {
        let io = self.connect_tcp().await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|source| UpstreamError::Handshake { addr: self.addr, source })?;
        self.track(conn);
        Ok(sender)
    }

    async fn send_h2(&self, mut req: Request<ReqBody>) -> Result<Response<Incoming>, UpstreamError> {
        let existing = lock(&self.h2).as_ref().filter(|s| !s.is_closed()).cloned();
        let mut sender = match existing {
            Some(s) => s,
            None => {
                let io = match req.body_mut().read_while(self.connect_tcp()).await {
                    Ok(io) => io,
                    Err(e) => return Err(unsent(req, e)),
                };
                let handshake = http2::Builder::new(TokioExecutor::new()).handshake(io).await;
                let (sender, conn) = match handshake {
                    Ok(h) => h,
                    Err(source) => return Err(unsent(req, UpstreamError::Handshake { addr: self.addr, source })),
                };
                self.track(conn);
                *lock(&self.h2) = Some(sender.clone());
                sender
            }
        };
        sender.ready().await.map_err(|source| UpstreamError::Reset { addr: self.addr, source })?;
        sender.send_request(req).await.map_err(|source| UpstreamError::Reset { addr: self.addr, source })
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
