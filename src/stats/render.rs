//! Renders the store the way Envoy's admin does: `/stats` text and JSON, and
//! `/stats/prometheus` with Envoy's default tag extraction.

use std::collections::BTreeMap;
use std::fmt::Write;

use regex::Regex;

use metrics_exporter_prometheus::formatting;

use super::histogram::{BUCKET_LABELS, QUANTILES};
use super::{Histogram, Store};

/// Which stats to show: Envoy's `?filter=` and `?usedonly`.
#[derive(Default)]
pub struct Filter {
    pub regex: Option<Regex>,
    pub used_only: bool,
}

impl Filter {
    fn keep(&self, name: &str, value: i64, is_counter: bool) -> bool {
        if self.used_only && is_counter && value == 0 {
            return false;
        }
        self.regex.as_ref().is_none_or(|r| r.is_match(name))
    }
}

/// `name: value` lines sorted by name; text readouts as `name: "value"` (Envoy's order:
/// text readouts first, then counters and gauges, then histograms with their quantiles as
/// `P0(interval,cumulative) ...`).
pub fn text(store: &Store, filter: &Filter) -> String {
    let mut out = String::new();
    for (name, value) in store.texts() {
        if filter.regex.as_ref().is_none_or(|r| r.is_match(&name)) && !(filter.used_only && value.is_empty()) {
            let _ = writeln!(out, "{name}: {value:?}");
        }
    }
    for (name, value, counter) in store.entries() {
        if filter.keep(&name, value, counter) {
            let _ = writeln!(out, "{name}: {value}");
        }
    }
    for (name, h) in histograms(store, filter) {
        let Some(cumulative) = h.cumulative_quantiles() else {
            let _ = writeln!(out, "{name}: No recorded values");
            continue;
        };
        let interval = h.interval_quantiles();
        let _ = write!(out, "{name}:");
        for (i, q) in QUANTILES.iter().enumerate() {
            let iv = interval.map_or_else(|| "nan".to_string(), |v| v[i].to_string());
            let _ = write!(out, " P{q}({iv},{})", cumulative[i]);
        }
        out.push('\n');
    }
    out
}

/// The histograms a filter keeps (`?usedonly` drops those with no values).
fn histograms(store: &Store, filter: &Filter) -> Vec<(String, Histogram)> {
    store
        .histograms()
        .into_iter()
        .filter(|(n, h)| !(filter.used_only && h.count() == 0) && filter.regex.as_ref().is_none_or(|r| r.is_match(n)))
        .collect()
}

/// `{"stats":[{"name":..,"value":..}, ..., {"histograms": {...}}]}` as Envoy's `?format=json`.
/// Written straight into one string: a `serde_json::Value` tree of 30,000 stats costs several
/// times the rendering budget.
pub fn json(store: &Store, filter: &Filter) -> String {
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("{\"stats\":[");
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
    };
    for (name, value) in store.texts() {
        if filter.regex.as_ref().is_none_or(|r| r.is_match(&name)) && !(filter.used_only && value.is_empty()) {
            sep(&mut out);
            out.push_str("{\"name\":");
            json_str(&mut out, &name);
            out.push_str(",\"value\":");
            json_str(&mut out, &value);
            out.push('}');
        }
    }
    for (name, value, counter) in store.entries() {
        if filter.keep(&name, value, counter) {
            sep(&mut out);
            out.push_str("{\"name\":");
            json_str(&mut out, &name);
            let _ = write!(out, ",\"value\":{value}}}");
        }
    }
    let hists = histograms(store, filter);
    if !hists.is_empty() {
        sep(&mut out);
        out.push_str("{\"histograms\":{\"supported_quantiles\":[");
        for (i, q) in QUANTILES.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}", number(*q));
        }
        out.push_str("],\"computed_quantiles\":[");
        for (i, (name, h)) in hists.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            json_str(&mut out, name);
            out.push_str(",\"values\":[");
            let (interval, cumulative) = (h.interval_quantiles(), h.cumulative_quantiles());
            for q in 0..QUANTILES.len() {
                if q > 0 {
                    out.push(',');
                }
                out.push_str("{\"interval\":");
                match interval {
                    Some(v) => out.push_str(&number(v[q])),
                    None => out.push_str("null"),
                }
                out.push_str(",\"cumulative\":");
                match cumulative {
                    Some(v) => out.push_str(&number(v[q])),
                    None => out.push_str("null"),
                }
                out.push('}');
            }
            out.push_str("]}");
        }
        out.push_str("]}}");
    }
    out.push_str("]}");
    out
}

