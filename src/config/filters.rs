//! The model of the connection manager's HTTP filters (`http_filters`) and of the per-route
//! filter configurations (`typed_per_filter_config`) the route configuration carries at each
//! level. Filters are told apart by their `typed_config` `@type`, as Envoy does; `name` is only
//! the key per-route configurations use.

use std::time::Duration;

use super::model::HeaderMatcher;

/// An entry of `http_filters`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpFilter {
    /// `name`: what `typed_per_filter_config` entries refer to.
    pub name: String,
    /// `disabled`: off unless a route's configuration names it and does not disable it.
    pub disabled: bool,
    pub kind: HttpFilterKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpFilterKind {
    /// `envoy.extensions.filters.http.router.v3.Router` (v2: `envoy.router`).
    Router,
    /// `envoy.extensions.filters.http.health_check.v3.HealthCheck` with
    /// `pass_through_mode: false` answering on a path.
    HealthCheck { path: String },
    /// `envoy.extensions.filters.http.fault.v3.HTTPFault`
    Fault(FaultConfig),
    /// `envoy.extensions.filters.http.buffer.v3.Buffer`
    Buffer(BufferConfig),
    /// `envoy.extensions.filters.http.cors.v3.Cors`: its policies are per route.
    Cors,
    /// `envoy.extensions.filters.http.csrf.v3.CsrfPolicy`
    Csrf(super::cors_csrf::CsrfPolicyConfig),
    /// `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`
    LocalRateLimit(Box<super::model::LocalRateLimitConfig>),
    /// `envoy.extensions.filters.http.rbac.v3.RBAC`
    Rbac(Box<super::model::RbacConfig>),
    /// `envoy.extensions.filters.http.compressor.v3.Compressor`
    Compressor(Box<super::compressor::CompressorConfig>),
    /// `envoy.extensions.filters.http.decompressor.v3.Decompressor`
    Decompressor(Box<super::compressor::DecompressorConfig>),
    /// `envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`
    ExtAuthz(Box<super::ext_authz::ExtAuthzConfig>),
    /// `envoy.extensions.filters.http.grpc_http1_bridge.v3.Config`
    GrpcHttp1Bridge(GrpcBridgeConfig),
    /// `envoy.extensions.filters.http.grpc_web.v3.GrpcWeb`
    GrpcWeb,
    /// `envoy.extensions.filters.http.header_to_metadata.v3.Config`
    HeaderToMetadata(Box<HeaderToMetadataConfig>),
    /// `envoy.extensions.filters.http.set_filter_state.v3.Config`
    SetFilterState(Box<SetFilterStateConfig>),
}

/// `envoy.extensions.filters.http.set_filter_state.v3.Config`: `on_request_headers`, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SetFilterStateConfig {
    pub values: Vec<FilterStateValue>,
}

/// `envoy.extensions.filters.common.set_filter_state.v3.FilterStateValue`
#[derive(Debug, Clone, PartialEq)]
pub struct FilterStateValue {
    /// `object_key`
    pub key: String,
    /// `factory_key` `envoy.hashable_string` (a hash policy can read it) rather than
    /// `envoy.string`.
    pub hashable: bool,
    /// `format_string`'s text format, compiled when the chain is built.
    pub format: String,
    /// `format_string.omit_empty_values`: a missing operator renders empty, not `-`.
    pub omit_empty: bool,
    /// `skip_if_empty`
    pub skip_if_empty: bool,
}

/// `envoy.extensions.filters.http.header_to_metadata.v3.Config`
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderToMetadataConfig {
    pub request_rules: Vec<MetadataRule>,
    pub response_rules: Vec<MetadataRule>,
}

/// `Config.Rule` (by `header`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataRule {
    pub header: http::HeaderName,
    pub on_present: Option<MetadataKeyValue>,
    pub on_missing: Option<MetadataKeyValue>,
    pub remove: bool,
}

/// `Config.KeyValuePair`
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataKeyValue {
    /// `metadata_namespace`, default `envoy.filters.http.header_to_metadata`.
    pub namespace: String,
    pub key: String,
    /// `value`: set instead of the header's.
    pub value: Option<String>,
    pub kind: MetadataType,
}

/// `Config.ValueType` (`PROTOBUF_VALUE` is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataType {
    String,
    Number,
}

/// `envoy.extensions.filters.http.grpc_http1_bridge.v3.Config`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrpcBridgeConfig {
    /// `upgrade_protobuf_to_grpc`: an `application/x-protobuf` request is framed as gRPC.
    pub upgrade_protobuf: bool,
    /// `ignore_query_parameters`: a bridged request's query is taken off its path.
    pub ignore_query: bool,
}

impl HttpFilter {
    pub fn router() -> Self {
        HttpFilter { name: "envoy.filters.http.router".to_string(), disabled: false, kind: HttpFilterKind::Router }
    }
}

