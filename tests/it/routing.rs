//! Route selection: virtual host choice by Host, then the first matching route.
//! Routes answer with `direct_response` bodies naming themselves.

use crate::common::client::Client;
use crate::common::config::{bootstrap, direct, route_config, vhost};
use crate::common::legate::Legate;
use serde_json::{json, Value};

async fn start(vhosts: Value) -> Legate {
    Legate::start(bootstrap().listener("main", route_config(vhosts)).yaml()).await
}

/// Which route answered `path` for `host` (its body), or `status:N` for a non-200 answer.
async fn hit(legate: &Legate, c: &Client, host: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    let r = c.get_with(&legate.url("main", path), &all).await;
    if r.status == 200 {
        r.text()
    } else {
        format!("status:{}", r.status.as_u16())
    }
}

fn named(name: &str, domains: &[&str]) -> Value {
    vhost(name, domains, json!([direct(json!({"prefix": "/"}), name)]))
}

#[tokio::test]
async fn vhost_exact_beats_longest_suffix_beats_longest_prefix_beats_any() {
    let legate = start(json!([
        named("any", &["*"]),
        named("prefix_short", &["www.*"]),
        named("prefix_long", &["www.example.*"]),
        named("suffix_short", &["*.com"]),
        named("suffix_long", &["*.example.com"]),
        named("exact", &["www.example.com"]),
    ]))
    .await;
    let c = Client::h1();
    for (host, want) in [
        ("www.example.com", "exact"),
        ("WWW.Example.COM", "exact"),
        ("api.example.com", "suffix_long"),
        ("api.other.com", "suffix_short"),
        ("www.example.org", "prefix_long"),
        ("www.other.org", "prefix_short"),
        ("unrelated.net", "any"),
    ] {
        assert_eq!(hit(&legate, &c, host, "/", &[]).await, want, "Host: {host}");
    }
}

#[tokio::test]
async fn host_port_is_part_of_the_match() {
    let legate = start(json!([
        named("any", &["*"]),
        named("plain", &["svc.test"]),
        named("ported", &["svc.test:8080"]),
        named("wild_prefix", &["api.*"]),
    ]))
    .await;
    let c = Client::h1();
    assert_eq!(hit(&legate, &c, "svc.test", "/", &[]).await, "plain");
    assert_eq!(hit(&legate, &c, "svc.test:8080", "/", &[]).await, "ported");
    // Envoy considers the port: svc.test:9090 is not svc.test.
    assert_eq!(hit(&legate, &c, "svc.test:9090", "/", &[]).await, "any");
    assert_eq!(hit(&legate, &c, "api.test:9090", "/", &[]).await, "wild_prefix");
}

#[tokio::test]
async fn no_wildcard_vhost_means_404() {
    let legate = start(json!([named("only", &["only.test"])])).await;
    let c = Client::h1();
    assert_eq!(hit(&legate, &c, "only.test", "/", &[]).await, "only");
    assert_eq!(hit(&legate, &c, "other.test", "/", &[]).await, "status:404");
}

#[tokio::test]
async fn first_matching_route_wins() {
    let legate = start(json!([vhost(
        "v",
        &["*"],
        json!([
            direct(json!({"prefix": "/a"}), "first"),
            direct(json!({"path": "/a/b"}), "second"),
            direct(json!({"prefix": "/"}), "fallback"),
        ])
    )]))
    .await;
    let c = Client::h1();
    assert_eq!(hit(&legate, &c, "x", "/a/b", &[]).await, "first");
    assert_eq!(hit(&legate, &c, "x", "/abc", &[]).await, "first");
    assert_eq!(hit(&legate, &c, "x", "/b", &[]).await, "fallback");
}

