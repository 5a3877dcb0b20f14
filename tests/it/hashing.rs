//! Consistent hashing (issue 14): RING_HASH and MAGLEV clusters placed by the route's
//! `hash_policy`. The expected hosts were recorded by running this configuration (the same
//! addresses, ports and keys) through Envoy 1.40: a client pinned by Envoy stays on the same
//! host behind legate, before and after a host leaves.

use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, endpoint, static_cluster, static_cluster_with};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

const HOSTS: [&str; 3] = ["127.0.77.1:18080", "127.0.77.2:18080", "127.0.77.3:18080"];
/// For the tests that need no recorded placement (their own addresses, so they run alongside).
const OTHER_HOSTS: [&str; 3] = ["127.0.78.1:18080", "127.0.78.2:18080", "127.0.78.3:18080"];

/// Envoy 1.40's host (last octet) for `x-user: user-1` .. `user-20`.
const RING_3: [u8; 20] = [3, 2, 3, 2, 1, 1, 1, 2, 1, 2, 3, 3, 2, 2, 1, 1, 2, 3, 2, 2];
/// The same without 127.0.77.2: its keys moved, and two of 127.0.77.1's (user-9, user-15)
/// landed on the entries the re-scaled ring gave 127.0.77.3.
const RING_2: [u8; 20] = [1, 1, 3, 1, 1, 1, 1, 3, 3, 1, 3, 3, 1, 3, 3, 1, 3, 3, 3, 1];
const MAGLEV_3: [u8; 20] = [1, 1, 2, 3, 2, 3, 2, 3, 2, 1, 2, 3, 1, 2, 3, 1, 3, 3, 3, 3];
const MAGLEV_2: [u8; 20] = [1, 1, 3, 3, 3, 3, 1, 3, 1, 1, 1, 3, 1, 3, 3, 1, 3, 3, 3, 3];

async fn upstreams(hosts: [&str; 3]) -> Vec<Upstream> {
    let mut out = Vec::new();
    for h in hosts {
        let ip = h.split(':').next().unwrap_or_default();
        out.push(upstream::http1().name(ip).bind(h).spawn().await);
    }
    out
}

fn config(lb_policy: &str, hosts: &[&str], hash_policy: Value) -> String {
    let addrs: Vec<_> = hosts.iter().map(|h| h.parse().unwrap_or_else(|e| panic!("{h}: {e}"))).collect();
    let mut cluster = static_cluster("svc", &addrs);
    cluster["lb_policy"] = json!(lb_policy);
    let _ = endpoint;
    let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "svc", "hash_policy": hash_policy}});
    bootstrap().routes(json!([route])).cluster(cluster).yaml()
}

/// The host (last octet) each of `user-1` .. `user-20` lands on.
async fn placement(legate: &Legate) -> Vec<u8> {
    let c = Client::h1();
    let mut out = Vec::new();
    for i in 1..=20 {
        let r = c.get_with(&legate.url("main", "/"), &[("x-user", &format!("user-{i}"))]).await;
        let octet = r.instance().rsplit('.').next().and_then(|o| o.parse().ok()).unwrap_or(0);
        out.push(octet);
    }
    out
}

async fn pinned_as_envoy_pins(policy: &str, three: [u8; 20], two: [u8; 20]) {
    let by_header = json!([{"header": {"header_name": "x-user"}}]);
    let legate = Legate::start(config(policy, &HOSTS, by_header.clone())).await;
    assert_eq!(placement(&legate).await, three, "{policy}: where Envoy places the 20 users");
    // 127.0.77.2 leaves: the host list is rebuilt, and so is the ring (or table).
    std::fs::write(legate.config_path(), config(policy, &[HOSTS[0], HOSTS[2]], by_header))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eventually!(legate.stat("cluster.svc.membership_total").await == 2, "the host left");
    assert_eq!(placement(&legate).await, two, "{policy}: where Envoy places them without 127.0.77.2");
    for (before, after) in three.iter().zip(two) {
        if *before == 2 {
            assert_ne!(after, 2);
        }
    }
}

/// Both policies in one test: the recorded placements need the recorded addresses, which
/// only one set of upstreams can hold.
#[tokio::test]
async fn ring_hash_and_maglev_pin_a_header_to_the_host_envoy_pins_it_to() {
    let _ups = upstreams(HOSTS).await;
    pinned_as_envoy_pins("RING_HASH", RING_3, RING_2).await;
    pinned_as_envoy_pins("MAGLEV", MAGLEV_3, MAGLEV_2).await;
}

