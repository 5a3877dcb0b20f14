//! The immutable runtime snapshot: listeners' connection managers with compiled routes, and
//! clusters by name. Built off the request path, published with one `ArcSwap` store; a
//! request loads it once and finishes on it. It holds access-log writer handles; the
//! registry that opens (and reopens) their files is [`crate::access_log::LogWriters`].

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::access_log::{LineFormat, LogWriters, Sink};
use crate::config::model;
use crate::proxy::Logger;
use crate::routing::RouteTable;
use crate::stats::paired::{PairedCodes, PairedCounter};
use crate::stats::{Counter, Gauge, Histogram, Store};
use crate::upstream::Cluster;

/// Envoy's `http.<stat_prefix>.*`.
pub struct HcmStats {
    pub downstream_cx_total: Counter,
    pub downstream_cx_active: Gauge,
    pub downstream_cx_http1_total: Counter,
    pub downstream_cx_http2_total: Counter,
    /// Connections over TLS (a chain's `transport_socket`).
    pub downstream_cx_ssl_total: Counter,
    pub downstream_cx_ssl_active: Gauge,
    pub downstream_cx_destroy: Counter,
    pub downstream_cx_drain_close: Counter,
    pub downstream_cx_rx_bytes_total: Counter,
    pub downstream_cx_tx_bytes_total: Counter,
    pub downstream_cx_length_ms: Histogram,
    pub downstream_rq_total: Counter,
    pub downstream_rq_active: Gauge,
    pub downstream_rq_completed: PairedCounter,
    pub downstream_rq_http1_total: Counter,
    pub downstream_rq_http2_total: Counter,
    pub downstream_rq_timeout: Counter,
    pub downstream_rq_idle_timeout: Counter,
    /// A route's `max_stream_duration` ended the stream.
    pub downstream_rq_max_duration_reached: Counter,
    pub downstream_cx_idle_timeout: Counter,
    pub downstream_rq_rx_reset: Counter,
    pub downstream_rq_tx_reset: Counter,
    pub downstream_rq_time: Histogram,
    pub downstream_cx_upgrades_total: Counter,
    pub downstream_cx_upgrades_active: Gauge,
    /// Upgrades refused because neither the route nor the connection manager allows them.
    pub downstream_rq_ws_on_non_ws_route: Counter,
    pub rq_total: Counter,
    pub no_route: Counter,
    pub no_cluster: Counter,
    pub codes: PairedCodes,
}

impl HcmStats {
    /// `listener` is the stat name of the listener the manager serves.
    pub fn new(store: &Arc<Store>, prefix: &str, listener: &str) -> Self {
        let c = |s: &str| store.counter(&format!("http.{prefix}.{s}"));
        let g = |s: &str| store.gauge(&format!("http.{prefix}.{s}"));
        HcmStats {
            downstream_cx_total: c("downstream_cx_total"),
            downstream_cx_active: g("downstream_cx_active"),
            downstream_cx_http1_total: c("downstream_cx_http1_total"),
            downstream_cx_http2_total: c("downstream_cx_http2_total"),
            downstream_cx_ssl_total: c("downstream_cx_ssl_total"),
            downstream_cx_ssl_active: g("downstream_cx_ssl_active"),
            downstream_cx_destroy: c("downstream_cx_destroy"),
            downstream_cx_drain_close: c("downstream_cx_drain_close"),
            downstream_cx_rx_bytes_total: c("downstream_cx_rx_bytes_total"),
            downstream_cx_tx_bytes_total: c("downstream_cx_tx_bytes_total"),
            downstream_cx_length_ms: store.histogram(&format!("http.{prefix}.downstream_cx_length_ms")),
            downstream_rq_total: c("downstream_rq_total"),
            downstream_rq_active: g("downstream_rq_active"),
            downstream_rq_completed: PairedCounter {
                own: c("downstream_rq_completed"),
                listener: store.counter(&format!("listener.{listener}.http.{prefix}.downstream_rq_completed")),
            },
            downstream_rq_http1_total: c("downstream_rq_http1_total"),
            downstream_rq_http2_total: c("downstream_rq_http2_total"),
            downstream_rq_timeout: c("downstream_rq_timeout"),
            downstream_rq_idle_timeout: c("downstream_rq_idle_timeout"),
            downstream_rq_max_duration_reached: c("downstream_rq_max_duration_reached"),
            downstream_cx_idle_timeout: c("downstream_cx_idle_timeout"),
            downstream_rq_rx_reset: c("downstream_rq_rx_reset"),
            downstream_rq_tx_reset: c("downstream_rq_tx_reset"),
            downstream_rq_time: store.histogram(&format!("http.{prefix}.downstream_rq_time")),
            downstream_cx_upgrades_total: c("downstream_cx_upgrades_total"),
            downstream_cx_upgrades_active: g("downstream_cx_upgrades_active"),
            downstream_rq_ws_on_non_ws_route: c("downstream_rq_ws_on_non_ws_route"),
            rq_total: c("rq_total"),
            no_route: c("no_route"),
            no_cluster: c("no_cluster"),
            codes: PairedCodes::new(store, prefix, listener),
        }
    }
}

