//! Builds the next runtime snapshot from an effective config and the running one, keeping
//! the identity of everything that did not change: unchanged clusters are the same `Arc`
//! (pools, health, balancer position), changed clusters adopt the hosts that stayed, and a
//! listener whose config, routes and clusters are unchanged keeps its compiled tables.
//!
//! Building has no effect on what runs: new clusters are staged (their hosts change nothing
//! outside them), the endpoints an EDS update (a file or a REST poller) gives a running cluster
//! are returned as a [`HostUpdate`] instead of set, and new listeners' sockets are bound but
//! not served (a failure drops them). [`Staged::commit`] is where all of it takes effect,
//! after the swap: host updates go to each cluster's membership writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::access_log::LogWriters;
use crate::config::model::{self, DiscoveryType, EdsConfigSource, HttpConnectionManager, RouteConfig, RouteSource};
use crate::listener::manager::{BindError, ListenerManager, Plan};
use crate::snapshot::{rebuild_listener, Snapshot, Terminal};
use crate::stats::Store;
use crate::upstream::membership::Input;
use crate::upstream::{self, eds_rest, Cluster, HostSpec};
use crate::xds::SourceHandle;

use super::state::{same_arc, Diff, Effective};

pub struct Built {
    pub snapshot: Snapshot,
    pub plan: Plan,
    pub staged: Staged,
}

/// The endpoints an EDS file gives a cluster that runs already (kept by the new snapshot).
pub struct HostUpdate {
    pub cluster: Arc<Cluster>,
    pub hosts: Vec<HostSpec>,
}

/// What the commit makes take effect besides the snapshot swap and the listeners.
#[derive(Default)]
pub struct Staged {
    /// New clusters, with the running cluster each replaces.
    pub clusters: Vec<(Arc<Cluster>, Option<Arc<Cluster>>)>,
    pub hosts: Vec<HostUpdate>,
}

impl Staged {
    /// Runs after the new snapshot is stored: running clusters take their new endpoints, new
    /// clusters go live (closing the idle connections of the hosts they dropped) and start
    /// polling REST EDS through the clusters `lookup` finds by name, delivering to `sources`.
    pub async fn commit(self, lookup: &eds_rest::Lookup, node: &model::Node, sources: &SourceHandle) {
        for u in self.hosts {
            u.cluster.update_membership(Input::Eds(u.hosts)).await;
        }
        for (c, replaced) in self.clusters {
            c.go_live(replaced.as_deref());
            if let DiscoveryType::Eds {
                service_name,
                source: EdsConfigSource::Rest { cluster: mgmt, refresh_delay, request_timeout, transport_v3 },
            } = &c.config.discovery
            {
                let eds = eds_rest::RestEds {
                    management: mgmt.clone(),
                    service_name: service_name.clone(),
                    refresh_delay: *refresh_delay,
                    request_timeout: *request_timeout,
                    transport_v3: *transport_v3,
                    node: node.clone(),
                };
                eds_rest::spawn_rest_eds(&c, Arc::clone(lookup), sources.clone(), eds);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Listener(String),
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// How long a new DNS cluster may take to resolve before the snapshot goes live anyway.
const DNS_WARM_WAIT: Duration = Duration::from_secs(5);

#[allow(clippy::too_many_arguments)]
pub async fn build(
    prev: &Snapshot,
    eff: &Effective,
    diff: &Diff,
    listener_order: &[String],
    bootstrap: Arc<model::Bootstrap>,
    store: &Arc<Store>,
    writers: &LogWriters,
    manager: &ListenerManager,
) -> Result<Built, BuildError> {
    let (clusters, staged) = build_clusters(prev, eff, diff, store, manager.runtime()).await;
    let mut listeners = Vec::with_capacity(eff.listeners.len());
    for name in listener_order {
        let Some(cfg) = eff.listeners.get(name) else { continue };
        let routes: Vec<Option<Arc<RouteConfig>>> =
            cfg.chains().map(|c| c.hcm().map(|h| route_config_for(h, eff))).collect();
        let reused = prev.listeners.iter().find(|l| {
            l.config == *cfg
                && l.chains.iter().zip(&routes).all(|(c, r)| match (&c.terminal, r) {
                    (Terminal::Http { hcm, route_config }, Some(r)) => {
                        same_arc(route_config, r) && hcm.routes.clusters_unchanged(&clusters)
                    }
                    (Terminal::Tcp(_) | Terminal::Empty, None) => true,
                    _ => false,
                })
        });
        let l = match reused {
            Some(l) => Arc::clone(l),
            None => {
                let last = prev.listeners.iter().find(|l| l.config.name == *name).map(|l| (&**l, &prev.clusters));
                Arc::new(
                    rebuild_listener(cfg, routes, &clusters, store, Some(writers), last)
                        .map_err(BuildError::Listener)?,
                )
            }
        };
        listeners.push(l);
    }
    let plan = manager.plan(&listeners)?;
    Ok(Built { snapshot: Snapshot { listeners, clusters, bootstrap }, plan, staged })
}

/// The route configuration a connection manager serves: inline, or its RDS name's current config (an
/// RDS listener whose file has not loaded yet serves an empty table: 404).
fn route_config_for(h: &HttpConnectionManager, eff: &Effective) -> Arc<RouteConfig> {
    match &h.routes {
        RouteSource::Inline(rc) => Arc::new(rc.clone()),
        RouteSource::Rds { route_config_name, .. } => eff
            .routes
            .get(route_config_name)
            .cloned()
            .unwrap_or_else(|| Arc::new(RouteConfig::empty_rds(route_config_name))),
    }
}

async fn build_clusters(
    prev: &Snapshot,
    eff: &Effective,
    diff: &Diff,
    store: &Arc<Store>,
    runtime: &Arc<crate::runtime::Runtime>,
) -> (HashMap<String, Arc<Cluster>>, Staged) {
    let mut clusters = HashMap::with_capacity(eff.clusters.len());
    let mut staged = Staged::default();
    for (name, cfg) in &eff.clusters {
        let (cluster, fresh) = match prev.clusters.get(name) {
            Some(old) if old.config == *cfg => (Arc::clone(old), false),
            old => {
                let c = Cluster::build_adopting(cfg.clone(), store, old.map(Arc::as_ref));
                c.use_runtime(runtime);
                staged.clusters.push((Arc::clone(&c), old.cloned()));
                (c, true)
            }
        };
        // Endpoints come through the core whatever the source (a file, a REST poller).
        if let DiscoveryType::Eds { service_name, .. } = &cfg.discovery {
            let touched = diff.endpoints.added.iter().chain(&diff.endpoints.modified).any(|(s, _)| s == service_name);
            if let (true, Some(eps)) = (touched || fresh, eff.endpoints.get(service_name)) {
                let hosts = eds_rest::specs_from_assignment(eps);
                if fresh {
                    // Staged: nothing outside the new cluster changes.
                    cluster.set_hosts(hosts);
                } else {
                    staged.hosts.push(HostUpdate { cluster: Arc::clone(&cluster), hosts });
                }
            }
        }
        clusters.insert(name.clone(), cluster);
    }
    let dns: Vec<&Arc<Cluster>> =
        staged.clusters.iter().map(|(c, _)| c).filter(|c| upstream::needs_dns(&c.config)).collect();
    futures_util::future::join_all(dns.iter().map(|c| upstream::dns::spawn_dns(c, DNS_WARM_WAIT))).await;
    (clusters, staged)
}
