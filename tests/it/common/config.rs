//! Envoy v3 bootstrap configs built from small `serde_json` pieces and written as YAML.
//!
//! ```ignore
//! let yaml = config::bootstrap()
//!     .routes(json!([{ "match": { "prefix": "/" }, "route": { "cluster": "service1" } }]))
//!     .cluster(config::static_cluster("service1", &[up.addr()]))
//!     .yaml();
//! ```
//! Listeners and the admin bind 127.0.0.1 port 0; [`super::legate::Legate`] learns the ports.

use std::net::SocketAddr;

use serde_json::{json, Value};

pub const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
pub const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// A bootstrap with an admin on 127.0.0.1:0 and no listeners or clusters yet.
pub fn bootstrap() -> Bootstrap {
    Bootstrap::default()
}

#[derive(Default, Clone)]
pub struct Bootstrap {
    listeners: Vec<Value>,
    clusters: Vec<Value>,
}

impl Bootstrap {
    /// Adds listener `main` (stat prefix `ingress_http`) with one virtual host `*`.
    pub fn routes(self, routes: Value) -> Self {
        self.listener("main", route_config(json!([vhost("default", &["*"], routes)])))
    }

    /// Adds an HTTP listener named `name` with this `route_config`.
    pub fn listener(self, name: &str, route_config: Value) -> Self {
        self.listener_hcm(name, hcm(route_config))
    }

    /// Adds an HTTP listener named `name` with this HttpConnectionManager `typed_config`.
    pub fn listener_hcm(mut self, name: &str, hcm: Value) -> Self {
        self.listeners.push(json!({
            "name": name,
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
            "filter_chains": [{ "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm,
            }]}],
        }));
        self
    }

    pub fn cluster(mut self, cluster: Value) -> Self {
        self.clusters.push(cluster);
        self
    }

    pub fn value(&self) -> Value {
        json!({
            "admin": {
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
            },
            "static_resources": {
                "listeners": self.listeners,
                "clusters": self.clusters,
            },
        })
    }

    pub fn yaml(&self) -> String {
        serde_yaml::to_string(&self.value()).expect("yaml")
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&self.value()).expect("json")
    }
}

/// An HttpConnectionManager `typed_config` (stat prefix `ingress_http`, codec AUTO, router).
pub fn hcm(route_config: Value) -> Value {
    json!({
        "@type": HCM_TYPE,
        "stat_prefix": "ingress_http",
        "codec_type": "AUTO",
        "route_config": route_config,
        "http_filters": [router_filter()],
    })
}

pub fn router_filter() -> Value {
    json!({ "name": "envoy.filters.http.router", "typed_config": { "@type": ROUTER_TYPE } })
}

pub fn route_config(virtual_hosts: Value) -> Value {
    json!({ "name": "local_route", "virtual_hosts": virtual_hosts })
}

pub fn vhost(name: &str, domains: &[&str], routes: Value) -> Value {
    json!({ "name": name, "domains": domains, "routes": routes })
}

/// A route answering `200` with `body` itself (handy to see which route matched).
pub fn direct(matcher: Value, body: &str) -> Value {
    json!({
        "match": matcher,
        "direct_response": { "status": 200, "body": { "inline_string": body } },
    })
}

/// A route to `cluster`.
pub fn to_cluster(matcher: Value, cluster: &str) -> Value {
    json!({ "match": matcher, "route": { "cluster": cluster } })
}

pub fn endpoint(addr: SocketAddr) -> Value {
    json!({ "endpoint": { "address": { "socket_address": {
        "address": addr.ip().to_string(), "port_value": addr.port(),
    }}}})
}

pub fn weighted_endpoint(addr: SocketAddr, weight: u32) -> Value {
    let mut e = endpoint(addr);
    e["load_balancing_weight"] = json!(weight);
    e
}

/// A STATIC round-robin cluster over `addrs`.
pub fn static_cluster(name: &str, addrs: &[SocketAddr]) -> Value {
    let eps: Vec<Value> = addrs.iter().map(|a| endpoint(*a)).collect();
    static_cluster_with(name, eps)
}

/// A STATIC round-robin cluster over explicit `lb_endpoints`.
pub fn static_cluster_with(name: &str, lb_endpoints: Vec<Value>) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": lb_endpoints }],
        },
    })
}

/// Makes `cluster` speak h2c to its endpoints.
pub fn with_h2(mut cluster: Value) -> Value {
    cluster["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": { "http2_protocol_options": {} },
        }
    });
    cluster
}

/// A STRICT_DNS cluster resolving `host` through the DNS server on 127.0.0.1:`dns_port`.
pub fn strict_dns_cluster(name: &str, host: &str, port: u16, dns_port: u16) -> Value {
    json!({
        "name": name,
        "type": "STRICT_DNS",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "dns_refresh_rate": "0.2s",
        "dns_lookup_family": "V4_ONLY",
        "typed_dns_resolver_config": {
            "name": "envoy.network.dns_resolver.cares",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
                "resolvers": [{ "socket_address": { "address": "127.0.0.1", "port_value": dns_port } }],
            },
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": { "socket_address": {
                "address": host, "port_value": port,
            }}}}]}],
        },
    })
}
