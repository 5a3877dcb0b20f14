//! Active health check extras (issue 14): an endpoint's `health_check_config`, the
//! no-traffic intervals, the event log and gRPC checks.

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, endpoint, static_cluster_with, to_cluster};
use crate::common::legate::Legate;
use crate::common::upstream;

fn hc(interval: &str) -> Value {
    json!([{"timeout": "1s", "interval": interval, "no_traffic_interval": interval,
            "unhealthy_threshold": 1, "healthy_threshold": 1, "http_health_check": {"path": "/healthz"}}])
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

fn with_hc_config(addr: SocketAddr, hc: Value) -> Value {
    let mut e = endpoint(addr);
    e["endpoint"]["health_check_config"] = hc;
    e
}

#[tokio::test]
async fn endpoint_health_check_config_moves_checks_and_disables_them() {
    // a serves traffic but fails its own checks; its checks go to a's health port instead.
    let a = upstream::http1().name("a").spawn().await;
    a.set_healthy(false);
    let a_health = upstream::http1().name("a-health").spawn().await;
    // b serves fine, but the address its checks go to fails them.
    let b = upstream::http1().name("b").spawn().await;
    let b_health = upstream::http1().name("b-health").bind("127.0.0.2:0").status(503).spawn().await;
    // c fails its checks, but is not checked at all.
    let c = upstream::http1().name("c").spawn().await;
    c.set_healthy(false);
    let b_hc_addr = json!({"socket_address": {"address": "127.0.0.2", "port_value": b_health.port()}});
    let mut cluster = static_cluster_with(
        "svc",
        vec![
            with_hc_config(a.addr(), json!({"port_value": a_health.port(), "hostname": "health.a"})),
            with_hc_config(b.addr(), json!({"address": b_hc_addr})),
            with_hc_config(c.addr(), json!({"disable_active_health_check": true})),
        ],
    );
    cluster["health_checks"] = hc("0.2s");
    let legate = Legate::start(config(cluster)).await;
    assert_eventually!(flags(&legate, b.addr()).await == "/failed_active_hc", "b's health address fails");
    assert_eventually!(a_health.requests() > 0, "a's checks go to its health port");
    assert_eq!(flags(&legate, a.addr()).await, "healthy");
    let seen = a_health.last_request().unwrap_or_default();
    assert_eq!(seen["authority"], "health.a", "hostname is the checks' Host: {seen}");
    assert_eq!(seen["path"], "/healthz");
    assert_eq!(flags(&legate, c.addr()).await, "healthy", "c is not checked and counts healthy");
    assert_eq!((a.requests(), b.requests(), c.requests()), (0, 0, 0), "no check reached the serving ports");
    assert_eq!(instances(&legate, 8).await, ["a", "c"]);
    assert_eq!(legate.stat("cluster.svc.health_check.healthy").await, 1, "c has no checker: only a counts");
    assert_eq!(legate.stat("cluster.svc.membership_healthy").await, 2);
}

/// The event log's lines as JSON.
fn events(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn count(events: &[Value], port: u16, kind: &str) -> usize {
    events.iter().filter(|e| e["host"]["socket_address"]["port_value"] == port && e.get(kind).is_some()).count()
}

#[tokio::test]
async fn the_event_log_has_envoys_lines() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").spawn().await;
    b.set_healthy(false);
    let log_dir = tempfile::tempdir().expect("tempdir");
    let log = log_dir.path().join("hc-events.log");
    let mut cluster = static_cluster_with("svc", vec![endpoint(a.addr()), endpoint(b.addr())]);
    cluster["load_assignment"]["endpoints"][0]["locality"] = json!({"region": "r1", "zone": "z1"});
    let mut check = hc("0.1s");
    check[0]["event_log_path"] = json!(log.display().to_string());
    check[0]["always_log_health_check_failures"] = json!(true);
    cluster["health_checks"] = check;
    let legate = Legate::start(config(cluster)).await;
    assert_eventually!(count(&events(&log), b.port(), "health_check_failure_event") >= 3, "b's failures are logged");
    let lines = events(&log);
    let first =
        lines.iter().find(|e| e["host"]["socket_address"]["port_value"] == b.port()).cloned().unwrap_or_default();
    assert_eq!(first["health_checker_type"], "HTTP");
    assert_eq!(first["cluster_name"], "svc");
    assert_eq!(
        first["health_check_failure_event"],
        json!({"failure_type": "ACTIVE", "first_check": true, "http_status_code": 503})
    );
    assert_eq!(first["locality"], json!({"region": "r1", "zone": "z1", "sub_zone": ""}));
    assert_eq!(first["host"]["socket_address"]["address"], "127.0.0.1");
    assert_eq!(count(&lines, b.port(), "eject_unhealthy_event"), 0, "new hosts start unhealthy: nothing to eject");
    let added: Vec<&Value> = lines.iter().filter(|e| e.get("add_healthy_event").is_some()).collect();
    assert_eq!(added.len(), 1, "{lines:?}");
    assert_eq!(added[0]["add_healthy_event"], json!({"first_check": true}));
    // a starts failing: it is ejected; then it comes back.
    a.set_healthy(false);
    assert_eventually!(count(&events(&log), a.port(), "eject_unhealthy_event") == 1, "a is ejected");
    let eject = events(&log).into_iter().find(|e| e.get("eject_unhealthy_event").is_some()).unwrap_or_default();
    assert_eq!(eject["eject_unhealthy_event"], json!({"failure_type": "ACTIVE", "http_status_code": 503}));
    a.set_healthy(true);
    assert_eventually!(count(&events(&log), a.port(), "add_healthy_event") == 2, "a is back");
    assert_eq!(flags(&legate, a.addr()).await, "healthy");
}

#[tokio::test]
async fn without_always_log_only_first_failures_are_logged() {
    let b = upstream::http1().name("b").spawn().await;
    b.set_healthy(false);
    let log_dir = tempfile::tempdir().expect("tempdir");
    let log = log_dir.path().join("hc-events.log");
    let mut cluster = static_cluster_with("svc", vec![endpoint(b.addr())]);
    let mut check = hc("0.1s");
    check[0]["event_log_path"] = json!(log.display().to_string());
    cluster["health_checks"] = check;
    let legate = Legate::start(config(cluster)).await;
    assert_eventually!(legate.stat("cluster.svc.health_check.failure").await >= 4, "b failed checks");
    let lines = events(&log);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["health_check_failure_event"]["first_check"], true);
}

