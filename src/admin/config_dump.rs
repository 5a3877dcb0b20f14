//! `/config_dump`: Envoy's `ConfigDump` JSON: the bootstrap as loaded (v3 spelling), static
//! resources, and dynamic ones with their `version_info`, `last_updated`, and the error of
//! the last rejected update next to the last good version. `?resource=` lists the items of
//! one repeated field, `?mask=` trims each dump (or each item) to a protobuf `FieldMask`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::reload::sources::Sources;

const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// Route configurations written inline in listeners' connection managers (found by their
/// `@type`, as legate chooses network filters; the default chain included).
fn inline_route_configs(listeners: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for l in listeners {
        let chains = l.get("filter_chains").and_then(Value::as_array).into_iter().flatten();
        for chain in chains.chain(l.get("default_filter_chain")) {
            for f in chain.get("filters").and_then(Value::as_array).into_iter().flatten() {
                if f.get("typed_config").and_then(|t| t.get("@type")).and_then(Value::as_str) == Some(HCM) {
                    if let Some(rc) = f.get("typed_config").and_then(|t| t.get("route_config")) {
                        out.push(rc.clone());
                    }
                }
            }
        }
    }
    out
}

/// A protobuf `Timestamp` in JSON, as Envoy writes `last_updated`.
fn time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

const ADMIN: &str = "type.googleapis.com/envoy.admin.v3.";

/// The fields of each dump message legate writes, with the item message of the repeated ones
/// (`None`: a singular field). What `?resource=` and `?mask=` are checked against; fields
/// Envoy has and legate never fills are listed too, so asking for them is not an error.
/// A message's fields: name, and the item message of a repeated one.
type Fields = &'static [(&'static str, Option<&'static str>)];

const DUMPS: &[(&str, Fields)] = &[
    ("BootstrapConfigDump", &[("bootstrap", None), ("last_updated", None)]),
    (
        "ClustersConfigDump",
        &[
            ("version_info", None),
            ("static_clusters", Some("StaticCluster")),
            ("dynamic_active_clusters", Some("DynamicCluster")),
            ("dynamic_warming_clusters", Some("DynamicCluster")),
            ("cds_error", None),
        ],
    ),
    (
        "ListenersConfigDump",
        &[
            ("version_info", None),
            ("static_listeners", Some("StaticListener")),
            ("dynamic_listeners", Some("DynamicListener")),
        ],
    ),
    (
        "ScopedRoutesConfigDump",
        &[
            ("inline_scoped_route_configs", Some("InlineScopedRouteConfigs")),
            ("dynamic_scoped_route_configs", Some("DynamicScopedRouteConfigs")),
        ],
    ),
    (
        "RoutesConfigDump",
        &[
            ("static_route_configs", Some("StaticRouteConfig")),
            ("dynamic_route_configs", Some("DynamicRouteConfig")),
            ("rds_errors", None),
        ],
    ),
    (
        "SecretsConfigDump",
        &[
            ("static_secrets", Some("StaticSecret")),
            ("dynamic_active_secrets", Some("DynamicSecret")),
            ("dynamic_warming_secrets", Some("DynamicSecret")),
        ],
    ),
    (
        "EndpointsConfigDump",
        &[
            ("static_endpoint_configs", Some("StaticEndpointConfig")),
            ("dynamic_endpoint_configs", Some("DynamicEndpointConfig")),
            ("eds_errors", None),
        ],
    ),
];

/// The fields of the items of those repeated fields.
const ITEMS: &[(&str, &[&str])] = &[
    ("StaticCluster", &["cluster", "last_updated"]),
    ("DynamicCluster", &["version_info", "cluster", "last_updated", "error_state", "client_status"]),
    ("StaticListener", &["listener", "last_updated"]),
    ("DynamicListener", &["name", "active_state", "warming_state", "draining_state", "error_state", "client_status"]),
    ("StaticRouteConfig", &["route_config", "last_updated"]),
    ("DynamicRouteConfig", &["version_info", "route_config", "last_updated", "error_state", "client_status"]),
    ("StaticEndpointConfig", &["endpoint_config", "last_updated"]),
    ("DynamicEndpointConfig", &["version_info", "endpoint_config", "last_updated", "error_state", "client_status"]),
];

/// Why a query cannot be answered: Envoy's status and text.
#[derive(Debug, PartialEq)]
pub enum DumpError {
    NotFound(String),
    BadRequest(String),
}

/// `?mask=`: comma-separated dotted paths, as protobuf's JSON spelling of a `FieldMask`.
pub fn parse_mask(s: &str) -> Vec<Vec<String>> {
    s.split(',').filter(|p| !p.is_empty()).map(|p| p.split('.').map(str::to_string).collect()).collect()
}

