//! `Cluster` (discovery type, load balancing, DNS, timeouts, protocol options, circuit
//! breakers, EDS config) and `ClusterLoadAssignment` endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::model::{
    CircuitBreakers, Cluster, DiscoveryType, DnsLookupFamily, EdsHealth, Endpoint, EndpointAddress, EndpointHc,
    Http2Options, LbPolicy, Locality, LocalityEndpoints, Thresholds, UpstreamProtocol,
};
use crate::config::reader::{Ctx, FieldPath, Obj};
use crate::config::type_urls as t;
use crate::tls::auto_sni::AutoSni;

use super::common::{address, config_source, parse_ip};
use super::hcm::http2_options;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Static,
    StrictDns,
    LogicalDns,
    Eds,
}

pub(crate) fn cluster(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<Cluster> {
    let before = ctx.error_count();
    let name = o.str(ctx, "name").filter(|n| !n.is_empty());
    if name.is_none() {
        ctx.err(o.at("name"), "missing name");
    }
    let kind = o
        .enumv(
            ctx,
            "type",
            &[
                ("STATIC", Some(Kind::Static)),
                ("STRICT_DNS", Some(Kind::StrictDns)),
                ("LOGICAL_DNS", Some(Kind::LogicalDns)),
                ("EDS", Some(Kind::Eds)),
                ("ORIGINAL_DST", None),
            ],
        )
        .unwrap_or(Kind::Static);
    let lb_policy = o
        .enumv(
            ctx,
            "lb_policy",
            &[
                ("ROUND_ROBIN", Some(LbPolicy::RoundRobin)),
                ("LEAST_REQUEST", Some(LbPolicy::LeastRequest)),
                ("RANDOM", Some(LbPolicy::Random)),
                ("RING_HASH", Some(LbPolicy::RingHash { minimum_ring_size: 0, maximum_ring_size: 0 })),
                ("MAGLEV", Some(LbPolicy::Maglev { table_size: 0 })),
                ("CLUSTER_PROVIDED", None),
                ("LOAD_BALANCING_POLICY_CONFIG", None),
                ("ORIGINAL_DST_LB", None),
            ],
        )
        .unwrap_or_default();
    let lb_policy = super::hash_lb::hash_lb_config(ctx, &mut o, lb_policy);
    let lb_tuning = super::lb_config::lb_tuning(ctx, &mut o, lb_policy);
    let connect_timeout = positive(ctx, &mut o, "connect_timeout", Duration::from_secs(5));
    let dns_refresh_rate = positive(ctx, &mut o, "dns_refresh_rate", Duration::from_secs(5));
    let dns_lookup_family = o
        .enumv(
            ctx,
            "dns_lookup_family",
            &[
                ("AUTO", Some(DnsLookupFamily::Auto)),
                ("V4_ONLY", Some(DnsLookupFamily::V4Only)),
                ("V6_ONLY", Some(DnsLookupFamily::V6Only)),
                ("V4_PREFERRED", Some(DnsLookupFamily::V4Preferred)),
                ("ALL", Some(DnsLookupFamily::All)),
            ],
        )
        .unwrap_or_default();
    let (resolver, dns_own_resolver) = super::dns::resolver(ctx, &mut o, true);
    let respect_dns_ttl = o.bool(ctx, "respect_dns_ttl").unwrap_or(false);
    let dns_failure_refresh_rate = super::dns::failure_refresh_rate(ctx, &mut o);
    let la_path = o.at("load_assignment");
    let mut endpoints = Vec::new();
    if let Some(la) = o.obj(ctx, "load_assignment") {
        endpoints = load_assignment(ctx, la, kind == Kind::Static || kind == Kind::Eds).1;
    }
    let ProtocolOptions { protocol, http2, idle: idle_timeout, auto: auto_config, auto_sni: typed_auto_sni, h1 } =
        protocol_options(ctx, &mut o);
    let auto_sni = cluster_auto_sni(ctx, &mut o, typed_auto_sni);
    let ts_path = o.at("transport_socket");
    let tls = o
        .obj(ctx, "transport_socket")
        .and_then(|t| super::upstream_tls::transport_socket(ctx, t, protocol, auto_config, auto_sni.clone()));
    if let Some((auto, at)) = &auto_sni {
        if auto.enabled() && tls.is_none() && ctx.error_count() == before {
            ctx.err(at, "auto_sni and auto_san_validation need an UpstreamTlsContext (a plaintext connection has no SNI nor certificate)");
        }
    }
    if auto_config && tls.is_none() && ctx.error_count() == before {
        // Envoy's refusal: ALPN needs TLS.
        ctx.err(
            &ts_path,
            "ALPN configured for a cluster which has a non-ALPN transport socket (auto_config needs an UpstreamTlsContext)",
        );
    }
    let per_connection_buffer_limit_bytes =
        o.uint(ctx, "per_connection_buffer_limit_bytes", u64::from(u32::MAX)).map_or(1 << 20, |v| v as u32);
    let circuit_breakers = o.obj(ctx, "circuit_breakers").map(|c| circuit_breakers(ctx, c)).unwrap_or_default();
    let eds_path = o.at("eds_cluster_config");
    let eds = o.obj(ctx, "eds_cluster_config").map(|mut e| {
        let service_name = e.str(ctx, "service_name");
        let source = e.obj(ctx, "eds_config").and_then(|s| config_source(ctx, s, true));
        if !e.has("eds_config") {
            ctx.err(e.at("eds_config"), "missing eds_config");
        }
        e.finish(ctx, &[]);
        (service_name, source)
    });
    let alt_stat_name = o.str(ctx, "alt_stat_name").filter(|n| !n.is_empty());
    let hc_at = o.at("health_checks");
    let health_checks: Vec<_> =
        o.objs(ctx, "health_checks").into_iter().filter_map(|h| super::health::health_check(ctx, h)).collect();
    if health_checks.len() > 1 {
        ctx.err(hc_at.clone(), "more than one health check (not implemented by legate)");
    }
    let grpc_check = health_checks.iter().any(|h| matches!(h.kind, crate::config::model::CheckKind::Grpc(_)));
    if grpc_check && protocol != UpstreamProtocol::Http2 {
        // Envoy's words.
        let name = o.peek_str("name").unwrap_or_default();
        ctx.err(hc_at, format!("{name} cluster must support HTTP/2 for gRPC healthchecking"));
    }
    let outlier_detection = o.obj(ctx, "outlier_detection").map(|d| super::health::outlier_detection(ctx, d));
    let cluster_type = match kind {
        Kind::Static => "envoy.cluster.static",
        Kind::StrictDns => "envoy.cluster.strict_dns",
        Kind::LogicalDns => "envoy.cluster.logical_dns",
        Kind::Eds => "envoy.cluster.eds",
    };
    let (panic_threshold, locality_weighted_lb, consistent_hashing) =
        o.obj(ctx, "common_lb_config").map_or((50.0, false, Default::default()), |c| {
            super::health::common_lb_config(ctx, c, lb_policy, cluster_type)
        });
    o.ignore(&["metadata", "ignore_health_on_host_removal", "close_connections_on_host_health_failure"]);
    o.finish(ctx, &[]);
    let name = name?;
    let has_eds = eds.is_some();
    let discovery = match kind {
        Kind::Static => DiscoveryType::Static,
        Kind::StrictDns => DiscoveryType::StrictDns,
        Kind::LogicalDns => DiscoveryType::LogicalDns,
        Kind::Eds => match eds {
            Some((service_name, Some(source))) => {
                DiscoveryType::Eds { service_name: service_name.unwrap_or_else(|| name.clone()), source }
            }
            Some((_, None)) => DiscoveryType::Static, // its error is already reported
            None => {
                ctx.err(&eds_path, "an EDS cluster needs eds_cluster_config");
                DiscoveryType::Static
            }
        },
    };
    if kind != Kind::Eds && has_eds {
        ctx.err(&eds_path, "eds_cluster_config is only valid for type EDS");
    }
    if kind == Kind::LogicalDns {
        let n: usize = endpoints.iter().map(|l: &LocalityEndpoints| l.endpoints.len()).sum();
        if n != 1 || endpoints.len() != 1 {
            ctx.err(&la_path, "LOGICAL_DNS clusters must have exactly one endpoint");
        }
    }
    if ctx.error_count() > before {
        return None;
    }
    Some(Cluster {
        name,
        alt_stat_name,
        discovery,
        lb_policy,
        connect_timeout,
        dns_refresh_rate,
        dns_resolvers: resolver.resolvers,
        dns_options: resolver.options,
        dns_own_resolver,
        respect_dns_ttl,
        dns_failure_refresh_rate,
        dns_lookup_family,
        endpoints,
        protocol,
        http2,
        auto_config,
        tls,
        idle_timeout,
        per_connection_buffer_limit_bytes,
        circuit_breakers,
        health_checks,
        outlier_detection,
        panic_threshold,
        locality_weighted_lb,
        lb_tuning,
        consistent_hashing,
        h1_proper_case: h1.proper_case,
        h1_trailers: h1.trailers,
    })
}

/// A duration that must be greater than zero.
fn positive(ctx: &mut Ctx, o: &mut Obj<'_>, field: &'static str, default: Duration) -> Duration {
    match o.duration(ctx, field) {
        Some(Duration::ZERO) => {
            ctx.err(o.at(field), "must be greater than 0s");
            default
        }
        Some(d) => d,
        None => default,
    }
}

/// The cluster's `upstream_http_protocol_options` (deprecated, honoured by Envoy only when no
/// typed `HttpProtocolOptions` is given), else the typed one's; with the field's path.
fn cluster_auto_sni(ctx: &mut Ctx, o: &mut Obj<'_>, typed: TypedAutoSni) -> Option<(AutoSni, FieldPath)> {
    let at = o.at("upstream_http_protocol_options");
    let own = o.obj(ctx, "upstream_http_protocol_options").map(|u| upstream_http_protocol_options(ctx, u));
    match (own, typed) {
        (Some(_), TypedAutoSni::Entry(_)) => {
            ctx.err(
                at,
                format!(
                    "ignored by Envoy when typed_extension_protocol_options has {}: set it there",
                    t::HTTP_PROTOCOL_OPTIONS_KEY
                ),
            );
            None
        }
        (Some(own), TypedAutoSni::NoEntry) => Some((own, at)),
        (None, TypedAutoSni::Entry(e)) => e,
        (None, TypedAutoSni::NoEntry) => None,
    }
}

/// What the typed `HttpProtocolOptions` says of `upstream_http_protocol_options`.
enum TypedAutoSni {
    /// No typed `HttpProtocolOptions`.
    NoEntry,
    /// One, with the field or without.
    Entry(Option<(AutoSni, FieldPath)>),
}

/// `UpstreamHttpProtocolOptions`.
fn upstream_http_protocol_options(ctx: &mut Ctx, mut u: Obj<'_>) -> AutoSni {
    let sni = u.bool(ctx, "auto_sni").unwrap_or(false);
    let san = u.bool(ctx, "auto_san_validation").unwrap_or(false);
    let header_at = u.at("override_auto_sni_header");
    let header =
        u.str(ctx, "override_auto_sni_header").filter(|h| !h.is_empty()).and_then(
            |h| match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(name) => Some(name),
                Err(_) => {
                    ctx.err(&header_at, format!("\"{h}\" is not a valid header name"));
                    None
                }
            },
        );
    u.finish(ctx, &[]);
    AutoSni { sni, san, header }
}