fn grpc_hc(service: &str, authority: &str) -> Value {
    json!([{"timeout": "1s", "interval": "0.1s", "no_traffic_interval": "0.1s", "unhealthy_threshold": 1,
            "healthy_threshold": 1, "grpc_health_check": {"service_name": service, "authority": authority}}])
}

#[tokio::test]
async fn grpc_checks_ask_the_health_service() {
    let a = upstream::h2().name("a").spawn().await;
    let b = upstream::h2().name("b").spawn().await;
    b.set_healthy(false);
    let mut cluster =
        crate::common::config::with_h2(static_cluster_with("svc", vec![endpoint(a.addr()), endpoint(b.addr())]));
    cluster["health_checks"] = grpc_hc("pkg.Greeter", "grpc.example");
    let legate = Legate::start(config(cluster)).await;
    assert_eventually!(flags(&legate, b.addr()).await == "/failed_active_hc", "b answers NOT_SERVING");
    assert_eventually!(flags(&legate, a.addr()).await == "healthy", "a answers SERVING");
    let seen = a.last_request().unwrap_or_default();
    assert_eq!(seen["path"], "/grpc.health.v1.Health/Check");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["authority"], "grpc.example");
    assert_eq!(seen["grpc_service"], "pkg.Greeter");
    assert_eq!(seen["headers"]["content-type"], "application/grpc");
    assert_eq!(seen["headers"]["te"], "trailers");
    assert_eq!(seen["proto"], "HTTP/2.0");
    assert_eq!(a.connections(), 1, "checks reuse their connection");
    b.set_healthy(true);
    assert_eventually!(flags(&legate, b.addr()).await == "healthy", "b serves again");
    assert!(legate.stat("cluster.svc.health_check.success").await >= 2);
}

#[tokio::test]
async fn grpc_checks_fail_on_a_server_without_the_health_service() {
    // An HTTP/1.1 server where an h2 one is expected: the connection fails, the host too.
    let a = upstream::http1().name("a").spawn().await;
    let mut cluster = crate::common::config::with_h2(static_cluster_with("svc", vec![endpoint(a.addr())]));
    cluster["health_checks"] = grpc_hc("", "x");
    let legate = Legate::start(config(cluster)).await;
    assert_eventually!(flags(&legate, a.addr()).await == "/failed_active_hc", "no gRPC health there");
    assert!(legate.stat("cluster.svc.health_check.network_failure").await >= 1);
}

fn first_round_hc(path: &str, timeout: &str) -> Value {
    json!([{"timeout": timeout, "interval": "30s", "no_traffic_interval": "30s", "unhealthy_threshold": 1,
            "healthy_threshold": 1, "http_health_check": {"path": path}}])
}

#[tokio::test]
async fn listeners_wait_for_the_first_round_of_checks() {
    // The first check takes 700 ms: a listener that served at once would find its only host
    // still pending its first check, excluded, and answer 503.
    let a = upstream::http1().name("a").spawn().await;
    let mut cluster = static_cluster_with("svc", vec![endpoint(a.addr())]);
    cluster["health_checks"] = first_round_hc("/healthz/delay/700ms", "5s");
    let legate = Legate::start(config(cluster)).await;
    assert_eq!(flags(&legate, a.addr()).await, "healthy", "the first check was over before serving");
    let r = Client::h1().get(&legate.url("main", "/")).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn a_first_check_that_times_out_does_not_hold_startup() {
    let a = upstream::http1().name("a").spawn().await;
    let mut cluster = static_cluster_with("svc", vec![endpoint(a.addr())]);
    cluster["health_checks"] = first_round_hc("/healthz/delay/20000ms", "0.5s");
    let started = std::time::Instant::now();
    let legate = Legate::start(config(cluster)).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "startup waited {:?}", started.elapsed());
    assert_eq!(flags(&legate, a.addr()).await, "/failed_active_hc/active_hc_timeout", "a timeout is a first result");
    assert_eq!(legate.stat("cluster.svc.health_check.failure").await, 1);
}