/// The instances that answered `n` requests with `headers` to `path`, deduplicated.
async fn spread(legate: &Legate, path: &str, headers: &[(&str, &str)], n: usize) -> Vec<String> {
    let c = Client::h1();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(c.get_with(&legate.url("main", path), headers).await.instance());
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn a_missing_cookie_is_generated_with_its_ttl_and_then_pins() {
    let _ups = upstreams(OTHER_HOSTS).await;
    let policy = json!([{"cookie": {"name": "sid", "ttl": "60s", "path": "/"}}]);
    let legate = Legate::start(config("RING_HASH", &OTHER_HOSTS, policy)).await;
    let c = Client::h1();
    let r = c.get(&legate.url("main", "/")).await;
    let set = r.header("set-cookie").unwrap_or_else(|| panic!("no set-cookie")).to_string();
    // Envoy's shape: a 16-hex-digit value, quoted.
    let value =
        set.strip_prefix("sid=\"").and_then(|s| s.split_once('"')).map(|(v, rest)| (v.to_string(), rest.to_string()));
    let (value, rest) = value.unwrap_or_else(|| panic!("{set}"));
    assert!(value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit()), "{set}");
    assert_eq!(rest, "; Max-Age=60; Path=/; HttpOnly");
    let cookie = format!("sid={value}");
    let hosts = spread(&legate, "/", &[("cookie", &cookie)], 8).await;
    assert_eq!(hosts, [r.instance()], "the cookie keeps the client where its first request went");
    let again = c.get_with(&legate.url("main", "/"), &[("cookie", &cookie)]).await;
    assert_eq!(again.header("set-cookie"), None, "a client with the cookie gets no new one");
}

#[tokio::test]
async fn source_ip_and_query_parameter_pin_and_no_key_spreads() {
    const HOSTS: [&str; 3] = ["127.0.79.1:18080", "127.0.79.2:18080", "127.0.79.3:18080"];
    let _ups = upstreams(HOSTS).await;
    let policy =
        json!([{"query_parameter": {"name": "u"}, "terminal": true}, {"connection_properties": {"source_ip": true}}]);
    let legate = Legate::start(config("MAGLEV", &HOSTS, policy)).await;
    // The query parameter decides (terminal); different values reach different hosts.
    let mut seen = Vec::new();
    for u in ["a", "b", "c", "d", "e", "f"] {
        let hosts = spread(&legate, &format!("/?u={u}"), &[], 4).await;
        assert_eq!(hosts.len(), 1, "u={u} stays on one host: {hosts:?}");
        seen.extend(hosts);
    }
    seen.sort();
    seen.dedup();
    assert!(seen.len() > 1, "keys spread over the hosts: {seen:?}");
    // Without it, the client's address: one host for every request of this client.
    assert_eq!(spread(&legate, "/", &[], 8).await.len(), 1);

    // A route without hash_policy: no key, a random host per request (Envoy's behaviour).
    let none = Legate::start(config("RING_HASH", &HOSTS, json!([]))).await;
    assert_eventually!(spread(&none, "/", &[], 12).await.len() > 1, "requests without a key spread");
}

/// Hosts keyed by their endpoint metadata `envoy.lb` `hash_key` (alpha, beta, gamma on .1,
/// .2, .3), not by address: Envoy 1.40's placements of `user-1` .. `user-20`.
const KEYED: [&str; 3] = ["127.0.80.1:18080", "127.0.80.2:18080", "127.0.80.3:18080"];
const RING_KEYED: [u8; 20] = [1, 3, 1, 1, 1, 1, 3, 2, 1, 1, 2, 2, 1, 3, 2, 2, 2, 2, 1, 2];
const MAGLEV_KEYED: [u8; 20] = [2, 3, 2, 3, 2, 2, 2, 1, 3, 2, 2, 1, 1, 1, 2, 3, 3, 1, 3, 1];

fn keyed_config(lb_policy: &str, keys: [&str; 3]) -> String {
    let eps: Vec<Value> = KEYED
        .iter()
        .zip(keys)
        .map(|(h, key)| {
            let mut ep = endpoint(h.parse().unwrap_or_else(|e| panic!("{h}: {e}")));
            ep["metadata"] = json!({"filter_metadata": {"envoy.lb": {"hash_key": key}, "team": {"owner": "x"}}});
            ep
        })
        .collect();
    let mut cluster = static_cluster_with("svc", eps);
    cluster["lb_policy"] = json!(lb_policy);
    let by_header = json!([{"header": {"header_name": "x-user"}}]);
    let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "svc", "hash_policy": by_header}});
    bootstrap().routes(json!([route])).cluster(cluster).yaml()
}

/// A host's `hash_key` places it where Envoy places it, and the placement follows the key:
/// swapping the keys of .1 and .3 in a reload swaps their users.
#[tokio::test]
async fn the_endpoints_hash_key_places_the_host_as_envoy_does() {
    let _ups = upstreams(KEYED).await;
    for (policy, expected) in [("RING_HASH", RING_KEYED), ("MAGLEV", MAGLEV_KEYED)] {
        let legate = Legate::start(keyed_config(policy, ["alpha", "beta", "gamma"])).await;
        assert_eq!(placement(&legate).await, expected, "{policy}: where Envoy places the 20 users");
        std::fs::write(legate.config_path(), keyed_config(policy, ["gamma", "beta", "alpha"]))
            .unwrap_or_else(|e| panic!("{e}"));
        let swapped: Vec<u8> = expected.iter().map(|o| 4 - o).collect();
        assert_eventually!(placement(&legate).await == swapped, "{policy}: the users follow their key");
    }
}
