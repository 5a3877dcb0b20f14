//! The detector against the fake upstream's cluster in paused time: consecutive runs, the
//! interval's sweep (the cluster's own task, as in production), rates, the split of local
//! origin errors, jitter and backoff, and active checks bringing hosts back.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::stats::Store;
use crate::upstream::fake;
use crate::upstream::health::FAILED_OUTLIER_CHECK;

const OD: &str = "outlier_detection: {consecutive_5xx: 2, consecutive_gateway_failure: 2, \
                  enforcing_consecutive_gateway_failure: 100, interval: 10s, base_ejection_time: 30s, \
                  max_ejection_percent: 50}";

#[tokio::test(start_paused = true)]
async fn consecutive_5xx_eject_until_the_sweep_after_the_ejection_time() {
    let up = fake::FakeUpstream::new([]);
    let (c, store) = fake::cluster(OD, 2, &up);
    let h = Arc::clone(&c.hosts.load().all[0]);
    c.outlier_result(&h, 500);
    c.outlier_result(&h, 200);
    c.outlier_result(&h, 500);
    assert_eq!(h.health.flags() & FAILED_OUTLIER_CHECK, 0, "a success in between resets the count");
    c.outlier_result(&h, 500);
    assert_ne!(h.health.flags() & FAILED_OUTLIER_CHECK, 0, "two in a row eject");
    assert_eq!(store.counter("cluster.c.outlier_detection.ejections_enforced_consecutive_5xx").value(), 1);
    assert_eq!(store.gauge("cluster.c.outlier_detection.ejections_active").value(), 1);
    for _ in 0..10 {
        assert!(Arc::ptr_eq(&c.choose().unwrap_or_else(|| panic!("no host")), &c.hosts.load().all[1]));
    }
    let od = c.config.outlier_detection.clone().unwrap_or_default();
    tokio::time::advance(Duration::from_secs(20)).await;
    sweep(&c, &od, Instant::now());
    assert_ne!(h.health.flags() & FAILED_OUTLIER_CHECK, 0, "still ejected after 20 s");
    tokio::time::advance(Duration::from_secs(10)).await;
    sweep(&c, &od, Instant::now());
    assert_eq!(h.health.flags() & FAILED_OUTLIER_CHECK, 0, "back after 30 s");
    assert_eq!(store.gauge("cluster.c.outlier_detection.ejections_active").value(), 0);
    // Ejected again at once: now for twice the base time.
    c.outlier_result(&h, 503);
    c.outlier_result(&h, 503);
    tokio::time::advance(Duration::from_secs(30)).await;
    sweep(&c, &od, Instant::now());
    assert_ne!(h.health.flags() & FAILED_OUTLIER_CHECK, 0, "the second ejection lasts 60 s");
}

#[tokio::test(start_paused = true)]
async fn max_ejection_percent_overflows() {
    let up = fake::FakeUpstream::new([]);
    let (c, store) = fake::cluster(OD, 2, &up);
    let (a, b) = (Arc::clone(&c.hosts.load().all[0]), Arc::clone(&c.hosts.load().all[1]));
    for h in [&a, &a, &b, &b] {
        c.outlier_result(h, 502);
    }
    assert_ne!(a.health.flags() & FAILED_OUTLIER_CHECK, 0);
    assert_eq!(b.health.flags() & FAILED_OUTLIER_CHECK, 0, "a second ejection would be 100% > 50%");
    assert_eq!(store.counter("cluster.c.outlier_detection.ejections_overflow").value(), 2, "5xx and gateway");
}

fn stat(store: &Store, name: &str) -> i64 {
    store.value(&format!("cluster.c.outlier_detection.{name}")).unwrap_or(0)
}

fn out(h: &Host) -> bool {
    h.health.flags() & FAILED_OUTLIER_CHECK != 0
}

/// Charges `n` answers to `h`, `ok` of them 200 and the rest 500.
fn answers(c: &Cluster, h: &Host, n: usize, ok: usize) {
    for i in 0..n {
        c.outlier_result(h, if i < ok { 200 } else { 500 });
    }
}

/// Past the cluster task's next sweep: tests start 1 ms after the cluster, whose task
/// sweeps every `interval` from its start.
async fn next_sweep(interval: u64) {
    tokio::time::sleep(Duration::from_secs(interval)).await;
}

const RATES: &str = "outlier_detection: {interval: 10s, base_ejection_time: 30s, max_ejection_percent: 50, \
                     consecutive_5xx: 1000}";

