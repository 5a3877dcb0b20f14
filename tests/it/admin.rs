//! The admin endpoints: /ready, /listeners, /stats, /stats/prometheus, /clusters,
//! /config_dump.

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, direct, route_config, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};
use serde_json::{json, Value};

/// legate routing everything to cluster `service1` at `up`, on listener `main`.
pub(crate) async fn start(up: &Upstream) -> Legate {
    Legate::start(
        bootstrap()
            .routes(json!([to_cluster(json!({"prefix": "/"}), "service1")]))
            .cluster(static_cluster("service1", &[up.addr()]))
            .yaml(),
    )
    .await
}

async fn three_requests(legate: &Legate) {
    let c = Client::h1();
    for _ in 0..3 {
        assert_eq!(c.get(&legate.url("main", "/")).await.status, 200);
    }
}

#[tokio::test]
async fn ready_answers_live() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = legate.admin_get("/ready").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "LIVE\n");
}

#[tokio::test]
async fn admin_address_file_holds_the_bound_address() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let text = std::fs::read_to_string(legate.dir().join("admin.address")).unwrap();
    let addr: std::net::SocketAddr = text.trim().parse().unwrap();
    assert_eq!(addr, legate.admin());
    assert_ne!(addr.port(), 0);
}

#[tokio::test]
async fn listeners_show_names_and_bound_ports() {
    let legate = Legate::start(
        bootstrap()
            .listener(
                "first",
                route_config(json!([vhost("v", &["*"], json!([direct(json!({"prefix": "/"}), "one")]))])),
            )
            .listener(
                "second",
                route_config(json!([vhost("v", &["*"], json!([direct(json!({"prefix": "/"}), "two")]))])),
            )
            .yaml(),
    )
    .await;
    let text = legate.admin_get("/listeners").await.text();
    let re = regex::Regex::new(r"^(first|second)::127\.0\.0\.1:[1-9][0-9]*$").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert!(lines.iter().all(|l| re.is_match(l)), "{text:?}");
    assert_ne!(legate.listener("first"), legate.listener("second"));
    let c = Client::h1();
    assert_eq!(c.get(&legate.url("first", "/")).await.text(), "one");
    assert_eq!(c.get(&legate.url("second", "/")).await.text(), "two");
}

#[tokio::test]
async fn stats_count_requests() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    three_requests(&legate).await;
    let want = [
        ("cluster.service1.upstream_rq_total", 3),
        ("cluster.service1.upstream_rq_200", 3),
        ("cluster.service1.upstream_rq_2xx", 3),
        ("cluster.service1.upstream_cx_total", 1),
        ("http.ingress_http.downstream_rq_total", 3),
        ("http.ingress_http.downstream_rq_2xx", 3),
    ];
    let mut last: std::collections::HashMap<String, u64>;
    assert_eventually!(
        {
            last = legate.stats().await;
            want.iter().all(|(k, v)| last.get(*k) == Some(v))
        },
        "stats reach {want:?}; last seen: {:?}",
        want.iter().map(|(k, _)| (k, last.get(*k))).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn stats_count_errors_by_class() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let c = Client::h1();
    assert_eq!(c.get(&legate.url("main", "/status/503")).await.status, 503);
    assert_eq!(c.get(&legate.url("main", "/status/404")).await.status, 404);
    assert_eventually!(
        {
            let s = legate.stats().await;
            s.get("cluster.service1.upstream_rq_503") == Some(&1)
                && s.get("cluster.service1.upstream_rq_5xx") == Some(&1)
                && s.get("cluster.service1.upstream_rq_4xx") == Some(&1)
                && s.get("http.ingress_http.downstream_rq_5xx") == Some(&1)
        },
        "per-status and per-class counters"
    );
}

#[tokio::test]
async fn prometheus_stats() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    three_requests(&legate).await;
    let line = "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"service1\"} 3";
    assert_eventually!(
        legate.admin_get("/stats/prometheus").await.text().lines().any(|l| l == line),
        "prometheus output has {line:?}"
    );
    let text = legate.admin_get("/stats/prometheus").await.text();
    assert!(text.contains("# TYPE envoy_cluster_upstream_rq_total counter"), "{text}");
}

#[tokio::test]
async fn clusters_list_hosts_and_health() {
    let a = upstream::http1().spawn().await;
    let b = upstream::http1().spawn().await;
    let legate = Legate::start(
        bootstrap()
            .routes(json!([to_cluster(json!({"prefix": "/"}), "service1")]))
            .cluster(static_cluster("service1", &[a.addr(), b.addr()]))
            .yaml(),
    )
    .await;
    let text = legate.admin_get("/clusters").await.text();
    for up in [&a, &b] {
        let line = format!("service1::{}::health_flags::healthy", up.addr());
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}

#[tokio::test]
async fn config_dump_is_json_with_the_config() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = legate.admin_get("/config_dump").await;
    assert_eq!(r.status, 200);
    let v: Value = r.json();
    let text = v.to_string();
    assert!(text.contains("service1"), "{text}");
    assert!(text.contains("local_route"), "{text}");
}

/// `?resource=` lists one repeated field's items, each with its item `@type`; `?mask=` keeps
/// only the named fields; the errors are Envoy's (checked against Envoy 1.40 by hand).
#[tokio::test]
async fn config_dump_resource_and_mask_as_envoy() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let get = |q: &'static str| legate.admin_get(q);

    let v = get("/config_dump?resource=static_clusters&mask=cluster.name").await.json();
    assert_eq!(
        v,
        json!({"configs": [{
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.StaticCluster",
            "cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "service1"},
        }]})
    );

    // A mask without resource keeps only the dumps it fits, trimmed.
    let v = get("/config_dump?mask=static_clusters").await.json();
    let configs = v["configs"].as_array().cloned().unwrap_or_default();
    assert_eq!(configs.len(), 1, "{v:#}");
    assert_eq!(configs[0]["@type"], "type.googleapis.com/envoy.admin.v3.ClustersConfigDump");
    assert_eq!(configs[0]["static_clusters"][0]["cluster"]["name"], "service1");
    let last_updated = configs[0]["static_clusters"][0]["last_updated"].as_str().unwrap_or_default().to_string();
    assert!(
        last_updated.len() == 24 && last_updated.ends_with('Z') && last_updated.as_bytes()[10] == b'T',
        "last_updated is a protobuf Timestamp (RFC 3339, ms): {last_updated:?}"
    );
    assert!(configs[0].get("dynamic_active_clusters").is_none(), "{v:#}");

    let r = get("/config_dump?mask=bootstrap.admin").await;
    assert!(r.json()["configs"][0]["bootstrap"]["admin"]["address"].is_object(), "{}", r.text());
    assert!(r.json()["configs"][0]["bootstrap"].get("static_resources").is_none(), "{}", r.text());

    let r = get("/config_dump?mask=bogus").await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (400, "FieldMask bogus could not be successfully applied to any configs.")
    );
    // A FieldMask does not go through a repeated field.
    assert_eq!(get("/config_dump?mask=static_clusters.cluster.name").await.status, 400);
    let r = get("/config_dump?resource=bogus").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (404, "bogus not found in config dump"));
    let r = get("/config_dump?resource=version_info").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("is not a repeated field"), "{}", r.text());
    // Nothing to list: an empty ConfigDump.
    assert_eq!(get("/config_dump?resource=dynamic_active_clusters").await.json(), json!({}));
}

#[tokio::test]
async fn unknown_admin_path_is_404() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    assert_eq!(legate.admin_get("/no-such-endpoint").await.status, 404);
}
