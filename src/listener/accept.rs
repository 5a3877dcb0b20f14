//! A new connection's first steps: the listener filters (bounded by
//! `listener_filters_timeout`), the choice of its filter chain, and the hand-over to the
//! chain's terminal network filter.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{chain_match, http_conn, idle, inspect, tcp_conn, Drain};
use crate::proxy::ConnCtx;
use crate::server::ProcessState;
use crate::snapshot::ListenerRt;
use crate::stats::GaugeGuard;

/// Runs the listener filters, chooses the connection's filter chain and hands the connection
/// to the chain's terminal network filter.
pub(super) async fn accept_connection(
    mut stream: TcpStream,
    remote: SocketAddr,
    current: Arc<ListenerRt>,
    shared: Arc<ProcessState>,
    name: Arc<str>,
    drain: Drain,
    stop: watch::Receiver<bool>,
) {
    let cfg = &current.config;
    let lstats = current.stats.clone();
    let local = stream.local_addr().unwrap_or(cfg.address);
    let mut first = Vec::new();
    let detected = if cfg.listener_filters.is_empty() {
        inspect::Detected::default()
    } else {
        let _pre = GaugeGuard::new(&lstats.downstream_pre_cx_active);
        let (filters, timeout) = (&cfg.listener_filters, cfg.listener_filters_timeout);
        match inspect::run(&mut stream, filters, timeout, &mut first, lstats.tls_inspector.as_ref()).await {
            inspect::Outcome::Done(d) => d,
            inspect::Outcome::TimedOut(d) if cfg.continue_on_listener_filters_timeout => {
                lstats.downstream_pre_cx_timeout.inc();
                d
            }
            inspect::Outcome::TimedOut(_) => {
                lstats.downstream_pre_cx_timeout.inc();
                return;
            }
            inspect::Outcome::RemoteClose => {
                lstats.downstream_listener_filter_remote_close.inc();
                return;
            }
            inspect::Outcome::Error => {
                lstats.downstream_listener_filter_error.inc();
                return;
            }
        }
    };
    let info = chain_match::ConnInfo {
        local,
        remote,
        server_name: detected.server_name.as_deref(),
        transport_protocol: detected.transport_protocol,
        application_protocols: &detected.application_protocols,
    };
    let chosen = chain_match::select(cfg, &info).and_then(|i| Some((current.chains.get(i)?, cfg.chains().nth(i)?)));
    let Some((chain, chain_cfg)) = chosen else {
        tracing::debug!(listener.name = %name, client.addr = %remote, "no filter chain matched; closing");
        lstats.no_filter_chain_match.inc();
        return;
    };
    if let crate::snapshot::Terminal::Tcp(proxy) = &chain.terminal {
        let tls = match (&chain_cfg.tls, &current.ssl) {
            (Some(t), Some(s)) => Some((Arc::clone(t), Arc::clone(s), detected.server_name.clone())),
            _ => None,
        };
        let conn = tcp_conn::TcpConn {
            tls,
            retire: chain.life.subscribe(),
            proxy: Arc::clone(proxy),
            stream,
            first,
            shared,
            lstats,
            addrs: (remote, local),
        };
        drop(current);
        tcp_conn::serve_tcp(conn, drain, stop).await;
        return;
    }
    if chain.hcm().is_none() {
        // A chain without network filters: Envoy counts it and closes the connection.
        lstats.downstream_cx_total.inc();
        lstats.network_extension_config_missing.inc();
        lstats.downstream_cx_destroy.inc();
        return;
    }
    let tls = match (&chain_cfg.tls, &current.ssl) {
        (Some(t), Some(s)) => Some((Arc::clone(t), Arc::clone(s), detected.server_name.clone())),
        _ => None,
    };
    let retire = chain.life.subscribe();
    let ctx = Arc::new(ConnCtx {
        shared,
        local,
        listener_name: name,
        listener: Arc::downgrade(&current),
        chain_key: chain.key,
        chain: Arc::clone(&chain.life),
        remote,
        draining: std::sync::atomic::AtomicBool::new(false),
        h1_requests: std::sync::atomic::AtomicU64::new(0),
        head_flaw: std::sync::OnceLock::new(),
        warned_limits: std::sync::atomic::AtomicBool::new(false),
        activity: idle::ConnActivity::new(),
        stream_watch: Default::default(),
        tunnel: Default::default(),
        rate_limit_buckets: Default::default(),
        tls: std::sync::OnceLock::new(),
    });
    drop(current);
    let _ = stream.set_nodelay(true);
    http_conn::serve_connection(stream, tls, first, ctx, lstats, drain, stop, retire).await;
}
