//! Health checks against the fake upstream in paused time.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::upstream::fake::{self, FakeUpstream, Step};
use crate::upstream::health::FAILED_ACTIVE_HC;

fn answer(status: u16) -> Step {
    Step::Answer { status, after: Duration::ZERO }
}

const HC: &str = "health_checks: [{timeout: 1s, interval: 5s, no_traffic_interval: 5s, unhealthy_threshold: 2, \
                  healthy_threshold: 2, http_health_check: {path: /healthz}}]";

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn thresholds_decide_after_the_first_result() {
    // First check 200 (healthy at once), then 503 503 (retriable: threshold 2), 200 200.
    let up = FakeUpstream::new([]);
    let yaml = format!("{HC}, lb_policy: ROUND_ROBIN");
    let yaml = yaml.replace(
        "http_health_check: {path: /healthz}",
        "http_health_check: {path: /healthz, retriable_statuses: [{start: 503, end: 504}]}",
    );
    let (c, store) = fake::cluster(&yaml, 1, &up);
    let h = Arc::clone(&c.hosts.load().all[0]);
    h.health.set(FAILED_ACTIVE_HC | PENDING_ACTIVE_HC, true);
    let up_script = |s: &[u16]| {
        for &x in s {
            up.push(answer(x));
        }
    };
    up_script(&[200, 503, 503, 200, 200]);
    let flags = || h.health.flags() & FAILED_ACTIVE_HC != 0;
    settle().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!flags(), "the first success makes it healthy at once");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!flags(), "one retriable failure of two");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(flags(), "the second one fails it");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(flags(), "one success of two");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!flags(), "two successes bring it back");
    assert_eq!(store.counter("cluster.c.health_check.attempt").value(), 5);
    assert_eq!(store.counter("cluster.c.health_check.failure").value(), 2);
    let seen = up.seen();
    assert_eq!(seen[0].headers.get("host").map(|v| v.as_bytes()), Some(&b"c"[..]), "host is the cluster's name");
    assert_eq!(seen[0].headers.get("user-agent").map(|v| v.as_bytes()), Some(&b"Envoy/HC"[..]));
    assert_eq!(up.connections(), 1, "one connection reused");
}

#[tokio::test(start_paused = true)]
async fn a_bad_status_fails_at_once_and_a_timeout_counts_as_network() {
    let up = FakeUpstream::new([answer(200), answer(500), Step::Hang, Step::Hang]);
    let (c, store) = fake::cluster(HC, 1, &up);
    let h = Arc::clone(&c.hosts.load().all[0]);
    let failed = || h.health.flags() & FAILED_ACTIVE_HC != 0;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!failed());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(failed(), "500 is not retriable: unhealthy at once");
    assert_eq!(store.counter("cluster.c.health_check.network_failure").value(), 0);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(store.counter("cluster.c.health_check.network_failure").value(), 1, "the hang timed out after 1 s");
    assert_ne!(h.health.flags() & super::ACTIVE_HC_TIMEOUT, 0);
}

/// When each request the fake upstream saw arrived, in seconds from `t0`.
fn instants(up: &FakeUpstream, t0: Instant) -> Vec<u64> {
    up.seen().iter().map(|s| (s.at - t0).as_secs()).collect()
}

const INTERVALS: &str = "health_checks: [{timeout: 1s, interval: 1s, no_traffic_interval: 7s, \
                         no_traffic_healthy_interval: 11s, unhealthy_threshold: 1, healthy_threshold: 1, \
                         http_health_check: {path: /healthz}}]";

#[tokio::test(start_paused = true)]
async fn without_traffic_healthy_hosts_wait_the_healthy_interval() {
    let t0 = Instant::now();
    let up = FakeUpstream::new([]);
    let (c, store) = fake::cluster(INTERVALS, 1, &up);
    tokio::time::sleep(Duration::from_millis(23_500)).await;
    assert_eq!(instants(&up, t0), [0, 11, 22], "no_traffic_healthy_interval between successes");
    // The checks' own connection is not traffic: Envoy does not count it either.
    assert_eq!(store.counter("cluster.c.upstream_cx_total").value(), 0);
    // The cluster's first connection of its own: from now on `interval`.
    c.stats.conn.cx_total.inc();
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(instants(&up, t0), [0, 11, 22, 33, 34, 35]);
}

#[tokio::test(start_paused = true)]
async fn without_traffic_failing_hosts_wait_the_no_traffic_interval() {
    let t0 = Instant::now();
    let up = FakeUpstream::new((0..4).map(|_| answer(503)));
    let (_c, _store) = fake::cluster(INTERVALS, 1, &up);
    tokio::time::sleep(Duration::from_millis(21_500)).await;
    assert_eq!(instants(&up, t0), [0, 7, 14, 21]);
}

#[tokio::test(start_paused = true)]
async fn edge_intervals_apply_while_a_change_is_pending() {
    // Envoy's example: an unhealthy host with healthy_threshold 3 is checked after
    // unhealthy_interval following a failure, healthy_edge_interval while successes add up,
    // and interval once it is healthy.
    let t0 = Instant::now();
    let yaml = "health_checks: [{timeout: 1s, interval: 10s, unhealthy_interval: 4s, healthy_edge_interval: 2s, \
                unhealthy_threshold: 1, healthy_threshold: 3, http_health_check: {path: /healthz}}]";
    let up = FakeUpstream::new([answer(503), answer(200), answer(200), answer(200), answer(200)]);
    let (c, _store) = fake::cluster(yaml, 1, &up);
    c.stats.conn.cx_total.inc();
    let h = Arc::clone(&c.hosts.load().all[0]);
    // Failed and pending, as a new host of a checked cluster starts.
    h.health.set(FAILED_ACTIVE_HC | PENDING_ACTIVE_HC, true);
    tokio::time::sleep(Duration::from_millis(18_500)).await;
    assert_eq!(instants(&up, t0), [0, 4, 6, 8, 18]);
    assert_eq!(h.health.flags() & FAILED_ACTIVE_HC, 0, "three successes made it healthy");
}