#[tokio::test(start_paused = true)]
async fn success_rate_ejects_the_host_under_the_threshold() {
    let up = fake::FakeUpstream::new([]);
    let (c, store) = fake::cluster(RATES, 5, &up);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let hosts = c.hosts.load_full();
    answers(&c, &hosts.all[0], 100, 50);
    for h in &hosts.all[1..] {
        answers(&c, h, 100, 100);
    }
    next_sweep(10).await;
    // Envoy's worked example: mean 90, stdev 20, threshold 90 - 1.9 * 20 = 52.
    assert!(out(&hosts.all[0]), "50% < 52%");
    assert!(hosts.all[1..].iter().all(|h| !out(h)));
    let [mean, threshold, local_mean, local_threshold] = c.health.outlier.numbers();
    assert_eq!(mean, 90.0);
    assert!((threshold - 52.0).abs() < 1e-9);
    assert_eq!((local_mean, local_threshold), (-1.0, -1.0));
    assert_eq!(host_rates(&hosts.all[0]), (50.0, -1.0));
    assert_eq!(host_rates(&hosts.all[1]), (100.0, -1.0));
    for (name, n) in [
        ("ejections_detected_success_rate", 1),
        ("ejections_enforced_success_rate", 1),
        ("ejections_success_rate", 1),
        ("ejections_total", 1),
        ("ejections_enforced_total", 1),
        ("ejections_active", 1),
        ("ejections_detected_failure_percentage", 0),
    ] {
        assert_eq!(stat(&store, name), n, "{name}");
    }
    // No traffic in the next interval: nothing computed, rates back to -1.
    next_sweep(10).await;
    assert_eq!(c.health.outlier.numbers()[0], -1.0);
    assert_eq!(host_rates(&hosts.all[1]), (-1.0, -1.0));
    // Back after the base time from the ejection (the sweep at 10 s).
    next_sweep(20).await;
    assert!(!out(&hosts.all[0]));
    assert_eq!(stat(&store, "ejections_active"), 0);
}

#[tokio::test(start_paused = true)]
async fn success_rate_needs_its_volume_and_minimum_hosts() {
    let up = fake::FakeUpstream::new([]);
    let (c, store) = fake::cluster(RATES, 5, &up);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let hosts = c.hosts.load_full();
    answers(&c, &hosts.all[0], 100, 0);
    for h in &hosts.all[1..4] {
        answers(&c, h, 100, 100);
    }
    answers(&c, &hosts.all[4], 99, 99);
    next_sweep(10).await;
    assert!(hosts.all.iter().all(|h| !out(h)), "four hosts with 100 requests: no success rate");
    assert_eq!(stat(&store, "ejections_detected_success_rate"), 0);
    // The failure percentage (volume 50) saw the host, but enforces 0% by default.
    assert_eq!(stat(&store, "ejections_detected_failure_percentage"), 1);
    assert_eq!(stat(&store, "ejections_enforced_failure_percentage"), 0);
    assert_eq!(stat(&store, "ejections_total"), 0, "not counted for the failure percentage");
    assert_eq!(stat(&store, "ejections_enforced_total"), 0);
    assert_eq!(host_rates(&hosts.all[4]).0, 100.0, "shown: over the failure percentage's volume");
}

#[tokio::test(start_paused = true)]
async fn failure_percentage_ejects_when_enforced() {
    let up = fake::FakeUpstream::new([]);
    let yaml = RATES.replace(
        "consecutive_5xx: 1000",
        "consecutive_5xx: 1000, enforcing_failure_percentage: 100, \
                              failure_percentage_threshold: 60, success_rate_request_volume: 1000",
    );
    let (c, store) = fake::cluster(&yaml, 5, &up);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let hosts = c.hosts.load_full();
    answers(&c, &hosts.all[0], 50, 20);
    answers(&c, &hosts.all[1], 50, 21);
    for h in &hosts.all[2..] {
        answers(&c, h, 50, 50);
    }
    next_sweep(10).await;
    assert!(out(&hosts.all[0]), "60% failures reach the threshold");
    assert!(!out(&hosts.all[1]), "58% do not");
    assert_eq!(stat(&store, "ejections_enforced_failure_percentage"), 1);
    assert_eq!(stat(&store, "ejections_enforced_total"), 1);
    assert_eq!(stat(&store, "ejections_total"), 0);
    assert_eq!(c.health.outlier.numbers()[0], -1.0, "no host had the success rate's volume");
}

