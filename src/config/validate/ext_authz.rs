//! `envoy.extensions.filters.http.ext_authz.v3.ExtAuthz` and `ExtAuthzPerRoute`: an HTTP
//! service (`http_service`) or a gRPC one (`grpc_service.envoy_grpc`, v3 transport). Fields
//! legate does not read (metadata namespaces, `filter_enabled`, `include_peer_certificate`,
//! `allowed_headers` at the top level, `google_grpc`, ...) are refused by the support table at
//! their paths.

use std::time::Duration;

use crate::config::ext_authz::{
    AuthzService, BufferSettings, CheckSettings, ExtAuthzConfig, ExtAuthzPerRoute, GrpcService, HttpService,
};
use crate::config::model::StringMatcher;
use crate::config::reader::{Ctx, Obj};

use super::matcher::string_matcher;

/// Envoy's timeout of a gRPC service without one.
const GRPC_DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

pub(crate) fn ext_authz(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<ExtAuthzConfig> {
    let before = ctx.error_count();
    let http = o.obj(ctx, "http_service").and_then(|h| http_service(ctx, h));
    let grpc = o.obj(ctx, "grpc_service").and_then(|g| grpc_service(ctx, g));
    // Envoy 1.40 speaks v3 only: AUTO and unset are v3.
    o.enumv(ctx, "transport_api_version", &[("V3", Some(())), ("AUTO", Some(())), ("V2", None)]);
    let failure_mode_allow = o.bool(ctx, "failure_mode_allow").unwrap_or(false);
    let failure_mode_allow_header_add = o.bool(ctx, "failure_mode_allow_header_add").unwrap_or(false);
    let with_request_body = o.obj(ctx, "with_request_body").map(|b| buffer_settings(ctx, b));
    let status_on_error = match o.obj(ctx, "status_on_error") {
        None => 403,
        Some(mut s) => {
            let code = s.u32(ctx, "code");
            let at = s.at("code");
            s.finish(ctx, &[]);
            match code {
                Some(c @ 100..=599) => c as u16,
                _ => {
                    ctx.err(at, "must be an HTTP status code (100 to 599)");
                    403
                }
            }
        }
    };
    let stat_prefix = o.str(ctx, "stat_prefix").unwrap_or_default();
    let path = o.path.clone();
    let had_service = o.has("http_service") || o.has("grpc_service");
    o.finish(ctx, &[]);
    let service = match (http, grpc) {
        (Some(h), None) => AuthzService::Http(Box::new(h)),
        (None, Some(g)) => AuthzService::Grpc(g),
        (Some(_), Some(_)) => {
            ctx.err(&path, "only one of grpc_service, http_service may be set");
            return None;
        }
        (None, None) => {
            if !had_service {
                ctx.err(&path, "one of grpc_service, http_service is required");
            }
            return None;
        }
    };
    (ctx.error_count() == before).then_some(ExtAuthzConfig {
        service,
        failure_mode_allow,
        failure_mode_allow_header_add,
        with_request_body,
        status_on_error,
        stat_prefix,
    })
}

fn buffer_settings(ctx: &mut Ctx, mut o: Obj<'_>) -> BufferSettings {
    let max_request_bytes = o.u32(ctx, "max_request_bytes").unwrap_or(0);
    if max_request_bytes == 0 {
        ctx.err(o.at("max_request_bytes"), "must be greater than 0");
    }
    let allow_partial_message = o.bool(ctx, "allow_partial_message").unwrap_or(false);
    let pack_as_bytes = o.bool(ctx, "pack_as_bytes").unwrap_or(false);
    o.finish(ctx, &[]);
    BufferSettings { max_request_bytes, allow_partial_message, pack_as_bytes }
}

fn http_service(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HttpService> {
    let before = ctx.error_count();
    let mut service = HttpService::default();
    match o.obj(ctx, "server_uri") {
        Some(mut u) => {
            // Envoy sends the check with the client's authority: `uri` only has to be there.
            if u.str(ctx, "uri").is_none_or(|s| s.is_empty()) {
                ctx.err(u.at("uri"), "missing uri");
            }
            match u.str(ctx, "cluster").filter(|c| !c.is_empty()) {
                Some(c) => service.cluster = c,
                None => ctx.err(u.at("cluster"), "missing cluster"),
            }
            match u.duration(ctx, "timeout") {
                Some(t) => service.timeout = t,
                None => ctx.err(u.at("timeout"), "missing timeout"),
            }
            u.finish(ctx, &[]);
        }
        None => ctx.err(o.at("server_uri"), "missing server_uri"),
    }
    service.path_prefix = o.str(ctx, "path_prefix").unwrap_or_default();
    if !service.path_prefix.is_empty() && !service.path_prefix.starts_with('/') {
        ctx.err(o.at("path_prefix"), "must start with /");
    }
    if let Some(mut r) = o.obj(ctx, "authorization_request") {
        service.allowed_headers = list(ctx, &mut r, "allowed_headers");
        for mut h in r.objs(ctx, "headers_to_add") {
            let key = h.str(ctx, "key").unwrap_or_default().to_ascii_lowercase();
            let value = h.str(ctx, "value").unwrap_or_default();
            if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
                ctx.err(h.at("key"), format!("invalid header name {key:?}"));
            }
            // A format string (`%REQ(...)%`, ...), compiled again with the filter.
            if let Err(e) = crate::routing::header_ops::header_text(&value) {
                ctx.err(h.at("value"), e);
            }
            h.finish(ctx, &[]);
            service.headers_to_add.push((key, value));
        }
        r.finish(ctx, &[]);
    }
    if let Some(mut r) = o.obj(ctx, "authorization_response") {
        service.allowed_upstream_headers = list(ctx, &mut r, "allowed_upstream_headers");
        service.allowed_upstream_headers_to_append = list(ctx, &mut r, "allowed_upstream_headers_to_append");
        service.allowed_client_headers = list(ctx, &mut r, "allowed_client_headers");
        service.allowed_client_headers_on_success = list(ctx, &mut r, "allowed_client_headers_on_success");
        r.finish(ctx, &[]);
    }
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(service)
}

/// A `ListStringMatcher`'s `patterns`.
fn list(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str) -> Vec<StringMatcher> {
    let Some(mut l) = o.obj(ctx, name) else { return Vec::new() };
    let out = l.objs(ctx, "patterns").into_iter().filter_map(|p| string_matcher(ctx, p)).collect();
    l.finish(ctx, &[]);
    out
}

fn grpc_service(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<GrpcService> {
    let before = ctx.error_count();
    let timeout = o.duration(ctx, "timeout").unwrap_or(GRPC_DEFAULT_TIMEOUT);
    let path = o.path.clone();
    let envoy = o.obj(ctx, "envoy_grpc");
    let other = o.has("google_grpc");
    o.finish(ctx, &[]);
    let Some(mut e) = envoy else {
        if !other {
            ctx.err(format!("{path}.envoy_grpc"), "missing envoy_grpc");
        }
        return None;
    };
    let cluster = e.str(ctx, "cluster_name").unwrap_or_default();
    if cluster.is_empty() {
        ctx.err(e.at("cluster_name"), "missing cluster_name");
    }
    let authority = e.str(ctx, "authority").filter(|a| !a.is_empty()).unwrap_or_else(|| cluster.clone());
    if http::HeaderValue::from_str(&authority).is_err() {
        ctx.err(e.at("authority"), "invalid authority");
    }
    e.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(GrpcService { cluster, authority, timeout })
}

/// `ExtAuthzPerRoute`: `disabled: true` or `check_settings`.
pub(crate) fn per_route(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<ExtAuthzPerRoute> {
    let before = ctx.error_count();
    let disabled = o.bool(ctx, "disabled");
    let check = o.obj(ctx, "check_settings").map(|mut c| {
        let mut s = CheckSettings::default();
        for (k, v, p) in c.entries(ctx, "context_extensions") {
            match crate::config::reader::scalar_string(v) {
                Some(v) => s.context_extensions.push((k, v)),
                None => ctx.err(p, "must be a string"),
            }
        }
        s.context_extensions.sort();
        s.disable_request_body_buffering = c.bool(ctx, "disable_request_body_buffering").unwrap_or(false);
        c.finish(ctx, &[]);
        s
    });
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if ctx.error_count() > before {
        return None;
    }
    match (disabled, check) {
        (Some(true), None) => Some(ExtAuthzPerRoute::Disabled),
        (Some(false), None) => {
            ctx.err(format!("{path}.disabled"), "must be true");
            None
        }
        (None, Some(c)) => Some(ExtAuthzPerRoute::Check(c)),
        (None, None) => {
            ctx.err(&path, "one of disabled, check_settings is required");
            None
        }
        (Some(_), Some(_)) => {
            ctx.err(&path, "only one of disabled, check_settings may be set");
            None
        }
    }
}
