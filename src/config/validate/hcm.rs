//! The `envoy.filters.network.http_connection_manager` network filter: its options, HTTP
//! filters (read in `http_filters.rs`) and access loggers.

use std::time::Duration;

use crate::config::model::{
    CidrRange, CodecType, Http2Options, HttpConnectionManager, RouteSource, ServerHeaderTransformation,
};
use crate::config::reader::{Ctx, Obj};

use super::access_log::access_log;
use super::common::config_source;
use super::filter_chain::cidrs;
use super::http_filters::http_filters;
use super::route::route_config;
use crate::config::model::EdsConfigSource;

/// Zero disables a timeout.
fn nonzero(d: Option<Duration>, default: Option<Duration>) -> Option<Duration> {
    match d {
        None => default,
        Some(Duration::ZERO) => None,
        Some(d) => Some(d),
    }
}

/// Reads the HCM's `typed_config` (already checked for its `@type`).
pub(crate) fn hcm(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HttpConnectionManager> {
    let before = ctx.error_count();
    let stat_prefix = o.str(ctx, "stat_prefix");
    if stat_prefix.is_none() {
        ctx.err(o.at("stat_prefix"), "missing stat_prefix");
    }
    let codec_type = o
        .enumv(
            ctx,
            "codec_type",
            &[
                ("AUTO", Some(CodecType::Auto)),
                ("HTTP1", Some(CodecType::Http1)),
                ("HTTP2", Some(CodecType::Http2)),
                ("HTTP3", None),
            ],
        )
        .unwrap_or_default();
    let routes = route_source(ctx, &mut o);
    let http_filters = http_filters(ctx, &mut o);
    let server_name = o.str(ctx, "server_name").unwrap_or_else(|| "envoy".to_string());
    let server_header = o
        .enumv(
            ctx,
            "server_header_transformation",
            &[
                ("OVERWRITE", Some(ServerHeaderTransformation::Overwrite)),
                ("APPEND_IF_ABSENT", Some(ServerHeaderTransformation::AppendIfAbsent)),
                ("PASS_THROUGH", Some(ServerHeaderTransformation::PassThrough)),
            ],
        )
        .unwrap_or_default();
    let use_remote_address = o.bool(ctx, "use_remote_address").unwrap_or(false);
    let xff_num_trusted_hops = o.u32(ctx, "xff_num_trusted_hops").unwrap_or(0);
    let skip_xff_append = o.bool(ctx, "skip_xff_append").unwrap_or(false);
    let add_user_agent = o.bool(ctx, "add_user_agent").unwrap_or(false);
    let xfcc = xfcc(ctx, &mut o);
    let internal_cidrs = o.obj(ctx, "internal_address_config").map(|i| internal_cidrs(ctx, i)).unwrap_or_default();
    let generate_request_id = o.bool(ctx, "generate_request_id").unwrap_or(true);
    let preserve_external_request_id = o.bool(ctx, "preserve_external_request_id").unwrap_or(false);
    let max_request_headers_kb = o.uint(ctx, "max_request_headers_kb", 8192).map_or(60, |v| v as u32);
    if max_request_headers_kb == 0 {
        ctx.err(o.at("max_request_headers_kb"), "must be greater than 0");
    }
    let mut max_headers_count = 100;
    let mut idle_timeout = Some(Duration::from_secs(3600));
    if let Some(mut c) = o.obj(ctx, "common_http_protocol_options") {
        idle_timeout = nonzero(c.duration(ctx, "idle_timeout"), idle_timeout);
        max_headers_count = c.u32(ctx, "max_headers_count").unwrap_or(100);
        c.finish(ctx, &[]);
    }
    let mut accept_http_10 = false;
    let mut default_host_for_http_10 = None;
    if let Some(mut h) = o.obj(ctx, "http_protocol_options") {
        accept_http_10 = h.bool(ctx, "accept_http_10").unwrap_or(false);
        default_host_for_http_10 = h.str(ctx, "default_host_for_http_10");
        h.finish(ctx, &[]);
    }
    let http2 = o.obj(ctx, "http2_protocol_options").map(|h2| http2_options(ctx, h2, true)).unwrap_or_default();
    let stream_idle_timeout = nonzero(o.duration(ctx, "stream_idle_timeout"), Some(Duration::from_secs(300)));
    let request_timeout = nonzero(o.duration(ctx, "request_timeout"), None);
    let drain_timeout = o.duration(ctx, "drain_timeout").unwrap_or(Duration::from_secs(5));
    let access_logs = o.objs(ctx, "access_log").into_iter().filter_map(|l| access_log(ctx, l)).collect();
    let normalize_path = o.bool(ctx, "normalize_path").unwrap_or(false);
    let merge_slashes = o.bool(ctx, "merge_slashes").unwrap_or(false);
    let upgrades = super::upgrade::upgrade_configs(ctx, &mut o);
    o.finish(ctx, &[]);
    if ctx.error_count() > before {
        return None;
    }
    Some(HttpConnectionManager {
        stat_prefix: stat_prefix?,
        codec_type,
        routes: routes?,
        server_name,
        server_header,
        use_remote_address,
        xff_num_trusted_hops,
        internal_cidrs,
        skip_xff_append,
        add_user_agent,
        generate_request_id,
        preserve_external_request_id,
        max_request_headers_kb,
        max_headers_count,
        accept_http_10,
        default_host_for_http_10,
        stream_idle_timeout,
        request_timeout,
        idle_timeout,
        drain_timeout,
        http2,
        normalize_path,
        merge_slashes,
        access_logs,
        http_filters,
        upgrades,
        xfcc,
    })
}

/// `forward_client_cert_details` and `set_current_client_cert_details` (Envoy reads the
/// latter only for `APPEND_FORWARD` and `SANITIZE_SET`).
fn xfcc(ctx: &mut Ctx, o: &mut Obj<'_>) -> crate::tls::xfcc::Xfcc {
    use crate::tls::xfcc::{CertDetails, ForwardClientCert as F, Xfcc};
    let mode = o
        .enumv(
            ctx,
            "forward_client_cert_details",
            &[
                ("SANITIZE", Some(F::Sanitize)),
                ("FORWARD_ONLY", Some(F::ForwardOnly)),
                ("APPEND_FORWARD", Some(F::AppendForward)),
                ("SANITIZE_SET", Some(F::SanitizeSet)),
                ("ALWAYS_FORWARD_ONLY", Some(F::AlwaysForwardOnly)),
            ],
        )
        .unwrap_or_default();
    let details = o
        .obj(ctx, "set_current_client_cert_details")
        .map(|mut d| CertDetails {
            subject: d.bool(ctx, "subject").unwrap_or(false),
            cert: d.bool(ctx, "cert").unwrap_or(false),
            chain: d.bool(ctx, "chain").unwrap_or(false),
            dns: d.bool(ctx, "dns").unwrap_or(false),
            uri: d.bool(ctx, "uri").unwrap_or(false),
        })
        .unwrap_or_default();
    Xfcc { mode, details }
}

/// `Http2ProtocolOptions`, with Envoy's bounds. `downstream`: the connection manager's,
/// whose HPACK table stays at 4096; a cluster's cannot cap streams (legate keeps one HTTP/2
/// connection per host, and the upstream's own SETTINGS_MAX_CONCURRENT_STREAMS limits it).
pub(crate) fn http2_options(ctx: &mut Ctx, mut o: Obj<'_>, downstream: bool) -> Http2Options {
    const MAX: u32 = 2_147_483_647;
    let max_concurrent_streams = bounded(ctx, &mut o, "max_concurrent_streams", 1, MAX);
    if max_concurrent_streams.is_some() && !downstream {
        ctx.err(
            o.at("max_concurrent_streams"),
            "not supported for upstream connections: legate keeps one HTTP/2 connection per host, \
             limited by the upstream's own SETTINGS_MAX_CONCURRENT_STREAMS",
        );
    }
    let allow_connect = o.bool(ctx, "allow_connect") == Some(true);
    if allow_connect && !downstream {
        ctx.err(
            o.at("allow_connect"),
            "not supported for upstream connections: legate sends WebSocket upstream as an HTTP/1.1 upgrade",
        );
    }
    let options = Http2Options {
        max_concurrent_streams,
        initial_stream_window_size: bounded(ctx, &mut o, "initial_stream_window_size", 65_535, MAX),
        initial_connection_window_size: bounded(ctx, &mut o, "initial_connection_window_size", 65_535, MAX),
        hpack_table_size: o.u32(ctx, "hpack_table_size"),
        allow_connect: allow_connect && downstream,
    };
    // hyper's server side (behind one port for both protocols) keeps the 4096 of the spec.
    if downstream && options.hpack_table_size.is_some_and(|n| n != 4096) {
        ctx.err(o.at("hpack_table_size"), "not supported for downstream connections: only 4096, the default");
    }
    o.finish(ctx, &[]);
    options
}

/// A `u32` field within `[min, max]` (an error naming the field otherwise).
fn bounded(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str, min: u32, max: u32) -> Option<u32> {
    let v = o.u32(ctx, name)?;
    if (min..=max).contains(&v) {
        Some(v)
    } else {
        ctx.err(o.at(name), format!("must be between {min} and {max}"));
        None
    }
}

fn route_source(ctx: &mut Ctx, o: &mut Obj<'_>) -> Option<RouteSource> {
    let inline = o.obj(ctx, "route_config");
    let rds = o.obj(ctx, "rds");
    match (inline, rds) {
        (Some(_), Some(r)) => {
            ctx.err(&r.path, "only one of route_config, rds may be set");
            None
        }
        (Some(rc), None) => route_config(ctx, rc).map(RouteSource::Inline),
        (None, Some(mut r)) => {
            let name = r.str(ctx, "route_config_name");
            let source = r.obj(ctx, "config_source").and_then(|cs| config_source(ctx, cs, false));
            let path = r.path.clone();
            r.finish(ctx, &[]);
            if name.is_none() {
                ctx.err(format!("{path}.route_config_name"), "missing route_config_name");
            }
            match (name, source) {
                (Some(route_config_name), Some(EdsConfigSource::File(source))) => {
                    Some(RouteSource::Rds { route_config_name, source })
                }
                (_, None) if !ctx.errors.iter().any(|e| e.path.starts_with(&path.to_string())) => {
                    ctx.err(format!("{path}.config_source"), "missing config_source");
                    None
                }
                _ => None,
            }
        }
        (None, None) => {
            if !o.has("scoped_routes") {
                ctx.err(&o.path, "missing route_config or rds");
            }
            None
        }
    }
}

fn internal_cidrs(ctx: &mut Ctx, mut o: Obj<'_>) -> Vec<CidrRange> {
    let out = cidrs(ctx, &mut o, "cidr_ranges");
    o.finish(ctx, &[]);
    out
}