/// What a cluster's `typed_extension_protocol_options` say.
struct ProtocolOptions {
    protocol: UpstreamProtocol,
    http2: Http2Options,
    idle: Option<Duration>,
    /// `auto_config`: the protocol chosen by ALPN.
    auto: bool,
    auto_sni: TypedAutoSni,
    h1: Http1Upstream,
}

/// What an upstream `Http1ProtocolOptions` says.
#[derive(Default)]
struct Http1Upstream {
    /// `header_key_format.proper_case_words`.
    proper_case: bool,
    /// `enable_trailers`.
    trailers: bool,
}

/// An upstream `Http1ProtocolOptions`. `header_key_format.stateful_formatter`
/// (preserve_case) is refused by the support table.
fn upstream_http1_options(ctx: &mut Ctx, mut h1: Obj<'_>) -> Http1Upstream {
    let mut proper_case = false;
    if let Some(mut format) = h1.obj(ctx, "header_key_format") {
        if let Some(words) = format.obj(ctx, "proper_case_words") {
            words.finish(ctx, &[]);
            proper_case = true;
        }
        format.finish(ctx, &[]);
    }
    let trailers = h1.bool(ctx, "enable_trailers").unwrap_or(false);
    h1.finish(ctx, &[]);
    Http1Upstream { proper_case, trailers }
}

