//! The model of the CORS and CSRF filters' configurations: `CorsPolicy` (per route, virtual
//! host or route configuration, and the deprecated `cors` field of virtual hosts and routes)
//! and `CsrfPolicy` (the filter's own, and per route).

use super::model::StringMatcher;

/// `envoy.config.core.v3.RuntimeFractionalPercent`: its `runtime_key` over its `default_value`.
pub type RuntimeFraction = crate::runtime::FractionKey;

/// `envoy.extensions.filters.http.cors.v3.CorsPolicy` (and `envoy.config.route.v3.CorsPolicy`).
/// Unset fields stay unset: the filter takes each from the most specific level that sets it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CorsPolicyConfig {
    pub allow_origin_string_match: Vec<StringMatcher>,
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    pub max_age: String,
    pub allow_credentials: Option<bool>,
    pub allow_private_network_access: Option<bool>,
    pub forward_not_matching_preflights: Option<bool>,
    /// Unset: enabled.
    pub filter_enabled: Option<RuntimeFraction>,
    /// Unset: not shadowed.
    pub shadow_enabled: Option<RuntimeFraction>,
}

/// `envoy.extensions.filters.http.csrf.v3.CsrfPolicy`
#[derive(Debug, Clone, PartialEq)]
pub struct CsrfPolicyConfig {
    pub filter_enabled: RuntimeFraction,
    /// Unset: not shadowed.
    pub shadow_enabled: RuntimeFraction,
    pub additional_origins: Vec<StringMatcher>,
}
