//! `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit` (the filter's and a
//! route's) and a route's or virtual host's `rate_limits`, whose actions make the descriptors
//! the filter's `descriptors` are matched with.

use std::time::Duration;

use serde_yaml::Value;

use crate::config::filters::Fraction;
use crate::config::model::{
    LocalDescriptor, LocalRateLimitConfig, RateLimitAction, RateLimitPolicy, TokenBucketConfig, VhRateLimits,
};
use crate::config::reader::{Ctx, Obj};

use super::headers::to_add;
use super::matcher::header_matcher;

/// Envoy's shortest fill interval (its fill timer's).
const MIN_FILL_INTERVAL: Duration = Duration::from_millis(50);

/// `LocalRateLimit`; `per_route` when it is a route's (which must have a token bucket).
pub(crate) fn local_ratelimit(ctx: &mut Ctx, mut o: Obj<'_>, per_route: bool) -> Option<LocalRateLimitConfig> {
    let before = ctx.error_count();
    let path = o.path.clone();
    let stat_prefix = o.str(ctx, "stat_prefix").unwrap_or_default();
    if stat_prefix.is_empty() {
        ctx.err(format!("{path}.stat_prefix"), "value length must be at least 1 characters");
    }
    let status = o.obj(ctx, "status").map(|s| http_status(ctx, s)).unwrap_or(429);
    let bucket_path = o.at("token_bucket");
    let token_bucket = o.obj(ctx, "token_bucket").and_then(|b| token_bucket(ctx, b));
    if per_route && token_bucket.is_none() && !o.has("token_bucket") {
        ctx.err(&bucket_path, "local rate limit token bucket must be set for per filter configs");
    }
    let filter_enabled = o.obj(ctx, "filter_enabled").map(|f| runtime_fraction(ctx, f));
    let filter_enforced = o.obj(ctx, "filter_enforced").map(|f| runtime_fraction(ctx, f));
    let response_headers_to_add = to_add(ctx, &mut o, "response_headers_to_add");
    let request_headers_to_add_when_not_enforced = to_add(ctx, &mut o, "request_headers_to_add_when_not_enforced");
    // The filter adds these outside the route's header formatting (it has no stream info).
    for (field, adds) in [
        ("response_headers_to_add", &response_headers_to_add),
        ("request_headers_to_add_when_not_enforced", &request_headers_to_add_when_not_enforced),
    ] {
        if adds.iter().any(|a| a.value.contains('%')) {
            ctx.err(o.at(field), "formatted values (%...%) are not implemented by legate in this filter");
        }
    }
    let descriptors_path = o.at("descriptors");
    let descriptors: Vec<LocalDescriptor> =
        o.objs(ctx, "descriptors").into_iter().filter_map(|d| descriptor(ctx, d)).collect();
    let stage = o.uint(ctx, "stage", 10).unwrap_or(0) as u32;
    let per_connection = o.bool(ctx, "local_rate_limit_per_downstream_connection").unwrap_or(false);
    let always_consume_default = o.bool(ctx, "always_consume_default_token_bucket").unwrap_or(true);
    let x_ratelimit_headers =
        o.enumv(ctx, "enable_x_ratelimit_headers", &[("OFF", Some(false)), ("DRAFT_VERSION_03", Some(true))]);
    let vh_rate_limits = o
        .enumv(
            ctx,
            "vh_rate_limits",
            &[
                ("OVERRIDE", Some(VhRateLimits::Override)),
                ("INCLUDE", Some(VhRateLimits::Include)),
                ("IGNORE", Some(VhRateLimits::Ignore)),
            ],
        )
        .unwrap_or(VhRateLimits::Override);
    o.finish(ctx, &[]);
    if let Some(b) = token_bucket {
        for (i, d) in descriptors.iter().enumerate() {
            if d.token_bucket.fill_interval.as_millis() % b.fill_interval.as_millis().max(1) != 0 {
                ctx.err(
                    descriptors_path.index(i),
                    "local rate descriptor limit is not a multiple of token bucket fill timer",
                );
            }
        }
    }
    for (i, d) in descriptors.iter().enumerate() {
        if descriptors[..i].iter().any(|e| e.entries == d.entries) {
            let shown: Vec<String> = d.entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
            ctx.err(
                descriptors_path.index(i),
                format!("duplicate descriptor in the local rate descriptor: {}", shown.join(", ")),
            );
        }
    }
    (ctx.error_count() == before).then_some(LocalRateLimitConfig {
        stat_prefix,
        status,
        token_bucket,
        filter_enabled,
        filter_enforced,
        response_headers_to_add,
        request_headers_to_add_when_not_enforced,
        descriptors,
        stage,
        per_connection,
        always_consume_default,
        x_ratelimit_headers: x_ratelimit_headers.unwrap_or(false),
        vh_rate_limits,
    })
}

