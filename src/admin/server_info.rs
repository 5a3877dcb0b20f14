//! `/server_info`, and the local node it shows: the bootstrap's `node` with the command line's
//! `--service-node`, `--service-cluster` and `--service-zone` over it, as Envoy builds it.

use serde_json::{json, Map, Value};

use crate::config::model;
use crate::server::{Options, Server};

/// The bootstrap's node with the command line's overrides, as the model carries it (what
/// discovery requests send).
pub fn apply_node_options(node: &mut model::Node, options: &Options) {
    if let Some(id) = &options.service_node {
        node.id = id.clone();
    }
    if let Some(cluster) = &options.service_cluster {
        node.cluster = cluster.clone();
    }
}

/// The node as Envoy's `/server_info` prints it: `id`, `cluster`, the bootstrap's `metadata`
/// and `locality` when given (a locality's three names always printed), then what legate is.
pub fn node_json(bootstrap_json: &Value, options: &Options) -> Value {
    let given = bootstrap_json.get("node").and_then(Value::as_object).cloned().unwrap_or_default();
    let text = |key: &str| given.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let mut node = Map::new();
    node.insert("id".into(), json!(options.service_node.clone().unwrap_or_else(|| text("id"))));
    node.insert("cluster".into(), json!(options.service_cluster.clone().unwrap_or_else(|| text("cluster"))));
    if let Some(metadata) = given.get("metadata") {
        node.insert("metadata".into(), metadata.clone());
    }
    let given_locality = given.get("locality").and_then(Value::as_object);
    if given_locality.is_some() || options.service_zone.is_some() {
        let part = |key: &str| given_locality.and_then(|l| l.get(key)).and_then(Value::as_str).unwrap_or_default();
        let zone = options.service_zone.as_deref().unwrap_or_else(|| part("zone"));
        node.insert("locality".into(), json!({"region": part("region"), "zone": zone, "sub_zone": part("sub_zone")}));
    }
    let number = |s: &str| s.parse::<u64>().unwrap_or(0);
    node.insert("user_agent_name".into(), json!("legate"));
    node.insert(
        "user_agent_build_version".into(),
        json!({
            "version": {
                "major_number": number(env!("CARGO_PKG_VERSION_MAJOR")),
                "minor_number": number(env!("CARGO_PKG_VERSION_MINOR")),
                "patch": number(env!("CARGO_PKG_VERSION_PATCH")),
            },
            "metadata": {"revision.sha": env!("LEGATE_GIT_SHA"), "build.type": env!("LEGATE_BUILD_TYPE")},
        }),
    );
    node.insert("client_features".into(), json!([]));
    node.insert("listening_addresses".into(), json!([]));
    node.insert("dynamic_parameters".into(), json!({}));
    Value::Object(node)
}

pub fn server_info(server: &Server) -> Value {
    let state = if server.is_live() { "LIVE" } else { "DRAINING" };
    let up = server.uptime().as_secs();
    let options = &server.options;
    json!({
        "version": crate::cli::BUILD_VERSION,
        "state": state,
        "hot_restart_version": "disabled",
        "hot_restart_initializing": false,
        "uptime_current_epoch": format!("{up}s"),
        "uptime_all_epochs": format!("{up}s"),
        "node": server.node,
        "command_line_options": {
            "concurrency": options.concurrency,
            "log_level": options.log_level,
            "config_path": options.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "config_yaml": options.config_yaml.clone().unwrap_or_default(),
            "drain_time": format!("{}s", options.drain_time.as_secs()),
            "mode": "Serve",
            "service_cluster": options.service_cluster.clone().unwrap_or_default(),
            "service_node": options.service_node.clone().unwrap_or_default(),
            "service_zone": options.service_zone.clone().unwrap_or_default(),
            "disable_hot_restart": true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(node: Option<&str>, cluster: Option<&str>, zone: Option<&str>) -> Options {
        Options {
            service_node: node.map(String::from),
            service_cluster: cluster.map(String::from),
            service_zone: zone.map(String::from),
            ..Options::default()
        }
    }

    #[test]
    fn the_command_line_replaces_the_bootstraps_id_cluster_and_zone() {
        let boot = json!({"node": {"id": "b-id", "cluster": "b-cluster", "metadata": {"k": "v"},
            "locality": {"region": "r1", "zone": "b-zone"}}});
        let node = node_json(&boot, &options(Some("n"), Some("c"), Some("z")));
        assert_eq!(node["id"], "n");
        assert_eq!(node["cluster"], "c");
        assert_eq!(node["metadata"], json!({"k": "v"}));
        assert_eq!(node["locality"], json!({"region": "r1", "zone": "z", "sub_zone": ""}));
        let node = node_json(&boot, &options(None, None, None));
        assert_eq!((node["id"].as_str(), node["cluster"].as_str()), (Some("b-id"), Some("b-cluster")));
        assert_eq!(node["locality"]["zone"], "b-zone");
    }

    #[test]
    fn no_locality_unless_given() {
        let node = node_json(&json!({}), &options(None, None, None));
        assert_eq!((node["id"].as_str(), node["cluster"].as_str()), (Some(""), Some("")));
        assert!(node.get("locality").is_none() && node.get("metadata").is_none());
        let node = node_json(&json!({}), &options(None, None, Some("z")));
        assert_eq!(node["locality"], json!({"region": "", "zone": "z", "sub_zone": ""}));
    }

    #[test]
    fn the_model_node_takes_the_overrides() {
        let mut node = model::Node { id: "b".into(), cluster: "c".into() };
        apply_node_options(&mut node, &options(Some("n"), None, Some("z")));
        assert_eq!((node.id.as_str(), node.cluster.as_str()), ("n", "c"));
    }
}
