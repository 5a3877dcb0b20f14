//! Every timeout field legate accepts has its observable effect, with Envoy's answers (checked
//! against Envoy 1.40), and those it does not implement are refused naming the field:
//!
//! | field | effect asserted |
//! |---|---|
//! | route `timeout` | counts from the end of the request: a slow upload is a 200; a slow answer a 504 |
//! | `retry_policy.per_try_timeout` | likewise from the end of the request |
//! | HCM `stream_idle_timeout` | 504 `stream timeout` (408 while uploading or while the head stalls), `downstream_rq_idle_timeout`; not between keep-alive requests |
//! | HCM `request_timeout` | 408 `request timeout` + `connection: close`, `downstream_rq_timeout` |
//! | HCM `common_http_protocol_options.idle_timeout` | idle keep-alive closed, `downstream_cx_idle_timeout` |
//! | HCM `drain_timeout` | an idle connection stays usable (answers `connection: close`) while it drains |
//! | cluster `common_http_protocol_options.idle_timeout` | idle upstream connection closed, `upstream_cx_idle_timeout` |
//! | admin `access_log_path` | one line per admin request; `/dev/null` works |
//! | the rest (`request_headers_timeout`, `max_connection_duration`, ...) | refused, named |
//!
//! Timeouts are a few hundred milliseconds so the tests stay fast.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::client::Client;
use crate::common::config::{bootstrap, hcm, route_config, static_cluster, vhost, Bootstrap};
use crate::common::legate::{validate, Legate};
use crate::common::upstream::{self, Upstream};
use crate::common::{assert_eventually, bounded};

/// Listener `main` with `extra` merged into its connection manager, one route with `route`
/// options to the upstream.
fn config(up: &Upstream, extra: Value, route: Value) -> Bootstrap {
    let mut action = json!({"cluster": "up"});
    merge(&mut action, route);
    let routes = json!([{"match": {"prefix": "/"}, "route": action}]);
    let mut h = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    merge(&mut h, extra);
    bootstrap().listener_hcm("main", h).cluster(static_cluster("up", &[up.addr()]))
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// Sends a POST of 20 bytes in 4 pieces `gap` apart and reads the answer head and body.
async fn slow_upload(addr: SocketAddr, gap: Duration) -> String {
    upload(addr, gap, false).await
}

/// [`slow_upload`], chunked (a body of unknown length is streamed, even under a retry policy).
async fn upload(addr: SocketAddr, gap: Duration, chunked: bool) -> String {
    bounded("slow upload", async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let (head, piece, last): (&[u8], &[u8], &[u8]) = if chunked {
            (b"POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n", b"5\r\n12345\r\n", b"0\r\n\r\n")
        } else {
            (b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 20\r\n\r\n", b"12345", b"")
        };
        s.write_all(head).await.expect("write");
        for i in 0..4 {
            tokio::time::sleep(gap).await;
            // The proxy may have answered and closed already (the 408 cases).
            if s.write_all(piece).await.is_err() || (i == 3 && s.write_all(last).await.is_err()) {
                break;
            }
        }
        read_answer(&mut s).await
    })
    .await
}

/// Reads until the peer closes or a whole answer with a content-length has arrived.
async fn read_answer(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok());
            if len.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).to_string()
}

