//! The `cors` and `csrf` filters as Envoy 1.40 answers: preflights answered by the proxy,
//! `access-control-*` headers on allowed origins' responses, per-route policies merged field by
//! field, the deprecated `cors` field, shadow mode, CSRF's origin check with its 403 and stats.

use serde_json::{json, Value};

use crate::common::client::{request, Client};
use crate::common::config::{bootstrap, hcm, route_config, router_filter, static_cluster};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

const T: &str = "type.googleapis.com/envoy.extensions.filters.http.";

fn percent(n: u32) -> Value {
    json!({ "default_value": { "numerator": n, "denominator": "HUNDRED" }, "runtime_key": "k" })
}

fn cors_policy(fields: Value) -> Value {
    let mut p = json!({ "@type": format!("{T}cors.v3.CorsPolicy") });
    if let (Some(p), Value::Object(f)) = (p.as_object_mut(), fields) {
        p.extend(f);
    }
    p
}

fn csrf_policy(fields: Value) -> Value {
    let mut p = json!({ "@type": format!("{T}csrf.v3.CsrfPolicy") });
    if let (Some(p), Value::Object(f)) = (p.as_object_mut(), fields) {
        p.extend(f);
    }
    p
}

fn route(prefix: &str, per_filter: Value) -> Value {
    json!({ "match": { "prefix": prefix }, "route": { "cluster": "service1" }, "typed_per_filter_config": per_filter })
}

fn config(up: &Upstream, vhost: Value) -> String {
    let mut manager = hcm(route_config(json!([vhost])));
    manager["http_filters"] = json!([
        { "name": "envoy.filters.http.cors", "typed_config": { "@type": format!("{T}cors.v3.Cors") } },
        { "name": "envoy.filters.http.csrf", "typed_config": csrf_policy(json!({ "filter_enabled": percent(0) })) },
        router_filter(),
    ]);
    bootstrap().listener_hcm("main", manager).cluster(static_cluster("service1", &[up.addr()])).yaml()
}

