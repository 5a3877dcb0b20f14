//! Consistent hashing on filter state (issue 14): a `set_filter_state` filter makes an object
//! from the request (here `x-user`), and the route's `hash_policy.filter_state` places the
//! request by it on a RING_HASH or MAGLEV cluster. The expected hosts were recorded by running
//! these configurations (the same addresses, ports and keys) through Envoy 1.40; so was a
//! MAGLEV cluster's small `table_size`.

use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, hcm, route_config, router_filter, static_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

const HOSTS: [&str; 4] = ["127.0.84.1:18080", "127.0.84.2:18080", "127.0.84.3:18080", "127.0.84.4:18080"];
/// For the test that needs no recorded placement (its own addresses, so it runs alongside).
const OTHER_HOSTS: [&str; 4] = ["127.0.85.1:18080", "127.0.85.2:18080", "127.0.85.3:18080", "127.0.85.4:18080"];

/// Envoy 1.40's host (last octet) for `x-user: user-1` .. `user-20` through the filter state.
const RING_4: [u8; 20] = [3, 3, 2, 4, 3, 3, 1, 2, 1, 1, 1, 4, 3, 2, 2, 3, 4, 2, 1, 1];
/// The same without 127.0.84.2.
const RING_3: [u8; 20] = [3, 3, 1, 4, 3, 3, 1, 3, 1, 1, 4, 4, 3, 1, 3, 3, 4, 4, 1, 1];
const MAGLEV_4: [u8; 20] = [1, 1, 3, 3, 1, 2, 1, 2, 4, 2, 3, 1, 2, 2, 4, 2, 2, 3, 4, 3];
const MAGLEV_3: [u8; 20] = [1, 1, 3, 3, 1, 4, 1, 1, 4, 1, 3, 1, 4, 1, 4, 3, 1, 3, 4, 3];
/// MAGLEV with `maglev_lb_config.table_size: 7`, keyed by the `x-user` header itself.
const MAGLEV_7_4: [u8; 20] = [3, 4, 1, 2, 3, 1, 3, 1, 3, 2, 1, 2, 1, 1, 3, 2, 2, 2, 2, 2];
const MAGLEV_7_3: [u8; 20] = [3, 4, 1, 1, 3, 1, 3, 1, 3, 1, 1, 1, 1, 4, 3, 1, 1, 1, 1, 1];

async fn upstreams(hosts: [&str; 4]) -> Vec<Upstream> {
    let mut out = Vec::new();
    for h in hosts {
        let ip = h.split(':').next().unwrap_or_default();
        out.push(upstream::http1().name(ip).bind(h).spawn().await);
    }
    out
}

/// `x-user` into filter state `lb.user` by `factory`, `hash_policy` on the route, and a
/// cluster of `hosts` with `lb_policy` (and `extra` cluster fields).
fn config(lb_policy: &str, extra: Value, hosts: &[&str], factory: &str, hash_policy: Value) -> String {
    let addrs: Vec<_> = hosts.iter().map(|h| h.parse().unwrap_or_else(|e| panic!("{h}: {e}"))).collect();
    let mut cluster = static_cluster("svc", &addrs);
    cluster["lb_policy"] = json!(lb_policy);
    if let (Some(c), Value::Object(extra)) = (cluster.as_object_mut(), extra) {
        c.extend(extra);
    }
    let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "svc", "hash_policy": hash_policy}});
    let mut hcm = hcm(route_config(json!([vhost("default", &["*"], json!([route]))])));
    hcm["http_filters"] = json!([
        {
            "name": "envoy.filters.http.set_filter_state",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
                "on_request_headers": [{
                    "object_key": "lb.user",
                    "factory_key": factory,
                    "format_string": {"text_format_source": {"inline_string": "%REQ(x-user)%"}},
                }],
            },
        },
        router_filter(),
    ]);
    bootstrap().listener_hcm("main", hcm).cluster(cluster).yaml()
}

fn by_state() -> Value {
    json!([{"filter_state": {"key": "lb.user"}}])
}

/// The host (last octet) each of `user-1` .. `user-20` lands on.
async fn placement(legate: &Legate) -> Vec<u8> {
    let c = Client::h1();
    let mut out = Vec::new();
    for i in 1..=20 {
        let r = c.get_with(&legate.url("main", "/"), &[("x-user", &format!("user-{i}"))]).await;
        out.push(octet(&r.instance()));
    }
    out
}

