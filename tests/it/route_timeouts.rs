//! The route's own time limits (checked against Envoy 1.40):
//!
//! | field | effect asserted |
//! |---|---|
//! | `max_stream_duration.max_stream_duration` | from the stream's start: 504 `downstream duration timeout` (408 while uploading), a started answer cut; `downstream_rq_max_duration_reached`; the route `timeout` is then not used |
//! | `max_stream_duration.grpc_timeout_header_max` / `_offset` | `grpc-timeout` sets the limit (capped, less the offset) and is rewritten for the upstream; gRPC's `grpc-status: 4` |
//! | `idle_timeout` | replaces the connection manager's `stream_idle_timeout` (0: none): 504 `stream timeout`, a started answer cut; `downstream_rq_idle_timeout` |
//! | `retry_policy.per_try_idle_timeout` | a silent try ends (504 `upstream request timeout`), retried as a per-try timeout; a stalled answer cut; `upstream_rq_per_try_idle_timeout` |
//! | `max_grpc_timeout` / `grpc_timeout_offset` | a gRPC request's `grpc-timeout` is its route timeout (capped, less the offset): `grpc-timeout` and `x-envoy-expected-rq-timeout-ms` rewritten, `UT` |

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::client::{raw, Client};
use crate::common::config::{bootstrap, hcm, route_config, static_cluster, vhost, Bootstrap};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

/// One route `/` to cluster `up` (at `addr`) with `route` merged into its action.
fn config(addr: SocketAddr, route: Value) -> Bootstrap {
    let mut action = json!({"cluster": "up"});
    if let (Some(a), Value::Object(r)) = (action.as_object_mut(), route) {
        a.extend(r);
    }
    let routes = json!([{"match": {"prefix": "/"}, "route": action}]);
    bootstrap()
        .listener_hcm("main", hcm(route_config(json!([vhost("default", &["*"], routes)]))))
        .cluster(static_cluster("up", &[addr]))
}

async fn start(up: &Upstream, route: Value) -> Legate {
    Legate::start(config(up.addr(), route).yaml()).await
}

const MAX_DURATION: &str = "http.ingress_http.downstream_rq_max_duration_reached";

#[tokio::test]
async fn max_stream_duration_ends_a_slow_answer_and_replaces_the_route_timeout() {
    let up = upstream::http1().spawn().await;
    // Envoy ignores `timeout` once `max_stream_duration` is set.
    let legate = start(&up, json!({"timeout": "0.2s", "max_stream_duration": {"max_stream_duration": "0.6s"}})).await;
    let r = Client::h1().get(&legate.url("main", "/delay/400ms")).await;
    assert_eq!(r.status.as_u16(), 200, "the 0.2 s route timeout is not used");
    let begun = Instant::now();
    let r = Client::h1().get(&legate.url("main", "/delay/3000ms")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (504, "downstream duration timeout"));
    assert!(begun.elapsed() < Duration::from_millis(2500), "{:?}", begun.elapsed());
    assert_eq!(legate.stat(MAX_DURATION).await, 1);
    assert_eq!(legate.stat("cluster.up.upstream_rq_timeout").await, 0);
    assert_eq!(legate.stat("cluster.up.upstream_rq_504").await, 0, "not the cluster's answer");
    // Still uploading: 408, and the connection closes.
    let head = "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc";
    let r = raw(legate.listener("main"), head.as_bytes()).await.expect("an answer");
    assert!(r.head.starts_with("HTTP/1.1 408"), "{}", r.head);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(legate.stat(MAX_DURATION).await, 2);
    // A 0 limit is no limit, and the route timeout stays unused.
    let legate = start(&up, json!({"timeout": "0.2s", "max_stream_duration": {"max_stream_duration": "0s"}})).await;
    assert_eq!(Client::h1().get(&legate.url("main", "/delay/500ms")).await.status.as_u16(), 200);
}

