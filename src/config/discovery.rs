//! File-based xDS: a `DiscoveryResponse` file (`version_info` + `resources`, each with its
//! `@type`) turned into validated listeners, clusters, a route configuration or a cluster load
//! assignment. The caller reads (and hashes) the file; this module only parses bytes, through
//! a [`DocCache`] when the caller keeps one (the reloader does: a long file with one changed
//! line is then parsed in pieces).

use std::path::Path;

use serde_yaml::Value;

use super::docs::DocCache;
use super::error::{ConfigError, ConfigErrors};
use super::model::{Cluster, ClusterLoadAssignment, Discovery, Listener, RouteConfig};
use super::parse::{format_for, parse_value};
use super::reader::{Ctx, FieldPath, Obj};
use super::schema;
use super::type_urls as t;
use super::v2;
use super::validate::{checks, cluster, listener, route};

/// Validated resources with their paths (`resources[i]`).
struct Parsed<T> {
    ctx: Ctx,
    version_info: String,
    resources: Vec<(FieldPath, T)>,
    /// How many resources the file listed (valid or not).
    listed: usize,
}

/// A resource's v2 normaliser, with the keys it rewrites when it can tell them (`None`: it
/// always runs).
type Normalise = (fn(&mut Value) -> bool, Option<&'static [&'static str]>);

fn parse<T>(
    docs: &mut DocCache,
    path: &Path,
    bytes: &[u8],
    types: &[&str],
    normalise: Normalise,
    secrets: Option<std::sync::Arc<crate::tls::secrets::StaticSecrets>>,
    mut each: impl FnMut(&mut Ctx, Obj<'_>, usize) -> Option<T>,
) -> Result<Parsed<T>, ConfigErrors> {
    let reading = docs.parse(path, bytes).map_err(|e| ConfigErrors(vec![e]))?;
    let mut rewritten = false;
    let (normalise, keys) = normalise;
    let needed = keys.is_none_or(|keys| v2::may_spell(bytes, keys));
    if let Some(Value::Sequence(items)) = reading.value.get_mut("resources").filter(|_| needed) {
        for item in items {
            rewritten |= normalise(item);
        }
    }
    let mut ctx = Ctx::new(path);
    ctx.lenient_enums = true;
    ctx.static_secrets = secrets;
    if !rewritten {
        ctx.memo_list = reading.list;
        ctx.memo_in = reading.memo;
    }
    let mut parsed = read(ctx, reading.value, types, &mut each);
    if rewritten {
        // v2 spellings were rewritten in place: the cached value is no longer the file's.
        docs.forget(path);
    } else {
        docs.keep_memo(path, parsed.ctx.memo_out.take(), parsed.ctx.reused);
    }
    Ok(parsed)
}

fn read<T>(
    mut ctx: Ctx,
    value: &Value,
    types: &[&str],
    each: &mut impl FnMut(&mut Ctx, Obj<'_>, usize) -> Option<T>,
) -> Parsed<T> {
    let mut version_info = String::new();
    let mut resources = Vec::new();
    let mut listed = 0;
    if let Some(mut root) = Obj::new(&mut ctx, value, FieldPath::root()) {
        version_info = root.str(&mut ctx, "version_info").unwrap_or_default();
        if let Some(url) = root.str(&mut ctx, "type_url") {
            if !types.contains(&url.as_str()) {
                ctx.err("type_url", format!("wrong type_url \"{url}\": expected \"{}\"", types[0]));
            }
        }
        root.ignore(&["nonce", "canary", "control_plane"]);
        let items = root.list(&mut ctx, "resources");
        listed = items.len();
        for (i, (v, path)) in items.into_iter().enumerate() {
            let Some(mut r) = Obj::new(&mut ctx, v, path) else { continue };
            match r.str(&mut ctx, "@type") {
                Some(u) if types.contains(&u.as_str()) => {
                    let p = r.path.clone();
                    ctx.schema = true;
                    ctx.memo_checked = false;
                    if let Some(res) = each(&mut ctx, r, i) {
                        resources.push((p.clone(), res));
                    }
                    // After the validator: it tells whether it checked the long list's items.
                    let skip = if ctx.memo_checked { ctx.memo_list } else { 0 };
                    schema::check(&mut ctx, v, types[0], &p.to_string(), skip);
                    ctx.schema = false;
                }
                Some(u) => ctx.err(r.at("@type"), format!("wrong @type \"{u}\": expected \"{}\"", types[0])),
                None => ctx.err(&r.path, format!("missing @type (expected \"{}\")", types[0])),
            }
        }
        root.finish(&mut ctx, &[]);
        schema::merge(&mut ctx);
    }
    Parsed { ctx, version_info, resources, listed }
}

fn finish<T>(p: Parsed<T>) -> Result<Discovery<T>, ConfigErrors> {
    if p.ctx.errors.is_empty() {
        Ok(Discovery {
            version_info: p.version_info,
            resources: p.resources.into_iter().map(|(_, r)| r).collect(),
            warnings: p.ctx.warnings,
        })
    } else {
        Err(ConfigErrors(p.ctx.errors))
    }
}

/// An LDS file. Cluster references are checked by the caller with `check_cluster_refs`.
pub fn parse_listeners(path: &Path, bytes: &[u8]) -> Result<Discovery<Listener>, ConfigErrors> {
    DocCache::default().listeners(path, bytes, None)
}

/// A CDS file.
pub fn parse_clusters(path: &Path, bytes: &[u8]) -> Result<Discovery<Cluster>, ConfigErrors> {
    DocCache::default().clusters(path, bytes)
}

/// An RDS file: exactly one `RouteConfiguration`, named `name`.
pub fn parse_route_config(path: &Path, bytes: &[u8], name: &str) -> Result<Discovery<RouteConfig>, ConfigErrors> {
    DocCache::default().route_config(path, bytes, name)
}

/// An EDS file: exactly one `ClusterLoadAssignment` for `name`, or none at all (an empty
/// update: the caller keeps the endpoints it has).
pub fn parse_endpoints(
    path: &Path,
    bytes: &[u8],
    name: &str,
) -> Result<Discovery<ClusterLoadAssignment>, ConfigErrors> {
    DocCache::default().endpoints(path, bytes, name)
}

/// The cluster names a file lists, valid or not: `resources[*].name` of a CDS file, or
/// `static_resources.clusters[*].name` of a bootstrap. A batch rejected for a broken cluster
/// reports that cluster's errors only, not also `unknown cluster` for each route naming it.
/// Empty when the file does not parse.
pub fn listed_cluster_names(path: &Path, bytes: &[u8], bootstrap: bool) -> Vec<String> {
    let Ok(value) = parse_value(path, bytes, format_for(path)) else {
        return Vec::new();
    };
    let list =
        if bootstrap { value.get("static_resources").and_then(|s| s.get("clusters")) } else { value.get("resources") };
    let Some(Value::Sequence(items)) = list else {
        return Vec::new();
    };
    items.iter().filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string)).collect()
}

