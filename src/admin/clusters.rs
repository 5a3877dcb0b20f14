//! `/clusters` in Envoy's text and JSON formats, with each host's health flags
//! (`healthy`, `/failed_active_hc/pending_active_hc`, `/failed_outlier_check`, ...) and, for
//! a cluster with outlier detection, the last sweep's success rates: the cluster's average
//! and ejection threshold (text `outlier::*` lines, printed `%g`; JSON
//! `success_rate_ejection_threshold` when above 0) and each host's (`success_rate`, -1 in
//! text and absent in JSON when not computed), external and local origin.

use std::fmt::Write;

use crate::reload::sources::Sources;
use crate::snapshot::Snapshot;

/// Whether a cluster came from CDS (Envoy's `added_via_api`).
fn via_api(sources: &Sources, name: &str) -> bool {
    sources.cds.as_ref().is_some_and(|c| c.value.iter().any(|c| c.name == name))
}

pub fn text(snap: &Snapshot, sources: &Sources) -> String {
    let mut names: Vec<&String> = snap.clusters.keys().collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        let c = &snap.clusters[name];
        let cb = c.config.circuit_breakers;
        let _ = writeln!(out, "{name}::observability_name::{}", c.config.stat_name());
        if let Some([avg, threshold, local_avg, local_threshold]) = c.outlier_numbers() {
            let _ = writeln!(out, "{name}::outlier::success_rate_average::{}", g(avg));
            let _ = writeln!(out, "{name}::outlier::success_rate_ejection_threshold::{}", g(threshold));
            let _ = writeln!(out, "{name}::outlier::local_origin_success_rate_average::{}", g(local_avg));
            let _ =
                writeln!(out, "{name}::outlier::local_origin_success_rate_ejection_threshold::{}", g(local_threshold));
        }
        for (prio, cb) in [("default_priority", cb.default), ("high_priority", cb.high)] {
            let _ = writeln!(out, "{name}::{prio}::max_connections::{}", cb.max_connections);
            let _ = writeln!(out, "{name}::{prio}::max_pending_requests::{}", cb.max_pending_requests);
            let _ = writeln!(out, "{name}::{prio}::max_requests::{}", cb.max_requests);
            let _ = writeln!(out, "{name}::{prio}::max_retries::{}", cb.max_retries);
        }
        let _ = writeln!(out, "{name}::added_via_api::{}", via_api(sources, name));
        for h in c.hosts.load().all.iter() {
            let p = format!("{name}::{}", h.addr);
            let s = &h.stats;
            let _ = writeln!(out, "{p}::cx_active::{}", h.pool_stats().1);
            let _ = writeln!(out, "{p}::cx_connect_fail::{}", h.pool_stats().2);
            let _ = writeln!(out, "{p}::cx_total::{}", h.pool_stats().0);
            let _ = writeln!(out, "{p}::rq_active::{}", s.rq_active.value());
            let _ = writeln!(out, "{p}::rq_error::{}", s.rq_error.value());
            let _ = writeln!(out, "{p}::rq_pending_active::0");
            let _ = writeln!(out, "{p}::rq_success::{}", s.rq_success.value());
            let _ = writeln!(out, "{p}::rq_timeout::{}", s.rq_timeout.value());
            let _ = writeln!(out, "{p}::rq_total::{}", s.rq_total.value());
            let _ = writeln!(out, "{p}::hostname::{}", h.hostname.as_deref().unwrap_or(""));
            let flags = crate::upstream::health::flags_text(h.health.flags());
            let _ = writeln!(out, "{p}::health_flags::{flags}");
            let _ = writeln!(out, "{p}::weight::{}", h.weight);
            let _ = writeln!(out, "{p}::region::{}", h.locality.region);
            let _ = writeln!(out, "{p}::zone::{}", h.locality.zone);
            let _ = writeln!(out, "{p}::sub_zone::{}", h.locality.sub_zone);
            let _ = writeln!(out, "{p}::canary::false");
            let _ = writeln!(out, "{p}::priority::{}", h.priority);
            let (rate, local) = c.outlier_rates(h);
            let _ = writeln!(out, "{p}::success_rate::{rate}");
            let _ = writeln!(out, "{p}::local_origin_success_rate::{local}");
        }
    }
    out
}

