//! Answers legate makes itself: no route, no healthy upstream, connect failure, timeout,
//! malformed requests; after each, the listener keeps serving.

use crate::common::client::{self, Client};
use crate::common::config::{bootstrap, static_cluster, static_cluster_with, to_cluster};
use crate::common::dead_addr;
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};
use serde_json::json;

async fn start(up: &Upstream) -> Legate {
    Legate::start(
        bootstrap()
            .routes(json!([
                to_cluster(json!({"prefix": "/ok"}), "service1"),
                to_cluster(json!({"prefix": "/empty"}), "empty"),
                to_cluster(json!({"prefix": "/dead"}), "dead"),
                {"match": {"prefix": "/slow"}, "route": {"cluster": "service1", "timeout": "0.2s"}},
            ]))
            .cluster(static_cluster("service1", &[up.addr()]))
            .cluster(static_cluster_with("empty", vec![]))
            .cluster(static_cluster("dead", &[dead_addr()]))
            .yaml(),
    )
    .await
}

async fn still_serving(legate: &Legate) {
    let r = Client::h1().get(&legate.url("main", "/ok")).await;
    assert_eq!(r.status, 200, "listener still serves: {}", r.text());
}

#[tokio::test]
async fn no_route_is_404_with_an_empty_body() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = Client::h1().get(&legate.url("main", "/nowhere")).await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty(), "body {:?}", r.text());
    assert_eq!(up.requests(), 0);
    still_serving(&legate).await;
}

#[tokio::test]
async fn empty_cluster_is_503_no_healthy_upstream() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = Client::h1().get(&legate.url("main", "/empty")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "no healthy upstream");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    still_serving(&legate).await;
}

#[tokio::test]
async fn refused_connection_is_503_connect_error() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = Client::h1().get(&legate.url("main", "/dead")).await;
    assert_eq!(r.status, 503);
    let text = r.text();
    assert!(
        text.starts_with(
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
        ),
        "body {text:?}"
    );
    still_serving(&legate).await;
}

#[tokio::test]
async fn upstream_reset_before_headers_is_503() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = Client::h1().get(&legate.url("main", "/ok/reset")).await;
    assert_eq!(r.status, 503);
    assert!(r.text().starts_with("upstream connect error or disconnect/reset before headers"), "body {:?}", r.text());
    still_serving(&legate).await;
}

#[tokio::test]
async fn timeout_is_504() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = Client::h1().get(&legate.url("main", "/slow/delay/2000ms")).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "upstream request timeout");
    still_serving(&legate).await;
}

#[tokio::test]
async fn garbage_request_line_is_400() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = client::raw(legate.listener("main"), b"THIS IS NOT HTTP\r\n\r\n").await.expect("an answer");
    assert_eq!(r.status, 400, "{}", r.head);
    still_serving(&legate).await;
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let big = "a".repeat(70 * 1024);
    let req = format!("GET /ok HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    let r = client::raw(legate.listener("main"), req.as_bytes()).await.expect("an answer");
    assert_eq!(r.status, 431, "{}", r.head);
    assert_eq!(up.requests(), 0);
    still_serving(&legate).await;
}

#[tokio::test]
async fn malformed_requests_get_envoys_status() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    for (raw, want) in [
        (&b"GET /ok HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello"[..], 400),
        (b"GET /ok HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n", 400),
        (b"GET /ok HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n", 400),
    ] {
        let r = client::raw(legate.listener("main"), raw).await;
        let text = String::from_utf8_lossy(raw);
        let r = r.unwrap_or_else(|| panic!("no answer to {text:?}"));
        assert_eq!(r.status, want, "request {text:?}: {}", r.head);
    }
    assert_eq!(up.requests(), 0, "no malformed request reached the upstream");
    still_serving(&legate).await;
}

#[tokio::test]
async fn grpc_requests_get_trailers_only_grpc_local_replies() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let grpc = |path: &str| {
        http::Request::post(legate.url("main", path))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    // Envoy answers a gRPC request it cannot route or serve with HTTP 200 and a grpc-status.
    let r = Client::h2c().send(grpc("/empty/svc.Call")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    assert_eq!(r.header("grpc-status"), Some("14"));
    assert_eq!(r.header("grpc-message"), Some("no healthy upstream"));
    assert!(r.body.is_empty());
    let r = Client::h2c().send(grpc("/nowhere/svc.Call")).await;
    assert_eq!(r.status, 200);
    assert_eq!((r.header("grpc-status"), r.header("grpc-message")), (Some("12"), None));
    // Anything else keeps the plain local reply.
    let r = Client::h2c().post(&legate.url("main", "/empty/x"), "x").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "no healthy upstream");
    still_serving(&legate).await;
}
