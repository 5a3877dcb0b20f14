//! `request_mirror_policies`: copies of requests sent to mirror clusters, fire and forget,
//! as Envoy 1.40 sends them (checked side by side with the same configs): `Host` with the
//! `-shadow` suffix, the body, `x-envoy-internal: true`; the mirror's answer, slowness or
//! failure never reaching the client.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use serde_json::{json, Value};

use crate::common::client::{raw, request, Client};
use crate::common::config::{bootstrap, static_cluster, with_h2};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};
use crate::common::{assert_eventually, dead_addr, sha256};

/// The requests `up` saw for this path.
fn seen_at(up: &Upstream, path: &str) -> Vec<Value> {
    up.seen().into_iter().filter(|r| r["path"] == path).collect()
}

fn post(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = request(Method::POST, url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body))).expect("request")
}

/// Envoy's route-mirror sandbox (`tests/fixtures/examples/route-mirror.yaml`, its
/// `envoy.yaml` on loopback): `/service/1` is always mirrored to `service1-mirror`,
/// `/service/2` to the cluster `x-mirror-cluster` names, if any.
#[tokio::test]
async fn the_route_mirror_sandbox_mirrors_as_envoy_does() {
    let s1 = upstream::http1().name("service1").bind("127.0.0.41:0").spawn().await;
    let m1 = upstream::http1().name("service1-mirror").bind("127.0.0.42:0").spawn().await;
    let s2 = upstream::http1().name("service2").bind("127.0.0.43:0").spawn().await;
    let m2 = upstream::http1().name("service2-mirror").bind("127.0.0.44:0").spawn().await;
    let mut yaml = include_str!("../fixtures/examples/route-mirror.yaml").replace("${LISTEN_PORT}", "0");
    for (key, up) in [("SERVICE1_MIRROR", &m1), ("SERVICE2_MIRROR", &m2), ("SERVICE1", &s1), ("SERVICE2", &s2)] {
        yaml = yaml
            .replace(&format!("${{{key}_ADDR}}"), &up.ip())
            .replace(&format!("${{{key}_PORT}}"), &up.port().to_string());
    }
    let legate = Legate::start(yaml).await;
    let addr = *legate.listeners().values().next().expect("a listener");
    let base = format!("http://{addr}");
    let c = Client::h1();

    let r = c.get_with(&format!("{base}/service/1"), &[("host", "front.example:8000")]).await;
    assert_eq!(r.instance(), "service1");
    assert_eventually!(seen_at(&m1, "/service/1").len() == 1, "service1-mirror got the copy");
    let copy = &seen_at(&m1, "/service/1")[0];
    assert_eq!(copy["authority"], "front.example-shadow:8000");
    assert_eq!(copy["headers"]["x-envoy-internal"], "true");
    let original = &seen_at(&s1, "/service/1")[0];
    assert_eq!(original["authority"], "front.example:8000");
    assert_eq!(copy["headers"]["x-request-id"], original["headers"]["x-request-id"]);

    // The body goes too.
    let body = sha256::pattern(20_000);
    let r = c.send(post(&format!("{base}/service/1/upload"), body.clone(), &[])).await;
    assert_eq!(r.echo()["body_sha256"], sha256::hex(&body));
    assert_eventually!(seen_at(&m1, "/service/1/upload").len() == 1, "the upload was mirrored");
    assert_eq!(seen_at(&m1, "/service/1/upload")[0]["body_sha256"], sha256::hex(&body));

    // By header: none, an unknown cluster, then service2-mirror.
    assert_eq!(c.get(&format!("{base}/service/2/a")).await.instance(), "service2");
    let unknown = c.get_with(&format!("{base}/service/2/b"), &[("x-mirror-cluster", "nosuch")]).await;
    assert_eq!(unknown.instance(), "service2");
    let named = c.get_with(&format!("{base}/service/2/c"), &[("x-mirror-cluster", "service2-mirror")]).await;
    assert_eq!(named.instance(), "service2");
    assert_eventually!(seen_at(&m2, "/service/2/c").len() == 1, "service2-mirror got the named copy");
    assert_eq!(legate.stat("cluster.service2-mirror.upstream_rq_total").await, 1);
    assert!(m1.seen().iter().all(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/service/1"))));
    assert_eventually!(
        legate.stat("cluster.service1-mirror.upstream_rq_200").await == 2,
        "the mirror's answers are counted on its cluster"
    );
}

/// A mirror that never answers, one that fails and one that cannot be reached: the client
/// gets the main cluster's answer at once, and the hung copy ends at the route timeout
/// (`upstream_rq_timeout` on the mirror cluster, as in Envoy).
#[tokio::test]
async fn a_slow_or_failing_mirror_never_affects_the_answer() {
    let main = upstream::http1().name("main").spawn().await;
    let failing = upstream::http1().name("failing").status(503).spawn().await;
    // Accepts and never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hung_addr = hung.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            conns.push(s);
        }
    });
    let mirrors = json!([{ "cluster": "hung" }, { "cluster": "failing" }, { "cluster": "dead" }]);
    let yaml = bootstrap()
        .routes(json!([{ "match": { "prefix": "/" },
            "route": { "cluster": "main", "timeout": "1s", "request_mirror_policies": mirrors } }]))
        .cluster(static_cluster("main", &[main.addr()]))
        .cluster(static_cluster("failing", &[failing.addr()]))
        .cluster(static_cluster("hung", &[hung_addr]))
        .cluster(static_cluster("dead", &[dead_addr()]))
        .yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    let started = std::time::Instant::now();
    for i in 0..3 {
        let r = c.get(&legate.url("main", &format!("/r{i}"))).await;
        assert_eq!((r.status.as_u16(), r.instance()), (200, "main".to_string()));
    }
    assert!(started.elapsed() < std::time::Duration::from_millis(900), "{:?}", started.elapsed());
    assert_eventually!(legate.stat("cluster.hung.upstream_rq_timeout").await == 3, "the hung copies timed out");
    assert_eventually!(legate.stat("cluster.failing.upstream_rq_503").await == 3, "the failing mirror answered");
    assert_eventually!(legate.stat("cluster.dead.upstream_cx_connect_fail").await >= 3, "the dead mirror was tried");
    assert_eq!(legate.stat("cluster.main.upstream_rq_200").await, 3);
    held.abort();
}

