//! HTTP/1.1 upgrades (WebSocket and the like) as Envoy's connection manager and router handle
//! them, and WebSocket over HTTP/2 (RFC 8441 extended CONNECT, made the same HTTP/1.1 upgrade): whether `upgrade_configs` allow the request's `Upgrade` type (the route's entry
//! first, then the connection manager's), the `Upgrade` and `Connection` headers kept across
//! the hop, and, once the upstream answers 101, the tunnel that relays bytes both ways until
//! either side closes or the stream idle timeout passes. The route's timeout does not cut an
//! established tunnel (Envoy's does not either). The tunnel's access-log line is written when
//! it closes, with its bytes, its whole duration and `UC`, `DC` or `SI`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Notify};

use super::access::{PendingLog, RqTiming};
use super::ConnCtx;
use crate::config::model::UpgradeConfig;
use crate::stats::{Counter, GaugeGuard};

/// An upgrade request on its way: the headers the hop-by-hop strip removes and the upstream
/// must see, then the upstream's side of the tunnel once it answered 101.
pub struct UpgradeRequest {
    pub upgrade: HeaderValue,
    pub connection: HeaderValue,
    pub upstream: Option<OnUpgrade>,
    /// An HTTP/2 extended CONNECT (RFC 8441) turned into this HTTP/1.1 upgrade; its 101
    /// goes back to the client as a 200.
    pub h2: bool,
}

impl UpgradeRequest {
    /// An HTTP/1.1 upgrade other than `h2c` (whose upgrade Envoy's codec declines, forwarding
    /// the request as plain HTTP).
    pub fn of(h: &HeaderMap) -> Option<Self> {
        if !super::headers::is_upgrade_request(h) {
            return None;
        }
        let upgrade = h.get(UPGRADE)?;
        if upgrade.as_bytes().eq_ignore_ascii_case(b"h2c") {
            return None;
        }
        Some(UpgradeRequest {
            upgrade: upgrade.clone(),
            connection: h.get(CONNECTION)?.clone(),
            upstream: None,
            h2: false,
        })
    }

    /// An HTTP/2 extended CONNECT (RFC 8441, `:protocol`), which hyper lets through only when
    /// `allow_connect` enabled it: made the HTTP/1.1 upgrade Envoy's codec makes of it (`GET`
    /// with `Upgrade: <protocol>` and `Connection: upgrade`), so routes, `upgrade_configs`,
    /// filters and the upstream see what an HTTP/1.1 client would have sent.
    pub fn from_h2_connect(parts: &mut http::request::Parts) -> Option<Self> {
        if parts.method != http::Method::CONNECT {
            return None;
        }
        let protocol = parts.extensions.remove::<hyper::ext::Protocol>()?;
        let upgrade = HeaderValue::from_str(protocol.as_str()).ok()?;
        parts.method = http::Method::GET;
        Some(UpgradeRequest { upgrade, connection: HeaderValue::from_static("upgrade"), upstream: None, h2: true })
    }

    /// The upstream's 101 as Envoy's HTTP/2 codec answers an extended CONNECT: a 200 without
    /// the upgrade's connection headers.
    pub fn to_h2_answer(status: &mut http::StatusCode, h: &mut HeaderMap) {
        *status = http::StatusCode::OK;
        h.remove(UPGRADE);
        h.remove(CONNECTION);
    }

    /// Puts back what `strip_hop_by_hop` took from a message of the upgrade.
    pub fn restore(h: &mut HeaderMap, upgrade: HeaderValue, connection: HeaderValue) {
        h.insert(UPGRADE, upgrade);
        h.insert(CONNECTION, connection);
    }
}

/// Envoy's rule: the route's entry for the type decides when it has one (`enabled: false`
/// refuses even what the connection manager allows); else the connection manager's entry.
pub fn allowed(kind: &HeaderValue, route: Option<&[UpgradeConfig]>, hcm: &[UpgradeConfig]) -> bool {
    let find = |list: &[UpgradeConfig]| {
        list.iter().find(|c| kind.as_bytes().eq_ignore_ascii_case(c.upgrade_type.as_bytes())).map(|c| c.enabled)
    };
    match route.and_then(find) {
        Some(enabled) => enabled,
        None => find(hcm).unwrap_or(false),
    }
}

/// A connection's tunnel, if it has one: the listener keeps the connection (and its stats)
/// until the tunnel closes, and cuts the tunnel when the process stops.
#[derive(Default)]
pub struct TunnelWatch {
    open: AtomicBool,
    closed: Notify,
    cancel: Notify,
}

