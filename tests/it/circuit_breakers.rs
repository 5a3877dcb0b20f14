//! Envoy's circuit breakers, enforced: `max_requests` and `max_pending_requests` refuse with
//! 503 `UO`, `max_connections` makes requests wait for a connection, `max_retries` stops
//! retries; each with Envoy's stats. Checked against Envoy 1.40 with the same configs.

use serde_json::{json, Value};

use crate::common::client::{Client, Resp};
use crate::common::config::{bootstrap, static_cluster};
use crate::common::legate::{validate, Legate};
use crate::common::upstream::{self, Upstream};
use crate::common::{assert_eventually, bounded};

const OVERFLOW_BODY: &str = "upstream connect error or disconnect/reset before headers. reset reason: overflow";

/// Listener `main` sending everything to cluster `c` (the upstream) with `thresholds`; a
/// `retry_policy` on `/retry`.
async fn start(up: &Upstream, thresholds: Value) -> Legate {
    let mut cluster = static_cluster("c", &[up.addr()]);
    cluster["circuit_breakers"] = json!({ "thresholds": [thresholds] });
    let routes = json!([
        {"match": {"prefix": "/retry"}, "route": {"cluster": "c", "retry_policy": {"retry_on": "5xx", "num_retries": 2}}},
        {"match": {"prefix": "/"}, "route": {"cluster": "c"}},
    ]);
    Legate::start(bootstrap().routes(routes).cluster(cluster).yaml()).await
}

/// Starts a slow request (`delay_ms`) and returns once the upstream is handling it.
async fn hold(legate: &Legate, up: &Upstream, delay_ms: u64, busy: usize) -> tokio::task::JoinHandle<Resp> {
    let url = legate.url("main", &format!("/delay/{delay_ms}ms"));
    let slow = tokio::spawn(async move { Client::h1().get(&url).await });
    assert_eventually!(up.in_flight() == busy, "{busy} requests at the upstream");
    slow
}

fn assert_overflow(r: &Resp) {
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), OVERFLOW_BODY);
    assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
}

#[tokio::test]
async fn max_requests_refuses_the_request_over_it() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up, json!({"max_requests": 1})).await;
    let slow = hold(&legate, &up, 1000, 1).await;
    let r = Client::h1().get(&legate.url("main", "/now")).await;
    assert_overflow(&r);
    assert_eq!(legate.stat("cluster.c.upstream_rq_active_overflow").await, 1);
    assert_eq!(legate.stat("cluster.c.circuit_breakers.default.rq_open").await, 1);
    assert_eq!(bounded("the slow request", slow).await.expect("task").status, 200);
    assert_eq!(Client::h1().get(&legate.url("main", "/later")).await.status, 200, "the slot was given back");
    assert_eq!(legate.stat("cluster.c.circuit_breakers.default.rq_open").await, 0);
    assert_eq!(up.requests(), 2, "the refused request never reached the upstream");
}

#[tokio::test]
async fn max_connections_makes_requests_wait_for_a_connection() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up, json!({"max_connections": 1})).await;
    let slow = hold(&legate, &up, 500, 1).await;
    let url = legate.url("main", "/second");
    let second = tokio::spawn(async move { Client::h1().get(&url).await });
    assert_eventually!(legate.stat("cluster.c.upstream_rq_pending_active").await == 1, "the second request waits");
    assert_eq!(up.requests(), 1, "not sent while the only connection is busy");
    assert_eq!(bounded("the slow request", slow).await.expect("task").status, 200);
    let r = bounded("the waiting request", second).await.expect("task");
    assert_eq!(r.status, 200);
    assert_eq!(up.connections(), 1, "both requests used the one connection");
    assert_eq!(legate.stat("cluster.c.upstream_cx_overflow").await, 1);
    assert_eq!(legate.stat("cluster.c.circuit_breakers.default.cx_open").await, 1, "the one connection stays open");
}

