//! Resilience (issue 14): active health checks, outlier detection, endpoint `health_status`,
//! priorities and panic, and health kept across reloads.

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, endpoint, static_cluster, to_cluster};
use crate::common::legate::Legate;
use crate::common::upstream;

fn hc(interval: &str) -> Value {
    json!([{"timeout": "1s", "interval": interval, "unhealthy_threshold": 1, "healthy_threshold": 1,
            "http_health_check": {"path": "/healthz"}}])
}

fn config(cluster: Value) -> String {
    bootstrap().routes(json!([to_cluster(json!({"prefix": "/"}), "svc")])).cluster(cluster).yaml()
}

async fn flags(legate: &Legate, addr: SocketAddr) -> String {
    let text = legate.admin_get("/clusters").await.text();
    let key = format!("svc::{addr}::health_flags::");
    text.lines().find_map(|l| l.strip_prefix(&key).map(str::to_string)).unwrap_or_default()
}

/// The instances that answered `n` requests.
async fn instances(legate: &Legate, n: usize) -> Vec<String> {
    let c = Client::h1();
    let mut out = Vec::new();
    for _ in 0..n {
        let r = c.get(&legate.url("main", "/")).await;
        out.push(r.header("x-upstream-instance").unwrap_or("-").to_string());
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn a_failing_host_is_checked_out_and_shown_in_clusters() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").status(503).spawn().await;
    let mut cluster = static_cluster("svc", &[a.addr(), b.addr()]);
    cluster["health_checks"] = hc("0.2s");
    let legate = Legate::start(config(cluster)).await;
    assert_eventually!(flags(&legate, b.addr()).await == "/failed_active_hc", "b fails its check");
    assert_eq!(flags(&legate, a.addr()).await, "healthy");
    assert_eq!(instances(&legate, 6).await, ["a"]);
    let json = legate.admin_get("/clusters?format=json").await.json();
    let hosts = json["cluster_statuses"][0]["host_statuses"].as_array().cloned().unwrap_or_default();
    assert!(hosts.iter().any(|h| h["health_status"]["failed_active_health_check"] == true), "{json}");
    assert!(legate.stat("cluster.svc.health_check.failure").await >= 1);
    assert_eq!(legate.stat("cluster.svc.health_check.healthy").await, 1);
    assert_eq!(legate.stat("cluster.svc.membership_healthy").await, 1);
}

#[tokio::test]
async fn a_reload_keeps_health_and_the_check_schedule_of_unchanged_hosts() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").status(503).spawn().await;
    let c = upstream::http1().name("c").spawn().await;
    // A long interval: after the first round no host is checked again during the test.
    let cluster = |addrs: &[SocketAddr], timeout: &str| {
        let mut cl = static_cluster("svc", addrs);
        cl["health_checks"] = hc("60s");
        cl["connect_timeout"] = json!(timeout);
        cl
    };
    let legate = Legate::start(config(cluster(&[a.addr(), b.addr()], "1s"))).await;
    assert_eventually!(flags(&legate, b.addr()).await == "/failed_active_hc", "b fails its first check");
    assert_eventually!(legate.stat("cluster.svc.health_check.attempt").await == 2, "one check each");
    let tmp = legate.config_path().with_extension("tmp");
    std::fs::write(&tmp, config(cluster(&[a.addr(), b.addr(), c.addr()], "2s"))).expect("write");
    std::fs::rename(&tmp, legate.config_path()).expect("rename");
    assert_eventually!(flags(&legate, c.addr()).await == "healthy", "the new host is checked");
    assert_eq!(legate.stat("cluster.svc.health_check.attempt").await, 3, "a and b are not checked anew");
    assert_eq!(flags(&legate, b.addr()).await, "/failed_active_hc", "b stays out");
    assert_eq!(instances(&legate, 8).await, ["a", "c"]);
}

#[tokio::test]
async fn consecutive_5xx_eject_a_host() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").status(500).spawn().await;
    let mut cluster = static_cluster("svc", &[a.addr(), b.addr()]);
    cluster["outlier_detection"] = json!({"consecutive_5xx": 2, "interval": "10s", "base_ejection_time": "30s",
                                          "max_ejection_percent": 100});
    let legate = Legate::start(config(cluster)).await;
    // Round robin: two of four go to b, the second ejects it.
    let all = instances(&legate, 4).await;
    assert_eq!(all, ["a", "b"]);
    assert_eq!(flags(&legate, b.addr()).await, "/failed_outlier_check");
    assert_eq!(instances(&legate, 6).await, ["a"]);
    assert_eq!(legate.stat("cluster.svc.outlier_detection.ejections_enforced_consecutive_5xx").await, 1);
    assert_eq!(legate.stat("cluster.svc.outlier_detection.ejections_active").await, 1);
}

#[tokio::test]
async fn eds_health_status_and_priorities_choose_the_hosts() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").spawn().await;
    let c = upstream::http1().name("c").spawn().await;
    let ep = |addr, status: &str| {
        let mut e = endpoint(addr);
        e["health_status"] = json!(status);
        e
    };
    let mut cluster = static_cluster("svc", &[]);
    // P0: a (draining), b (unhealthy): nothing healthy there, so P1 (c) takes everything.
    cluster["load_assignment"]["endpoints"] = json!([
        {"lb_endpoints": [ep(a.addr(), "DRAINING"), ep(b.addr(), "UNHEALTHY")]},
        {"priority": 1, "lb_endpoints": [ep(c.addr(), "HEALTHY")]},
    ]);
    let legate = Legate::start(config(cluster)).await;
    assert_eq!(instances(&legate, 6).await, ["c"]);
    assert_eq!(flags(&legate, a.addr()).await, "/eds_status_draining");
    assert_eq!(flags(&legate, b.addr()).await, "/failed_eds_health");
}
