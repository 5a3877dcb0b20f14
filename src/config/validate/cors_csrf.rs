//! `CorsPolicy` and `CsrfPolicy` messages, and the empty `Cors` filter config.

use crate::config::cors_csrf::{CorsPolicyConfig, CsrfPolicyConfig, RuntimeFraction};
use crate::config::filters::Fraction;
use crate::config::reader::{Ctx, Obj};

use super::matcher::string_matcher;

/// `envoy.config.core.v3.RuntimeFractionalPercent`
pub(super) fn runtime_fraction(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str) -> Option<RuntimeFraction> {
    let mut r = o.obj(ctx, name)?;
    let default_value = match r.obj(ctx, "default_value") {
        Some(p) => super::http_filters::fractional_percent(ctx, p),
        None => {
            ctx.err(r.at("default_value"), "missing default_value");
            Fraction::NONE
        }
    };
    let runtime_key = r.str(ctx, "runtime_key").filter(|k| !k.is_empty()).map(std::sync::Arc::from);
    r.finish(ctx, &[]);
    Some(RuntimeFraction { default_value, runtime_key })
}

/// `envoy.extensions.filters.http.cors.v3.Cors`: the filter itself has no settings.
pub(crate) fn cors_filter(ctx: &mut Ctx, o: Obj<'_>) {
    o.finish(ctx, &[]);
}

/// A `CorsPolicy`, per-filter or the deprecated `cors` field of a virtual host or route.
pub(crate) fn cors_policy(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<CorsPolicyConfig> {
    let before = ctx.error_count();
    let allow_origin_string_match =
        o.objs(ctx, "allow_origin_string_match").into_iter().filter_map(|m| string_matcher(ctx, m)).collect();
    let p = CorsPolicyConfig {
        allow_origin_string_match,
        allow_methods: o.str(ctx, "allow_methods").unwrap_or_default(),
        allow_headers: o.str(ctx, "allow_headers").unwrap_or_default(),
        expose_headers: o.str(ctx, "expose_headers").unwrap_or_default(),
        max_age: o.str(ctx, "max_age").unwrap_or_default(),
        allow_credentials: o.bool(ctx, "allow_credentials"),
        allow_private_network_access: o.bool(ctx, "allow_private_network_access"),
        forward_not_matching_preflights: o.bool(ctx, "forward_not_matching_preflights"),
        filter_enabled: runtime_fraction(ctx, &mut o, "filter_enabled"),
        shadow_enabled: runtime_fraction(ctx, &mut o, "shadow_enabled"),
    };
    for field in ["allow_methods", "allow_headers", "expose_headers", "max_age"] {
        let value = match field {
            "allow_methods" => &p.allow_methods,
            "allow_headers" => &p.allow_headers,
            "expose_headers" => &p.expose_headers,
            _ => &p.max_age,
        };
        if http::HeaderValue::from_str(value).is_err() {
            ctx.err(o.at(field), "not a valid header value");
        }
    }
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(p)
}

/// `envoy.extensions.filters.http.csrf.v3.CsrfPolicy` (the filter's and a route's).
pub(crate) fn csrf_policy(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<CsrfPolicyConfig> {
    let before = ctx.error_count();
    let filter_enabled = runtime_fraction(ctx, &mut o, "filter_enabled");
    if filter_enabled.is_none() {
        ctx.err(o.at("filter_enabled"), "missing filter_enabled (required)");
    }
    let shadow_enabled = runtime_fraction(ctx, &mut o, "shadow_enabled").unwrap_or(RuntimeFraction::NONE);
    let additional_origins =
        o.objs(ctx, "additional_origins").into_iter().filter_map(|m| string_matcher(ctx, m)).collect();
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then(|| CsrfPolicyConfig {
        filter_enabled: filter_enabled.unwrap_or(RuntimeFraction::NONE),
        shadow_enabled,
        additional_origins,
    })
}