/// Answers every request with the head and half of a 10-byte body, the rest 3 s later.
async fn stalling_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello").await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = s.write_all(b"world").await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn max_stream_duration_cuts_an_answer_already_started() {
    let addr = stalling_upstream().await;
    let legate =
        Legate::start(config(addr, json!({"max_stream_duration": {"max_stream_duration": "0.5s"}})).yaml()).await;
    let begun = Instant::now();
    let mut s = TcpStream::connect(legate.listener("main")).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    // Bounded: the proxy closes the connection at the limit (the upstream would at 3 s).
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello"), "cut after the first half: {text}");
    assert!(begun.elapsed() < Duration::from_millis(2500), "{:?}", begun.elapsed());
    assert_eq!(legate.stat(MAX_DURATION).await, 1);
}

/// The echo upstream's answer to a gRPC request: its JSON after the 5-byte frame prefix.
fn grpc_echo(body: &[u8]) -> Value {
    serde_json::from_slice(body.get(5..).unwrap_or_default()).unwrap_or(Value::Null)
}

fn grpc_headers(timeout: &'static str) -> [(&'static str, &'static str); 2] {
    [("content-type", "application/grpc"), ("grpc-timeout", timeout)]
}

#[tokio::test]
async fn grpc_timeout_headers_set_the_stream_limit_under_grpc_timeout_header_max() {
    let up = upstream::http1().spawn().await;
    let sd = json!({"grpc_timeout_header_max": "2s", "grpc_timeout_header_offset": "0.1s"});
    let legate = start(&up, json!({"max_stream_duration": sd})).await;
    let url = legate.url("main", "/svc/Method");
    // Capped by the maximum, less the offset, and told to the upstream.
    for (sent, seen) in [("1S", "900m"), ("10S", "1900m")] {
        let r = Client::h1().get_with(&url, &grpc_headers(sent)).await;
        assert_eq!(r.status.as_u16(), 200);
        assert_eq!(grpc_echo(&r.body)["headers"]["grpc-timeout"], seen, "{sent}");
    }
    let r = Client::h1().get_with(&legate.url("main", "/svc/Method/delay/2000ms"), &grpc_headers("500m")).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.header("grpc-status"), Some("4"));
    assert_eq!(r.header("grpc-message"), Some("downstream duration timeout"));
    assert_eq!(legate.stat(MAX_DURATION).await, 1);
    // Not a gRPC request: the header still sets the limit (Envoy's 504).
    let r = Client::h1().get_with(&legate.url("main", "/delay/2000ms"), &[("grpc-timeout", "300m")]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (504, "downstream duration timeout"));
}

#[tokio::test]
async fn the_legacy_max_grpc_timeout_makes_grpc_timeout_the_route_timeout() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up, json!({"max_grpc_timeout": "2s", "grpc_timeout_offset": "0.1s"})).await;
    let url = legate.url("main", "/svc/Method");
    for (sent, seen, expected) in [("1S", "900m", "900"), ("10S", "2000m", "2000")] {
        let r = Client::h1().get_with(&url, &grpc_headers(sent)).await;
        let echo = grpc_echo(&r.body);
        assert_eq!(echo["headers"]["grpc-timeout"], seen, "{sent}");
        assert_eq!(echo["headers"]["x-envoy-expected-rq-timeout-ms"], expected, "{sent}");
    }
    // Without the header: the maximum.
    let r = Client::h1().get_with(&url, &[("content-type", "application/grpc")]).await;
    assert_eq!(grpc_echo(&r.body)["headers"]["grpc-timeout"], "2000m");
    // Not a gRPC request: the route timeout (15 s), the header as sent.
    let echo = Client::h1().get_with(&url, &[("grpc-timeout", "1S")]).await.echo();
    assert_eq!(echo["headers"]["grpc-timeout"], "1S");
    assert_eq!(echo["headers"]["x-envoy-expected-rq-timeout-ms"], "15000");
    // The route timeout it sets: UT, gRPC's 14.
    let r = Client::h1().get_with(&legate.url("main", "/svc/delay/2000ms"), &grpc_headers("300m")).await;
    assert_eq!((r.header("grpc-status"), r.header("grpc-message")), (Some("14"), Some("upstream request timeout")));
    assert_eq!(legate.stat("cluster.up.upstream_rq_timeout").await, 1);
    // A 0 maximum: the header uncapped, none without it.
    let legate = start(&up, json!({"max_grpc_timeout": "0s"})).await;
    let r = Client::h1().get_with(&legate.url("main", "/svc/M"), &grpc_headers("1S")).await;
    assert_eq!(grpc_echo(&r.body)["headers"]["grpc-timeout"], "1000m");
    let r = Client::h1().get_with(&legate.url("main", "/svc/M"), &[("content-type", "application/grpc")]).await;
    let echo = grpc_echo(&r.body);
    assert_eq!(echo["headers"]["grpc-timeout"], Value::Null);
    assert_eq!(echo["headers"]["x-envoy-expected-rq-timeout-ms"], Value::Null);
}

