//! Clusters and connections to upstreams: load-balancing policies, endpoint weights,
//! HTTP/1.1 keep-alive reuse and HTTP/2 upstreams carrying gRPC.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::client::{request, Client};
use crate::common::config::{
    bootstrap, endpoint, static_cluster, static_cluster_with, to_cluster, weighted_endpoint, with_h2,
};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};
use crate::common::{assert_eventually, EVENTUALLY};
use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

async fn three(prefix: &str) -> Vec<Upstream> {
    let mut ups = Vec::new();
    for i in 1..=3 {
        ups.push(upstream::http1().name(&format!("{prefix}{i}")).spawn().await);
    }
    ups
}

async fn start(cluster: Value) -> Legate {
    Legate::start(bootstrap().routes(json!([to_cluster(json!({"prefix": "/"}), "service1")])).cluster(cluster).yaml())
        .await
}

async fn instances(legate: &Legate, n: usize) -> Vec<String> {
    let c = Client::h1();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(c.get(&legate.url("main", "/")).await.instance());
    }
    out
}

fn counts(names: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn round_robin_is_a_strict_cycle() {
    let ups = three("rr").await;
    let addrs: Vec<_> = ups.iter().map(|u| u.addr()).collect();
    let legate = start(static_cluster("service1", &addrs)).await;
    let seen = instances(&legate, 12).await;
    let first: std::collections::HashSet<_> = seen[..3].iter().collect();
    assert_eq!(first.len(), 3, "first three requests hit three hosts: {seen:?}");
    for i in 3..seen.len() {
        assert_eq!(seen[i], seen[i - 3], "not a strict cycle: {seen:?}");
    }
}

#[tokio::test]
async fn random_spreads_over_all_hosts() {
    let ups = three("rand").await;
    let addrs: Vec<_> = ups.iter().map(|u| u.addr()).collect();
    let mut cluster = static_cluster("service1", &addrs);
    cluster["lb_policy"] = json!("RANDOM");
    let legate = start(cluster).await;
    let seen = counts(&instances(&legate, 300).await);
    for u in &ups {
        let n = seen.get(u.name()).copied().unwrap_or(0);
        // Expected 100 each; 40 is more than 7 standard deviations away.
        assert!(n >= 40, "{} got {n} of 300: {seen:?}", u.name());
    }
}

/// An upstream that reads each request and never answers: every request sent to it stays
/// active. Returns its address and how many connections sent it something.
async fn stuck_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&held);
    let task = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            if tokio::time::timeout(EVENTUALLY, s.read(&mut buf)).await.is_ok_and(|r| r.is_ok_and(|n| n > 0)) {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            conns.push(s);
        }
    });
    (addr, held, task)
}

/// LEAST_REQUEST is Envoy's power of two choices: two hosts drawn at random, the one with
/// fewer active requests taken. With no load it uses every host; with one host holding
/// requests, a new request goes to the idle host whenever the two draws differ (3 times in
/// 4 with two hosts), where random choice would send it there half the time and a reversed
/// comparison a quarter of the time.
#[tokio::test]
async fn least_request_uses_every_host_and_avoids_the_busy_one() {
    let ups = three("lr").await;
    let addrs: Vec<_> = ups.iter().map(|u| u.addr()).collect();
    let mut cluster = static_cluster("service1", &addrs);
    cluster["lb_policy"] = json!("LEAST_REQUEST");
    let legate = start(cluster).await;
    let seen = counts(&instances(&legate, 150).await);
    for u in &ups {
        assert!(seen.get(u.name()).copied().unwrap_or(0) > 0, "{} unused: {seen:?}", u.name());
    }
    drop(legate);

    let idle = upstream::http1().name("idle").spawn().await;
    let (stuck, held, stuck_task) = stuck_upstream().await;
    let mut cluster = static_cluster("service1", &[idle.addr(), stuck]);
    cluster["lb_policy"] = json!("LEAST_REQUEST");
    let legate = start(cluster).await;
    let url = legate.url("main", "/");
    let mut parked = Vec::new();
    // One request at a time, each seen by its host before the next is sent.
    let mut send = |sent: usize| {
        let req = request(Method::GET, &url).body(Default::default()).expect("request");
        parked.push(tokio::spawn(async move { Client::h1().try_send(req).await.ok() }));
        sent + 1
    };
    let mut sent = 0;
    while held.load(Ordering::SeqCst) < 4 {
        assert!(sent < 200, "{sent} requests and still not 4 on the stuck host");
        sent = send(sent);
        assert_eventually!(idle.requests() + held.load(Ordering::SeqCst) == sent, "request {sent} reached a host");
    }
    let (idle_before, stuck_before) = (idle.requests(), held.load(Ordering::SeqCst));
    const N: usize = 200;
    for _ in 0..N {
        sent = send(sent);
        assert_eventually!(idle.requests() + held.load(Ordering::SeqCst) == sent, "request {sent} reached a host");
    }
    let (to_idle, to_stuck) = (idle.requests() - idle_before, held.load(Ordering::SeqCst) - stuck_before);
    // Expected 150 of 200 (standard deviation 6); random choice would give 100 (7), a
    // reversed comparison 50: 125 is over 4 deviations from each.
    assert!(to_idle >= 125, "the idle host got {to_idle} of {N}, the busy one {to_stuck}");
    for p in parked {
        p.abort();
    }
    stuck_task.abort();
}

