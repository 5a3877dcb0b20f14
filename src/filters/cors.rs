//! `envoy.filters.http.cors`: the CORS policies of a route's levels decide whether a
//! request's `Origin` is allowed; the proxy answers preflights itself (`OPTIONS` with
//! `Origin` and `Access-Control-Request-Method`) and adds the `access-control-*` headers to
//! the responses of allowed origins. Stats `http.<prefix>.cors.origin_valid|origin_invalid`.
//!
//! As in Envoy, a route's policy is the merge of every level's `CorsPolicy` (weighted cluster,
//! route, virtual host, route configuration), each field taken from the most specific level
//! that sets it, and `filter_enabled` / `shadow_enabled` from the most specific policy (drawn
//! per request, their `runtime_key` over their `default_value`). With no
//! `typed_per_filter_config` policy at any level, the deprecated `cors` fields of the route and
//! virtual host are used. The merge happens when the route table is built ([`CorsRt::merge`]).

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue, ORIGIN};
use http::Method;

use super::{Slot, Stream};
use crate::config::cors_csrf::{CorsPolicyConfig, RuntimeFraction};
use crate::config::filters::{PerFilter, PerFilterConfig, LEGACY_CORS};
use crate::config::model::StringMatcher;
use crate::proxy::local_reply::LocalReason;
use crate::routing::matcher::string_matches;
use crate::runtime::Runtime;
use crate::stats::{Counter, Store};

const ALLOW_ORIGIN: HeaderName = HeaderName::from_static("access-control-allow-origin");
const ALLOW_CREDENTIALS: HeaderName = HeaderName::from_static("access-control-allow-credentials");
const ALLOW_METHODS: HeaderName = HeaderName::from_static("access-control-allow-methods");
const ALLOW_HEADERS: HeaderName = HeaderName::from_static("access-control-allow-headers");
const MAX_AGE: HeaderName = HeaderName::from_static("access-control-max-age");
const EXPOSE_HEADERS: HeaderName = HeaderName::from_static("access-control-expose-headers");
const ALLOW_PRIVATE_NETWORK: HeaderName = HeaderName::from_static("access-control-allow-private-network");
const REQUEST_METHOD: HeaderName = HeaderName::from_static("access-control-request-method");
const REQUEST_HEADERS: HeaderName = HeaderName::from_static("access-control-request-headers");
const REQUEST_PRIVATE_NETWORK: HeaderName = HeaderName::from_static("access-control-request-private-network");

/// The filter: its policies are all per route.
pub struct Cors {
    origin_valid: Counter,
    origin_invalid: Counter,
}

/// A route's merged policy.
#[derive(Debug)]
pub struct CorsRt {
    enabled: RuntimeFraction,
    shadow: RuntimeFraction,
    origins: Vec<StringMatcher>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    allow_credentials: bool,
    allow_private_network_access: bool,
    forward_not_matching_preflights: bool,
}

/// What the encoding side needs of a request whose origin the filter allowed.
pub struct CorsState {
    policy: Arc<CorsRt>,
    origin: HeaderValue,
    /// The preflight answer's headers, when the filter answered one.
    preflight: Option<HeaderMap>,
}

impl Cors {
    pub fn new(store: &Arc<Store>, hcm_prefix: &str) -> Self {
        Cors {
            origin_valid: store.counter(&format!("http.{hcm_prefix}.cors.origin_valid")),
            origin_invalid: store.counter(&format!("http.{hcm_prefix}.cors.origin_invalid")),
        }
    }

