//! `hedge_policy.hedge_on_per_try_timeout` (issue 14), checked against Envoy 1.40 with a slow
//! first request and a fast second one: the per-try timeout sends a retry beside the slow
//! attempt, the fast answer wins (`x-envoy-attempt-count: 2`, no `upstream_rq_per_try_timeout`,
//! the winner's host in the log); without hedging the per-try timeout ends the attempt; the
//! route timeout ends every attempt out (504 `UT`, `upstream_rq_timeout` once per attempt); a
//! 5xx that may not be retried waits for the attempt still out (200 `URX`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::access_log::file_log;
use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, hcm, route_config, static_cluster};
use crate::common::legate::Legate;

/// What the `n`th request (counted over both hosts) meets: a delay and a status.
type Plan = Vec<(u64, u16)>;

/// Two HTTP/1.1 hosts sharing one plan; each answers with its own address as the body.
struct Hosts {
    addrs: [SocketAddr; 2],
    /// Every request head received, with the address that received it, in order.
    seen: Arc<Mutex<Vec<(SocketAddr, String)>>>,
}

impl Hosts {
    async fn spawn(plan: Plan) -> Hosts {
        let plan = Arc::new(plan);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut addrs = Vec::new();
        for _ in 0..2 {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = l.local_addr().expect("addr");
            addrs.push(addr);
            let (plan, seen) = (Arc::clone(&plan), Arc::clone(&seen));
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    tokio::spawn(serve(s, addr, Arc::clone(&plan), Arc::clone(&seen)));
                }
            });
        }
        Hosts { addrs: [addrs[0], addrs[1]], seen }
    }

    fn seen(&self) -> Vec<(SocketAddr, String)> {
        self.seen.lock().expect("lock").clone()
    }
}

/// Answers bodiless requests on one connection as the plan says, until it closes.
async fn serve(
    mut s: tokio::net::TcpStream,
    addr: SocketAddr,
    plan: Arc<Plan>,
    seen: Arc<Mutex<Vec<(SocketAddr, String)>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").map_or(buf.len(), |p| p + 4);
        let head: Vec<u8> = buf.drain(..end).collect();
        let n = {
            let mut seen = seen.lock().expect("lock");
            seen.push((addr, String::from_utf8_lossy(&head).to_ascii_lowercase()));
            seen.len() - 1
        };
        let (delay, status) = plan.get(n).or(plan.last()).copied().unwrap_or((0, 200));
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let body = addr.to_string();
        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        if s.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

const LOG_FORMAT: &str = "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST% %UPSTREAM_REQUEST_ATTEMPT_COUNT%\n";

/// Listener `main`: a virtual host hedging on per-try timeouts; `/nohedge` has a hedge policy
/// of its own that does not (the route's wins); `/short` has a 0.5 s route timeout; `/one`
/// allows one retry. Per-try timeouts are 0.2 s, retries go to the other host.
async fn start(hosts: &Hosts, log: &std::path::Path) -> Legate {
    let retry = |num_retries: u32| {
        json!({
            "retry_on": "5xx",
            "num_retries": num_retries,
            "per_try_timeout": "0.2s",
            "retry_host_predicate": [{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
            }],
            "host_selection_retry_max_attempts": 5,
        })
    };
    let routes = json!([
        {"match": {"prefix": "/nohedge"}, "route": {"cluster": "up", "timeout": "5s", "retry_policy": retry(2), "hedge_policy": {}}},
        {"match": {"prefix": "/short"}, "route": {"cluster": "up", "timeout": "0.5s", "retry_policy": retry(2)}},
        {"match": {"prefix": "/one"}, "route": {"cluster": "up", "timeout": "5s", "retry_policy": retry(1)}},
        {"match": {"prefix": "/"}, "route": {"cluster": "up", "timeout": "5s", "retry_policy": retry(2)}},
    ]);
    let vh: Value = json!({
        "name": "vh",
        "domains": ["*"],
        "include_attempt_count_in_response": true,
        "hedge_policy": {"hedge_on_per_try_timeout": true, "initial_requests": 1},
        "routes": routes,
    });
    let mut manager = hcm(route_config(json!([vh])));
    manager["access_log"] = json!([file_log(log, Some(json!({"text_format": LOG_FORMAT})))]);
    let config = bootstrap().listener_hcm("main", manager).cluster(static_cluster("up", &hosts.addrs));
    Legate::start(config.yaml()).await
}

fn log_lines(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_string).collect()
}

/// The `x-envoy-expected-rq-timeout-ms` of a request head.
fn expected_timeout(head: &str) -> Option<&str> {
    head.lines().find_map(|l| l.strip_prefix("x-envoy-expected-rq-timeout-ms: "))
}

