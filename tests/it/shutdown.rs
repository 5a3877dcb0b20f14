//! Stopping: SIGTERM and `POST /quitquitquit` let in-flight requests finish and exit 0.

use crate::common::assert_eventually;
use crate::common::client::{self, Client};
use crate::common::config::{bootstrap, static_cluster, to_cluster};
use crate::common::legate::{self, Legate};
use crate::common::upstream::{self, Upstream};
use serde_json::json;

async fn start(up: &Upstream) -> Legate {
    start_with_drain(up, "10").await
}

async fn start_with_drain(up: &Upstream, drain_seconds: &str) -> Legate {
    legate::config(
        bootstrap()
            .routes(json!([to_cluster(json!({"prefix": "/"}), "service1")]))
            .cluster(static_cluster("service1", &[up.addr()]))
            .yaml(),
    )
    .arg("--drain-time-s")
    .arg(drain_seconds)
    .spawn()
    .await
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish() {
    let up = upstream::http1().name("slow").spawn().await;
    let mut legate = start(&up).await;
    let url = legate.url("main", "/delay/1500ms");
    let in_flight = tokio::spawn(async move { Client::h1().get(&url).await });
    assert_eventually!(up.in_flight() == 1, "the slow request reaches the upstream");
    legate.sigterm();
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "in-flight request completes: {}", r.text());
    assert_eq!(r.echo()["instance"], "slow");
    let status = legate.wait_exit().await;
    assert_eq!(status.code(), Some(0), "exit status; output:\n{}", legate.output());
}

/// SIGTERM closes the listeners at once: while an in-flight request keeps the process
/// draining, a new connection is refused (checked while legate still runs: after it exits
/// any port refuses); the request still completes and the exit status is 0.
#[tokio::test]
async fn sigterm_stops_accepting() {
    let up = upstream::http1().name("slow").spawn().await;
    let mut legate = start(&up).await;
    let addr = legate.listener("main");
    assert_eq!(Client::h1().get(&legate.url("main", "/")).await.status, 200);
    let url = legate.url("main", "/delay/5000ms");
    let in_flight = tokio::spawn(async move { Client::h1().get(&url).await });
    assert_eventually!(up.in_flight() == 1, "the slow request reaches the upstream");
    legate.sigterm();
    assert_eventually!(tokio::net::TcpStream::connect(addr).await.is_err(), "{addr} refuses new connections");
    assert!(legate.running(), "the listener only closed when legate exited:\n{}", legate.output());
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "the in-flight request completes: {}", r.text());
    let status = legate.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", legate.output());
}

#[tokio::test]
async fn quitquitquit_exits_zero() {
    let up = upstream::http1().spawn().await;
    let mut legate = start(&up).await;
    let r = legate.admin_post("/quitquitquit").await;
    assert_eq!(r.status, 200);
    let status = legate.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", legate.output());
}

#[tokio::test]
async fn quitquitquit_lets_the_in_flight_request_finish() {
    let up = upstream::http1().name("slow").spawn().await;
    let mut legate = start(&up).await;
    let url = legate.url("main", "/delay/1500ms");
    let in_flight = tokio::spawn(async move { Client::h1().get(&url).await });
    assert_eventually!(up.in_flight() == 1, "the slow request reaches the upstream");
    assert_eq!(legate.admin_post("/quitquitquit").await.status, 200);
    assert_eq!(in_flight.await.unwrap().status, 200);
    assert_eq!(legate.wait_exit().await.code(), Some(0));
}

#[tokio::test]
async fn drain_time_bounds_the_wait_for_in_flight_requests() {
    let up = upstream::http1().name("stuck").spawn().await;
    let mut legate = start_with_drain(&up, "1").await;
    let url = legate.url("main", "/delay/8000ms");
    let in_flight = tokio::spawn(async move {
        Client::h1().try_send(client::request(hyper::Method::GET, &url).body(Default::default()).unwrap()).await
    });
    assert_eventually!(up.in_flight() == 1, "the stuck request reaches the upstream");
    legate.sigterm();
    // The process gives up on the request after the drain time and still exits cleanly.
    let status = legate.wait_exit().await;
    assert_eq!(status.code(), Some(0), "exit status; output:\n{}", legate.output());
    assert!(in_flight.await.unwrap().is_err(), "the cut-off request does not get a response");
}
