//! Route actions: cluster choice, weighted clusters, rewrites, timeouts, retries, direct
//! responses, redirects and header mutations at route, vhost and route-config level.

use crate::common::client::Client;
use crate::common::config::{bootstrap, direct, route_config, static_cluster, strict_dns_cluster, to_cluster, vhost};
use crate::common::dns::DnsServer;
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};
use crate::common::{assert_eventually, dead_addr};
use serde_json::{json, Value};

async fn start_with(routes: Value, ups: &[(&str, &Upstream)]) -> Legate {
    let mut b = bootstrap().routes(routes);
    for (cluster, up) in ups {
        b = b.cluster(static_cluster(cluster, &[up.addr()]));
    }
    Legate::start(b.yaml()).await
}

fn route(matcher: Value, action: Value) -> Value {
    json!({ "match": matcher, "route": action })
}

#[tokio::test]
async fn routes_pick_their_cluster() {
    let one = upstream::http1().name("one").spawn().await;
    let two = upstream::http1().name("two").spawn().await;
    let legate = start_with(
        json!([to_cluster(json!({"prefix": "/one"}), "service1"), to_cluster(json!({"prefix": "/two"}), "service2"),]),
        &[("service1", &one), ("service2", &two)],
    )
    .await;
    let c = Client::h1();
    let e = c.get(&legate.url("main", "/one/x?y=1")).await.echo();
    assert_eq!(e["instance"], "one");
    assert_eq!(e["path"], "/one/x");
    assert_eq!(e["query"], "y=1");
    assert_eq!(c.get(&legate.url("main", "/two")).await.instance(), "two");
}

#[tokio::test]
async fn weighted_clusters_split_75_25() {
    let heavy = upstream::http1().name("heavy").spawn().await;
    let light = upstream::http1().name("light").spawn().await;
    let legate = start_with(
        json!([route(
            json!({"prefix": "/"}),
            json!({"weighted_clusters": {"clusters": [
                {"name": "heavy", "weight": 75},
                {"name": "light", "weight": 25},
            ]}})
        )]),
        &[("heavy", &heavy), ("light", &light)],
    )
    .await;
    let url = legate.url("main", "/");
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let c = Client::h1();
            for _ in 0..250 {
                assert_eq!(c.get(&url).await.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (h, l) = (heavy.requests(), light.requests());
    assert_eq!(h + l, 1000);
    // Binomial(1000, 0.75) has a standard deviation of ~14; allow ~7 of them.
    assert!((650..=850).contains(&h), "heavy got {h}, light got {l}");
}

#[tokio::test]
async fn prefix_and_regex_rewrites() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start_with(
        json!([
            route(json!({"prefix": "/old/"}), json!({"cluster": "c", "prefix_rewrite": "/new/"})),
            route(json!({"prefix": "/strip"}), json!({"cluster": "c", "prefix_rewrite": "/"})),
            route(
                json!({"prefix": "/v1/"}),
                json!({"cluster": "c", "regex_rewrite": {
                    "pattern": {"regex": "^/v1/([^/]+)/item/([0-9]+)$"},
                    "substitution": "/api/\\2/\\1",
                }})
            ),
        ]),
        &[("c", &up)],
    )
    .await;
    let c = Client::h1();
    let e = c.get(&legate.url("main", "/old/a/b?q=1")).await.echo();
    assert_eq!(e["path"], "/new/a/b");
    assert_eq!(e["query"], "q=1");
    assert_eq!(e["headers"]["x-envoy-original-path"], "/old/a/b?q=1");
    let e = c.get(&legate.url("main", "/strip/x")).await.echo();
    // Envoy replaces just the matched prefix: `/strip` + `/x` with `/` gives `//x`.
    assert_eq!(e["path"], "//x");
    let e = c.get(&legate.url("main", "/v1/books/item/42?z")).await.echo();
    assert_eq!(e["path"], "/api/42/books");
    assert_eq!(e["query"], "z");
}

#[tokio::test]
async fn host_rewrite_literal() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start_with(
        json!([route(json!({"prefix": "/"}), json!({"cluster": "c", "host_rewrite_literal": "rewritten.example"}))]),
        &[("c", &up)],
    )
    .await;
    let e = Client::h1().get_with(&legate.url("main", "/"), &[("host", "original.example")]).await.echo();
    assert_eq!(e["headers"]["host"], "rewritten.example");
}

#[tokio::test]
async fn auto_host_rewrite_uses_the_dns_name() {
    let up = upstream::http1().name("up").spawn().await;
    let dns = DnsServer::spawn().await;
    dns.set("backend.test", &["127.0.0.1"]);
    let legate = Legate::start(
        bootstrap()
            .routes(json!([route(json!({"prefix": "/"}), json!({"cluster": "c", "auto_host_rewrite": true}))]))
            .cluster(strict_dns_cluster("c", "backend.test", up.port(), dns.port()))
            .yaml(),
    )
    .await;
    let c = Client::h1();
    let url = legate.url("main", "/");
    // The first answers may still be "no healthy upstream" until DNS resolved.
    assert_eventually!(
        c.get_with(&url, &[("host", "front.example")]).await.status == 200,
        "cluster c resolves backend.test"
    );
    let e = c.get_with(&url, &[("host", "front.example")]).await.echo();
    assert_eq!(e["headers"]["host"], "backend.test");
}

