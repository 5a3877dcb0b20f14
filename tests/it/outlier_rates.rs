//! Outlier detection's statistics (issue 14) against real upstreams: the success rate and the
//! failure percentage of each interval, local-origin errors counted apart under
//! `split_external_local_origin_errors`, with Envoy's stat names and `/clusters` rates; and
//! `tcp_proxy`'s connect failures.

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, static_cluster, to_cluster};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};
use crate::common::{bounded, dead_addr};

fn config(cluster: Value) -> String {
    bootstrap().routes(json!([to_cluster(json!({"prefix": "/"}), "svc")])).cluster(cluster).yaml()
}

async fn clusters_line(legate: &Legate, key: &str) -> String {
    let text = legate.admin_get("/clusters").await.text();
    text.lines().find_map(|l| l.strip_prefix(key).map(str::to_string)).unwrap_or_default()
}

/// Sends `n` requests, round robin over the cluster's hosts.
async fn traffic(legate: &Legate, n: usize) {
    let c = Client::h1();
    let url = legate.url("main", "/");
    bounded("traffic", async {
        for _ in 0..n {
            let _ = c.get(&url).await;
        }
    })
    .await;
}

async fn five_upstreams(bad: Option<u16>) -> Vec<Upstream> {
    let mut ups = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        let mut b = upstream::http1().name(name);
        if let (Some(status), "e") = (bad, name) {
            b = b.status(status);
        }
        ups.push(b.spawn().await);
    }
    ups
}

#[tokio::test]
async fn success_rate_ejects_the_host_answering_500s() {
    let ups = five_upstreams(Some(500)).await;
    let addrs: Vec<SocketAddr> = ups.iter().map(|u| u.addr()).collect();
    let mut cluster = static_cluster("svc", &addrs);
    // Consecutive 5xx out of the way: only the success rate can eject.
    cluster["outlier_detection"] = json!({"interval": "1s", "base_ejection_time": "60s", "max_ejection_percent": 50,
        "consecutive_5xx": 100000, "success_rate_request_volume": 10, "failure_percentage_request_volume": 100000});
    let legate = Legate::start(config(cluster)).await;
    let e = addrs[4];
    assert_eq!(clusters_line(&legate, "svc::outlier::success_rate_average::").await, "-1");
    assert_eq!(clusters_line(&legate, &format!("svc::{e}::success_rate::")).await, "-1");
    // 0% among 100%s: mean 80, stdev 40, threshold 80 - 1.9 * 40 = 4.
    assert_eventually!(
        {
            traffic(&legate, 60).await;
            legate.stat("cluster.svc.outlier_detection.ejections_enforced_success_rate").await == 1
        },
        "e is ejected for its success rate"
    );
    assert_eq!(clusters_line(&legate, &format!("svc::{e}::health_flags::")).await, "/failed_outlier_check");
    for (name, n) in [
        ("ejections_detected_success_rate", 1),
        ("ejections_success_rate", 1),
        ("ejections_total", 1),
        ("ejections_enforced_total", 1),
        ("ejections_active", 1),
        ("ejections_detected_consecutive_5xx", 0),
    ] {
        assert_eq!(legate.stat(&format!("cluster.svc.outlier_detection.{name}")).await, n, "{name}");
    }
    let before = ups[4].requests();
    traffic(&legate, 20).await;
    assert_eq!(ups[4].requests(), before, "an ejected host gets no traffic");
    // The sweep that ejects e shows its rate (0); the next ones, with traffic to the others
    // only, show theirs and -1 for e (not computed while out).
    assert_eventually!(
        {
            traffic(&legate, 60).await;
            clusters_line(&legate, &format!("svc::{}::success_rate::", addrs[0])).await == "100"
                && clusters_line(&legate, &format!("svc::{e}::success_rate::")).await == "-1"
        },
        "a's success rate, and none for e"
    );
    let json = legate.admin_get("/clusters?format=json").await.json();
    let hosts = json["cluster_statuses"][0]["host_statuses"].as_array().cloned().unwrap_or_default();
    let a = hosts.iter().find(|h| h["address"]["socket_address"]["port_value"] == addrs[0].port());
    assert_eq!(a.map(|h| h["success_rate"]["value"].clone()), Some(json!(100)), "{json}");
    assert_eq!(a.map(|h| h.get("local_origin_success_rate").is_none()), Some(true), "{json}");
}