#[tokio::test(start_paused = true)]
async fn split_counts_local_origin_failures_apart() {
    let up = fake::FakeUpstream::new([]);
    let yaml = "outlier_detection: {split_external_local_origin_errors: true, consecutive_local_origin_failure: 3, \
                consecutive_5xx: 3, max_ejection_percent: 100, interval: 10s}";
    let (c, store) = fake::cluster(yaml, 2, &up);
    let h = Arc::clone(&c.hosts.load().all[0]);
    c.outlier_local(&h, Local::ConnectFailed);
    c.outlier_local(&h, Local::Timeout);
    c.outlier_local(&h, Local::ConnectSuccess);
    c.outlier_local(&h, Local::ConnectFailed);
    c.outlier_local(&h, Local::ConnectFailed);
    assert!(!out(&h), "a connect success broke the run");
    c.outlier_local(&h, Local::ConnectFailed);
    assert!(out(&h));
    assert_eq!(stat(&store, "ejections_detected_consecutive_local_origin_failure"), 1);
    assert_eq!(stat(&store, "ejections_enforced_consecutive_local_origin_failure"), 1);
    assert_eq!(stat(&store, "ejections_detected_consecutive_5xx"), 0, "not 5xx under the split");
    assert_eq!(stat(&store, "ejections_total"), 0);
    assert_eq!(h.health.outlier.external.take(), (0, 0));
    assert_eq!(h.health.outlier.local.take(), (6, 1));
    // Without the split a refused connect is a 503.
    let (c, store) = fake::cluster("outlier_detection: {consecutive_5xx: 2, max_ejection_percent: 100}", 2, &up);
    let h = Arc::clone(&c.hosts.load().all[0]);
    c.outlier_local(&h, Local::ConnectSuccess);
    c.outlier_local(&h, Local::ConnectFailed);
    c.outlier_local(&h, Local::ConnectFailed);
    assert!(out(&h));
    assert_eq!(stat(&store, "ejections_enforced_consecutive_5xx"), 1);
    assert_eq!(h.health.outlier.external.take(), (2, 0), "a connect success is no answer");
    // tcp_proxy's connect is its whole result: a 200 that breaks the run.
    let h = Arc::clone(&c.hosts.load().all[1]);
    c.outlier_local(&h, Local::ConnectFailed);
    c.outlier_local(&h, Local::ConnectSuccessFinal);
    c.outlier_local(&h, Local::ConnectFailed);
    assert!(!out(&h));
    assert_eq!(h.health.outlier.external.take(), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn local_origin_success_rate_has_its_own_stats() {
    let up = fake::FakeUpstream::new([]);
    let yaml = RATES.replace(
        "consecutive_5xx: 1000",
        "split_external_local_origin_errors: true, \
                              consecutive_local_origin_failure: 1000",
    );
    let (c, store) = fake::cluster(&yaml, 5, &up);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let hosts = c.hosts.load_full();
    for (i, h) in hosts.all.iter().enumerate() {
        for n in 0..100 {
            let failed = i == 0 && n % 2 == 0;
            c.outlier_local(h, if failed { Local::ConnectFailed } else { Local::ConnectSuccess });
        }
    }
    next_sweep(10).await;
    assert!(out(&hosts.all[0]));
    assert_eq!(host_rates(&hosts.all[1]), (-1.0, 100.0));
    assert_eq!(c.health.outlier.numbers()[2], 90.0);
    assert_eq!(stat(&store, "ejections_detected_local_origin_success_rate"), 1);
    assert_eq!(stat(&store, "ejections_enforced_local_origin_success_rate"), 1);
    assert_eq!(stat(&store, "ejections_success_rate"), 1, "the deprecated counter counts both origins");
    assert_eq!(stat(&store, "ejections_total"), 0, "but the deprecated total only the external one");
    assert_eq!(stat(&store, "ejections_detected_success_rate"), 0);
}

#[tokio::test(start_paused = true)]
async fn jitter_lengthens_and_backoff_decays() {
    let up = fake::FakeUpstream::new([]);
    let yaml = "outlier_detection: {consecutive_5xx: 1, interval: 1s, base_ejection_time: 10s, \
                max_ejection_time_jitter: 4s, max_ejection_percent: 100}";
    let (c, _store) = fake::cluster(yaml, 2, &up);
    let h = Arc::clone(&c.hosts.load().all[0]);
    c.outlier_result(&h, 500);
    let jitter = h.health.outlier.ejection().jitter;
    assert!(jitter <= Duration::from_secs(4), "{jitter:?}");
    let t0 = Instant::now();
    let mut back = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !out(&h) {
            back = Some(t0.elapsed());
            break;
        }
    }
    let back = back.unwrap_or_else(|| panic!("never back"));
    assert!(back >= Duration::from_secs(10) + jitter, "{back:?} {jitter:?}");
    assert!(back <= Duration::from_secs(12) + jitter, "{back:?} {jitter:?}");
    assert_eq!(h.health.outlier.ejection().backoff, 1);
    // Back for an interval: the next sweeps lower the backoff to 0; the next ejection is
    // the base time again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.health.outlier.ejection().backoff, 0);
    c.outlier_result(&h, 500);
    assert_eq!(h.health.outlier.ejection().backoff, 1);
    assert_eq!(h.health.outlier.ejection().count, 2);
}

#[tokio::test(start_paused = true)]
async fn always_eject_one_host_overrides_the_percentage() {
    let up = fake::FakeUpstream::new([]);
    let yaml = "outlier_detection: {consecutive_5xx: 1, always_eject_one_host: true}";
    let (c, store) = fake::cluster(yaml, 3, &up);
    let hosts = c.hosts.load_full();
    c.outlier_result(&hosts.all[0], 500);
    c.outlier_result(&hosts.all[1], 500);
    assert!(out(&hosts.all[0]), "33% > 10%, but one host may go");
    assert!(!out(&hosts.all[1]));
    assert_eq!(stat(&store, "ejections_overflow"), 1);
    assert_eq!(stat(&store, "ejections_detected_consecutive_5xx"), 2);
    assert_eq!(stat(&store, "ejections_consecutive_5xx"), 2, "counted on detection, overflow or not");
    assert_eq!(stat(&store, "ejections_total"), 1, "not on overflow");
}

#[tokio::test(start_paused = true)]
async fn enforcing_zero_detects_without_ejecting() {
    let up = fake::FakeUpstream::new([]);
    let yaml = "outlier_detection: {consecutive_5xx: 2, consecutive_gateway_failure: 2, enforcing_consecutive_5xx: 0, \
                max_ejection_percent: 100}";
    let (c, store) = fake::cluster(yaml, 2, &up);
    let h = Arc::clone(&c.hosts.load().all[0]);
    c.outlier_result(&h, 503);
    c.outlier_result(&h, 503);
    assert!(!out(&h));
    assert_eq!(stat(&store, "ejections_detected_consecutive_gateway_failure"), 1);
    assert_eq!(stat(&store, "ejections_enforced_consecutive_gateway_failure"), 0);
    assert_eq!(stat(&store, "ejections_detected_consecutive_5xx"), 1);
    assert_eq!(stat(&store, "ejections_consecutive_5xx"), 1);
    assert_eq!(stat(&store, "ejections_total"), 1, "the 5xx detection, allowed, not enforced");
    assert_eq!(stat(&store, "ejections_enforced_total"), 0);
}

const HC_OD: &str = "health_checks: [{timeout: 1s, interval: 5s, no_traffic_interval: 5s, unhealthy_threshold: 2, \
                     healthy_threshold: 1, http_health_check: {path: /healthz}}], \
                     outlier_detection: {consecutive_5xx: 1, max_ejection_percent: 100, interval: 100s, \
                     base_ejection_time: 100s}";

#[tokio::test(start_paused = true)]
async fn a_passing_active_check_brings_the_host_back() {
    for uneject in [true, false] {
        let up = fake::FakeUpstream::new([]);
        let yaml = HC_OD.replace(
            "interval: 100s",
            &format!("interval: 100s, successful_active_health_check_uneject_host: {uneject}"),
        );
        let (c, store) = fake::cluster(&yaml, 1, &up);
        let h = Arc::clone(&c.hosts.load().all[0]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        c.outlier_result(&h, 500);
        assert!(out(&h));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(store.counter("cluster.c.health_check.success").value() >= 2);
        assert_eq!(out(&h), !uneject, "uneject: {uneject}");
        assert_eq!(stat(&store, "ejections_active"), i64::from(!uneject));
    }
}

#[tokio::test(start_paused = true)]
async fn both_rates_eject_one_host_twice_as_envoy_does() {
    let up = fake::FakeUpstream::new([]);
    let yaml =
        RATES.replace("max_ejection_percent: 50", "max_ejection_percent: 100, enforcing_failure_percentage: 100");
    let (c, store) = fake::cluster(&yaml, 5, &up);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let hosts = c.hosts.load_full();
    answers(&c, &hosts.all[0], 100, 0);
    for h in &hosts.all[1..] {
        answers(&c, h, 100, 100);
    }
    next_sweep(10).await;
    assert!(out(&hosts.all[0]));
    // Envoy 1.40 ejects it by success rate, then again by failure percentage.
    for (name, n) in [
        ("ejections_detected_success_rate", 1),
        ("ejections_detected_failure_percentage", 1),
        ("ejections_enforced_failure_percentage", 1),
        ("ejections_enforced_total", 2),
        ("ejections_total", 1),
        ("ejections_active", 1),
    ] {
        assert_eq!(stat(&store, name), n, "{name}");
    }
    assert_eq!(hosts.all[0].health.outlier.ejection().backoff, 2, "out for twice the base time");
}
