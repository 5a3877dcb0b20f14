//! Cross-resource rules, run over everything that validated: duplicate listener names and
//! addresses, duplicate cluster names, routes naming clusters that do not exist, and REST EDS
//! sources naming clusters that do not exist.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::config::error::ConfigError;
use crate::config::model::{
    Cluster, ClusterSpecifier, DiscoveryType, EdsConfigSource, HttpConnectionManager, Listener, MirrorCluster,
    NetworkFilter, RouteAction, RouteSource,
};
use crate::config::reader::{Ctx, FieldPath};

pub(crate) fn duplicate_listeners(ctx: &mut Ctx, listeners: &[(FieldPath, Listener)]) {
    let mut names: HashMap<&str, &FieldPath> = HashMap::new();
    let mut addrs: HashMap<std::net::SocketAddr, &FieldPath> = HashMap::new();
    for (path, l) in listeners {
        if let Some(first) = names.insert(&l.name, path) {
            ctx.err(format!("{path}.name"), format!("duplicate listener name \"{}\" (first at {first})", l.name));
        }
        // Port 0 asks the kernel for a fresh port each time: never a clash.
        if l.address.port() == 0 {
            continue;
        }
        if let Some(first) = addrs.insert(l.address, path) {
            ctx.err(format!("{path}.address"), format!("duplicate listener address {} (first at {first})", l.address));
        }
    }
}

pub(crate) fn duplicate_clusters(ctx: &mut Ctx, clusters: &[(FieldPath, Cluster)]) {
    let mut names: HashMap<&str, &FieldPath> = HashMap::new();
    for (path, c) in clusters {
        if let Some(first) = names.insert(&c.name, path) {
            ctx.err(format!("{path}.name"), format!("duplicate cluster name \"{}\" (first at {first})", c.name));
        }
    }
}

/// A REST EDS source must name a cluster defined in the same file.
pub(crate) fn eds_rest_clusters(ctx: &mut Ctx, clusters: &[(FieldPath, Cluster)], names: &HashSet<String>) {
    for (path, c) in clusters {
        if let DiscoveryType::Eds { source: EdsConfigSource::Rest { cluster, .. }, .. } = &c.discovery {
            if !names.contains(cluster) {
                ctx.err(
                    format!("{path}.eds_cluster_config.eds_config.api_config_source.cluster_names[0]"),
                    format!("unknown cluster \"{cluster}\""),
                );
            }
        }
    }
}

/// Routes of one listener's inline route configuration naming unknown clusters (unless
/// `validate_clusters: false`). The errors' `file` is left empty for the caller.
pub(crate) fn listener_cluster_refs(
    path: &dyn std::fmt::Display,
    l: &Listener,
    clusters: &HashSet<String>,
) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let chain_paths = (0..l.filter_chains.len())
        .map(|i| format!("filter_chains[{i}]"))
        .chain(l.default_chain.as_ref().map(|_| "default_filter_chain".to_string()));
    for (chain, chain_path) in l.chains().zip(chain_paths) {
        for (j, f) in chain.filters.iter().enumerate() {
            let NetworkFilter::HttpConnectionManager(h) = f else { continue };
            let base = format!("{path}.{chain_path}.filters[{j}].typed_config.route_config");
            hcm_cluster_refs(&base, h, clusters, &mut out);
        }
    }
    out
}

fn hcm_cluster_refs(base: &str, h: &HttpConnectionManager, clusters: &HashSet<String>, out: &mut Vec<ConfigError>) {
    let RouteSource::Inline(rc) = &h.routes else {
        return;
    };
    if rc.validate_clusters == Some(false) {
        return;
    }
    let mut err = |p: String, message: String| out.push(ConfigError { file: PathBuf::new(), path: p, message });
    let unknown = |name: &str| format!("unknown cluster \"{name}\"");
    // Envoy's words for an unknown mirror cluster, at any level.
    let mirrors = |at: &str, list: &[crate::config::model::MirrorPolicy], err: &mut dyn FnMut(String, String)| {
        for (m, mirror) in list.iter().enumerate() {
            if let MirrorCluster::Named(c) = &mirror.cluster {
                if !clusters.contains(c) {
                    err(
                        format!("{at}.request_mirror_policies[{m}].cluster"),
                        format!("route: unknown shadow cluster '{c}'"),
                    );
                }
            }
        }
    };
    mirrors(base, &rc.mirrors, &mut err);
    for (v, vh) in rc.virtual_hosts.iter().enumerate() {
        mirrors(&format!("{base}.virtual_hosts[{v}]"), &vh.mirrors, &mut err);
        for (r, route) in vh.routes.iter().enumerate() {
            let RouteAction::Forward(fwd) = &route.action else {
                continue;
            };
            let rpath = format!("{base}.virtual_hosts[{v}].routes[{r}].route");
            match &fwd.cluster {
                ClusterSpecifier::Cluster(c) if !clusters.contains(c) => err(format!("{rpath}.cluster"), unknown(c)),
                ClusterSpecifier::Weighted(ws) => {
                    for (w, wc) in ws.iter().enumerate() {
                        if wc.cluster_header.is_none() && !clusters.contains(&wc.name) {
                            err(format!("{rpath}.weighted_clusters.clusters[{w}].name"), unknown(&wc.name));
                        }
                    }
                }
                _ => {}
            }
            mirrors(&rpath, &fwd.mirrors, &mut err);
        }
    }
}
