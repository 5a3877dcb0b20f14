//! The `x-envoy-*` request headers a trusted (internal) client sets its own timeout and
//! retries with, as Envoy 1.40 honours them; an external client's are removed and ignored.
//! And the retry policy's host predicate and rate-limited back-off, end to end.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::client::Client;
use crate::common::config::{bootstrap, endpoint, hcm, route_config, static_cluster, static_cluster_with, vhost};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

/// Listener `main` whose clients on 127.0.0.0/8 are internal (`trusted`) or all external,
/// in front of cluster `c`; route timeout 5 s.
async fn start(up: &Upstream, trusted: bool, policy: Option<Value>) -> Legate {
    let mut action = json!({"cluster": "c", "timeout": "5s"});
    if let Some(p) = policy {
        action["retry_policy"] = p;
    }
    let routes = json!([{"match": {"prefix": "/"}, "route": action}]);
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    manager["use_remote_address"] = json!(true);
    if trusted {
        manager["internal_address_config"] = json!({"cidr_ranges": [{"address_prefix": "127.0.0.0", "prefix_len": 8}]});
    }
    let config = bootstrap().listener_hcm("main", manager).cluster(static_cluster("c", &[up.addr()]));
    Legate::start(config.yaml()).await
}

const CONTROLS: [&str; 8] = [
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-retry-on",
    "x-envoy-max-retries",
    "x-envoy-retriable-status-codes",
    "x-envoy-retry-grpc-on",
    "x-envoy-hedge-on-per-try-timeout",
];

#[tokio::test]
async fn a_trusted_clients_timeout_header_replaces_the_routes_and_is_not_forwarded() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up, true, None).await;
    let c = Client::h1();
    let all: Vec<(&str, &str)> = CONTROLS.iter().map(|n| (*n, "1234")).collect();
    let r = c.get_with(&legate.url("main", "/"), &all).await;
    assert_eq!(r.status, 200);
    let headers = &r.echo()["headers"];
    for name in CONTROLS {
        assert!(headers.get(name).is_none(), "{name} went upstream: {headers}");
    }
    // The per-try timeout (1234 ms) is not shorter than the route timeout (1234 ms): dropped.
    assert_eq!(headers["x-envoy-expected-rq-timeout-ms"], "1234");

    let r = c.get_with(&legate.url("main", "/"), &[("x-envoy-upstream-rq-per-try-timeout-ms", "700")]).await;
    assert_eq!(r.echo()["headers"]["x-envoy-expected-rq-timeout-ms"], "700");
    let r = c.get_with(&legate.url("main", "/"), &[("x-envoy-upstream-rq-timeout-ms", "0")]).await;
    assert!(r.echo()["headers"].get("x-envoy-expected-rq-timeout-ms").is_none(), "0 is no timeout");

    let started = Instant::now();
    let r = c.get_with(&legate.url("main", "/delay/3000ms"), &[("x-envoy-upstream-rq-timeout-ms", "300")]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (504, "upstream request timeout"));
    assert!(started.elapsed() < Duration::from_millis(2500), "timed out after {:?}", started.elapsed());

    let r = c
        .get_with(
            &legate.url("main", "/delay/3000ms"),
            &[("x-envoy-upstream-rq-timeout-ms", "300"), ("x-envoy-upstream-rq-timeout-alt-response", "1")],
        )
        .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (204, ""));
    assert_eq!(legate.stat("cluster.c.upstream_rq_timeout").await, 2);
}

