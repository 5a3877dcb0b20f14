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