/// A listener's HTTP connection manager as the request path needs it.
pub struct Hcm {
    pub config: model::HttpConnectionManager,
    pub routes: Arc<RouteTable>,
    pub stats: HcmStats,
    /// `server` header value.
    pub server_name: HeaderValue,
    /// Access loggers; empty means no per-request log work at all.
    pub access_logs: Arc<[Logger]>,
    /// The response headers the loggers read: a log keeps copies of these only.
    pub log_response_headers: Box<[http::HeaderName]>,
    /// The listener's `per_connection_buffer_limit_bytes`.
    pub buffer_limit: u64,
    /// The HTTP filters before the router.
    pub filters: crate::filters::Chain,
}

/// Envoy's `listener.<address>.*`.
#[derive(Clone)]
pub struct ListenerStats {
    pub downstream_cx_total: Counter,
    pub downstream_cx_active: Gauge,
    pub downstream_cx_destroy: Counter,
    /// Always 0: legate sets no listener connection limit.
    pub downstream_cx_overflow: Counter,
    /// Connections no filter chain matched (closed at once).
    pub no_filter_chain_match: Counter,
    /// Connections whose chain has no network filter (closed at once).
    pub network_extension_config_missing: Counter,
    /// Connections closed because their listener filters took longer than
    /// `listener_filters_timeout`.
    pub downstream_pre_cx_timeout: Counter,
    /// Connections in their listener filters.
    pub downstream_pre_cx_active: Gauge,
    /// Connections closed by the peer while their listener filters ran.
    pub downstream_listener_filter_remote_close: Counter,
    /// Connections a listener filter closed (a ClientHello over 16 KiB).
    pub downstream_listener_filter_error: Counter,
    pub downstream_cx_length_ms: Histogram,
    /// The process's `tls_inspector.*`, when this listener runs a `tls_inspector`.
    pub tls_inspector: Option<crate::listener::inspect::TlsInspectorStats>,
}

impl ListenerStats {
    pub fn new(store: &Arc<Store>, name: &str) -> Self {
        let c = |s: &str| store.counter(&format!("listener.{name}.{s}"));
        ListenerStats {
            downstream_cx_total: c("downstream_cx_total"),
            downstream_cx_active: store.gauge(&format!("listener.{name}.downstream_cx_active")),
            downstream_cx_destroy: c("downstream_cx_destroy"),
            downstream_cx_overflow: c("downstream_cx_overflow"),
            no_filter_chain_match: c("no_filter_chain_match"),
            network_extension_config_missing: c("network_extension_config_missing"),
            downstream_pre_cx_timeout: c("downstream_pre_cx_timeout"),
            downstream_pre_cx_active: store.gauge(&format!("listener.{name}.downstream_pre_cx_active")),
            downstream_listener_filter_remote_close: c("downstream_listener_filter_remote_close"),
            downstream_listener_filter_error: c("downstream_listener_filter_error"),
            downstream_cx_length_ms: store.histogram(&format!("listener.{name}.downstream_cx_length_ms")),
            tls_inspector: None,
        }
    }
}

pub struct ListenerRt {
    pub config: model::Listener,
    /// One per entry of [`model::Listener::chains`], in that order (the default chain last).
    pub chains: Vec<ChainRt>,
    pub stats: ListenerStats,
    /// `listener.<name>.ssl.*`, when a chain terminates TLS.
    pub ssl: Option<Arc<crate::tls::stats::SslStats>>,
}

impl ListenerRt {
    /// This listener's version of the chain a connection was accepted on.
    #[inline]
    pub fn chain(&self, key: u64) -> Option<&ChainRt> {
        self.chains.iter().find(|c| c.key == key)
    }
}

/// A filter chain as connections use it. Chosen once per connection; the connection finds
/// its chain in later snapshots by `key`, which a chain keeps across reloads while its
/// configuration does not change (route or cluster changes reach it). A reload that changes
/// or removes it retires it: its connections stay on its last version and drain.
pub struct ChainRt {
    pub key: u64,
    pub life: Arc<ChainLife>,
    pub terminal: Terminal,
}

impl ChainRt {
    pub fn hcm(&self) -> Option<&Arc<Hcm>> {
        match &self.terminal {
            Terminal::Http { hcm, .. } => Some(hcm),
            Terminal::Tcp(_) | Terminal::Empty => None,
        }
    }
}