fn octet(instance: &str) -> u8 {
    instance.rsplit('.').next().and_then(|o| o.parse().ok()).unwrap_or(0)
}

/// Places the 20 users as Envoy does with all four hosts, and again once 127.0.84.2 left.
async fn pinned_as_envoy_pins(lb_policy: &str, extra: Value, hash_policy: Value, four: [u8; 20], three: [u8; 20]) {
    let at = |hosts: &[&str]| config(lb_policy, extra.clone(), hosts, "envoy.hashable_string", hash_policy.clone());
    let legate = Legate::start(at(&HOSTS)).await;
    assert_eq!(placement(&legate).await, four, "{lb_policy} {extra}: where Envoy places the 20 users");
    std::fs::write(legate.config_path(), at(&[HOSTS[0], HOSTS[2], HOSTS[3]])).unwrap_or_else(|e| panic!("{e}"));
    assert_eventually!(legate.stat("cluster.svc.membership_total").await == 3, "the host left");
    assert_eq!(placement(&legate).await, three, "{lb_policy} {extra}: where Envoy places them without .2");
    let kept = four.iter().zip(three).filter(|(before, after)| **before == *after).count();
    let moved_off_2 = four.iter().filter(|h| **h == 2).count();
    assert!(kept + moved_off_2 >= 14, "{lb_policy} {extra}: most keys stay where they were ({kept} kept)");
}

/// The recorded placements need the recorded addresses, which only one set of upstreams can
/// hold: RING_HASH and MAGLEV on the filter state, then MAGLEV's `table_size` on a header.
#[tokio::test]
async fn filter_state_and_maglev_table_size_pin_users_to_the_hosts_envoy_pins_them_to() {
    let _ups = upstreams(HOSTS).await;
    pinned_as_envoy_pins("RING_HASH", json!({}), by_state(), RING_4, RING_3).await;
    pinned_as_envoy_pins("MAGLEV", json!({}), by_state(), MAGLEV_4, MAGLEV_3).await;
    let table_7 = json!({"maglev_lb_config": {"table_size": 7}});
    let by_header = json!([{"header": {"header_name": "x-user"}}]);
    pinned_as_envoy_pins("MAGLEV", table_7, by_header, MAGLEV_7_4, MAGLEV_7_3).await;

    // Without the header the object is "-" (a missing operator), a key like any other: Envoy
    // sends these requests to 127.0.84.2.
    let legate = Legate::start(config("RING_HASH", json!({}), &HOSTS, "envoy.hashable_string", by_state())).await;
    let c = Client::h1();
    for _ in 0..6 {
        assert_eq!(octet(&c.get(&legate.url("main", "/")).await.instance()), 2);
    }
}

/// The instances that answered `n` requests for `user`, deduplicated.
async fn spread(legate: &Legate, user: &str, n: usize) -> Vec<String> {
    let c = Client::h1();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(c.get_with(&legate.url("main", "/"), &[("x-user", user)]).await.instance());
    }
    out.sort();
    out.dedup();
    out
}

/// An `envoy.string` object is not hashable (Envoy 1.40 sent `user-1` to all four hosts), nor
/// is a key nothing sets: no key, a random host per request. The same user pins with
/// `envoy.hashable_string`.
#[tokio::test]
async fn only_a_hashable_object_keys_the_request() {
    let _ups = upstreams(OTHER_HOSTS).await;
    let plain = Legate::start(config("RING_HASH", json!({}), &OTHER_HOSTS, "envoy.string", by_state())).await;
    assert_eventually!(spread(&plain, "user-1", 12).await.len() > 1, "an envoy.string gives no key");
    let other_key = json!([{"filter_state": {"key": "not.set"}}]);
    let unset = Legate::start(config("MAGLEV", json!({}), &OTHER_HOSTS, "envoy.hashable_string", other_key)).await;
    assert_eventually!(spread(&unset, "user-1", 12).await.len() > 1, "no object, no key");
    let hashed = Legate::start(config("MAGLEV", json!({}), &OTHER_HOSTS, "envoy.hashable_string", by_state())).await;
    for user in ["user-1", "user-2", "user-3"] {
        assert_eq!(spread(&hashed, user, 8).await.len(), 1, "{user} stays on one host");
    }
}
