//! The process: builds the first snapshot from a bootstrap, binds listeners and the admin,
//! and drains on SIGTERM/SIGINT or `/quitquitquit`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch, Notify};

use crate::config::model;
use crate::listener::{self, Drain};
use crate::proxy::Shared;
use crate::snapshot::{build_listener, ListenerRt, Snapshot};
use crate::stats::Store;
use crate::upstream::{self, Cluster};

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
    pub log_level: String,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    #[error("listener '{name}': cannot bind {addr}: {source}")]
    Bind { name: String, addr: SocketAddr, source: std::io::Error },
    #[error("admin: cannot bind {addr}: {source}")]
    AdminBind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Build(String),
    #[error("writing --admin-address-path {path}: {source}")]
    AdminAddressPath { path: PathBuf, source: std::io::Error },
}

pub struct Server {
    pub shared: Arc<Shared>,
    pub options: Options,
    pub bootstrap: Arc<model::Bootstrap>,
    /// The bootstrap as loaded, in v3 JSON form, for `/config_dump`.
    pub bootstrap_json: serde_json::Value,
    started: Instant,
    started_at: SystemTime,
    bound: Mutex<Vec<(String, SocketAddr)>>,
    shutdown_tx: watch::Sender<bool>,
    quit: Notify,
    draining: AtomicBool,
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

    /// Listener names with the addresses they are bound to (port 0 resolved).
    pub fn bound_listeners(&self) -> Vec<(String, SocketAddr)> {
        self.bound.lock().map(|b| b.clone()).unwrap_or_default()
    }

    pub fn server_info(&self) -> serde_json::Value {
        let state =
            if self.is_draining() || self.shared.health_failing.load(Ordering::Relaxed) { "DRAINING" } else { "LIVE" };
        let up = self.started.elapsed().as_secs();
        serde_json::json!({
            "version": format!("legate/{}", env!("CARGO_PKG_VERSION")),
            "state": state,
            "hot_restart_version": "disabled",
            "hot_restart_initializing": false,
            "uptime_current_epoch": format!("{up}s"),
            "uptime_all_epochs": format!("{up}s"),
            "node": {"id": self.bootstrap.node.id, "cluster": self.bootstrap.node.cluster},
            "command_line_options": {
                "concurrency": self.options.concurrency,
                "log_level": self.options.log_level,
                "config_path": self.options.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                "config_yaml": self.options.config_yaml.clone().unwrap_or_default(),
                "drain_time": format!("{}s", self.options.drain_time.as_secs()),
                "mode": "Serve",
                "service_cluster": self.options.service_cluster.clone().unwrap_or_default(),
                "service_node": self.options.service_node.clone().unwrap_or_default(),
                "disable_hot_restart": true,
            },
        })
    }

    pub fn config_dump(&self) -> serde_json::Value {
        let last_updated = httpdate::fmt_http_date(self.started_at);
        crate::admin::config_dump::config_dump(&self.bootstrap_json, &last_updated)
    }
}

/// Builds clusters and waits (bounded) for DNS clusters' first answers.
pub async fn build_clusters(configs: &[model::Cluster], store: &Arc<Store>) -> HashMap<String, Arc<Cluster>> {
    let mut clusters = HashMap::with_capacity(configs.len());
    let mut warming = Vec::new();
    for c in configs {
        let cluster = Cluster::build(c.clone(), store);
        if upstream::needs_dns(c) {
            warming.push(Arc::clone(&cluster));
        }
        clusters.insert(c.name.clone(), cluster);
    }
    let first_wait = Duration::from_secs(5);
    futures_util::future::join_all(warming.iter().map(|c| upstream::dns::spawn_dns(c, first_wait))).await;
    clusters
}

/// Builds every listener's runtime state; errors name the listener.
pub fn build_listeners(
    configs: &[model::Listener],
    clusters: &HashMap<String, Arc<Cluster>>,
    store: &Arc<Store>,
) -> Result<Vec<Arc<ListenerRt>>, String> {
    configs.iter().map(|l| build_listener(l, clusters, store).map(Arc::new)).collect()
}