#[tokio::test]
async fn the_route_timeout_counts_from_the_end_of_the_request() {
    let up = upstream::http1().spawn().await;
    let legate = Legate::start(config(&up, json!({}), json!({"timeout": "0.4s"})).yaml()).await;
    // 20 bytes over 0.8 s: longer than the route timeout, which has not started yet.
    let answer = slow_upload(legate.listener("main"), Duration::from_millis(200)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Counted from the end: a slow answer is still cut.
    let r = Client::h1().get(&legate.url("main", "/delay/1500ms")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (504, "upstream request timeout"));
    assert_eq!(legate.stat("cluster.up.upstream_rq_timeout").await, 1);
}

#[tokio::test]
async fn the_per_try_timeout_counts_from_the_end_of_the_request() {
    let up = upstream::http1().spawn().await;
    let policy =
        json!({"retry_policy": {"retry_on": "5xx", "num_retries": 1, "per_try_timeout": "0.3s"}, "timeout": "0s"});
    let legate = Legate::start(config(&up, json!({}), policy).yaml()).await;
    let answer = upload(legate.listener("main"), Duration::from_millis(200), true).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let r = Client::h1().get(&legate.url("main", "/delay/1500ms")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (504, "upstream request timeout"));
    assert_eq!(legate.stat("cluster.up.upstream_rq_per_try_timeout").await, 2);
}

#[tokio::test]
async fn stream_idle_timeout_answers_504_then_408_while_uploading() {
    let up = upstream::http1().spawn().await;
    let legate =
        Legate::start(config(&up, json!({"stream_idle_timeout": "0.3s"}), json!({"timeout": "0s"})).yaml()).await;
    let started = Instant::now();
    let r = Client::h1().get(&legate.url("main", "/delay/2000ms")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (504, "stream timeout"));
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    // Pieces 0.2 s apart keep the stream alive; the answer is then fast.
    let answer = slow_upload(legate.listener("main"), Duration::from_millis(150)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Pieces further apart than the timeout: the request is not whole, Envoy's 408.
    let answer = slow_upload(legate.listener("main"), Duration::from_millis(500)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.ends_with("stream timeout"), "{answer}");
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_idle_timeout").await, 2);
}

#[tokio::test]
async fn request_timeout_answers_408_and_closes() {
    let up = upstream::http1().spawn().await;
    let legate = Legate::start(config(&up, json!({"request_timeout": "0.4s"}), json!({})).yaml()).await;
    let answer = slow_upload(legate.listener("main"), Duration::from_millis(200)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.ends_with("request timeout"), "{answer}");
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_timeout").await, 1);
    // A request that arrives in time is not bound by it, however long the answer takes.
    let r = Client::h1().get(&legate.url("main", "/delay/600ms")).await;
    assert_eq!(r.status, 200);
}

/// Sends one GET on a new connection and returns the connection after the answer.
async fn one_request(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    let answer = bounded("answer", read_answer(&mut s)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    s
}

#[tokio::test]
async fn an_idle_connection_is_drained_then_closed() {
    let up = upstream::http1().spawn().await;
    let extra = json!({"common_http_protocol_options": {"idle_timeout": "0.3s"}, "drain_timeout": "0.1s"});
    let legate = Legate::start(config(&up, extra, json!({})).yaml()).await;
    let mut s = one_request(legate.listener("main")).await;
    let idle = Instant::now();
    let mut buf = [0u8; 16];
    let n = bounded("close", s.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0, "closed without a word");
    assert!(idle.elapsed() >= Duration::from_millis(350), "closed after {:?}", idle.elapsed());
    assert_eq!(legate.stat("http.ingress_http.downstream_cx_idle_timeout").await, 1);
}

#[tokio::test]
async fn a_draining_idle_connection_still_answers_within_the_drain_timeout() {
    let up = upstream::http1().spawn().await;
    let extra = json!({"common_http_protocol_options": {"idle_timeout": "0.2s"}, "drain_timeout": "3s"});
    let legate = Legate::start(config(&up, extra, json!({})).yaml()).await;
    let addr = legate.listener("main");
    let mut s = one_request(addr).await;
    assert_eventually!(
        legate.stat("http.ingress_http.downstream_cx_idle_timeout").await == 1,
        "the connection went idle"
    );
    // Draining: served, with `connection: close` as Envoy does.
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    let answer = bounded("answer", read_answer(&mut s)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}

#[tokio::test]
async fn an_idle_upstream_connection_is_closed() {
    let up = upstream::http1().spawn().await;
    let mut cluster = static_cluster("up", &[up.addr()]);
    merge(
        &mut cluster,
        json!({"typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": {"idle_timeout": "0.2s"},
            "explicit_http_config": {"http_protocol_options": {}},
        }}}),
    );
    let routes = json!([{"match": {"prefix": "/"}, "route": {"cluster": "up"}}]);
    let legate = Legate::start(bootstrap().routes(routes).cluster(cluster).yaml()).await;
    let r = Client::h1().get(&legate.url("main", "/")).await;
    assert_eq!(r.status, 200);
    assert_eventually!(legate.stat("cluster.up.upstream_cx_idle_timeout").await == 1, "idle upstream closed");
    assert_eq!(legate.stat("cluster.up.upstream_cx_active").await, 0);
    // The next request gets a new connection.
    let r = Client::h1().get(&legate.url("main", "/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(legate.stat("cluster.up.upstream_cx_total").await, 2);
}

fn with_admin_log(b: &Bootstrap, path: &str) -> String {
    let mut v = b.value();
    v["admin"]["access_log_path"] = json!(path);
    serde_yaml::to_string(&v).expect("yaml")
}

#[tokio::test]
async fn the_admin_access_log_has_a_line_per_admin_request() {
    let up = upstream::http1().spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("admin.log");
    let b = config(&up, json!({}), json!({}));
    let legate = Legate::start(with_admin_log(&b, path.to_str().expect("utf-8"))).await;
    let r = Client::h1().get_with(&legate.admin_url("/ready"), &[("user-agent", "probe/1")]).await;
    assert_eq!(r.status, 200);
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    assert_eventually!(read().contains("\"probe/1\""), "admin log: {:?}", read());
    let line = read().lines().find(|l| l.contains("probe/1")).unwrap_or_default().to_string();
    assert!(line.starts_with('[') && line.contains("] \"GET /ready HTTP/1.1\" 200 - 0 5 "), "{line}");

    // `/dev/null` keeps working: the admin serves, nothing is written anywhere.
    let legate = Legate::start(with_admin_log(&b, "/dev/null")).await;
    assert_eq!(legate.admin_get("/ready").await.status, 200);
}

#[tokio::test]
async fn timeouts_legate_does_not_implement_are_refused_by_name() {
    let up = upstream::http1().spawn().await;
    let h2_cluster = json!({"typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "common_http_protocol_options": {"idle_timeout": "1s"},
        "explicit_http_config": {"http2_protocol_options": {}},
    }}});
    let cluster_common = |field: &str| {
        json!({"typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": {field: "1s"},
            "explicit_http_config": {"http_protocol_options": {}},
        }}})
    };
    let cases: Vec<(&str, Value, Value, Value)> = vec![
        ("request_headers_timeout", json!({"request_headers_timeout": "1s"}), json!({}), json!({})),
        (
            "max_connection_duration",
            json!({"common_http_protocol_options": {"max_connection_duration": "1s"}}),
            json!({}),
            json!({}),
        ),
        (
            "max_requests_per_connection",
            json!({"common_http_protocol_options": {"max_requests_per_connection": 5}}),
            json!({}),
            json!({}),
        ),
        (
            "max_stream_duration",
            json!({"common_http_protocol_options": {"max_stream_duration": "1s"}}),
            json!({}),
            json!({}),
        ),
        ("idle_timeout", json!({}), json!({}), h2_cluster),
        ("max_connection_duration", json!({}), json!({}), cluster_common("max_connection_duration")),
        ("max_stream_duration", json!({}), json!({}), cluster_common("max_stream_duration")),
        ("max_requests_per_connection", json!({}), json!({}), json!({"max_requests_per_connection": 5})),
    ];
    for (field, extra, route, cluster_extra) in cases {
        let mut b = config(&up, extra.clone(), route.clone()).value();
        if let Some(c) = b["static_resources"]["clusters"].get_mut(0) {
            merge(c, cluster_extra.clone());
        }
        let text = serde_yaml::to_string(&b).expect("yaml");
        let (_file, run) = validate("timeouts.yaml", &text).await;
        assert_eq!(run.code(), Some(1), "{field} ({extra} {route} {cluster_extra}) accepted:\n{}", run.output);
        assert!(
            run.output.lines().any(|l| l.contains(field) && l.contains("not implemented")),
            "{field} not named:\n{}",
            run.output
        );
    }
}

