//! `envoy.filters.http.local_ratelimit` on loopback with a real upstream, as Envoy 1.40
//! answers (checked side by side): the token bucket per filter, per route and per
//! connection, the 429 `local_rate_limited` with `response_headers_to_add` and flag `RL`,
//! `x-ratelimit-*`, descriptors from the route's `rate_limits`, a limit not enforced, and the
//! stats `<stat_prefix>.http_local_rate_limit.*`. The example `local_ratelimit` loads.

use serde_json::{json, Value};

use crate::access_log::file_log;
use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, hcm, route_config, router_filter, static_cluster, to_cluster, vhost};
use crate::common::legate::{validate, Legate};
use crate::common::upstream::{self, Upstream};

const RL: &str = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

fn pct(n: u32) -> Value {
    json!({ "runtime_key": "k", "default_value": { "numerator": n, "denominator": "HUNDRED" } })
}

fn bucket(max: u32) -> Value {
    json!({ "max_tokens": max, "tokens_per_fill": 1, "fill_interval": "3600s" })
}

fn limiter(mut extra: Value) -> Value {
    let mut typed =
        json!({ "@type": RL, "stat_prefix": "rl", "filter_enabled": pct(100), "filter_enforced": pct(100) });
    if let (Some(t), Some(e)) = (typed.as_object_mut(), extra.as_object_mut()) {
        t.extend(std::mem::take(e));
    }
    json!({ "name": "envoy.filters.http.local_ratelimit", "typed_config": typed })
}

fn config(up: &Upstream, filter: Value, routes: Value, logs: Vec<Value>) -> String {
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    manager["http_filters"] = json!([filter, router_filter()]);
    manager["access_log"] = json!(logs);
    bootstrap().listener_hcm("main", manager).cluster(static_cluster("service1", &[up.addr()])).yaml()
}