fn first_local_ip() -> Option<IpAddr> {
    let addrs = if_addrs::get_if_addrs().ok()?;
    addrs.iter().map(|i| i.ip()).find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

/// Runs the proxy on a validated bootstrap until `shutdown` resolves, SIGTERM/SIGINT or
/// `/quitquitquit`; then drains for at most `options.drain_time`.
pub async fn run(
    bootstrap: model::Bootstrap,
    bootstrap_json: serde_json::Value,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let store = Store::new();
    let clusters = build_clusters(&bootstrap.clusters, &store).await;
    upstream::eds_rest::spawn_all(&clusters, &bootstrap.node);
    let listeners = build_listeners(&bootstrap.listeners, &clusters, &store).map_err(StartError::Build)?;
    store.gauge("cluster_manager.active_clusters").set(clusters.len() as i64);
    store.counter("cluster_manager.cluster_added").add(clusters.len() as u64);
    store.gauge("cluster_manager.warming_clusters").set(0);
    store.counter("listener_manager.listener_added").add(listeners.len() as u64);
    store.gauge("listener_manager.total_listeners_active").set(listeners.len() as i64);
    store.gauge("server.live").set(1);
    store.gauge("server.concurrency").set(options.concurrency as i64);

    let bootstrap = Arc::new(bootstrap);
    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot {
        listeners: listeners.clone(),
        clusters,
        bootstrap: Arc::clone(&bootstrap),
    }));
    let shared = Arc::new(Shared {
        snapshot,
        stats: Arc::clone(&store),
        local_ip: first_local_ip(),
        health_failing: AtomicBool::new(false),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let server = Arc::new(Server {
        shared: Arc::clone(&shared),
        options: options.clone(),
        bootstrap: Arc::clone(&bootstrap),
        bootstrap_json,
        started: Instant::now(),
        started_at: SystemTime::now(),
        bound: Mutex::new(Vec::new()),
        shutdown_tx,
        quit: Notify::new(),
        draining: AtomicBool::new(false),
    });

    // Bind everything before serving anything: a bind failure stops startup cleanly.
    let mut sockets = Vec::new();
    for l in &listeners {
        let addr = l.config.address;
        let socket =
            listener::bind(addr).map_err(|source| StartError::Bind { name: l.config.name.clone(), addr, source })?;
        let local = socket.local_addr().unwrap_or(addr);
        tracing::info!(listener.name = %l.config.name, listener.address = %local, "listener bound");
        if let Ok(mut b) = server.bound.lock() {
            b.push((l.config.name.clone(), local));
        }
        sockets.push((socket, Arc::clone(l)));
    }
    let admin_socket = match &bootstrap.admin {
        Some(admin) => {
            let socket = listener::bind(admin.address)
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
    let drain = Drain { shutdown: shutdown_rx, alive: alive_tx };
    let mut stops = Vec::new();
    for (socket, l) in sockets {
        let (stop_tx, stop_rx) = watch::channel(false);
        listener::spawn_listener(socket, l, Arc::clone(&shared), drain.clone(), stop_rx);
        stops.push(stop_tx);
    }
    drop(drain);
    if let Some((socket, local)) = admin_socket {
        crate::admin::spawn_admin(socket, Arc::clone(&server));
        if let Some(path) = &options.admin_address_path {
            std::fs::write(path, local.to_string())
                .map_err(|source| StartError::AdminAddressPath { path: path.clone(), source })?;
        }
    }
    tracing::info!("all listeners started");

    tokio::select! {
        _ = shutdown => {}
        _ = server.quit.notified() => tracing::info!("shutdown requested through the admin"),
        _ = signal_terminate() => tracing::info!("caught termination signal, draining"),
    }
    server.draining.store(true, Ordering::Relaxed);
    let _ = server.shutdown_tx.send(true);
    // Every connection holds a sender; recv() returns None once the last one closed.
    match tokio::time::timeout(options.drain_time, alive_rx.recv()).await {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            drain.seconds = options.drain_time.as_secs(),
            "drain time over; closing remaining connections"
        ),
    }
    drop(stops);
    Ok(())
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
