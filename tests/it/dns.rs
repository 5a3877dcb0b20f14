//! STRICT_DNS clusters resolved through the test DNS server: every A record becomes a host,
//! and a changed answer changes the hosts.

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, strict_dns_cluster, to_cluster};
use crate::common::dns::DnsServer;
use crate::common::legate::Legate;
use crate::common::upstream::{self, Proto, Upstream};
use serde_json::json;

async fn start(dns: &DnsServer, name: &str, port: u16) -> Legate {
    Legate::start(
        bootstrap()
            .routes(json!([to_cluster(json!({"prefix": "/"}), "service1")]))
            .cluster(strict_dns_cluster("service1", name, port, dns.port()))
            .yaml(),
    )
    .await
}

/// Sends `n` requests, ignoring failures (hosts may be in flux).
async fn spray(c: &Client, url: &str, n: usize) {
    for _ in 0..n {
        let _ = c.get(url).await;
    }
}

fn total(ups: &[Upstream]) -> usize {
    ups.iter().map(|u| u.requests()).sum()
}

#[tokio::test]
async fn strict_dns_follows_the_a_records() {
    let ups =
        upstream::spawn_same_port(Proto::Http1, &[("a", "127.0.0.21"), ("b", "127.0.0.22"), ("c", "127.0.0.23")]).await;
    let dns = DnsServer::spawn().await;
    dns.set("service1", &["127.0.0.21", "127.0.0.22", "127.0.0.23"]);
    let legate = start(&dns, "service1", ups[0].port()).await;
    let url = legate.url("main", "/");
    let c = Client::h1();

    assert_eventually!(
        {
            spray(&c, &url, 6).await;
            ups.iter().all(|u| u.requests() > 0)
        },
        "all three A records get traffic: {:?}",
        ups.iter().map(|u| u.requests()).collect::<Vec<_>>()
    );

    dns.set("service1", &["127.0.0.21", "127.0.0.22"]);
    let removed = &ups[2];
    assert_eventually!(
        {
            let before = removed.requests();
            spray(&c, &url, 10).await;
            removed.requests() == before
        },
        "127.0.0.23 stops getting traffic after leaving the DNS answer"
    );
    let (a, b, gone) = (ups[0].requests(), ups[1].requests(), removed.requests());
    for _ in 0..20 {
        assert_eq!(c.get(&url).await.status, 200);
    }
    assert_eq!(removed.requests(), gone, "removed host got traffic again");
    assert!(ups[0].requests() > a && ups[1].requests() > b, "both remaining hosts serve");
    assert_eq!(total(&ups), a + b + gone + 20);
    assert!(dns.queries("service1") >= 2, "resolved more than once");
}

#[tokio::test]
async fn unresolvable_name_answers_503_until_it_resolves() {
    let up = upstream::http1().name("late").spawn().await;
    let dns = DnsServer::spawn().await;
    let legate = start(&dns, "late.test", up.port()).await;
    let url = legate.url("main", "/");
    let c = Client::h1();
    let r = c.get(&url).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "no healthy upstream");
    dns.set("late.test", &["127.0.0.1"]);
    assert_eventually!(c.get(&url).await.status == 200, "late.test resolves");
    assert_eq!(c.get(&url).await.instance(), "late");
}

/// `dns_resolver_options.use_tcp_for_dns_lookups` sends the lookups over TCP.
#[tokio::test]
async fn use_tcp_for_dns_lookups_queries_over_tcp() {
    let up = upstream::http1().name("a").bind("127.0.0.24:0").spawn().await;
    let dns = DnsServer::spawn().await;
    dns.set("service1.example", &["127.0.0.24"]);
    let mut cluster = strict_dns_cluster("service1", "service1.example", up.port(), dns.port());
    cluster["typed_dns_resolver_config"]["typed_config"]["dns_resolver_options"] =
        json!({"use_tcp_for_dns_lookups": true, "no_default_search_domain": true});
    let legate = Legate::start(
        bootstrap().routes(json!([to_cluster(json!({"prefix": "/"}), "service1")])).cluster(cluster).yaml(),
    )
    .await;
    let c = Client::h1();
    let url = legate.url("main", "/");
    assert_eventually!(c.get(&url).await.status == 200, "the name resolves");
    assert!(dns.tcp_queries() > 0, "looked up over TCP");
    assert_eq!(dns.total_queries(), 0, "nothing over UDP");
}

