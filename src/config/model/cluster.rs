//! Clusters: discovery type, load balancing, endpoints and circuit breakers.

use std::net::SocketAddr;
use std::time::Duration;

use super::{DnsOptions, DnsResolver, FileSource, Http2Options};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    LeastRequest,
    Random,
    /// `RING_HASH` with `ring_hash_lb_config` (Envoy's defaults 1024 and 8M).
    RingHash {
        minimum_ring_size: u64,
        maximum_ring_size: u64,
    },
    /// `MAGLEV` with `maglev_lb_config.table_size` (a prime, default 65537).
    Maglev {
        table_size: u64,
    },
}

impl LbPolicy {
    /// A consistent hash: requests are placed by the route's `hash_policy` key.
    pub fn is_hashing(&self) -> bool {
        matches!(self, LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    Http2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsLookupFamily {
    /// Envoy's `AUTO`: IPv6 if any, else IPv4.
    Auto,
    #[default]
    V4Preferred,
    V4Only,
    V6Only,
    All,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DiscoveryType {
    Static,
    StrictDns,
    LogicalDns,
    /// `EDS` with its `service_name` (defaults to the cluster name) and where the
    /// endpoints come from.
    Eds {
        service_name: String,
        source: EdsConfigSource,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum EdsConfigSource {
    File(FileSource),
    /// v2 `api_config_source: {api_type: REST, cluster_names: [..], refresh_delay}`:
    /// POST `/v2/discovery:endpoints` (or v3) to that cluster every `refresh_delay`.
    Rest {
        cluster: String,
        refresh_delay: Duration,
        request_timeout: Duration,
        /// `transport_api_version`: V3 (`/v3/discovery:endpoints`, v3 type URLs), or V2 in a
        /// document written in v2 spellings that does not say.
        transport_v3: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndpointAddress {
    Ip(SocketAddr),
    /// A DNS name (STRICT_DNS / LOGICAL_DNS clusters).
    Dns {
        host: String,
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub address: EndpointAddress,
    /// `endpoint.hostname`
    pub hostname: Option<String>,
    /// `load_balancing_weight`, default 1.
    pub weight: u32,
    /// `health_status` of the `LbEndpoint` (EDS or static), default `HEALTHY`.
    pub health: EdsHealth,
    /// `endpoint.health_check_config`.
    pub hc: EndpointHc,
    /// `metadata.filter_metadata."envoy.lb".hash_key`: the host's key on a RING_HASH / MAGLEV
    /// table in place of its address.
    pub hash_key: Option<String>,
}

/// An endpoint's `health_check_config`: where and how the cluster's health checks reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EndpointHc {
    /// `address`: checks go there instead of the endpoint's address.
    pub address: Option<SocketAddr>,
    /// `port_value` (0: none): the port checks use, over the address's.
    pub port: u16,
    /// `hostname`: the Host (`:authority`) of HTTP and gRPC checks, over the check's own.
    pub hostname: Option<String>,
    /// `disable_active_health_check`: never checked, counted healthy.
    pub disabled: bool,
}

impl EndpointHc {
    /// Where checks of the endpoint at `addr` go.
    pub fn target(&self, addr: SocketAddr) -> SocketAddr {
        let mut t = self.address.unwrap_or(addr);
        if self.port != 0 {
            t.set_port(self.port);
        }
        t
    }
}

/// A `locality` (`region`, `zone`, `sub_zone`): what locality weighted load balancing groups
/// hosts by, and what health check events name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
}

/// An endpoint's `health_status` as its management server (or static config) gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EdsHealth {
    /// `HEALTHY` or `UNKNOWN`.
    #[default]
    Healthy,
    /// `UNHEALTHY` or `TIMEOUT`: Envoy's `FAILED_EDS_HEALTH`.
    Unhealthy,
    /// `DRAINING`: unhealthy and excluded from the priority's host count.
    Draining,
    /// `DEGRADED`: used only when the healthy hosts are short.
    Degraded,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalityEndpoints {
    pub priority: u32,
    /// `load_balancing_weight` of the locality, default 1.
    pub weight: u32,
    /// `locality`, shared by the hosts of this entry.
    pub locality: std::sync::Arc<Locality>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    /// `alt_stat_name`: the name in stats (`cluster.<it>.*`) and logs, when set.
    pub alt_stat_name: Option<String>,
    pub discovery: DiscoveryType,
    pub lb_policy: LbPolicy,
    /// `connect_timeout`, default 5 s.
    pub connect_timeout: Duration,
    /// `dns_refresh_rate`, default 5 s.
    pub dns_refresh_rate: Duration,
    /// `dns_resolvers` / `typed_dns_resolver_config`: empty means the system resolver.
    pub dns_resolvers: Vec<SocketAddr>,
    /// `dns_resolver_options` (or the deprecated `use_tcp_for_dns_lookups`).
    pub dns_options: DnsOptions,
    /// Whether the cluster names a resolver of its own (Envoy's test: `dns_resolvers`,
    /// `typed_dns_resolver_config` or `dns_resolution_config`); if not, the bootstrap's
    /// resolver replaces `dns_resolvers` (see [`Cluster::use_default_resolver`]).
    pub dns_own_resolver: bool,
    /// `respect_dns_ttl`: a name is looked up again after its answer's TTL (if not 0).
    pub respect_dns_ttl: bool,
    /// `dns_failure_refresh_rate` (base, max): after a failed lookup, a jittered exponential
    /// back-off instead of `dns_refresh_rate`.
    pub dns_failure_refresh_rate: Option<(Duration, Duration)>,
    pub dns_lookup_family: DnsLookupFamily,
    /// `load_assignment` (or v2 `hosts`); empty for EDS clusters until endpoints arrive.
    pub endpoints: Vec<LocalityEndpoints>,
    pub protocol: UpstreamProtocol,
    /// `explicit_http_config.http2_protocol_options` (or `auto_config`'s)
    pub http2: Http2Options,
    /// `auto_config`: HTTP/2 or HTTP/1.1 chosen by ALPN on each TLS connection (`protocol`
    /// stays `Http1`, the form requests are built in).
    pub auto_config: bool,
    /// `http_protocol_options.header_key_format.proper_case_words`: request header names go
    /// to an HTTP/1.1 upstream Proper-Cased (`content-type` as `Content-Type`).
    pub h1_proper_case: bool,
    /// `http_protocol_options.enable_trailers`: an HTTP/1.1 upstream's response trailers are
    /// passed on (Envoy's codec drops them by default).
    pub h1_trailers: bool,
    /// `transport_socket` `envoy.transport_sockets.tls` (`UpstreamTlsContext`).
    pub tls: Option<std::sync::Arc<crate::tls::ClientTls>>,
    /// `common_http_protocol_options.idle_timeout` for upstream connections, default 1 h.
    pub idle_timeout: Option<Duration>,
    /// `per_connection_buffer_limit_bytes`, default 1 MiB: how far an upstream connection's
    /// buffers grow (never under 64 KiB, room for a response head).
    pub per_connection_buffer_limit_bytes: u32,
    /// `circuit_breakers.thresholds`: max connections/pending/requests/retries per priority.
    pub circuit_breakers: CircuitBreakers,
    /// `health_checks` (at most one: Envoy's checkers of one cluster share the host flag).
    pub health_checks: Vec<super::HealthCheck>,
    pub outlier_detection: Option<super::OutlierDetection>,
    /// `common_lb_config.healthy_panic_threshold` in percent, default 50.
    pub panic_threshold: f64,
    /// `common_lb_config.locality_weighted_lb_config`: each priority's load is split between
    /// its localities by their weights and health before it reaches a host.
    pub locality_weighted_lb: bool,
    /// `least_request_lb_config` / `round_robin_lb_config`.
    pub lb_tuning: LbTuning,
    /// `common_lb_config.consistent_hashing_lb_config` (RING_HASH and MAGLEV).
    pub consistent_hashing: ConsistentHashing,
}

/// `common_lb_config.consistent_hashing_lb_config`: how RING_HASH and MAGLEV key their hosts
/// and bound their loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsistentHashing {
    /// `use_hostname_for_hashing`: hosts are keyed by their hostname instead of
    /// `address:port` (an `envoy.lb` `hash_key` still comes first; STRICT_DNS only, as in Envoy).
    pub use_hostname: bool,
    /// `hash_balance_factor` (>= 100), 0 when unset: a host whose active requests exceed
    /// factor/100 of its share of the cluster's gives the request to another host.
    pub balance_factor: u32,
}

/// What `least_request_lb_config` and `round_robin_lb_config` set (Envoy's defaults unless
/// set).
#[derive(Debug, Clone, PartialEq)]
pub struct LbTuning {
    /// LEAST_REQUEST's `choice_count`: hosts sampled per pick when weights are equal (>= 2).
    pub choice_count: u32,
    /// LEAST_REQUEST's `active_request_bias`: a host's weight is divided by
    /// `(active requests + 1) ^ bias` when weights differ.
    pub active_request_bias: f64,
    /// `active_request_bias.runtime_key`: a runtime value there replaces the bias.
    pub active_request_bias_key: Option<std::sync::Arc<str>>,
    /// `slow_start_config` (ROUND_ROBIN and LEAST_REQUEST).
    pub slow_start: Option<SlowStart>,
    /// `slow_start_config.aggression.runtime_key`: a runtime value there replaces the
    /// aggression.
    pub aggression_key: Option<std::sync::Arc<str>>,
}

impl Default for LbTuning {
    fn default() -> Self {
        LbTuning {
            choice_count: 2,
            active_request_bias: 1.0,
            active_request_bias_key: None,
            slow_start: None,
            aggression_key: None,
        }
    }
}

/// `SlowStartConfig`: a host's weight ramps up over `window` after it joins (or, with active
/// health checking, after it passes a check again): `weight * max(min_weight, (t / window) ^
/// (1 / aggression))`, t at least one second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowStart {
    pub window: Duration,
    pub aggression: f64,
    /// `min_weight_percent` as a fraction (default 0.1).
    pub min_weight: f64,
}

impl SlowStart {
    /// The factor a host's weight is scaled by `elapsed` after it entered slow start, or
    /// `None` once the window has passed.
    pub fn factor(&self, elapsed: Duration) -> Option<f64> {
        if elapsed >= self.window {
            return None;
        }
        let t = elapsed.as_secs_f64().max(1.0) / self.window.as_secs_f64();
        let ramp = if self.aggression == 1.0 { t } else { t.powf(1.0 / self.aggression) };
        Some(ramp.clamp(self.min_weight, 1.0))
    }
}

impl Cluster {
    /// The name in `cluster.<name>.*` and in logs: `alt_stat_name`, else `name`.
    pub fn stat_name(&self) -> &str {
        self.alt_stat_name.as_deref().unwrap_or(&self.name)
    }

    /// A cluster without a resolver of its own uses the bootstrap's, as Envoy's cluster
    /// manager does. Its deprecated `use_tcp_for_dns_lookups` (which Envoy then ignores)
    /// still applies, so that a field legate accepts is never without effect.
    pub fn use_default_resolver(&mut self, default: &DnsResolver) {
        if !self.dns_own_resolver {
            self.dns_resolvers.clone_from(&default.resolvers);
            self.dns_options.merge(default.options);
        }
    }
}

/// `circuit_breakers.thresholds`: the limits for routes of each priority. Only DEFAULT
/// routes exist in legate (a route's `priority: HIGH` is rejected), so `high` is only shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CircuitBreakers {
    pub default: Thresholds,
    pub high: Thresholds,
}

/// One priority's limits, Envoy's defaults unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
    /// `track_remaining`: publish `circuit_breakers.<priority>.remaining_*` gauges.
    pub track_remaining: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            track_remaining: false,
        }
    }
}
