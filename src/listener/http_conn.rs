//! A connection served by its chain's HTTP connection manager: the first bytes read (and
//! checked by the head scanner) before hyper sees them, hyper's HTTP/1.1 / h2 server built from
//! the manager's settings, and the connection's life after that: the process drain, the
//! listener's removal, a reload retiring its chain, the admin's drain-close, the idle timeout
//! and its drain.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::codec_reply::CodecReplies;
use super::downstream::Downstream;
use super::gated::gated;
use super::head_scan::{HeadScan, HeadTimeout, ScanIo};
use super::prefixed::PrefixedIo;
use super::served::{maybe_h2, Served, H2_PREFACE_LINE};
use super::{idle, Drain};
use crate::config::model::CodecType;
use crate::proxy::{handle, ConnCtx};
use crate::snapshot::ListenerStats;
use crate::stats::io::CountedIo;
use crate::stats::GaugeGuard;

/// Serves a connection with its chain's HTTP connection manager; `first` holds what the
/// listener filters read.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve_connection(
    stream: TcpStream,
    tls: Option<(Arc<crate::tls::ServerTls>, Arc<crate::tls::stats::SslStats>, Option<String>)>,
    first: Vec<u8>,
    ctx: Arc<ConnCtx>,
    lstats: ListenerStats,
    drain: Drain,
    mut stop: watch::Receiver<bool>,
    mut retire: watch::Receiver<bool>,
) {
    let _alive = drain.alive;
    let mut shutdown = drain.shutdown;
    let mut admin = drain.admin;
    let mut admin_open = true;
    // Connections opened while the admin asks for drain-close close after their first response.
    let mut admin_close = admin.borrow_and_update().drain_close();
    if admin_close {
        ctx.draining.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let opened = std::time::Instant::now();
    lstats.downstream_cx_total.inc();
    let _l_active = GaugeGuard::new(&lstats.downstream_cx_active);
    let _total = crate::idle_release::OpenConnection::new(&ctx.shared);
    let Some(hcm) = ctx.hcm(&ctx.shared.snapshot.load()) else { return };
    let hstats = &hcm.stats;
    let hcm_cx_length = hstats.downstream_cx_length_ms.clone();
    let record_length = |h: &crate::stats::Histogram| {
        let ms = opened.elapsed();
        lstats.downstream_cx_length_ms.record_duration(ms);
        h.record_duration(ms);
    };
    hstats.downstream_cx_total.inc();
    let _h_active = GaugeGuard::new(&hstats.downstream_cx_active);
    let cfg = &hcm.config;

    let _ssl_active;
    let (mut stream, first) = match tls {
        None => (Downstream::Plain(stream), first),
        Some((tls, ssl, requested)) => {
            hstats.downstream_cx_ssl_total.inc();
            _ssl_active = GaugeGuard::new(&hstats.downstream_cx_ssl_active);
            let io = PrefixedIo::new(Bytes::from(first), stream);
            match crate::tls::accept::handshake(io, &tls, &ssl, requested).await {
                Ok((s, session)) => {
                    let _ = ctx.tls.set(Arc::new(session));
                    (Downstream::Tls(Box::new(s)), Vec::new())
                }
                Err(e) => {
                    tracing::debug!(client.addr = %ctx.remote, error = %e, "TLS handshake failed; closing");
                    lstats.downstream_cx_destroy.inc();
                    hstats.downstream_cx_destroy.inc();
                    record_length(&hcm_cx_length);
                    return;
                }
            }
        }
    };
    // Read what the client sent first (unless the listener filters did); it goes back in
    // front of the stream for hyper.
    let mut first = if first.is_empty() {
        let mut first = vec![0u8; 4096];
        // A connection that sends nothing is idle too, but never kept past a minute.
        let first_wait = cfg.idle_timeout.map_or(FIRST_BYTES_WAIT, |i| (i + cfg.drain_timeout).min(FIRST_BYTES_WAIT));
        let n = match tokio::time::timeout(first_wait, stream.read(&mut first)).await {
            Ok(Ok(n)) if n > 0 => n,
            res => {
                if res.is_err() && first_wait < FIRST_BYTES_WAIT {
                    hstats.downstream_cx_idle_timeout.inc();
                }
                lstats.downstream_cx_destroy.inc();
                hstats.downstream_cx_destroy.inc();
                record_length(&hcm_cx_length);
                return;
            }
        };
        first.truncate(n);
        first
    } else {
        first
    };
    hstats.downstream_cx_rx_bytes_total.add(first.len() as u64);
    let is_h2 = first.starts_with(H2_PREFACE_LINE) || cfg.codec_type == CodecType::Http2;
    let maybe_h2_start = maybe_h2(&first);
    if is_h2 {
        hstats.downstream_cx_http2_total.inc();
    } else {
        hstats.downstream_cx_http1_total.inc();
    }

    let counted = CountedIo::new(
        stream,
        hstats.downstream_cx_rx_bytes_total.clone(),
        hstats.downstream_cx_tx_bytes_total.clone(),
    );
    let header_bytes = (cfg.max_request_headers_kb as usize * 1024).max(8192);
    // The first bytes are scanned here, before hyper's h2 detection takes a piece of them:
    // a refused version must be rewritten while no byte of its line has reached hyper.
    let mut scan = (!is_h2).then(|| HeadScan::new(header_bytes, cfg.accept_http_10));
    if let Some(flagged) = scan.as_mut().and_then(|s| s.feed(&mut first)) {
        let _ = ctx.head_flaw.set(flagged);
    }
    let head_timeout = cfg.stream_idle_timeout.filter(|_| !is_h2).map(|t| HeadTimeout::new(t, hcm.server_name.clone()));
    let scanned = ScanIo::new(counted, scan, Arc::clone(&ctx), head_timeout);
    let prefixed = PrefixedIo::new(Bytes::from(first), scanned);
    let io = TokioIo::new(CodecReplies::new(prefixed, hcm.server_name.clone(), Arc::clone(&ctx)));
    let max_headers = cfg.max_headers_count as usize;
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // No header read timeout: hyper's also runs while a keep-alive connection waits for its
    // next request (it closed them after 30 s); the head in progress has `HeadTimeout`.
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(header_bytes)
        .max_headers(max_headers)
        .keep_alive(true);
    // Without the preface's start, an AUTO connection is HTTP/1.1 for good.
    let http1_only = cfg.codec_type == CodecType::Http1 || (cfg.codec_type == CodecType::Auto && !maybe_h2_start);
    let detecting = (!http1_only).then(|| detecting_builder(cfg, header_bytes));
    let idle_timeout = cfg.idle_timeout;
    // HTTP/1 requests time out by the connection's one stream timer (h2 streams run at once).
    let stream_idle = cfg.stream_idle_timeout.filter(|_| !is_h2);
    let drain_timeout = cfg.drain_timeout;
    drop(hcm);
    let svc_ctx = Arc::clone(&ctx);
    let service = service_fn(move |req| handle(Arc::clone(&svc_ctx), req));
    let conn = match &detecting {
        None => Served::Http1 { conn: http1.serve_connection(io, service).with_upgrades() },
        Some(builder) => Served::Detecting { conn: builder.serve_connection_with_upgrades(io, service) },
    };
    tokio::pin!(conn);
    let mut draining = false;
    let mut stopping = false;
    let mut retire_open = true;
    // Set once the listener stops: past it, the connection is closed whatever it is doing.
    let drain_deadline = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
    tokio::pin!(drain_deadline);
    // The connection's idle timeout, then its drain: Envoy drains an idle connection for the
    // `drain_timeout` (HTTP/1.1 answers carry `connection: close`) before it closes it.
    let mut idle = IdleState::Watching;
    let idle_drain = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
    tokio::pin!(idle_drain);
    let stream_watch = async {
        match stream_idle {
            Some(period) => ctx.stream_watch.drive(period).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stream_watch);
    // Every branch but the connection's behind a gate: the task wakes for each of the
    // connection's reads and writes, and `select!` polls every branch each time.
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(client.addr = %ctx.remote, error = %e, "downstream connection error");
                }
                break;
            }
            _ = gated(shutdown.changed()), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            changed = gated(stop.changed()), if !draining && !stopping => {
                draining = true;
                if changed.is_err() {
                    // The listener manager is gone: the process is stopping.
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                } else {
                    // The listener left the configuration: HTTP/1.1 answers its next response
                    // with `connection: close`, h2 gets a GOAWAY; both are cut after the drain
                    // time.
                    ctx.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                    if is_h2 {
                        conn.as_mut().graceful_shutdown();
                    }
                    drain_deadline.as_mut().reset(tokio::time::Instant::now() + ctx.shared.drain_time);
                }
            }
            changed = gated(retire.changed()), if retire_open && !draining && !stopping => {
                if changed.is_err() {
                    // Every version of the chain is gone: only at exit.
                    retire_open = false;
                    continue;
                }
                if !*retire.borrow_and_update() {
                    continue;
                }
                // A reload changed or removed this connection's chain: it keeps its chain's
                // last version and drains, as the connections of a removed listener do.
                draining = true;
                ctx.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                if is_h2 {
                    conn.as_mut().graceful_shutdown();
                }
                drain_deadline.as_mut().reset(tokio::time::Instant::now() + ctx.shared.drain_time);
            }
            changed = gated(admin.changed()), if admin_open && !stopping => {
                if changed.is_err() {
                    admin_open = false;
                    continue;
                }
                // Envoy's drain-close: `/healthcheck/fail` or `/drain_listeners` close HTTP/1.1
                // connections after their next response and send h2 a GOAWAY;
                // `/healthcheck/ok` lifts it for HTTP/1.1.
                let close = admin.borrow_and_update().drain_close();
                if close != admin_close {
                    admin_close = close;
                    ctx.draining.store(close || draining, std::sync::atomic::Ordering::Relaxed);
                    if close && is_h2 {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            _ = gated(drain_deadline.as_mut()) => {
                tracing::debug!(client.addr = %ctx.remote, "drain time over; closing connection");
                break;
            }
            () = gated(idle::idle_expired(&ctx.activity, idle_timeout)), if idle == IdleState::Watching && !stopping => {
                idle = IdleState::Draining;
                if let Some(hcm) = ctx.hcm(&ctx.shared.snapshot.load()) {
                    hcm.stats.downstream_cx_idle_timeout.inc();
                }
                ctx.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                idle_drain.as_mut().reset(tokio::time::Instant::now() + drain_timeout);
            }
            () = gated(stream_watch.as_mut()) => {}
            () = &mut idle_drain, if idle == IdleState::Draining => {
                // Closes an idle HTTP/1.1 connection at once, or after the answer in progress;
                // h2 gets its GOAWAY and closes once its streams are done.
                idle = IdleState::Closing;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    // An upgraded connection lives on in its tunnel, still counted as this connection, until
    // the drain time of a drain that began before or during it is over (as Envoy closes a
    // drained listener's connections, tunnels included).
    let drained = async {
        if !draining && !stopping {
            let retired = async {
                if retire_open && retire.wait_for(|r| *r).await.is_ok() {
                    return;
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        // The process is stopping: `shutdown` ends the tunnel.
                        std::future::pending::<()>().await;
                    }
                }
                () = retired => {}
            }
            drain_deadline.as_mut().reset(tokio::time::Instant::now() + ctx.shared.drain_time);
        }
        (&mut drain_deadline).await;
    };
    ctx.tunnel.hold(&mut shutdown, drained).await;
    lstats.downstream_cx_destroy.inc();
    record_length(&hcm_cx_length);
    hstats_destroy(&ctx);
}

/// hyper-util's server for connections that may be h2: HTTP/1.1 as the HTTP/1.1-only one,
/// h2 from the manager's settings.
fn detecting_builder(
    cfg: &crate::config::model::HttpConnectionManager,
    header_bytes: usize,
) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // As the HTTP/1.1-only server is set up.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(header_bytes)
        .max_headers(cfg.max_headers_count as usize)
        .keep_alive(true);
    let h2 = &cfg.http2;
    builder
        .http2()
        .timer(TokioTimer::new())
        // Enforced per stream by the request path (a reset, as Envoy; h2 would answer 431
        // itself), so hyper's bound only caps what a header block may cost: 4x the limit.
        .max_header_list_size((header_bytes as u32).saturating_mul(4))
        // Envoy's default: no limit.
        .max_concurrent_streams(h2.max_concurrent_streams.unwrap_or(2_147_483_647))
        .initial_stream_window_size(h2.initial_stream_window_size)
        .initial_connection_window_size(h2.initial_connection_window_size);
    if h2.allow_connect {
        // RFC 8441: SETTINGS_ENABLE_CONNECT_PROTOCOL, so clients may send WebSocket over h2.
        builder.http2().enable_connect_protocol();
    }
    match cfg.codec_type {
        CodecType::Http2 => builder.http2_only(),
        _ => builder,
    }
}

/// The longest a new connection may take to send its first bytes.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq)]
enum IdleState {
    Watching,
    Draining,
    Closing,
}

fn hstats_destroy(ctx: &ConnCtx) {
    if let Some(hcm) = ctx.hcm(&ctx.shared.snapshot.load()) {
        hcm.stats.downstream_cx_destroy.inc();
    }
}
