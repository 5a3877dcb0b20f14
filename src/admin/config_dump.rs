//! `/config_dump`: Envoy's `ConfigDump` JSON, built from the bootstrap as loaded (after v2
//! normalisation), so users see what they wrote in v3 form.

use serde_json::{json, Value};

const HCM: &str = "envoy.filters.network.http_connection_manager";

/// Route configurations written inline in listeners' connection managers.
fn inline_route_configs(listeners: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for l in listeners {
        let chains = l.get("filter_chains").and_then(Value::as_array).cloned().unwrap_or_default();
        for chain in chains {
            for f in chain.get("filters").and_then(Value::as_array).cloned().unwrap_or_default() {
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

pub fn config_dump(bootstrap: &Value, last_updated: &str) -> Value {
    let sr = bootstrap.get("static_resources");
    let listeners = sr.and_then(|s| s.get("listeners")).and_then(Value::as_array).cloned().unwrap_or_default();
    let clusters = sr.and_then(|s| s.get("clusters")).and_then(Value::as_array).cloned().unwrap_or_default();
    let routes = inline_route_configs(&listeners);
    json!({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
         "bootstrap": bootstrap, "last_updated": last_updated},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         "static_clusters": clusters.into_iter().map(|c| json!({"cluster": c, "last_updated": last_updated})).collect::<Vec<_>>()},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "static_listeners": listeners.into_iter().map(|l| json!({"listener": l, "last_updated": last_updated})).collect::<Vec<_>>()},
        {"@type": "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump"},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
         "static_route_configs": routes.into_iter().map(|r| json!({"route_config": r, "last_updated": last_updated})).collect::<Vec<_>>()},
        {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"},
    ]})
}