/// Whether every path of `mask` names a field of a message with `fields` and does not
/// go through a repeated field (protobuf's `FieldMaskUtil::IsValidFieldMask`). Below the
/// first field, legate knows the message by its JSON only: an absent field is taken as
/// valid and empty, an array before the path ends makes the mask invalid.
fn mask_valid(fields: &[&str], value: &Value, mask: &[Vec<String>]) -> bool {
    mask.iter().all(|path| {
        if !fields.contains(&path[0].as_str()) {
            return false;
        }
        let mut v = value.get(&path[0]);
        for seg in &path[1..] {
            match v {
                Some(Value::Object(m)) => v = m.get(seg),
                Some(Value::Array(_)) => return false,
                _ => return true,
            }
        }
        true
    })
}

/// Keeps only what `mask` names (and `@type`), like `FieldMaskUtil::TrimMessage`.
fn trim(value: &Value, mask: &[Vec<String>]) -> Value {
    fn keep(v: &Value, path: &[String], out: &mut serde_json::Map<String, Value>) {
        let Some((first, rest)) = path.split_first() else { return };
        let Some(child) = v.get(first) else { return };
        if rest.is_empty() {
            out.insert(first.clone(), child.clone());
            return;
        }
        let slot = out.entry(first.clone()).or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(m) = slot {
            keep(child, rest, m);
            if let Some(t) = child.get("@type") {
                m.insert("@type".into(), t.clone());
            }
        }
    }
    let mut out = serde_json::Map::new();
    if let Some(t) = value.get("@type") {
        out.insert("@type".into(), t.clone());
    }
    for path in mask {
        keep(value, path, &mut out);
    }
    Value::Object(out)
}

/// `?resource=` and `?mask=` over the full dump's `configs`.
fn select(configs: Vec<Value>, resource: Option<&str>, mask: Option<&[Vec<String>]>) -> Result<Value, DumpError> {
    let fields_of = |c: &Value| -> Fields {
        let ty = c.get("@type").and_then(Value::as_str).and_then(|t| t.strip_prefix(ADMIN)).unwrap_or("");
        DUMPS.iter().find(|(n, _)| *n == ty).map(|(_, f)| *f).unwrap_or(&[])
    };
    let Some(resource) = resource else {
        let Some(mask) = mask else { return Ok(json!({"configs": configs})) };
        let out: Vec<Value> = configs
            .iter()
            .filter(|c| {
                let names: Vec<&str> = fields_of(c).iter().map(|(n, _)| *n).collect();
                mask_valid(&names, c, mask)
            })
            .map(|c| trim(c, mask))
            .collect();
        if out.is_empty() {
            let text = mask.iter().map(|p| p.join(".")).collect::<Vec<_>>().join(",");
            return Err(DumpError::BadRequest(format!(
                "FieldMask {text} could not be successfully applied to any configs."
            )));
        }
        return Ok(json!({"configs": out}));
    };
    let mut known = false;
    let mut items = Vec::new();
    for c in &configs {
        let ty = c.get("@type").and_then(Value::as_str).unwrap_or("");
        match fields_of(c).iter().find(|(n, _)| *n == resource) {
            Some((_, None)) => {
                return Err(DumpError::BadRequest(format!(
                    "{resource} is not a repeated field. Use ?mask={resource} to get only this field"
                )))
            }
            Some((_, Some(item))) => {
                known = true;
                let item_type = format!("{ty}.{item}");
                let item_fields = ITEMS.iter().find(|(n, _)| n == item).map(|(_, f)| *f).unwrap_or(&[]);
                for v in c.get(resource).and_then(Value::as_array).into_iter().flatten() {
                    let mut v = v.clone();
                    if let Value::Object(m) = &mut v {
                        m.insert("@type".into(), Value::String(item_type.clone()));
                    }
                    if let Some(mask) = mask {
                        if !mask_valid(item_fields, &v, mask) {
                            let paths: Vec<String> =
                                mask.iter().map(|p| format!("paths: \"{}\"", p.join("."))).collect();
                            return Err(DumpError::BadRequest(format!(
                                "FieldMask {} could not be successfully used.",
                                paths.join(" ")
                            )));
                        }
                        v = trim(&v, mask);
                    }
                    items.push(v);
                }
            }
            None => {}
        }
    }
    if !known {
        return Err(DumpError::NotFound(format!("{resource} not found in config dump")));
    }
    // Envoy's JSON of an empty ConfigDump.
    Ok(if items.is_empty() { json!({}) } else { json!({"configs": items}) })
}

/// `v` with the `@type` an `Any` field carries in Envoy's dump.
fn typed(ty: &str, v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.insert("@type".into(), Value::String(ty.to_string()));
    }
    v
}

