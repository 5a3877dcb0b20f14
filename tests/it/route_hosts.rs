//! The route's host rewrites read from the request (checked against Envoy 1.40):
//! `host_rewrite_header` (the header's first value, when present and not empty) and
//! `host_rewrite_path_regex` (on the path as received, before `prefix_rewrite`, without its
//! query); the client's host goes to `x-envoy-original-host`.

use serde_json::{json, Value};

use crate::common::client::Client;
use crate::common::config::{bootstrap, hcm, route_config, static_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::upstream;

#[tokio::test]
async fn the_host_comes_from_a_header_or_from_the_path() {
    let up = upstream::http1().spawn().await;
    let routes = json!([
        {"match": {"prefix": "/hh"}, "route": {"cluster": "up", "host_rewrite_header": "x-host"}},
        {"match": {"prefix": "/hp"}, "route": {"cluster": "up", "prefix_rewrite": "/zz",
            "host_rewrite_path_regex": {"pattern": {"regex": "^/(..)/?(\\w*).*$"}, "substitution": "\\2.\\1.example"}}},
    ]);
    let b = bootstrap()
        .listener_hcm("main", hcm(route_config(json!([vhost("default", &["*"], routes)]))))
        .cluster(static_cluster("up", &[up.addr()]));
    let legate = Legate::start(b.yaml()).await;
    let c = Client::h1();
    let get = |path: &str, headers: &'static [(&'static str, &'static str)]| {
        let (c, url) = (c.clone(), legate.url("main", path));
        async move { c.get_with(&url, headers).await.echo() }
    };
    let client_host = legate.listener("main").to_string();
    let echo = get("/hh?a=1", &[("x-host", "other.example")]).await;
    assert_eq!(echo["authority"], "other.example");
    assert_eq!(echo["headers"]["x-envoy-original-host"], Value::String(client_host.clone()));
    // Absent or empty: the host stays.
    for headers in [&[][..], &[("x-host", "")][..]] {
        let echo = get("/hh", headers).await;
        assert_eq!(echo["authority"], Value::String(client_host.clone()), "{headers:?}");
        assert_eq!(echo["headers"]["x-envoy-original-host"], Value::Null);
    }
    assert_eq!(get("/hh", &[("x-host", "a.example"), ("x-host", "b.example")]).await["authority"], "a.example");
    let echo = get("/hp/abc?q=1", &[]).await;
    assert_eq!((echo["authority"].as_str(), echo["path"].as_str()), (Some("abc.hp.example"), Some("/zz/abc")));
    assert_eq!(echo["headers"]["x-envoy-original-host"], Value::String(client_host));
    assert_eq!(get("/hp", &[]).await["authority"], ".hp.example");
}
