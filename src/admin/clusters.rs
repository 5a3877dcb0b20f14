//! `/clusters` in Envoy's text and JSON formats, with each host's health flags
//! (`healthy`, `/failed_active_hc/pending_active_hc`, `/failed_outlier_check`, ...).

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
            let _ = writeln!(out, "{p}::success_rate::-1");
            let _ = writeln!(out, "{p}::local_origin_success_rate::-1");
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
                    serde_json::json!({
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
                    })
                })
                .collect();
            serde_json::json!({"name": name, "observability_name": c.config.stat_name(), "added_via_api": via_api(sources, name), "host_statuses": hosts})
        })
        .collect();
    serde_json::json!({"cluster_statuses": statuses}).to_string()
}
