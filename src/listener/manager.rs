//! The running listeners: which sockets are open, and the changes a new snapshot asks for.
//!
//! A reload first [`ListenerManager::plan`]s (binds every new or moved listener: a bind
//! failure rejects the update while nothing changed), then, after the snapshot swap,
//! [`ListenerManager::commit`]s: new accept loops start, and removed or moved listeners stop
//! accepting and drain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{bind, spawn_listener, Drain};
use crate::server::ProcessState;
use crate::snapshot::{ListenerRt, Snapshot};

struct Running {
    configured: SocketAddr,
    bound: SocketAddr,
    stop: watch::Sender<bool>,
}

/// Sockets bound for a snapshot that is not live yet.
pub struct Plan {
    bind: Vec<(Arc<ListenerRt>, TcpListener, SocketAddr)>,
    stop: Vec<String>,
    order: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("listener '{name}': cannot bind {addr}: {source}")]
pub struct BindError {
    pub name: String,
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

pub struct ListenerManager {
    shared: Arc<ProcessState>,
    drain: Drain,
    running: HashMap<String, Running>,
    order: Vec<String>,
}

impl ListenerManager {
    pub fn new(shared: Arc<ProcessState>, drain: Drain) -> Self {
        ListenerManager { shared, drain, running: HashMap::new(), order: Vec::new() }
    }

    /// The process's runtime (the clusters a reload builds read their runtime keys there).
    pub fn runtime(&self) -> &Arc<crate::runtime::Runtime> {
        &self.shared.runtime
    }

    /// Binds what `listeners` need that is not open yet.
    pub fn plan(&self, listeners: &[Arc<ListenerRt>]) -> Result<Plan, BindError> {
        let mut bind_list = Vec::new();
        for l in listeners {
            let name = &l.config.name;
            let addr = l.config.address;
            if self.running.get(name).is_some_and(|r| r.configured == addr) {
                continue;
            }
            let socket = bind(addr).map_err(|source| BindError { name: name.clone(), addr, source })?;
            let local = socket.local_addr().unwrap_or(addr);
            bind_list.push((Arc::clone(l), socket, local));
        }
        let stop = self
            .running
            .iter()
            .filter(|(name, r)| !listeners.iter().any(|l| &l.config.name == *name && l.config.address == r.configured))
            .map(|(name, _)| name.clone())
            .collect();
        Ok(Plan { bind: bind_list, stop, order: listeners.iter().map(|l| l.config.name.clone()).collect() })
    }

    /// Starts the new accept loops and stops the old ones; their connections drain, routed by
    /// the listener's last version from `prev`, kept alive here for the drain time.
    pub fn commit(&mut self, plan: Plan, prev: &Snapshot) {
        for name in plan.stop {
            if let Some(r) = self.running.remove(&name) {
                tracing::info!(listener.name = %name, listener.address = %r.bound, "listener stops accepting; draining");
                let _ = r.stop.send(true);
                let draining = self.shared.stats.gauge("listener_manager.total_listeners_draining");
                draining.inc();
                let drain_time = self.shared.drain_time;
                let last = prev.listeners.iter().find(|l| l.config.name == name).cloned();
                tokio::spawn(async move {
                    tokio::time::sleep(drain_time).await;
                    draining.dec();
                    drop(last);
                });
            }
        }
        for (l, socket, bound) in plan.bind {
            let (stop_tx, stop_rx) = watch::channel(false);
            tracing::info!(listener.name = %l.config.name, listener.address = %bound, "listener bound");
            spawn_listener(socket, Arc::clone(&l), Arc::clone(&self.shared), self.drain.clone(), stop_rx);
            self.running.insert(l.config.name.clone(), Running { configured: l.config.address, bound, stop: stop_tx });
        }
        self.order = plan.order;
        self.shared.stats.gauge("listener_manager.total_listeners_active").set(self.running.len() as i64);
    }

    /// Listener names and bound addresses, in configuration order.
    pub fn bound(&self) -> Vec<(String, SocketAddr)> {
        self.order.iter().filter_map(|n| self.running.get(n).map(|r| (n.clone(), r.bound))).collect()
    }
}