/// `envoy.type.v3.HttpStatus`: a code under 400 answers 429, as Envoy's `toErrorCode`.
fn http_status(ctx: &mut Ctx, mut o: Obj<'_>) -> u16 {
    let path = o.at("code");
    let code = match o.get("code") {
        Some((Value::Number(n), _)) => n.as_u64().map(|n| n.min(999) as u16),
        Some((Value::String(s), _)) => status_by_name(s),
        _ => None,
    };
    o.finish(ctx, &[]);
    match code {
        Some(c) if (400..600).contains(&c) => c,
        Some(_) => 429,
        None => {
            ctx.err(path, "expected an HTTP status code");
            429
        }
    }
}

/// Envoy's `StatusCode` enum names (`TooManyRequests`) are the reason phrases without spaces.
fn status_by_name(name: &str) -> Option<u16> {
    if let Ok(n) = name.parse::<u16>() {
        return Some(n);
    }
    (100u16..600).find(|c| {
        http::StatusCode::from_u16(*c)
            .ok()
            .and_then(|s| s.canonical_reason())
            .is_some_and(|r| r.replace([' ', '-'], "").eq_ignore_ascii_case(name))
    })
}

/// `envoy.type.v3.TokenBucket`
fn token_bucket(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<TokenBucketConfig> {
    let before = ctx.error_count();
    let max_tokens = o.u32(ctx, "max_tokens");
    let tokens_per_fill = o.u32(ctx, "tokens_per_fill").unwrap_or(1);
    let fill_interval = o.duration(ctx, "fill_interval");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    match max_tokens {
        None | Some(0) => ctx.err(format!("{path}.max_tokens"), "value must be greater than 0"),
        Some(_) => {}
    }
    if tokens_per_fill == 0 {
        ctx.err(format!("{path}.tokens_per_fill"), "value must be greater than 0");
    }
    match fill_interval {
        None => ctx.err(format!("{path}.fill_interval"), "value is required"),
        Some(d) if d.is_zero() => ctx.err(format!("{path}.fill_interval"), "value must be greater than 0s"),
        Some(d) if d < MIN_FILL_INTERVAL => {
            ctx.err(format!("{path}.fill_interval"), "local rate limit token bucket fill timer must be >= 50ms")
        }
        Some(_) => {}
    }
    if ctx.error_count() > before {
        return None;
    }
    Some(TokenBucketConfig { max_tokens: max_tokens?, tokens_per_fill, fill_interval: fill_interval? })
}

/// A `RuntimeFractionalPercent`: its `runtime_key` overrides `default_value` (unset is 0%).
fn runtime_fraction(ctx: &mut Ctx, mut o: Obj<'_>) -> crate::runtime::FractionKey {
    let runtime_key = o.str(ctx, "runtime_key").filter(|k| !k.is_empty()).map(std::sync::Arc::from);
    let default_value = match o.obj(ctx, "default_value") {
        None => Fraction::NONE,
        Some(p) => super::http_filters::fractional_percent(ctx, p),
    };
    o.finish(ctx, &[]);
    crate::runtime::FractionKey { default_value, runtime_key }
}

/// `LocalRateLimitDescriptor`
fn descriptor(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<LocalDescriptor> {
    let before = ctx.error_count();
    let entries_path = o.at("entries");
    let mut entries = Vec::new();
    for (i, mut e) in o.objs(ctx, "entries").into_iter().enumerate() {
        let key = e.str(ctx, "key").unwrap_or_default();
        let value = e.str(ctx, "value").unwrap_or_default();
        e.finish(ctx, &[]);
        if key.is_empty() {
            ctx.err(format!("{}.key", entries_path.index(i)), "value length must be at least 1 characters");
        }
        if value.is_empty() {
            // Envoy makes one bucket per value seen (`max_dynamic_descriptors`).
            ctx.err(
                format!("{}.value", entries_path.index(i)),
                "an empty value (a dynamic descriptor) is not implemented by legate",
            );
        }
        entries.push((key, value));
    }
    if entries.is_empty() {
        ctx.err(&entries_path, "at least one entry is required");
    }
    let bucket_path = o.at("token_bucket");
    let token_bucket = o.obj(ctx, "token_bucket").and_then(|b| token_bucket(ctx, b));
    o.finish(ctx, &[]);
    if token_bucket.is_none() && ctx.error_count() == before {
        ctx.err(bucket_path, "missing token_bucket");
    }
    if ctx.error_count() > before {
        return None;
    }
    Some(LocalDescriptor { entries, token_bucket: token_bucket? })
}

/// `rate_limits` of a route's action or of a virtual host.
pub(crate) fn rate_limits(ctx: &mut Ctx, o: &mut Obj<'_>) -> Vec<RateLimitPolicy> {
    o.objs(ctx, "rate_limits").into_iter().filter_map(|r| rate_limit(ctx, r)).collect()
}

fn rate_limit(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RateLimitPolicy> {
    let before = ctx.error_count();
    let stage = o.uint(ctx, "stage", 10).unwrap_or(0) as u32;
    let disabled = o.str(ctx, "disable_key").is_some_and(|k| !k.is_empty());
    let actions_path = o.at("actions");
    let n = o.has("actions");
    let actions: Vec<RateLimitAction> = o.objs(ctx, "actions").into_iter().filter_map(|a| action(ctx, a)).collect();
    o.finish(ctx, &[]);
    if !n {
        ctx.err(actions_path, "at least one action is required");
    }
    (ctx.error_count() == before).then_some(RateLimitPolicy { stage, disabled, actions })
}

fn action(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RateLimitAction> {
    let mut found = Vec::new();
    if let Some(mut r) = o.obj(ctx, "request_headers") {
        let header_name = r.str(ctx, "header_name").unwrap_or_default().to_ascii_lowercase();
        let descriptor_key = r.str(ctx, "descriptor_key").unwrap_or_default();
        let skip_if_absent = r.bool(ctx, "skip_if_absent").unwrap_or(false);
        let path = r.path.clone();
        r.finish(ctx, &[]);
        if header_name.is_empty() || http::HeaderName::from_bytes(header_name.as_bytes()).is_err() {
            ctx.err(format!("{path}.header_name"), "expected a header name");
        }
        if descriptor_key.is_empty() {
            ctx.err(format!("{path}.descriptor_key"), "value length must be at least 1 characters");
        }
        found.push(RateLimitAction::RequestHeaders { header_name, descriptor_key, skip_if_absent });
    }
    if let Some(r) = o.obj(ctx, "remote_address") {
        r.finish(ctx, &[]);
        found.push(RateLimitAction::RemoteAddress);
    }
    if let Some(r) = o.obj(ctx, "destination_cluster") {
        r.finish(ctx, &[]);
        found.push(RateLimitAction::DestinationCluster);
    }
    if let Some(mut g) = o.obj(ctx, "generic_key") {
        let descriptor_value = g.str(ctx, "descriptor_value").unwrap_or_default();
        let descriptor_key = g.str(ctx, "descriptor_key").filter(|k| !k.is_empty());
        let path = g.path.clone();
        g.finish(ctx, &[]);
        if descriptor_value.is_empty() {
            ctx.err(format!("{path}.descriptor_value"), "value length must be at least 1 characters");
        }
        let descriptor_key = descriptor_key.unwrap_or_else(|| "generic_key".to_string());
        found.push(RateLimitAction::GenericKey { descriptor_key, descriptor_value });
    }
    if let Some(mut h) = o.obj(ctx, "header_value_match") {
        let descriptor_value = h.str(ctx, "descriptor_value").unwrap_or_default();
        let descriptor_key = h.str(ctx, "descriptor_key").filter(|k| !k.is_empty());
        let expect_match = h.bool(ctx, "expect_match").unwrap_or(true);
        let headers = h.objs(ctx, "headers").into_iter().filter_map(|m| header_matcher(ctx, m)).collect::<Vec<_>>();
        let path = h.path.clone();
        h.finish(ctx, &[]);
        if descriptor_value.is_empty() {
            ctx.err(format!("{path}.descriptor_value"), "value length must be at least 1 characters");
        }
        if headers.is_empty() {
            ctx.err(format!("{path}.headers"), "at least one header matcher is required");
        }
        let descriptor_key = descriptor_key.unwrap_or_else(|| "header_match".to_string());
        found.push(RateLimitAction::HeaderValueMatch { descriptor_key, descriptor_value, expect_match, headers });
    }
    let path = o.path.clone();
    let unsupported = [
        "source_cluster",
        "dynamic_metadata",
        "metadata",
        "extension",
        "masked_remote_address",
        "query_parameter_value_match",
        "query_parameters",
    ]
    .iter()
    .any(|f| o.has(f));
    o.finish(ctx, &[]);
    match found.len() {
        1 => found.pop(),
        0 if unsupported => None,
        0 => {
            ctx.err(path, "one action is required");
            None
        }
        _ => {
            ctx.err(path, "only one action may be set");
            None
        }
    }
}
