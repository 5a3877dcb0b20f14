//! The process: serves a bootstrap (through the reloader, which builds every snapshot, the
//! first one included), runs the admin, and drains on SIGTERM/SIGINT or `/quitquitquit`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch, Notify};

use crate::access_log::LogWriters;
use crate::admin::drain::{DrainListeners, ListenerDrain};
use crate::admin::logging::Loggers;
use crate::config::model;
use crate::discovery::WatchOptions;
use crate::listener::manager::ListenerManager;
use crate::listener::{self, Drain};
use crate::reload::history::History;
use crate::reload::sources::Sources;
use crate::snapshot::Snapshot;
use crate::stats::{Counter, Gauge, Histogram, Store};

/// Process-wide state the request path reads.
pub struct ProcessState {
    pub snapshot: Arc<crate::snapshot::SnapshotStore>,
    pub stats: Arc<crate::stats::Store>,
    /// The machine's first non-loopback address, appended to `x-forwarded-for` for loopback
    /// clients as Envoy does.
    pub local_ip: Option<std::net::IpAddr>,
    /// Set by the admin's `/healthcheck/fail`.
    pub health_failing: std::sync::atomic::AtomicBool,
    /// `--drain-time-s`: how long draining connections may live.
    pub drain_time: std::time::Duration,
    /// `server.total_connections`: open downstream connections on every listener.
    pub total_connections: crate::stats::Gauge,
    /// The local node (bootstrap `node`, `--service-cluster` / `--service-node` over it): what
    /// `add_user_agent` sends as `x-envoy-downstream-service-{cluster,node}`.
    pub local_node: model::Node,
    /// The bootstrap's `layered_runtime`, its disk layers kept current.
    pub runtime: Arc<crate::runtime::Runtime>,
}

/// What the command line decided, as far as the running server cares.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub config_path: Option<PathBuf>,
    pub config_yaml: Option<String>,
    pub concurrency: usize,
    pub drain_time: Duration,
    pub admin_address_path: Option<PathBuf>,
    pub service_cluster: Option<String>,
    pub service_node: Option<String>,
    pub service_zone: Option<String>,
    pub log_level: String,
    pub watch: WatchOptions,
}