pub fn json(snap: &Snapshot, sources: &Sources) -> String {
    let mut names: Vec<&String> = snap.clusters.keys().collect();
    names.sort();
    let statuses: Vec<serde_json::Value> = names
        .into_iter()
        .map(|name| {
            let c = &snap.clusters[name];
            let hosts: Vec<serde_json::Value> = c
                .hosts
                .load()
                .all
                .iter()
                .map(|h| {
                    let (rate, local) = c.outlier_rates(h);
                    let mut host = serde_json::json!({
                        "address": {"socket_address": {"address": h.addr.ip().to_string(), "port_value": h.addr.port()}},
                        "stats": [
                            {"name": "cx_total", "value": h.pool_stats().0.to_string()},
                            {"name": "rq_total", "value": h.stats.rq_total.value().to_string()},
                            {"name": "rq_error", "value": h.stats.rq_error.value().to_string()},
                            {"name": "rq_success", "value": h.stats.rq_success.value().to_string()},
                            {"type": "GAUGE", "name": "rq_active", "value": h.stats.rq_active.value().to_string()},
                        ],
                        "health_status": crate::upstream::health::flags_json(h.health.flags()),
                        "weight": h.weight,
                        "hostname": h.hostname.clone().unwrap_or_default(),
                        "priority": h.priority,
                    });
                    // Envoy leaves a rate out when it was not computed.
                    if rate >= 0.0 {
                        host["success_rate"] = serde_json::json!({"value": number(rate)});
                    }
                    if local >= 0.0 {
                        host["local_origin_success_rate"] = serde_json::json!({"value": number(local)});
                    }
                    host
                })
                .collect();
            let mut status = serde_json::json!({"name": name, "observability_name": c.config.stat_name(), "added_via_api": via_api(sources, name), "host_statuses": hosts});
            // Envoy shows a threshold above 0 only.
            if let Some([_, threshold, _, local_threshold]) = c.outlier_numbers() {
                if threshold > 0.0 {
                    status["success_rate_ejection_threshold"] = serde_json::json!({"value": number(threshold)});
                }
                if local_threshold > 0.0 {
                    status["local_origin_success_rate_ejection_threshold"] =
                        serde_json::json!({"value": number(local_threshold)});
                }
            }
            status
        })
        .collect();
    serde_json::json!({"cluster_statuses": statuses}).to_string()
}

/// A double as protobuf's JSON writes it: a whole number without a fraction.
fn number(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        serde_json::json!(v as i64)
    } else {
        serde_json::json!(v)
    }
}

/// C's `%g` (fmt's `{:g}`, as Envoy prints the cluster's rates): six significant digits,
/// trailing zeros dropped, an exponent below 1e-4 and from 1e6.
fn g(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return v.to_string();
    }
    let sci = format!("{v:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exp.abs());
    }
    let decimals = (5 - exp).max(0) as usize;
    trim(&format!("{v:.decimals$}")).to_string()
}

fn trim(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn g_prints_as_c_does() {
        for (v, want) in [
            (-1.0, "-1"),
            (90.0, "90"),
            (52.000000000000014, "52"),
            (33.333333333333336, "33.3333"),
            (99.99999, "100"),
            (0.5, "0.5"),
            (0.0001234567, "0.000123457"),
            (0.00001234567, "1.23457e-05"),
            (-123456789.0, "-1.23457e+08"),
            (0.0, "0"),
        ] {
            assert_eq!(super::g(v), want, "{v}");
        }
        assert_eq!(super::number(50.0), serde_json::json!(50));
        assert_eq!(super::number(52.5), serde_json::json!(52.5));
    }
}