/// The same parsers, reusing the last document of each file.
impl DocCache {
    /// [`parse_listeners`]; `secrets` are the bootstrap's `static_resources.secrets`, which
    /// a TLS context may name without an `sds_config`.
    pub fn listeners(
        &mut self,
        path: &Path,
        bytes: &[u8],
        secrets: Option<std::sync::Arc<crate::tls::secrets::StaticSecrets>>,
    ) -> Result<Discovery<Listener>, ConfigErrors> {
        let mut p = parse(self, path, bytes, t::LISTENER, (v2::normalise_listener, None), secrets, listener::listener)?;
        checks::duplicate_listeners(&mut p.ctx, &p.resources);
        finish(p)
    }

    /// [`parse_clusters`].
    pub fn clusters(&mut self, path: &Path, bytes: &[u8]) -> Result<Discovery<Cluster>, ConfigErrors> {
        let mut p = parse(self, path, bytes, t::CLUSTER, (v2::normalise_cluster, None), None, |ctx, o, _| {
            cluster::cluster(ctx, o)
        })?;
        checks::duplicate_clusters(&mut p.ctx, &p.resources);
        finish(p)
    }

    /// [`parse_route_config`].
    pub fn route_config(
        &mut self,
        path: &Path,
        bytes: &[u8],
        name: &str,
    ) -> Result<Discovery<RouteConfig>, ConfigErrors> {
        route_config(self, path, bytes, name)
    }

    /// [`parse_endpoints`].
    pub fn endpoints(
        &mut self,
        path: &Path,
        bytes: &[u8],
        name: &str,
    ) -> Result<Discovery<ClusterLoadAssignment>, ConfigErrors> {
        endpoints(self, path, bytes, name)
    }
}