/// A JSON string literal; stat names rarely need escaping, so the common case copies.
fn json_str(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::Value::from(s).to_string());
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// A quantile as Envoy's JSON prints it: whole values as integers (`0`, not `0.0`), others
/// in the shortest form that reads back the same.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        (v as i64).to_string()
    } else if v.is_finite() {
        v.to_string()
    } else {
        "null".to_string()
    }
}

/// One Prometheus family: its `# TYPE` and sample lines.
struct Family {
    kind: &'static str,
    lines: String,
}

/// Prometheus text exposition with Envoy's names and labels: counters and gauges, then
/// histograms (only those with values, as Envoy) with `_bucket{le=..}`, `_sum`, `_count`.
pub fn prometheus(store: &Store, filter: &Filter) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (name, value, counter) in store.entries() {
        if !filter.keep(&name, value, counter) {
            continue;
        }
        let (metric, labels) = extract_tags(&name);
        let kind = if counter { "counter" } else { "gauge" };
        let labels = label_text(&labels);
        let family = match families.get_mut(&metric) {
            Some(f) => f,
            None => families.entry(metric.clone()).or_insert(Family { kind, lines: String::new() }),
        };
        sample(&mut family.lines, &metric, "", &labels, None, value);
    }
    let mut hist_families: BTreeMap<String, Family> = BTreeMap::new();
    for (name, h) in histograms(store, filter) {
        let count = h.count();
        if count == 0 {
            continue;
        }
        let (metric, labels) = extract_tags(&name);
        let labels = label_text(&labels);
        let family =
            hist_families.entry(metric.clone()).or_insert_with(|| Family { kind: "histogram", lines: String::new() });
        for (bound, n) in BUCKET_LABELS.iter().zip(h.buckets()) {
            sample(&mut family.lines, &metric, "_bucket", &labels, Some(bound), n);
        }
        sample(&mut family.lines, &metric, "_bucket", &labels, Some("+Inf"), count);
        sample(&mut family.lines, &metric, "_sum", &labels, None, h.sum());
        sample(&mut family.lines, &metric, "_count", &labels, None, count);
    }
    let size = families.values().chain(hist_families.values()).map(|f| f.lines.len() + 64).sum();
    let mut out = String::with_capacity(size);
    for (metric, family) in families.iter().chain(hist_families.iter()) {
        formatting::write_type_line(&mut out, metric, None, None, family.kind);
        out.push_str(&family.lines);
    }
    out
}

/// `k="v",k2="v2"` with label values escaped as the exposition format wants.
fn label_text(labels: &[(&'static str, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        if v.bytes().any(|b| b == b'"' || b == b'\\' || b == b'\n') {
            out.push_str(&formatting::sanitize_label_value(v));
        } else {
            out.push_str(v);
        }
        out.push('"');
    }
    out
}

