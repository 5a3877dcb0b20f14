//! The connection manager's `http_filters` and the route configuration's
//! `typed_per_filter_config` maps: each filter and each per-route configuration is chosen by its
//! `typed_config` `@type` (Envoy's rule), never by its name.

use std::time::Duration;

use crate::config::filters::{
    AbortKind, BufferConfig, DelayKind, FaultAbort, FaultConfig, FaultDelay, Fraction, HttpFilter, HttpFilterKind,
    PerFilter, PerFilterConfig,
};
use crate::config::reader::{Ctx, FieldPath, Obj};
use crate::config::type_urls as t;

use super::cors_csrf;
use super::matcher::header_matcher;

/// Fields of `HTTPFault` legate does not implement (no response rate limit, so no runtime key
/// for its percentage either).
const FAULT_UNSUPPORTED: &[&str] = &["response_rate_limit", "response_rate_limit_percent_runtime", "filter_metadata"];

/// `http_filters`: the chain in order, the router last.
pub(crate) fn http_filters(ctx: &mut Ctx, o: &mut Obj<'_>) -> Vec<HttpFilter> {
    let list_path = o.at("http_filters");
    let objs = o.objs(ctx, "http_filters");
    let count = objs.len();
    let mut out = Vec::new();
    let mut router_at = None;
    for (i, mut f) in objs.into_iter().enumerate() {
        let name = f.str(ctx, "name").unwrap_or_default();
        let path = f.path.clone();
        let optional = f.bool(ctx, "is_optional").unwrap_or(false);
        let disabled = f.bool(ctx, "disabled").unwrap_or(false);
        if name.is_empty() {
            ctx.err(format!("{path}.name"), "missing name");
        }
        let kind = match f.get("typed_config") {
            None => {
                if !name.is_empty() && !optional {
                    ctx.err(&path, format!("unsupported HTTP filter {name}"));
                }
                None
            }
            Some((v, tpath)) => match Obj::new(ctx, v, tpath) {
                None => None,
                Some(mut c) => match c.str(ctx, "@type").as_deref() {
                    Some(t::ROUTER) => {
                        router(ctx, c);
                        router_at = Some(i);
                        Some(HttpFilterKind::Router)
                    }
                    Some(t::HEALTH_CHECK) => health_check(ctx, c),
                    Some(t::FAULT) => fault(ctx, c).map(HttpFilterKind::Fault),
                    Some(t::BUFFER) => buffer(ctx, c).map(HttpFilterKind::Buffer),
                    Some(t::CORS) => Some(HttpFilterKind::Cors).inspect(|_| cors_csrf::cors_filter(ctx, c)),
                    Some(t::CSRF_POLICY) => cors_csrf::csrf_policy(ctx, c).map(HttpFilterKind::Csrf),
                    Some(t::LOCAL_RATELIMIT) => super::local_ratelimit::local_ratelimit(ctx, c, false)
                        .map(|c| HttpFilterKind::LocalRateLimit(Box::new(c))),
                    Some(t::RBAC) => super::rbac::rbac(ctx, c).map(|c| HttpFilterKind::Rbac(Box::new(c))),
                    Some(t::COMPRESSOR) => super::compressor::compressor(ctx, c).map(HttpFilterKind::Compressor),
                    Some(t::EXT_AUTHZ) => {
                        super::ext_authz::ext_authz(ctx, c).map(|c| HttpFilterKind::ExtAuthz(Box::new(c)))
                    }
                    Some(t::DECOMPRESSOR) => {
                        super::decompressor::decompressor(ctx, c).map(HttpFilterKind::Decompressor)
                    }
                    Some(t::GRPC_HTTP1_BRIDGE) => Some(super::grpc_filters::bridge(ctx, c)),
                    Some(t::GRPC_WEB) => Some(super::grpc_filters::grpc_web(ctx, c)),
                    Some(t::HEADER_TO_METADATA) => super::grpc_filters::header_to_metadata(ctx, c),
                    Some(t::SET_FILTER_STATE) => super::filter_state::set_filter_state(ctx, c),
                    Some(_) if optional => None,
                    Some(_) => {
                        ctx.err(&path, format!("unsupported HTTP filter {name}"));
                        None
                    }
                    None => {
                        ctx.err(&c.path, "missing @type");
                        None
                    }
                },
            },
        };
        f.finish(ctx, &[]);
        if disabled && matches!(kind, Some(HttpFilterKind::Router)) {
            ctx.err(
                format!("{path}.disabled"),
                format!("the last (terminal) filter ({name}) in the chain cannot be disabled by default"),
            );
        }
        if let Some(kind) = kind {
            out.push(HttpFilter { name, disabled, kind });
        }
    }
    match router_at {
        None => ctx.err(&list_path, "the router filter (envoy.filters.http.router) is missing"),
        Some(i) if i + 1 != count => {
            ctx.err(format!("{list_path}[{i}]"), "the router filter must be the last HTTP filter")
        }
        Some(_) => {}
    }
    out
}