#[tokio::test]
async fn path_matchers() {
    let legate = start(json!([vhost(
        "v",
        &["*"],
        json!([
            direct(json!({"path": "/exact"}), "path"),
            direct(json!({"safe_regex": {"regex": "/re/[0-9]+"}}), "regex"),
            direct(json!({"path_separated_prefix": "/sep"}), "separated"),
            direct(json!({"prefix": "/CaSe", "case_sensitive": false}), "insensitive"),
            direct(json!({"prefix": "/pre"}), "prefix"),
            direct(json!({"prefix": "/"}), "fallback"),
        ])
    )]))
    .await;
    let c = Client::h1();
    for (path, want) in [
        ("/exact", "path"),
        ("/exact?x=1", "path"),
        ("/exact/more", "fallback"),
        ("/EXACT", "fallback"),
        ("/re/123", "regex"),
        ("/re/123?q=a", "regex"),
        // safe_regex must match the whole path.
        ("/re/123x", "fallback"),
        ("/x/re/1", "fallback"),
        ("/sep", "separated"),
        ("/sep/child", "separated"),
        ("/sep?q", "separated"),
        ("/separate", "fallback"),
        ("/case/x", "insensitive"),
        ("/CASE", "insensitive"),
        ("/prefix-anything", "prefix"),
        ("/Pre", "fallback"),
    ] {
        assert_eq!(hit(&legate, &c, "x", path, &[]).await, want, "path {path}");
    }
}

#[tokio::test]
async fn header_matchers() {
    let on = |prefix: &str, header: Value, name: &str| {
        let mut r = direct(json!({"prefix": prefix, "headers": [header]}), name);
        r["name"] = json!(name);
        r
    };
    let legate = start(json!([vhost(
        "v",
        &["*"],
        json!([
            on("/exact", json!({"name": "x-h", "string_match": {"exact": "val"}}), "exact"),
            on("/prefix", json!({"name": "x-h", "string_match": {"prefix": "va"}}), "prefix"),
            on("/suffix", json!({"name": "x-h", "string_match": {"suffix": "al"}}), "suffix"),
            on("/contains", json!({"name": "x-h", "string_match": {"contains": "mid"}}), "contains"),
            on("/regex", json!({"name": "x-h", "string_match": {"safe_regex": {"regex": "v[0-9]+"}}}), "regex"),
            on("/present", json!({"name": "x-h", "present_match": true}), "present"),
            on("/invert", json!({"name": "x-h", "string_match": {"exact": "bad"}, "invert_match": true}), "invert"),
            direct(json!({"prefix": "/"}), "fallback"),
        ])
    )]))
    .await;
    let c = Client::h1();
    for (path, value, want) in [
        ("/exact", Some("val"), "exact"),
        ("/exact", Some("val2"), "fallback"),
        ("/exact", None, "fallback"),
        ("/prefix", Some("value"), "prefix"),
        ("/prefix", Some("xva"), "fallback"),
        ("/suffix", Some("total"), "suffix"),
        ("/suffix", Some("alt"), "fallback"),
        ("/contains", Some("a-mid-b"), "contains"),
        ("/contains", Some("mi-d"), "fallback"),
        ("/regex", Some("v42"), "regex"),
        ("/regex", Some("v42x"), "fallback"),
        ("/present", Some(""), "present"),
        ("/present", Some("anything"), "present"),
        ("/present", None, "fallback"),
        ("/invert", Some("good"), "invert"),
        ("/invert", Some("bad"), "fallback"),
    ] {
        let headers: Vec<(&str, &str)> = value.map(|v| ("x-h", v)).into_iter().collect();
        assert_eq!(hit(&legate, &c, "x", path, &headers).await, want, "{path} with x-h {value:?}");
    }
}

#[tokio::test]
async fn query_parameter_matchers() {
    let legate = start(json!([vhost(
        "v",
        &["*"],
        json!([
            direct(
                json!({"prefix": "/q", "query_parameters": [
            {"name": "mode", "string_match": {"exact": "fast"}}]}),
                "exact"
            ),
            direct(
                json!({"prefix": "/q", "query_parameters": [
            {"name": "flag", "present_match": true}]}),
                "present"
            ),
            direct(json!({"prefix": "/"}), "fallback"),
        ])
    )]))
    .await;
    let c = Client::h1();
    for (path, want) in [
        ("/q?mode=fast", "exact"),
        ("/q?a=1&mode=fast", "exact"),
        ("/q?mode=slow", "fallback"),
        ("/q?mode=fastest", "fallback"),
        ("/q?flag", "present"),
        ("/q?flag=0", "present"),
        ("/q?flagged=1", "fallback"),
        ("/q", "fallback"),
    ] {
        assert_eq!(hit(&legate, &c, "x", path, &[]).await, want, "path {path}");
    }
}

