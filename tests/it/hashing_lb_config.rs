//! `common_lb_config.consistent_hashing_lb_config` on RING_HASH clusters (issue 14), with the
//! real binary: `use_hostname_for_hashing` keys a STRICT_DNS cluster's ring by the endpoints'
//! hostnames (so a key follows its hostname when the addresses move), and
//! `hash_balance_factor` bounds the in-flight requests one key can pile on its host.

use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::common::client::Client;
use crate::common::config::{bootstrap, static_cluster, strict_dns_cluster};
use crate::common::dns::DnsServer;
use crate::common::legate::Legate;
use crate::common::upstream::{self, Proto, Upstream};
use crate::common::{assert_eventually, bounded};

const NAMES: [&str; 3] = ["alpha.test", "beta.test", "gamma.test"];

/// A RING_HASH STRICT_DNS cluster with one endpoint per name of [`NAMES`], all on `port`.
fn dns_ring(name: &str, port: u16, dns_port: u16, use_hostname: bool) -> Value {
    let mut c = strict_dns_cluster(name, NAMES[0], port, dns_port);
    let eps: Vec<Value> = NAMES
        .iter()
        .map(|n| json!({"endpoint": {"address": {"socket_address": {"address": n, "port_value": port}}}}))
        .collect();
    c["load_assignment"]["endpoints"][0]["lb_endpoints"] = json!(eps);
    c["lb_policy"] = json!("RING_HASH");
    if use_hostname {
        c["common_lb_config"] = json!({"consistent_hashing_lb_config": {"use_hostname_for_hashing": true}});
    }
    c
}

fn hashed_route(prefix: &str, cluster: &str) -> Value {
    json!({"match": {"prefix": prefix}, "route": {"cluster": cluster,
        "hash_policy": [{"header": {"header_name": "x-user"}}]}})
}

/// The instance each of `user-1` .. `user-20` reaches through `path`.
async fn placement(legate: &Legate, path: &str) -> Vec<String> {
    let c = Client::h1();
    let mut out = Vec::new();
    for i in 1..=20 {
        let r = c.get_with(&legate.url("main", path), &[("x-user", &format!("user-{i}"))]).await;
        assert_eq!(r.status, 200, "{path} user-{i}");
        out.push(r.instance());
    }
    out
}

/// `cluster` lists `ip:port` under `hostname` in the admin's /clusters.
async fn listed(legate: &Legate, cluster: &str, ip: &str, port: u16, hostname: &str) -> bool {
    legate.admin_get("/clusters").await.text().contains(&format!("{cluster}::{ip}:{port}::hostname::{hostname}\n"))
}