    /// The decoding side: counts the origin, answers a preflight (`Err`), and remembers an
    /// allowed origin for the response.
    pub fn decode(
        &self,
        policy: &Arc<CorsRt>,
        parts: &http::request::Parts,
        stream: &mut Stream,
        rt: &Runtime,
    ) -> Result<(), LocalReason> {
        let enabled = policy.enabled.enabled(rt);
        if !enabled && !policy.shadow.enabled(rt) {
            return Ok(());
        }
        let Some(origin) = parts.headers.get(ORIGIN).filter(|o| !o.is_empty()) else {
            return Ok(());
        };
        let allowed = policy.allows(origin);
        if allowed {
            self.origin_valid.inc();
        } else {
            self.origin_invalid.inc();
        }
        if !enabled {
            return Ok(());
        }
        let request_method = parts.headers.get(REQUEST_METHOD).filter(|m| !m.is_empty());
        let preflight = parts.method == Method::OPTIONS && request_method.is_some();
        if !preflight || (!allowed && policy.forward_not_matching_preflights) {
            if allowed {
                stream.cors =
                    Some(Box::new(CorsState { policy: Arc::clone(policy), origin: origin.clone(), preflight: None }));
            }
            return Ok(());
        }
        let mut h = HeaderMap::new();
        if allowed {
            h.insert(ALLOW_ORIGIN, origin.clone());
        }
        if policy.allow_credentials {
            h.insert(ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        let echo = |configured: &Option<HeaderValue>, asked: &HeaderName| {
            configured.as_ref().map(|v| match v.as_bytes() {
                b"*" => parts.headers.get(asked).cloned().unwrap_or_else(|| HeaderValue::from_static("")),
                _ => v.clone(),
            })
        };
        if let Some(v) = echo(&policy.allow_methods, &REQUEST_METHOD) {
            h.insert(ALLOW_METHODS, v);
        }
        if let Some(v) = echo(&policy.allow_headers, &REQUEST_HEADERS) {
            h.insert(ALLOW_HEADERS, v);
        }
        if let Some(v) = &policy.max_age {
            h.insert(MAX_AGE, v.clone());
        }
        if policy.allow_private_network_access
            && parts.headers.get(REQUEST_PRIVATE_NETWORK).is_some_and(|v| v == "true")
        {
            h.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
        }
        stream.cors = Some(Box::new(CorsState {
            policy: Arc::clone(policy),
            origin: if allowed { origin.clone() } else { HeaderValue::from_static("") },
            preflight: Some(h),
        }));
        Err(LocalReason::CorsPreflight)
    }

    /// The encoding side: the preflight's headers, then (for an allowed origin) the
    /// origin, credentials and exposed headers, on the upstream's answer or a local one.
    pub fn encode(state: Option<&CorsState>, headers: &mut HeaderMap) {
        let Some(state) = state else { return };
        if let Some(pre) = &state.preflight {
            for (name, value) in pre {
                headers.insert(name.clone(), value.clone());
            }
        }
        if state.origin.is_empty() {
            return;
        }
        headers.insert(ALLOW_ORIGIN, state.origin.clone());
        if state.policy.allow_credentials {
            headers.insert(ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if let Some(v) = &state.policy.expose_headers {
            headers.insert(EXPOSE_HEADERS, v.clone());
        }
    }
}

impl CorsRt {
    /// Merges the policies of a route's levels for the CORS filter called `name`, most
    /// specific level first; `None` when no level has one.
    pub fn merge(name: &str, levels: &[&[PerFilterConfig]]) -> Slot {
        let entries = |key| entries(levels, key);
        if matches!(entries(name).next().map(|e| &e.config), Some(PerFilter::Disabled)) {
            return Slot::Off;
        }
        let mut policies: Vec<&CorsPolicyConfig> = entries(name)
            .filter_map(|e| match &e.config {
                PerFilter::Cors(p) => Some(p),
                _ => None,
            })
            .collect();
        if policies.is_empty() {
            // Envoy reads the deprecated fields only when no level has a typed policy.
            policies = entries(LEGACY_CORS)
                .filter_map(|e| match &e.config {
                    PerFilter::Cors(p) => Some(p),
                    _ => None,
                })
                .collect();
        }
        let Some(first) = policies.first() else {
            return if entries(name).next().is_some() { Slot::On } else { Slot::Default };
        };
        let text = |get: fn(&CorsPolicyConfig) -> &String| {
            policies.iter().map(|p| get(p)).find(|s| !s.is_empty()).and_then(|s| HeaderValue::from_str(s).ok())
        };
        let flag = |get: fn(&CorsPolicyConfig) -> Option<bool>| policies.iter().find_map(|p| get(p));
        Slot::Cors(Arc::new(CorsRt {
            enabled: first.filter_enabled.clone().unwrap_or(RuntimeFraction::ALL),
            shadow: first.shadow_enabled.clone().unwrap_or(RuntimeFraction::NONE),
            origins: policies
                .iter()
                .map(|p| &p.allow_origin_string_match)
                .find(|o| !o.is_empty())
                .cloned()
                .unwrap_or_default(),
            allow_methods: text(|p| &p.allow_methods),
            allow_headers: text(|p| &p.allow_headers),
            expose_headers: text(|p| &p.expose_headers),
            max_age: text(|p| &p.max_age),
            allow_credentials: flag(|p| p.allow_credentials).unwrap_or(false),
            allow_private_network_access: flag(|p| p.allow_private_network_access).unwrap_or(false),
            forward_not_matching_preflights: flag(|p| p.forward_not_matching_preflights).unwrap_or(true),
        }))
    }

    /// Envoy's check: a matcher that matches `*` allows every origin.
    fn allows(&self, origin: &HeaderValue) -> bool {
        let origin = origin.to_str().unwrap_or_default();
        self.origins.iter().any(|m| string_matches(m, "*") || string_matches(m, origin))
    }
}

/// Each level's entry for the filter called `key`, most specific first.
fn entries<'a>(levels: &'a [&'a [PerFilterConfig]], key: &'a str) -> impl Iterator<Item = &'a PerFilterConfig> + 'a {
    levels
        .iter()
        .filter_map(move |level| level.iter().find(|e| e.filter == key && !matches!(e.config, PerFilter::Ignored)))
}

#[cfg(test)]
#[path = "cors_tests.rs"]
mod tests;
