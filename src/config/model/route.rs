//! Route configurations: virtual hosts, routes, their matches and actions, header edits.

use std::time::Duration;

use regex::Regex;

use super::{Kept, PerFilterConfig, UpgradeConfig};

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
    /// `request_mirror_policies`: for routes and virtual hosts that have none.
    pub mirrors: Vec<MirrorPolicy>,
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
            mirrors: Vec::new(),
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
    /// `hedge_policy`: for its routes that have none (never merged, as Envoy).
    pub hedge_policy: Option<HedgePolicy>,
    /// `typed_per_filter_config`
    pub per_filter: Vec<PerFilterConfig>,
    /// `rate_limits`
    pub rate_limits: Vec<super::RateLimitPolicy>,
    /// `require_tls`: which requests get a 301 to `https` instead of a route.
    pub require_tls: RequireTls,
    /// `request_mirror_policies`: for its routes that have none (over the route
    /// configuration's; the most specific non-empty list applies, never merged).
    pub mirrors: Vec<MirrorPolicy>,
}

/// `VirtualHost.require_tls` (`TlsRequirementType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequireTls {
    /// `NONE`
    #[default]
    None,
    /// `EXTERNAL_ONLY`: requests not marked `x-envoy-internal: true`.
    ExternalOnly,
    /// `ALL`
    All,
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
    /// `grpc`: only gRPC requests (`content-type: application/grpc` or `application/grpc+...`).
    pub grpc: bool,
    /// `tls_context`: what the downstream connection's TLS must have been.
    pub tls_context: Option<TlsContextMatch>,
    /// `runtime_fraction`: this share of requests (its `runtime_key` over its `default_value`),
    /// drawn with one random value per request for every route.
    pub runtime_fraction: Option<crate::runtime::FractionKey>,
}

