//! Times `/stats`, `/stats?format=json` and `/stats/prometheus` rendering with 1,000 clusters
//! (the admin budget: under 50 ms). Every cluster is built as the proxy builds it (so it has
//! every stat a cluster registers, circuit-breaker gauges included), plus the status-code and
//! discovery counters traffic and reloads add, all with values. Run with `cargo bench --bench stats_render`; it
//! prints a table and asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::path::Path;

use legate::stats::render::{self, Filter};
use legate::stats::Store;
use legate::upstream::Cluster;

const CLUSTERS: usize = 1_000;

const COUNTERS: &[&str] = &[
    "upstream_cx_total",
    "upstream_cx_connect_fail",
    "upstream_cx_connect_timeout",
    "upstream_cx_destroy",
    "upstream_cx_rx_bytes_total",
    "upstream_cx_tx_bytes_total",
    "upstream_cx_none_healthy",
    "upstream_rq_total",
    "upstream_rq_completed",
    "upstream_rq_pending_total",
    "upstream_rq_pending_overflow",
    "upstream_rq_pending_failure_eject",
    "upstream_rq_timeout",
    "upstream_rq_per_try_timeout",
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_rq_rx_reset",
    "upstream_rq_tx_reset",
    "upstream_rq_200",
    "upstream_rq_2xx",
    "upstream_rq_503",
    "upstream_rq_5xx",
    "membership_change",
    "update_attempt",
    "update_success",
    "update_rejected",
];
const GAUGES: &[&str] = &[
    "upstream_cx_active",
    "upstream_rq_active",
    "upstream_rq_pending_active",
    "membership_total",
    "membership_healthy",
];
const HISTOGRAMS: &[&str] = &["upstream_cx_connect_ms", "upstream_cx_length_ms", "upstream_rq_time"];

/// The store, and the clusters whose handles keep their stats registered.
fn store() -> (Arc<Store>, Vec<Arc<Cluster>>) {
    let store = Store::new();
    let mut clusters = Vec::with_capacity(CLUSTERS);
    for c in 0..CLUSTERS {
        let cds = format!(
            "resources:\n- {{\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: service_{c}}}\n"
        );
        let config = match legate::config::parse_clusters(Path::new("cds.yaml"), cds.as_bytes()) {
            Ok(mut d) => d.resources.remove(0),
            Err(e) => panic!("cluster config: {e}"),
        };
        clusters.push(Cluster::build(config, &store));
    }
    for (name, _, is_counter) in store.entries() {
        if is_counter {
            store.counter(&name).add(name.len() as u64);
        } else {
            store.gauge(&name).set(name.len() as i64 % 5);
        }
    }
    for c in 0..CLUSTERS {
        for (i, name) in COUNTERS.iter().enumerate() {
            store.counter(&format!("cluster.service_{c}.{name}")).add((c * 7 + i) as u64);
        }
        for name in GAUGES {
            store.gauge(&format!("cluster.service_{c}.{name}")).set(c as i64 % 5);
        }
        for name in HISTOGRAMS {
            let h = store.histogram(&format!("cluster.service_{c}.{name}"));
            for v in 0..50u64 {
                h.record(v * v % 700);
            }
            h.flush();
        }
    }
    (store, clusters)
}

fn time(label: &str, rounds: u32, mut f: impl FnMut() -> usize) {
    let mut best = Duration::MAX;
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        bytes = f();
        best = best.min(t.elapsed());
    }
    println!("| {label} | {:.1} ms | {} KiB |", best.as_secs_f64() * 1000.0, bytes / 1024);
}

fn main() {
    let (s, _clusters) = store();
    let all = Filter::default();
    println!("| {CLUSTERS} clusters, best of 5 | time | output |\n|---|---|---|");
    time("/stats", 5, || render::text(&s, &all).len());
    time("/stats?format=json", 5, || render::json(&s, &all).len());
    time("/stats/prometheus", 5, || render::prometheus(&s, &all).len());
    let one = Filter { regex: regex::Regex::new("service_999\\.").ok(), used_only: false };
    time("/stats?filter=service_999\\.", 5, || render::text(&s, &one).len());
    if std::env::var_os("PARTS").is_some() {
        parts(&s);
    }
}

fn parts(s: &Store) {
    time("entries()", 5, || s.entries().len());
    time("histograms() + quantiles", 5, || {
        s.histograms().iter().map(|(_, h)| h.cumulative_quantiles().map_or(0, |q| q.len())).sum()
    });
    time("histograms() + buckets", 5, || s.histograms().iter().map(|(_, h)| h.buckets()[3] as usize).sum());
}