/// `typed_extension_protocol_options` (v2 fields were moved there by `v2.rs`).
fn protocol_options(ctx: &mut Ctx, o: &mut Obj<'_>) -> ProtocolOptions {
    let mut h1 = Http1Upstream::default();
    let mut auto_sni = TypedAutoSni::NoEntry;
    let mut protocol = UpstreamProtocol::Http1;
    let mut auto = false;
    let mut http2 = Http2Options::default();
    let mut idle = Some(Duration::from_secs(3600));
    for (key, v, path) in o.entries(ctx, "typed_extension_protocol_options") {
        if key != t::HTTP_PROTOCOL_OPTIONS_KEY {
            ctx.err(&path, format!("unsupported protocol options {key}"));
            continue;
        }
        let Some(mut opts) = Obj::new(ctx, v, path.clone()) else {
            continue;
        };
        match opts.str(ctx, "@type") {
            Some(u) if u == t::HTTP_PROTOCOL_OPTIONS => {}
            Some(u) => {
                ctx.err(opts.at("@type"), format!("wrong @type \"{u}\": expected \"{}\"", t::HTTP_PROTOCOL_OPTIONS));
                continue;
            }
            None => {
                ctx.err(&path, format!("missing @type (expected \"{}\")", t::HTTP_PROTOCOL_OPTIONS));
                continue;
            }
        }
        let at = opts.at("upstream_http_protocol_options");
        auto_sni = TypedAutoSni::Entry(
            opts.obj(ctx, "upstream_http_protocol_options").map(|u| (upstream_http_protocol_options(ctx, u), at)),
        );
        if let Some(mut explicit) = opts.obj(ctx, "explicit_http_config") {
            if let Some(h1_opts) = explicit.obj(ctx, "http_protocol_options") {
                h1 = upstream_http1_options(ctx, h1_opts);
            }
            if let Some(h2) = explicit.obj(ctx, "http2_protocol_options") {
                http2 = http2_options(ctx, h2, false);
                protocol = UpstreamProtocol::Http2;
            }
            explicit.finish(ctx, &[]);
        }
        if let Some(mut a) = opts.obj(ctx, "auto_config") {
            // Requests are built as HTTP/1.1; a connection whose ALPN says h2 carries them
            // as HTTP/2, with these settings.
            auto = true;
            if let Some(h1_opts) = a.obj(ctx, "http_protocol_options") {
                h1 = upstream_http1_options(ctx, h1_opts);
            }
            if let Some(h2) = a.obj(ctx, "http2_protocol_options") {
                http2 = http2_options(ctx, h2, false);
            }
            a.finish(ctx, &[]);
        }
        if let Some(mut common) = opts.obj(ctx, "common_http_protocol_options") {
            let at = common.at("idle_timeout");
            idle = match common.duration(ctx, "idle_timeout") {
                Some(_) if protocol == UpstreamProtocol::Http2 || auto => {
                    // legate keeps one HTTP/2 connection per host and does not time it out.
                    ctx.err(at, "unsupported field (not implemented by legate for HTTP/2 upstreams)");
                    idle
                }
                Some(Duration::ZERO) => None,
                Some(d) => Some(d),
                None => idle,
            };
            common.finish(ctx, &[]);
        }
        opts.finish(ctx, &[]);
    }
    ProtocolOptions { protocol, http2, idle, auto, auto_sni, h1 }
}

