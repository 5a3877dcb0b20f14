//! What each configuration file last said, as accepted: the bootstrap, the LDS and CDS files,
//! one RDS file per route configuration name and one EDS file per service name. Flattened by
//! [`Sources::effective`] into the config a snapshot is built from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::model::{
    Bootstrap, Cluster, DiscoveryType, EdsConfigSource, FileSource, Listener, LocalityEndpoints, RouteConfig,
    RouteSource,
};

use super::state::Effective;

/// A resource set from one file, with the version it came with.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub value: T,
    pub version_info: String,
    pub last_updated: SystemTime,
    pub path: PathBuf,
    /// The file as loaded; `/config_dump` turns it into JSON when asked, not on every reload.
    pub raw: bytes::Bytes,
}

impl<T> Loaded<T> {
    /// The resources as JSON, for `/config_dump`.
    pub fn json(&self) -> Vec<serde_json::Value> {
        crate::config::resources_json(&self.path, &self.raw)
    }
}

/// Which discovery a file feeds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Bootstrap,
    Lds,
    Cds,
    /// A route configuration name.
    Rds(String),
    /// An EDS service name.
    Eds(String),
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Bootstrap => f.write_str("bootstrap"),
            Role::Lds => f.write_str("lds"),
            Role::Cds => f.write_str("cds"),
            Role::Rds(n) => write!(f, "rds({n})"),
            Role::Eds(n) => write!(f, "eds({n})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sources {
    pub bootstrap_path: Option<PathBuf>,
    pub config_yaml: Option<String>,
    pub bootstrap: Bootstrap,
    pub bootstrap_json: serde_json::Value,
    // Behind `Arc`s so that cloning the sources for the next reload copies no resources.
    pub lds: Option<Arc<Loaded<Vec<Listener>>>>,
    pub cds: Option<Arc<Loaded<Vec<Cluster>>>>,
    pub rds: BTreeMap<String, Arc<Loaded<Arc<RouteConfig>>>>,
    pub eds: BTreeMap<String, Arc<Loaded<Arc<Vec<LocalityEndpoints>>>>>,
}

impl Sources {
    pub fn new(
        bootstrap_path: Option<PathBuf>,
        config_yaml: Option<String>,
        bootstrap: Bootstrap,
        bootstrap_json: serde_json::Value,
    ) -> Self {
        Sources {
            bootstrap_path,
            config_yaml,
            bootstrap,
            bootstrap_json,
            lds: None,
            cds: None,
            rds: BTreeMap::new(),
            eds: BTreeMap::new(),
        }
    }

    /// Every listener: static ones first, then LDS's (names are unique across both).
    pub fn listeners(&self) -> impl Iterator<Item = &Listener> {
        self.bootstrap.listeners.iter().chain(self.lds.iter().flat_map(|l| l.value.iter()))
    }

    pub fn clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.bootstrap.clusters.iter().chain(self.cds.iter().flat_map(|c| c.value.iter()))
    }

    pub fn effective(&self) -> Effective {
        let mut e = Effective::default();
        for l in self.listeners() {
            e.listeners.insert(l.name.clone(), l.clone());
        }
        for c in self.clusters() {
            let mut c = c.clone();
            c.use_default_resolver(&self.bootstrap.dns_resolver);
            e.clusters.insert(c.name.clone(), c);
        }
        let wanted_rds: Vec<String> = e.rds_names().map(str::to_string).collect();
        for name in wanted_rds {
            if let Some(rc) = self.rds.get(&name) {
                e.routes.insert(name, Arc::clone(&rc.value));
            }
        }
        for c in e.clusters.values() {
            if let DiscoveryType::Eds { service_name, .. } = &c.discovery {
                if let Some(eps) = self.eds.get(service_name) {
                    e.endpoints.insert(service_name.clone(), Arc::clone(&eps.value));
                }
            }
        }
        e
    }

    /// Every file to watch, with the role it plays and its watched directory.
    pub fn files(&self) -> Vec<(Role, FileSource)> {
        let mut out = Vec::new();
        if let Some(p) = &self.bootstrap_path {
            out.push((Role::Bootstrap, FileSource { path: p.clone(), watched_directory: None }));
        }
        if let Some(s) = &self.bootstrap.dynamic.lds {
            out.push((Role::Lds, s.clone()));
        }
        if let Some(s) = &self.bootstrap.dynamic.cds {
            out.push((Role::Cds, s.clone()));
        }
        for h in self.listeners().flat_map(|l| l.hcms()) {
            if let RouteSource::Rds { route_config_name, source } = &h.routes {
                out.push((Role::Rds(route_config_name.clone()), source.clone()));
            }
        }
        for c in self.clusters() {
            if let DiscoveryType::Eds { service_name, source: EdsConfigSource::File(s) } = &c.discovery {
                out.push((Role::Eds(service_name.clone()), s.clone()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.path.cmp(&b.1.path)));
        out.dedup();
        out
    }

    /// The roles a path plays (one file may feed several route configs or services).
    pub fn roles_of(&self, path: &Path) -> Vec<Role> {
        self.files().into_iter().filter(|(_, s)| s.path == path).map(|(r, _)| r).collect()
    }
}

/// Envoy's stat prefixes for a role: one per connection manager using an RDS name, one per
/// cluster using an EDS service.
pub fn stat_prefixes(role: &Role, sources: &Sources) -> Vec<String> {
    match role {
        Role::Bootstrap => vec!["server.bootstrap".to_string()],
        Role::Lds => vec!["listener_manager.lds".to_string()],
        Role::Cds => vec!["cluster_manager.cds".to_string()],
        Role::Rds(name) => {
            let mut v: Vec<String> = sources
                .listeners()
                .flat_map(|l| l.hcms())
                .filter(
                    |h| matches!(&h.routes, RouteSource::Rds { route_config_name, .. } if route_config_name == name),
                )
                .map(|h| format!("http.{}.rds.{name}", h.stat_prefix))
                .collect();
            v.dedup();
            v
        }
        Role::Eds(service) => sources
            .clusters()
            .filter(|c| matches!(&c.discovery, DiscoveryType::Eds { service_name, .. } if service_name == service))
            .map(|c| format!("cluster.{}", c.stat_name()))
            .collect(),
    }
}
