//! `RouteConfiguration`, virtual hosts, routes and their actions (forward, redirect,
//! direct response) and retry policies.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::model::{
    BodyFormat, ClusterSpecifier, DirectResponseAction, ForwardAction, HedgePolicy, HostRewrite, Kept,
    LegacyGrpcTimeout, MirrorCluster, MirrorPolicy, RateLimitedBackOff, RedirectAction, RegexRewrite, RequireTls,
    ResetHeader, RetryOn, RetryPolicy, Route, RouteAction, RouteConfig, StreamDuration, VirtualHost, WeightedCluster,
    WeightedPick,
};
use crate::config::reader::{Ctx, FieldPath, Obj};

use super::common::{self, data_source, regex_matcher};
use super::headers::header_ops;
use super::http_filters::per_filter_configs;
use super::matcher::{header_matcher, route_match};

/// Envoy's default `max_direct_response_body_size_bytes`.
const DEFAULT_MAX_DIRECT_BODY: u64 = 4096;

pub(crate) fn route_config(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RouteConfig> {
    let before = ctx.error_count();
    let name = o.str(ctx, "name").unwrap_or_default();
    let validate_clusters = o.bool(ctx, "validate_clusters");
    let max_body = o.uint(ctx, "max_direct_response_body_size_bytes", u64::from(u32::MAX));
    let max_body = max_body.unwrap_or(DEFAULT_MAX_DIRECT_BODY);
    let headers = header_ops(ctx, &mut o);
    let mut internal_only_headers = Vec::new();
    for (v, path) in o.list(ctx, "internal_only_headers") {
        match v.as_str().map(str::to_ascii_lowercase) {
            Some(h) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => internal_only_headers.push(h),
            _ => ctx.err(&path, "expected a header name"),
        }
    }
    let ignore_port_in_host_matching = o.bool(ctx, "ignore_port_in_host_matching").unwrap_or(false);
    let per_filter = per_filter_configs(ctx, &mut o);
    let mirrors = mirror_policies(ctx, &mut o);
    let vhost_objs = o.objs(ctx, "virtual_hosts");
    let mut virtual_hosts = Vec::new();
    let mut seen_domains: HashMap<String, FieldPath> = HashMap::new();
    for vh in vhost_objs {
        let vpath = vh.path.clone();
        if let Some(v) = virtual_host(ctx, vh, max_body) {
            for (i, d) in v.domains.iter().enumerate() {
                if let Some(first) = seen_domains.insert(d.clone(), vpath.clone()) {
                    ctx.err(
                        format!("{vpath}.domains[{i}]"),
                        format!("duplicate domain \"{d}\" in route configuration \"{name}\" (first in {first})"),
                    );
                }
            }
            virtual_hosts.push(v);
        }
    }
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(RouteConfig {
        name,
        virtual_hosts,
        headers,
        validate_clusters,
        internal_only_headers,
        ignore_port_in_host_matching,
        per_filter,
        mirrors,
    })
}

fn virtual_host(ctx: &mut Ctx, mut o: Obj<'_>, max_body: u64) -> Option<VirtualHost> {
    let before = ctx.error_count();
    let name = o.str(ctx, "name");
    let domains: Vec<String> = o.strs(ctx, "domains").into_iter().map(|d| d.to_ascii_lowercase()).collect();
    let headers = header_ops(ctx, &mut o);
    let retry_policy = o.obj(ctx, "retry_policy").and_then(|r| retry_policy(ctx, r));
    let include_request_attempt_count = o.bool(ctx, "include_request_attempt_count").unwrap_or(false);
    let include_attempt_count_in_response = o.bool(ctx, "include_attempt_count_in_response").unwrap_or(false);
    let hedge_policy = o.obj(ctx, "hedge_policy").and_then(|h| hedge_policy(ctx, h));
    let mut per_filter = per_filter_configs(ctx, &mut o);
    legacy_cors(ctx, &mut o, &mut per_filter);
    let rate_limits = super::local_ratelimit::rate_limits(ctx, &mut o);
    let require_tls = o
        .enumv(
            ctx,
            "require_tls",
            &[
                ("NONE", Some(RequireTls::None)),
                ("EXTERNAL_ONLY", Some(RequireTls::ExternalOnly)),
                ("ALL", Some(RequireTls::All)),
            ],
        )
        .unwrap_or_default();
    let mirrors = mirror_policies(ctx, &mut o);
    // A route reads nothing but its own fields and `max_body`: unchanged ones are reused.
    let routes = o.objs_memo(ctx, "routes", "route", max_body, |ctx, r| route(ctx, r, max_body).map(Kept::new));
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if name.as_deref().is_none_or(str::is_empty) {
        ctx.err(format!("{path}.name"), "missing name");
    }
    if domains.is_empty() {
        ctx.err(format!("{path}.domains"), "at least one domain is required");
    }
    (ctx.error_count() == before).then(|| VirtualHost {
        name: name.unwrap_or_default(),
        domains,
        routes,
        headers,
        retry_policy,
        include_request_attempt_count,
        include_attempt_count_in_response,
        hedge_policy,
        per_filter,
        rate_limits,
        require_tls,
        mirrors,
    })
}

fn route(ctx: &mut Ctx, mut o: Obj<'_>, max_body: u64) -> Option<Route> {
    let before = ctx.error_count();
    let name = o.str(ctx, "name");
    let matcher = o.obj(ctx, "match").and_then(|m| route_match(ctx, m));
    let mut actions = Vec::new();
    if let Some(a) = o.obj(ctx, "route") {
        actions.push(forward(ctx, a).map(RouteAction::Forward));
    }
    if let Some(a) = o.obj(ctx, "redirect") {
        actions.push(redirect(ctx, a).map(RouteAction::Redirect));
    }
    if let Some(a) = o.obj(ctx, "direct_response") {
        actions.push(direct_response(ctx, a, max_body).map(RouteAction::DirectResponse));
    }
    let headers = header_ops(ctx, &mut o);
    let per_filter = per_filter_configs(ctx, &mut o);
    o.ignore(&["decorator"]);
    let path = o.path.clone();
    let has_match = o.has("match");
    // An action legate does not implement is refused by the support table.
    let unsupported_action = o.has_unread();
    o.finish(ctx, &[]);
    if !has_match {
        ctx.err(format!("{path}.match"), "missing match");
    }
    if actions.len() > 1 {
        ctx.err(&path, "only one of route, redirect, direct_response may be set");
    }
    if actions.is_empty() && !unsupported_action {
        ctx.err(&path, "missing action: one of route, redirect, direct_response is required");
    }
    if ctx.error_count() > before {
        return None;
    }
    let action = actions.pop()??;
    Some(Route { name, matcher: matcher?, action, headers, per_filter })
}

fn forward(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<ForwardAction> {
    let before = ctx.error_count();
    let mut specs = Vec::new();
    if let Some(c) = o.str(ctx, "cluster") {
        if c.is_empty() {
            ctx.err(o.at("cluster"), "must not be empty");
        }
        specs.push(ClusterSpecifier::Cluster(c));
    }
    let mut weighted_pick = WeightedPick::Random;
    if let Some(w) = o.obj(ctx, "weighted_clusters") {
        let (clusters, pick) = weighted(ctx, w);
        weighted_pick = pick;
        specs.push(ClusterSpecifier::Weighted(clusters));
    }
    if let Some(h) = o.str(ctx, "cluster_header") {
        specs.push(ClusterSpecifier::Header(h.to_ascii_lowercase()));
    }
    let cluster_not_found_status = o
        .enumv(
            ctx,
            "cluster_not_found_response_code",
            &[("SERVICE_UNAVAILABLE", Some(503)), ("NOT_FOUND", Some(404)), ("INTERNAL_SERVER_ERROR", Some(500))],
        )
        .unwrap_or(503);
    let prefix_rewrite = o.str(ctx, "prefix_rewrite");
    let regex_rewrite = o.obj(ctx, "regex_rewrite").and_then(|r| regex_rewrite(ctx, r));
    if prefix_rewrite.is_some() && regex_rewrite.is_some() {
        ctx.err(&o.path, "only one of prefix_rewrite, regex_rewrite may be set");
    }
    let mut host_rewrites = Vec::new();
    if let Some(l) = o.str(ctx, "host_rewrite_literal") {
        host_rewrites.push(HostRewrite::Literal(l));
    }
    if o.bool(ctx, "auto_host_rewrite").unwrap_or(false) {
        host_rewrites.push(HostRewrite::Auto);
    }
    let header_at = o.at("host_rewrite_header");
    if let Some(h) = o.str(ctx, "host_rewrite_header") {
        match http::HeaderName::from_bytes(h.as_bytes()) {
            Ok(_) => host_rewrites.push(HostRewrite::Header(h.to_ascii_lowercase())),
            Err(_) => ctx.err(&header_at, "expected a header name"),
        }
    }
    if let Some(r) = o.obj(ctx, "host_rewrite_path_regex") {
        if let Some(r) = self::regex_rewrite(ctx, r) {
            host_rewrites.push(HostRewrite::PathRegex(r));
        }
    }
    if host_rewrites.len() > 1 {
        ctx.err(
            &o.path,
            "only one of host_rewrite_literal, auto_host_rewrite, host_rewrite_header, host_rewrite_path_regex may be set",
        );
    }
    let host_rewrite = host_rewrites.pop().unwrap_or(HostRewrite::None);
    let timeout = match o.duration(ctx, "timeout") {
        None => Some(Duration::from_secs(15)),
        Some(Duration::ZERO) => None,
        Some(d) => Some(d),
    };
    let retry_policy = o.obj(ctx, "retry_policy").and_then(|r| retry_policy(ctx, r));
    let hedge_policy = o.obj(ctx, "hedge_policy").and_then(|h| hedge_policy(ctx, h));
    let hash_policy = super::hash_lb::hash_policies(ctx, &mut o);
    // HIGH would select the clusters' high-priority circuit breakers (and pools), which
    // legate does not keep apart: refused rather than served under the DEFAULT limits.
    o.enumv(ctx, "priority", &[("DEFAULT", Some(())), ("HIGH", None)]);
    let upgrades = super::upgrade::upgrade_configs(ctx, &mut o);
    let rate_limits = super::local_ratelimit::rate_limits(ctx, &mut o);
    let include_vh_rate_limits = o.bool(ctx, "include_vh_rate_limits").unwrap_or(false);
    let mirrors = mirror_policies(ctx, &mut o);
    let append_x_forwarded_host = o.bool(ctx, "append_x_forwarded_host").unwrap_or(false);
    let max_stream_duration = o.obj(ctx, "max_stream_duration").map(|m| stream_duration(ctx, m));
    let max_grpc_timeout = o.duration(ctx, "max_grpc_timeout");
    let grpc_timeout_offset = o.duration(ctx, "grpc_timeout_offset");
    // Envoy reads the offset only with a maximum.
    let legacy_grpc = max_grpc_timeout.map(|max| LegacyGrpcTimeout { max, offset: grpc_timeout_offset });
    let idle_timeout = o.duration(ctx, "idle_timeout").map(|d| (!d.is_zero()).then_some(d));
    let internal_redirect = super::internal_redirect::route_policy(ctx, &mut o);
    let path = o.path.clone();
    // A specifier legate does not implement (a plugin) is refused by the support table.
    let plugin = o.has_unread();
    o.finish(ctx, &[]);
    if specs.len() > 1 {
        ctx.err(&path, "only one of cluster, weighted_clusters, cluster_header may be set");
    }
    if specs.is_empty() && !plugin {
        ctx.err(&path, "missing cluster specifier (cluster, weighted_clusters or cluster_header)");
    }
    if ctx.error_count() > before {
        return None;
    }
    Some(ForwardAction {
        cluster: specs.pop()?,
        weighted_pick,
        cluster_not_found_status,
        prefix_rewrite,
        regex_rewrite,
        host_rewrite,
        hash_policy,
        timeout,
        retry_policy,
        hedge_policy,
        upgrades,
        rate_limits,
        include_vh_rate_limits,
        mirrors,
        append_x_forwarded_host,
        max_stream_duration,
        legacy_grpc,
        idle_timeout,
        internal_redirect,
    })
}

/// `request_mirror_policies` (of a route, a virtual host or a route configuration).
fn mirror_policies(ctx: &mut Ctx, o: &mut Obj<'_>) -> Vec<MirrorPolicy> {
    o.objs(ctx, "request_mirror_policies").into_iter().filter_map(|m| mirror_policy(ctx, m)).collect()
}

/// `RouteAction.MaxStreamDuration`.
fn stream_duration(ctx: &mut Ctx, mut o: Obj<'_>) -> StreamDuration {
    let max = o.duration(ctx, "max_stream_duration").filter(|d| !d.is_zero());
    let header_max = o.duration(ctx, "grpc_timeout_header_max");
    let header_offset = o.duration(ctx, "grpc_timeout_header_offset");
    o.finish(ctx, &[]);
    StreamDuration { max, header_max, header_offset }
}

/// `RouteAction.RequestMirrorPolicy`. `trace_sampled` is refused by the support table:
/// legate has no tracing for it to steer.
fn mirror_policy(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<MirrorPolicy> {
    let before = ctx.error_count();
    let named = o.str(ctx, "cluster").filter(|c| !c.is_empty());
    let header = o.str(ctx, "cluster_header").filter(|h| !h.is_empty());
    let fraction =
        super::cors_csrf::runtime_fraction(ctx, &mut o, "runtime_fraction").unwrap_or(crate::runtime::FractionKey::ALL);
    let keep_host = o.bool(ctx, "disable_shadow_host_suffix_append").unwrap_or(false);
    let host_at = o.at("host_rewrite_literal");
    let host_rewrite = o.str(ctx, "host_rewrite_literal").filter(|h| !h.is_empty());
    if host_rewrite.as_deref().is_some_and(|h| http::HeaderValue::from_str(h).is_err()) {
        ctx.err(host_at, "expected a host");
    }
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let cluster = match (named, header) {
        (Some(c), None) => MirrorCluster::Named(c),
        (None, Some(h)) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => {
            MirrorCluster::Header(h.to_ascii_lowercase())
        }
        (None, Some(_)) => {
            ctx.err(format!("{path}.cluster_header"), "expected a header name");
            return None;
        }
        (Some(c), Some(h)) => {
            ctx.err(
                &path,
                format!("Only one of cluster '{c}' or cluster_header '{h}' in request mirror policy can be specified"),
            );
            return None;
        }
        (None, None) => {
            ctx.err(&path, "Exactly one of cluster or cluster_header in request mirror policy need to be specified");
            return None;
        }
    };
    (ctx.error_count() == before).then_some(MirrorPolicy { cluster, fraction, keep_host, host_rewrite })
}

fn weighted(ctx: &mut Ctx, mut o: Obj<'_>) -> (Vec<WeightedCluster>, WeightedPick) {
    let mut out = Vec::new();
    for mut c in o.objs(ctx, "clusters") {
        let name = c.str(ctx, "name").filter(|n| !n.is_empty());
        let header_at = c.at("cluster_header");
        let cluster_header = c.str(ctx, "cluster_header").filter(|h| !h.is_empty());
        let weight = c.u32(ctx, "weight").unwrap_or(0);
        let host_rewrite = c.str(ctx, "host_rewrite_literal").filter(|h| !h.is_empty());
        let headers = header_ops(ctx, &mut c);
        let per_filter = per_filter_configs(ctx, &mut c);
        let path = c.path.clone();
        c.finish(ctx, &[]);
        match (name, cluster_header) {
            (Some(name), None) => {
                out.push(WeightedCluster { name, cluster_header: None, host_rewrite, weight, headers, per_filter })
            }
            (None, Some(h)) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => out.push(WeightedCluster {
                name: String::new(),
                cluster_header: Some(h.to_ascii_lowercase()),
                host_rewrite,
                weight,
                headers,
                per_filter,
            }),
            (None, Some(_)) => ctx.err(header_at, "expected a header name"),
            // Envoy's words for both.
            (Some(_), Some(_)) => ctx.err(&path, "Only one of name or cluster_header can be specified"),
            (None, None) => ctx.err(&path, "At least one of name or cluster_header need to be specified"),
        }
    }
    // Deprecated `total_weight`: accepted and not enforced; Envoy 1.40 also treats the
    // weights as relative when they do not add up to it.
    let _ = o.u32(ctx, "total_weight");
    let header = o.str(ctx, "header_name").filter(|h| !h.is_empty());
    let header_at = o.at("header_name");
    let use_hash = o.bool(ctx, "use_hash_policy").unwrap_or(false);
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if out.iter().map(|c| u64::from(c.weight)).sum::<u64>() == 0 {
        ctx.err(format!("{path}.clusters"), "the sum of weights must be greater than 0");
    }
    let pick = match (header, use_hash) {
        (Some(_), true) => {
            ctx.err(&path, "only one of header_name, use_hash_policy may be set");
            WeightedPick::Random
        }
        (Some(h), false) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => {
            WeightedPick::Header(h.to_ascii_lowercase())
        }
        (Some(_), false) => {
            ctx.err(header_at, "expected a header name");
            WeightedPick::Random
        }
        (None, true) => WeightedPick::Hash,
        (None, false) => WeightedPick::Random,
    };
    (out, pick)
}

fn regex_rewrite(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RegexRewrite> {
    let pattern = o.obj(ctx, "pattern").and_then(|p| regex_matcher(ctx, p, false));
    let substitution = o.str(ctx, "substitution");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if substitution.is_none() {
        ctx.err(format!("{path}.substitution"), "missing substitution");
    }
    Some(RegexRewrite { pattern: pattern?, substitution: substitution? })
}

/// `HedgePolicy`: only `hedge_on_per_try_timeout` does anything in Envoy 1.40; its other
/// two fields are documented as not implemented, so only their defaults are accepted.
fn hedge_policy(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HedgePolicy> {
    let before = ctx.error_count();
    let hedge_on_per_try_timeout = o.bool(ctx, "hedge_on_per_try_timeout").unwrap_or(false);
    if let Some(n) = o.u32(ctx, "initial_requests") {
        if n != 1 {
            ctx.err(o.at("initial_requests"), "only 1 (the default) is supported: Envoy does not implement more");
        }
    }
    if let Some(p) = o.obj(ctx, "additional_request_chance") {
        let path = p.path.clone();
        if super::http_filters::fractional_percent(ctx, p).numerator != 0 {
            ctx.err(path, "only 0 (the default) is supported: Envoy does not implement it");
        }
    }
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(HedgePolicy { hedge_on_per_try_timeout })
}

pub(crate) fn retry_policy(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RetryPolicy> {
    let before = ctx.error_count();
    let mut retry_on = RetryOn::default();
    if let Some(list) = o.str(ctx, "retry_on") {
        let path = o.at("retry_on");
        for cond in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            match cond {
                "5xx" => retry_on.five_xx = true,
                "gateway-error" => retry_on.gateway_error = true,
                "connect-failure" => retry_on.connect_failure = true,
                "reset" => retry_on.reset = true,
                "retriable-4xx" => retry_on.retriable_4xx = true,
                "refused-stream" => retry_on.refused_stream = true,
                "retriable-status-codes" => retry_on.retriable_status_codes = true,
                "retriable-headers" => retry_on.retriable_headers = true,
                "envoy-ratelimited" => retry_on.envoy_ratelimited = true,
                // gRPC status codes, as Envoy reads them from the answer's headers.
                "cancelled" => retry_on.grpc_statuses |= 1 << 1,
                "deadline-exceeded" => retry_on.grpc_statuses |= 1 << 4,
                "resource-exhausted" => retry_on.grpc_statuses |= 1 << 8,
                "internal" => retry_on.grpc_statuses |= 1 << 13,
                "unavailable" => retry_on.grpc_statuses |= 1 << 14,
                "reset-before-request" | "http3-post-connect-failure" => {
                    ctx.err(&path, format!("unsupported retry condition \"{cond}\""))
                }
                _ => ctx.err(&path, format!("unknown retry condition \"{cond}\"")),
            }
        }
    }
    let num_retries = o.u32(ctx, "num_retries").unwrap_or(1);
    let per_try_timeout = o.duration(ctx, "per_try_timeout").filter(|d| !d.is_zero());
    let per_try_idle_timeout = o.duration(ctx, "per_try_idle_timeout").filter(|d| !d.is_zero());
    let mut retriable_status_codes = Vec::new();
    for (v, path) in o.list(ctx, "retriable_status_codes") {
        match v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(c @ 100..=599) => retriable_status_codes.push(c as u16),
            _ => ctx.err(&path, "expected an HTTP status code (100-599)"),
        }
    }
    let defaults = RetryPolicy::default();
    let (backoff_base, backoff_max) = match o.obj(ctx, "retry_back_off") {
        Some(b) => retry_back_off(ctx, b).unwrap_or((defaults.backoff_base, defaults.backoff_max)),
        None => (defaults.backoff_base, defaults.backoff_max),
    };
    let rate_limited = o.obj(ctx, "rate_limited_retry_back_off").and_then(|r| rate_limited_back_off(ctx, r));
    let retriable_headers =
        o.objs(ctx, "retriable_headers").into_iter().filter_map(|h| header_matcher(ctx, h)).collect();
    let retriable_request_headers =
        o.objs(ctx, "retriable_request_headers").into_iter().filter_map(|h| header_matcher(ctx, h)).collect();
    let mut previous_hosts = false;
    for mut p in o.objs(ctx, "retry_host_predicate") {
        let name = p.str(ctx, "name");
        let url = p.type_url("typed_config");
        let known = name.as_deref() == Some("envoy.retry_host_predicates.previous_hosts")
            || url == Some("type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate");
        if known {
            let t = common::typed_config(
                ctx,
                &mut p,
                "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
            );
            if let Some(t) = t {
                t.finish(ctx, &[]);
            }
            previous_hosts = true;
        } else {
            ctx.err(&p.path, "unsupported retry host predicate (only envoy.retry_host_predicates.previous_hosts)");
            p.ignore(&["typed_config"]);
        }
        p.finish(ctx, &[]);
    }
    let host_selection_max_attempts = o
        .uint(ctx, "host_selection_retry_max_attempts", u64::from(u32::MAX))
        .map_or(defaults.host_selection_max_attempts, |n| n as u32);
    let previous_priorities = o.obj(ctx, "retry_priority").and_then(|p| retry_priority(ctx, p));
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(RetryPolicy {
        retry_on,
        num_retries,
        per_try_timeout,
        per_try_idle_timeout,
        retriable_status_codes,
        backoff_base,
        backoff_max,
        rate_limited,
        retriable_headers,
        retriable_request_headers,
        previous_hosts,
        host_selection_max_attempts,
        previous_priorities,
        hedge_on_per_try_timeout: false,
    })
}

/// `retry_priority`: only `envoy.retry_priorities.previous_priorities`, whose
/// `update_frequency` (required, > 0) is returned.
fn retry_priority(ctx: &mut Ctx, mut p: Obj<'_>) -> Option<u32> {
    const URL: &str =
        "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig";
    let name = p.str(ctx, "name");
    let known = name.as_deref() == Some("envoy.retry_priorities.previous_priorities")
        || p.type_url("typed_config") == Some(URL);
    if !known {
        ctx.err(&p.path, "unsupported retry priority (only envoy.retry_priorities.previous_priorities)");
        p.ignore(&["typed_config"]);
        p.finish(ctx, &[]);
        return None;
    }
    let mut every = None;
    if !p.has("typed_config") {
        ctx.err(p.at("typed_config"), "missing typed_config (update_frequency is required)");
        p.finish(ctx, &[]);
        return None;
    }
    match common::typed_config(ctx, &mut p, URL) {
        Some(mut t) => {
            let at = t.at("update_frequency");
            match t.uint(ctx, "update_frequency", u64::from(u32::MAX)) {
                Some(n) if n > 0 => every = Some(n as u32),
                // The proto's rule (`int32 gt: 0`), in Envoy's words.
                _ => ctx.err(at, "value must be greater than 0"),
            }
            t.finish(ctx, &[]);
        }
        None => p.ignore(&["typed_config"]),
    }
    p.finish(ctx, &[]);
    every
}

/// `retry_back_off`: `base_interval` (required, above zero), `max_interval` (default ten
/// times the base, not below it), as Envoy validates them.
fn retry_back_off(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<(Duration, Duration)> {
    let base = o.duration(ctx, "base_interval");
    let max = o.duration(ctx, "max_interval");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Some(base) = base else {
        ctx.err(format!("{path}.base_interval"), "missing base_interval");
        return None;
    };
    if base.is_zero() {
        ctx.err(format!("{path}.base_interval"), "base_interval must be greater than 0");
        return None;
    }
    // Envoy counts whole milliseconds; a shorter base still backs off.
    let base = base.max(Duration::from_millis(1));
    let max = match max {
        Some(m) if m < base => {
            ctx.err(format!("{path}.max_interval"), "max_interval must be greater than or equal to the base_interval");
            return None;
        }
        Some(m) => m,
        None => base * 10,
    };
    Some((base, max))
}

/// `rate_limited_retry_back_off`: the answer headers that say how long to wait.
fn rate_limited_back_off(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RateLimitedBackOff> {
    let before = ctx.error_count();
    let mut reset_headers = Vec::new();
    let list_path = o.at("reset_headers");
    for mut h in o.objs(ctx, "reset_headers") {
        let name = h.str(ctx, "name");
        let unix_timestamp =
            h.enumv(ctx, "format", &[("SECONDS", Some(false)), ("UNIX_TIMESTAMP", Some(true))]).unwrap_or(false);
        let path = h.path.clone();
        h.finish(ctx, &[]);
        match name {
            Some(n) if http::HeaderName::from_bytes(n.as_bytes()).is_ok() => {
                reset_headers.push(ResetHeader { name: n.to_ascii_lowercase(), unix_timestamp })
            }
            Some(n) => ctx.err(format!("{path}.name"), format!("invalid header name {n:?}")),
            None => ctx.err(format!("{path}.name"), "missing name"),
        }
    }
    if reset_headers.is_empty() && ctx.error_count() == before {
        ctx.err(&list_path, "at least one reset header is required");
    }
    let max_interval = o.duration(ctx, "max_interval").unwrap_or(Duration::from_secs(300));
    let max_path = o.at("max_interval");
    o.finish(ctx, &[]);
    if max_interval.is_zero() {
        ctx.err(&max_path, "max_interval must be greater than 0");
    }
    (ctx.error_count() == before).then_some(RateLimitedBackOff { reset_headers, max_interval })
}

fn redirect(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RedirectAction> {
    let before = ctx.error_count();
    let https = o.bool(ctx, "https_redirect").unwrap_or(false);
    let scheme_redirect = o.str(ctx, "scheme_redirect");
    if https && scheme_redirect.is_some() {
        ctx.err(&o.path, "only one of https_redirect, scheme_redirect may be set");
    }
    let scheme = if https { Some("https".to_string()) } else { scheme_redirect.map(|s| s.to_ascii_lowercase()) };
    let host = o.str(ctx, "host_redirect");
    let port = o.uint(ctx, "port_redirect", 65535).and_then(|p| u16::try_from(p).ok());
    let path = o.str(ctx, "path_redirect");
    let prefix_rewrite = o.str(ctx, "prefix_rewrite");
    let regex_rewrite = o.obj(ctx, "regex_rewrite").and_then(|r| regex_rewrite(ctx, r));
    if [path.is_some(), prefix_rewrite.is_some(), regex_rewrite.is_some()].iter().filter(|s| **s).count() > 1 {
        ctx.err(&o.path, "only one of path_redirect, prefix_rewrite, regex_rewrite may be set");
    }
    let strip_query = o.bool(ctx, "strip_query").unwrap_or(false);
    let status = o
        .enumv(
            ctx,
            "response_code",
            &[
                ("MOVED_PERMANENTLY", Some(301)),
                ("FOUND", Some(302)),
                ("SEE_OTHER", Some(303)),
                ("TEMPORARY_REDIRECT", Some(307)),
                ("PERMANENT_REDIRECT", Some(308)),
            ],
        )
        .unwrap_or(301);
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(RedirectAction {
        scheme,
        host,
        port,
        path,
        prefix_rewrite,
        regex_rewrite,
        strip_query,
        status,
    })
}

fn direct_response(ctx: &mut Ctx, mut o: Obj<'_>, max_body: u64) -> Option<DirectResponseAction> {
    let before = ctx.error_count();
    let status = o.uint(ctx, "status", u64::from(u32::MAX));
    let status_path = o.at("status");
    let body_path = o.at("body");
    let body = o.obj(ctx, "body").and_then(|b| data_source(ctx, b));
    let format_at = o.at("body_format");
    let body_format = o.obj(ctx, "body_format").and_then(|f| super::access_log::format_string(ctx, f));
    let body_format = match body_format {
        // Only a format that compiles (the error names the operator).
        Some((format, content_type)) => match crate::access_log::LineFormat::build(&format) {
            Ok(_) if content_type.as_deref().is_some_and(|c| http::HeaderValue::from_str(c).is_err()) => {
                ctx.err(format!("{format_at}.content_type"), "expected a header value");
                None
            }
            Ok(_) => Some(BodyFormat { format, content_type }),
            Err(e) => {
                ctx.err(&format_at, e);
                None
            }
        },
        None => None,
    };
    o.finish(ctx, &[]);
    let status = match status {
        Some(s @ 100..=599) => s as u16,
        Some(s) => {
            ctx.err(&status_path, format!("status {s} out of range (100-599)"));
            return None;
        }
        None => {
            if ctx.error_count() == before {
                ctx.err(&status_path, "missing status");
            }
            return None;
        }
    };
    if let Some(b) = &body {
        if b.len() as u64 > max_body {
            ctx.err(&body_path, format!("body of {} bytes exceeds the limit of {max_body} bytes", b.len()));
        }
    }
    (ctx.error_count() == before).then_some(DirectResponseAction { status, body, body_format })
}

/// The deprecated `cors` field of a virtual host (Envoy 1.40 still accepts it, with a
/// warning; routes no longer have one): kept among the per-filter configurations under the
/// empty name, for a CORS filter that finds no `typed_per_filter_config` of its own.
fn legacy_cors(ctx: &mut Ctx, o: &mut Obj<'_>, per_filter: &mut Vec<crate::config::model::PerFilterConfig>) {
    if let Some(policy) = o.obj(ctx, "cors").and_then(|c| super::cors_csrf::cors_policy(ctx, c)) {
        per_filter.push(crate::config::model::PerFilterConfig {
            filter: crate::config::filters::LEGACY_CORS.to_string(),
            config: crate::config::model::PerFilter::Cors(policy),
        });
    }
}
