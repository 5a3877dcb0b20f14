//! Builds the next runtime snapshot from an effective config and the running one, keeping
//! the identity of everything that did not change: unchanged clusters are the same `Arc`
//! (pools, health, balancer position), changed clusters adopt the hosts that stayed, and a
//! listener whose config, routes and clusters are unchanged keeps its compiled tables.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::model::{self, DiscoveryType, EdsSource, Listener, RouteConfig, RouteSource};
use crate::listener::manager::{BindError, ListenerManager, Plan};
use crate::snapshot::{rebuild_listener, LogWriters, Snapshot};
use crate::stats::Store;
use crate::upstream::{self, eds_rest, Cluster};

use super::state::{same_arc, Diff, Effective};

pub struct Built {
    pub snapshot: Snapshot,
    pub plan: Plan,
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
    let clusters = build_clusters(prev, eff, diff, store, &bootstrap.node).await;
    let mut listeners = Vec::with_capacity(eff.listeners.len());
    for name in listener_order {
        let Some(cfg) = eff.listeners.get(name) else { continue };
        let routes = route_config_for(cfg, eff);
        let reused = prev.listeners.iter().find(|l| {
            l.config == *cfg && same_arc(&l.route_config, &routes) && l.hcm.routes.clusters_unchanged(&clusters)
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
    Ok(Built { snapshot: Snapshot { listeners, clusters, bootstrap }, plan })
}

/// The route configuration a listener serves: inline, or its RDS name's current config (an
/// RDS listener whose file has not loaded yet serves an empty table: 404).
fn route_config_for(l: &Listener, eff: &Effective) -> Arc<RouteConfig> {
    match &l.hcm.routes {
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
    node: &model::Node,
) -> HashMap<String, Arc<Cluster>> {
    let mut clusters = HashMap::with_capacity(eff.clusters.len());
    let mut fresh = Vec::new();
    for (name, cfg) in &eff.clusters {
        let cluster = match prev.clusters.get(name) {
            Some(old) if old.config == *cfg => Arc::clone(old),
            old => {
                let c = Cluster::build_adopting(cfg.clone(), store, old.map(Arc::as_ref));
                fresh.push(Arc::clone(&c));
                c
            }
        };
        if let DiscoveryType::Eds { service_name, source: EdsSource::File(_) } = &cfg.discovery {
            let touched = diff.endpoints.added.iter().chain(&diff.endpoints.modified).any(|(s, _)| s == service_name);
            if touched || fresh.iter().any(|f| Arc::ptr_eq(f, &cluster)) {
                if let Some(eps) = eff.endpoints.get(service_name) {
                    cluster.set_hosts(eds_rest::specs_from_assignment(eps));
                }
            }
        }
        clusters.insert(name.clone(), cluster);
    }
    let dns: Vec<&Arc<Cluster>> = fresh.iter().filter(|c| upstream::needs_dns(&c.config)).collect();
    futures_util::future::join_all(dns.iter().map(|c| upstream::dns::spawn_dns(c, DNS_WARM_WAIT))).await;
    for c in &fresh {
        if let DiscoveryType::Eds {
            service_name,
            source: EdsSource::Rest { cluster: mgmt, refresh_delay, request_timeout },
        } = &c.config.discovery
        {
            match clusters.get(mgmt) {
                Some(m) => {
                    eds_rest::spawn_rest_eds(c, m, service_name.clone(), *refresh_delay, *request_timeout, node.clone())
                }
                None => {
                    tracing::error!(cluster.name = %c.name(), eds.cluster = %mgmt, "EDS management cluster not found")
                }
            }
        }
    }
    clusters
}
