//! `envoy.filters.http.csrf`: on unsafe methods (POST, PUT, DELETE, PATCH) the request's
//! source origin (`Origin`, else `Referer`) must be its destination (`Host`) or one of
//! `additional_origins`; otherwise Envoy's `403 Invalid origin`, unless the policy only
//! shadows. Stats `http.<prefix>.csrf.missing_source_origin|request_invalid|request_valid`.
//! A route's `CsrfPolicy` replaces the filter's (most specific level wins). `filter_enabled` and
//! `shadow_enabled` are drawn per request, their `runtime_key` over their `default_value`.

use std::sync::Arc;

use http::header::{ORIGIN, REFERER};
use http::Method;

use crate::config::cors_csrf::CsrfPolicyConfig;
use crate::proxy::local_reply::LocalReason;
use crate::routing::matcher::string_matches;
use crate::runtime::Runtime;
use crate::stats::{Counter, Store};

pub struct Csrf {
    policy: Arc<CsrfPolicyConfig>,
    missing_source_origin: Counter,
    request_invalid: Counter,
    request_valid: Counter,
}

impl Csrf {
    pub fn new(policy: &CsrfPolicyConfig, store: &Arc<Store>, hcm_prefix: &str) -> Self {
        let c = |s: &str| store.counter(&format!("http.{hcm_prefix}.csrf.{s}"));
        Csrf {
            policy: Arc::new(policy.clone()),
            missing_source_origin: c("missing_source_origin"),
            request_invalid: c("request_invalid"),
            request_valid: c("request_valid"),
        }
    }

    pub fn policy(&self) -> &Arc<CsrfPolicyConfig> {
        &self.policy
    }

    /// Checks an unsafe request's origin against its `authority`.
    pub fn decode(
        &self,
        policy: &CsrfPolicyConfig,
        headers: &http::HeaderMap,
        method: &Method,
        authority: &str,
        rt: &Runtime,
    ) -> Result<(), LocalReason> {
        let enabled = policy.filter_enabled.enabled(rt);
        if !enabled && !policy.shadow_enabled.enabled(rt) {
            return Ok(());
        }
        if !matches!(*method, Method::POST | Method::PUT | Method::DELETE | Method::PATCH) {
            return Ok(());
        }
        let valid = match source_origin(headers) {
            None => {
                self.missing_source_origin.inc();
                false
            }
            Some(source) => {
                let valid = source == host_and_port(authority)
                    || policy.additional_origins.iter().any(|m| string_matches(m, source));
                if valid {
                    self.request_valid.inc();
                } else {
                    self.request_invalid.inc();
                }
                valid
            }
        };
        if valid || !enabled {
            return Ok(());
        }
        Err(LocalReason::CsrfInvalidOrigin)
    }
}

/// The host and port of `Origin`, or of `Referer` when there is no `Origin`. Envoy 1.40
/// takes an `Origin: null` (an opaque origin) as no source at all.
fn source_origin(headers: &http::HeaderMap) -> Option<&str> {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    match value(ORIGIN) {
        Some("null") => None,
        Some(origin) => Some(host_and_port(origin)),
        None => value(REFERER).map(host_and_port).filter(|v| !v.is_empty()),
    }
}

/// The authority of an absolute URL (`scheme://[user@]host[:port][/...]`) without its user
/// part; anything that is not one is compared as it is.
fn host_and_port(url: &str) -> &str {
    let Some((scheme, rest)) = url.split_once("://") else { return url };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if !scheme_ok || authority.is_empty() {
        return url;
    }
    authority
}

#[cfg(test)]
#[path = "csrf_tests.rs"]
mod tests;