async fn send(c: &Client, method: &str, url: &str, headers: &[(&str, &str)]) -> crate::common::client::Resp {
    let mut b = request(method.parse().expect("method"), url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    c.send(b.body(Default::default()).expect("request")).await
}

#[tokio::test]
async fn cors_answers_preflights_and_marks_allowed_origins_per_route() {
    let up = upstream::http1().spawn().await;
    let vhost = json!({
        "name": "www", "domains": ["*"],
        "typed_per_filter_config": { "envoy.filters.http.cors": cors_policy(json!({
            "allow_origin_string_match": [{ "exact": "https://app.test" }, { "suffix": ".trusted.test" }],
            "allow_methods": "GET, POST", "allow_headers": "*", "expose_headers": "x-exposed",
            "max_age": "600", "allow_credentials": true, "allow_private_network_access": true,
        })) },
        "routes": [
            route("/disabled", json!({ "envoy.filters.http.cors": cors_policy(json!({ "filter_enabled": percent(0) })) })),
            route("/shadow", json!({ "envoy.filters.http.cors":
                cors_policy(json!({ "filter_enabled": percent(0), "shadow_enabled": percent(100) })) })),
            route("/regex", json!({ "envoy.filters.http.cors": cors_policy(json!({
                "allow_origin_string_match": [{ "safe_regex": { "regex": ".*\\.envoyproxy\\.io" } }],
                "forward_not_matching_preflights": false })) })),
            route("/", json!({})),
        ],
    });
    let legate = Legate::start(config(&up, vhost)).await;
    let c = Client::h1();
    let url = |p| legate.url("main", p);
    let preflight = |origin: &'static str| {
        [
            ("origin", origin),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-a"),
            ("access-control-request-private-network", "true"),
        ]
    };

    let r = send(&c, "OPTIONS", &url("/x"), &preflight("https://app.test")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.test"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(r.header("access-control-allow-headers"), Some("x-a"), "'*' echoes the request's");
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-private-network"), Some("true"));
    assert_eq!(r.header("access-control-expose-headers"), Some("x-exposed"));
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(up.requests(), 0, "the proxy answers a preflight itself");

    // A simple request from an allowed origin goes upstream and comes back marked.
    let r = send(&c, "GET", &url("/x"), &[("origin", "https://a.trusted.test")]).await;
    assert_eq!(r.instance(), up.name());
    assert_eq!(r.header("access-control-allow-origin"), Some("https://a.trusted.test"));
    assert_eq!(r.header("access-control-expose-headers"), Some("x-exposed"));
    assert_eq!(r.header("access-control-allow-methods"), None);
    // Not allowed: forwarded untouched, preflight or not; no Origin: nothing to do.
    let r = send(&c, "OPTIONS", &url("/x"), &preflight("https://evil.test")).await;
    assert_eq!((r.instance().as_str(), r.header("access-control-allow-origin")), (up.name(), None));
    let r = send(&c, "GET", &url("/x"), &[]).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    // OPTIONS without Access-Control-Request-Method is not a preflight.
    let r = send(&c, "OPTIONS", &url("/x"), &[("origin", "https://app.test")]).await;
    assert_eq!((r.instance().as_str(), r.header("access-control-allow-origin")), (up.name(), Some("https://app.test")));

    // The route's policy: disabled, shadowed (counted only), its own origins merged with the
    // virtual host's other fields, refusing preflights it does not match.
    let r = send(&c, "OPTIONS", &url("/disabled"), &preflight("https://app.test")).await;
    assert_eq!((r.instance().as_str(), r.header("access-control-allow-origin")), (up.name(), None));
    let r = send(&c, "OPTIONS", &url("/shadow"), &preflight("https://app.test")).await;
    assert_eq!((r.instance().as_str(), r.header("access-control-allow-origin")), (up.name(), None));
    let r = send(&c, "OPTIONS", &url("/regex"), &preflight("https://www.envoyproxy.io")).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("https://www.envoyproxy.io"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    let r = send(&c, "OPTIONS", &url("/regex"), &preflight("https://app.test")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(r.header("x-upstream-instance"), None, "answered by the proxy");

    // valid: app preflight, trusted GET, app OPTIONS, shadow, regex; invalid: evil, regex app.
    assert_eq!(legate.stat("http.ingress_http.cors.origin_valid").await, 5);
    assert_eq!(legate.stat("http.ingress_http.cors.origin_invalid").await, 2);
}

#[tokio::test]
async fn the_deprecated_cors_field_applies_without_a_typed_policy() {
    let up = upstream::http1().spawn().await;
    let vhost = json!({
        "name": "www", "domains": ["*"],
        "cors": { "allow_origin_string_match": [{ "prefix": "https://legacy" }], "allow_methods": "GET" },
        "routes": [
            route("/typed", json!({ "envoy.filters.http.cors":
                cors_policy(json!({ "allow_origin_string_match": [{ "exact": "https://typed" }] })) })),
            route("/", json!({})),
        ],
    });
    let legate = Legate::start(config(&up, vhost)).await;
    let c = Client::h1();
    let r = send(&c, "GET", &legate.url("main", "/x"), &[("origin", "https://legacy.test")]).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("https://legacy.test"));
    let r = send(&c, "GET", &legate.url("main", "/typed"), &[("origin", "https://legacy.test")]).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = send(&c, "GET", &legate.url("main", "/typed"), &[("origin", "https://typed")]).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("https://typed"));
}

#[tokio::test]
async fn csrf_refuses_unsafe_cross_origin_requests_per_route() {
    let up = upstream::http1().spawn().await;
    let vhost = json!({
        "name": "www", "domains": ["*"],
        "typed_per_filter_config": { "envoy.filters.http.csrf": csrf_policy(json!({ "filter_enabled": percent(100) })) },
        "routes": [
            route("/disabled", json!({ "envoy.filters.http.csrf": csrf_policy(json!({ "filter_enabled": percent(0) })) })),
            route("/shadow", json!({ "envoy.filters.http.csrf":
                csrf_policy(json!({ "filter_enabled": percent(0), "shadow_enabled": percent(100) })) })),
            route("/additional", json!({ "envoy.filters.http.csrf": csrf_policy(json!({
                "filter_enabled": percent(100), "additional_origins": [{ "safe_regex": { "regex": ".*" } }] })) })),
            route("/", json!({})),
        ],
    });
    let legate = Legate::start(config(&up, vhost)).await;
    let c = Client::h1();
    let url = |p| legate.url("main", p);
    let host = legate.listener("main").to_string();
    let same = format!("http://{host}");
    let r = send(&c, "POST", &url("/x"), &[("origin", "http://evil.test")]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (403, "Invalid origin"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = send(&c, "DELETE", &url("/x"), &[]).await;
    assert_eq!(r.status, 403);
    let r = send(&c, "PUT", &url("/x"), &[("origin", same.as_str())]).await;
    assert_eq!(r.instance(), up.name());
    let referer = format!("{same}/page?q");
    let r = send(&c, "PATCH", &url("/x"), &[("referer", referer.as_str())]).await;
    assert_eq!(r.instance(), up.name());
    let r = send(&c, "GET", &url("/x"), &[("origin", "http://evil.test")]).await;
    assert_eq!(r.instance(), up.name(), "safe methods are not checked");
    for path in ["/disabled", "/shadow", "/additional"] {
        let r = send(&c, "POST", &url(path), &[("origin", "http://evil.test")]).await;
        assert_eq!(r.instance(), up.name(), "{path}");
    }
    assert_eq!(up.requests(), 6);
    // missing: the DELETE; invalid: evil POST, shadow; valid: PUT, PATCH, additional.
    assert_eq!(legate.stat("http.ingress_http.csrf.missing_source_origin").await, 1);
    assert_eq!(legate.stat("http.ingress_http.csrf.request_invalid").await, 2);
    assert_eq!(legate.stat("http.ingress_http.csrf.request_valid").await, 3);
}
