//! Route `match.grpc` and `append_x_forwarded_host`, as Envoy 1.40 does them (checked side
//! by side with the same config).

use serde_json::json;

use crate::common::client::Client;
use crate::common::config::{bootstrap, static_cluster, static_cluster_with};
use crate::common::legate::Legate;
use crate::common::upstream;

/// `match.grpc` takes only `content-type: application/grpc` and `application/grpc+...`
/// (not `grpc-web`, not other cases, not `;` parameters), whatever the protocol.
#[tokio::test]
async fn grpc_routes_take_only_grpc_requests() {
    let grpc = upstream::h2().name("grpc").spawn().await;
    let other = upstream::http1().name("other").spawn().await;
    let yaml = bootstrap()
        .routes(json!([
            { "match": { "prefix": "/", "grpc": {} }, "route": { "cluster": "grpc" } },
            { "match": { "prefix": "/" }, "route": { "cluster": "other" } },
        ]))
        .cluster(crate::common::config::with_h2(static_cluster("grpc", &[grpc.addr()])))
        .cluster(static_cluster("other", &[other.addr()]))
        .yaml();
    let legate = Legate::start(yaml).await;
    let url = legate.url("main", "/svc.Echo/Call");
    for (client, proto) in [(Client::h1(), "h1"), (Client::h2c(), "h2c")] {
        for (ct, want) in [
            ("application/grpc", "grpc"),
            ("application/grpc+proto", "grpc"),
            ("application/grpc-web", "other"),
            ("application/grpc;x=1", "other"),
            ("Application/GRPC", "other"),
            ("text/plain", "other"),
        ] {
            let r = client.get_with(&url, &[("content-type", ct)]).await;
            assert_eq!(r.instance(), want, "{proto} {ct}");
        }
        assert_eq!(client.get(&url).await.instance(), "other", "{proto} without content-type");
    }
}

/// A rewritten host is appended to `x-forwarded-host` (`a,b`) with `host_rewrite_literal`
/// and with `auto_host_rewrite`; without a rewrite, or without the flag, nothing is added.
#[tokio::test]
async fn append_x_forwarded_host_follows_host_rewrites() {
    let up = upstream::http1().spawn().await;
    let named = static_cluster_with(
        "named",
        vec![json!({ "endpoint": { "hostname": "named.example", "address": { "socket_address": {
            "address": up.ip(), "port_value": up.port() } } } })],
    );
    let route = |prefix: &str, action: serde_json::Value| json!({ "match": { "prefix": prefix }, "route": action });
    let yaml = bootstrap()
        .routes(json!([
            route(
                "/literal",
                json!({ "cluster": "up", "host_rewrite_literal": "new.example", "append_x_forwarded_host": true })
            ),
            route("/auto", json!({ "cluster": "named", "auto_host_rewrite": true, "append_x_forwarded_host": true })),
            route("/unflagged", json!({ "cluster": "up", "host_rewrite_literal": "new.example" })),
            route("/", json!({ "cluster": "up", "append_x_forwarded_host": true })),
        ]))
        .cluster(static_cluster("up", &[up.addr()]))
        .cluster(named)
        .yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    let echo = |path: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let c = c.clone();
        let url = legate.url("main", path);
        async move { c.get_with(&url, headers).await.echo() }
    };
    let e = echo("/literal", &[("host", "orig.example"), ("x-forwarded-host", "first.example")]).await;
    assert_eq!(
        (e["authority"].clone(), e["headers"]["x-forwarded-host"].clone()),
        (json!("new.example"), json!("first.example,orig.example"))
    );
    let e = echo("/auto", &[("host", "orig.example:99")]).await;
    assert_eq!(
        (e["authority"].clone(), e["headers"]["x-forwarded-host"].clone()),
        (json!("named.example"), json!("orig.example:99"))
    );
    assert_eq!(echo("/unflagged", &[("host", "orig.example")]).await["headers"].get("x-forwarded-host"), None);
    assert_eq!(echo("/plain", &[("host", "orig.example")]).await["headers"].get("x-forwarded-host"), None);
}