/// `RouteMatch.TlsContextMatchOptions`: each field, when set, must equal the connection's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsContextMatch {
    /// `presented`: the client presented a certificate.
    pub presented: Option<bool>,
    /// `validated`: the client's certificate was validated.
    pub validated: Option<bool>,
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
    /// `range_match`: the value, read as a decimal integer, in `[start, end)`.
    Range {
        start: i64,
        end: i64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatcher {
    /// Lowercased; `:authority`, `:path`, `:method`, `:scheme` are pseudo-headers.
    pub name: String,
    pub kind: HeaderMatchKind,
    pub invert_match: bool,
    /// `treat_missing_header_as_empty`: a missing header is matched as the empty value.
    pub treat_missing_as_empty: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryParameterMatcher {
    pub name: String,
    /// `None`: `present_match: true`.
    pub string_match: Option<StringMatcher>,
}

// The model is read once per snapshot build (requests use the compiled routes): most routes
// forward, so boxing the large variant would add an allocation per route for nothing.
#[allow(clippy::large_enum_variant)]
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
    /// Empty with `cluster_header`.
    pub name: String,
    /// `cluster_header`: the cluster is named by this (lowercased) request header; Envoy
    /// then serves the entry as the route itself (its own header edits, host rewrite and
    /// per-filter configuration do not apply).
    pub cluster_header: Option<String>,
    /// `host_rewrite_literal`: the authority when this cluster is chosen.
    pub host_rewrite: Option<String>,
    pub weight: u32,
    pub headers: HeaderOps,
    /// `typed_per_filter_config`
    pub per_filter: Vec<PerFilterConfig>,
}

/// Where the value that picks a weighted cluster comes from (modulo the total weight).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WeightedPick {
    #[default]
    Random,
    /// `header_name`: the (single) header's value as an unsigned integer, else random.
    Header(String),
    /// `use_hash_policy`: the route's `hash_policy` hash, else random.
    Hash,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HostRewrite {
    None,
    Literal(String),
    /// `auto_host_rewrite`: the chosen endpoint's `hostname` (or nothing for IP endpoints
    /// without one, as Envoy does for STATIC clusters; STRICT_DNS uses the DNS name).
    Auto,
    /// `host_rewrite_header`: the (lowercased) request header's value, when present.
    Header(String),
    /// `host_rewrite_path_regex`: the path (without query) through the regex.
    PathRegex(RegexRewrite),
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
    /// How `weighted_clusters` draws its value (`header_name`, `use_hash_policy`).
    pub weighted_pick: WeightedPick,
    /// `cluster_not_found_response_code`: 503 (default), 404 or 500.
    pub cluster_not_found_status: u16,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<RegexRewrite>,
    pub host_rewrite: HostRewrite,
    /// `hash_policy`, in order (RING_HASH and MAGLEV clusters).
    pub hash_policy: Vec<super::HashPolicy>,
    /// `timeout`, default 15 s; `None` when set to 0 (disabled).
    pub timeout: Option<Duration>,
    /// Route-level policy; when `None` the virtual host's applies.
    pub retry_policy: Option<RetryPolicy>,
    /// Route-level `hedge_policy`; when `None` the virtual host's applies.
    pub hedge_policy: Option<HedgePolicy>,
    /// `upgrade_configs`: the route's word on `Upgrade` types, over the connection manager's.
    pub upgrades: Vec<UpgradeConfig>,
    /// `rate_limits` (the local rate limit filter's descriptors).
    pub rate_limits: Vec<super::RateLimitPolicy>,
    /// `include_vh_rate_limits`
    pub include_vh_rate_limits: bool,
    /// `request_mirror_policies`: where copies of the request go.
    pub mirrors: Vec<MirrorPolicy>,
    /// `append_x_forwarded_host`: a rewritten host's original goes to `x-forwarded-host`.
    pub append_x_forwarded_host: bool,
    /// `max_stream_duration`; when set, Envoy ignores `timeout` and the legacy gRPC fields.
    pub max_stream_duration: Option<StreamDuration>,
    /// The deprecated `max_grpc_timeout` and `grpc_timeout_offset`.
    pub legacy_grpc: Option<LegacyGrpcTimeout>,
    /// `idle_timeout`, in place of the connection manager's `stream_idle_timeout`;
    /// `Some(None)` when 0 (no idle timeout at all).
    pub idle_timeout: Option<Option<Duration>>,
    /// `internal_redirect_policy`, or the deprecated `internal_redirect_action:
    /// HANDLE_INTERNAL_REDIRECT` with `max_internal_redirects`.
    pub internal_redirect: Option<InternalRedirectPolicy>,
}

/// `RouteAction.InternalRedirectPolicy`: which upstream 3xx answers the proxy follows itself.
#[derive(Debug, Clone, PartialEq)]
pub struct InternalRedirectPolicy {
    /// `max_internal_redirects`, default 1: redirects one request may follow in all.
    pub max_internal_redirects: u32,
    /// `redirect_response_codes` kept of 301, 302, 303, 307, 308 (Envoy ignores the others);
    /// default 302 alone.
    pub codes: Vec<u16>,
    pub predicates: Vec<RedirectPredicate>,
    pub allow_cross_scheme_redirect: bool,
    /// `response_headers_to_copy`, lowercased.
    pub response_headers_to_copy: Vec<String>,
}

/// One of `InternalRedirectPolicy.predicates`.
#[derive(Debug, Clone, PartialEq)]
pub enum RedirectPredicate {
    /// `allow_listed_routes`: the target route's name is one of these.
    AllowListedRoutes(Vec<String>),
    /// `previous_routes`: a route followed once from this route is not followed again.
    PreviousRoutes,
    /// `safe_cross_scheme`: no https to http.
    SafeCrossScheme,
}

/// `RouteAction.MaxStreamDuration`: how long the whole stream may last, counted from its
/// start; a `grpc-timeout` request header sets it when `header_max` is set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StreamDuration {
    /// `max_stream_duration`; `None` when unset or 0 (no limit).
    pub max: Option<Duration>,
    /// `grpc_timeout_header_max`: `Some(ZERO)` takes the header uncapped.
    pub header_max: Option<Duration>,
    /// `grpc_timeout_header_offset`
    pub header_offset: Option<Duration>,
}

/// `max_grpc_timeout` (`ZERO`: the header's timeout uncapped) and `grpc_timeout_offset`:
/// a gRPC request's `grpc-timeout` sets the route timeout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegacyGrpcTimeout {
    pub max: Duration,
    pub offset: Option<Duration>,
}

/// `RouteAction.RequestMirrorPolicy`: a copy of the request sent to another cluster, its
/// answer discarded.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorPolicy {
    pub cluster: MirrorCluster,
    /// `runtime_fraction` (its `runtime_key` over its `default_value`); every request when unset.
    pub fraction: crate::runtime::FractionKey,
    /// `disable_shadow_host_suffix_append`
    pub keep_host: bool,
    /// `host_rewrite_literal`: the copy's host, as written (no `-shadow` suffix).
    pub host_rewrite: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MirrorCluster {
    /// `cluster`
    Named(String),
    /// `cluster_header`: the cluster named by this (lowercased) request header, if any.
    Header(String),
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
    /// `retriable-headers`: an answer matching one of the policy's `retriable_headers`.
    pub retriable_headers: bool,
    /// `envoy-ratelimited`: an answer carrying `x-envoy-ratelimited` (from an upstream
    /// Envoy's rate limiting), which no other condition retries.
    pub envoy_ratelimited: bool,
    /// The gRPC conditions (`cancelled`, `deadline-exceeded`, `resource-exhausted`,
    /// `internal`, `unavailable`): bit n retries an answer whose `grpc-status` header is n.
    pub grpc_statuses: u32,
}

