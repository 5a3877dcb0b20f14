//! `envoy.filters.network.tcp_proxy`: a filter chain's terminal network filter that relays a
//! connection's bytes to a host of one cluster (or of one of `weighted_clusters`, chosen per
//! connection). The connection is made under the cluster's circuit breakers with up to
//! `max_connect_attempts` tries and counted in the cluster's `upstream_cx_*`; the relay
//! ([`session`]) passes half-closes through and ends at `idle_timeout` (1 h by default, as in
//! Envoy). Stats are Envoy's `tcp.<stat_prefix>.*`; access logs get one line per connection
//! in Envoy's format, the HTTP operators rendering `-`.
//!
//! A connection holds its [`TcpProxyRt`] for its whole life: its stats and logs stay those of
//! the chain that accepted it, even after a reload replaced the chain.

pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::access_log::{LineFormat, LogContext, LogWriters, Sink};
use crate::config::model;
use crate::proxy::Logger;
use crate::snapshot::Snapshot;
use crate::stats::{Counter, Gauge, Store};
use crate::upstream::{Local, UpstreamError};
use session::End;

/// Envoy's `tcp.<stat_prefix>.*`.
pub struct TcpStats {
    pub downstream_cx_total: Counter,
    /// No cluster of that name (flag `NC`).
    pub downstream_cx_no_route: Counter,
    pub downstream_cx_rx_bytes_total: Counter,
    pub downstream_cx_tx_bytes_total: Counter,
    pub idle_timeout: Counter,
    /// Always 0: a relay writes what it reads before reading more, so nothing is left to
    /// flush upstream once the downstream is gone.
    pub upstream_flush_total: Counter,
    pub upstream_flush_active: Gauge,
    /// Envoy's other `tcp.*` names, shown at 0 (legate has no such limits or buffers).
    _inert: Vec<Counter>,
    _inert_gauges: Vec<Gauge>,
}

impl TcpStats {
    fn new(store: &Store, prefix: &str) -> Self {
        let c = |s: &str| store.counter(&format!("tcp.{prefix}.{s}"));
        let g = |s: &str| store.gauge(&format!("tcp.{prefix}.{s}"));
        TcpStats {
            downstream_cx_total: c("downstream_cx_total"),
            downstream_cx_no_route: c("downstream_cx_no_route"),
            downstream_cx_rx_bytes_total: c("downstream_cx_rx_bytes_total"),
            downstream_cx_tx_bytes_total: c("downstream_cx_tx_bytes_total"),
            idle_timeout: c("idle_timeout"),
            upstream_flush_total: c("upstream_flush_total"),
            upstream_flush_active: g("upstream_flush_active"),
            _inert: [
                "downstream_cx_drain_close",
                "downstream_cx_overload_close",
                "downstream_flow_control_paused_reading_total",
                "downstream_flow_control_resumed_reading_total",
                "early_data_received_count_total",
                "max_downstream_connection_duration",
                "route_delayed_total",
            ]
            .map(c)
            .into(),
            _inert_gauges: ["downstream_cx_rx_bytes_buffered", "downstream_cx_tx_bytes_buffered"].map(g).into(),
        }
    }
}

/// A chain's `tcp_proxy` as connections use it.
pub struct TcpProxyRt {
    pub config: model::TcpProxy,
    pub stats: TcpStats,
    pub access_logs: Arc<[Logger]>,
    total_weight: u64,
}

impl TcpProxyRt {
    /// `writers` is `None` when only validating (no file is opened).
    pub fn build(config: &model::TcpProxy, store: &Arc<Store>, writers: Option<&LogWriters>) -> Result<Self, String> {
        let mut loggers = Vec::with_capacity(config.access_logs.len());
        for (i, log) in config.access_logs.iter().enumerate() {
            let format = LineFormat::build(&log.format).map_err(|e| format!("tcp_proxy access_log[{i}]: {e}"))?;
            let writer = match writers {
                Some(w) => Some(
                    w.get(Sink::from(&log.sink))
                        .map_err(|e| format!("tcp_proxy access_log[{i}]: cannot open {:?}: {e}", log.sink))?,
                ),
                None => None,
            };
            loggers.push(Logger { format, writer });
        }
        Ok(TcpProxyRt {
            config: config.clone(),
            stats: TcpStats::new(store, &config.stat_prefix),
            access_logs: loggers.into(),
            total_weight: config.clusters.iter().map(|(_, w)| u64::from(*w)).sum(),
        })
    }