#[tokio::test]
async fn a_trusted_clients_retry_headers_retry_without_a_route_policy() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up, true, None).await;
    let c = Client::h1();
    let fail_twice = [("x-echo-fail-times", "2"), ("x-echo-fail-key", "a")];
    let r = c
        .get_with(
            &legate.url("main", "/"),
            &[fail_twice[0], fail_twice[1], ("x-envoy-retry-on", "5xx"), ("x-envoy-max-retries", "2")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.requests(), 3);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry").await, 2);

    // Retriable status codes from the header, with the retry condition from the header.
    let r = c
        .get_with(
            &legate.url("main", "/"),
            &[
                ("x-echo-fail-times", "1"),
                ("x-echo-fail-key", "b"),
                ("x-echo-fail-status", "418"),
                ("x-envoy-retry-on", "retriable-status-codes"),
                ("x-envoy-retriable-status-codes", "418"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.requests(), 5);

    // x-envoy-max-retries alone sets no condition: nothing is retried.
    let r = c
        .get_with(
            &legate.url("main", "/"),
            &[("x-echo-fail-times", "1"), ("x-echo-fail-key", "c"), ("x-envoy-max-retries", "3")],
        )
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(up.requests(), 6);
}

#[tokio::test]
async fn an_external_clients_control_headers_are_removed_and_ignored() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up, false, None).await;
    let c = Client::h1();
    let r = c
        .get_with(
            &legate.url("main", "/"),
            &[
                ("x-echo-fail-times", "1"),
                ("x-echo-fail-key", "a"),
                ("x-envoy-retry-on", "5xx"),
                ("x-envoy-upstream-rq-timeout-ms", "300"),
            ],
        )
        .await;
    assert_eq!(r.status, 503, "not retried");
    assert_eq!(up.requests(), 1);
    let r = c.get_with(&legate.url("main", "/"), &[("x-envoy-upstream-rq-timeout-ms", "300")]).await;
    assert_eq!(r.echo()["headers"]["x-envoy-expected-rq-timeout-ms"], "5000", "the route's timeout");
}

#[tokio::test]
async fn previous_hosts_sends_the_retry_to_the_other_host() {
    let bad = upstream::http1().name("bad").status(503).spawn().await;
    let good = upstream::http1().name("good").spawn().await;
    let policy = |predicate: bool| {
        let mut p = json!({"retry_on": "5xx", "num_retries": 1});
        if predicate {
            p["retry_host_predicate"] = json!([{"name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}]);
            p["host_selection_retry_max_attempts"] = json!(20);
        }
        p
    };
    let cluster = |name: &str| {
        let mut c = static_cluster_with(name, vec![endpoint(bad.addr()), endpoint(good.addr())]);
        c["lb_policy"] = json!("RANDOM");
        c
    };
    let routes = json!([
        {"match": {"prefix": "/predicate"}, "route": {"cluster": "with", "retry_policy": policy(true)}},
        {"match": {"prefix": "/plain"}, "route": {"cluster": "without", "retry_policy": policy(false)}},
    ]);
    let legate =
        Legate::start(bootstrap().routes(routes).cluster(cluster("with")).cluster(cluster("without")).yaml()).await;
    let c = Client::h1();
    // A request whose first attempt meets the bad host retries on the good one: with the
    // predicate, a retry picks the bad host again once in 2^21.
    for _ in 0..30 {
        assert_eq!(c.get(&legate.url("main", "/predicate")).await.status, 200);
    }
    // Without it, a retry lands on the bad host half the time (all 30 pass once in 3,000).
    let mut failed = 0;
    for _ in 0..30 {
        failed += usize::from(c.get(&legate.url("main", "/plain")).await.status == 503);
    }
    assert!(failed > 0, "the control: without the predicate some retries meet the bad host again");
}

#[tokio::test]
async fn a_rate_limited_answer_is_retried_after_its_retry_after() {
    let up = upstream::http1().name("up").spawn().await;
    let policy = json!({
        "retry_on": "retriable-status-codes", "retriable_status_codes": [429], "num_retries": 1,
        "rate_limited_retry_back_off": {"reset_headers": [{"name": "Retry-After", "format": "SECONDS"}], "max_interval": "10s"},
    });
    let legate = start(&up, false, Some(policy)).await;
    let started = Instant::now();
    let r = Client::h1()
        .get_with(
            &legate.url("main", "/"),
            &[
                ("x-echo-fail-times", "1"),
                ("x-echo-fail-key", "a"),
                ("x-echo-fail-status", "429"),
                ("x-echo-response-header", "retry-after: 1"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1000), "retried after {waited:?}, before the second it asked for");
    assert_eq!(up.requests(), 2);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry_backoff_ratelimited").await, 1);
    assert_eq!(legate.stat("cluster.c.upstream_rq_retry_backoff_exponential").await, 0);
}
