//! The `previous_priorities` retry priority (issue 14): a retry leaves the priority whose host
//! failed, where without it the retry goes back to the same, fully healthy priority.

use serde_json::{json, Value};

use crate::common::client::Client;
use crate::common::config::{bootstrap, endpoint};
use crate::common::legate::Legate;
use crate::common::upstream;

fn config(retry_policy: Value, p0: std::net::SocketAddr, p1: std::net::SocketAddr) -> String {
    let cluster = json!({
        "name": "svc", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "svc", "endpoints": [
            {"priority": 0, "lb_endpoints": [endpoint(p0)]},
            {"priority": 1, "lb_endpoints": [endpoint(p1)]},
        ]},
    });
    let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "svc", "retry_policy": retry_policy}});
    bootstrap().routes(json!([route])).cluster(cluster).yaml()
}

#[tokio::test]
async fn a_retry_moves_to_the_next_priority_only_with_previous_priorities() {
    let failing = upstream::http1().name("p0").status(503).spawn().await;
    let backup = upstream::http1().name("p1").spawn().await;
    let c = Client::h1();

    let plain = json!({"retry_on": "5xx", "num_retries": 1});
    let legate = Legate::start(config(plain, failing.addr(), backup.addr())).await;
    let r = c.get(&legate.url("main", "/")).await;
    assert_eq!(
        (r.status.as_u16(), r.header("x-upstream-instance")),
        (503, Some("p0")),
        "both attempts stay in priority 0"
    );
    assert_eq!(legate.stat("cluster.svc.upstream_rq_retry").await, 1);
    drop(legate);

    let moving = json!({"retry_on": "5xx", "num_retries": 1, "retry_priority": {
        "name": "envoy.retry_priorities.previous_priorities",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                         "update_frequency": 1}}});
    let legate = Legate::start(config(moving, failing.addr(), backup.addr())).await;
    for _ in 0..5 {
        let r = c.get(&legate.url("main", "/")).await;
        assert_eq!(
            (r.status.as_u16(), r.header("x-upstream-instance")),
            (200, Some("p1")),
            "the retry goes to priority 1"
        );
    }
    assert_eq!(legate.stat("cluster.svc.upstream_rq_retry").await, 5);
}