#[tokio::test]
async fn a_slow_attempt_is_hedged_and_the_fast_answer_wins() {
    let hosts = Hosts::spawn(vec![(3000, 200), (0, 200)]).await;
    let dir = TempDir::new().expect("tempdir");
    let log = dir.path().join("access.log");
    let legate = start(&hosts, &log).await;
    let begun = Instant::now();
    let r = Client::h1().get(&legate.url("main", "/x")).await;
    let took = begun.elapsed();
    assert_eq!(r.status, 200);
    // The per-try timeout and a back-off, well before the slow answer.
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1500), "{took:?}");
    let seen = hosts.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_ne!(seen[0].0, seen[1].0, "the hedge goes to the other host");
    assert_eq!(r.text(), seen[1].0.to_string(), "the second attempt answered");
    assert_eq!(r.header("x-envoy-attempt-count"), Some("2"));
    // A hedged attempt is not ended at its per-try timeout: the upstream is told the route's.
    assert_eq!(expected_timeout(&seen[0].1), Some("5000"));
    let stat = |s: &'static str| legate.stat(s);
    assert_eq!(stat("cluster.up.upstream_rq_per_try_timeout").await, 0, "a soft timeout is not counted");
    assert_eq!(stat("cluster.up.upstream_rq_retry").await, 1);
    assert_eq!(stat("cluster.up.upstream_rq_retry_success").await, 1);
    assert_eq!(stat("cluster.up.upstream_rq_total").await, 2);
    assert_eq!(stat("cluster.up.upstream_rq_200").await, 1);
    assert_eq!(stat("cluster.up.upstream_rq_timeout").await, 0);
    assert_eq!(stat("cluster.up.upstream_cx_destroy_local_with_active_rq").await, 1, "the slow one reset");
    let want = format!("200 - {} 2", seen[1].0);
    assert_eventually!(log_lines(&log) == [want.clone()], "log {:?}, want {want:?}", log_lines(&log));
}

#[tokio::test]
async fn without_hedging_the_per_try_timeout_ends_the_attempt() {
    let hosts = Hosts::spawn(vec![(3000, 200), (0, 200)]).await;
    let dir = TempDir::new().expect("tempdir");
    let log = dir.path().join("access.log");
    let legate = start(&hosts, &log).await;
    let r = Client::h1().get(&legate.url("main", "/nohedge")).await;
    assert_eq!((r.status.as_u16(), r.header("x-envoy-attempt-count")), (200, Some("2")));
    let seen = hosts.seen();
    assert_eq!(r.text(), seen[1].0.to_string());
    assert_eq!(expected_timeout(&seen[0].1), Some("200"));
    assert_eq!(legate.stat("cluster.up.upstream_rq_per_try_timeout").await, 1);
}

#[tokio::test]
async fn both_slow_the_route_timeout_answers_504() {
    let hosts = Hosts::spawn(vec![(3000, 200)]).await;
    let dir = TempDir::new().expect("tempdir");
    let log = dir.path().join("access.log");
    let legate = start(&hosts, &log).await;
    let begun = Instant::now();
    let r = Client::h1().get(&legate.url("main", "/short")).await;
    let took = begun.elapsed();
    assert_eq!((r.status.as_u16(), r.text().as_str()), (504, "upstream request timeout"));
    assert!(took >= Duration::from_millis(500) && took < Duration::from_millis(1500), "{took:?}");
    // Hedged at 0.2 s, and the hedge at its own per-try timeout: three attempts, all ended
    // (Envoy's local reply also carries `x-envoy-attempt-count: 3`, which legate's local
    // replies do not add yet, hedged or not; the log has the count).
    let seen = hosts.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(legate.stat("cluster.up.upstream_rq_timeout").await, 3);
    assert_eq!(legate.stat("cluster.up.upstream_rq_504").await, 3);
    assert_eq!(legate.stat("cluster.up.upstream_rq_per_try_timeout").await, 0);
    assert_eq!(legate.stat("cluster.up.upstream_rq_retry").await, 2);
    let want = format!("504 UT {} 3", seen[2].0);
    assert_eventually!(log_lines(&log) == [want.clone()], "log {:?}, want {want:?}", log_lines(&log));
}

#[tokio::test]
async fn a_5xx_while_another_attempt_is_out_waits_for_it() {
    // The slow first attempt fails after its hedge was sent; the hedge's own per-try timeout
    // finds no retry left (URX) and its answer comes later.
    let hosts = Hosts::spawn(vec![(400, 503), (600, 200)]).await;
    let dir = TempDir::new().expect("tempdir");
    let log = dir.path().join("access.log");
    let legate = start(&hosts, &log).await;
    let begun = Instant::now();
    let r = Client::h1().get(&legate.url("main", "/one")).await;
    let took = begun.elapsed();
    assert_eq!(r.status, 200, "not the 503");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    let seen = hosts.seen();
    assert_eq!(r.text(), seen[1].0.to_string());
    assert_eq!(legate.stat("cluster.up.upstream_rq_503").await, 0);
    assert_eq!(legate.stat("cluster.up.upstream_rq_200").await, 1);
    assert_eq!(legate.stat("cluster.up.upstream_rq_retry_limit_exceeded").await, 1);
    assert_eq!(legate.stat("cluster.up.upstream_rq_retry_success").await, 1);
    let want = format!("200 URX {} 2", seen[1].0);
    assert_eventually!(log_lines(&log) == [want.clone()], "log {:?}, want {want:?}", log_lines(&log));
}