#[tokio::test]
async fn route_timeout_answers_504() {
    let up = upstream::http1().name("slow").spawn().await;
    let legate =
        start_with(json!([route(json!({"prefix": "/"}), json!({"cluster": "c", "timeout": "0.3s"}))]), &[("c", &up)])
            .await;
    let c = Client::h1();
    let r = c.get(&legate.url("main", "/delay/3000ms")).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "upstream request timeout");
    let e = c.get(&legate.url("main", "/fast")).await.echo();
    assert_eq!(e["headers"]["x-envoy-expected-rq-timeout-ms"], "300");
    assert_eventually!(legate.stat("cluster.c.upstream_rq_timeout").await == 1, "upstream_rq_timeout counted");
}

#[tokio::test]
async fn retry_on_5xx() {
    let up = upstream::http1().name("flaky").spawn().await;
    let legate = start_with(
        json!([
            route(
                json!({"prefix": "/two"}),
                json!({"cluster": "c", "retry_policy": {"retry_on": "5xx", "num_retries": 2}})
            ),
            route(
                json!({"prefix": "/one"}),
                json!({"cluster": "c", "retry_policy": {"retry_on": "5xx", "num_retries": 1}})
            ),
        ]),
        &[("c", &up)],
    )
    .await;
    let c = Client::h1();
    let fail_twice = |key: &'static str| [("x-echo-fail-times", "2"), ("x-echo-fail-key", key)];
    let r = c.get_with(&legate.url("main", "/two"), &fail_twice("a")).await;
    assert_eq!(r.status, 200, "two retries cover two failures");
    assert_eq!(up.requests(), 3);
    let r = c.get_with(&legate.url("main", "/one"), &fail_twice("b")).await;
    assert_eq!(r.status, 503, "one retry does not cover two failures");
    assert_eq!(up.requests(), 5);
    assert_eventually!(legate.stat("cluster.c.upstream_rq_retry").await == 3, "three retries counted");
}

#[tokio::test]
async fn retry_on_retriable_status_codes() {
    let up = upstream::http1().name("conflicted").spawn().await;
    let legate = start_with(
        json!([route(
            json!({"prefix": "/"}),
            json!({"cluster": "c", "retry_policy": {
                "retry_on": "retriable-status-codes", "retriable_status_codes": [409], "num_retries": 1,
            }})
        )]),
        &[("c", &up)],
    )
    .await;
    let c = Client::h1();
    let r = c
        .get_with(
            &legate.url("main", "/"),
            &[("x-echo-fail-times", "1"), ("x-echo-fail-key", "k"), ("x-echo-fail-status", "409")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.requests(), 2);
    // 503 is not in the list: no retry.
    let r = c.get_with(&legate.url("main", "/"), &[("x-echo-status", "503")]).await;
    assert_eq!(r.status, 503);
    assert_eq!(up.requests(), 3);
}

#[tokio::test]
async fn retry_on_connect_failure_reaches_the_live_host() {
    let live = upstream::http1().name("live").spawn().await;
    let dead = dead_addr();
    let legate = Legate::start(
        bootstrap()
            .routes(json!([route(
                json!({"prefix": "/"}),
                json!({"cluster": "c", "retry_policy": {
                    "retry_on": "connect-failure", "num_retries": 2,
                }})
            )]))
            .cluster(static_cluster("c", &[dead, live.addr()]))
            .yaml(),
    )
    .await;
    let c = Client::h1();
    for i in 0..10 {
        let r = c.get(&legate.url("main", "/")).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.instance(), "live");
    }
    assert_eq!(live.requests(), 10);
}

#[tokio::test]
async fn direct_response_and_redirects() {
    let legate = Legate::start(
        bootstrap()
            .routes(json!([
                {"match": {"prefix": "/direct"}, "direct_response": {"status": 418, "body": {"inline_string": "teapot"}}},
                {"match": {"prefix": "/empty"}, "direct_response": {"status": 204}},
                {"match": {"prefix": "/moved"}, "redirect": {"path_redirect": "/new-home", "response_code": "PERMANENT_REDIRECT"}},
                {"match": {"prefix": "/secure"}, "redirect": {"https_redirect": true}},
                {"match": {"prefix": "/elsewhere"}, "redirect": {"host_redirect": "other.example", "prefix_rewrite": "/there"}},
            ]))
            .yaml(),
    )
    .await;
    let c = Client::h1();
    let r = c.get(&legate.url("main", "/direct")).await;
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "teapot");
    assert_eq!(c.get(&legate.url("main", "/empty")).await.status, 204);
    let r = c.get_with(&legate.url("main", "/moved?x=1"), &[("host", "site.example")]).await;
    assert_eq!(r.status, 308);
    // path_redirect keeps the query unless strip_query is set (Envoy's recorded answer).
    assert_eq!(r.header("location"), Some("http://site.example/new-home?x=1"));
    let r = c.get_with(&legate.url("main", "/secure/page?a=b"), &[("host", "site.example")]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://site.example/secure/page?a=b"));
    let r = c.get_with(&legate.url("main", "/elsewhere/x"), &[("host", "site.example")]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("http://other.example/there/x"));
}

