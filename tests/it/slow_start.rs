//! `slow_start_config` (issue 14): a host that comes back through its active health check
//! gets a small share of round robin's traffic at first, and its full share once the window
//! has passed, while a host that has been healthy longer keeps most of the traffic. The
//! ramp's aggression follows its runtime key.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, static_cluster, to_cluster};
use crate::common::legate::Legate;
use crate::common::upstream;

/// How many of `n` requests instance `name` answered.
async fn answered_by(legate: &Legate, name: &str, n: usize) -> usize {
    let c = Client::h1();
    let mut hits = 0;
    for _ in 0..n {
        let r = c.get(&legate.url("main", "/")).await;
        hits += usize::from(r.header("x-upstream-instance") == Some(name));
    }
    hits
}

#[tokio::test]
async fn a_host_back_from_a_failed_check_ramps_up_over_the_window() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").spawn().await;
    let mut cluster = static_cluster("svc", &[a.addr(), b.addr()]);
    cluster["health_checks"] = json!([{"timeout": "1s", "interval": "0.1s", "no_traffic_interval": "0.1s",
        "unhealthy_threshold": 1, "healthy_threshold": 1, "http_health_check": {"path": "/healthz"}}]);
    // A 4 s window with aggression 0.25: weight (t / 4s)^4, at least 1%; t counts from 1 s.
    // Within the first second back a host weighs 1/256 of its weight, at most 1% in effect.
    cluster["round_robin_lb_config"] = json!({"slow_start_config": {"slow_start_window": "4s",
        "aggression": {"default_value": 0.25, "runtime_key": "rr.aggression"}, "min_weight_percent": {"value": 1}}});
    let config = bootstrap().routes(json!([to_cluster(json!({"prefix": "/"}), "svc")])).cluster(cluster).yaml();
    let legate = Legate::start(config).await;
    let healthy = || legate.stat("cluster.svc.membership_healthy");
    assert_eventually!(healthy().await == 2, "both pass their first check");
    // Both entered slow start together; after the window both have their full weight.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let even = answered_by(&legate, "b", 100).await;
    assert!((40..=60).contains(&even), "b answered {even} of 100 out of slow start");

    b.set_healthy(false);
    assert_eventually!(healthy().await == 1, "b fails its check");
    b.set_healthy(true);
    assert_eventually!(healthy().await == 2, "b passes again");
    let back = Instant::now();
    let early = answered_by(&legate, "b", 100).await;
    assert!(back.elapsed() < Duration::from_secs(1), "the early sample took {:?}", back.elapsed());
    assert!(early <= 10, "b answered {early} of 100 in its first second back (want about 1)");

    // Past the window b has its full share again.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(back.elapsed()) + Duration::from_millis(500)).await;
    let after = answered_by(&legate, "b", 100).await;
    assert!((40..=60).contains(&after), "b answered {after} of 100 after its window");
}

/// The runtime's value for `aggression.runtime_key` replaces its `default_value`: a linear
/// default (b at a quarter of its weight, a fifth of the traffic, in its first second back)
/// made steep by the static layer's 0.25 (b at about 1%).
#[tokio::test]
async fn the_aggression_comes_from_its_runtime_key() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").spawn().await;
    let mut cluster = static_cluster("svc", &[a.addr(), b.addr()]);
    cluster["health_checks"] = json!([{"timeout": "1s", "interval": "0.1s", "no_traffic_interval": "0.1s",
        "unhealthy_threshold": 1, "healthy_threshold": 1, "http_health_check": {"path": "/healthz"}}]);
    cluster["round_robin_lb_config"] = json!({"slow_start_config": {"slow_start_window": "4s",
        "aggression": {"default_value": 1, "runtime_key": "rr.aggression"}, "min_weight_percent": {"value": 1}}});
    let mut b_config = bootstrap().routes(json!([to_cluster(json!({"prefix": "/"}), "svc")])).cluster(cluster).value();
    b_config["layered_runtime"] =
        json!({"layers": [{"name": "static0", "static_layer": {"rr": {"aggression": 0.25}}}]});
    let legate = Legate::start(serde_yaml::to_string(&b_config).expect("yaml")).await;
    let healthy = || legate.stat("cluster.svc.membership_healthy");
    assert_eventually!(healthy().await == 2, "both pass their first check");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    b.set_healthy(false);
    assert_eventually!(healthy().await == 1, "b fails its check");
    b.set_healthy(true);
    assert_eventually!(healthy().await == 2, "b passes again");
    let back = Instant::now();
    let early = answered_by(&legate, "b", 100).await;
    assert!(back.elapsed() < Duration::from_secs(1), "the early sample took {:?}", back.elapsed());
    assert!(early <= 10, "b answered {early} of 100 in its first second back (about 20 with the linear default)");
}