fn circuit_breakers(ctx: &mut Ctx, mut o: Obj<'_>) -> CircuitBreakers {
    let mut out = CircuitBreakers::default();
    for mut th in o.objs(ctx, "thresholds") {
        let high = th.enumv(ctx, "priority", &[("DEFAULT", Some(false)), ("HIGH", Some(true))]).unwrap_or(false);
        let mut t = Thresholds::default();
        t.max_connections = th.u32(ctx, "max_connections").unwrap_or(t.max_connections);
        t.max_pending_requests = th.u32(ctx, "max_pending_requests").unwrap_or(t.max_pending_requests);
        t.max_requests = th.u32(ctx, "max_requests").unwrap_or(t.max_requests);
        t.max_retries = th.u32(ctx, "max_retries").unwrap_or(t.max_retries);
        t.track_remaining = th.bool(ctx, "track_remaining").unwrap_or(false);
        th.finish(ctx, &[]);
        if high {
            out.high = t;
        } else {
            out.default = t;
        }
    }
    o.finish(ctx, &[]);
    out
}

/// A `ClusterLoadAssignment`: its `cluster_name` and endpoints. `ip_only` for STATIC and EDS.
pub(crate) fn load_assignment(
    ctx: &mut Ctx,
    mut o: Obj<'_>,
    ip_only: bool,
) -> (Option<String>, Vec<LocalityEndpoints>) {
    let cluster_name = o.str(ctx, "cluster_name");
    let mut out = Vec::new();
    for mut loc in o.objs(ctx, "endpoints") {
        let priority = loc.u32(ctx, "priority").unwrap_or(0);
        let loc_weight = lb_weight(ctx, &mut loc, "load_balancing_weight");
        let locality = loc.obj(ctx, "locality").map(|l| locality(ctx, l)).unwrap_or_default();
        loc.ignore(&["metadata"]);
        // An endpoint reads nothing but its own fields and `ip_only`: unchanged ones are reused.
        let endpoints = loc
            .objs_memo(ctx, "lb_endpoints", "lb_endpoint", u64::from(ip_only), |ctx, lb| lb_endpoint(ctx, lb, ip_only));
        loc.finish(ctx, &[]);
        out.push(LocalityEndpoints {
            priority,
            weight: loc_weight,
            locality: std::sync::Arc::new(locality),
            endpoints,
        });
    }
    o.finish(ctx, &[]);
    (cluster_name, out)
}

