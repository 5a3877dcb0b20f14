//! Downstream protocols and the headers a proxy adds or drops: HTTP/1.1 and h2c on one port,
//! large bodies, x-forwarded-proto, x-request-id, hop-by-hop headers.

use crate::common::client::{self, request, Client};
use crate::common::config::{bootstrap, static_cluster, to_cluster};
use crate::common::legate::Legate;
use crate::common::sha256;
use crate::common::upstream::{self, Upstream};
use bytes::Bytes;
use hyper::{Method, Version};
use serde_json::json;

async fn start(up: &Upstream) -> Legate {
    Legate::start(
        bootstrap()
            .routes(json!([to_cluster(json!({"prefix": "/"}), "service1")]))
            .cluster(static_cluster("service1", &[up.addr()]))
            .yaml(),
    )
    .await
}

#[tokio::test]
async fn http1_and_h2c_share_the_listener() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let r1 = Client::h1().get(&legate.url("main", "/one")).await;
    assert_eq!(r1.version, Version::HTTP_11);
    assert_eq!(r1.echo()["path"], "/one");
    let r2 = Client::h2c().get(&legate.url("main", "/two")).await;
    assert_eq!(r2.version, Version::HTTP_2);
    let e = r2.echo();
    assert_eq!(e["path"], "/two");
    assert_eq!(e["proto"], "HTTP/1.1", "the cluster speaks HTTP/1.1 upstream");
}

#[tokio::test]
async fn five_megabytes_both_ways() {
    let up = upstream::http1().name("big").spawn().await;
    let legate = start(&up).await;
    let body = Bytes::from(sha256::pattern(5 * 1024 * 1024 + 7));
    let want = sha256::hex(&body);
    for c in [Client::h1(), Client::h2c()] {
        let r = c.post(&legate.url("main", "/echo-body"), body.clone()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), body.len());
        assert_eq!(sha256::hex(&r.body), want);
        let e = c.post(&legate.url("main", "/upload"), body.clone()).await.echo();
        assert_eq!(e["body_len"], body.len());
        assert_eq!(e["body_sha256"], want);
        let r = c.get(&legate.url("main", "/bytes/5242880")).await;
        assert_eq!(sha256::hex(&r.body), sha256::hex(&sha256::pattern(5_242_880)));
    }
}

#[tokio::test]
async fn headers_added_upstream() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let c = Client::h1();
    let e = c.get(&legate.url("main", "/")).await.echo();
    let h = &e["headers"];
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-envoy-expected-rq-timeout-ms"], "15000");
    let id = h["x-request-id"].as_str().expect("x-request-id generated");
    let uuid = regex::Regex::new("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$").unwrap();
    assert!(uuid.is_match(id), "x-request-id {id:?} is not a UUID");
    let other = c.get(&legate.url("main", "/")).await.echo();
    assert_ne!(other["headers"]["x-request-id"], id, "a fresh id per request");
    let kept = c.get_with(&legate.url("main", "/"), &[("x-request-id", "client-chosen-id")]).await.echo();
    assert_eq!(kept["headers"]["x-request-id"], "client-chosen-id");
}

#[tokio::test]
async fn headers_added_downstream() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let r = Client::h1().get(&legate.url("main", "/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), Some("envoy"));
    let t = r.header("x-envoy-upstream-service-time").expect("x-envoy-upstream-service-time");
    assert!(t.parse::<u64>().is_ok(), "service time {t:?} is not a number");
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let r = Client::h1()
        .get_with(
            &legate.url("main", "/"),
            &[
                ("connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("x-echo-response-header", "keep-alive: timeout=9"),
                ("x-end-to-end", "kept"),
            ],
        )
        .await;
    let e = r.echo();
    let h = &e["headers"];
    for hop in ["keep-alive", "proxy-connection"] {
        assert!(h.get(hop).is_none(), "{hop} forwarded upstream: {h}");
    }
    assert_eq!(h["x-end-to-end"], "kept");
    assert_eq!(r.header("keep-alive"), None, "keep-alive forwarded downstream");
}

#[tokio::test]
async fn chunked_request_body_is_forwarded() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let r = client::raw(
        legate.listener("main"),
        b"POST /chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await
    .expect("a response");
    assert_eq!(r.status, 200);
    let e: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(e["body_len"], 11);
    assert_eq!(e["body_sha256"], sha256::hex(b"hello world"));
}

#[tokio::test]
async fn h2c_requests_are_multiplexed() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let c = Client::h2c();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        let url = legate.url("main", &format!("/delay/50ms?i={i}"));
        tasks.push(tokio::spawn(
            async move { c.send(request(Method::GET, &url).body(Default::default()).unwrap()).await },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    assert_eq!(up.requests(), 20);
}

/// The connection manager's `http2_protocol_options` reach the client: legate's SETTINGS
/// carry `max_concurrent_streams` (read back by an h2 client after one exchange).
#[tokio::test]
async fn http2_protocol_options_reach_the_client() {
    use crate::common::config::{direct, hcm, route_config, vhost};
    let mut manager = hcm(route_config(json!([vhost("all", &["*"], json!([direct(json!({"prefix": "/"}), "hi")]))])));
    manager["http2_protocol_options"] =
        json!({"max_concurrent_streams": 7, "initial_stream_window_size": 131072, "hpack_table_size": 4096});
    let legate = Legate::start(bootstrap().listener_hcm("main", manager).yaml()).await;
    let stream = tokio::net::TcpStream::connect(legate.listener("main")).await.expect("connect");
    let (sender, conn) = h2::client::handshake(stream).await.expect("h2 handshake");
    tokio::spawn(conn);
    let mut sender = sender.ready().await.expect("ready");
    let req = hyper::Request::get("http://x/").body(()).expect("request");
    let (resp, _) = sender.send_request(req, true).expect("send");
    let resp = crate::common::bounded("one exchange", resp).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(sender.current_max_send_streams(), 7);
}