#[tokio::test]
async fn the_bucket_empties_into_429s_with_headers_flag_and_stats() {
    let up = upstream::http1().spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let format = json!({ "text_format_source": { "inline_string":
        "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n" } });
    let filter = limiter(json!({
        "token_bucket": bucket(2),
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
        "response_headers_to_add": [{ "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                                      "header": { "key": "x-local-rate-limit", "value": "true" } }],
    }));
    let routes = json!([to_cluster(json!({"prefix": "/"}), "service1")]);
    let legate = Legate::start(config(&up, filter, routes, vec![file_log(&log, Some(format))])).await;
    let c = Client::h1();
    for remaining in ["1", "0"] {
        let r = c.get(&legate.url("main", "/")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining));
        assert_eq!(r.header("x-local-rate-limit"), None, "only on the 429");
    }
    let r = c.get(&legate.url("main", "/")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (429, "local_rate_limited"));
    assert_eq!(r.header("x-local-rate-limit"), Some("true"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset"), Some("3600"));
    assert_eq!(up.requests(), 2);
    for (stat, n) in [("enabled", 3), ("ok", 2), ("rate_limited", 1), ("enforced", 1), ("shadow_mode", 0)] {
        assert_eq!(legate.stat(&format!("rl.http_local_rate_limit.{stat}")).await, n, "{stat}");
    }
    assert_eventually!(
        std::fs::read_to_string(&log).is_ok_and(|l| l.lines().last() == Some("429 RL local_rate_limited")),
        "access log: {:?}",
        std::fs::read_to_string(&log)
    );
}

#[tokio::test]
async fn a_route_has_its_own_bucket_and_status_and_the_filter_without_one_passes() {
    let up = upstream::http1().spawn().await;
    let per_route = json!({ "@type": RL, "stat_prefix": "route_rl", "token_bucket": bucket(1),
        "filter_enabled": pct(100), "filter_enforced": pct(100), "status": { "code": "ServiceUnavailable" } });
    let mut limited = to_cluster(json!({"prefix": "/limited"}), "service1");
    limited["typed_per_filter_config"] = json!({ "envoy.filters.http.local_ratelimit": per_route });
    let routes = json!([limited, to_cluster(json!({"prefix": "/"}), "service1")]);
    let filter = json!({ "name": "envoy.filters.http.local_ratelimit",
                         "typed_config": { "@type": RL, "stat_prefix": "rl" } });
    let legate = Legate::start(config(&up, filter, routes, vec![])).await;
    let c = Client::h1();
    assert_eq!(c.get(&legate.url("main", "/limited")).await.status, 200);
    let r = c.get(&legate.url("main", "/limited")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (503, "local_rate_limited"));
    for _ in 0..4 {
        assert_eq!(c.get(&legate.url("main", "/free")).await.status, 200);
    }
    assert_eq!(legate.stat("route_rl.http_local_rate_limit.enforced").await, 1);
    assert_eq!(legate.stat("rl.http_local_rate_limit.enabled").await, 0, "filter_enabled unset is 0%");
}

#[tokio::test]
async fn descriptors_match_the_routes_rate_limits_and_unenforced_limits_add_request_headers() {
    let up = upstream::http1().spawn().await;
    let filter = limiter(json!({
        "token_bucket": bucket(100),
        "filter_enforced": pct(0),
        "request_headers_to_add_when_not_enforced": [{ "header": { "key": "x-would-limit", "value": "yes" } }],
        "descriptors": [
            { "entries": [{ "key": "user", "value": "bob" }], "token_bucket": bucket(1) },
            { "entries": [{ "key": "generic_key", "value": "api" }, { "key": "remote_address", "value": "127.0.0.1" }],
              "token_bucket": bucket(2) },
        ],
    }));
    let mut api = to_cluster(json!({"prefix": "/api"}), "service1");
    api["route"]["rate_limits"] = json!([
        { "actions": [{ "request_headers": { "header_name": "x-user", "descriptor_key": "user" } }] },
        { "actions": [{ "generic_key": { "descriptor_value": "api" } }, { "remote_address": {} }] },
    ]);
    let routes = json!([api, to_cluster(json!({"prefix": "/"}), "service1")]);
    let legate = Legate::start(config(&up, filter, routes, vec![])).await;
    let c = Client::h1();
    let bob = [("x-user", "bob")];
    let limited = |r: &crate::common::client::Resp| r.echo()["headers"].get("x-would-limit").is_some();
    // bob's bucket (1) and the api/remote_address one (2) are taken from.
    assert!(!limited(&c.get_with(&legate.url("main", "/api"), &bob).await));
    assert!(limited(&c.get_with(&legate.url("main", "/api"), &bob).await), "bob's bucket is empty");
    assert!(!limited(&c.get(&legate.url("main", "/api")).await), "the second token of the api bucket");
    assert!(limited(&c.get(&legate.url("main", "/api")).await));
    assert!(!limited(&c.get(&legate.url("main", "/other")).await), "no descriptor: the default bucket");
    assert_eq!(legate.stat("rl.http_local_rate_limit.rate_limited").await, 2);
    assert_eq!(legate.stat("rl.http_local_rate_limit.enforced").await, 0);
}

#[tokio::test]
async fn per_connection_buckets_belong_to_their_connection() {
    let up = upstream::http1().spawn().await;
    let filter = limiter(json!({ "token_bucket": bucket(1), "local_rate_limit_per_downstream_connection": true }));
    let routes = json!([to_cluster(json!({"prefix": "/"}), "service1")]);
    let legate = Legate::start(config(&up, filter, routes, vec![])).await;
    let first = Client::h1();
    assert_eq!(first.get(&legate.url("main", "/")).await.status, 200);
    assert_eq!(first.get(&legate.url("main", "/")).await.status, 429);
    let second = Client::h1();
    assert_eq!(second.get(&legate.url("main", "/")).await.status, 200, "a new connection, a full bucket");
}

// Envoy's own local_ratelimit example is checked with the other Envoy examples by .ci/run
// (docs/envoy-examples.md).
#[tokio::test]
async fn bad_buckets_are_refused_with_envoys_messages() {
    let up = upstream::http1().spawn().await;
    let routes = json!([to_cluster(json!({"prefix": "/"}), "service1")]);
    let fast = limiter(json!({ "token_bucket": { "max_tokens": 1, "fill_interval": "0.01s" } }));
    let (_f, run) = validate("envoy.yaml", &config(&up, fast, routes.clone(), vec![])).await;
    assert_eq!(run.code(), Some(1));
    assert!(
        run.output.contains("token_bucket.fill_interval: local rate limit token bucket fill timer must be >= 50ms"),
        "{}",
        run.output
    );
    let mut no_bucket = to_cluster(json!({"prefix": "/"}), "service1");
    no_bucket["typed_per_filter_config"] =
        json!({ "envoy.filters.http.local_ratelimit": { "@type": RL, "stat_prefix": "r" } });
    let (_f, run) = validate("envoy.yaml", &config(&up, limiter(json!({})), json!([no_bucket]), vec![])).await;
    assert!(run.output.contains("local rate limit token bucket must be set for per filter configs"), "{}", run.output);
}
