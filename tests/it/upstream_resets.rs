//! HTTP/2 upstreams that reset a stream or answer with a gRPC error: Envoy's `UR` flag,
//! bodies and details, `upstream_rq_rx_reset`, and the `refused-stream` and gRPC retry
//! conditions. The expected lines are what Envoy 1.40 logs for the same config and upstream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::access_log::{file_log, lines, log_dir, read};
use crate::common::client::Client;
use crate::common::config::{bootstrap, hcm, route_config, static_cluster, vhost, with_h2};
use crate::common::legate::Legate;

/// An h2c upstream on the h2 crate (hyper cannot choose a reset reason). For the first
/// `x-fail-times` (default 1) requests with the same `x-key`, a path ending in `/refuse`
/// gets RST_STREAM(REFUSED_STREAM), `/rst` RST_STREAM(INTERNAL_ERROR) and `.../grpc/N` a
/// trailers-only answer with `grpc-status: N`; every other request gets 200 "ok". Returns
/// its address and a count of the requests it received.
async fn resetting_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let counter = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (requests, seen) = (Arc::clone(&counter), Arc::clone(&seen));
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(stream).await else { return };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                    let times: usize = header("x-fail-times").and_then(|t| t.parse().ok()).unwrap_or(1);
                    let n = {
                        let mut seen = seen.lock().expect("lock");
                        let n = seen.entry(header("x-key").unwrap_or_default()).or_insert(0);
                        *n += 1;
                        *n
                    };
                    let path = req.uri().path().to_string();
                    let last = path.rsplit('/').next().unwrap_or_default();
                    if n <= times && last == "refuse" {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                    } else if n <= times && last == "rst" {
                        respond.send_reset(h2::Reason::INTERNAL_ERROR);
                    } else if let Some(code) = path.split("/grpc/").nth(1).filter(|_| n <= times) {
                        let resp = http::Response::builder()
                            .header("content-type", "application/grpc")
                            .header("grpc-status", code)
                            .body(())
                            .expect("response");
                        let _ = respond.send_response(resp, true);
                    } else if let Ok(mut body) = respond.send_response(http::Response::new(()), false) {
                        let _ = body.send_data(Bytes::from_static(b"ok"), true);
                    }
                }
            });
        }
    });
    (addr, requests)
}

const FORMAT: &str = "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% \
                      %UPSTREAM_REQUEST_ATTEMPT_COUNT%\n";

/// Listener `main` to the h2 cluster `c`, logging [`FORMAT`] to `log`: `/refused-retry`
/// retries `refused-stream`, `/grpc-retry` retries `unavailable,cancelled`, the rest not.
async fn start(up: SocketAddr, log: &std::path::Path) -> Legate {
    let retry = |on: &str| json!({"cluster": "c", "retry_policy": {"retry_on": on, "num_retries": 2}});
    let routes = json!([
        {"match": {"prefix": "/refused-retry"}, "route": retry("refused-stream")},
        {"match": {"prefix": "/grpc-retry"}, "route": retry("unavailable,cancelled")},
        {"match": {"prefix": "/"}, "route": {"cluster": "c"}},
    ]);
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    manager["access_log"] = json!([file_log(log, Some(json!({ "text_format": FORMAT })))]);
    let cluster: Value = with_h2(static_cluster("c", &[up]));
    Legate::start(bootstrap().listener_hcm("main", manager).cluster(cluster).yaml()).await
}

#[tokio::test]
async fn stream_resets_are_ur_and_retried_as_envoy_does() {
    let (up, requests) = resetting_upstream().await;
    let (_dir, log) = log_dir();
    let legate = start(up, &log).await;
    let c = Client::h1();
    let get = |path: &str, key: &str, times: &str| {
        let (c, url) = (c.clone(), legate.url("main", path));
        let (key, times) = (key.to_string(), times.to_string());
        async move { c.get_with(&url, &[("x-key", &key), ("x-fail-times", &times)]).await }
    };
    let reason = "upstream connect error or disconnect/reset before headers. reset reason: ";
    let r = get("/refuse", "a", "1").await;
    assert_eq!((r.status.as_u16(), r.text()), (503, format!("{reason}remote refused stream reset")));
    let r = get("/rst", "b", "1").await;
    assert_eq!((r.status.as_u16(), r.text()), (503, format!("{reason}remote reset")));
    assert_eq!(get("/refused-retry/refuse", "c", "1").await.status, 200);
    assert_eq!(get("/refused-retry/refuse", "d", "5").await.status, 503);
    // Only a refused stream is retried under `refused-stream`.
    assert_eq!(get("/refused-retry/rst", "e", "1").await.status, 503);
    // gRPC errors come as 200 with `grpc-status` in the headers.
    let r = get("/grpc-retry/grpc/14", "f", "1").await;
    assert_eq!((r.status.as_u16(), r.text(), r.header("grpc-status")), (200, "ok".to_string(), None));
    let r = get("/grpc-retry/grpc/14", "g", "5").await;
    assert_eq!(r.header("grpc-status"), Some("14"), "the last answer is passed on");
    // `internal` is not in the route's conditions.
    assert_eq!(get("/grpc-retry/grpc/13", "h", "1").await.header("grpc-status"), Some("13"));
    let refused = "upstream_reset_before_response_started{remote_refused_stream_reset}";
    lines(&log, 8).await;
    assert_eq!(
        read(&log),
        format!(
            "/refuse 503 UR {refused} 1\n\
             /rst 503 UR upstream_reset_before_response_started{{remote_reset}} 1\n\
             /refused-retry/refuse 200 - via_upstream 2\n\
             /refused-retry/refuse 503 URX,UR {refused} 3\n\
             /refused-retry/rst 503 UR upstream_reset_before_response_started{{remote_reset}} 1\n\
             /grpc-retry/grpc/14 200 - via_upstream 2\n\
             /grpc-retry/grpc/14 200 URX via_upstream 3\n\
             /grpc-retry/grpc/13 200 - via_upstream 1\n"
        )
    );
    assert_eq!(requests.load(Ordering::SeqCst), 14);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry").await, 6);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry_limit_exceeded").await, 2);
    // Envoy counts the INTERNAL_ERROR resets, not the refused streams.
    assert_eq!(legate.stat("cluster.c.upstream_rq_rx_reset").await, 2);
}
