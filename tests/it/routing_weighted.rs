//! `weighted_clusters` as Envoy 1.40 picks them (checked side by side): `header_name` (the
//! header's value modulo the total weight), `use_hash_policy` (the route's hash), a
//! cluster's `host_rewrite_literal` and `cluster_header`.

use serde_json::json;

use crate::common::client::Client;
use crate::common::config::{bootstrap, static_cluster};
use crate::common::legate::Legate;
use crate::common::upstream;

#[tokio::test]
async fn weighted_clusters_pick_by_header_hash_and_cluster_header() {
    let a = upstream::http1().name("a").spawn().await;
    let b = upstream::http1().name("b").spawn().await;
    let routes = json!([
        { "match": { "prefix": "/hdr" }, "route": { "append_x_forwarded_host": true, "weighted_clusters": {
            "header_name": "x-w",
            "clusters": [{ "name": "a", "weight": 1 }, { "name": "b", "weight": 2, "host_rewrite_literal": "rb.example" }],
        } } },
        { "match": { "prefix": "/hash" }, "route": {
            "hash_policy": [{ "header": { "header_name": "x-h" } }],
            "weighted_clusters": { "use_hash_policy": true, "clusters": [{ "name": "a", "weight": 1 }, { "name": "b", "weight": 2 }] },
        } },
        { "match": { "prefix": "/ch" }, "route": { "host_rewrite_literal": "route.example", "weighted_clusters": {
            "header_name": "x-w",
            "clusters": [
                { "cluster_header": "x-cl", "weight": 1, "host_rewrite_literal": "ra.example" },
                { "name": "b", "weight": 2 },
            ],
        } } },
    ]);
    let yaml = bootstrap()
        .routes(routes)
        .cluster(static_cluster("a", &[a.addr()]))
        .cluster(static_cluster("b", &[b.addr()]))
        .yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    let get = |path: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let c = c.clone();
        let url = legate.url("main", path);
        async move { c.get_with(&url, &headers).await }
    };
    for (w, want, authority) in
        [("0", "a", "orig"), ("1", "b", "rb.example"), ("2", "b", "rb.example"), ("3", "a", "orig")]
    {
        let r = get("/hdr", vec![("host", "orig"), ("x-w", w)]).await;
        assert_eq!(r.instance(), want, "x-w: {w}");
        let e = r.echo();
        assert_eq!(e["authority"], json!(authority), "x-w: {w}");
        // Envoy sets neither for a weighted cluster's rewrite.
        assert_eq!(
            (&e["headers"]["x-envoy-original-host"], &e["headers"]["x-forwarded-host"]),
            (&json!(null), &json!(null))
        );
    }
    for (h, want) in [("a", "b"), ("b", "a"), ("c", "b"), ("j", "b")] {
        for _ in 0..3 {
            assert_eq!(get("/hash", vec![("x-h", h)]).await.instance(), want, "x-h: {h}");
        }
    }
    // The cluster_header entry is served as the route: its own host rewrite does not apply.
    let r = get("/ch", vec![("host", "orig"), ("x-w", "0"), ("x-cl", "b")]).await;
    assert_eq!((r.instance(), r.echo()["authority"].clone()), ("b".to_string(), json!("route.example")));
    assert_eq!(get("/ch", vec![("x-w", "0")]).await.status, 503, "no x-cl");
    assert_eq!(get("/ch", vec![("x-w", "0"), ("x-cl", "nosuch")]).await.status, 503, "unknown cluster");
}
