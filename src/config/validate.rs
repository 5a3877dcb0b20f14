//! Validation: normalised value trees to `model` types, collecting every error with its path.
//! This file owns the bootstrap's top level (`node`, `admin`, `static_resources`,
//! `dynamic_resources`, `layered_runtime`); the submodules own one Envoy message family each,
//! and `checks` the cross-resource rules (duplicates, cluster references).

pub(crate) mod access_log;
pub(crate) mod checks;
pub(crate) mod cluster;
pub(crate) mod common;
pub(crate) mod compressor;
pub(crate) mod cors_csrf;
pub(crate) mod decompressor;
pub(crate) mod dns;
pub(crate) mod ext_authz;
pub(crate) mod filter_chain;
pub(crate) mod filter_state;
pub(crate) mod grpc_filters;
pub(crate) mod hash_lb;
pub(crate) mod hcm;
pub(crate) mod headers;
pub(crate) mod health;
pub(crate) mod http_filters;
pub(crate) mod internal_redirect;
pub(crate) mod lb_config;
pub(crate) mod listener;
pub(crate) mod local_ratelimit;
pub(crate) mod matcher;
pub(crate) mod overlap;
pub(crate) mod rbac;
pub(crate) mod rbac_matcher;
pub(crate) mod route;
pub(crate) mod secret;
pub(crate) mod tcp_proxy;
pub(crate) mod tls;
pub(crate) mod tls_resumption;
pub(crate) mod upgrade;
pub(crate) mod upstream_tls;

use std::collections::HashSet;
use std::path::PathBuf;

use serde_yaml::Value;

use super::model::{AccessLogSink, Admin, Bootstrap, DynamicResources, EdsConfigSource, FileSource, Node};
use super::reader::{Ctx, FieldPath, Obj};
use common::{config_source, ip_address};

/// The whole bootstrap. `None` when any error was recorded.
pub(crate) fn bootstrap(ctx: &mut Ctx, v: &Value) -> Option<Bootstrap> {
    let before = ctx.error_count();
    let mut o = Obj::new(ctx, v, FieldPath::root())?;
    let node = o.obj(ctx, "node").map(|n| node(ctx, n)).unwrap_or_default();
    let admin = o.obj(ctx, "admin").and_then(|a| admin(ctx, a));
    let dynamic = o.obj(ctx, "dynamic_resources").map(|d| dynamic(ctx, d)).unwrap_or_default();
    let mut listeners = Vec::new();
    let mut clusters = Vec::new();
    let mut invalid_clusters = Vec::new();
    if let Some(mut sr) = o.obj(ctx, "static_resources") {
        // Before the listeners: their TLS contexts may name them.
        let secrets = sr.list(ctx, "secrets");
        if !secrets.is_empty() {
            ctx.static_secrets = Some(secret::static_secrets(ctx, secrets));
        }
        for (i, l) in sr.objs(ctx, "listeners").into_iter().enumerate() {
            let path = l.path.clone();
            if let Some(l) = listener::listener(ctx, l, i) {
                listeners.push((path, l));
            }
        }
        for c in sr.objs(ctx, "clusters") {
            let path = c.path.clone();
            let name = c.peek_str("name");
            match cluster::cluster(ctx, c) {
                Some(c) => clusters.push((path, c)),
                // Its own errors say what is wrong; routes to it are not "unknown" as well.
                None => invalid_clusters.extend(name),
            }
        }
        sr.finish(ctx, &[]);
    }
    let (dns_resolver, _) = dns::resolver(ctx, &mut o, false);
    let runtime = match o.obj(ctx, "layered_runtime") {
        Some(lr) => layered_runtime(ctx, lr),
        None => Vec::new(),
    };
    o.finish(ctx, &[]);

    checks::duplicate_listeners(ctx, &listeners);
    checks::duplicate_clusters(ctx, &clusters);
    let names: HashSet<String> = clusters.iter().map(|(_, c)| c.name.clone()).chain(invalid_clusters).collect();
    checks::eds_rest_clusters(ctx, &clusters, &names);
    if dynamic.cds.is_none() {
        for (path, l) in &listeners {
            let file = ctx.file.clone();
            for mut e in checks::listener_cluster_refs(path, l, &names) {
                e.file = file.clone();
                ctx.errors.push(e);
            }
        }
    }
    if ctx.error_count() > before {
        return None;
    }
    Some(Bootstrap {
        node,
        admin,
        listeners: listeners.into_iter().map(|(_, l)| l).collect(),
        clusters: clusters.into_iter().map(|(_, c)| c).collect(),
        dynamic,
        dns_resolver,
        static_secrets: ctx.static_secrets.clone(),
        runtime,
    })
}