/// A head that stops arriving halfway gets Envoy's `408 stream timeout` once the stream idle
/// timeout passes (Envoy 1.40 answers the same bytes), counted as an idle timeout.
#[tokio::test]
async fn a_stalled_head_gets_408_after_the_stream_idle_timeout() {
    let up = upstream::http1().spawn().await;
    let legate = Legate::start(config(&up, json!({"stream_idle_timeout": "0.4s"}), json!({})).yaml()).await;
    let addr = legate.listener("main");
    // A first request, then half of a second head on the same connection.
    let mut s = one_request(addr).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.write_all(b"GET /second HTTP/1.1\r\nhost: x\r\n").await.expect("write");
    let started = Instant::now();
    let answer = bounded("408", read_answer(&mut s)).await;
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nstream timeout"), "{answer}");
    assert!(waited >= Duration::from_millis(350) && waited < Duration::from_secs(3), "after {waited:?}");
    let mut rest = [0u8; 16];
    assert_eq!(bounded("close", s.read(&mut rest)).await.unwrap_or(0), 0, "closed after the 408");
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_idle_timeout").await, 1);
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_4xx").await, 1);
    assert_eq!(up.requests(), 1, "the stalled request never reached the upstream");
}

/// Between requests, a keep-alive connection waits on its `idle_timeout` alone (Envoy's
/// default is an hour): not on the stream idle timeout, nor on a header read timer of its
/// own (hyper's closed it after 30 s).
#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_30_seconds() {
    let up = upstream::http1().spawn().await;
    let legate = Legate::start(config(&up, json!({"stream_idle_timeout": "0.4s"}), json!({})).yaml()).await;
    let mut s = one_request(legate.listener("main")).await;
    tokio::time::sleep(Duration::from_secs(31)).await;
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    let answer = bounded("answer", read_answer(&mut s)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_idle_timeout").await, 0);
}
