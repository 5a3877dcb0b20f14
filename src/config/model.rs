//! Validated domain types: what the rest of legate sees of a configuration.
//!
//! Nothing here knows about YAML, JSON, v2 spellings or `@type` URLs: `config::parse_*` turns
//! text into serde types, `config::validate_*` turns those into the types below (durations as
//! `Duration`, regexes compiled, enums resolved, header names lowercased). Every type is
//! `PartialEq` so that a reload can diff two configurations without rebuilding anything.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

pub use super::filters::{HttpFilter, HttpFilterKind, PerFilter, PerFilterConfig};

/// A value kept between two versions of a configuration that both have it (a route of a
/// 10,000-route file that one reload did not change): compared by pointer first, so that
/// diffing two versions costs little more than the parts that changed.
#[derive(Debug, Clone)]
pub struct Kept<T>(pub Arc<T>);

impl<T> Kept<T> {
    pub fn new(value: T) -> Self {
        Kept(Arc::new(value))
    }

    /// The very same value (not just an equal one).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T: PartialEq> PartialEq for Kept<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl<T> Deref for Kept<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A whole bootstrap after v2 normalisation and validation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bootstrap {
    pub node: Node,
    pub admin: Option<Admin>,
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    pub dynamic: DynamicResources,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Node {
    pub id: String,
    pub cluster: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    pub address: SocketAddr,
    /// v2 `admin.access_log_path` or v3 `admin.access_log` file path; `None` logs nothing.
    pub access_log_path: Option<PathBuf>,
}

/// `dynamic_resources`: file-based LDS and CDS.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DynamicResources {
    pub lds: Option<FileSource>,
    pub cds: Option<FileSource>,
}

/// A `config_source` that names a file (`path` or `path_config_source`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSource {
    pub path: PathBuf,
    /// `path_config_source.watched_directory.path`
    pub watched_directory: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Envoy's `name`; when absent in the file, `listener_<index>` (stable across reloads).
    pub name: String,
    pub address: SocketAddr,
    /// `traffic_direction: INBOUND` (what the admin's `/drain_listeners?inboundonly` drains).
    pub inbound: bool,
    /// `stat_prefix`: the name in `listener.<it>.*` instead of the address.
    pub stat_prefix: Option<String>,
    /// `per_connection_buffer_limit_bytes`, default 1 MiB: how much of a request body is held
    /// for retries (and read while connecting), as Envoy's decoder buffer limit.
    pub buffer_limit: u32,
    /// `filter_chains`, in file order.
    pub filter_chains: Vec<FilterChain>,
    /// `default_filter_chain`: serves connections no chain matches.
    pub default_chain: Option<FilterChain>,
    /// `listener_filters`, run in order before a chain is chosen.
    pub listener_filters: Vec<ListenerFilter>,
    /// `listener_filters_timeout`, default 15 s; `None` when 0 (no bound).
    pub listener_filters_timeout: Option<Duration>,
    /// `continue_on_listener_filters_timeout`: a connection whose listener filters time out
    /// is matched with what they found, instead of closed.
    pub continue_on_listener_filters_timeout: bool,
}

/// One `filter_chains` entry, or the `default_filter_chain`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterChain {
    /// `name`, empty when absent.
    pub name: String,
    pub matcher: FilterChainMatch,
    /// `filters`: the network filters in order, the terminal one last. Empty is valid (as in
    /// Envoy): such a chain closes its connections.
    pub filters: Vec<NetworkFilter>,
}

impl FilterChain {
    /// The chain's HTTP connection manager, when it ends in one.
    pub fn hcm(&self) -> Option<&HttpConnectionManager> {
        self.filters.iter().find_map(|f| match f {
            NetworkFilter::HttpConnectionManager(h) => Some(&**h),
            NetworkFilter::TcpProxy(_) => None,
        })
    }

    /// The chain's `tcp_proxy`, when it ends in one.
    pub fn tcp_proxy(&self) -> Option<&TcpProxy> {
        self.filters.iter().find_map(|f| match f {
            NetworkFilter::TcpProxy(t) => Some(&**t),
            NetworkFilter::HttpConnectionManager(_) => None,
        })
    }
}

/// A network filter, chosen by its `typed_config` `@type`.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkFilter {
    /// `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`
    HttpConnectionManager(Box<HttpConnectionManager>),
    /// `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`
    TcpProxy(Box<TcpProxy>),
}

/// `TcpProxy`: a connection's bytes relayed to a host of one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpProxy {
    pub stat_prefix: String,
    /// `cluster` (weight 1), or `weighted_clusters` with their weights.
    pub clusters: Vec<(String, u32)>,
    /// `None` when disabled (`0s`); Envoy's default is 1 h.
    pub idle_timeout: Option<Duration>,
    pub max_connect_attempts: u32,
    pub access_logs: Vec<AccessLog>,
}

