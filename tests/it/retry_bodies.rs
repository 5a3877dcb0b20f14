//! Retries of requests whose body streams (chunked HTTP/1.1, HTTP/2 without content-length,
//! as gRPC clients send): the body is kept as it is forwarded, up to 1 MiB, and sent again
//! whole; past 1 MiB the request is not retried and `retry_or_shadow_abandoned` counts it.
//! Each case checked against Envoy 1.40 with the same config.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::common::config::{bootstrap, static_cluster, with_h2};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};
use crate::common::{bounded, dead_addr, sha256};

/// A request body of several chunks and no size hint: hyper sends it chunked on HTTP/1.1
/// and without `content-length` on HTTP/2.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// `total` bytes of the test pattern in chunks of at most `chunk` bytes.
fn chunks(total: usize, chunk: usize) -> (Chunks, Vec<u8>) {
    let data = sha256::pattern(total);
    let parts = data.chunks(chunk).map(Bytes::copy_from_slice).collect();
    (Chunks(parts), data)
}

/// POSTs `body` to `url` with `headers`; returns the status and the answer's body.
async fn post_streamed(h2: bool, url: &str, headers: &[(&str, &str)], body: Chunks) -> (u16, Bytes) {
    let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    builder.http2_only(h2);
    let client: hyper_util::client::legacy::Client<HttpConnector, Chunks> = builder.build_http();
    let mut req = Request::builder().method(Method::POST).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body).expect("request");
    bounded("streamed POST", async {
        let resp = client.request(req).await.expect("response");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, body)
    })
    .await
}

/// Cluster `c` with `retry_on` and two retries on every route.
async fn start(cluster: Value, retry_on: &str) -> Legate {
    let routes = json!([{"match": {"prefix": "/"}, "route": {"cluster": "c", "retry_policy": {"retry_on": retry_on, "num_retries": 2}}}]);
    Legate::start(bootstrap().routes(routes).cluster(cluster).yaml()).await
}

/// The upstream answers 503 to the first request with this key.
fn fail_once(key: &'static str) -> [(&'static str, &'static str); 2] {
    [("x-echo-fail-times", "1"), ("x-echo-fail-key", key)]
}

fn assert_whole_body(answer: &Bytes, sent: &[u8]) {
    let echo: Value = serde_json::from_slice(answer).expect("echo JSON");
    assert_eq!(echo["body_len"], json!(sent.len()), "the retried request carried the whole body");
    assert_eq!(echo["body_sha256"], json!(sha256::hex(sent)));
}

async fn assert_one_retry(legate: &Legate, up: &Upstream) {
    assert_eq!(up.requests(), 2, "the first attempt and one retry");
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry").await, 1);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry_success").await, 1);
    assert_eq!(legate.stat("cluster.c.retry_or_shadow_abandoned").await, 0);
}

/// A streamed POST (chunked on HTTP/1.1, without length on HTTP/2, both hops alike) that the
/// upstream fails once arrives whole on the retry.
async fn streamed_body_is_sent_again(h2: bool, total: usize, chunk: usize) {
    let up = if h2 { upstream::h2() } else { upstream::http1() }.name("up").spawn().await;
    let cluster = static_cluster("c", &[up.addr()]);
    let legate = start(if h2 { with_h2(cluster) } else { cluster }, "5xx").await;
    let (body, sent) = chunks(total, chunk);
    let (status, answer) = post_streamed(h2, &legate.url("main", "/"), &fail_once("a"), body).await;
    assert_eq!(status, 200);
    assert_whole_body(&answer, &sent);
    assert_one_retry(&legate, &up).await;
}

#[tokio::test]
async fn chunked_body_is_sent_again_on_retry() {
    streamed_body_is_sent_again(false, 100_000, 7_000).await;
}

#[tokio::test]
async fn h2_body_without_length_is_sent_again_on_retry() {
    streamed_body_is_sent_again(true, 50_000, 4_096).await;
}

#[tokio::test]
async fn failed_connect_retries_with_the_body_read_meanwhile() {
    // Round robin over a dead and a live host: every other request connects to the dead
    // one first, reading the body while it tries, then retries on the live one.
    let live = upstream::http1().name("live").spawn().await;
    let legate = start(static_cluster("c", &[dead_addr(), live.addr()]), "connect-failure").await;
    for i in 0..4 {
        let (body, sent) = chunks(30_000 + i, 1_000);
        let (status, answer) = post_streamed(false, &legate.url("main", "/"), &[], body).await;
        assert_eq!(status, 200, "request {i}");
        assert_whole_body(&answer, &sent);
    }
    assert_eq!(live.requests(), 4);
    assert!(legate.stat("cluster.c.upstream_rq_retry").await >= 1, "some requests went to the dead host first");
}

