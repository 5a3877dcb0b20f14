//! `RouteAction.internal_redirect_policy`: an upstream's 3xx followed by the proxy itself, as
//! Envoy 1.40 follows it (checked side by side with the same routes): the route looked up
//! again for the `Location`, `x-envoy-original-url`, the count, the scheme, the predicates,
//! 303 as GET, the body sent again, and the cluster's redirect counters.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use serde_json::{json, Value};

use crate::access_log::{file_log, lines, log_dir};
use crate::common::client::{request, Client};
use crate::common::config::{bootstrap, static_cluster};
use crate::common::legate::Legate;
use crate::common::sha256;
use crate::common::upstream::{self, Upstream};

fn route(name: &str, prefix: &str, cluster: &str, policy: Option<Value>) -> Value {
    let mut action = json!({ "cluster": cluster });
    if let Some(p) = policy {
        action["internal_redirect_policy"] = p;
    }
    json!({ "name": name, "match": { "prefix": prefix }, "route": action })
}

fn previous_routes() -> Value {
    json!({ "name": "p", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.internal_redirect.previous_routes.v3.PreviousRoutesConfig" } })
}

fn allow_listed(names: &[&str]) -> Value {
    json!({ "name": "a", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.internal_redirect.allow_listed_routes.v3.AllowListedRoutesConfig",
        "allowed_route_names": names } })
}

/// Upstream `a` answers `/…/status/3xx/…` with the `Location` the request asks for (the
/// echo upstream's `x-echo-response-header`); `landing` and `elsewhere` go to upstream `b`.
async fn setup() -> (Legate, Upstream, Upstream) {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").spawn().await;
    let routes = json!([
        route("follow", "/follow/", "a", Some(json!({ "response_headers_to_copy": ["x-copied"] }))),
        route("loop", "/loop/", "a", Some(json!({ "max_internal_redirects": 2 }))),
        route("ploop", "/ploop/", "a", Some(json!({ "max_internal_redirects": 5, "predicates": [previous_routes()] }))),
        route("codes", "/codes/", "a", Some(json!({ "redirect_response_codes": [303, 307, 200] }))),
        route("cross", "/cross/", "a", Some(json!({ "allow_cross_scheme_redirect": true }))),
        route("listed", "/listed/", "a", Some(json!({ "predicates": [allow_listed(&["landing"])] }))),
        { "name": "dep", "match": { "prefix": "/dep/" },
          "route": { "cluster": "a", "internal_redirect_action": "HANDLE_INTERNAL_REDIRECT", "max_internal_redirects": 2 } },
        route("plain", "/plain/", "a", None),
        route("landing", "/landing", "b", None),
        route("elsewhere", "/elsewhere", "b", None),
    ]);
    let yaml = bootstrap()
        .routes(routes)
        .cluster(static_cluster("a", &[a.addr()]))
        .cluster(static_cluster("b", &[b.addr()]))
        .yaml();
    (Legate::start(yaml).await, a, b)
}

fn to(location: &str) -> String {
    format!("location: {location}")
}

fn seen_at(up: &Upstream, path: &str) -> Vec<Value> {
    up.seen().into_iter().filter(|r| r["path"] == path).collect()
}

#[tokio::test]
async fn a_302_is_followed_to_the_route_its_location_picks() {
    let (legate, a, b) = setup().await;
    let c = Client::h1();
    let url = legate.url("main", "/follow/status/302/x?k=v");
    let r = c.get_with(&url, &[("x-echo-response-header", &to("http://other.example:81/landing/y?q=1#frag"))]).await;
    assert_eq!((r.status.as_u16(), r.instance()), (200, "b".to_string()));
    let sent = r.echo();
    assert_eq!(sent["path"], "/landing/y");
    assert_eq!(sent["query"], "q=1");
    assert_eq!(sent["authority"], "other.example:81");
    let original = format!("http://{}/follow/status/302/x?k=v", legate.listener("main"));
    assert_eq!(sent["headers"]["x-envoy-original-url"], original.as_str());
    // The connection manager's headers are not set again for the new request.
    assert_eq!(sent["headers"]["x-forwarded-proto"], "http");
    assert_eq!(seen_at(&a, "/follow/status/302/x").len(), 1);
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_succeeded_total").await, 1);
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_failed_total").await, 0);
    // Envoy charges the cluster only the answers it passes on.
    assert_eq!(legate.stat("cluster.a.upstream_rq_302").await, 0);
    assert_eq!(legate.stat("cluster.a.upstream_rq_total").await, 1);
    assert_eq!(legate.stat("cluster.b.upstream_rq_200").await, 1);
    // A new stream for Envoy: counted as a request, completed once.
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_total").await, 2);
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_completed").await, 1);
    let _ = b;
}

#[tokio::test]
async fn response_headers_to_copy_replace_the_requests() {
    let (legate, _a, b) = setup().await;
    let c = Client::h1();
    let url = legate.url("main", "/follow/status/302/copy");
    let location = to("http://h/landing/copied");
    let headers = [
        ("x-echo-response-header", location.as_str()),
        ("x-echo-response-header", "x-copied: from-the-3xx"),
        ("x-copied", "from-the-client"),
    ];
    let r = c.get_with(&url, &headers).await;
    assert_eq!(r.instance(), "b");
    assert_eq!(seen_at(&b, "/landing/copied")[0]["headers"]["x-copied"], "from-the-3xx");
}

#[tokio::test]
async fn redirects_past_max_internal_redirects_pass_the_3xx_on() {
    let (legate, a, _b) = setup().await;
    let c = Client::h1();
    let url = legate.url("main", "/loop/status/302/again");
    let location = "http://h/loop/status/302/again";
    let r = c.get_with(&url, &[("x-echo-response-header", &to(location))]).await;
    assert_eq!(r.status.as_u16(), 302);
    assert_eq!(r.header("location"), Some(location));
    assert_eq!(seen_at(&a, "/loop/status/302/again").len(), 3, "the first request and 2 redirects");
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_succeeded_total").await, 2);
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_failed_total").await, 1);
    assert_eq!(legate.stat("cluster.a.upstream_rq_302").await, 1);
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_3xx").await, 1);
}

#[tokio::test]
async fn previous_routes_stops_a_loop_after_one_round() {
    let (legate, a, _b) = setup().await;
    let c = Client::h1();
    let location = "http://h/ploop/status/302/again";
    let r =
        c.get_with(&legate.url("main", "/ploop/status/302/again"), &[("x-echo-response-header", &to(location))]).await;
    assert_eq!(r.status.as_u16(), 302);
    assert_eq!(seen_at(&a, "/ploop/status/302/again").len(), 2, "ploop followed once, then refused");
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_succeeded_total").await, 1);
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_failed_total").await, 1);
}

#[tokio::test]
async fn allow_listed_routes_follows_only_the_routes_named() {
    let (legate, _a, _b) = setup().await;
    let c = Client::h1();
    let url = legate.url("main", "/listed/status/302/x");
    let r = c.get_with(&url, &[("x-echo-response-header", &to("http://h/landing/ok"))]).await;
    assert_eq!((r.status.as_u16(), r.instance()), (200, "b".to_string()));
    let r = c.get_with(&url, &[("x-echo-response-header", &to("http://h/elsewhere/no"))]).await;
    assert_eq!((r.status.as_u16(), r.instance()), (302, "a".to_string()));
    assert_eq!(r.header("location"), Some("http://h/elsewhere/no"));
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_succeeded_total").await, 1);
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_failed_total").await, 1);
}

#[tokio::test]
async fn codes_locations_and_schemes_the_policy_refuses_pass_the_3xx_on() {
    let (legate, _a, b) = setup().await;
    let c = Client::h1();
    let cases: &[(&str, &str, u16)] = &[
        // Not in the default [302].
        ("/follow/status/301/x", "http://h/landing/a", 301),
        ("/follow/status/307/x", "http://h/landing/a", 307),
        // Not absolute, or no route for it.
        ("/follow/status/302/x", "/landing/a", 302),
        ("/follow/status/302/x", "http://h/nowhere", 302),
        // https from http, refused by default.
        ("/follow/status/302/x", "https://h/landing/a", 302),
        // 302 is not in [303, 307, 200]; 200 is never a redirect.
        ("/codes/status/302/x", "http://h/landing/a", 302),
        ("/codes/status/200/x", "http://h/landing/a", 200),
    ];
    for (path, location, status) in cases {
        let r = c.get_with(&legate.url("main", path), &[("x-echo-response-header", &to(location))]).await;
        assert_eq!((r.status.as_u16(), r.instance()), (*status, "a".to_string()), "{path} -> {location}");
        assert_eq!(r.header("location"), Some(*location));
    }
    assert!(b.seen().is_empty());
    // Envoy counts a failure only for a code of the policy's list.
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_failed_total").await, 3);
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_succeeded_total").await, 0);
    assert_eq!(legate.stat("cluster.a.upstream_rq_302").await, 4);

    // allow_cross_scheme_redirect: followed, the new request's scheme https.
    let url = legate.url("main", "/cross/status/302/x");
    let r = c.get_with(&url, &[("x-echo-response-header", &to("https://h/landing/s"))]).await;
    assert_eq!((r.status.as_u16(), r.instance()), (200, "b".to_string()));
    // Without a policy nothing is followed.
    let url = legate.url("main", "/plain/status/302/x");
    let r = c.get_with(&url, &[("x-echo-response-header", &to("http://h/landing/p"))]).await;
    assert_eq!(r.status.as_u16(), 302);
}

fn post(url: &str, body: Vec<u8>, location: &str) -> Request<Full<Bytes>> {
    request(Method::POST, url)
        .header("x-echo-response-header", format!("location: {location}"))
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

#[tokio::test]
async fn a_303_turns_into_a_get_and_a_307_sends_the_body_again() {
    let (legate, a, b) = setup().await;
    let c = Client::h1();
    let body = sha256::pattern(50_000);
    let r = c.send(post(&legate.url("main", "/codes/status/307/x"), body.clone(), "http://h/landing/307")).await;
    assert_eq!((r.status.as_u16(), r.instance()), (200, "b".to_string()));
    let sent = &seen_at(&b, "/landing/307")[0];
    assert_eq!(sent["method"], "POST");
    assert_eq!(sent["body_sha256"], sha256::hex(&body));
    assert_eq!(seen_at(&a, "/codes/status/307/x")[0]["body_sha256"], sha256::hex(&body));

    let r = c.send(post(&legate.url("main", "/codes/status/303/x"), body.clone(), "http://h/landing/303")).await;
    assert_eq!((r.status.as_u16(), r.instance()), (200, "b".to_string()));
    let sent = &seen_at(&b, "/landing/303")[0];
    assert_eq!(sent["method"], "GET");
    assert_eq!(sent["body_len"], 0);
    assert!(sent["headers"].get("content-length").is_none(), "{sent}");
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_succeeded_total").await, 2);
}

#[tokio::test]
async fn the_deprecated_internal_redirect_action_is_honoured() {
    let (legate, a, _b) = setup().await;
    let c = Client::h1();
    let r = c
        .get_with(
            &legate.url("main", "/dep/status/302/x"),
            &[("x-echo-response-header", &to("http://h/dep/status/302/x"))],
        )
        .await;
    // max_internal_redirects 2: two redirects, then the third 302 passes on.
    assert_eq!(r.status.as_u16(), 302);
    assert_eq!(seen_at(&a, "/dep/status/302/x").len(), 3);
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_succeeded_total").await, 2);
}

/// A body larger than the listener's buffer limit cannot be sent again: the 3xx passes on.
#[tokio::test]
async fn a_body_over_the_buffer_limit_is_not_redirected() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").spawn().await;
    let routes = json!([route("follow", "/follow/", "a", Some(json!({}))), route("landing", "/landing", "b", None)]);
    let mut doc = bootstrap()
        .routes(routes)
        .cluster(static_cluster("a", &[a.addr()]))
        .cluster(static_cluster("b", &[b.addr()]))
        .value();
    doc["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"] = json!(10_000);
    let legate = Legate::start(serde_yaml::to_string(&doc).expect("yaml")).await;
    let c = Client::h1();
    let url = legate.url("main", "/follow/status/302/big");
    let r = c.send(post(&url, sha256::pattern(50_000), "http://h/landing/big")).await;
    assert_eq!((r.status.as_u16(), r.instance()), (302, "a".to_string()));
    let r = c.send(post(&url, sha256::pattern(5_000), "http://h/landing/small")).await;
    assert_eq!((r.status.as_u16(), r.instance()), (200, "b".to_string()));
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_failed_total").await, 1);
    assert_eq!(legate.stat("cluster.a.upstream_internal_redirect_succeeded_total").await, 1);
}

/// Envoy logs the stream a redirect ends (its 3xx, `internal_redirect`, the request as the
/// redirect rewrote it, the route it was checked against) and then the new one.
#[tokio::test]
async fn each_redirect_ends_a_logged_stream() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").spawn().await;
    let routes = json!([route("follow", "/follow/", "a", Some(json!({}))), route("landing", "/landing", "b", None)]);
    let mut doc = bootstrap()
        .routes(routes)
        .cluster(static_cluster("a", &[a.addr()]))
        .cluster(static_cluster("b", &[b.addr()]))
        .value();
    let (_dir, path) = log_dir();
    let format = "%RESPONSE_CODE% %REQ(:AUTHORITY)% %REQ(:PATH)% %ROUTE_NAME% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% \
                  %RESPONSE_CODE_DETAILS% %REQ(X-ENVOY-ORIGINAL-URL)%\n";
    doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] =
        json!([file_log(&path, Some(json!({ "text_format": format })))]);
    let legate = Legate::start(serde_yaml::to_string(&doc).expect("yaml")).await;
    let r = Client::h1()
        .get_with(&legate.url("main", "/follow/status/302/x"), &[("x-echo-response-header", &to("http://h/landing/y"))])
        .await;
    assert_eq!(r.instance(), "b");
    let original = format!("http://{}/follow/status/302/x", legate.listener("main"));
    let got = lines(&path, 2).await;
    assert_eq!(
        got,
        vec![
            format!("302 h /landing/y landing b {} internal_redirect {original}", a.addr()),
            format!("200 h /landing/y landing b {} via_upstream {original}", b.addr()),
        ]
    );
}
