//! A cluster's `health_checks`, `outlier_detection` and `common_lb_config`.

use std::time::Duration;

use crate::config::model::{
    CheckKind, ConsistentHashing, GrpcCheck, HealthCheck, HttpCheck, LbPolicy, OutlierDetection, TcpCheck,
};
use crate::config::reader::{Ctx, Obj};

/// One `health_checks` entry; `None` if invalid (the error is reported).
pub(crate) fn health_check(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HealthCheck> {
    let before = ctx.error_count();
    let required = |ctx: &mut Ctx, o: &mut Obj<'_>, f: &'static str| {
        let d = o.duration(ctx, f);
        if d.is_none() && !o.has(f) {
            ctx.err(o.at(f), "missing (required)");
        }
        match d {
            Some(Duration::ZERO) => {
                ctx.err(o.at(f), "must be greater than 0s");
                None
            }
            d => d,
        }
    };
    let timeout = required(ctx, &mut o, "timeout");
    let interval = required(ctx, &mut o, "interval");
    let threshold = |ctx: &mut Ctx, o: &mut Obj<'_>, f: &'static str| {
        let v = o.u32(ctx, f);
        if v.is_none() {
            ctx.err(o.at(f), "missing (required)");
        }
        v.unwrap_or(1).max(1)
    };
    let unhealthy_threshold = threshold(ctx, &mut o, "unhealthy_threshold");
    let healthy_threshold = threshold(ctx, &mut o, "healthy_threshold");
    let interval_jitter = o.duration(ctx, "interval_jitter").unwrap_or_default();
    let interval_jitter_percent = o.u32(ctx, "interval_jitter_percent").unwrap_or(0);
    let initial_jitter = o.duration(ctx, "initial_jitter").unwrap_or_default();
    let unhealthy_interval = o.duration(ctx, "unhealthy_interval").filter(|d| !d.is_zero());
    let unhealthy_edge_interval = o.duration(ctx, "unhealthy_edge_interval").filter(|d| !d.is_zero());
    let healthy_edge_interval = o.duration(ctx, "healthy_edge_interval").filter(|d| !d.is_zero());
    let no_traffic_interval =
        o.duration(ctx, "no_traffic_interval").filter(|d| !d.is_zero()).unwrap_or(Duration::from_secs(60));
    let no_traffic_healthy_interval =
        o.duration(ctx, "no_traffic_healthy_interval").filter(|d| !d.is_zero()).unwrap_or(no_traffic_interval);
    let always_log_failures = o.bool(ctx, "always_log_health_check_failures").unwrap_or(false);
    let event_log_path = o.str(ctx, "event_log_path").filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
    let reuse_connection = o.bool(ctx, "reuse_connection").unwrap_or(true);
    let kind_at = o.at("http_health_check");
    let http = o.obj(ctx, "http_health_check").map(|h| http_check(ctx, h));
    let tcp = o.obj(ctx, "tcp_health_check").map(|t| tcp_check(ctx, t));
    let grpc = o.obj(ctx, "grpc_health_check").map(|g| grpc_check(ctx, g));
    o.finish(ctx, &[]);
    let kind = match (http, tcp, grpc) {
        (Some(h), None, None) => CheckKind::Http(h?),
        (None, Some(t), None) => CheckKind::Tcp(t?),
        (None, None, Some(g)) => CheckKind::Grpc(g),
        _ => {
            if ctx.error_count() == before {
                ctx.err(
                    kind_at,
                    "a health check needs exactly one of http_health_check, tcp_health_check, grpc_health_check",
                );
            }
            return None;
        }
    };
    let (timeout, interval) = (timeout?, interval?);
    if ctx.error_count() > before {
        return None;
    }
    let unhealthy_interval = unhealthy_interval.unwrap_or(interval);
    Some(HealthCheck {
        timeout,
        interval,
        interval_jitter,
        interval_jitter_percent,
        initial_jitter,
        unhealthy_threshold,
        healthy_threshold,
        unhealthy_interval,
        unhealthy_edge_interval: unhealthy_edge_interval.unwrap_or(unhealthy_interval),
        healthy_edge_interval: healthy_edge_interval.unwrap_or(interval),
        no_traffic_interval,
        no_traffic_healthy_interval,
        always_log_failures,
        event_log_path,
        reuse_connection,
        kind,
    })
}

fn http_check(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HttpCheck> {
    let path_at = o.at("path");
    let path = o.str(ctx, "path").filter(|p| !p.is_empty());
    if path.is_none() {
        ctx.err(path_at, "missing path");
    }
    let host = o.str(ctx, "host").filter(|h| !h.is_empty());
    let expected = ranges(ctx, &mut o, "expected_statuses");
    let retriable = ranges(ctx, &mut o, "retriable_statuses");
    let headers_to_add = super::headers::to_add(ctx, &mut o, "request_headers_to_add");
    let headers_to_remove =
        o.strs(ctx, "request_headers_to_remove").into_iter().map(|h| h.to_ascii_lowercase()).collect();
    let http2 = o.enumv(ctx, "codec_client_type", &[("HTTP1", Some(false)), ("HTTP2", Some(true)), ("HTTP3", None)]);
    o.finish(ctx, &[]);
    Some(HttpCheck {
        path: path?,
        host,
        expected: if expected.is_empty() { vec![(200, 201)] } else { expected },
        retriable,
        headers_to_add,
        headers_to_remove,
        http2: http2.unwrap_or(false),
    })
}

/// `Int64Range`s of statuses, each within [100, 600).
fn ranges(ctx: &mut Ctx, o: &mut Obj<'_>, field: &'static str) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for mut r in o.objs(ctx, field) {
        let start = r.uint(ctx, "start", 600).unwrap_or(0);
        let end = r.uint(ctx, "end", 601).unwrap_or(0);
        if start < 100 || end > 600 || start >= end {
            ctx.err(r.at("start"), format!("invalid status range [{start}, {end}): statuses are in [100, 600)"));
        }
        r.finish(ctx, &[]);
        out.push((start as u16, end as u16));
    }
    out
}

fn grpc_check(ctx: &mut Ctx, mut o: Obj<'_>) -> GrpcCheck {
    let service_name = o.str(ctx, "service_name").unwrap_or_default();
    let authority = o.str(ctx, "authority").filter(|a| !a.is_empty());
    o.finish(ctx, &[]);
    GrpcCheck { service_name, authority }
}

fn tcp_check(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<TcpCheck> {
    let send = o.obj(ctx, "send").map(|p| payload(ctx, p)).unwrap_or_default();
    let receive = o.objs(ctx, "receive").into_iter().map(|p| payload(ctx, p)).collect();
    o.finish(ctx, &[]);
    Some(TcpCheck { send, receive })
}

/// A `Payload`: `text` (hex) or `binary` (base64 in JSON/YAML).
fn payload(ctx: &mut Ctx, mut o: Obj<'_>) -> Vec<u8> {
    let at = o.at("text");
    let out = match o.str(ctx, "text") {
        Some(hex) => match decode_hex(&hex) {
            Some(b) => b,
            None => {
                ctx.err(at, format!("\"{hex}\" is not hex"));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    o.finish(ctx, &[]);
    out
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

pub(crate) fn outlier_detection(ctx: &mut Ctx, mut o: Obj<'_>) -> OutlierDetection {
    let mut d = OutlierDetection::default();
    // Envoy's `lte: 100` fields.
    let pct = |ctx: &mut Ctx, o: &mut Obj<'_>, f: &'static str, v: &mut u32| {
        if let Some(x) = o.uint(ctx, f, 100) {
            *v = x as u32;
        }
    };
    pct(ctx, &mut o, "max_ejection_percent", &mut d.max_ejection_percent);
    pct(ctx, &mut o, "enforcing_consecutive_5xx", &mut d.enforcing_consecutive_5xx);
    pct(ctx, &mut o, "enforcing_consecutive_gateway_failure", &mut d.enforcing_consecutive_gateway_failure);
    pct(ctx, &mut o, "enforcing_success_rate", &mut d.enforcing_success_rate);
    pct(ctx, &mut o, "failure_percentage_threshold", &mut d.failure_percentage_threshold);
    pct(ctx, &mut o, "enforcing_failure_percentage", &mut d.enforcing_failure_percentage);
    pct(ctx, &mut o, "enforcing_failure_percentage_local_origin", &mut d.enforcing_failure_percentage_local_origin);
    pct(ctx, &mut o, "enforcing_consecutive_local_origin_failure", &mut d.enforcing_consecutive_local_origin_failure);
    pct(ctx, &mut o, "enforcing_local_origin_success_rate", &mut d.enforcing_local_origin_success_rate);
    let num = |ctx: &mut Ctx, o: &mut Obj<'_>, f: &'static str, v: &mut u32| {
        if let Some(x) = o.u32(ctx, f) {
            *v = x;
        }
    };
    num(ctx, &mut o, "consecutive_5xx", &mut d.consecutive_5xx);
    num(ctx, &mut o, "consecutive_gateway_failure", &mut d.consecutive_gateway_failure);
    num(ctx, &mut o, "consecutive_local_origin_failure", &mut d.consecutive_local_origin_failure);
    num(ctx, &mut o, "success_rate_minimum_hosts", &mut d.success_rate_minimum_hosts);
    num(ctx, &mut o, "success_rate_request_volume", &mut d.success_rate_request_volume);
    num(ctx, &mut o, "success_rate_stdev_factor", &mut d.success_rate_stdev_factor);
    num(ctx, &mut o, "failure_percentage_minimum_hosts", &mut d.failure_percentage_minimum_hosts);
    num(ctx, &mut o, "failure_percentage_request_volume", &mut d.failure_percentage_request_volume);
    let flag = |ctx: &mut Ctx, o: &mut Obj<'_>, f: &'static str, v: &mut bool| {
        if let Some(x) = o.bool(ctx, f) {
            *v = x;
        }
    };
    flag(ctx, &mut o, "split_external_local_origin_errors", &mut d.split_external_local_origin_errors);
    flag(ctx, &mut o, "always_eject_one_host", &mut d.always_eject_one_host);
    flag(
        ctx,
        &mut o,
        "successful_active_health_check_uneject_host",
        &mut d.successful_active_health_check_uneject_host,
    );
    let dur = |ctx: &mut Ctx, o: &mut Obj<'_>, f: &'static str| match o.duration(ctx, f) {
        Some(Duration::ZERO) => {
            ctx.err(o.at(f), "must be greater than 0s");
            None
        }
        x => x,
    };
    d.interval = dur(ctx, &mut o, "interval").unwrap_or(d.interval);
    d.base_ejection_time = dur(ctx, &mut o, "base_ejection_time").unwrap_or(d.base_ejection_time);
    // Unset, it is 300 s or the base time, the larger (Envoy's `DetectorConfig`).
    d.max_ejection_time = match dur(ctx, &mut o, "max_ejection_time") {
        Some(max) if max < d.base_ejection_time => {
            let msg = "outlier detector's max_ejection_time cannot be smaller than base_ejection_time";
            ctx.err(o.at("max_ejection_time"), msg);
            max
        }
        Some(max) => max,
        None => d.max_ejection_time.max(d.base_ejection_time),
    };
    d.max_ejection_time_jitter = o.duration(ctx, "max_ejection_time_jitter").unwrap_or_default();
    o.finish(ctx, &[]);
    d
}

/// `common_lb_config`: the panic threshold in percent (default 50), whether
/// `locality_weighted_lb_config` is set, and `consistent_hashing_lb_config` (read for
/// `policy` of a cluster of Envoy's type `cluster_type`).
pub(crate) fn common_lb_config(
    ctx: &mut Ctx,
    mut o: Obj<'_>,
    policy: LbPolicy,
    cluster_type: &str,
) -> (f64, bool, ConsistentHashing) {
    let mut threshold = 50.0;
    let by_locality = o.obj(ctx, "locality_weighted_lb_config").map(|l| l.finish(ctx, &[])).is_some();
    let hashing_at = o.at("consistent_hashing_lb_config");
    let hashing = o
        .obj(ctx, "consistent_hashing_lb_config")
        .map(|c| super::hash_lb::consistent_hashing(ctx, c, hashing_at, policy, cluster_type))
        .unwrap_or_default();
    if let Some(mut p) = o.obj(ctx, "healthy_panic_threshold") {
        if let Some((v, at)) = p.get("value") {
            match v.as_f64() {
                Some(x) if (0.0..=100.0).contains(&x) => threshold = x,
                _ => ctx.err(at, "expected a percentage in [0, 100]"),
            }
        }
        p.finish(ctx, &[]);
    }
    o.finish(ctx, &[]);
    (threshold, by_locality, hashing)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_payloads() {
        assert_eq!(super::decode_hex("0a0B"), Some(vec![10, 11]));
        assert_eq!(super::decode_hex("0"), None);
        assert_eq!(super::decode_hex("zz"), None);
    }
}
