//! Local replies to gRPC requests, as Envoy 1.40 sends them: every reason legate answers by
//! itself (no route, no cluster, no healthy upstream, connect failure, reset, timeout,
//! overflow, fault abort) and a route's `direct_response` or `redirect` is HTTP 200 with
//! `content-type: application/grpc`, `grpc-status` and `grpc-message` and no body (trailers
//! only), logged with status 200 and the reason's flag.

use serde_json::{json, Value};

use crate::access_log::{file_log, lines, log_dir};
use crate::common::client::Client;
use crate::common::config::{bootstrap, hcm, route_config, router_filter, static_cluster, static_cluster_with, vhost};
use crate::common::dead_addr;
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

const FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";

fn route(prefix: &str, cluster: &str) -> Value {
    json!({ "match": { "prefix": prefix }, "route": { "cluster": cluster } })
}

fn faulted(prefix: &str, abort: Value) -> Value {
    let mut abort = abort;
    abort["percentage"] = json!({ "numerator": 100 });
    json!({ "match": { "prefix": prefix }, "route": { "cluster": "service1" },
            "typed_per_filter_config": { "fault": { "@type": FAULT, "abort": abort } } })
}

fn config(up: &Upstream, log: Value) -> String {
    let routes = json!([
        route("/empty", "empty"),
        route("/dead", "dead"),
        route("/ok", "service1"),
        route("/overflow", "overflow"),
        route("/gone", "not_a_cluster"),
        { "match": { "prefix": "/slow" }, "route": { "cluster": "service1", "timeout": "0.2s" } },
        faulted("/fault", json!({ "http_status": 503 })),
        faulted("/gfault", json!({ "grpc_status": 8 })),
        { "match": { "prefix": "/direct" }, "direct_response": { "status": 200, "body": { "inline_string": "hello" } } },
        { "match": { "prefix": "/redirect" }, "redirect": { "path_redirect": "/elsewhere" } },
    ]);
    let mut rc = route_config(json!([vhost("default", &["*"], routes)]));
    rc["validate_clusters"] = json!(false);
    let mut manager = hcm(rc);
    manager["http_filters"] = json!([{ "name": "fault", "typed_config": { "@type": FAULT } }, router_filter()]);
    manager["access_log"] = json!([log]);
    let mut overflow = static_cluster("overflow", &[up.addr()]);
    overflow["circuit_breakers"] = json!({ "thresholds": [{ "max_requests": 0, "max_pending_requests": 0 }] });
    bootstrap()
        .listener_hcm("main", manager)
        .cluster(static_cluster("service1", &[up.addr()]))
        .cluster(static_cluster_with("empty", vec![]))
        .cluster(static_cluster("dead", &[dead_addr()]))
        .cluster(overflow)
        .yaml()
}

fn grpc_call(url: String) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::post(url)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request")
}

const CONNECT: &str = "upstream connect error or disconnect/reset before headers. reset reason: ";

#[tokio::test]
async fn every_local_reply_to_a_grpc_request_is_a_trailers_only_grpc_answer() {
    let up = upstream::http1().spawn().await;
    let (_dir, path) = log_dir();
    let legate = Legate::start(config(&up, file_log(&path, None))).await;
    // (path, grpc-status, grpc-message, access-log flag), each checked against Envoy 1.40.
    let connect_failure = format!("{CONNECT}remote connection failure");
    let termination = format!("{CONNECT}connection termination");
    let overflow = format!("{CONNECT}overflow");
    let cases: Vec<(&str, &str, Option<&str>, &str)> = vec![
        ("/nowhere/svc.Call", "12", None, "NR"),
        ("/gone/svc.Call", "14", None, "NC"),
        ("/empty/svc.Call", "14", Some("no healthy upstream"), "UH"),
        ("/dead/svc.Call", "14", Some(&connect_failure), "UF"),
        ("/ok/reset", "14", Some(&termination), "UC"),
        ("/slow/delay/2000ms", "14", Some("upstream request timeout"), "UT"),
        ("/overflow/svc.Call", "14", Some(&overflow), "UO"),
        ("/fault/svc.Call", "14", Some("fault filter abort"), "FI"),
        ("/gfault/svc.Call", "8", Some("fault filter abort"), "FI"),
        ("/direct/svc.Call", "2", Some("hello"), "-"),
        ("/redirect/svc.Call", "2", None, "-"),
    ];
    for (path, status, message, _) in &cases {
        let r = Client::h2c().send(grpc_call(legate.url("main", path))).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/grpc"), "{path}");
        assert_eq!(r.header("grpc-status"), Some(*status), "{path}");
        assert_eq!(r.header("grpc-message"), *message, "{path}");
        assert_eq!(r.header("content-length"), None, "{path}: trailers-only, no content-length");
        assert!(r.body.is_empty(), "{path}: {:?}", r.text());
        if *path == "/overflow/svc.Call" {
            assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
        }
        if *path == "/redirect/svc.Call" {
            assert_eq!(r.header("location").map(|l| l.ends_with("/elsewhere")), Some(true));
        }
    }
    let logged = lines(&path, cases.len()).await;
    for (path, _, _, flag) in &cases {
        let line = logged.iter().find(|l| l.contains(&format!("\"POST {path} HTTP/2\""))).expect(path);
        assert!(line.contains(&format!("\" 200 {flag} 0 0 ")), "{path}: {line}");
    }
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_2xx").await, cases.len() as u64);
}

#[tokio::test]
async fn grpc_over_http1_and_head_requests_get_the_same_answer() {
    let up = upstream::http1().spawn().await;
    let (_dir, path) = log_dir();
    let legate = Legate::start(config(&up, file_log(&path, None))).await;
    // HTTP/1.1: the same headers, with Envoy's `content-length: 0`.
    let r = Client::h1().send(grpc_call(legate.url("main", "/empty/svc.Call"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("grpc-status"), Some("14"));
    assert_eq!(r.header("grpc-message"), Some("no healthy upstream"));
    assert_eq!(r.header("content-length"), Some("0"));
    // `application/grpc+proto` is gRPC too; grpc-web is not (the plain 503).
    let mut req = grpc_call(legate.url("main", "/empty/svc.Call"));
    req.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc+proto"));
    assert_eq!(Client::h2c().send(req).await.header("grpc-status"), Some("14"));
    let mut req = grpc_call(legate.url("main", "/empty/svc.Call"));
    req.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc-web"));
    let r = Client::h2c().send(req).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (503, "no healthy upstream"));
    // A HEAD request gets the status without the message, as in Envoy.
    let mut req = grpc_call(legate.url("main", "/direct/svc.Call"));
    *req.method_mut() = http::Method::HEAD;
    let r = Client::h2c().send(req).await;
    assert_eq!((r.status.as_u16(), r.header("grpc-status"), r.header("grpc-message")), (200, Some("2"), None));
}
