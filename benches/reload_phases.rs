//! Times each phase of applying a 10,000-route RDS file and a 10,000-endpoint EDS file, the
//! sizes the hot-reload budget names (one changed line applied in under 40 ms). Run with
//! `cargo bench --bench reload_phases`; it prints a table, asserts nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use legate::config;
use legate::routing::RouteTable;
use legate::stats::Store;

const N: usize = 10_000;

fn rds_yaml(target: &str) -> String {
    let mut s = String::from(
        "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: r\n  virtual_hosts:\n  - name: vh\n    domains: [\"*\"]\n    routes:\n",
    );
    for i in 0..N {
        s.push_str(&format!("    - match: {{ prefix: \"/r/{i}/\" }}\n      route: {{ cluster: {target} }}\n"));
    }
    s
}

fn eds_yaml(last_port: u16) -> String {
    let mut s = String::from(
        "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: a\n  endpoints:\n  - lb_endpoints:\n",
    );
    for i in 0..N {
        let port = if i == N - 1 { last_port } else { 10_000 + (i % 50_000) as u16 };
        s.push_str(&format!(
            "    - endpoint: {{ address: {{ socket_address: {{ address: 127.2.{}.{}, port_value: {port} }} }} }}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    s
}

fn time<T>(label: &str, rounds: u32, mut f: impl FnMut() -> T) -> T {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..rounds {
        let t = Instant::now();
        out = Some(f());
        best = best.min(t.elapsed());
    }
    println!("| {label} | {:.2} ms |", best.as_secs_f64() * 1000.0);
    out.expect("at least one round")
}

fn main() {
    let rds = rds_yaml("a");
    let eds = eds_yaml(20_000);
    let path = Path::new("rds.yaml");
    println!("| phase ({N} resources, best of 5) | time |\n|---|---|");
    time("YAML text to serde_yaml::Value only", 5, || serde_yaml::from_str::<serde_yaml::Value>(&rds).map(|_| ()).ok());
    let json_text =
        serde_json::to_string(&serde_yaml::from_str::<serde_json::Value>(&rds).unwrap_or_default()).unwrap_or_default();
    time("same file as JSON: parse + validate", 5, || {
        config::parse_route_config(Path::new("rds.json"), json_text.as_bytes(), "r").is_ok()
    });
    let d = time("parse + validate RDS file", 5, || config::parse_route_config(path, rds.as_bytes(), "r"));
    let rc = d.ok().and_then(|d| d.resources.into_iter().next()).expect("valid RDS");
    time("resources as JSON (config_dump)", 5, || config::resources_json(path, rds.as_bytes()));
    let store = Store::new();
    let clusters: HashMap<String, Arc<legate::upstream::Cluster>> = HashMap::new();
    time("compile route table", 5, || RouteTable::build(&rc, &clusters).is_ok());
    time("clone route config", 5, || rc.clone());
    time("compare route configs", 5, || rc == rc.clone());
    let e =
        time("parse + validate EDS file", 5, || config::parse_endpoints(Path::new("eds.yaml"), eds.as_bytes(), "a"));
    let eps = e.ok().map(|d| d.resources).unwrap_or_default();
    let specs = legate::upstream::eds_rest::specs_from_assignment(&eps[0].endpoints);
    let cluster_cfg = config::parse_clusters(
        Path::new("cds.yaml"),
        b"resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: a\n  type: STATIC\n",
    )
    .ok()
    .and_then(|d| d.resources.into_iter().next())
    .expect("valid cluster");
    let cluster = legate::upstream::Cluster::build(cluster_cfg, &store);
    time("set 10k hosts (all new)", 1, || cluster.set_hosts(specs.clone()));
    let mut changed = specs.clone();
    if let Some(last) = changed.last_mut() {
        last.addr.set_port(20_001);
    }
    time("set 10k hosts (one changed)", 5, || cluster.set_hosts(changed.clone()));
}