    /// The cluster for a new connection: weighted choice among `weighted_clusters`.
    fn pick_cluster(&self) -> &str {
        let clusters = &self.config.clusters;
        if clusters.len() > 1 && self.total_weight > 0 {
            let mut r = rand::Rng::gen_range(&mut rand::thread_rng(), 0..self.total_weight);
            for (name, w) in clusters {
                if r < u64::from(*w) {
                    return name;
                }
                r -= u64::from(*w);
            }
        }
        clusters.first().map_or("", |(n, _)| n.as_str())
    }
}

/// What one relayed connection did, for its log line.
struct Outcome {
    flags: &'static str,
    upstream_host: Option<SocketAddr>,
    cluster: Option<Arc<crate::upstream::Cluster>>,
    rx: u64,
    tx: u64,
}

/// Serves a connection: connects upstream (up to `max_connect_attempts` times), relays until
/// the connection ends or `stop` fires, counts and logs it.
pub async fn serve<D>(
    down: D,
    proxy: Arc<TcpProxyRt>,
    snapshot: Arc<Snapshot>,
    (remote, local): (SocketAddr, SocketAddr),
    stop: impl std::future::Future<Output = ()>,
) where
    D: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    let (start, started) = (SystemTime::now(), Instant::now());
    let stats = &proxy.stats;
    stats.downstream_cx_total.inc();
    let name = proxy.pick_cluster();
    let mut out = Outcome { flags: "", upstream_host: None, cluster: None, rx: 0, tx: 0 };
    match snapshot.clusters.get(name).cloned() {
        None => {
            tracing::debug!(cluster = name, "tcp_proxy: no cluster of that name; closing");
            stats.downstream_cx_no_route.inc();
            out.flags = "NC";
        }
        Some(cluster) => {
            // The relay must not keep the snapshot (old route tables, removed clusters).
            drop(snapshot);
            let mut attempts = 0;
            let connected = loop {
                attempts += 1;
                let Some(host) = cluster.choose() else {
                    cluster.stats.upstream_cx_none_healthy.inc();
                    out.flags = "UH";
                    break None;
                };
                out.upstream_host = Some(host.addr);
                match host.pool.connect_raw().await {
                    Ok(up) => {
                        cluster.outlier_local(&host, Local::ConnectSuccessFinal);
                        break Some(up);
                    }
                    Err(UpstreamError::PendingOverflow { .. }) => {
                        out.flags = "UO";
                        break None;
                    }
                    Err(e) => {
                        // Envoy's tcp_proxy reports a connect timeout or failure to outlier
                        // detection (a 504 or 503 without the split).
                        let timeout = matches!(e, UpstreamError::ConnectTimeout { .. });
                        cluster.outlier_local(&host, if timeout { Local::Timeout } else { Local::ConnectFailed });
                        tracing::debug!(error = %e, attempt = attempts, "tcp_proxy: upstream connect failed");
                        out.flags = "UF";
                        if attempts >= proxy.config.max_connect_attempts {
                            cluster.stats.upstream_cx_connect_attempts_exceeded.inc();
                            break None;
                        }
                    }
                }
            };
            if let Some(up) = connected {
                out.flags = "";
                let counters = (&stats.downstream_cx_rx_bytes_total, &stats.downstream_cx_tx_bytes_total);
                let done = session::relay(down, up, proxy.config.idle_timeout, counters, stop).await;
                if done.end == End::IdleTimeout {
                    stats.idle_timeout.inc();
                }
                (out.rx, out.tx) = (done.rx, done.tx);
            }
            out.cluster = Some(cluster);
        }
    }
    log(&proxy, &out, start, started, remote, local);
}

fn log(proxy: &TcpProxyRt, out: &Outcome, start: SystemTime, started: Instant, remote: SocketAddr, local: SocketAddr) {
    if proxy.access_logs.is_empty() {
        return;
    }
    let no_headers = http::HeaderMap::new();
    let ctx = LogContext {
        start,
        request_headers: &no_headers,
        method: "",
        path: "",
        authority: "",
        scheme: "",
        protocol: None,
        response_code: None,
        response_code_details: None,
        response_headers: None,
        response_trailers: None,
        response_flags: out.flags,
        bytes_received: out.rx,
        bytes_sent: out.tx,
        tls: None,
        dynamic_metadata: None,
        local_reply_body: None,
        duration: Some(started.elapsed()),
        request_duration: None,
        response_duration: None,
        upstream_host: out.upstream_host,
        upstream_cluster: out.cluster.as_ref().map(|c| c.config.stat_name()),
        upstream_local_address: None,
        upstream_transport_failure_reason: None,
        upstream_request_attempt_count: 0,
        downstream_remote: remote,
        downstream_local: local,
        route_name: None,
    };
    for logger in proxy.access_logs.iter() {
        if let Some(w) = &logger.writer {
            let mut line = String::with_capacity(160);
            logger.format.render(&ctx, &mut line);
            w.send(line);
        }
    }
}