/// Two clusters over the same three hostnames, one keyed by hostname and one by address;
/// alpha and beta then swap addresses. The hostname-keyed cluster sends each key to the
/// instance its hostname now names; the address-keyed one keeps each key on its address.
#[tokio::test]
async fn use_hostname_for_hashing_keeps_a_key_on_its_hostname_when_addresses_swap() {
    let ups = upstream::spawn_same_port(
        Proto::Http1,
        &[("one", "127.0.91.1"), ("two", "127.0.91.2"), ("three", "127.0.91.3")],
    )
    .await;
    let port = ups[0].port();
    let dns = DnsServer::spawn().await;
    dns.set(NAMES[0], &["127.0.91.1"]);
    dns.set(NAMES[1], &["127.0.91.2"]);
    dns.set(NAMES[2], &["127.0.91.3"]);
    let yaml = bootstrap()
        .routes(json!([hashed_route("/name", "by_name"), hashed_route("/addr", "by_addr")]))
        .cluster(dns_ring("by_name", port, dns.port(), true))
        .cluster(dns_ring("by_addr", port, dns.port(), false))
        .yaml();
    let legate = Legate::start(yaml).await;
    for cluster in ["by_name", "by_addr"] {
        assert_eventually!(
            legate.stat(&format!("cluster.{cluster}.membership_healthy")).await == 3,
            "{cluster}: the three names resolve"
        );
    }
    let by_name = placement(&legate, "/name").await;
    let by_addr = placement(&legate, "/addr").await;
    assert!(
        by_name.iter().any(|i| i != "three"),
        "some user lands on alpha or beta, or the swap shows nothing: {by_name:?}"
    );

    dns.set(NAMES[0], &["127.0.91.2"]);
    dns.set(NAMES[1], &["127.0.91.1"]);
    for cluster in ["by_name", "by_addr"] {
        assert_eventually!(
            listed(&legate, cluster, "127.0.91.2", port, NAMES[0]).await
                && listed(&legate, cluster, "127.0.91.1", port, NAMES[1]).await
                && !listed(&legate, cluster, "127.0.91.1", port, NAMES[0]).await
                && !listed(&legate, cluster, "127.0.91.2", port, NAMES[1]).await,
            "{cluster}: alpha and beta swapped addresses: {}",
            legate.admin_get("/clusters").await.text()
        );
    }
    let swapped: Vec<String> = by_name
        .iter()
        .map(|i| match i.as_str() {
            "one" => "two".to_string(),
            "two" => "one".to_string(),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(placement(&legate, "/name").await, swapped, "by hostname: each user follows its hostname");
    assert_eq!(placement(&legate, "/addr").await, by_addr, "by address: each user stays on its address");
}

/// The requests each of `ups` holds in flight.
fn in_flight(ups: &[Upstream]) -> Vec<usize> {
    ups.iter().map(Upstream::in_flight).collect()
}

/// Six slow requests for one key through `prefix`, each sent once the one before is in
/// flight at an upstream; the instances that answered them.
async fn pile_up(legate: &Legate, ups: &[Upstream], prefix: &str) -> Vec<String> {
    let url = legate.url("main", &format!("{prefix}/delay/2000ms"));
    let mut tasks = JoinSet::new();
    for n in 1..=6 {
        let url = url.clone();
        tasks.spawn(async move { Client::h1().get_with(&url, &[("x-user", "heavy")]).await.instance() });
        assert_eventually!(
            in_flight(ups).iter().sum::<usize>() == n,
            "{prefix}: request {n} in flight: {:?}",
            in_flight(ups)
        );
    }
    let mut out = Vec::new();
    while let Some(r) = bounded("the slow requests", tasks.join_next()).await {
        out.push(r.unwrap_or_else(|e| panic!("{e}")));
    }
    out
}

/// One key's concurrent requests: all on its host without `hash_balance_factor`; with 120,
/// the host takes its bounded share and the rest overflow to another host.
#[tokio::test]
async fn hash_balance_factor_overflows_a_loaded_keys_requests_to_another_host() {
    let mut ups = Vec::new();
    for (name, ip) in [("one", "127.0.92.1"), ("two", "127.0.92.2"), ("three", "127.0.92.3")] {
        ups.push(upstream::http1().name(name).bind(&format!("{ip}:0")).spawn().await);
    }
    let addrs: Vec<_> = ups.iter().map(Upstream::addr).collect();
    let mut bounded_cluster = static_cluster("bounded", &addrs);
    bounded_cluster["lb_policy"] = json!("RING_HASH");
    bounded_cluster["common_lb_config"] = json!({"consistent_hashing_lb_config": {"hash_balance_factor": 120}});
    let mut plain = static_cluster("plain", &addrs);
    plain["lb_policy"] = json!("RING_HASH");
    let yaml = bootstrap()
        .routes(json!([hashed_route("/bounded", "bounded"), hashed_route("/plain", "plain")]))
        .cluster(bounded_cluster)
        .cluster(plain)
        .yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    // Unloaded, both clusters pin the key to the same host (the same ring over the same addresses).
    let pinned = c.get_with(&legate.url("main", "/plain"), &[("x-user", "heavy")]).await.instance();
    assert_eq!(c.get_with(&legate.url("main", "/bounded"), &[("x-user", "heavy")]).await.instance(), pinned);

    let plain = pile_up(&legate, &ups, "/plain").await;
    assert!(plain.iter().all(|i| *i == pinned), "without a factor all stay on {pinned}: {plain:?}");

    let spread = pile_up(&legate, &ups, "/bounded").await;
    let on_pinned = spread.iter().filter(|i| **i == pinned).count();
    assert!((1..6).contains(&on_pinned), "with factor 120 some of the six overflow from {pinned}: {spread:?}");
    assert_eq!(legate.stat("cluster.bounded.upstream_rq_active").await, 0, "all answered");
}
