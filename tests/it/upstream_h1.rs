//! The own HTTP/1.1 client (`upstream::h1`) against real upstreams: a kept connection the
//! upstream closed while idle is never used for the next request, requests the own client
//! leaves to hyper's share its connections, and the current-thread runtime `--concurrency 1`
//! runs carries them all.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::client::Client;
use crate::common::config::{bootstrap, static_cluster, to_cluster};
use crate::common::legate::{self, Legate};
use crate::common::upstream;

fn config(addr: SocketAddr) -> String {
    bootstrap()
        .routes(json!([to_cluster(json!({"prefix": "/"}), "service1")]))
        .cluster(static_cluster("service1", &[addr]))
        .yaml()
}

/// An upstream that answers each request on a connection with `ok`, keep-alive, and closes
/// every connection 100 ms after its first answer (as an upstream's keep-alive timeout
/// would). Counts the connections it accepted.
async fn closes_idle() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                // Requests without bodies: the first ends at its blank line.
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used_again() {
    let (addr, accepted) = closes_idle().await;
    let legate = Legate::start(config(addr)).await;
    let c = Client::h1();
    for round in 0..3 {
        let r = c.get(&legate.url("main", "/")).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok"), "round {round}");
        // The upstream closes the kept connection meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "each request on a new connection");
    assert_eq!(legate.stat("cluster.service1.upstream_rq_503").await, 0);
    assert_eq!(legate.stat("cluster.service1.upstream_cx_destroy").await, 3);
}

#[tokio::test]
async fn requests_left_to_hyper_share_the_own_clients_connections() {
    let up = upstream::http1().name("shared").spawn().await;
    let legate = Legate::start(config(up.addr())).await;
    let c = Client::h1();
    // A bodiless GET (the own client), a POST whose body streams (hyper's, on the same
    // connection handed over), and a GET again on that connection.
    let first = c.get(&legate.url("main", "/a")).await.echo();
    let post = c.post(&legate.url("main", "/b"), "hello upstream").await.echo();
    let last = c.get(&legate.url("main", "/c")).await.echo();
    assert_eq!((first["method"].as_str(), first["req_on_conn"].as_u64()), (Some("GET"), Some(1)));
    assert_eq!(
        (post["method"].as_str(), post["body_len"].as_u64(), post["req_on_conn"].as_u64()),
        (Some("POST"), Some(14), Some(2))
    );
    assert_eq!(last["req_on_conn"], 3);
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn concurrency_one_runs_on_a_current_thread_runtime_and_serves() {
    let up = upstream::http1().name("one").spawn().await;
    let legate = legate::config(config(up.addr())).arg("--concurrency").arg("1").spawn().await;
    assert_eq!(legate.stat("server.concurrency").await, 1);
    let c = Client::h1();
    let urls: Vec<String> = (0..20).map(|i| legate.url("main", &format!("/{i}"))).collect();
    for r in futures_util::future::join_all(urls.iter().map(|u| c.get(u))).await {
        assert_eq!(r.status, 200);
    }
    let post = c.post(&legate.url("main", "/p"), vec![b'x'; 200_000]).await.echo();
    assert_eq!(post["body_len"], 200_000);
    // The admin answers on the same thread.
    assert_eq!(legate.admin_get("/ready").await.status, 200);
}