fn node(ctx: &mut Ctx, mut o: Obj<'_>) -> Node {
    let id = o.str(ctx, "id").unwrap_or_default();
    let cluster = o.str(ctx, "cluster").unwrap_or_default();
    o.ignore(&["metadata", "locality"]);
    o.finish(ctx, &[]);
    Node { id, cluster }
}

fn admin(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<Admin> {
    let address = o.get("address").and_then(|(v, p)| ip_address(ctx, v, &p));
    let mut access_log_path = o.str(ctx, "access_log_path").map(PathBuf::from);
    for l in o.objs(ctx, "access_log") {
        if let Some(log) = access_log::access_log(ctx, l) {
            access_log_path = Some(match log.sink {
                AccessLogSink::File(p) => p,
                AccessLogSink::Stdout => PathBuf::from("/dev/stdout"),
                AccessLogSink::Stderr => PathBuf::from("/dev/stderr"),
            });
        }
    }
    o.ignore(&["profile_path", "ignore_global_conn_limit"]);
    o.finish(ctx, &[]);
    // An admin without an address serves nothing, as in Envoy.
    Some(Admin { address: address?, access_log_path: access_log_path.filter(|p| p.as_os_str() != "/dev/null") })
}

fn file_source(ctx: &mut Ctx, o: Option<Obj<'_>>) -> Option<FileSource> {
    match config_source(ctx, o?, false)? {
        EdsConfigSource::File(f) => Some(f),
        EdsConfigSource::Rest { .. } => None,
    }
}

fn dynamic(ctx: &mut Ctx, mut o: Obj<'_>) -> DynamicResources {
    let lds_obj = o.obj(ctx, "lds_config");
    let lds = file_source(ctx, lds_obj);
    let cds_obj = o.obj(ctx, "cds_config");
    let cds = file_source(ctx, cds_obj);
    o.finish(ctx, &[]);
    DynamicResources { lds, cds }
}

/// `layered_runtime`: static, disk and admin layers ([`crate::runtime`]), each named; at most
/// one admin layer (Envoy refuses a second).
fn layered_runtime(ctx: &mut Ctx, mut o: Obj<'_>) -> Vec<(String, crate::runtime::RuntimeLayer)> {
    use crate::runtime::RuntimeLayer;
    let mut layers = Vec::new();
    for mut layer in o.objs(ctx, "layers") {
        let name = layer.str(ctx, "name").unwrap_or_default();
        if let Some((v, _)) = layer.get("static_layer") {
            let mut pairs = Vec::new();
            crate::runtime::flatten(v, "", &mut pairs);
            layers.push((name.clone(), RuntimeLayer::Static(pairs)));
        }
        if let Some(mut d) = layer.obj(ctx, "disk_layer") {
            let root = d.str(ctx, "symlink_root").unwrap_or_default();
            if root.is_empty() {
                ctx.err(d.at("symlink_root"), "missing symlink_root");
            }
            let subdirectory = d.str(ctx, "subdirectory").unwrap_or_default();
            let append_service_cluster = d.bool(ctx, "append_service_cluster").unwrap_or(false);
            d.finish(ctx, &[]);
            let disk = RuntimeLayer::Disk { symlink_root: root.into(), subdirectory, append_service_cluster };
            layers.push((name.clone(), disk));
        }
        if let Some(a) = layer.obj(ctx, "admin_layer") {
            if layers.iter().any(|(_, l)| l == &RuntimeLayer::Admin) {
                ctx.err(
                    layer.at("admin_layer"),
                    "Too many admin layers specified in LayeredRuntime, at most one may be specified",
                );
            }
            a.finish(ctx, &[]);
            layers.push((name, RuntimeLayer::Admin));
        }
        layer.finish(ctx, &[]);
    }
    o.finish(ctx, &[]);
    layers
}
