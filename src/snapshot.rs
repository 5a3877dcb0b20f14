//! The immutable runtime snapshot: listeners' connection managers with compiled routes, and
//! clusters by name. Built off the request path, published with one `ArcSwap` store; a
//! request loads it once and finishes on it.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::access_log::{
    spawn_writer_with, AccessLogWriter, LineFormat, Sink, WriterStats, QUEUE_CAPACITY, QUEUE_MAX_BYTES,
};
use crate::config::model;
use crate::proxy::Logger;
use crate::routing::RouteTable;
use crate::stats::{CodeCounters, Counter, Gauge, Histogram, Store};
use crate::upstream::Cluster;

/// Envoy's `http.<stat_prefix>.*`.
pub struct HcmStats {
    pub downstream_cx_total: Counter,
    pub downstream_cx_active: Gauge,
    pub downstream_cx_http1_total: Counter,
    pub downstream_cx_http2_total: Counter,
    pub downstream_cx_destroy: Counter,
    pub downstream_cx_drain_close: Counter,
    pub downstream_cx_rx_bytes_total: Counter,
    pub downstream_cx_tx_bytes_total: Counter,
    pub downstream_cx_length_ms: Histogram,
    pub downstream_rq_total: Counter,
    pub downstream_rq_active: Gauge,
    pub downstream_rq_completed: Counter,
    pub downstream_rq_http1_total: Counter,
    pub downstream_rq_http2_total: Counter,
    pub downstream_rq_timeout: Counter,
    pub downstream_rq_idle_timeout: Counter,
    pub downstream_cx_idle_timeout: Counter,
    pub downstream_rq_rx_reset: Counter,
    pub downstream_rq_tx_reset: Counter,
    pub downstream_rq_time: Histogram,
    pub rq_total: Counter,
    pub no_route: Counter,
    pub no_cluster: Counter,
    pub codes: CodeCounters,
}

impl HcmStats {
    pub fn new(store: &Arc<Store>, prefix: &str) -> Self {
        let c = |s: &str| store.counter(&format!("http.{prefix}.{s}"));
        let g = |s: &str| store.gauge(&format!("http.{prefix}.{s}"));
        HcmStats {
            downstream_cx_total: c("downstream_cx_total"),
            downstream_cx_active: g("downstream_cx_active"),
            downstream_cx_http1_total: c("downstream_cx_http1_total"),
            downstream_cx_http2_total: c("downstream_cx_http2_total"),
            downstream_cx_destroy: c("downstream_cx_destroy"),
            downstream_cx_drain_close: c("downstream_cx_drain_close"),
            downstream_cx_rx_bytes_total: c("downstream_cx_rx_bytes_total"),
            downstream_cx_tx_bytes_total: c("downstream_cx_tx_bytes_total"),
            downstream_cx_length_ms: store.histogram(&format!("http.{prefix}.downstream_cx_length_ms")),
            downstream_rq_total: c("downstream_rq_total"),
            downstream_rq_active: g("downstream_rq_active"),
            downstream_rq_completed: c("downstream_rq_completed"),
            downstream_rq_http1_total: c("downstream_rq_http1_total"),
            downstream_rq_http2_total: c("downstream_rq_http2_total"),
            downstream_rq_timeout: c("downstream_rq_timeout"),
            downstream_rq_idle_timeout: c("downstream_rq_idle_timeout"),
            downstream_cx_idle_timeout: c("downstream_cx_idle_timeout"),
            downstream_rq_rx_reset: c("downstream_rq_rx_reset"),
            downstream_rq_tx_reset: c("downstream_rq_tx_reset"),
            downstream_rq_time: store.histogram(&format!("http.{prefix}.downstream_rq_time")),
            rq_total: c("rq_total"),
            no_route: c("no_route"),
            no_cluster: c("no_cluster"),
            codes: CodeCounters::new(store, &format!("http.{prefix}.downstream_rq"), true),
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

/// One writer task per sink, shared by every connection manager that logs there (and kept
/// across snapshots, so a reload does not reopen files), and the stats they count into:
/// `access_log.<sink>.dropped` per sink and Envoy's `filesystem.*` for all of them (present
/// from startup, as in Envoy).
pub struct LogWriters {
    store: Arc<Store>,
    filesystem: WriterStats,
    /// Each sink with the name its stats carry.
    writers: std::sync::Mutex<Vec<(Sink, String, AccessLogWriter)>>,
}

impl LogWriters {
    pub fn new(store: &Arc<Store>) -> Self {
        let c = |name: &str| store.counter(&format!("filesystem.{name}"));
        // Envoy's `flushed_by_timer` has no counterpart: every batch is written at once.
        let filesystem = WriterStats {
            dropped: Counter::default(),
            write_buffered: c("write_buffered"),
            write_completed: c("write_completed"),
            write_failed: c("write_failed"),
            reopen_failed: c("reopen_failed"),
            write_total_buffered: store.gauge("filesystem.write_total_buffered"),
        };
        LogWriters { store: Arc::clone(store), filesystem, writers: std::sync::Mutex::new(Vec::new()) }
    }

    pub fn get(&self, sink: Sink) -> std::io::Result<AccessLogWriter> {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, w)) = writers.iter().find(|(s, _, _)| *s == sink) {
            return Ok(w.clone());
        }
        // Two paths may map to one name (`a.log`, `a_log`): the later sink gets a suffix.
        let base = sink.stat_name();
        let taken = |name: &str| writers.iter().any(|(_, taken, _)| taken == name);
        let mut name = base.clone();
        let mut n = 1;
        while taken(&name) && n <= writers.len() {
            n += 1;
            name = format!("{base}_{n}");
        }
        let stats = WriterStats {
            dropped: self.store.counter(&format!("access_log.{name}.dropped")),
            ..self.filesystem.clone()
        };
        let w = spawn_writer_with(sink.clone(), QUEUE_CAPACITY, QUEUE_MAX_BYTES, stats).inspect_err(|_| {
            // The config is refused: no stat for a sink that never was.
            self.store.retain_live(&format!("access_log.{name}."));
        })?;
        writers.push((sink, name, w.clone()));
        Ok(w)
    }

    /// Waits until every line queued so far is written.
    pub async fn flush(&self) {
        let writers: Vec<AccessLogWriter> =
            self.writers.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(_, _, w)| w.clone()).collect();
        for w in writers {
            w.flush().await;
        }
    }