/// `envoy.type.v3.FractionalPercent`: `numerator` out of 100, 10,000 or 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    pub numerator: u32,
    pub denominator: u32,
}

impl Fraction {
    /// An unset `percentage`: 0/100, so the fault never happens (as in Envoy).
    pub const NONE: Fraction = Fraction { numerator: 0, denominator: 100 };
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    pub abort: Option<FaultAbort>,
    pub delay: Option<FaultDelay>,
    /// `upstream_cluster`: only requests routed to this cluster.
    pub upstream_cluster: Option<String>,
    /// `headers`: every matcher must match.
    pub headers: Vec<HeaderMatcher>,
    /// `downstream_nodes`: only requests whose `x-envoy-downstream-service-node` is listed.
    pub downstream_nodes: Vec<String>,
    /// `max_active_faults`: `None` is unlimited.
    pub max_active_faults: Option<u32>,
    /// `disable_downstream_cluster_stats`
    pub disable_downstream_cluster_stats: bool,
    /// The runtime keys read (`*_runtime`, Envoy's `fault.http.*` when unset).
    pub keys: FaultKeys,
}

/// `HTTPFault`'s `*_runtime` fields: the runtime keys that override the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultKeys {
    pub delay_percent: String,
    pub abort_percent: String,
    pub delay_duration: String,
    pub abort_http_status: String,
    pub abort_grpc_status: String,
    pub max_active_faults: String,
}

impl Default for FaultKeys {
    fn default() -> Self {
        FaultKeys {
            delay_percent: "fault.http.delay.fixed_delay_percent".into(),
            abort_percent: "fault.http.abort.abort_percent".into(),
            delay_duration: "fault.http.delay.fixed_duration_ms".into(),
            abort_http_status: "fault.http.abort.http_status".into(),
            abort_grpc_status: "fault.http.abort.grpc_status".into(),
            max_active_faults: "fault.http.max_active_faults".into(),
        }
    }
}

impl FaultConfig {
    /// What an empty `HTTPFault` reads as: no fault at all.
    pub fn empty() -> Self {
        FaultConfig {
            abort: None,
            delay: None,
            upstream_cluster: None,
            headers: Vec::new(),
            downstream_nodes: Vec::new(),
            max_active_faults: None,
            disable_downstream_cluster_stats: false,
            keys: FaultKeys::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    pub kind: AbortKind,
    pub percentage: Fraction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortKind {
    /// `http_status`
    Http(u16),
    /// `grpc_status`
    Grpc(u32),
    /// `header_abort`: from `x-envoy-fault-abort-request` / `x-envoy-fault-abort-grpc-request`.
    Header,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultDelay {
    pub kind: DelayKind,
    pub percentage: Fraction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayKind {
    /// `fixed_delay`
    Fixed(Duration),
    /// `header_delay`: milliseconds from `x-envoy-fault-delay-request`.
    Header,
}

/// `envoy.extensions.filters.http.buffer.v3.Buffer`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    /// `max_request_bytes`
    pub max_request_bytes: u32,
}

/// One entry of a `typed_per_filter_config` map, by the filter name it is keyed with.
#[derive(Debug, Clone, PartialEq)]
pub struct PerFilterConfig {
    pub filter: String,
    pub config: PerFilter,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PerFilter {
    /// `envoy.config.route.v3.FilterConfig` with `disabled: true`.
    Disabled,
    /// An `HTTPFault` (directly or inside a `FilterConfig`).
    Fault(FaultConfig),
    /// A `BufferPerRoute` with `buffer`.
    Buffer(BufferConfig),
    /// A `BufferPerRoute` with `disabled: true`: the buffer filter lets the request through.
    BufferDisabled,
    /// A `CorsPolicy`; keyed by the empty name when it is the deprecated `cors` field of a
    /// virtual host or route ([`LEGACY_CORS`]).
    Cors(super::cors_csrf::CorsPolicyConfig),
    /// A `CsrfPolicy`.
    Csrf(super::cors_csrf::CsrfPolicyConfig),
    /// A route's `LocalRateLimit`.
    LocalRateLimit(Box<super::model::LocalRateLimitConfig>),
    /// An `RBACPerRoute`: its `rbac`, or `None` (the filter lets the route's requests through).
    Rbac(Option<Box<super::model::RbacConfig>>),
    /// A `CompressorPerRoute`.
    Compressor(super::compressor::CompressorPerRoute),
    /// An `ExtAuthzPerRoute`.
    ExtAuthz(super::ext_authz::ExtAuthzPerRoute),
    /// A `FilterConfig` with `is_optional: true` whose type legate does not know: ignored,
    /// as Envoy ignores an optional config it has no factory for.
    Ignored,
}

/// The key of a virtual host's or route's deprecated `cors` field among its per-filter
/// configurations: no filter has an empty name.
pub const LEGACY_CORS: &str = "";
