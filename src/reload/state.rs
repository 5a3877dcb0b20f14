//! The configuration as a whole: what the bootstrap and every discovery file currently say,
//! flattened into one [`Effective`] config, and the pure [`diff`] between two of them.
//!
//! `diff(old, new)` lists what a reload adds, modifies and removes; [`apply`] replays such a
//! diff, so `apply(empty, diff(empty, s)) == s` and `apply(s, diff(s, empty)) == empty`.
//!
//! Route configurations and endpoint lists are shared (`Arc`) with the sources they come from:
//! a 10,000-route configuration is neither copied into the effective config, nor into a diff,
//! nor compared when it is the very same `Arc` (the loader keeps the old `Arc` when a file's
//! content did not change).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::model::{Cluster, Listener, LocalityEndpoints, RouteConfig, RouteSource};

/// Everything a snapshot is built from, by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Effective {
    pub listeners: BTreeMap<String, Listener>,
    pub clusters: BTreeMap<String, Cluster>,
    /// Route configurations from RDS files, by route config name.
    pub routes: BTreeMap<String, Arc<RouteConfig>>,
    /// Endpoints from EDS files, by EDS service name.
    pub endpoints: BTreeMap<String, Arc<Vec<LocalityEndpoints>>>,
}

/// Added, modified and removed entries of one kind of resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes<T> {
    pub added: Vec<(String, T)>,
    pub modified: Vec<(String, T)>,
    pub removed: Vec<String>,
}

impl<T> Default for Changes<T> {
    fn default() -> Self {
        Changes { added: Vec::new(), modified: Vec::new(), removed: Vec::new() }
    }
}

impl<T> Changes<T> {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }

    /// `+a ~b -c` for logs and `/reloads`.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "added": self.added.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "modified": self.modified.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "removed": self.removed,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    pub listeners: Changes<Listener>,
    pub clusters: Changes<Cluster>,
    pub routes: Changes<Arc<RouteConfig>>,
    pub endpoints: Changes<Arc<Vec<LocalityEndpoints>>>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty() && self.clusters.is_empty() && self.routes.is_empty() && self.endpoints.is_empty()
    }

    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "listeners": self.listeners.summary(),
            "clusters": self.clusters.summary(),
            "routes": self.routes.summary(),
            "endpoints": self.endpoints.summary(),
        })
    }
}

fn diff_map<T: Clone>(
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    same: impl Fn(&T, &T) -> bool,
) -> Changes<T> {
    let mut c = Changes::default();
    for (name, v) in new {
        match old.get(name) {
            None => c.added.push((name.clone(), v.clone())),
            Some(o) if !same(o, v) => c.modified.push((name.clone(), v.clone())),
            Some(_) => {}
        }
    }
    c.removed = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
    c
}

fn apply_map<T: Clone>(map: &mut BTreeMap<String, T>, c: &Changes<T>) {
    for name in &c.removed {
        map.remove(name);
    }
    for (name, v) in c.added.iter().chain(&c.modified) {
        map.insert(name.clone(), v.clone());
    }
}

/// What changes from `old` to `new`.
pub fn diff(old: &Effective, new: &Effective) -> Diff {
    Diff {
        listeners: diff_map(&old.listeners, &new.listeners, PartialEq::eq),
        clusters: diff_map(&old.clusters, &new.clusters, PartialEq::eq),
        routes: diff_map(&old.routes, &new.routes, same_arc),
        endpoints: diff_map(&old.endpoints, &new.endpoints, same_arc),
    }
}

/// The same `Arc`, or equal contents.
pub fn same_arc<T: PartialEq>(a: &Arc<T>, b: &Arc<T>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// `state` with `d` applied.
pub fn apply(state: &Effective, d: &Diff) -> Effective {
    let mut s = state.clone();
    apply_map(&mut s.listeners, &d.listeners);
    apply_map(&mut s.clusters, &d.clusters);
    apply_map(&mut s.routes, &d.routes);
    apply_map(&mut s.endpoints, &d.endpoints);
    s
}

impl Effective {
    /// Route configurations the listeners name through RDS.
    pub fn rds_names(&self) -> impl Iterator<Item = &str> {
        self.listeners.values().flat_map(|l| l.hcms()).filter_map(|h| match &h.routes {
            RouteSource::Rds { route_config_name, .. } => Some(route_config_name.as_str()),
            RouteSource::Inline(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{DiscoveryType, Endpoint, EndpointAddress};
    use std::time::Duration;

    fn cluster(name: &str, port: u16) -> Cluster {
        Cluster {
            name: name.into(),
            alt_stat_name: None,
            discovery: DiscoveryType::Static,
            lb_policy: Default::default(),
            connect_timeout: Duration::from_secs(1),
            dns_refresh_rate: Duration::from_secs(5),
            dns_resolvers: vec![],
            dns_options: Default::default(),
            dns_own_resolver: false,
            respect_dns_ttl: false,
            dns_failure_refresh_rate: None,
            dns_lookup_family: Default::default(),
            endpoints: vec![LocalityEndpoints {
                priority: 0,
                weight: 1,
                locality: Default::default(),
                endpoints: vec![Endpoint {
                    address: EndpointAddress::Ip(([127, 0, 0, 1], port).into()),
                    hostname: None,
                    weight: 1,
                    health: Default::default(),
                    hc: Default::default(),
                    hash_key: None,
                }],
            }],
            protocol: Default::default(),
            http2: Default::default(),
            auto_config: false,
            tls: None,
            idle_timeout: None,
            per_connection_buffer_limit_bytes: 1 << 20,
            circuit_breakers: Default::default(),
            health_checks: Vec::new(),
            outlier_detection: None,
            panic_threshold: 50.0,
            locality_weighted_lb: false,
            lb_tuning: Default::default(),
            consistent_hashing: Default::default(),
            h1_proper_case: false,
            h1_trailers: false,
        }
    }

    fn state(clusters: &[(&str, u16)], eds: &[&str]) -> Effective {
        let mut s = Effective::default();
        for (n, p) in clusters {
            s.clusters.insert(n.to_string(), cluster(n, *p));
        }
        for e in eds {
            s.endpoints.insert(e.to_string(), Arc::new(vec![]));
        }
        s
    }

    #[test]
    fn diff_round_trips() {
        let empty = Effective::default();
        let s = state(&[("a", 1), ("b", 2)], &["svc"]);
        assert_eq!(apply(&empty, &diff(&empty, &s)), s);
        assert_eq!(apply(&s, &diff(&s, &empty)), empty);
        let t = state(&[("a", 1), ("b", 3), ("c", 4)], &[]);
        let d = diff(&s, &t);
        assert_eq!(d.clusters.added.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(d.clusters.modified.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(d.endpoints.removed, ["svc"]);
        assert_eq!(apply(&s, &d), t);
        assert!(diff(&t, &t).is_empty());
    }
}
