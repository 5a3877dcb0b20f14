//! `request_mirror_policies` on virtual hosts and route configurations, and a policy's
//! `host_rewrite_literal`, as Envoy 1.40 applies them (checked side by side): the most
//! specific non-empty list mirrors (the route's, else its virtual host's, else the route
//! configuration's; never merged), and a literal host is sent as is, without `-shadow`.

use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, hcm, static_cluster};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

/// The authorities `up` saw for this path.
fn hosts_at(up: &Upstream, path: &str) -> Vec<Value> {
    up.seen().into_iter().filter(|r| r["path"] == path).map(|r| r["authority"].clone()).collect()
}

#[tokio::test]
async fn the_most_specific_mirror_policies_apply() {
    let main = upstream::http1().name("main").spawn().await;
    let mirror = upstream::http1().name("mirror").spawn().await;
    let policy = |host: &str| json!([{ "cluster": "mirror", "host_rewrite_literal": host }]);
    let route_config = json!({
        "name": "r",
        "request_mirror_policies": policy("rc.example"),
        "virtual_hosts": [
            { "name": "v", "domains": ["v"], "request_mirror_policies": policy("vh.example"), "routes": [
                { "match": { "prefix": "/route" }, "route": { "cluster": "main",
                  "request_mirror_policies": [{ "cluster": "mirror", "host_rewrite_literal": "route.example",
                                                "disable_shadow_host_suffix_append": false }] } },
                { "match": { "prefix": "/plain" }, "route": { "cluster": "main",
                  "request_mirror_policies": [{ "cluster": "mirror" }] } },
                { "match": { "prefix": "/" }, "route": { "cluster": "main" } },
            ] },
            { "name": "r", "domains": ["*"], "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": "main" } }] },
        ],
    });
    let yaml = bootstrap()
        .listener_hcm("main", hcm(route_config))
        .cluster(static_cluster("main", &[main.addr()]))
        .cluster(static_cluster("mirror", &[mirror.addr()]))
        .yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    for (host, path, want) in [
        ("v", "/route", "route.example"),
        ("v", "/other", "vh.example"),
        ("r", "/x", "rc.example"),
        ("v", "/plain", "v-shadow"),
    ] {
        let r = c.get_with(&legate.url("main", path), &[("host", host)]).await;
        assert_eq!(r.instance(), "main", "{host}{path}");
        assert_eventually!(hosts_at(&mirror, path).len() == 1, "{host}{path} mirrored once");
        assert_eq!(hosts_at(&mirror, path), [json!(want)], "{host}{path}");
    }
    assert_eq!(hosts_at(&main, "/x"), [json!("r")], "the main request keeps its host");
}