#[tokio::test]
async fn header_mutations_at_route_vhost_and_route_config_level() {
    let up = upstream::http1().name("up").spawn().await;
    let add = |k: &str, v: &str| json!({"header": {"key": k, "value": v}});
    let mut rc = route_config(json!([{
        "name": "v",
        "domains": ["*"],
        "request_headers_to_add": [add("x-vhost-req", "vhost")],
        "response_headers_to_add": [add("x-vhost-resp", "vhost")],
        "request_headers_to_remove": ["x-drop-at-vhost"],
        "routes": [{
            "match": {"prefix": "/"},
            "route": {"cluster": "c"},
            "request_headers_to_add": [add("x-route-req", "route")],
            "response_headers_to_add": [add("x-route-resp", "route")],
            "request_headers_to_remove": ["x-drop-at-route"],
            "response_headers_to_remove": ["x-upstream-secret"],
        }],
    }]));
    rc["request_headers_to_add"] = json!([add("x-rc-req", "rc")]);
    rc["response_headers_to_add"] = json!([add("x-rc-resp", "rc")]);
    rc["request_headers_to_remove"] = json!(["x-drop-at-rc"]);
    let legate =
        Legate::start(bootstrap().listener("main", rc).cluster(static_cluster("c", &[up.addr()])).yaml()).await;
    let r = Client::h1()
        .get_with(
            &legate.url("main", "/"),
            &[
                ("x-drop-at-vhost", "1"),
                ("x-drop-at-route", "1"),
                ("x-drop-at-rc", "1"),
                ("x-kept", "1"),
                ("x-echo-response-header", "x-upstream-secret: s3cret"),
            ],
        )
        .await;
    let e = r.echo();
    let h = &e["headers"];
    assert_eq!(h["x-route-req"], "route");
    assert_eq!(h["x-vhost-req"], "vhost");
    assert_eq!(h["x-rc-req"], "rc");
    assert_eq!(h["x-kept"], "1");
    for gone in ["x-drop-at-vhost", "x-drop-at-route", "x-drop-at-rc"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    assert_eq!(r.header("x-route-resp"), Some("route"));
    assert_eq!(r.header("x-vhost-resp"), Some("vhost"));
    assert_eq!(r.header("x-rc-resp"), Some("rc"));
    assert_eq!(r.header("x-upstream-secret"), None);
}

#[tokio::test]
async fn appended_request_header_keeps_the_client_value() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start_with(
        json!([{
            "match": {"prefix": "/"},
            "route": {"cluster": "c"},
            "request_headers_to_add": [
                {"header": {"key": "x-tag", "value": "proxy"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"},
                {"header": {"key": "x-over", "value": "proxy"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
                {"header": {"key": "x-keep", "value": "proxy"}, "append_action": "ADD_IF_ABSENT"},
            ],
        }]),
        &[("c", &up)],
    )
    .await;
    let e = Client::h1()
        .get_with(&legate.url("main", "/"), &[("x-tag", "client"), ("x-over", "client"), ("x-keep", "client")])
        .await
        .echo();
    assert_eq!(e["headers"]["x-tag"], "client,proxy");
    assert_eq!(e["headers"]["x-over"], "proxy");
    assert_eq!(e["headers"]["x-keep"], "client");
}

#[tokio::test]
async fn vhost_routes_are_independent() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").spawn().await;
    let legate = Legate::start(
        bootstrap()
            .listener(
                "main",
                route_config(json!([
                    vhost("a", &["a.test"], json!([to_cluster(json!({"prefix": "/"}), "ca")])),
                    vhost("b", &["b.test"], json!([to_cluster(json!({"prefix": "/"}), "cb")])),
                    vhost("d", &["*"], json!([direct(json!({"prefix": "/"}), "default")])),
                ])),
            )
            .cluster(static_cluster("ca", &[a.addr()]))
            .cluster(static_cluster("cb", &[b.addr()]))
            .yaml(),
    )
    .await;
    let c = Client::h1();
    let url = legate.url("main", "/");
    assert_eq!(c.get_with(&url, &[("host", "a.test")]).await.instance(), "a");
    assert_eq!(c.get_with(&url, &[("host", "b.test")]).await.instance(), "b");
    assert_eq!(c.get_with(&url, &[("host", "c.test")]).await.text(), "default");
}