fn route_config(
    docs: &mut DocCache,
    path: &Path,
    bytes: &[u8],
    name: &str,
) -> Result<Discovery<RouteConfig>, ConfigErrors> {
    let mut p = parse(
        docs,
        path,
        bytes,
        t::ROUTE_CONFIGURATION,
        (v2::normalise_route_config, Some(v2::ROUTE_CONFIG_KEYS)),
        None,
        |ctx, o, _| route::route_config(ctx, o),
    )?;
    if p.listed != 1 {
        p.ctx.err("resources", format!("expected exactly one RouteConfiguration, found {}", p.listed));
    }
    for (path, rc) in &p.resources {
        if rc.name != name {
            p.ctx.err(
                format!("{path}.name"),
                format!("unexpected RouteConfiguration \"{}\": expected \"{name}\"", rc.name),
            );
        }
    }
    finish(p)
}

fn endpoints(
    docs: &mut DocCache,
    path: &Path,
    bytes: &[u8],
    name: &str,
) -> Result<Discovery<ClusterLoadAssignment>, ConfigErrors> {
    let mut p = parse(docs, path, bytes, t::CLUSTER_LOAD_ASSIGNMENT, (|_| false, Some(&[])), None, |ctx, o, _| {
        let opath = o.path.clone();
        let before = ctx.error_count();
        let (cluster_name, endpoints) = cluster::load_assignment(ctx, o, true);
        let Some(cluster_name) = cluster_name else {
            ctx.err(format!("{opath}.cluster_name"), "missing cluster_name");
            return None;
        };
        (ctx.error_count() == before).then_some(ClusterLoadAssignment { cluster_name, endpoints })
    })?;
    if p.listed > 1 {
        p.ctx.err("resources", format!("expected exactly one ClusterLoadAssignment, found {}", p.listed));
    }
    for (path, cla) in &p.resources {
        if cla.cluster_name != name {
            p.ctx.err(
                format!("{path}.cluster_name"),
                format!("unexpected ClusterLoadAssignment \"{}\": expected \"{name}\"", cla.cluster_name),
            );
        }
    }
    finish(p)
}

/// Wraps one error (used for whole-file problems).
pub(crate) fn single(e: ConfigError) -> ConfigErrors {
    ConfigErrors(vec![e])
}

/// The `resources` of a discovery file as JSON (for `/config_dump`); empty when unparseable.
pub fn resources_json(path: &Path, bytes: &[u8]) -> Vec<serde_json::Value> {
    let Ok(value) = parse_value(path, bytes, format_for(path)) else { return Vec::new() };
    match value.get("resources") {
        Some(Value::Sequence(items)) => items.iter().filter_map(|v| serde_json::to_value(v).ok()).collect(),
        _ => Vec::new(),
    }
}

/// `--mode validate -c FILE` where FILE is a file-based xDS file (`version_info` and
/// `resources`, which a bootstrap never has) rather than a bootstrap: validated as the
/// resource type its `type_url`, else its first resource's `@type`, names. An RDS or EDS file
/// is checked for the name its own resource carries. `None` when the file is not one (or
/// cannot be read or parsed: the bootstrap's load says why); else what it holds
/// (`2 Cluster resource(s)`) or its errors.
pub fn validate_discovery_file(path: &Path) -> Option<Result<String, ConfigErrors>> {
    let bytes = std::fs::read(path).ok()?;
    let value = parse_value(path, &bytes, format_for(path)).ok()?;
    let resources = value.as_mapping()?.get("resources")?;
    let first = |key: &str| resources.get(0).and_then(|r| r.get(key));
    let type_url = value.get("type_url").or_else(|| first("@type")).and_then(Value::as_str).unwrap_or_default();
    let name = |key: &str| first(key).and_then(super::reader::scalar_string).unwrap_or_default();
    let count = |n: usize| format!("{n} {} resource(s)", type_url.rsplit('.').next().unwrap_or(type_url));
    let result = if t::LISTENER.contains(&type_url) {
        parse_listeners(path, &bytes).map(|d| count(d.resources.len()))
    } else if t::CLUSTER.contains(&type_url) {
        parse_clusters(path, &bytes).map(|d| count(d.resources.len()))
    } else if t::ROUTE_CONFIGURATION.contains(&type_url) {
        parse_route_config(path, &bytes, &name("name")).map(|d| count(d.resources.len()))
    } else if t::CLUSTER_LOAD_ASSIGNMENT.contains(&type_url) {
        parse_endpoints(path, &bytes, &name("cluster_name")).map(|d| count(d.resources.len()))
    } else {
        let (at, message) = match type_url {
            "" => ("resources", "a discovery file needs a type_url or an @type on its resources".to_string()),
            u if value.get("type_url").is_some() => ("type_url", format!("unsupported resource type \"{u}\"")),
            u => ("resources[0].@type", format!("unsupported resource type \"{u}\"")),
        };
        Err(single(ConfigError { file: path.to_path_buf(), path: at.to_string(), message }))
    };
    Some(result)
}
