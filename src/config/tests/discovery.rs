//! The file-based xDS parsers: good files, wrong `@type`, name mismatches, empty EDS.

use std::collections::HashSet;
use std::path::Path;

use super::{fixture, messages};
use crate::config::model::*;
use crate::config::{check_cluster_refs, parse_clusters, parse_endpoints, parse_listeners, parse_route_config};

const CLA: &str = r#"version_info: "7"
resources:
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: a_svc
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: 127.0.0.11, port_value: 8080}}}
      load_balancing_weight: 3
"#;

const RDS: &str = r#"resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: local_route
  virtual_hosts:
  - name: vh
    domains: ["*"]
    routes:
    - match: {prefix: "/"}
      route: {cluster: ghost_svc}
"#;

#[test]
fn endpoints() {
    let d = parse_endpoints(Path::new("eds.yaml"), CLA.as_bytes(), "a_svc").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.version_info, "7");
    assert_eq!(d.resources[0].cluster_name, "a_svc");
    let ep = &d.resources[0].endpoints[0].endpoints[0];
    assert_eq!(ep.weight, 3);
    assert!(matches!(ep.address, EndpointAddress::Ip(a) if a.port() == 8080));

    let Err(e) = parse_endpoints(Path::new("eds.yaml"), CLA.as_bytes(), "b_svc") else { panic!("accepted") };
    assert_eq!(
        messages(&e),
        ["resources[0].cluster_name: unexpected ClusterLoadAssignment \"a_svc\": expected \"b_svc\""]
    );
    assert_eq!(e.0[0].file, Path::new("eds.yaml"));

    let empty = parse_endpoints(Path::new("eds.yaml"), b"resources: []\n", "a_svc").unwrap_or_else(|e| panic!("{e}"));
    assert!(empty.resources.is_empty());

    let bad_port = CLA.replace("8080", "70000");
    assert!(parse_endpoints(Path::new("eds.yaml"), bad_port.as_bytes(), "a_svc").is_err());
}

#[test]
fn wrong_type() {
    let text = CLA.replace("endpoint.v3.ClusterLoadAssignment", "cluster.v3.Cluster");
    let Err(e) = parse_endpoints(Path::new("eds.yaml"), text.as_bytes(), "a_svc") else { panic!("accepted") };
    assert_eq!(
        messages(&e),
        ["resources[0].@type: wrong @type \"type.googleapis.com/envoy.config.cluster.v3.Cluster\": expected \"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\""]
    );
    let Err(e) = parse_route_config(Path::new("rds.yaml"), CLA.as_bytes(), "local_route") else { panic!("accepted") };
    assert!(messages(&e).iter().any(|m| m.starts_with("resources[0].@type: wrong @type")));
}

#[test]
fn route_config() {
    let d = parse_route_config(Path::new("rds.yaml"), RDS.as_bytes(), "local_route").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.resources[0].name, "local_route");
    assert_eq!(d.resources[0].validate_clusters, None);
    let Err(e) = parse_route_config(Path::new("rds.yaml"), RDS.as_bytes(), "other") else { panic!("accepted") };
    assert_eq!(messages(&e), ["resources[0].name: unexpected RouteConfiguration \"local_route\": expected \"other\""]);
    let Err(e) = parse_route_config(Path::new("rds.yaml"), b"resources: []", "local_route") else { panic!("accepted") };
    assert_eq!(messages(&e), ["resources: expected exactly one RouteConfiguration, found 0"]);
    let Err(e) = parse_route_config(Path::new("rds.yaml"), b"resources: [ {{{ x: : y\n", "x") else {
        panic!("accepted")
    };
    assert!(e.0[0].path.is_empty() && e.0[0].message.contains("line 1 column"));
}

#[test]
fn clusters_and_listeners_with_refs() {
    let cds = fixture("dynamic-fs/cds.yaml");
    let bytes = std::fs::read(&cds).unwrap_or_else(|e| panic!("{e}"));
    let d = parse_clusters(&cds, &bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.resources[0].name, "catalog_cluster");
    assert_eq!(d.resources[0].discovery, DiscoveryType::StrictDns);
    let ep = &d.resources[0].endpoints[0].endpoints[0];
    assert_eq!(ep.address, EndpointAddress::Dns { host: "catalog.internal".into(), port: 9090 });
    // Its `filters:` is a single object, not a list: accepted like Envoy does.
    let lds = fixture("dynamic-fs/lds.yaml");
    let bytes = std::fs::read(&lds).unwrap_or_else(|e| panic!("{e}"));
    let d = parse_listeners(&lds, &bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.resources[0].name, "catalog_listener");
    assert_eq!(d.resources[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).stat_prefix, "catalog_http");
    assert!(check_cluster_refs(&d.resources, &["catalog_cluster".to_string()].into(), "resources").is_empty());
    assert_eq!(check_cluster_refs(&d.resources, &HashSet::new(), "resources").len(), 1);

    let lds = r#"{"version_info": "1", "resources": [{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
      "name": "main", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
      "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress", "http_filters": [{"name": "envoy.filters.http.router", "typed_config":
          {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        "route_config": {"name": "r", "virtual_hosts": [{"name": "vh", "domains": ["*"],
          "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "ghost_svc"}}]}]}}}]}]}]}"#;
    let d = parse_listeners(Path::new("lds.json"), lds.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.resources[0].name, "main");
    let known: HashSet<String> = ["a_svc".to_string()].into();
    let errs = check_cluster_refs(&d.resources, &known, "resources");
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].path,
        "resources[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster"
    );
    let known: HashSet<String> = ["ghost_svc".to_string()].into();
    assert!(check_cluster_refs(&d.resources, &known, "resources").is_empty());

    let Err(e) = parse_clusters(Path::new("cds.yaml"), b"resources:\n- {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: bad, connect_timeout: -1s}\n") else {
        panic!("accepted")
    };
    assert_eq!(messages(&e), ["resources[0].connect_timeout: invalid duration \"-1s\": negative"]);
}