#[tokio::test]
async fn max_pending_requests_refuses_the_request_over_it() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up, json!({"max_connections": 1, "max_pending_requests": 1})).await;
    let slow = hold(&legate, &up, 800, 1).await;
    let url = legate.url("main", "/pending");
    let pending = tokio::spawn(async move { Client::h1().get(&url).await });
    assert_eventually!(legate.stat("cluster.c.upstream_rq_pending_active").await == 1, "one request waits");
    let r = Client::h1().get(&legate.url("main", "/third")).await;
    assert_overflow(&r);
    assert_eq!(legate.stat("cluster.c.upstream_rq_pending_overflow").await, 1);
    assert_eq!(bounded("the slow request", slow).await.expect("task").status, 200);
    assert_eq!(bounded("the pending request", pending).await.expect("task").status, 200);
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn max_retries_stops_retrying() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up, json!({"max_retries": 0})).await;
    let r = Client::h1().get(&legate.url("main", "/retry/status/503")).await;
    assert_eq!(r.status, 503, "the upstream's answer is passed on");
    assert_eq!(up.requests(), 1, "no retry");
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry_overflow").await, 1);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry").await, 0);
}

#[tokio::test]
async fn default_limits_let_ordinary_traffic_through() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up, json!({})).await;
    let url = legate.url("main", "/delay/200ms");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let url = url.clone();
        set.spawn(async move { Client::h1().get(&url).await.status });
    }
    while let Some(status) = bounded("20 concurrent requests", set.join_next()).await {
        assert_eq!(status.expect("task"), 200);
    }
    let stats = legate.stats().await;
    for s in ["upstream_cx_overflow", "upstream_rq_pending_overflow", "upstream_rq_active_overflow"] {
        assert_eq!(stats.get(&format!("cluster.c.{s}")), Some(&0), "{s} is shown and zero");
    }
    // /clusters shows the limits in force.
    let text = legate.admin_get("/clusters").await.text();
    assert!(text.contains("c::default_priority::max_requests::1024"), "{text}");
}

#[tokio::test]
async fn track_remaining_publishes_what_is_left() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up, json!({"max_requests": 5, "max_connections": 3, "track_remaining": true})).await;
    assert_eq!(legate.stat("cluster.c.circuit_breakers.default.remaining_rq").await, 5);
    let slow = hold(&legate, &up, 500, 1).await;
    assert_eq!(legate.stat("cluster.c.circuit_breakers.default.remaining_rq").await, 4);
    assert_eq!(legate.stat("cluster.c.circuit_breakers.default.remaining_cx").await, 2);
    assert_eq!(bounded("the slow request", slow).await.expect("task").status, 200);
    assert_eq!(legate.stat("cluster.c.circuit_breakers.default.remaining_rq").await, 5);
}

#[tokio::test]
async fn high_priority_thresholds_are_shown_and_high_routes_refused() {
    let up = upstream::http1().name("up").spawn().await;
    let mut cluster = static_cluster("c", &[up.addr()]);
    cluster["circuit_breakers"] =
        json!({"thresholds": [{"max_requests": 7}, {"priority": "HIGH", "max_requests": 9, "max_retries": 1}]});
    let legate = Legate::start(
        bootstrap()
            .routes(json!([{"match": {"prefix": "/"}, "route": {"cluster": "c"}}]))
            .cluster(cluster.clone())
            .yaml(),
    )
    .await;
    let text = legate.admin_get("/clusters").await.text();
    assert!(text.contains("c::default_priority::max_requests::7\n"), "{text}");
    assert!(text.contains("c::high_priority::max_requests::9\n"), "{text}");
    assert!(text.contains("c::high_priority::max_retries::1\n"), "{text}");

    let config = bootstrap()
        .routes(json!([{"match": {"prefix": "/"}, "route": {"cluster": "c", "priority": "HIGH"}}]))
        .cluster(cluster)
        .yaml();
    let (_file, run) = validate("high.yaml", &config).await;
    assert_ne!(run.code(), Some(0), "a HIGH route is refused");
    assert!(run.output.contains(".route.priority: unsupported value \"HIGH\""), "{}", run.output);
}
