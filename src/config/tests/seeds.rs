//! Our own v2-era configs (`tests/fixtures/v2/`, written like the 2018-2019 deployments of
//! `../shared/seed-configs`): each loads unchanged, with the fields its v2 spellings set
//! checked: `config:`, `hosts:`, `envoy.http_connection_manager` / `envoy.router` /
//! `envoy.file_access_log`, lowercase enums, cluster-level `http2_protocol_options`,
//! `admin.access_log_path`, unnamed listeners, duplicate virtual host names, REST EDS.

use std::time::Duration;

use super::fixture;
use crate::config::load_bootstrap;
use crate::config::model::*;

fn v2(name: &str) -> Bootstrap {
    let path = fixture(&format!("v2/{name}"));
    match load_bootstrap(Some(&path), None) {
        Ok(b) => b,
        Err(e) => panic!("{name} did not load:\n{e}"),
    }
}

fn hcm(b: &Bootstrap, i: usize) -> &HttpConnectionManager {
    b.listeners[i].hcms().next().unwrap_or_else(|| panic!("no hcm"))
}

fn inline_routes(b: &Bootstrap, i: usize) -> &RouteConfig {
    match &hcm(b, i).routes {
        RouteSource::Inline(rc) => rc,
        RouteSource::Rds { .. } => panic!("listener {i}: RDS, not inline routes"),
    }
}

#[test]
fn edge_proxy_lowercase_enums_hosts_and_h2_clusters() {
    let b = v2("edge-proxy.yaml");
    assert_eq!(b.clusters.len(), 2);
    for (c, (host, port, protocol)) in b
        .clusters
        .iter()
        .zip([("api.internal", 8443, UpstreamProtocol::Http2), ("web.internal", 8000, UpstreamProtocol::Http1)])
    {
        assert_eq!(c.discovery, DiscoveryType::StrictDns, "{}", c.name);
        assert_eq!(c.lb_policy, LbPolicy::RoundRobin, "{}", c.name);
        assert_eq!(c.protocol, protocol, "{}", c.name);
        assert_eq!(c.connect_timeout, Duration::from_millis(500));
        assert_eq!(c.endpoints.len(), 1);
        assert_eq!(c.endpoints[0].endpoints[0].address, EndpointAddress::Dns { host: host.to_string(), port });
    }
    assert_eq!(b.listeners[0].name, "listener_0", "an unnamed listener is named by its index");
    assert_eq!(b.listeners[0].address, "127.0.0.1:18080".parse().unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(hcm(&b, 0).http_filters, vec![HttpFilter::router()]);
    assert_eq!(hcm(&b, 0).stat_prefix, "edge_http");
    let rc = inline_routes(&b, 0);
    assert_eq!(rc.name, "edge_routes");
    assert_eq!(rc.virtual_hosts[0].routes.len(), 2);
    let admin = b.admin.as_ref().map(|a| (a.address.port(), a.access_log_path.clone()));
    assert_eq!(admin, Some((9902, None)), "/dev/null logs nothing");
}

#[test]
fn app_sidecar_strict_dns_on_an_ip_literal() {
    let b = v2("app-sidecar.yaml");
    let c = &b.clusters[0];
    assert_eq!(c.discovery, DiscoveryType::StrictDns);
    assert_eq!(c.protocol, UpstreamProtocol::Http1);
    assert_eq!(c.connect_timeout, Duration::from_secs(1));
    assert!(matches!(c.endpoints[0].endpoints[0].address, EndpointAddress::Ip(a) if a.port() == 7000));
}

#[test]
fn host_router_duplicate_vhost_names_and_two_hosts_per_cluster() {
    let b = v2("host-router.yaml");
    assert_eq!(b.listeners[0].name, "hosts_listener");
    assert!(b.admin.is_none());
    let rc = inline_routes(&b, 0);
    assert_eq!(rc.virtual_hosts.len(), 2);
    assert_eq!(rc.virtual_hosts[0].name, rc.virtual_hosts[1].name);
    assert_eq!(rc.virtual_hosts[1].domains, ["shop.example"]);
    for c in &b.clusters {
        assert_eq!(c.discovery, DiscoveryType::StrictDns, "{}", c.name);
        assert_eq!(c.lb_policy, LbPolicy::RoundRobin, "{}", c.name);
        assert_eq!(c.endpoints[0].endpoints.len(), 2, "{}", c.name);
    }
    assert_eq!(
        b.clusters[1].endpoints[0].endpoints[1].address,
        EndpointAddress::Dns { host: "shop-b.internal".into(), port: 80 }
    );
}

#[test]
fn grpc_gateway_file_access_logs_and_two_listeners() {
    let b = v2("grpc-gateway.yaml");
    assert_eq!(b.listeners.len(), 2);
    assert_eq!((b.listeners[0].name.as_str(), b.listeners[1].name.as_str()), ("listener_0", "listener_1"));
    for i in 0..2 {
        let logs = &hcm(&b, i).access_logs;
        assert_eq!(logs.len(), 1, "listener {i}");
        assert_eq!(logs[0].sink, AccessLogSink::File("/dev/stdout".into()));
        assert_eq!(logs[0].format, AccessLogFormat::Default);
    }
    assert_eq!(b.clusters[0].discovery, DiscoveryType::Static);
    assert_eq!(b.clusters[0].protocol, UpstreamProtocol::Http1);
    for c in &b.clusters[1..] {
        assert_eq!(c.protocol, UpstreamProtocol::Http2, "{}", c.name);
        assert_eq!(c.discovery, DiscoveryType::StrictDns, "{}", c.name);
    }
    assert_eq!(b.admin.as_ref().and_then(|a| a.access_log_path.clone()), Some("/dev/stdout".into()));
}

#[test]
fn rest_eds_api_config_source() {
    let b = v2("rest-eds.yaml");
    let want = DiscoveryType::Eds {
        service_name: "backend-v1".to_string(),
        source: EdsConfigSource::Rest {
            cluster: "discovery".to_string(),
            refresh_delay: Duration::from_secs(3),
            request_timeout: Duration::from_secs(1),
            transport_v3: false,
        },
    };
    assert_eq!(b.clusters[0].discovery, want);
    assert!(b.clusters[0].endpoints.is_empty());
    assert_eq!(b.clusters[1].discovery, DiscoveryType::Static);
    assert!(matches!(b.clusters[1].endpoints[0].endpoints[0].address, EndpointAddress::Ip(a) if a.port() == 8088));
    assert_eq!(b.admin.as_ref().map(|a| (a.address.port(), a.access_log_path.clone())), Some((9905, None)));
}