/// `FilterChainMatch`: every field empty matches every connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterChainMatch {
    pub destination_port: Option<u16>,
    /// `prefix_ranges`: the connection's destination (local) address.
    pub prefix_ranges: Vec<CidrRange>,
    /// Lowercased; `*.example.com` wildcards included.
    pub server_names: Vec<String>,
    pub transport_protocol: Option<String>,
    pub application_protocols: Vec<String>,
    pub direct_source_prefix_ranges: Vec<CidrRange>,
    pub source_type: SourceType,
    pub source_prefix_ranges: Vec<CidrRange>,
    pub source_ports: Vec<u16>,
}

/// `FilterChainMatch.ConnectionSourceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceType {
    #[default]
    Any,
    /// `SAME_IP_OR_LOOPBACK`
    Local,
    External,
}

/// A listener filter, chosen by its `typed_config` `@type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerFilter {
    /// `envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector`
    TlsInspector,
    /// `envoy.extensions.filters.listener.http_inspector.v3.HttpInspector`
    HttpInspector,
}

impl Listener {
    /// `filter_chains`, then the default chain.
    pub fn chains(&self) -> impl Iterator<Item = &FilterChain> {
        self.filter_chains.iter().chain(self.default_chain.as_ref())
    }

    /// The connection manager of every chain that has one, in [`Listener::chains`] order.
    pub fn hcms(&self) -> impl Iterator<Item = &HttpConnectionManager> {
        self.chains().filter_map(FilterChain::hcm)
    }

    /// The name in `listener.<name>.*`: `stat_prefix`, else the address as Envoy writes it
    /// (127.0.0.1:10000 is `127.0.0.1_10000`, `[::1]:80` is `[__1]_80`).
    pub fn stat_name(&self) -> String {
        match (&self.stat_prefix, self.address) {
            (Some(p), _) => p.clone(),
            (None, SocketAddr::V4(a)) => format!("{}_{}", a.ip(), a.port()),
            (None, SocketAddr::V6(a)) => format!("[{}]_{}", a.ip().to_string().replace(':', "_"), a.port()),
        }
    }
}

/// `DnsResolverOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DnsOptions {
    /// `use_tcp_for_dns_lookups`
    pub tcp: bool,
    /// `no_default_search_domain`: names are looked up as written, without search domains.
    pub no_search: bool,
    /// c-ares' `use_resolvers_as_fallback`: the configured resolvers only when the system
    /// has none.
    pub fallback: bool,
}

impl DnsOptions {
    /// Either spelling turns an option on.
    pub fn merge(&mut self, other: DnsOptions) {
        self.tcp |= other.tcp;
        self.no_search |= other.no_search;
        self.fallback |= other.fallback;
    }
}