/// A bootstrap with `top` (top-level fields) merged in.
fn with_top(b: crate::common::config::Bootstrap, top: serde_json::Value) -> String {
    let mut v = b.value();
    for (k, field) in top.as_object().expect("an object") {
        v[k] = field.clone();
    }
    serde_yaml::to_string(&v).expect("yaml")
}

/// A STRICT_DNS cluster that names no resolver of its own.
fn dns_cluster(name: &str, host: &str, port: u16) -> serde_json::Value {
    let mut c = strict_dns_cluster(name, host, port, 0);
    c.as_object_mut().expect("an object").remove("typed_dns_resolver_config");
    c
}

fn cares(dns: &DnsServer) -> serde_json::Value {
    json!({
        "name": "envoy.network.dns_resolver.cares",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
            "resolvers": [{ "socket_address": { "address": dns.addr().ip().to_string(), "port_value": dns.port() } }],
            "dns_resolver_options": { "no_default_search_domain": true },
        },
    })
}

/// The bootstrap's `typed_dns_resolver_config` resolves every DNS cluster without its own
/// (here a server on 127.0.0.54 and a port other than 53); a cluster with its own keeps it.
#[tokio::test]
async fn the_bootstrap_resolver_serves_clusters_without_their_own() {
    let ups =
        upstream::spawn_same_port(Proto::Http1, &[("a", "127.0.0.25"), ("b", "127.0.0.26"), ("c", "127.0.0.27")]).await;
    let shared = DnsServer::spawn_at("127.0.0.54").await;
    shared.set("a.svc", &["127.0.0.25"]);
    shared.set("b.svc", &["127.0.0.26"]);
    shared.set("c.svc", &["127.0.0.25"]);
    let own = DnsServer::spawn().await;
    own.set("c.svc", &["127.0.0.27"]);
    let b = bootstrap()
        .routes(json!([
            to_cluster(json!({"prefix": "/a"}), "a"),
            to_cluster(json!({"prefix": "/b"}), "b"),
            to_cluster(json!({"prefix": "/c"}), "c"),
        ]))
        .cluster(dns_cluster("a", "a.svc", ups[0].port()))
        .cluster(dns_cluster("b", "b.svc", ups[0].port()))
        .cluster(strict_dns_cluster("c", "c.svc", ups[0].port(), own.port()));
    let legate = Legate::start(with_top(b, json!({"typed_dns_resolver_config": cares(&shared)}))).await;
    let c = Client::h1();
    for (path, instance) in [("/a", "a"), ("/b", "b"), ("/c", "c")] {
        let url = legate.url("main", path);
        assert_eventually!(c.get(&url).await.status == 200, "{path} resolves");
        assert_eq!(c.get(&url).await.instance(), instance, "{path}");
    }
    assert!(shared.queries("a.svc") > 0 && shared.queries("b.svc") > 0);
    assert_eq!(shared.queries("c.svc"), 0, "c asks its own resolver");
}

/// The deprecated bootstrap `dns_resolution_config` does the same.
#[tokio::test]
async fn the_bootstrap_dns_resolution_config_is_the_default_too() {
    let up = upstream::http1().name("a").bind("127.0.0.28:0").spawn().await;
    let dns = DnsServer::spawn_at("127.0.0.55").await;
    dns.set("a.svc", &["127.0.0.28"]);
    let b = bootstrap().routes(json!([to_cluster(json!({"prefix": "/"}), "a")])).cluster(dns_cluster(
        "a",
        "a.svc",
        up.port(),
    ));
    let resolvers = json!({"resolvers": [{ "socket_address": { "address": "127.0.0.55", "port_value": dns.port() } }]});
    let legate = Legate::start(with_top(b, json!({"dns_resolution_config": resolvers}))).await;
    let c = Client::h1();
    let url = legate.url("main", "/");
    assert_eventually!(c.get(&url).await.status == 200, "a.svc resolves through the bootstrap's resolver");
}