static STARTED_HOOK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what runs once the first configuration is applied and the listeners are up, after
/// Envoy's schema was released: the binary, which owns the allocator, returns the memory
/// startup freed (`main.rs`). The first hook set stays.
pub fn on_started(hook: fn()) {
    let _ = STARTED_HOOK.set(hook);
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    #[error(transparent)]
    Reload(#[from] crate::reload::StartError),
    #[error("admin: cannot bind {addr}: {source}")]
    AdminBind { addr: SocketAddr, source: std::io::Error },
    #[error("writing --admin-address-path {path}: {source}")]
    AdminAddressPath { path: PathBuf, source: std::io::Error },
}

pub struct Server {
    pub shared: Arc<ProcessState>,
    pub options: Options,
    /// The bootstrap the process started with (admin and node do not change live), its node
    /// with the command line's overrides.
    pub bootstrap: Arc<model::Bootstrap>,
    /// The local node as `/server_info` shows it.
    pub node: serde_json::Value,
    pub log_writers: Arc<LogWriters>,
    pub history: History,
    sources: ArcSwap<Sources>,
    errors: Mutex<BTreeMap<String, serde_json::Value>>,
    started: Instant,
    started_at: SystemTime,
    bound: Mutex<Vec<(String, SocketAddr)>>,
    shutdown_tx: watch::Sender<bool>,
    quit: Notify,
    draining: AtomicBool,
    /// `/logging`: the loggers' levels and how to apply them.
    pub loggers: Loggers,
    /// What the admin asks of the listeners (`/drain_listeners`, `/healthcheck/fail`); the
    /// listener code reads it through [`Server::listener_drain`].
    listener_drain: watch::Sender<ListenerDrain>,
    server_stats: ServerStats,
}

/// Envoy's `server.*` gauges that change by themselves, refreshed on every stats flush and
/// before the admin renders stats.
struct ServerStats {
    uptime: Gauge,
    state: Gauge,
    memory_allocated: Gauge,
    memory_physical_size: Gauge,
    memory_heap_size: Gauge,
    initialization_time_ms: Histogram,
    dynamic_unknown_fields: Counter,
    days_until_first_cert_expiring: Gauge,
}

impl ServerStats {
    fn new(store: &Store) -> Self {
        // Envoy's integer version comes from its SCM revision; legate's from its crate
        // version (major * 10000 + minor * 100 + patch).
        let part = |s: &str| s.parse::<i64>().unwrap_or(0);
        let version = part(env!("CARGO_PKG_VERSION_MAJOR")) * 10_000
            + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
            + part(env!("CARGO_PKG_VERSION_PATCH"));
        store.gauge("server.version").set(version);
        store.gauge("server.hot_restart_epoch").set(0);
        store.gauge("server.parent_connections").set(0);
        let state = store.gauge("server.state");
        // PRE_INITIALIZING until the first snapshot serves.
        state.set(2);
        ServerStats {
            uptime: store.gauge("server.uptime"),
            state,
            memory_allocated: store.gauge("server.memory_allocated"),
            memory_physical_size: store.gauge("server.memory_physical_size"),
            memory_heap_size: store.gauge("server.memory_heap_size"),
            initialization_time_ms: store.histogram("server.initialization_time_ms"),
            dynamic_unknown_fields: store.counter("server.dynamic_unknown_fields"),
            days_until_first_cert_expiring: store.gauge("server.days_until_first_cert_expiring"),
        }
    }
}

impl Server {
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    pub fn request_shutdown(&self) {
        self.quit.notify_one();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// `LIVE` for `/ready` and `/server_info`: not shutting down, not failing health checks,
    /// listeners not drained through the admin.
    /// `/ready` and `server_info.state`: Envoy 1.40 stays LIVE after `/drain_listeners`.
    pub fn is_live(&self) -> bool {
        !(self.is_draining() || self.shared.health_failing.load(Ordering::Relaxed))
    }

    /// Counts a dynamic resource value that was tolerated (Envoy's
    /// `server.dynamic_unknown_fields`).
    pub fn dynamic_unknown_field(&self) {
        self.server_stats.dynamic_unknown_fields.inc();
    }

    /// Brings `server.uptime`, `state` and the memory gauges up to date.
    pub fn refresh_stats(&self) {
        let st = &self.server_stats;
        st.uptime.set(self.started.elapsed().as_secs() as i64);
        // Envoy's ServerState: 0 LIVE, 1 DRAINING (also while health checks fail).
        st.state.set(if self.is_live() { 0 } else { 1 });
        let mem = crate::admin::memory::read();
        let num = |s: &str| s.parse::<i64>().unwrap_or(0);
        st.memory_allocated.set(num(&mem.allocated));
        st.memory_physical_size.set(num(&mem.total_physical_bytes));
        st.memory_heap_size.set(num(&mem.heap_size));
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let days = crate::tls::contexts::days_until_first_cert_expiring(
            &self.shared.snapshot.load(),
            i64::try_from(now).unwrap_or(i64::MAX),
        );
        // Envoy's value without any certificate: u32::MAX.
        st.days_until_first_cert_expiring
            .set(days.map_or(i64::from(u32::MAX), |d| i64::try_from(d).unwrap_or(i64::MAX)));
        for (name, expires) in crate::tls::contexts::expiration_gauges(&self.shared.snapshot.load()) {
            self.shared.stats.gauge(&name).set(expires);
        }
    }

    /// The admin's requests to the listeners, for the listener code to follow.
    pub fn listener_drain(&self) -> watch::Receiver<ListenerDrain> {
        self.listener_drain.subscribe()
    }

    /// `/drain_listeners`: from now on the listeners drain (sticky until restart).
    pub fn drain_listeners(&self, request: DrainListeners) {
        tracing::info!(
            drain.graceful = request.graceful,
            drain.inbound_only = request.inbound_only,
            "admin: draining listeners"
        );
        self.listener_drain.send_modify(|d| d.drain_listeners = Some(request));
    }

    /// `/healthcheck/fail` and `/healthcheck/ok`.
    pub fn set_health_check_failed(&self, failed: bool) {
        self.shared.health_failing.store(failed, Ordering::Relaxed);
        self.listener_drain.send_if_modified(|d| std::mem::replace(&mut d.health_check_failed, failed) != failed);
    }

    /// Listener names with the addresses they are bound to (port 0 resolved).
    pub fn bound_listeners(&self) -> Vec<(String, SocketAddr)> {
        self.bound.lock().map(|b| b.clone()).unwrap_or_default()
    }

    pub fn set_bound(&self, bound: Vec<(String, SocketAddr)>) {
        if let Ok(mut b) = self.bound.lock() {
            *b = bound;
        }
    }

    pub fn sources(&self) -> Arc<Sources> {
        self.sources.load_full()
    }

    pub fn set_sources(&self, s: Arc<Sources>) {
        self.sources.store(s);
    }

    /// Remembers why the last update of a role was refused, for `/config_dump`.
    pub fn set_error(&self, role: &str, file: &std::path::Path, details: &str) {
        let e = serde_json::json!({
            "details": details,
            "file": file.display().to_string(),
            "last_update_attempt": httpdate::fmt_http_date(SystemTime::now()),
        });
        self.errors.lock().unwrap_or_else(|e| e.into_inner()).insert(role.to_string(), e);
    }

    pub fn clear_error(&self, role: &str) {
        self.errors.lock().unwrap_or_else(|e| e.into_inner()).remove(role);
    }

    /// How long the process has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn config_dump(
        &self,
        q: &crate::admin::config_dump::DumpQuery,
    ) -> Result<serde_json::Value, crate::admin::config_dump::DumpError> {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let live = if q.include_eds { live_endpoints(&self.shared.snapshot.load()) } else { Vec::new() };
        crate::admin::config_dump::config_dump(&self.sources(), &errors, self.started_at, q, &live)
    }
}

/// `(cluster name, ClusterLoadAssignment)` of every cluster whose endpoints are not a file's
/// (REST EDS, STATIC, STRICT_DNS), from its live hosts, by name as Envoy lists them.
fn live_endpoints(snap: &Snapshot) -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<(String, serde_json::Value)> = snap
        .clusters
        .values()
        .filter_map(|c| {
            let cla_name = match &c.config.discovery {
                model::DiscoveryType::Eds { service_name, source: model::EdsConfigSource::Rest { .. } } => {
                    service_name.as_str()
                }
                model::DiscoveryType::Static | model::DiscoveryType::StrictDns => c.name(),
                _ => return None,
            };
            Some((c.name().to_string(), crate::upstream::eds_rest::endpoint_config(c, cla_name)))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn first_local_ip() -> Option<IpAddr> {
    let addrs = if_addrs::get_if_addrs().ok()?;
    addrs.iter().map(|i| i.ip()).find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

/// Runs the proxy on a validated bootstrap until `shutdown` resolves, SIGTERM/SIGINT or
/// `/quitquitquit`; then drains for at most `options.drain_time`. `/logging` records levels
/// but changes nothing: the caller owns the tracing subscriber (see [`run_with_loggers`]).
pub async fn run(
    bootstrap: model::Bootstrap,
    bootstrap_json: serde_json::Value,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let loggers = Loggers::new(&options.log_level);
    run_with_loggers(bootstrap, bootstrap_json, options, loggers, shutdown).await
}

/// [`run`], with `/logging` changing levels through `loggers`.
pub async fn run_with_loggers(
    bootstrap: model::Bootstrap,
    bootstrap_json: serde_json::Value,
    options: Options,
    loggers: Loggers,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let store = Store::new();
    store.gauge("server.live").set(1);
    store.gauge("server.concurrency").set(options.concurrency as i64);
    let mut local_node = bootstrap.node.clone();
    crate::admin::server_info::apply_node_options(&mut local_node, &options);
    let runtime = crate::runtime::Runtime::with_stats(&bootstrap.runtime, &local_node.cluster, &store);
    runtime.watch();
    let shared = Arc::new(ProcessState {
        snapshot: Arc::new(ArcSwap::from_pointee(Snapshot::empty())),
        stats: Arc::clone(&store),
        local_ip: first_local_ip(),
        health_failing: AtomicBool::new(false),
        drain_time: options.drain_time,
        total_connections: store.gauge("server.total_connections"),
        local_node,
        runtime,
    });
    let node = crate::admin::server_info::node_json(&bootstrap_json, &options);
    // The files keep the node as written: a reload compares the bootstrap with its own kind.
    let sources =
        Sources::new(options.config_path.clone(), options.config_yaml.clone(), bootstrap.clone(), bootstrap_json);
    let mut bootstrap = bootstrap;
    crate::admin::server_info::apply_node_options(&mut bootstrap.node, &options);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (admin_drain_tx, admin_drain_rx) = watch::channel(ListenerDrain::default());
    let writers = Arc::new(LogWriters::new(&store));
    let server = Arc::new(Server {
        shared: Arc::clone(&shared),
        options: options.clone(),
        bootstrap: Arc::new(bootstrap),
        node,
        log_writers: Arc::clone(&writers),
        history: History::default(),
        sources: ArcSwap::from_pointee(sources.clone()),
        errors: Mutex::new(BTreeMap::new()),
        started: Instant::now(),
        started_at: SystemTime::now(),
        bound: Mutex::new(Vec::new()),
        shutdown_tx,
        quit: Notify::new(),
        draining: AtomicBool::new(false),
        loggers,
        listener_drain: admin_drain_tx,
        server_stats: ServerStats::new(&store),
    });

    // The admin binds first: a port clash there stops startup before anything serves.
    let admin_socket = match &server.bootstrap.admin {
        Some(admin) => {
            let socket = bind_admin(admin.address)
                .await
                .map_err(|source| StartError::AdminBind { addr: admin.address, source })?;
            let local = socket.local_addr().unwrap_or(admin.address);
            if !local.ip().is_loopback() {
                tracing::warn!(admin.address = %local, "admin listens on a non-loopback address: anyone who reaches it can stop the server (/quitquitquit)");
            }
            tracing::info!(admin.address = %local, "admin bound");
            Some((socket, local))
        }
        None => None,
    };

    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let drain = Drain { shutdown: shutdown_rx.clone(), alive: alive_tx, admin: admin_drain_rx };
    let manager = ListenerManager::new(Arc::clone(&shared), drain);
    let reloader = crate::reload::spawn(Arc::clone(&server), sources, manager, options.watch, shutdown_rx).await?;
    // The first configuration is applied: what only parsing it needed can go.
    crate::config::release_schema();
    if let Some(hook) = STARTED_HOOK.get() {
        hook();
    }
    server.server_stats.initialization_time_ms.record_duration(server.started.elapsed());
    server.refresh_stats();
    spawn_stats_flush(Arc::clone(&server));

    if let Some((socket, local)) = admin_socket {
        crate::admin::spawn_admin(socket, Arc::clone(&server));
        if let Some(path) = &options.admin_address_path {
            std::fs::write(path, local.to_string())
                .map_err(|source| StartError::AdminAddressPath { path: path.clone(), source })?;
        }
    }
    spawn_reopen_on_sigusr1(Arc::clone(&writers));
    tracing::info!("all listeners started");

    tokio::select! {
        _ = shutdown => {}
        _ = server.quit.notified() => tracing::info!("shutdown requested through the admin"),
        _ = signal_terminate() => tracing::info!("caught termination signal, draining"),
    }
    server.draining.store(true, Ordering::Relaxed);
    let _ = server.shutdown_tx.send(true);
    // The reloader owns the listener manager: once it ends, no accept loop holds a sender.
    reloader.finished().await;
    // Every connection holds a sender; recv() returns None once the last one closed.
    match tokio::time::timeout(options.drain_time, alive_rx.recv()).await {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            drain.seconds = options.drain_time.as_secs(),
            "drain time over; closing remaining connections"
        ),
    }
    // Lines of the last requests still queued: give the writers a moment, bounded.
    let _ = tokio::time::timeout(Duration::from_secs(1), writers.flush()).await;
    Ok(())
}

/// Binds the admin address. A port a moment ago free can be held for an instant by a
/// connection's local end (harnesses pick "free" ports by binding port 0 and closing): an
/// address in use is retried for up to 250 ms before startup fails. Nothing serves yet, so
/// the wait delays nothing else.
async fn bind_admin(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let mut tries = 0;
    loop {
        match listener::bind(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 10 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => return other,
        }
    }
}

/// Envoy's stats flush (its default `stats_flush_interval`, 5 s): histograms' interval
/// quantiles and the `server.*` gauges.
fn spawn_stats_flush(server: Arc<Server>) {
    let weak = Arc::downgrade(&server);
    drop(server);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(server) = weak.upgrade() else { return };
            server.shared.stats.flush_histograms();
            server.refresh_stats();
        }
    });
}

/// logrotate's `postrotate kill -USR1`: reopen access-log files.
fn spawn_reopen_on_sigusr1(writers: Arc<LogWriters>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else { return };
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            tracing::info!("SIGUSR1: reopening access logs");
            writers.reopen();
        }
    });
}

async fn signal_terminate() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}