/// A chunked upload is mirrored whole once the client has sent it; one over the listener's
/// buffer limit is not mirrored (`retry_or_shadow_abandoned`), the main request unharmed.
/// `runtime_fraction` 0 mirrors nothing; `disable_shadow_host_suffix_append` keeps `Host`.
#[tokio::test]
async fn streamed_bodies_fractions_and_the_host_suffix() {
    let main = upstream::http1().name("main").spawn().await;
    let mirror = upstream::http1().name("mirror").spawn().await;
    let route = |prefix: &str, policy: Value| {
        json!({ "match": { "prefix": prefix },
            "route": { "cluster": "main", "request_mirror_policies": [policy] } })
    };
    let mut cfg = bootstrap()
        .routes(json!([
            route(
                "/never",
                json!({ "cluster": "mirror", "runtime_fraction": { "default_value": { "numerator": 0 } } })
            ),
            route("/keep", json!({ "cluster": "mirror", "disable_shadow_host_suffix_append": true })),
            route("/", json!({ "cluster": "mirror", "runtime_fraction": { "default_value": { "numerator": 100 } } })),
        ]))
        .cluster(static_cluster("main", &[main.addr()]))
        .cluster(static_cluster("mirror", &[mirror.addr()]))
        .value();
    cfg["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"] = json!(4096);
    let legate = Legate::start(serde_yaml::to_string(&cfg).expect("yaml")).await;
    let addr = legate.listener("main");

    let chunked = b"POST /chunked HTTP/1.1\r\nhost: up.example\r\ntransfer-encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    assert_eq!(raw(addr, chunked).await.map(|r| r.status), Some(200));
    assert_eventually!(seen_at(&mirror, "/chunked").len() == 1, "the chunked upload was mirrored");
    let copy = &seen_at(&mirror, "/chunked")[0];
    assert_eq!(
        (copy["body_sha256"].clone(), copy["authority"].clone()),
        (json!(sha256::hex(b"hello world")), json!("up.example-shadow"))
    );

    let big = sha256::pattern(10_000);
    let c = Client::h1();
    let r = c.send(post(&legate.url("main", "/big"), big.clone(), &[])).await;
    assert_eq!(r.echo()["body_sha256"], sha256::hex(&big));
    assert_eq!(legate.stat("cluster.main.retry_or_shadow_abandoned").await, 1);

    for _ in 0..20 {
        assert_eq!(c.get(&legate.url("main", "/never")).await.status, 200);
    }
    let r = c.get_with(&legate.url("main", "/keep"), &[("host", "kept.example")]).await;
    assert_eq!(r.status, 200);
    assert_eventually!(seen_at(&mirror, "/keep").len() == 1, "the /keep copy arrived");
    assert_eq!(seen_at(&mirror, "/keep")[0]["authority"], "kept.example");
    // Copies were sent for /chunked and /keep only.
    assert!(seen_at(&mirror, "/never").is_empty() && seen_at(&mirror, "/big").is_empty());
    assert_eq!(legate.stat("cluster.mirror.upstream_rq_total").await, 2);
}