#[tokio::test]
async fn endpoint_weights_shape_round_robin() {
    let a = upstream::http1().name("heavy").spawn().await;
    let b = upstream::http1().name("light").spawn().await;
    let legate =
        start(static_cluster_with("service1", vec![weighted_endpoint(a.addr(), 3), weighted_endpoint(b.addr(), 1)]))
            .await;
    let seen = counts(&instances(&legate, 400).await);
    let heavy = seen.get("heavy").copied().unwrap_or(0);
    // Weighted round robin is deterministic (3:1); leave room for the start offset.
    assert!((280..=320).contains(&heavy), "heavy got {heavy} of 400: {seen:?}");
}

#[tokio::test]
async fn http1_upstream_connections_are_reused() {
    let up = upstream::http1().name("ka").spawn().await;
    let legate = start(static_cluster("service1", &[up.addr()])).await;
    let c = Client::h1();
    let mut last = Value::Null;
    for _ in 0..5 {
        last = c.get(&legate.url("main", "/")).await.echo();
        assert_eq!(last["proto"], "HTTP/1.1");
    }
    assert_eq!(up.connections(), 1, "one upstream connection for sequential requests");
    assert_eq!(last["req_on_conn"], 5);
    assert_eventually!(legate.stat("cluster.service1.upstream_cx_total").await == 1, "upstream_cx_total is 1");
}

#[tokio::test]
async fn upstream_connection_close_opens_a_new_connection() {
    let up = upstream::http1().name("closer").spawn().await;
    let legate = start(static_cluster("service1", &[up.addr()])).await;
    let c = Client::h1();
    let r = c.get_with(&legate.url("main", "/"), &[("x-echo-close", "1")]).await;
    assert_eq!(r.status, 200);
    let e = c.get(&legate.url("main", "/")).await.echo();
    assert_eq!(e["conn_seq"], 2, "the closed connection is not reused");
    assert_eq!(e["req_on_conn"], 1);
}

#[tokio::test]
async fn h2_upstream_carries_grpc_with_trailers() {
    let up = upstream::h2().name("grpc").spawn().await;
    let legate = start(with_h2(static_cluster("service1", &[up.addr()]))).await;
    let c = Client::h2c();
    let frame = Bytes::from_static(b"\x00\x00\x00\x00\x03abc");
    for _ in 0..3 {
        let req = request(Method::POST, &legate.url("main", "/helloworld.Greeter/SayHello"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(frame.clone().into())
            .unwrap();
        let r = c.send(req).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/grpc"));
        let trailers = r.trailers.as_ref().expect("trailers reach the client");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        let doc: Value = serde_json::from_slice(&r.body[5..]).expect("gRPC frame holds JSON");
        assert_eq!(doc["proto"], "HTTP/2.0");
        assert_eq!(doc["path"], "/helloworld.Greeter/SayHello");
        assert_eq!(doc["body_len"], 8);
        assert_eq!(doc["headers"]["te"], "trailers");
    }
    assert_eq!(up.connections(), 1, "requests multiplexed on one h2 connection");
}

#[tokio::test]
async fn h1_downstream_to_h2_upstream() {
    let up = upstream::h2().name("h2only").spawn().await;
    let legate = start(with_h2(static_cluster("service1", &[up.addr()]))).await;
    let body = vec![7u8; 100_000];
    let e = Client::h1().post(&legate.url("main", "/upload"), body.clone()).await.echo();
    assert_eq!(e["proto"], "HTTP/2.0");
    assert_eq!(e["body_len"], 100_000);
    assert_eq!(e["body_sha256"], crate::common::sha256::hex(&body));
}

#[tokio::test]
async fn endpoints_from_several_localities_are_all_used() {
    let ups = three("loc").await;
    let mut cluster = static_cluster_with("service1", vec![endpoint(ups[0].addr())]);
    cluster["load_assignment"]["endpoints"] = json!([
        {"lb_endpoints": [endpoint(ups[0].addr()), endpoint(ups[1].addr())]},
        {"lb_endpoints": [endpoint(ups[2].addr())]},
    ]);
    let legate = start(cluster).await;
    let seen = counts(&instances(&legate, 30).await);
    assert_eq!(seen.len(), 3, "all three endpoints used: {seen:?}");
}

/// A small `per_connection_buffer_limit_bytes` bounds how far an upstream connection's
/// buffers grow, but, as in Envoy (a soft limit), a large answer still streams through
/// whole and a 30 KB response header still fits.
#[tokio::test]
async fn a_small_cluster_buffer_limit_still_carries_big_answers() {
    let up = upstream::http1().name("up").spawn().await;
    let mut cluster = static_cluster("service1", &[up.addr()]);
    cluster["per_connection_buffer_limit_bytes"] = json!(8192);
    let legate = start(cluster).await;
    let big_header = format!("x-big: {}", "b".repeat(30_000));
    let r =
        Client::h1().get_with(&legate.url("main", "/bytes/300000"), &[("x-echo-response-header", &big_header)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 300_000);
    assert_eq!(r.body.as_ref(), crate::common::sha256::pattern(300_000).as_slice());
    assert_eq!(r.header("x-big").map(str::len), Some(30_000));
}