fn router(ctx: &mut Ctx, r: Obj<'_>) {
    r.finish(
        ctx,
        &[
            "dynamic_stats",
            "start_child_span",
            "upstream_log",
            "upstream_log_options",
            "suppress_envoy_headers",
            "strict_check_headers",
            "respect_expected_rq_timeout",
            "suppress_grpc_request_failure_code_stats",
            "upstream_http_filters",
        ],
    );
}

fn health_check(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HttpFilterKind> {
    let before = ctx.error_count();
    match o.bool(ctx, "pass_through_mode") {
        Some(false) => {}
        Some(true) => ctx.err(o.at("pass_through_mode"), "pass_through_mode: true is not supported"),
        None => ctx.err(o.at("pass_through_mode"), "missing pass_through_mode (only false is supported)"),
    }
    let mut path = None;
    let headers = o.objs(ctx, "headers");
    let list_path = o.at("headers");
    if headers.len() != 1 {
        ctx.err(&list_path, "exactly one header matcher (:path exact) is supported");
    }
    for mut h in headers {
        let name = h.str(ctx, "name");
        let mut exact = h.str(ctx, "exact_match");
        if let Some(mut sm) = h.obj(ctx, "string_match") {
            exact = sm.str(ctx, "exact");
            sm.finish(ctx, &[]);
        }
        let hpath = h.path.clone();
        h.finish(ctx, &[]);
        if name.as_deref() != Some(":path") || exact.is_none() {
            ctx.err(&hpath, "only a :path header with an exact match is supported");
        }
        path = exact;
    }
    o.finish(ctx, &[]);
    if ctx.error_count() > before {
        return None;
    }
    Some(HttpFilterKind::HealthCheck { path: path? })
}

/// `envoy.type.v3.FractionalPercent`; unset is 0/100, as the proto's default.
fn fraction(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str) -> Fraction {
    o.obj(ctx, name).map_or(Fraction::NONE, |p| fractional_percent(ctx, p))
}

/// One `envoy.type.v3.FractionalPercent` object (the filters' percentages and runtime defaults).
pub(super) fn fractional_percent(ctx: &mut Ctx, mut p: Obj<'_>) -> Fraction {
    let numerator = p.u32(ctx, "numerator").unwrap_or(0);
    let denominator = p
        .enumv(
            ctx,
            "denominator",
            &[("HUNDRED", Some(100)), ("TEN_THOUSAND", Some(10_000)), ("MILLION", Some(1_000_000))],
        )
        .unwrap_or(100);
    p.finish(ctx, &[]);
    Fraction { numerator, denominator }
}

/// `envoy.extensions.filters.http.fault.v3.HTTPFault` (the filter's and a route's).
pub(crate) fn fault(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<FaultConfig> {
    let before = ctx.error_count();
    let abort = o.obj(ctx, "abort").and_then(|a| fault_abort(ctx, a));
    let delay = o.obj(ctx, "delay").and_then(|d| fault_delay(ctx, d));
    let upstream_cluster = o.str(ctx, "upstream_cluster").filter(|c| !c.is_empty());
    let headers = o.objs(ctx, "headers").into_iter().filter_map(|h| header_matcher(ctx, h)).collect();
    let downstream_nodes = o.strs(ctx, "downstream_nodes");
    let max_active_faults = o.u32(ctx, "max_active_faults");
    let disable_downstream_cluster_stats = o.bool(ctx, "disable_downstream_cluster_stats").unwrap_or(false);
    let mut keys = crate::config::filters::FaultKeys::default();
    for (field, key) in [
        ("delay_percent_runtime", &mut keys.delay_percent),
        ("abort_percent_runtime", &mut keys.abort_percent),
        ("delay_duration_runtime", &mut keys.delay_duration),
        ("abort_http_status_runtime", &mut keys.abort_http_status),
        ("abort_grpc_status_runtime", &mut keys.abort_grpc_status),
        ("max_active_faults_runtime", &mut keys.max_active_faults),
    ] {
        // Envoy's PROTOBUF_GET_STRING_OR_DEFAULT: an empty string keeps the default key.
        if let Some(k) = o.str(ctx, field).filter(|k| !k.is_empty()) {
            *key = k;
        }
    }
    o.finish(ctx, FAULT_UNSUPPORTED);
    (ctx.error_count() == before).then_some(FaultConfig {
        abort,
        delay,
        upstream_cluster,
        headers,
        downstream_nodes,
        max_active_faults,
        disable_downstream_cluster_stats,
        keys,
    })
}

fn fault_abort(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<FaultAbort> {
    let mut kinds = Vec::new();
    if let Some(s) = o.u32(ctx, "http_status") {
        if (200..600).contains(&s) {
            kinds.push(AbortKind::Http(s as u16));
        } else {
            ctx.err(o.at("http_status"), "must be at least 200 and less than 600");
        }
    }
    if let Some(s) = o.u32(ctx, "grpc_status") {
        kinds.push(AbortKind::Grpc(s));
    }
    if let Some(h) = o.obj(ctx, "header_abort") {
        h.finish(ctx, &[]);
        kinds.push(AbortKind::Header);
    }
    let percentage = fraction(ctx, &mut o, "percentage");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    one_of(ctx, &path, kinds, "http_status, grpc_status, header_abort").map(|kind| FaultAbort { kind, percentage })
}

fn fault_delay(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<FaultDelay> {
    let mut kinds = Vec::new();
    if let Some(d) = o.duration(ctx, "fixed_delay") {
        if d > Duration::ZERO {
            kinds.push(DelayKind::Fixed(d));
        } else {
            ctx.err(o.at("fixed_delay"), "must be greater than 0s");
        }
    }
    if let Some(h) = o.obj(ctx, "header_delay") {
        h.finish(ctx, &[]);
        kinds.push(DelayKind::Header);
    }
    let percentage = fraction(ctx, &mut o, "percentage");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    one_of(ctx, &path, kinds, "fixed_delay, header_delay").map(|kind| FaultDelay { kind, percentage })
}

fn one_of<T>(ctx: &mut Ctx, path: &FieldPath, mut kinds: Vec<T>, names: &str) -> Option<T> {
    match kinds.len() {
        1 => kinds.pop(),
        0 => {
            ctx.err(path, format!("one of {names} is required"));
            None
        }
        _ => {
            ctx.err(path, format!("only one of {names} may be set"));
            None
        }
    }
}

/// `envoy.extensions.filters.http.buffer.v3.Buffer`
pub(crate) fn buffer(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<BufferConfig> {
    let max = o.u32(ctx, "max_request_bytes");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    match max {
        Some(0) => {
            ctx.err(format!("{path}.max_request_bytes"), "must be greater than 0");
            None
        }
        Some(max_request_bytes) => Some(BufferConfig { max_request_bytes }),
        None => {
            ctx.err(format!("{path}.max_request_bytes"), "missing max_request_bytes");
            None
        }
    }
}

/// `envoy.extensions.filters.http.buffer.v3.BufferPerRoute`
fn buffer_per_route(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<PerFilter> {
    let disabled = o.bool(ctx, "disabled");
    let buffer = o.obj(ctx, "buffer").map(|b| buffer(ctx, b));
    let path = o.path.clone();
    o.finish(ctx, &[]);
    match (disabled, buffer) {
        (Some(true), None) => Some(PerFilter::BufferDisabled),
        (Some(false), None) => {
            ctx.err(format!("{path}.disabled"), "must be true");
            None
        }
        (None, Some(b)) => b.map(PerFilter::Buffer),
        (None, None) => {
            ctx.err(&path, "one of disabled, buffer is required");
            None
        }
        (Some(_), Some(_)) => {
            ctx.err(&path, "only one of disabled, buffer may be set");
            None
        }
    }
}

/// A `typed_per_filter_config` map (route configuration, virtual host, route, weighted
/// cluster). Entries for filters the chain does not have are accepted and have no effect, as
/// in Envoy; a type legate does not know is an error unless a `FilterConfig` marks it optional.
pub(crate) fn per_filter_configs(ctx: &mut Ctx, o: &mut Obj<'_>) -> Vec<PerFilterConfig> {
    let mut out = Vec::new();
    for (filter, v, path) in o.entries(ctx, "typed_per_filter_config") {
        let Some(mut c) = Obj::new(ctx, v, path.clone()) else { continue };
        let config = match c.str(ctx, "@type").as_deref() {
            Some(t::FILTER_CONFIG) => filter_config(ctx, c, &filter),
            Some(ty) => per_filter_typed(ctx, c, ty, &filter, &path),
            None => {
                ctx.err(&path, "missing @type");
                None
            }
        };
        out.extend(config.map(|config| PerFilterConfig { filter, config }));
    }
    out
}

fn per_filter_typed(ctx: &mut Ctx, c: Obj<'_>, ty: &str, filter: &str, path: &FieldPath) -> Option<PerFilter> {
    match ty {
        t::FAULT => fault(ctx, c).map(PerFilter::Fault),
        t::BUFFER_PER_ROUTE => buffer_per_route(ctx, c),
        t::CORS_POLICY => cors_csrf::cors_policy(ctx, c).map(PerFilter::Cors),
        t::CSRF_POLICY => cors_csrf::csrf_policy(ctx, c).map(PerFilter::Csrf),
        t::LOCAL_RATELIMIT => {
            super::local_ratelimit::local_ratelimit(ctx, c, true).map(|c| PerFilter::LocalRateLimit(Box::new(c)))
        }
        t::RBAC_PER_ROUTE => super::rbac::rbac_per_route(ctx, c).map(|c| PerFilter::Rbac(c.map(Box::new))),
        t::COMPRESSOR_PER_ROUTE => super::compressor::per_route(ctx, c).map(PerFilter::Compressor),
        t::EXT_AUTHZ_PER_ROUTE => super::ext_authz::per_route(ctx, c).map(PerFilter::ExtAuthz),
        _ => {
            ctx.err(path, format!("unsupported per-filter configuration {ty} for HTTP filter {filter}"));
            None
        }
    }
}

/// `envoy.config.route.v3.FilterConfig`
fn filter_config(ctx: &mut Ctx, mut o: Obj<'_>, filter: &str) -> Option<PerFilter> {
    let disabled = o.bool(ctx, "disabled").unwrap_or(false);
    let optional = o.bool(ctx, "is_optional").unwrap_or(false);
    let inner = o.get("config");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if disabled {
        // Envoy ignores the config of a disabled filter.
        return Some(PerFilter::Disabled);
    }
    let Some((v, cpath)) = inner else {
        ctx.err(&path, format!("Empty route/virtual host per filter configuration for {filter} filter"));
        return None;
    };
    let mut c = Obj::new(ctx, v, cpath.clone())?;
    match c.str(ctx, "@type") {
        None => {
            ctx.err(&cpath, "missing @type");
            None
        }
        Some(ty)
            if optional
                && !matches!(
                    ty.as_str(),
                    t::FAULT
                        | t::BUFFER_PER_ROUTE
                        | t::CORS_POLICY
                        | t::CSRF_POLICY
                        | t::LOCAL_RATELIMIT
                        | t::RBAC_PER_ROUTE
                        | t::COMPRESSOR_PER_ROUTE
                        | t::EXT_AUTHZ_PER_ROUTE
                ) =>
        {
            Some(PerFilter::Ignored)
        }
        Some(ty) => per_filter_typed(ctx, c, &ty, filter, &cpath),
    }
}