/// `cluster.<name>.update_*` as Envoy 1.40 counts them for a DNS cluster: an attempt per
/// lookup, a success per answer, no_rebuild when nothing changed, a failure when the server is
/// gone (and the hosts stay).
#[tokio::test]
async fn dns_clusters_count_their_updates() {
    let up = upstream::http1().name("a").bind("127.0.0.29:0").spawn().await;
    let dns = DnsServer::spawn().await;
    dns.set("a.svc", &["127.0.0.29"]);
    let legate = start(&dns, "a.svc", up.port()).await;
    let c = Client::h1();
    let url = legate.url("main", "/");
    assert_eventually!(c.get(&url).await.status == 200, "a.svc resolves");
    assert_eventually!(legate.stat("cluster.service1.update_no_rebuild").await >= 2, "unchanged answers");
    let s = legate.stats().await;
    let [attempt, success, failure] =
        ["update_attempt", "update_success", "update_failure"].map(|n| s[&format!("cluster.service1.{n}")]);
    assert_eq!(failure, 0);
    assert!(attempt == success || attempt == success + 1, "one lookup may be in flight: {attempt} {success}");
    assert_eq!(s["cluster.service1.update_empty"], 0);
    // The resolved hosts in `/config_dump?include_eds`, in Envoy 1.40's shape for a
    // STRICT_DNS cluster: the name the address came from, an empty metadata.
    let dump = legate.admin_get("/config_dump?include_eds").await.json();
    let eds = dump["configs"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"))
        .cloned()
        .expect("an EndpointsConfigDump");
    let cla = &eds["static_endpoint_configs"][0]["endpoint_config"];
    assert_eq!(cla["cluster_name"], "service1", "{eds:#}");
    let lb = &cla["endpoints"][0]["lb_endpoints"][0];
    let want = json!({"address": {"socket_address": {"address": "127.0.0.29", "port_value": up.port()}},
                      "health_check_config": {}, "hostname": "a.svc"});
    assert_eq!(lb["endpoint"], want, "{eds:#}");
    assert_eq!(lb["metadata"], json!({}), "{eds:#}");
    assert_eq!(lb["load_balancing_weight"], 1, "{eds:#}");
    drop(dns);
    assert_eventually!(legate.stat("cluster.service1.update_failure").await >= 2, "lookups fail");
    assert_eq!(c.get(&url).await.status, 200, "the hosts stay");
}

/// `respect_dns_ttl`: the next lookup waits for the record's TTL, not `dns_refresh_rate`.
#[tokio::test]
async fn respect_dns_ttl_follows_the_records_ttl() {
    let up = upstream::http1().name("a").bind("127.0.0.30:0").spawn().await;
    let dns = DnsServer::spawn().await;
    dns.set("a.svc", &["127.0.0.30"]);
    dns.set_ttl(2);
    let mut cluster = strict_dns_cluster("service1", "a.svc", up.port(), dns.port());
    cluster["respect_dns_ttl"] = json!(true);
    let legate = Legate::start(
        bootstrap().routes(json!([to_cluster(json!({"prefix": "/"}), "service1")])).cluster(cluster).yaml(),
    )
    .await;
    let c = Client::h1();
    assert_eventually!(c.get(&legate.url("main", "/")).await.status == 200, "a.svc resolves");
    let first = dns.queries("a.svc");
    // A measurement window, not a wait for a condition: dns_refresh_rate (0.2 s) would make
    // about 7 lookups in it, the 2 s TTL at most one.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(dns.queries("a.svc") - first <= 1, "{} lookups in 1.5 s", dns.queries("a.svc") - first);
    assert_eventually!(dns.queries("a.svc") > first, "looked up again after the TTL");
}