const CLUSTER_T: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LISTENER_T: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const ROUTE_T: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const CLA_T: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// Which parts to show: `?resource=` names a field (e.g. `dynamic_active_clusters`),
/// `?mask=` the fields to keep, and `?include_eds` adds endpoint configs.
pub struct DumpQuery {
    pub resource: Option<String>,
    pub mask: Option<Vec<Vec<String>>>,
    pub include_eds: bool,
    pub name_regex: Option<regex::Regex>,
}

pub fn config_dump(
    src: &Sources,
    errors: &BTreeMap<String, Value>,
    started: SystemTime,
    q: &DumpQuery,
    live: &[(String, Value)],
) -> Result<Value, DumpError> {
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
    let static_names: std::collections::HashSet<String> =
        clusters.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).map(str::to_string).collect();

    let mut dyn_active_listeners = Vec::new();
    if let Some(lds) = &src.lds {
        for l in lds.json().iter().filter(|v| named(v)) {
            dyn_active_listeners.push(json!({
                "name": l.get("name").cloned().unwrap_or(Value::Null),
                "active_state": {"version_info": lds.version_info, "listener": typed(LISTENER_T, l), "last_updated": time(lds.last_updated)},
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
                move |v| json!({"version_info": c.version_info, "cluster": typed(CLUSTER_T, &v), "last_updated": time(c.last_updated)}),
            )
        })
        .collect();
    let dyn_routes: Vec<Value> = src
        .rds
        .values()
        .flat_map(|r| {
            r.json().into_iter().map(move |v| {
                json!({"version_info": r.version_info, "route_config": typed(ROUTE_T, &v), "last_updated": time(r.last_updated)})
            })
        })
        .collect();
    let mut configs = vec![
        json!({"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
               "bootstrap": b, "last_updated": started}),
        json!({"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
               "version_info": src.cds.as_ref().map(|c| c.version_info.clone()).unwrap_or_default(),
               "static_clusters": clusters.into_iter().filter(|c| named(c)).map(|c| json!({"cluster": typed(CLUSTER_T, &c), "last_updated": started})).collect::<Vec<_>>(),
               "dynamic_active_clusters": dyn_clusters,
               "cds_error": errors.get("cds")}),
        json!({"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
               "version_info": src.lds.as_ref().map(|l| l.version_info.clone()).unwrap_or_default(),
               "static_listeners": listeners.into_iter().filter(|l| named(l)).map(|l| json!({"listener": typed(LISTENER_T, &l), "last_updated": started})).collect::<Vec<_>>(),
               "dynamic_listeners": dyn_active_listeners}),
        json!({"@type": "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump"}),
        json!({"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
               "static_route_configs": static_routes.into_iter().map(|r| json!({"route_config": typed(ROUTE_T, &r), "last_updated": started})).collect::<Vec<_>>(),
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
                    json!({"version_info": e.version_info, "endpoint_config": typed(CLA_T, &v), "last_updated": time(e.last_updated)})
                })
            })
            .collect();
        // Endpoints that are no file's (REST EDS, STATIC and STRICT_DNS clusters) as Envoy
        // shows them: by the cluster's origin, the bootstrap's (static) or CDS's, without a
        // version.
        let (mut static_eps, mut rest_dynamic) = (Vec::new(), Vec::new());
        for (cluster, cla) in live.iter().filter(|(name, _)| q.name_regex.as_ref().is_none_or(|r| r.is_match(name))) {
            let entry = json!({"endpoint_config": cla});
            if static_names.contains(cluster) {
                static_eps.push(entry);
            } else {
                rest_dynamic.push(entry);
            }
        }
        let mut eps = eps;
        eps.extend(rest_dynamic);
        configs.push(json!({"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
                            "static_endpoint_configs": static_eps,
                            "dynamic_endpoint_configs": eps,
                            "eds_errors": errors.iter().filter(|(k, _)| k.starts_with("eds(")).map(|(k, v)| json!({"name": k, "error_state": v})).collect::<Vec<_>>()}));
    }
    // Envoy's JSON leaves out empty strings, empty lists and absent messages.
    for c in configs.iter_mut() {
        prune(c);
    }
    select(configs, q.resource.as_deref(), q.mask.as_deref())
}

fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            // As protobuf's JSON: no empty repeated field, no empty version.
            m.retain(|k, v| {
                !(v.is_null()
                    || v.as_array().is_some_and(Vec::is_empty)
                    || k == "version_info" && v.as_str() == Some(""))
            });
            m.values_mut().for_each(prune);
        }
        Value::Array(a) => a.iter_mut().for_each(prune),
        _ => {}
    }
}

/// Envoy's layout: one-space indent and a final newline.
pub fn pretty(v: &Value) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b" "));
    if v.serialize(&mut ser).is_err() {
        return v.to_string();
    }
    out.push(b'\n');
    String::from_utf8(out).unwrap_or_else(|_| v.to_string())
}