/// What serves a chain's connections: its terminal network filter.
pub enum Terminal {
    /// The HTTP connection manager, with the route configuration its tables were compiled
    /// from (inline or RDS), shared with the reloader's sources.
    Http { hcm: Arc<Hcm>, route_config: Arc<model::RouteConfig> },
    /// `tcp_proxy`: each connection holds it for its life.
    Tcp(Arc<crate::tcp_proxy::TcpProxyRt>),
    /// A chain without network filters: Envoy closes its connections
    /// (`network_extension_config_missing`).
    Empty,
}

/// Shared by every version of one chain (same key).
pub struct ChainLife {
    /// Set when a reload retires the chain: the last version's connection manager, which its
    /// connections keep (set before the snapshot swap, so no request misses it). Weak: the
    /// retired listener version is kept for the drain time by the reloader, and its stats
    /// leave `/stats` when it goes.
    retired: std::sync::OnceLock<Option<std::sync::Weak<Hcm>>>,
    /// Flips to true with `retired`, for the connections to start draining.
    drain: tokio::sync::watch::Sender<bool>,
}

impl ChainLife {
    fn new() -> Arc<Self> {
        Arc::new(ChainLife { retired: std::sync::OnceLock::new(), drain: tokio::sync::watch::channel(false).0 })
    }

    /// The connection manager a retired chain's connections keep (`Some(None)` once it is
    /// gone).
    #[inline]
    pub fn retired(&self) -> Option<Option<Arc<Hcm>>> {
        self.retired.get().map(|w| w.as_ref().and_then(std::sync::Weak::upgrade))
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.drain.subscribe()
    }

    fn retire(&self, last: Option<&Arc<Hcm>>) {
        let _ = self.retired.set(last.map(Arc::downgrade));
        self.drain.send_replace(true);
    }
}

/// Retires the chains of `prev` that `next` does not carry on (by listener name and key).
/// Runs before `next` is stored; returns the listener versions that had such chains, which
/// the caller keeps for the drain time.
pub fn retire_chains(prev: &Snapshot, next: &Snapshot) -> Vec<Arc<ListenerRt>> {
    let mut kept = Vec::new();
    for p in &prev.listeners {
        let n = next.listeners.iter().find(|n| n.config.name == p.config.name);
        if n.is_some_and(|n| Arc::ptr_eq(n, p)) {
            continue;
        }
        let mut any = false;
        for c in &p.chains {
            if n.and_then(|n| n.chain(c.key)).is_none() {
                c.life.retire(c.hcm());
                any = true;
            }
        }
        if any {
            kept.push(Arc::clone(p));
        }
    }
    kept
}

pub struct Snapshot {
    pub listeners: Vec<Arc<ListenerRt>>,
    pub clusters: HashMap<String, Arc<Cluster>>,
    pub bootstrap: Arc<model::Bootstrap>,
}

impl Snapshot {
    pub fn empty() -> Self {
        Snapshot { listeners: Vec::new(), clusters: HashMap::new(), bootstrap: Arc::new(model::Bootstrap::default()) }
    }

    /// The listener with this name.
    #[inline]
    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerRt>> {
        self.listeners.iter().find(|l| l.config.name == name)
    }
}

/// Builds a listener's runtime state against the given clusters; `writers` is `None` when
/// only validating (formats are compiled, no file is opened). `route_configs` has one entry
/// per chain ([`model::Listener::chains`] order), `None` for a chain without a connection
/// manager.
pub fn build_listener(
    config: &model::Listener,
    route_configs: Vec<Option<Arc<model::RouteConfig>>>,
    clusters: &HashMap<String, Arc<Cluster>>,
    store: &Arc<Store>,
    writers: Option<&LogWriters>,
) -> Result<ListenerRt, String> {
    rebuild_listener(config, route_configs, clusters, store, writers, None)
}

static NEXT_CHAIN_KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Whether two versions of a listener differ only in their chains: only then can a chain
/// carry on (Envoy drains every connection of a listener whose other fields change).
fn same_outside_chains(a: &model::Listener, b: &model::Listener) -> bool {
    a.address == b.address
        && a.stat_prefix == b.stat_prefix
        && a.buffer_limit == b.buffer_limit
        && a.listener_filters == b.listener_filters
        && a.listener_filters_timeout == b.listener_filters_timeout
        && a.continue_on_listener_filters_timeout == b.continue_on_listener_filters_timeout
}