#[tokio::test]
async fn split_counts_a_refusing_host_as_local_origin_failures() {
    let ups = five_upstreams(None).await;
    let mut addrs: Vec<SocketAddr> = ups.iter().take(4).map(|u| u.addr()).collect();
    let dead = dead_addr();
    addrs.push(dead);
    let mut cluster = static_cluster("svc", &addrs);
    cluster["outlier_detection"] = json!({"interval": "1s", "base_ejection_time": "60s", "max_ejection_percent": 50,
        "split_external_local_origin_errors": true, "consecutive_local_origin_failure": 100000,
        "consecutive_5xx": 2, "enforcing_failure_percentage_local_origin": 100,
        "failure_percentage_request_volume": 5, "success_rate_request_volume": 100000});
    let legate = Legate::start(config(cluster)).await;
    assert_eventually!(
        {
            traffic(&legate, 30).await;
            legate.stat("cluster.svc.outlier_detection.ejections_enforced_local_origin_failure_percentage").await == 1
        },
        "the refusing host is ejected for its local-origin failure percentage"
    );
    assert_eq!(clusters_line(&legate, &format!("svc::{dead}::health_flags::")).await, "/failed_outlier_check");
    for (name, n) in [
        ("ejections_detected_local_origin_failure_percentage", 1),
        ("ejections_enforced_total", 1),
        ("ejections_total", 0),
        // Refused connects are not 5xx under the split, however many in a row.
        ("ejections_detected_consecutive_5xx", 0),
        ("ejections_detected_failure_percentage", 0),
    ] {
        assert_eq!(legate.stat(&format!("cluster.svc.outlier_detection.{name}")).await, n, "{name}");
    }
    let c = Client::h1();
    for _ in 0..8 {
        assert_eq!(c.get(&legate.url("main", "/")).await.status, 200, "only the live hosts are left");
    }
    assert_eventually!(
        {
            traffic(&legate, 20).await;
            clusters_line(&legate, &format!("svc::{}::local_origin_success_rate::", addrs[0])).await == "100"
        },
        "a's local-origin success rate"
    );
    // Its answers count too, shown past the smaller of the two volumes (as Envoy shows them).
    assert_eq!(clusters_line(&legate, &format!("svc::{}::success_rate::", addrs[0])).await, "100");
}

#[tokio::test]
async fn without_the_split_a_refusing_host_is_a_5xx_host() {
    let ups = five_upstreams(None).await;
    let mut addrs: Vec<SocketAddr> = ups.iter().take(1).map(|u| u.addr()).collect();
    let dead = dead_addr();
    addrs.push(dead);
    let mut cluster = static_cluster("svc", &addrs);
    cluster["outlier_detection"] = json!({"interval": "1s", "consecutive_5xx": 3, "max_ejection_percent": 50});
    let legate = Legate::start(config(cluster)).await;
    traffic(&legate, 6).await;
    assert_eq!(clusters_line(&legate, &format!("svc::{dead}::health_flags::")).await, "/failed_outlier_check");
    assert_eq!(legate.stat("cluster.svc.outlier_detection.ejections_enforced_consecutive_5xx").await, 1);
    assert_eq!(
        legate.stat("cluster.svc.outlier_detection.ejections_detected_consecutive_local_origin_failure").await,
        0
    );
}

#[tokio::test]
async fn tcp_proxy_connect_failures_eject_a_host() {
    let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let live_addr = live.local_addr().expect("addr");
    // Accepts and drops: a connect is all tcp_proxy's outlier detection sees.
    tokio::spawn(async move { while live.accept().await.is_ok() {} });
    let dead = dead_addr();
    let mut cluster = static_cluster("svc", &[dead, live_addr]);
    cluster["outlier_detection"] = json!({"consecutive_5xx": 2, "max_ejection_percent": 50});
    let proxy = json!({"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                       "stat_prefix": "db", "cluster": "svc"});
    let boot = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{"name": "tcp", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                           "filter_chains": [{"filters": [{"name": "proxy", "typed_config": proxy}]}]}],
            "clusters": [cluster],
        },
    });
    let legate = Legate::start(serde_yaml::to_string(&boot).expect("yaml")).await;
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(legate.listener("tcp")).await.expect("connect");
        let mut buf = [0u8; 16];
        // Closed by the proxy at once (refused upstream) or by the upstream.
        let _ = bounded("close", tokio::io::AsyncReadExt::read(&mut s, &mut buf)).await;
    }
    assert_eventually!(
        clusters_line(&legate, &format!("svc::{dead}::health_flags::")).await == "/failed_outlier_check",
        "the refusing host is ejected"
    );
    assert_eq!(legate.stat("cluster.svc.outlier_detection.ejections_enforced_consecutive_5xx").await, 1);
    assert_eq!(clusters_line(&legate, &format!("svc::{live_addr}::health_flags::")).await, "healthy");
}