impl TunnelWatch {
    /// Holds the connection while its tunnel is open, or until the process stops or
    /// `drained` (the end of its listener's or chain's drain time) comes.
    pub async fn hold(&self, shutdown: &mut watch::Receiver<bool>, drained: impl std::future::Future<Output = ()>) {
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        let stop = async {
            // Bounded by the process: a closed channel is a stop too.
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            () = self.closed.notified() => {}
            () = async { tokio::select! { () = stop => {}, () = drained => {} } } => {
                self.cancel.notify_one();
                // The tunnel ends at its next poll; its log line is written then.
                let _ = tokio::time::timeout(Duration::from_secs(1), self.closed.notified()).await;
            }
        }
    }
}

/// Who ended a tunnel, as Envoy's response flags say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `UC`: the upstream closed (or failed).
    Upstream,
    /// `DC`: the client closed (or failed).
    Downstream,
    /// `SI`: no byte either way for the stream idle timeout.
    Idle,
    /// The process is stopping.
    Cancelled,
}

impl End {
    fn flag(self) -> &'static str {
        match self {
            End::Upstream => "UC",
            End::Downstream | End::Cancelled => "DC",
            End::Idle => "SI",
        }
    }
}

/// Everything a tunnel keeps from its request until it closes.
pub struct Tunnel {
    pub ctx: Arc<ConnCtx>,
    pub downstream: OnUpgrade,
    pub upstream: OnUpgrade,
    /// The connection manager's `stream_idle_timeout`, and its `downstream_rq_idle_timeout`.
    pub idle: Option<(Duration, Counter)>,
    pub log: Option<Box<PendingLog>>,
    /// The request stays in progress (`downstream_rq_active`, `downstream_cx_upgrades_active`,
    /// the connection's idle timer) while its tunnel is open.
    pub guards: (GaugeGuard, GaugeGuard, RqTiming),
}

impl Tunnel {
    /// Runs the tunnel on its own task, once hyper has written the 101 downstream.
    pub fn spawn(self) {
        self.ctx.tunnel.open.store(true, Ordering::Release);
        tokio::spawn(self.run());
    }

    async fn run(self) {
        let Tunnel { ctx, downstream, upstream, idle, mut log, guards } = self;
        let sides = tokio::join!(downstream, upstream);
        let (end, rx, tx) = match sides {
            (Ok(down), Ok(up)) => {
                let cancel = ctx.tunnel.cancel.notified();
                relay(TokioIo::new(down), TokioIo::new(up), idle.as_ref().map(|(d, _)| *d), cancel).await
            }
            // The client left before the 101 reached it, or the upstream's side was lost.
            (Err(_), _) => (End::Downstream, 0, 0),
            (_, Err(_)) => (End::Upstream, 0, 0),
        };
        if let (End::Idle, Some((_, counter))) = (end, &idle) {
            counter.inc();
        }
        if let Some(log) = log.as_mut() {
            log.trace.response_flags = end.flag();
            log.trace.rx_bytes = Some(Arc::new(AtomicU64::new(rx)));
            log.bytes_sent = tx;
            log.write();
        }
        drop(guards);
        ctx.tunnel.open.store(false, Ordering::Release);
        ctx.tunnel.closed.notify_one();
    }
}

/// Copies bytes both ways until one side closes or fails, no byte passes for `idle`, or
/// `cancel` fires; then both are dropped (closed). Returns who ended it and the bytes
/// received from the client and sent to it.
pub async fn relay<D, U>(
    down: D,
    up: U,
    idle: Option<Duration>,
    cancel: impl std::future::Future<Output = ()>,
) -> (End, u64, u64)
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut down_r, mut down_w) = tokio::io::split(down);
    let (mut up_r, mut up_w) = tokio::io::split(up);
    let (rx, tx) = (AtomicU64::new(0), AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    // Milliseconds since `start` of the last byte either way.
    let last = AtomicU64::new(0);
    let to_upstream = pump(&mut down_r, &mut up_w, &rx, &last, start);
    let to_downstream = pump(&mut up_r, &mut down_w, &tx, &last, start);
    let idle_watch = async {
        let Some(idle) = idle else { return std::future::pending().await };
        // Each turn sleeps until the idle time after the last byte; bounded by activity.
        loop {
            let at = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
            if tokio::time::Instant::now() >= at {
                return;
            }
            tokio::time::sleep_until(at).await;
        }
    };
    let end = tokio::select! {
        r = to_upstream => match r {
            Pumped::ReaderDone => End::Downstream,
            Pumped::WriterFailed => End::Upstream,
        },
        r = to_downstream => match r {
            Pumped::ReaderDone => End::Upstream,
            Pumped::WriterFailed => End::Downstream,
        },
        () = idle_watch => End::Idle,
        () = cancel => End::Cancelled,
    };
    if end == End::Upstream {
        // What the upstream sent is all written; the client sees the connection end.
        let _ = down_w.shutdown().await;
    }
    (end, rx.load(Ordering::Relaxed), tx.load(Ordering::Relaxed))
}