/// [`build_listener`], reusing what the listener's last version `prev` (running against
/// `prev_clusters`) compiled for the routes that did not change.
pub fn rebuild_listener(
    config: &model::Listener,
    route_configs: Vec<Option<Arc<model::RouteConfig>>>,
    clusters: &HashMap<String, Arc<Cluster>>,
    store: &Arc<Store>,
    writers: Option<&LogWriters>,
    prev: Option<(&ListenerRt, &HashMap<String, Arc<Cluster>>)>,
) -> Result<ListenerRt, String> {
    let carry = prev.filter(|(l, _)| same_outside_chains(&l.config, config));
    let mut chains = Vec::with_capacity(route_configs.len());
    for (i, (chain, route_config)) in config.chains().zip(route_configs).enumerate() {
        // The previous version of this very chain, if its configuration is unchanged.
        let before = carry
            .and_then(|(l, pc)| l.config.chains().zip(&l.chains).find(|(c, _)| *c == chain).map(|(_, rt)| (rt, pc)));
        let terminal = match (chain.hcm(), route_config) {
            (Some(h), Some(rc)) => {
                // Compiled routes are reused from the same chain, else the one in its place.
                let same_place = prev.and_then(|(l, pc)| l.chains.get(i).map(|rt| (rt, pc)));
                let prev_hcm = before.or(same_place).and_then(|(rt, pc)| rt.hcm().map(|h| (&**h, pc)));
                let hcm = build_hcm(config, h, &rc, clusters, store, writers, prev_hcm)?;
                Terminal::Http { hcm: Arc::new(hcm), route_config: rc }
            }
            _ => match chain.tcp_proxy() {
                Some(t) => Terminal::Tcp(Arc::new(
                    crate::tcp_proxy::TcpProxyRt::build(t, store, writers)
                        .map_err(|e| format!("listener {:?}: {e}", config.name))?,
                )),
                None => Terminal::Empty,
            },
        };
        let (key, life) = match before {
            Some((rt, _)) => (rt.key, Arc::clone(&rt.life)),
            None => (NEXT_CHAIN_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed), ChainLife::new()),
        };
        chains.push(ChainRt { key, life, terminal });
    }
    let ssl = config
        .chains()
        .any(|c| c.tls.is_some())
        .then(|| Arc::new(crate::tls::stats::SslStats::new(store, &config.stat_name())));
    let mut stats = ListenerStats::new(store, &config.stat_name());
    if config.listener_filters.contains(&model::ListenerFilter::TlsInspector) {
        stats.tls_inspector = Some(crate::listener::inspect::TlsInspectorStats::new(store));
    }
    Ok(ListenerRt { config: config.clone(), chains, stats, ssl })
}

fn build_hcm(
    config: &model::Listener,
    hcm: &model::HttpConnectionManager,
    route_config: &model::RouteConfig,
    clusters: &HashMap<String, Arc<Cluster>>,
    store: &Arc<Store>,
    writers: Option<&LogWriters>,
    prev: Option<(&Hcm, &HashMap<String, Arc<Cluster>>)>,
) -> Result<Hcm, String> {
    let mut loggers = Vec::with_capacity(hcm.access_logs.len());
    for (i, log) in hcm.access_logs.iter().enumerate() {
        let format =
            LineFormat::build(&log.format).map_err(|e| format!("listener {:?}: access_log[{i}]: {e}", config.name))?;
        let writer = match writers {
            Some(w) => Some(w.get(Sink::from(&log.sink)).map_err(|e| {
                format!("listener {:?}: access_log[{i}]: cannot open {:?}: {e}", config.name, log.sink)
            })?),
            None => None,
        };
        loggers.push(Logger { format, writer });
    }
    let mut log_response_headers = Vec::new();
    for logger in &loggers {
        logger.format.response_headers(&mut log_response_headers);
    }
    let filters = crate::filters::Chain::build(&hcm.http_filters, store, &hcm.stat_prefix);
    // Routes carry one slot per filter: only a table built for the same chain is reused.
    let prev = prev.filter(|(h, _)| h.config.http_filters == hcm.http_filters);
    let routes = match prev {
        Some((h, prev_clusters)) => RouteTable::rebuild(route_config, clusters, &filters, &h.routes, prev_clusters),
        None => RouteTable::build_for(route_config, clusters, &filters),
    }
    .map_err(|e| format!("listener {:?}: {e}", config.name))?;
    let server_name = HeaderValue::from_str(&hcm.server_name)
        .map_err(|_| format!("listener {:?}: invalid server_name", config.name))?;
    Ok(Hcm {
        config: hcm.clone(),
        routes: Arc::new(routes),
        stats: HcmStats::new(store, &hcm.stat_prefix, &config.stat_name()),
        server_name,
        access_logs: loggers.into(),
        log_response_headers: log_response_headers.into(),
        buffer_limit: u64::from(config.buffer_limit),
        filters,
    })
}

/// Where the running snapshot lives.
pub type SnapshotStore = ArcSwap<Snapshot>;