/// `metric{labels} value`, or `metric value` with no label (Envoy 1.40 writes `metric{} value`;
/// both are valid exposition, the short one is what metrics-exporter-prometheus and simpler
/// scrapers expect).
fn sample(out: &mut String, metric: &str, suffix: &str, labels: &str, le: Option<&str>, value: impl std::fmt::Display) {
    out.push_str(metric);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        out.push_str(labels);
        if let Some(le) = le {
            if !labels.is_empty() {
                out.push(',');
            }
            out.push_str("le=\"");
            out.push_str(le);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Envoy's default tag extractors, for the names legate emits: response code (class),
/// cluster name, connection manager prefix, RDS route config, listener address.
/// Returns the Prometheus metric name (`envoy_` + the name without tag values) and labels
/// in Envoy's order (response code first).
pub fn extract_tags(name: &str) -> (String, Vec<(&'static str, String)>) {
    let mut labels: Vec<(&'static str, String)> = Vec::new();
    let mut rest = name.to_string();

    // `..._rq_200` -> `..._rq` + code; `..._rq_2xx` -> `..._rq_xx` + class.
    if let Some(pos) = rest.rfind("_rq_") {
        let tail = &rest[pos + 4..];
        let b = tail.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_digit) {
            labels.push(("envoy_response_code", tail.to_string()));
            rest.truncate(pos + 3);
        } else if b.len() == 3 && b[0].is_ascii_digit() && &b[1..] == b"xx" {
            labels.push(("envoy_response_code_class", (b[0] as char).to_string()));
            rest.truncate(pos + 4);
            rest.push_str("xx");
        }
    }

    let mut out = String::from("envoy_");
    if let Some(after) = rest.strip_prefix("cluster.") {
        if let Some((cluster, tail)) = after.split_once('.') {
            labels.push(("envoy_cluster_name", cluster.to_string()));
            out.push_str("cluster.");
            out.push_str(tail);
        } else {
            out.push_str(&rest);
        }
    } else if let Some(after) = rest.strip_prefix("http.") {
        if let Some((prefix, tail)) = after.split_once('.') {
            out.push_str("http.");
            if let Some(rds) = tail.strip_prefix("rds.") {
                if let Some((rc, t)) = rds.split_once('.') {
                    labels.push(("envoy_rds_route_config", rc.to_string()));
                    out.push_str("rds.");
                    out.push_str(t);
                } else {
                    out.push_str(tail);
                }
            } else {
                out.push_str(tail);
            }
            labels.push(("envoy_http_conn_manager_prefix", prefix.to_string()));
        } else {
            out.push_str(&rest);
        }
    } else if let Some(after) = rest.strip_prefix("listener.") {
        let run = after.bytes().take_while(|c| c.is_ascii_digit() || *c == b'.' || *c == b'_').count();
        match after[..run].rfind('.') {
            Some(dot) if dot > 0 => {
                let tail = &after[dot + 1..];
                out.push_str("listener.");
                // `listener.<address>.http.<prefix>.*`: the connection manager's prefix is a
                // tag too, named before the address (Envoy's order).
                match tail.strip_prefix("http.").and_then(|t| t.split_once('.')) {
                    Some((prefix, t)) => {
                        labels.push(("envoy_http_conn_manager_prefix", prefix.to_string()));
                        out.push_str("http.");
                        out.push_str(t);
                    }
                    None => out.push_str(tail),
                }
                labels.push(("envoy_listener_address", after[..dot].to_string()));
            }
            _ => out.push_str(&rest),
        }
    } else if let Some((prefix, tail)) = rest.strip_prefix("tcp.").and_then(|a| a.split_once('.')) {
        labels.push(("envoy_tcp_prefix", prefix.to_string()));
        out.push_str("tcp.");
        out.push_str(tail);
    } else {
        out.push_str(&rest);
    }
    if out.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
        // The common case: only the dots need replacing, and that keeps the length.
        (out.replace('.', "_"), labels)
    } else {
        (formatting::sanitize_metric_name(&out), labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_envoy_default_tags() {
        let (m, l) = extract_tags("cluster.a_svc.upstream_rq_200");
        assert_eq!(m, "envoy_cluster_upstream_rq");
        assert_eq!(l, vec![("envoy_response_code", "200".into()), ("envoy_cluster_name", "a_svc".into())]);
        let (m, l) = extract_tags("cluster.a_svc.upstream_rq_2xx");
        assert_eq!(m, "envoy_cluster_upstream_rq_xx");
        assert_eq!(l[0], ("envoy_response_code_class", "2".into()));
        let (m, l) = extract_tags("http.ingress.downstream_rq_total");
        assert_eq!(m, "envoy_http_downstream_rq_total");
        assert_eq!(l, vec![("envoy_http_conn_manager_prefix", "ingress".into())]);
        let (m, l) = extract_tags("listener.127.0.0.1_10000.downstream_cx_total");
        assert_eq!(m, "envoy_listener_downstream_cx_total");
        assert_eq!(l, vec![("envoy_listener_address", "127.0.0.1_10000".into())]);
        let (n, l) = extract_tags("listener.127.0.0.1_10000.http.ingress.downstream_rq_5xx");
        assert_eq!(n, "envoy_listener_http_downstream_rq_xx");
        let want = [
            ("envoy_response_code_class", "5"),
            ("envoy_http_conn_manager_prefix", "ingress"),
            ("envoy_listener_address", "127.0.0.1_10000"),
        ];
        assert_eq!(l, want.map(|(k, v)| (k, v.to_string())).to_vec());
        let (n, l) = extract_tags("tcp.db.downstream_cx_total");
        assert_eq!((n.as_str(), l), ("envoy_tcp_downstream_cx_total", vec![("envoy_tcp_prefix", "db".into())]));
        let (m, l) = extract_tags("cluster_manager.active_clusters");
        assert_eq!(m, "envoy_cluster_manager_active_clusters");
        assert!(l.is_empty());
    }

    #[test]
    fn prometheus_groups_by_family() {
        let s = Store::new();
        s.counter("cluster.a.upstream_rq_total").add(3);
        s.counter("cluster.b.upstream_rq_total").inc();
        s.gauge("cluster.a.membership_healthy").set(1);
        let out = prometheus(&s, &Filter::default());
        assert!(out.contains("# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total{envoy_cluster_name=\"a\"} 3\nenvoy_cluster_upstream_rq_total{envoy_cluster_name=\"b\"} 1\n"));
        assert!(out.contains("# TYPE envoy_cluster_membership_healthy gauge\n"));
    }
}
