//! What the file source sends the core: the difference between the files' accepted state and
//! the next one, per resource type, as an xDS management server would send it.

use std::path::PathBuf;

use crate::config::ConfigErrors;
use crate::xds::{Resource, TypeUrl, Update};

use super::sources::Sources;
use super::state::{diff, Effective};

/// Errors as `/reloads` shows them: one that concerns no file (a listener that cannot bind)
/// is its message alone.
pub fn render(e: &ConfigErrors) -> String {
    let lines: Vec<String> =
        e.0.iter()
            .map(|e| if e.file.as_os_str().is_empty() && e.path.is_empty() { e.message.clone() } else { e.to_string() })
            .collect();
    lines.join("\n")
}

/// What changes from `old` to `new`, per type, as an xDS server would send it: listeners in
/// the files' order (static ones first), one update per route configuration and per EDS
/// service (each its own file and version).
pub fn updates(old: &Effective, new: &Effective, next: &Sources) -> Vec<Update> {
    let origin = |p: Option<&PathBuf>| p.cloned().unwrap_or_default();
    let mut out = Vec::new();
    let lds = next.lds.as_ref();
    let mut u = Update::new(TypeUrl::Listener, lds.map_or("", |l| &l.version_info), origin(lds.map(|l| &l.path)));
    for l in next.listeners() {
        if new.listeners.contains_key(&l.name) && old.listeners.get(&l.name) != Some(l) {
            u.upserted.push((l.name.clone(), Resource::Listener(l.clone())));
        }
    }
    u.removed = old.listeners.keys().filter(|n| !new.listeners.contains_key(*n)).cloned().collect();
    out.push(u);
    let cds = next.cds.as_ref();
    let mut u = Update::new(TypeUrl::Cluster, cds.map_or("", |c| &c.version_info), origin(cds.map(|c| &c.path)));
    for (name, c) in &new.clusters {
        if old.clusters.get(name) != Some(c) {
            u.upserted.push((name.clone(), Resource::Cluster(c.clone())));
        }
    }
    u.removed = old.clusters.keys().filter(|n| !new.clusters.contains_key(*n)).cloned().collect();
    out.push(u);
    let d = diff(old, new);
    for (name, rc) in d.routes.added.into_iter().chain(d.routes.modified) {
        let file = next.rds.get(&name);
        let mut u = Update::new(
            TypeUrl::RouteConfiguration,
            file.map_or("", |f| &f.version_info),
            origin(file.map(|f| &f.path)),
        );
        u.upserted.push((name, Resource::RouteConfiguration(rc)));
        out.push(u);
    }
    if !d.routes.removed.is_empty() {
        out.push(Update { removed: d.routes.removed, ..Update::new(TypeUrl::RouteConfiguration, "", "") });
    }
    for (name, eps) in d.endpoints.added.into_iter().chain(d.endpoints.modified) {
        let file = next.eds.get(&name);
        let mut u = Update::new(
            TypeUrl::ClusterLoadAssignment,
            file.map_or("", |f| &f.version_info),
            origin(file.map(|f| &f.path)),
        );
        u.upserted.push((name, Resource::ClusterLoadAssignment(eps)));
        out.push(u);
    }
    if !d.endpoints.removed.is_empty() {
        out.push(Update { removed: d.endpoints.removed, ..Update::new(TypeUrl::ClusterLoadAssignment, "", "") });
    }
    out.retain(|u| !u.is_empty());
    out
}