    /// Reopens every file sink (`/reopen_logs`, SIGUSR1).
    pub fn reopen(&self) {
        for (_, _, w) in self.writers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            w.reopen();
        }
    }
}

/// Envoy's `listener.<address>.*`.
#[derive(Clone)]
pub struct ListenerStats {
    pub downstream_cx_total: Counter,
    pub downstream_cx_active: Gauge,
    pub downstream_cx_destroy: Counter,
    /// Always 0: legate sets no listener connection limit.
    pub downstream_cx_overflow: Counter,
    /// Connections no filter chain matched (legate's listeners have one chain matching all).
    pub no_filter_chain_match: Counter,
    pub downstream_cx_length_ms: Histogram,
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
            downstream_cx_length_ms: store.histogram(&format!("listener.{name}.downstream_cx_length_ms")),
        }
    }
}

pub struct ListenerRt {
    pub config: model::Listener,
    /// The route configuration its tables were compiled from (inline or RDS), shared with
    /// the reloader's sources.
    pub route_config: Arc<model::RouteConfig>,
    pub hcm: Arc<Hcm>,
    pub stats: ListenerStats,
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

    /// The connection manager now serving the listener with this name.
    #[inline]
    pub fn hcm(&self, listener: &str) -> Option<&Arc<Hcm>> {
        self.listeners.iter().find(|l| l.config.name == listener).map(|l| &l.hcm)
    }
}

/// Builds a listener's runtime state against the given clusters; `writers` is `None` when
/// only validating (formats are compiled, no file is opened).
pub fn build_listener(
    config: &model::Listener,
    route_config: Arc<model::RouteConfig>,
    clusters: &HashMap<String, Arc<Cluster>>,
    store: &Arc<Store>,
    writers: Option<&LogWriters>,
) -> Result<ListenerRt, String> {
    rebuild_listener(config, route_config, clusters, store, writers, None)
}

/// [`build_listener`], reusing what the listener's last version `prev` (running against
/// `prev_clusters`) compiled for the routes that did not change.
pub fn rebuild_listener(
    config: &model::Listener,
    route_config: Arc<model::RouteConfig>,
    clusters: &HashMap<String, Arc<Cluster>>,
    store: &Arc<Store>,
    writers: Option<&LogWriters>,
    prev: Option<(&ListenerRt, &HashMap<String, Arc<Cluster>>)>,
) -> Result<ListenerRt, String> {
    let mut loggers = Vec::with_capacity(config.hcm.access_logs.len());
    for (i, log) in config.hcm.access_logs.iter().enumerate() {
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
    let filters = crate::filters::Chain::build(&config.hcm.http_filters, store, &config.hcm.stat_prefix);
    // Routes carry one slot per filter: only a table built for the same chain is reused.
    let prev = prev.filter(|(l, _)| l.config.hcm.http_filters == config.hcm.http_filters);
    let routes = match prev {
        Some((l, prev_clusters)) => {
            RouteTable::rebuild(&route_config, clusters, &filters, &l.hcm.routes, prev_clusters)
        }
        None => RouteTable::build_for(&route_config, clusters, &filters),
    }
    .map_err(|e| format!("listener {:?}: {e}", config.name))?;
    let server_name = HeaderValue::from_str(&config.hcm.server_name)
        .map_err(|_| format!("listener {:?}: invalid server_name", config.name))?;
    Ok(ListenerRt {
        config: config.clone(),
        route_config,
        hcm: Arc::new(Hcm {
            config: config.hcm.clone(),
            routes: Arc::new(routes),
            stats: HcmStats::new(store, &config.hcm.stat_prefix),
            server_name,
            access_logs: loggers.into(),
            log_response_headers: log_response_headers.into(),
            buffer_limit: u64::from(config.buffer_limit),
            filters,
        }),
        stats: ListenerStats::new(store, &config.stat_name()),
    })
}

/// Where the running snapshot lives.
pub type SnapshotStore = ArcSwap<Snapshot>;