#[tokio::test]
async fn body_over_the_retry_buffer_is_not_retried() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(static_cluster("c", &[up.addr()]), "5xx").await;
    // Over Envoy's 1 MiB buffer: the 503 is passed on, without URX, and nothing is retried.
    let (body, _) = chunks(1_500_000, 64 * 1024);
    let (status, _) = post_streamed(false, &legate.url("main", "/"), &fail_once("big"), body).await;
    assert_eq!(status, 503);
    assert_eq!(up.requests(), 1);
    assert_eq!(legate.stat("cluster.c.retry_or_shadow_abandoned").await, 1);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry").await, 0);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry_limit_exceeded").await, 0);
    // A body of known length over the buffer is not retried either.
    let c = crate::common::client::Client::h1();
    let mut req = crate::common::client::request(Method::POST, &legate.url("main", "/"));
    for (k, v) in fail_once("big-known") {
        req = req.header(k, v);
    }
    let r =
        c.send(req.body(http_body_util::Full::new(Bytes::from(sha256::pattern(1_500_000)))).expect("request")).await;
    assert_eq!(r.status, 503);
    assert_eq!(up.requests(), 2);
    assert_eq!(legate.stat("cluster.c.retry_or_shadow_abandoned").await, 2);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry").await, 0);
    // Under the limit, the same request is retried.
    let (body, sent) = chunks(900_000, 64 * 1024);
    let (status, answer) = post_streamed(false, &legate.url("main", "/"), &fail_once("small"), body).await;
    assert_eq!(status, 200);
    assert_whole_body(&answer, &sent);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry").await, 1);
}

/// An upstream that answers its first connection's request with 503 as soon as the headers
/// are in, without reading the body, and every later one with the length of the chunked body
/// it read.
async fn early_503_upstream() -> std::net::SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut s = BufReader::new(stream);
                let mut line = String::new();
                while s.read_line(&mut line).await.is_ok_and(|r| r > 0) && line != "\r\n" {
                    line.clear();
                }
                if n == 0 {
                    let _ =
                        s.get_mut().write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
                    let _ = s.read_to_end(&mut Vec::new()).await;
                    return;
                }
                let mut len = 0usize;
                loop {
                    line.clear();
                    if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let Ok(size) = usize::from_str_radix(line.trim(), 16) else { return };
                    let mut chunk = vec![0; size + 2];
                    if s.read_exact(&mut chunk).await.is_err() {
                        return;
                    }
                    if size == 0 {
                        break;
                    }
                    len += size;
                }
                let body = len.to_string();
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                let _ = s.get_mut().write_all(format!("{head}{body}").as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_early_503_is_retried_while_the_client_still_sends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = early_503_upstream().await;
    let legate = start(static_cluster("c", &[up]), "5xx").await;
    let mut client = tokio::net::TcpStream::connect(legate.listener("main")).await.expect("connect");
    let head = "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    client.write_all(format!("{head}5\r\nhello\r\n").as_bytes()).await.expect("write");
    // The 503 came back before the body ended; the retry starts, with the first 5 bytes.
    crate::common::assert_eventually!(legate.stat("cluster.c.upstream_rq_retry").await == 1, "a retry started");
    client.write_all(b"6\r\n world\r\n0\r\n\r\n").await.expect("write");
    let mut answer = String::new();
    bounded("the answer", client.read_to_string(&mut answer)).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n11"), "the retry sent all 11 bytes: {answer}");
}

#[tokio::test]
async fn the_listener_buffer_limit_bounds_the_retry_buffer() {
    let up = upstream::http1().name("up").spawn().await;
    let routes = json!([{"match": {"prefix": "/"}, "route": {"cluster": "c", "retry_policy": {"retry_on": "5xx"}}}]);
    let mut config = bootstrap().routes(routes).cluster(static_cluster("c", &[up.addr()])).value();
    config["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"] = json!(1000);
    let legate = Legate::start(config.to_string()).await;
    let (body, _) = chunks(2_000, 500);
    let (status, _) = post_streamed(false, &legate.url("main", "/"), &fail_once("big"), body).await;
    assert_eq!(status, 503, "2,000 bytes are over the listener's 1,000: not retried");
    assert_eq!(legate.stat("cluster.c.retry_or_shadow_abandoned").await, 1);
    let (body, sent) = chunks(900, 300);
    let (status, answer) = post_streamed(false, &legate.url("main", "/"), &fail_once("small"), body).await;
    assert_eq!(status, 200);
    assert_whole_body(&answer, &sent);
}