/// An `LbEndpoint`; `None` for a named endpoint (unsupported) or an invalid one.
fn lb_endpoint(ctx: &mut Ctx, mut lb: Obj<'_>, ip_only: bool) -> Option<Endpoint> {
    let weight = lb_weight(ctx, &mut lb, "load_balancing_weight");
    let health = lb
        .enumv(
            ctx,
            "health_status",
            &[
                ("UNKNOWN", Some(EdsHealth::Healthy)),
                ("HEALTHY", Some(EdsHealth::Healthy)),
                ("UNHEALTHY", Some(EdsHealth::Unhealthy)),
                ("DRAINING", Some(EdsHealth::Draining)),
                ("TIMEOUT", Some(EdsHealth::Unhealthy)),
                ("DEGRADED", Some(EdsHealth::Degraded)),
            ],
        )
        .unwrap_or_default();
    // Only `envoy.lb`'s `hash_key` has an effect (on hashing balancers, as in Envoy); the
    // rest of the metadata is descriptive.
    let hash_key = lb.get("metadata").and_then(|(m, _)| lb_hash_key(m));
    let mut endpoint = None;
    if let Some(mut ep) = lb.obj(ctx, "endpoint") {
        let hostname = ep.str(ctx, "hostname").filter(|h| !h.is_empty());
        let hc = ep.obj(ctx, "health_check_config").map(|h| health_check_config(ctx, h)).unwrap_or_default();
        let addr = match ep.get("address") {
            Some((v, p)) => endpoint_address(ctx, v, &p, ip_only),
            None => {
                ctx.err(ep.at("address"), "missing address");
                None
            }
        };
        ep.finish(ctx, &[]);
        endpoint = addr.map(|address| Endpoint { address, hostname, weight, health, hc, hash_key });
    } else if !lb.has_unread() {
        // An endpoint given another way (`endpoint_name`) is refused by the support table.
        ctx.err(lb.at("endpoint"), "missing endpoint");
    }
    lb.finish(ctx, &[]);
    endpoint
}

