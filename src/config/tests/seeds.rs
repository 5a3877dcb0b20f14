//! Every seed config loads unchanged, with a few fields checked.

use std::time::Duration;

use super::shared;
use crate::config::load_bootstrap;
use crate::config::model::*;

fn seed(name: &str) -> Bootstrap {
    let path = shared(&format!("seed-configs/{name}"));
    match load_bootstrap(Some(&path), None) {
        Ok(b) => b,
        Err(e) => panic!("{name} did not load:\n{e}"),
    }
}

fn hcm(b: &Bootstrap, i: usize) -> &HttpConnectionManager {
    &b.listeners[i].hcm
}

#[test]
fn front_envoy() {
    let b = seed("front-envoy.yaml");
    assert_eq!(b.clusters.len(), 2);
    for (c, host) in b.clusters.iter().zip(["service1", "service2"]) {
        assert_eq!(c.discovery, DiscoveryType::StrictDns);
        assert_eq!(c.protocol, UpstreamProtocol::Http2);
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.endpoints.len(), 1);
        assert_eq!(c.endpoints[0].endpoints[0].address, EndpointAddress::Dns { host: host.to_string(), port: 80 });
    }
    assert_eq!(b.listeners[0].name, "listener_0");
    assert_eq!(b.listeners[0].address, "0.0.0.0:80".parse().unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(hcm(&b, 0).http_filters, vec![HttpFilter::Router]);
    let admin = b.admin.as_ref().map(|a| a.address.port());
    assert_eq!(admin, Some(8001));
}

#[test]
fn service_envoy() {
    let b = seed("service-envoy.yaml");
    let c = &b.clusters[0];
    assert_eq!(c.discovery, DiscoveryType::StrictDns);
    assert_eq!(c.protocol, UpstreamProtocol::Http1);
    assert!(matches!(c.endpoints[0].endpoints[0].address, EndpointAddress::Ip(a) if a.port() == 8080));
}

#[test]
fn http_lb_vhosts_duplicate_vhost_names() {
    let b = seed("http-lb-vhosts.yaml");
    let RouteSource::Inline(rc) = &hcm(&b, 0).routes else { panic!("not inline") };
    assert_eq!(rc.virtual_hosts.len(), 2);
    assert_eq!(rc.virtual_hosts[1].name, "nginx_service");
    assert_eq!(rc.virtual_hosts[1].domains, ["httpd.local"]);
    assert_eq!(b.clusters[1].endpoints[0].endpoints.len(), 2);
}

#[test]
fn sidecar_gateway_access_logs() {
    let b = seed("sidecar-gateway.yaml");
    assert_eq!(b.listeners.len(), 2);
    assert_eq!(b.listeners[1].name, "listener_1");
    let log = &hcm(&b, 0).access_logs[0];
    assert_eq!(log.sink, AccessLogSink::File("/dev/stdout".into()));
    assert_eq!(log.format, AccessLogFormat::Default);
    assert_eq!(b.clusters[0].discovery, DiscoveryType::Static);
    assert_eq!(b.clusters[1].protocol, UpstreamProtocol::Http2);
    assert_eq!(b.admin.as_ref().and_then(|a| a.access_log_path.clone()), Some("/dev/stdout".into()));
}

#[test]
fn sidecar_service() {
    let b = seed("sidecar-service.yaml");
    assert_eq!(b.clusters[0].protocol, UpstreamProtocol::Http2);
    assert_eq!(b.clusters[0].discovery, DiscoveryType::Static);
}

#[test]
fn eds_rest() {
    let b = seed("eds-rest.yaml");
    let want = DiscoveryType::Eds {
        service_name: "myservice".to_string(),
        source: EdsSource::Rest {
            cluster: "eds_cluster".to_string(),
            refresh_delay: Duration::from_secs(5),
            request_timeout: Duration::from_secs(1),
        },
    };
    assert_eq!(b.clusters[0].discovery, want);
    assert!(b.clusters[0].endpoints.is_empty());
    assert_eq!(b.admin.as_ref().and_then(|a| a.access_log_path.clone()), None);
}