/// A chunked upload with trailers reaches the mirrors as Envoy 1.40 sends it (checked with
/// the same config and a dumping upstream): chunked again, no `content-length`, the trailers
/// after the body, over HTTP/1.1 and HTTP/2 alike; a sized upload keeps its `content-length`.
#[tokio::test]
async fn a_chunked_body_and_its_trailers_are_mirrored_as_the_client_sent_them() {
    let main = upstream::http1().name("main").spawn().await;
    let m1 = upstream::http1().name("m1").spawn().await;
    let m2 = upstream::h2().name("m2").spawn().await;
    let mirrors = json!([{ "cluster": "m1" }, { "cluster": "m2" }]);
    let yaml = bootstrap()
        .routes(json!([{ "match": { "prefix": "/" },
            "route": { "cluster": "main", "request_mirror_policies": mirrors } }]))
        .cluster(static_cluster("main", &[main.addr()]))
        .cluster(static_cluster("m1", &[m1.addr()]))
        .cluster(with_h2(static_cluster("m2", &[m2.addr()])))
        .yaml();
    let legate = Legate::start(yaml).await;
    let addr = legate.listener("main");

    let chunked = b"POST /chunked HTTP/1.1\r\nhost: up.example\r\ntransfer-encoding: chunked\r\ntrailer: x-t\r\n\r\n\
                    5\r\nhello\r\n6\r\n world\r\n0\r\nx-t: yes\r\n\r\n";
    assert_eq!(raw(addr, chunked).await.map(|r| r.status), Some(200));
    assert_eventually!(
        seen_at(&m1, "/chunked").len() == 1 && seen_at(&m2, "/chunked").len() == 1,
        "both mirrors got the chunked upload"
    );
    // The main request too, though its body was read whole while its connection was made.
    let original = &seen_at(&main, "/chunked")[0];
    assert_eq!(original["headers"]["transfer-encoding"], "chunked");
    assert_eq!(original["headers"].get("content-length"), None);
    let over_h1 = &seen_at(&m1, "/chunked")[0];
    assert_eq!(over_h1["headers"]["transfer-encoding"], "chunked");
    assert_eq!(over_h1["headers"].get("content-length"), None);
    assert_eq!(over_h1["body_sha256"], sha256::hex(b"hello world"));
    assert_eq!(over_h1["trailers"], json!({ "x-t": "yes" }));
    let over_h2 = &seen_at(&m2, "/chunked")[0];
    assert_eq!(over_h2["headers"].get("content-length"), None);
    assert_eq!(over_h2["body_sha256"], sha256::hex(b"hello world"));
    assert_eq!(over_h2["trailers"], json!({ "x-t": "yes" }));
    assert_eq!(over_h2["authority"], "up.example-shadow");

    let r = Client::h1().send(post(&legate.url("main", "/sized"), b"hello".to_vec(), &[])).await;
    assert_eq!(r.status, 200);
    assert_eventually!(seen_at(&m1, "/sized").len() == 1, "the sized upload was mirrored");
    let sized = &seen_at(&m1, "/sized")[0];
    assert_eq!(sized["headers"]["content-length"], "5");
    assert_eq!(sized["headers"].get("transfer-encoding"), None);
    assert_eq!(sized["trailers"], json!({}));
}