impl RetryOn {
    /// Whether any condition is set (Envoy keeps no retry state for a request otherwise).
    pub fn any(&self) -> bool {
        *self != RetryOn::default()
    }

    /// The conditions of both.
    pub fn union(self, o: RetryOn) -> RetryOn {
        RetryOn {
            five_xx: self.five_xx || o.five_xx,
            gateway_error: self.gateway_error || o.gateway_error,
            connect_failure: self.connect_failure || o.connect_failure,
            reset: self.reset || o.reset,
            retriable_4xx: self.retriable_4xx || o.retriable_4xx,
            refused_stream: self.refused_stream || o.refused_stream,
            retriable_status_codes: self.retriable_status_codes || o.retriable_status_codes,
            retriable_headers: self.retriable_headers || o.retriable_headers,
            envoy_ratelimited: self.envoy_ratelimited || o.envoy_ratelimited,
            grpc_statuses: self.grpc_statuses | o.grpc_statuses,
        }
    }

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
    /// `per_try_idle_timeout`: an attempt whose upstream sends nothing for that long ends.
    pub per_try_idle_timeout: Option<Duration>,
    pub retriable_status_codes: Vec<u16>,
    /// `retry_back_off`: Envoy's default is 25 ms, its maximum ten times the base.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// `rate_limited_retry_back_off`.
    pub rate_limited: Option<RateLimitedBackOff>,
    /// `retriable_headers`: answers to retry under `retriable-headers`.
    pub retriable_headers: Vec<HeaderMatcher>,
    /// `retriable_request_headers`: the request must match one for any retry.
    pub retriable_request_headers: Vec<HeaderMatcher>,
    /// `retry_host_predicate` `envoy.retry_host_predicates.previous_hosts`.
    pub previous_hosts: bool,
    /// `host_selection_retry_max_attempts`, default 1.
    pub host_selection_max_attempts: u32,
    /// `retry_priority` `envoy.retry_priorities.previous_priorities`: its `update_frequency`.
    pub previous_priorities: Option<u32>,
    /// Not a field of Envoy's retry policy: the route's (or virtual host's) `hedge_policy`
    /// `hedge_on_per_try_timeout`, or the request's `x-envoy-hedge-on-per-try-timeout`. A
    /// per-try timeout then sends a retry without ending the attempt it timed.
    pub hedge_on_per_try_timeout: bool,
}

/// `HedgePolicy`: of its fields only `hedge_on_per_try_timeout` has an effect in Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HedgePolicy {
    pub hedge_on_per_try_timeout: bool,
}

impl Default for RetryPolicy {
    /// Envoy's policy for a request whose only retry setting is `x-envoy-retry-on`.
    fn default() -> Self {
        RetryPolicy {
            retry_on: RetryOn::default(),
            num_retries: 1,
            per_try_timeout: None,
            per_try_idle_timeout: None,
            retriable_status_codes: Vec::new(),
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            rate_limited: None,
            retriable_headers: Vec::new(),
            retriable_request_headers: Vec::new(),
            previous_hosts: false,
            host_selection_max_attempts: 1,
            previous_priorities: None,
            hedge_on_per_try_timeout: false,
        }
    }
}

/// `rate_limited_retry_back_off`: the wait an answer's reset header asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitedBackOff {
    pub reset_headers: Vec<ResetHeader>,
    /// A header asking for longer is skipped; default 300 s.
    pub max_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResetHeader {
    /// Lowercased.
    pub name: String,
    /// `UNIX_TIMESTAMP` (the time to wait until) rather than `SECONDS` (how long to wait).
    pub unix_timestamp: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedirectAction {
    /// `https_redirect: true` gives `Some("https")`; `scheme_redirect` as written.
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub prefix_rewrite: Option<String>,
    /// `regex_rewrite`: applied to the path without its query.
    pub regex_rewrite: Option<RegexRewrite>,
    pub strip_query: bool,
    /// 301 (default), 302, 303, 307, 308.
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DirectResponseAction {
    pub status: u16,
    /// `body.inline_string` / `inline_bytes` / `filename` (read at validation).
    pub body: Option<bytes::Bytes>,
    /// `body_format`: the body sent, formatted (`%LOCAL_REPLY_BODY%` is `body`).
    pub body_format: Option<BodyFormat>,
}

/// `DirectResponseAction.body_format` (a `SubstitutionFormatString`).
#[derive(Debug, Clone, PartialEq)]
pub struct BodyFormat {
    /// `text_format` / `text_format_source` / `json_format` (compiled at validation).
    pub format: super::AccessLogFormat,
    /// `content_type`: else `text/plain` for text, `application/json` for JSON.
    pub content_type: Option<String>,
}