/// The `Http2ProtocolOptions` legate applies, downstream (connection manager) and upstream
/// (cluster); `None` keeps the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Http2Options {
    /// Downstream only: the SETTINGS_MAX_CONCURRENT_STREAMS a client is given.
    pub max_concurrent_streams: Option<u32>,
    pub initial_stream_window_size: Option<u32>,
    pub initial_connection_window_size: Option<u32>,
    pub hpack_table_size: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecType {
    #[default]
    Auto,
    Http1,
    Http2,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub codec_type: CodecType,
    pub routes: RouteSource,
    /// `server_name`, default `envoy` (what Envoy sends).
    pub server_name: String,
    /// `server_header_transformation`: `OVERWRITE` (default), `APPEND_IF_ABSENT`, `PASS_THROUGH`.
    pub server_header: ServerHeaderTransformation,
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u32,
    /// `internal_address_config.cidr_ranges`; empty means no client is internal (Envoy 1.40's
    /// default), so `x-envoy-*` request headers are never trusted.
    pub internal_cidrs: Vec<CidrRange>,
    /// `skip_xff_append`
    pub skip_xff_append: bool,
    /// `generate_request_id`, default true.
    pub generate_request_id: bool,
    /// `preserve_external_request_id`, default false.
    pub preserve_external_request_id: bool,
    /// `max_request_headers_kb`, default 60.
    pub max_request_headers_kb: u32,
    /// `common_http_protocol_options.max_headers_count`, default 100.
    pub max_headers_count: u32,
    /// `http_protocol_options.accept_http_10`
    pub accept_http_10: bool,
    /// `http_protocol_options.default_host_for_http_10`
    pub default_host_for_http_10: Option<String>,
    /// `stream_idle_timeout`, default 5 min; `None` when set to 0.
    pub stream_idle_timeout: Option<Duration>,
    /// `request_timeout`, default disabled.
    pub request_timeout: Option<Duration>,
    /// `common_http_protocol_options.idle_timeout`, default 1 h; `None` when 0.
    pub idle_timeout: Option<Duration>,
    /// `drain_timeout`, default 5 s.
    pub drain_timeout: Duration,
    /// `http2_protocol_options`
    pub http2: Http2Options,
    /// `normalize_path`: RFC 3986 normalization of the path before routing.
    pub normalize_path: bool,
    /// `merge_slashes`: runs of slashes in the path become one before routing.
    pub merge_slashes: bool,
    pub access_logs: Vec<AccessLog>,
    /// The HTTP filters in order; the last one is always the router.
    pub http_filters: Vec<HttpFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerHeaderTransformation {
    #[default]
    Overwrite,
    AppendIfAbsent,
    PassThrough,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CidrRange {
    pub address: std::net::IpAddr,
    pub prefix_len: u8,
}

impl CidrRange {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                (u32::from(net) & mask) == (u32::from(ip) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                (u128::from(net) & mask) == (u128::from(ip) & mask)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteSource {
    Inline(RouteConfig),
    /// `rds`: a route configuration read from a file.
    Rds {
        route_config_name: String,
        source: FileSource,
    },
}

/// `access_log` entries of the connection manager.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    pub sink: AccessLogSink,
    pub format: AccessLogFormat,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccessLogSink {
    File(PathBuf),
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccessLogFormat {
    /// Envoy's default line.
    Default,
    /// `text_format` / `text_format_source.inline_string` / v2 `format`.
    Text(String),
    /// `json_format`: key -> format string, in file order.
    Json(Vec<(String, String)>),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderOps {
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Lowercased header names.
    pub request_headers_to_remove: Vec<String>,
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Lowercased header names.
    pub response_headers_to_remove: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppendAction {
    /// `APPEND_IF_EXISTS_OR_ADD` (default; also `append: true`).
    #[default]
    Append,
    AddIfAbsent,
    /// `OVERWRITE_IF_EXISTS_OR_ADD` (also `append: false`).
    OverwriteOrAdd,
    OverwriteIfExists,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderValueOption {
    /// Lowercased.
    pub key: String,
    pub value: String,
    pub action: AppendAction,
    /// `keep_empty_value`
    pub keep_empty_value: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    pub headers: HeaderOps,
    /// `validate_clusters`: `None` when not set (true for inline configs, false for RDS).
    pub validate_clusters: Option<bool>,
    /// `internal_only_headers`, lowercased: removed from requests of external clients.
    pub internal_only_headers: Vec<String>,
    /// `ignore_port_in_host_matching`
    pub ignore_port_in_host_matching: bool,
    /// `typed_per_filter_config`
    pub per_filter: Vec<PerFilterConfig>,
}

impl RouteConfig {
    /// The table an RDS name serves before its file has loaded: no virtual host (404).
    pub fn empty_rds(name: &str) -> Self {
        RouteConfig {
            name: name.to_string(),
            virtual_hosts: Vec::new(),
            headers: Default::default(),
            validate_clusters: Some(false),
            internal_only_headers: Vec::new(),
            ignore_port_in_host_matching: false,
            per_filter: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    /// As written (lowercased); routing decides exact/suffix/prefix/`*`.
    pub domains: Vec<String>,
    pub routes: Vec<Kept<Route>>,
    pub headers: HeaderOps,
    pub retry_policy: Option<RetryPolicy>,
    pub include_request_attempt_count: bool,
    pub include_attempt_count_in_response: bool,
    /// `typed_per_filter_config`
    pub per_filter: Vec<PerFilterConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: Option<String>,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    pub headers: HeaderOps,
    /// `typed_per_filter_config`
    pub per_filter: Vec<PerFilterConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// `case_sensitive`, default true; applies to `prefix` and `path`.
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatcher>,
    pub query_parameters: Vec<QueryParameterMatcher>,
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Prefix(String),
    Path(String),
    /// Anchored: must match the whole path (without the query).
    Regex(Regex),
    PathSeparatedPrefix(String),
}

impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Prefix(a), Self::Prefix(b)) => a == b,
            (Self::Path(a), Self::Path(b)) => a == b,
            (Self::Regex(a), Self::Regex(b)) => a.as_str() == b.as_str(),
            (Self::PathSeparatedPrefix(a), Self::PathSeparatedPrefix(b)) => a == b,
            _ => false,
        }
    }
}

/// A string matcher (`StringMatcher` / `HeaderMatcher`'s legacy fields).
#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    /// Anchored: must match the whole value.
    Regex(Regex),
}

impl PartialEq for StringMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b))
            | (Self::Prefix(a), Self::Prefix(b))
            | (Self::Suffix(a), Self::Suffix(b))
            | (Self::Contains(a), Self::Contains(b)) => a == b,
            (Self::Regex(a), Self::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StringMatcher {
    pub kind: StringMatch,
    /// `ignore_case` (not for regex).
    pub ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HeaderMatchKind {
    /// `present_match: true|false`
    Present(bool),
    String(StringMatcher),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatcher {
    /// Lowercased; `:authority`, `:path`, `:method`, `:scheme` are pseudo-headers.
    pub name: String,
    pub kind: HeaderMatchKind,
    pub invert_match: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryParameterMatcher {
    pub name: String,
    /// `None`: `present_match: true`.
    pub string_match: Option<StringMatcher>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    Forward(ForwardAction),
    Redirect(RedirectAction),
    DirectResponse(DirectResponseAction),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClusterSpecifier {
    Cluster(String),
    /// Each cluster with its weight; weights are > 0 in total.
    Weighted(Vec<WeightedCluster>),
    /// `cluster_header`: the cluster named by this (lowercased) request header.
    Header(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeightedCluster {
    pub name: String,
    pub weight: u32,
    pub headers: HeaderOps,
    /// `typed_per_filter_config`
    pub per_filter: Vec<PerFilterConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HostRewrite {
    None,
    Literal(String),
    /// `auto_host_rewrite`: the chosen endpoint's `hostname` (or nothing for IP endpoints
    /// without one, as Envoy does for STATIC clusters; STRICT_DNS uses the DNS name).
    Auto,
}

#[derive(Debug, Clone)]
pub struct RegexRewrite {
    pub pattern: Regex,
    /// Envoy's `\1` style references, as written.
    pub substitution: String,
}

impl PartialEq for RegexRewrite {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.substitution == other.substitution
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForwardAction {
    pub cluster: ClusterSpecifier,
    /// `cluster_not_found_response_code`: 503 (default), 404 or 500.
    pub cluster_not_found_status: u16,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<RegexRewrite>,
    pub host_rewrite: HostRewrite,
    /// `timeout`, default 15 s; `None` when set to 0 (disabled).
    pub timeout: Option<Duration>,
    /// Route-level policy; when `None` the virtual host's applies.
    pub retry_policy: Option<RetryPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn {
    pub five_xx: bool,
    pub gateway_error: bool,
    pub connect_failure: bool,
    pub reset: bool,
    pub retriable_4xx: bool,
    pub refused_stream: bool,
    pub retriable_status_codes: bool,
    /// The gRPC conditions (`cancelled`, `deadline-exceeded`, `resource-exhausted`,
    /// `internal`, `unavailable`): bit n retries an answer whose `grpc-status` header is n.
    pub grpc_statuses: u32,
}

impl RetryOn {
    /// Whether an answer with this `grpc-status` header is retried.
    pub fn grpc_status(&self, code: u32) -> bool {
        code < 32 && self.grpc_statuses & (1 << code) != 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    /// `num_retries`, default 1.
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub retriable_status_codes: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedirectAction {
    /// `https_redirect: true` gives `Some("https")`; `scheme_redirect` as written.
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub prefix_rewrite: Option<String>,
    pub strip_query: bool,
    /// 301 (default), 302, 303, 307, 308.
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DirectResponseAction {
    pub status: u16,
    /// `body.inline_string` / `inline_bytes` / `filename` (read at validation).
    pub body: Option<bytes::Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    LeastRequest,
    Random,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalityEndpoints {
    pub priority: u32,
    /// `load_balancing_weight` of the locality, default 1.
    pub weight: u32,
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
    pub dns_lookup_family: DnsLookupFamily,
    /// `load_assignment` (or v2 `hosts`); empty for EDS clusters until endpoints arrive.
    pub endpoints: Vec<LocalityEndpoints>,
    pub protocol: UpstreamProtocol,
    /// `explicit_http_config.http2_protocol_options`
    pub http2: Http2Options,
    /// `common_http_protocol_options.idle_timeout` for upstream connections, default 1 h.
    pub idle_timeout: Option<Duration>,
    /// `per_connection_buffer_limit_bytes`, default 1 MiB: how far an upstream connection's
    /// buffers grow (never under 64 KiB, room for a response head).
    pub per_connection_buffer_limit_bytes: u32,
    /// `circuit_breakers.thresholds`: max connections/pending/requests/retries per priority.
    pub circuit_breakers: CircuitBreakers,
}

impl Cluster {
    /// The name in `cluster.<name>.*` and in logs: `alt_stat_name`, else `name`.
    pub fn stat_name(&self) -> &str {
        self.alt_stat_name.as_deref().unwrap_or(&self.name)
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

/// One resource of a file-based discovery response.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterLoadAssignment {
    pub cluster_name: String,
    pub endpoints: Vec<LocalityEndpoints>,
}

/// A validated file-based xDS file: `version_info` plus its resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery<T> {
    pub version_info: String,
    pub resources: Vec<T>,
    /// Values tolerated as Envoy tolerates them in dynamic resources (an unknown enum name).
    pub warnings: Vec<super::error::ConfigError>,
}