enum Pumped {
    /// The reading side closed or failed.
    ReaderDone,
    WriterFailed,
}

async fn pump<R, W>(r: &mut R, w: &mut W, count: &AtomicU64, last: &AtomicU64, start: tokio::time::Instant) -> Pumped
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    // Bounded by the peer: each turn moves at least one byte or ends.
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return Pumped::ReaderDone,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() || w.flush().await.is_err() {
            return Pumped::WriterFailed;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(t: &str, enabled: bool) -> UpgradeConfig {
        UpgradeConfig { upgrade_type: t.to_string(), enabled }
    }

    #[test]
    fn the_route_entry_decides_before_the_connection_manager() {
        let ws = HeaderValue::from_static("WebSocket");
        assert!(!allowed(&ws, None, &[]));
        assert!(allowed(&ws, None, &[cfg("websocket", true)]));
        assert!(!allowed(&ws, None, &[cfg("websocket", false)]));
        assert!(!allowed(&ws, None, &[cfg("other", true)]));
        assert!(allowed(&ws, Some(&[cfg("websocket", true)]), &[]));
        assert!(allowed(&ws, Some(&[cfg("websocket", true)]), &[cfg("websocket", false)]));
        assert!(!allowed(&ws, Some(&[cfg("websocket", false)]), &[cfg("websocket", true)]));
        assert!(allowed(&ws, Some(&[cfg("other", false)]), &[cfg("websocket", true)]));
    }

    #[test]
    fn h2c_and_bare_upgrade_headers_are_no_tunnel() {
        let mut h = HeaderMap::new();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(UpgradeRequest::of(&h).is_none(), "Connection must name it");
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(UpgradeRequest::of(&h).is_some());
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        assert!(UpgradeRequest::of(&h).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_pass_both_ways_until_the_upstream_closes() {
        let (down, mut client) = tokio::io::duplex(64);
        let (up, mut server) = tokio::io::duplex(64);
        let relay = tokio::spawn(relay(down, up, Some(Duration::from_secs(5)), std::future::pending()));
        let mut buf = [0u8; 5];
        client.write_all(b"hello").await.ok();
        server.read_exact(&mut buf).await.ok();
        assert_eq!(&buf, b"hello");
        server.write_all(b"hi!").await.ok();
        drop(server);
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.ok();
        assert_eq!(back, b"hi!", "the upstream's last bytes arrive, then the end");
        assert_eq!(relay.await.ok(), Some((End::Upstream, 5, 3)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_client_closing_ends_the_tunnel_as_dc() {
        let (down, client) = tokio::io::duplex(64);
        let (up, _server) = tokio::io::duplex(64);
        drop(client);
        assert_eq!(relay(down, up, None, std::future::pending()).await, (End::Downstream, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_either_way_keeps_the_idle_timeout_away() {
        let (down, mut client) = tokio::io::duplex(64);
        let (up, mut server) = tokio::io::duplex(64);
        let started = tokio::time::Instant::now();
        let relay = tokio::spawn(relay(down, up, Some(Duration::from_secs(10)), std::future::pending()));
        let mut buf = [0u8; 1];
        for i in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            if i % 2 == 0 {
                client.write_all(b"x").await.ok();
                server.read_exact(&mut buf).await.ok();
            } else {
                server.write_all(b"y").await.ok();
                client.read_exact(&mut buf).await.ok();
            }
        }
        let (end, rx, tx) = relay.await.unwrap_or((End::Cancelled, 0, 0));
        assert_eq!((end, rx, tx), (End::Idle, 2, 1));
        assert_eq!(started.elapsed(), Duration::from_secs(28), "10 s after the last byte at 18 s");
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_ends_the_tunnel() {
        let (down, _client) = tokio::io::duplex(64);
        let (up, _server) = tokio::io::duplex(64);
        let out = relay(down, up, None, tokio::time::sleep(Duration::from_secs(1))).await;
        assert_eq!(out, (End::Cancelled, 0, 0));
    }
}