const IDLE: &str = "http.ingress_http.downstream_rq_idle_timeout";

/// [`config`] with the connection manager's `stream_idle_timeout` set.
fn with_stream_idle(addr: SocketAddr, stream_idle: &str, route: Value) -> String {
    let mut b = config(addr, route).value();
    let h = &mut b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    h["stream_idle_timeout"] = json!(stream_idle);
    serde_yaml::to_string(&b).expect("yaml")
}

#[tokio::test]
async fn the_route_idle_timeout_replaces_the_stream_idle_timeout() {
    let up = upstream::http1().spawn().await;
    // Shorter than the connection manager's: Envoy's 504 `stream timeout` (SI).
    let legate = Legate::start(with_stream_idle(up.addr(), "5s", json!({"idle_timeout": "0.4s"}))).await;
    let r = Client::h1().get(&legate.url("main", "/delay/2000ms")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (504, "stream timeout"));
    assert_eq!(legate.stat(IDLE).await, 1);
    assert_eq!(legate.stat("cluster.up.upstream_rq_504").await, 0, "not the cluster's answer");
    // Longer than the connection manager's, or 0: the route's word holds.
    for route_idle in ["2s", "0s"] {
        let legate = Legate::start(with_stream_idle(up.addr(), "0.3s", json!({"idle_timeout": route_idle}))).await;
        let r = Client::h1().get(&legate.url("main", "/delay/800ms")).await;
        assert_eq!(r.status.as_u16(), 200, "route idle_timeout {route_idle}");
        assert_eq!(legate.stat(IDLE).await, 0);
    }
    // A started answer that stalls is cut.
    let addr = stalling_upstream().await;
    let legate = Legate::start(with_stream_idle(addr, "5s", json!({"idle_timeout": "0.5s"}))).await;
    let req = crate::common::client::request(http::Method::GET, &legate.url("main", "/")).body(Default::default());
    let r = crate::common::bounded("a stalled answer", Client::h1().try_send(req.expect("request"))).await;
    assert!(r.is_err(), "the body was cut: {:?}", r.map(|r| r.body));
    assert_eq!(legate.stat(IDLE).await, 1);
}

#[tokio::test]
async fn the_per_try_idle_timeout_ends_silent_tries_and_stalled_answers() {
    let up = upstream::http1().spawn().await;
    let policy = json!({"retry_policy": {"retry_on": "5xx", "num_retries": 1, "per_try_idle_timeout": "0.3s"}});
    let legate = start(&up, policy.clone()).await;
    let r = Client::h1().get(&legate.url("main", "/delay/2000ms")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (504, "upstream request timeout"));
    assert_eq!(legate.stat("cluster.up.upstream_rq_per_try_idle_timeout").await, 2);
    assert_eq!(legate.stat("cluster.up.upstream_rq_retry").await, 1);
    assert_eq!(legate.stat("cluster.up.upstream_rq_per_try_timeout").await, 0);
    assert_eq!(Client::h1().get(&legate.url("main", "/delay/100ms")).await.status.as_u16(), 200);
    // An answer that stalls after its head is cut too.
    let addr = stalling_upstream().await;
    let legate = Legate::start(config(addr, policy).yaml()).await;
    let req = crate::common::client::request(http::Method::GET, &legate.url("main", "/")).body(Default::default());
    let r = crate::common::bounded("a stalled answer", Client::h1().try_send(req.expect("request"))).await;
    assert!(r.is_err(), "the body was cut: {:?}", r.map(|r| r.body));
    assert_eq!(legate.stat("cluster.up.upstream_rq_per_try_idle_timeout").await, 1);
}