/// `normalize_path` and `merge_slashes` rewrite the path before routing, and the upstream
/// gets the rewritten path (as Envoy 1.40 does); without them the path is routed and sent
/// as the client wrote it.
#[tokio::test]
async fn normalize_path_and_merge_slashes_apply_before_routing() {
    use crate::common::client::raw;
    use crate::common::config::{hcm, static_cluster, to_cluster};
    use crate::common::upstream;
    let up = upstream::http1().spawn().await;
    let routes = json!([
        {"match": {"prefix": "/admin"}, "direct_response": {"status": 403}},
        to_cluster(json!({"prefix": "/"}), "c"),
    ]);
    let mut normal = hcm(route_config(json!([vhost("all", &["*"], routes.clone())])));
    normal["normalize_path"] = json!(true);
    normal["merge_slashes"] = json!(true);
    let plain = hcm(route_config(json!([vhost("all", &["*"], routes)])));
    let legate = Legate::start(
        bootstrap()
            .listener_hcm("normal", normal)
            .listener_hcm("plain", plain)
            .cluster(static_cluster("c", &[up.addr()]))
            .yaml(),
    )
    .await;
    let get = |listener: &'static str, path: &'static str| {
        let addr = legate.listener(listener);
        async move {
            let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            raw(addr, req.as_bytes()).await.expect("an answer")
        }
    };
    for path in ["/public/../admin", "/public/%2e%2E/admin", "/x/.%2e/admin/", "//admin"] {
        assert_eq!(get("normal", path).await.status, 403, "{path} is /admin once normalized");
        let r = get("plain", path).await;
        assert_eq!(r.status, 200, "{path} without normalization");
        let echo: Value = serde_json::from_slice(&r.body).expect("echo");
        assert_eq!(echo["path"], json!(path), "sent as written");
    }
    let r = get("normal", "//a///b/./%63?q=/../x").await;
    let echo: Value = serde_json::from_slice(&r.body).expect("echo");
    assert_eq!((echo["path"].as_str(), echo["query"].as_str()), (Some("/a/b/c"), Some("q=/../x")));
}

/// A route configuration's `internal_only_headers` are removed from an external client's
/// request before routing (so it can neither match a route by them nor pass them on), and
/// `ignore_port_in_host_matching` chooses the virtual host by the host without its port.
#[tokio::test]
async fn internal_only_headers_and_ignore_port_in_host_matching() {
    use crate::common::config::{hcm, static_cluster, to_cluster};
    use crate::common::upstream;
    let up = upstream::http1().spawn().await;
    let routes = json!([
        direct(json!({"prefix": "/", "headers": [{"name": "x-internal-user", "present_match": true}]}), "internal"),
        to_cluster(json!({"prefix": "/"}), "c"),
    ]);
    let manager = |ignore_port: bool| {
        let mut rc = route_config(json!([vhost("all", &["example.com"], routes.clone())]));
        rc["internal_only_headers"] = json!(["X-Internal-User"]);
        rc["ignore_port_in_host_matching"] = json!(ignore_port);
        let mut m = hcm(rc);
        m["internal_address_config"] = json!({"cidr_ranges": [{"address_prefix": "192.168.0.0", "prefix_len": 16}]});
        m
    };
    let legate = Legate::start(
        bootstrap()
            .listener_hcm("main", manager(true))
            .listener_hcm("ports", manager(false))
            .cluster(static_cluster("c", &[up.addr()]))
            .yaml(),
    )
    .await;
    let c = Client::h1();
    let get = |listener: &str, host: &'static str, client: &'static str| {
        let (c, url) = (c.clone(), legate.url(listener, "/"));
        let headers = [("host", host), ("x-forwarded-for", client), ("x-internal-user", "alice")];
        async move { c.get_with(&url, &headers).await }
    };
    let r = get("main", "example.com", "192.168.1.5").await;
    assert_eq!(r.text(), "internal", "an internal client keeps the header");
    let r = get("main", "example.com:8080", "10.1.1.1").await;
    assert_eq!(r.status, 200, "the port is ignored");
    let echo = r.echo();
    assert!(echo["headers"].get("x-internal-user").is_none(), "removed for an external client: {echo}");
    assert_eq!(get("ports", "example.com:8080", "192.168.1.5").await.status, 404, "the port counts by default");
    assert_eq!(get("ports", "example.com", "10.1.1.1").await.status, 200);
}
