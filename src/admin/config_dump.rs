//! `/config_dump`: Envoy's `ConfigDump` JSON: the bootstrap as loaded (v3 spelling), static
//! resources, and dynamic ones with their `version_info`, `last_updated`, and the error of
//! the last rejected update next to the last good version.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::reload::sources::Sources;

const HCM: &str = "envoy.filters.network.http_connection_manager";

/// Route configurations written inline in listeners' connection managers.
fn inline_route_configs(listeners: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for l in listeners {
        for chain in l.get("filter_chains").and_then(Value::as_array).into_iter().flatten() {
            for f in chain.get("filters").and_then(Value::as_array).into_iter().flatten() {
                if f.get("name").and_then(Value::as_str) == Some(HCM) {
                    if let Some(rc) = f.get("typed_config").and_then(|t| t.get("route_config")) {
                        out.push(rc.clone());
                    }
                }
            }
        }
    }
    out
}

fn time(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Which parts to show: `?resource=` names a field (e.g. `dynamic_active_clusters`), and
/// `?include_eds` adds endpoint configs.
pub struct DumpQuery {
    pub resource: Option<String>,
    pub include_eds: bool,
    pub name_regex: Option<regex::Regex>,
}

pub fn config_dump(src: &Sources, errors: &BTreeMap<String, Value>, started: SystemTime, q: &DumpQuery) -> Value {
    let started = time(started);
    let named = |v: &Value| {
        let name = v.get("name").and_then(Value::as_str).unwrap_or("");
        q.name_regex.as_ref().is_none_or(|r| r.is_match(name))
    };
    let b = &src.bootstrap_json;
    let sr = b.get("static_resources");
    let listeners: Vec<Value> =
        sr.and_then(|s| s.get("listeners")).and_then(Value::as_array).cloned().unwrap_or_default();
    let clusters: Vec<Value> =
        sr.and_then(|s| s.get("clusters")).and_then(Value::as_array).cloned().unwrap_or_default();
    let static_routes = inline_route_configs(&listeners);

    let mut dyn_active_listeners = Vec::new();
    if let Some(lds) = &src.lds {
        for l in lds.json().iter().filter(|v| named(v)) {
            dyn_active_listeners.push(json!({
                "name": l.get("name").cloned().unwrap_or(Value::Null),
                "active_state": {"version_info": lds.version_info, "listener": l, "last_updated": time(lds.last_updated)},
            }));
        }
    }
    if let Some(e) = errors.get("lds") {
        dyn_active_listeners.push(json!({"name": "", "error_state": e}));
    }
    let dyn_clusters: Vec<Value> = src
        .cds
        .iter()
        .flat_map(|c| {
            c.json().into_iter().filter(|v| named(v)).map(
                move |v| json!({"version_info": c.version_info, "cluster": v, "last_updated": time(c.last_updated)}),
            )
        })
        .collect();
    let dyn_routes: Vec<Value> = src
        .rds
        .values()
        .flat_map(|r| {
            r.json().into_iter().map(move |v| {
                json!({"version_info": r.version_info, "route_config": v, "last_updated": time(r.last_updated)})
            })
        })
        .collect();
    let mut configs = vec![
        json!({"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
               "bootstrap": b, "last_updated": started}),
        json!({"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
               "version_info": src.cds.as_ref().map(|c| c.version_info.clone()).unwrap_or_default(),
               "static_clusters": clusters.into_iter().filter(|c| named(c)).map(|c| json!({"cluster": c, "last_updated": started})).collect::<Vec<_>>(),
               "dynamic_active_clusters": dyn_clusters,
               "cds_error": errors.get("cds")}),
        json!({"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
               "version_info": src.lds.as_ref().map(|l| l.version_info.clone()).unwrap_or_default(),
               "static_listeners": listeners.into_iter().filter(|l| named(l)).map(|l| json!({"listener": l, "last_updated": started})).collect::<Vec<_>>(),
               "dynamic_listeners": dyn_active_listeners}),
        json!({"@type": "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump"}),
        json!({"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
               "static_route_configs": static_routes.into_iter().map(|r| json!({"route_config": r, "last_updated": started})).collect::<Vec<_>>(),
               "dynamic_route_configs": dyn_routes,
               "rds_errors": errors.iter().filter(|(k, _)| k.starts_with("rds(")).map(|(k, v)| json!({"name": k, "error_state": v})).collect::<Vec<_>>()}),
        json!({"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"}),
    ];
    if q.include_eds {
        let eps: Vec<Value> = src
            .eds
            .values()
            .flat_map(|e| {
                e.json().into_iter().map(move |v| {
                    json!({"version_info": e.version_info, "endpoint_config": v, "last_updated": time(e.last_updated)})
                })
            })
            .collect();
        configs.push(json!({"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
                            "dynamic_endpoint_configs": eps,
                            "eds_errors": errors.iter().filter(|(k, _)| k.starts_with("eds(")).map(|(k, v)| json!({"name": k, "error_state": v})).collect::<Vec<_>>()}));
    }
    // Envoy's JSON leaves out empty strings and absent messages.
    for c in configs.iter_mut() {
        prune(c);
    }
    if let Some(field) = &q.resource {
        let items: Vec<Value> =
            configs.iter().filter_map(|c| c.get(field.as_str()).and_then(Value::as_array).cloned()).flatten().collect();
        return json!({"configs": items});
    }
    json!({"configs": configs})
}

fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, v| !(v.is_null() || k == "version_info" && v.as_str() == Some("")));
            m.values_mut().for_each(prune);
        }
        Value::Array(a) => a.iter_mut().for_each(prune),
        _ => {}
    }
}