/// `filter_metadata."envoy.lb".hash_key` of an endpoint's metadata when it is a non-empty
/// string (Envoy reads the string value: anything else is no key).
fn lb_hash_key(metadata: &serde_yaml::Value) -> Option<String> {
    let field = |v: &serde_yaml::Value, snake: &str, camel: &str| v.get(snake).or_else(|| v.get(camel)).cloned();
    let filter = field(metadata, "filter_metadata", "filterMetadata")?;
    let key = filter.get("envoy.lb")?.get("hash_key")?;
    key.as_str().filter(|k| !k.is_empty()).map(str::to_string)
}

/// A `LocalityLbEndpoints.locality`.
fn locality(ctx: &mut Ctx, mut o: Obj<'_>) -> Locality {
    let mut part = |f: &'static str| o.str(ctx, f).unwrap_or_default();
    let l = Locality { region: part("region"), zone: part("zone"), sub_zone: part("sub_zone") };
    o.finish(ctx, &[]);
    l
}

/// An endpoint's `health_check_config`. Its `address` must be an IP address, as Envoy
/// resolves it without DNS.
fn health_check_config(ctx: &mut Ctx, mut o: Obj<'_>) -> EndpointHc {
    let port = o.uint(ctx, "port_value", 65535).unwrap_or(0) as u16;
    let hostname = o.str(ctx, "hostname").filter(|h| !h.is_empty());
    let disabled = o.bool(ctx, "disable_active_health_check").unwrap_or(false);
    let address = o.get("address").and_then(|(v, p)| {
        let (host, port) = address(ctx, v, &p)?;
        match parse_ip(&host) {
            Some(ip) => Some(SocketAddr::new(ip, port)),
            None => {
                ctx.err(format!("{p}.socket_address.address"), format!("expected an IP address, got \"{host}\""));
                None
            }
        }
    });
    o.finish(ctx, &[]);
    EndpointHc { address, port, hostname, disabled }
}

/// A `load_balancing_weight`: at least 1, default 1.
fn lb_weight(ctx: &mut Ctx, o: &mut Obj<'_>, field: &'static str) -> u32 {
    match o.u32(ctx, field) {
        Some(0) => {
            ctx.err(o.at(field), "must be at least 1");
            1
        }
        Some(w) => w,
        None => 1,
    }
}

fn endpoint_address(ctx: &mut Ctx, v: &serde_yaml::Value, path: &FieldPath, ip_only: bool) -> Option<EndpointAddress> {
    let (host, port) = address(ctx, v, path)?;
    match parse_ip(&host) {
        Some(ip) => Some(EndpointAddress::Ip(SocketAddr::new(ip, port))),
        None if ip_only => {
            ctx.err(
                format!("{path}.socket_address.address"),
                format!("expected an IP address for a STATIC or EDS cluster, got \"{host}\""),
            );
            None
        }
        None => Some(EndpointAddress::Dns { host, port }),
    }
}
