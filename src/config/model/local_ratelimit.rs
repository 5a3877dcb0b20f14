//! The model of `envoy.filters.http.local_ratelimit` (`LocalRateLimit`, the filter's and a
//! route's) and of a route's `rate_limits`, whose actions make the descriptors it matches.

use std::time::Duration;

use super::{HeaderMatcher, HeaderValueOption};

/// `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRateLimitConfig {
    pub stat_prefix: String,
    /// `status.code`: 429 unless set (a code under 400 is 429 too, as in Envoy).
    pub status: u16,
    /// `token_bucket`: `None` lets every request through.
    pub token_bucket: Option<TokenBucketConfig>,
    /// `filter_enabled` (its `runtime_key` over its `default_value`): unset is 0%.
    pub filter_enabled: Option<crate::runtime::FractionKey>,
    /// `filter_enforced`: unset is 0%.
    pub filter_enforced: Option<crate::runtime::FractionKey>,
    pub response_headers_to_add: Vec<HeaderValueOption>,
    pub request_headers_to_add_when_not_enforced: Vec<HeaderValueOption>,
    pub descriptors: Vec<LocalDescriptor>,
    /// `stage`: which of the route's `rate_limits` apply.
    pub stage: u32,
    pub per_connection: bool,
    /// `always_consume_default_token_bucket` (true).
    pub always_consume_default: bool,
    /// `enable_x_ratelimit_headers: DRAFT_VERSION_03`
    pub x_ratelimit_headers: bool,
    /// `vh_rate_limits`
    pub vh_rate_limits: VhRateLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VhRateLimits {
    Override,
    Include,
    Ignore,
}

/// `envoy.type.v3.TokenBucket`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucketConfig {
    pub max_tokens: u32,
    /// `tokens_per_fill` (1).
    pub tokens_per_fill: u32,
    pub fill_interval: Duration,
}

/// `envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor`
#[derive(Debug, Clone, PartialEq)]
pub struct LocalDescriptor {
    /// `(key, value)`; an empty value matches any value of its key.
    pub entries: Vec<(String, String)>,
    pub token_bucket: TokenBucketConfig,
}

/// `envoy.config.route.v3.RateLimit` of a route or virtual host.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitPolicy {
    /// `stage` (0)
    pub stage: u32,
    /// `disable_key`: an entry with one is skipped by the local rate limit filter.
    pub disabled: bool,
    pub actions: Vec<RateLimitAction>,
}

/// `envoy.config.route.v3.RateLimit.Action`
#[derive(Debug, Clone, PartialEq)]
pub enum RateLimitAction {
    /// `(<descriptor_key>, <header value>)`; a missing header drops the descriptor unless
    /// `skip_if_absent`.
    RequestHeaders { header_name: String, descriptor_key: String, skip_if_absent: bool },
    /// `("remote_address", <trusted client address>)`
    RemoteAddress,
    /// `("generic_key" or descriptor_key, descriptor_value)`
    GenericKey { descriptor_key: String, descriptor_value: String },
    /// `("header_match" or descriptor_key, descriptor_value)` when the headers match
    /// (`expect_match`) or do not.
    HeaderValueMatch {
        descriptor_key: String,
        descriptor_value: String,
        expect_match: bool,
        headers: Vec<HeaderMatcher>,
    },
    /// `("destination_cluster", <route's cluster>)`
    DestinationCluster,
}
