//! The reloader's core: per-type maps of the resources every source delivered, by name, and
//! the only writer of the running snapshot.
//!
//! ```text
//! Delivery [Update] --next (pure: apply to a copy, prune, check references)--> Effective'
//!   --diff--> build (pure: reuse unchanged clusters and listeners, bind new sockets unserved)
//!   --> store the snapshot --> commit (accept loops, host sets, REST EDS sources) --> ACK
//! any error on the way --> NACK (errors), nothing that runs changed
//! ```
//! The core knows nothing of files: the file source (`files`) sends the same updates a
//! management server would, and REST EDS pollers send `ClusterLoadAssignment` updates by
//! service name on the same channel.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::access_log::LogWriters;
use crate::config::model::{self, DiscoveryType, RouteSource};
use crate::config::{self as cfg, ConfigError, ConfigErrors};
use crate::listener::manager::ListenerManager;
use crate::server::ProcessState;
use crate::snapshot::Snapshot;
use crate::xds::{Delivery, Resource, Response, SourceHandle, TypeUrl, Update};

use super::build;
use super::state::{diff, Diff, Effective};

/// The resources by type and name, and the listeners' order (first delivered first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub maps: Effective,
    pub order: Vec<String>,
}

impl Resources {
    /// The resources `updates` make of these, or every error found; `self` is not touched.
    pub fn next(&self, updates: &[Update]) -> Result<Resources, ConfigErrors> {
        let mut next = self.clone();
        let mut errors = Vec::new();
        let mut origin_of: HashMap<&str, &PathBuf> = HashMap::new();
        for u in updates {
            for name in &u.removed {
                next.remove(u.type_url, name);
            }
            for (name, r) in &u.upserted {
                if r.type_url() != u.type_url {
                    errors.push(ConfigError {
                        file: u.origin.clone(),
                        path: format!("resources[{name:?}]"),
                        message: format!("a {} in an update of {}", r.type_url(), u.type_url),
                    });
                    continue;
                }
                if u.type_url == TypeUrl::Listener {
                    origin_of.insert(name, &u.origin);
                }
                next.upsert(name, r.clone());
            }
        }
        next.prune();
        let names: HashSet<String> = next.maps.clusters.keys().cloned().collect();
        for name in &next.order {
            let Some(l) = next.maps.listeners.get(name) else { continue };
            for mut e in cfg::check_cluster_refs(std::slice::from_ref(l), &names, &format!("listeners[{name:?}]")) {
                e.file = origin_of.get(name.as_str()).map(|p| p.to_path_buf()).unwrap_or_default();
                e.path = e.path.replacen(&format!("listeners[{name:?}][0]"), &format!("listeners[{name:?}]"), 1);
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    fn upsert(&mut self, name: &str, r: Resource) {
        let m = &mut self.maps;
        match r {
            Resource::Listener(l) => {
                if m.listeners.insert(name.to_string(), l).is_none() {
                    self.order.push(name.to_string());
                }
            }
            Resource::Cluster(c) => {
                m.clusters.insert(name.to_string(), c);
            }
            Resource::RouteConfiguration(rc) => {
                m.routes.insert(name.to_string(), rc);
            }
            Resource::ClusterLoadAssignment(eps) => {
                m.endpoints.insert(name.to_string(), eps);
            }
        }
    }

    fn remove(&mut self, t: TypeUrl, name: &str) {
        let m = &mut self.maps;
        match t {
            TypeUrl::Listener => {
                if m.listeners.remove(name).is_some() {
                    self.order.retain(|n| n != name);
                }
            }
            TypeUrl::Cluster => {
                m.clusters.remove(name);
            }
            TypeUrl::RouteConfiguration => {
                m.routes.remove(name);
            }
            TypeUrl::ClusterLoadAssignment => {
                m.endpoints.remove(name);
            }
        }
    }

    /// Drops route configurations no listener names and assignments no EDS cluster uses, as a
    /// subscription ends when nothing watches its resource.
    fn prune(&mut self) {
        let m = &mut self.maps;
        let rds: HashSet<String> = m.rds_names().map(str::to_string).collect();
        m.routes.retain(|n, _| rds.contains(n));
        let eds: HashSet<&str> = m
            .clusters
            .values()
            .filter_map(|c| match &c.discovery {
                DiscoveryType::Eds { service_name, .. } => Some(service_name.as_str()),
                _ => None,
            })
            .collect();
        m.endpoints.retain(|n, _| eds.contains(n.as_str()));
    }
}

/// The reloader's state: the resources the running snapshot was built from.
pub struct Core {
    shared: Arc<ProcessState>,
    writers: Arc<LogWriters>,
    manager: ListenerManager,
    resources: Resources,
    bootstrap: Arc<model::Bootstrap>,
    /// Where the REST EDS pollers the commit starts deliver.
    sources: SourceHandle,
    /// Whether a delivery was applied yet (the first one builds even when it is empty).
    started: bool,
}

impl Core {
    pub fn new(
        shared: Arc<ProcessState>,
        writers: Arc<LogWriters>,
        manager: ListenerManager,
        bootstrap: Arc<model::Bootstrap>,
        sources: SourceHandle,
    ) -> Core {
        Core { shared, writers, manager, resources: Resources::default(), bootstrap, sources, started: false }
    }

    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// Applies `updates` together: ACK once the new snapshot serves, NACK with the errors and
    /// nothing changed otherwise.
    pub async fn apply(&mut self, updates: Vec<Update>) -> Response {
        let next = match self.resources.next(&updates) {
            Ok(n) => n,
            Err(e) => return Response::Nack(e),
        };
        let d = diff(&self.resources.maps, &next.maps);
        if d.is_empty() && self.started {
            self.resources.order = next.order;
            return Response::Ack;
        }
        match self.commit(next, &d).await {
            Ok(()) => {
                self.started = true;
                Response::Ack
            }
            Err(e) => Response::Nack(ConfigErrors(vec![ConfigError {
                file: PathBuf::new(),
                path: String::new(),
                message: e.to_string(),
            }])),
        }
    }

    /// Answers deliveries until `shutdown` flips; `bound` learns the listening addresses
    /// before the source learns the outcome.
    pub async fn serve(
        mut self,
        mut rx: mpsc::Receiver<Delivery>,
        bound: impl Fn(Vec<(String, SocketAddr)>) + Send,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                d = rx.recv() => {
                    let Some(d) = d else { return };
                    let response = self.apply(d.updates).await;
                    bound(self.manager.bound());
                    let _ = d.reply.send(response);
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn commit(&mut self, next: Resources, d: &Diff) -> Result<(), build::BuildError> {
        let shared = Arc::clone(&self.shared);
        let prev = shared.snapshot.load_full();
        let built = build::build(
            &prev,
            &next.maps,
            d,
            &next.order,
            Arc::clone(&self.bootstrap),
            &shared.stats,
            &self.writers,
            &self.manager,
        )
        .await?;
        let removed_clusters: Vec<_> = prev
            .clusters
            .iter()
            .filter(|(n, _)| !built.snapshot.clusters.contains_key(*n))
            .map(|(_, c)| Arc::clone(c))
            .collect();
        // Listeners removed or rebuilt: the old version's stats may be orphans once it drains.
        let replaced_listeners: Vec<_> = prev
            .listeners
            .iter()
            .filter(|l| !built.snapshot.listeners.iter().any(|n| Arc::ptr_eq(n, l)))
            .map(|l| {
                let prefixes: Vec<String> = l.config.hcms().map(|h| h.stat_prefix.clone()).collect();
                let tcp: Vec<String> =
                    l.config.chains().filter_map(|c| c.tcp_proxy()).map(|t| t.stat_prefix.clone()).collect();
                (Arc::downgrade(l), l.config.stat_name(), (prefixes, tcp))
            })
            .collect();
        // Connections on chains this reload changes or removes keep their last version.
        let retired = crate::snapshot::retire_chains(&prev, &built.snapshot);
        // Counted before the swap, as Envoy counts before the new version serves: whoever sees
        // the new configuration at work finds it counted.
        count_changes(&shared, d, &prev, built.snapshot.clusters.len());
        shared.snapshot.store(Arc::new(built.snapshot));
        if !retired.is_empty() {
            let drain_time = shared.drain_time;
            tokio::spawn(async move {
                tokio::time::sleep(drain_time).await;
                drop(retired);
            });
        }
        let snapshots = Arc::clone(&shared.snapshot);
        let lookup: crate::upstream::eds_rest::Lookup =
            Arc::new(move |name: &str| snapshots.load().clusters.get(name).cloned());
        built.staged.commit(&lookup, &self.bootstrap.node, &self.sources).await;
        if !self.started {
            first_health_rounds(&shared.snapshot.load_full()).await;
        }
        self.manager.commit(built.plan, &prev);
        for c in removed_clusters {
            // In-flight requests hold their own Arc; idle connections can go now.
            c.shutdown();
            let (stats, prefix) = (Arc::clone(&shared.stats), format!("cluster.{}.", c.config.stat_name()));
            forget_when_gone(&shared, Arc::downgrade(&c), move || stats.retain_live(&prefix));
        }
        for (weak, listener_name, (stat_prefixes, tcp_prefixes)) in replaced_listeners {
            let s = Arc::clone(&shared);
            forget_when_gone(&shared, weak, move || {
                // Another listener may use the same address or stat prefix: its handles keep
                // the shared names, and only names no listener uses go (RDS stats included).
                let snap = s.snapshot.load();
                if !snap.listeners.iter().any(|l| l.config.stat_name() == listener_name) {
                    s.stats.retain_live(&format!("listener.{listener_name}."));
                }
                for stat_prefix in &stat_prefixes {
                    // Listeners bound to port 0 share their name: only unheld handles go.
                    s.stats.retain_live(&format!("listener.{listener_name}.http.{stat_prefix}."));
                    if !snap.listeners.iter().flat_map(|l| l.config.hcms()).any(|h| h.stat_prefix == *stat_prefix) {
                        s.stats.retain_live(&format!("http.{stat_prefix}."));
                    }
                }
                // Envoy's `tcp.<stat_prefix>.*` go with the last chain that used the prefix
                // (and start again at 0 if it comes back); those of open connections stay.
                for tcp_prefix in &tcp_prefixes {
                    let mut used = snap.listeners.iter().flat_map(|l| l.config.chains()).filter_map(|c| c.tcp_proxy());
                    if !used.any(|t| t.stat_prefix == *tcp_prefix) {
                        s.stats.retain_live(&format!("tcp.{tcp_prefix}."));
                    }
                }
            });
        }
        let old = std::mem::replace(&mut self.resources, next);
        // What the new snapshot replaced can hold a 10,000-route configuration and its compiled
        // table: freeing them takes milliseconds, which would delay the first requests on the
        // new snapshot when the runtime has one worker. A blocking-pool thread frees them.
        tokio::task::spawn_blocking(move || drop((prev, old)));
        Ok(())
    }
}

/// Drops a removed cluster's or listener's stats from the store once its last user has ended
/// (the last `Arc` gone), so thousands of reloads do not grow `/stats`. Bounded: it checks once
/// a second for at most the drain time plus a minute. A cluster or listener of the same name
/// added back meanwhile holds its own handles, which `retain_live` keeps.
/// Envoy's startup order: a cluster with active health checks initializes once each of its
/// hosts has had its first check, and listeners start accepting after that, so the first
/// requests find the hosts that answer instead of none. Bounded by the slowest first check
/// (its `initial_jitter` plus `timeout`); the sockets are bound already, so a client that
/// connects meanwhile waits in the backlog.
async fn first_health_rounds(snapshot: &Snapshot) {
    let Some(bound) = snapshot.clusters.values().filter_map(|c| c.first_health_round()).max() else { return };
    let deadline = tokio::time::Instant::now() + bound;
    tracing::info!(wait.ms = bound.as_millis() as u64, "waiting for the first round of active health checks");
    while snapshot.clusters.values().any(|c| c.first_health_round().is_some()) {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("first round of active health checks unfinished; listeners start anyway");
            return;
        }
        tokio::time::sleep(FIRST_ROUND_POLL).await;
    }
}

/// How often startup looks whether the first health-check round is over.
const FIRST_ROUND_POLL: std::time::Duration = std::time::Duration::from_millis(10);

fn forget_when_gone<T: Send + Sync + 'static>(
    shared: &ProcessState,
    gone: std::sync::Weak<T>,
    forget: impl FnOnce() + Send + 'static,
) {
    let checks = shared.drain_time.as_secs().saturating_add(60);
    tokio::spawn(async move {
        for _ in 0..checks {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if gone.upgrade().is_none() {
                forget();
                return;
            }
        }
    });
}

fn count_changes(shared: &ProcessState, d: &Diff, prev: &Snapshot, active_clusters: usize) {
    let s = &shared.stats;
    let initial = prev.listeners.is_empty() && prev.clusters.is_empty();
    s.counter("listener_manager.listener_added").add(d.listeners.added.len() as u64);
    s.counter("cluster_manager.cluster_added").add(d.clusters.added.len() as u64);
    if !initial {
        s.counter("listener_manager.listener_modified").add(d.listeners.modified.len() as u64);
        s.counter("listener_manager.listener_removed").add(d.listeners.removed.len() as u64);
        s.counter("cluster_manager.cluster_modified").add(d.clusters.modified.len() as u64);
        s.counter("cluster_manager.cluster_removed").add(d.clusters.removed.len() as u64);
    }
    s.gauge("cluster_manager.active_clusters").set(active_clusters as i64);
    s.gauge("cluster_manager.warming_clusters").set(0);
    if d.listeners.modified.iter().flat_map(|(_, l)| l.hcms()).any(|h| matches!(h.routes, RouteSource::Rds { .. }))
        || !d.routes.is_empty()
    {
        // RDS-fed tables were recompiled.
        tracing::debug!(routes = %d.routes.summary(), "route configurations changed");
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
