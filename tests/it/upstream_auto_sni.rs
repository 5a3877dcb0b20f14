//! Upstream SNI and SAN check from each request (`upstream_http_protocol_options`:
//! `auto_sni`, `auto_san_validation`, `override_auto_sni_header`), against a TLS front (a
//! legate choosing its chain by SNI) with certificates made in the test: each host name gets
//! its SNI and its own connections, a certificate without the name fails as in Envoy 1.40
//! (503 `UF`, `ssl.fail_verify_san`, BoringSSL's words), an IP literal sends the configured
//! `sni` but is still checked, and the override header wins over the host.

use serde_json::{json, Value};

use crate::access_log::{file_log, lines, log_dir};
use crate::common::client::Client;
use crate::common::config::{hcm, route_config, to_cluster, vhost};
use crate::common::legate::{validate, Legate};
use crate::common::tls::{Alg, Ca, Pair};
use crate::common::upstream;
use crate::upstream_tls::{boot, chain, inline, listener, socket, tls_cluster, trusting, CONNECT_FAILURE, DOWNSTREAM};

const OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// A TLS front whose chains answer `sni:a` / `sni:b` for SNI `a.example` / `b.example` (stat
/// prefixes `a`, `b`) and `tls` without a known SNI.
async fn front(server: &Pair) -> Legate {
    let tls = || socket(DOWNSTREAM, json!({ "common_tls_context": { "tls_certificates": [inline(server)] } }));
    let chains = vec![
        chain(json!({ "server_names": ["a.example"] }), "a", "sni:a", Some(tls())),
        chain(json!({ "server_names": ["b.example"] }), "b", "sni:b", Some(tls())),
        chain(json!({}), "tls", "tls", Some(tls())),
    ];
    Legate::start(boot(vec![listener("front", chains)], vec![])).await
}

/// `cluster` with a typed `HttpProtocolOptions` holding `upstream`.
fn with_options(mut cluster: Value, upstream: Value) -> Value {
    cluster["typed_extension_protocol_options"] = json!({ OPTIONS: {
        "@type": format!("type.googleapis.com/{OPTIONS}"),
        "upstream_http_protocol_options": upstream,
    } });
    cluster
}

/// A legate routing `/<name>` to each cluster (`/` to `up`), logging `status flags details`
/// to `log`.
async fn origin(clusters: Vec<Value>, log: &std::path::Path) -> Legate {
    let names: Vec<String> = clusters.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect();
    let routes: Vec<Value> = names
        .iter()
        .map(|n| match n.as_str() {
            "up" => to_cluster(json!({"prefix": "/"}), n),
            _ => to_cluster(json!({"prefix": format!("/{n}")}), n),
        })
        .collect();
    // `/` last: it matches every path.
    let (root, mut routes): (Vec<Value>, Vec<Value>) =
        routes.into_iter().partition(|r| r["match"]["prefix"] == json!("/"));
    routes.extend(root);
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!(routes))])));
    h["stat_prefix"] = json!("in");
    let format = "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n";
    h["access_log"] = json!([file_log(log, Some(json!({ "text_format": format })))]);
    let l = json!({
        "name": "in",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [{ "name": "hcm", "typed_config": h }] }],
    });
    Legate::start(boot(vec![l], clusters)).await
}

#[tokio::test]
async fn each_host_gets_its_sni_its_san_check_and_its_own_connections() {
    let ca = Ca::new("upstream ca");
    let server = ca.server(&["a.example", "b.example"], Alg::Ecdsa);
    let front = front(&server).await;
    let verify = json!({ "common_tls_context": { "validation_context": trusting(&ca) } });
    let up = with_options(tls_cluster("up", &front, verify), json!({ "auto_sni": true, "auto_san_validation": true }));
    let (_dir, log) = log_dir();
    let legate = origin(vec![up], &log).await;

    let c = Client::h1();
    let url = legate.url("in", "/");
    for (host, want) in
        [("a.example", "sni:a"), ("b.example", "sni:b"), ("a.example:8080", "sni:a"), ("b.example", "sni:b")]
    {
        let r = c.get_with(&url, &[("host", host)]).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, want), "{host}");
    }
    let stats = legate.stats().await;
    assert_eq!(stats.get("cluster.up.upstream_cx_total"), Some(&2), "one connection per name, each reused");
    assert_eq!(stats.get("cluster.up.ssl.handshake"), Some(&2));
    let fstats = front.stats().await;
    assert_eq!(fstats.get("http.a.downstream_cx_total"), Some(&1));
    assert_eq!(fstats.get("http.b.downstream_cx_total"), Some(&1));
    assert_eq!(fstats.get("http.a.downstream_rq_total"), Some(&2));

    // A name the certificate does not carry: Envoy 1.40's refusal.
    let r = c.get_with(&url, &[("host", "c.example")]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (503, CONNECT_FAILURE));
    let stats = legate.stats().await;
    assert_eq!(stats.get("cluster.up.ssl.fail_verify_san"), Some(&1));
    assert_eq!(stats.get("cluster.up.ssl.connection_error"), Some(&0));
    assert_eq!(stats.get("cluster.up.upstream_cx_connect_fail"), Some(&1));
    let got = lines(&log, 5).await;
    assert_eq!(
        got[4],
        "503 UF upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:\
         OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_verify_SAN_list:TLS_error_end}"
    );
}

#[tokio::test]
async fn an_ip_host_sends_the_configured_sni_and_the_header_overrides_the_host() {
    let ca = Ca::new("upstream ca");
    let server = ca.server(&["a.example", "b.example"], Alg::Ecdsa);
    let front = front(&server).await;
    let sni_b = json!({ "sni": "b.example", "common_tls_context": { "validation_context": trusting(&ca) } });
    let ip = with_options(tls_cluster("ip", &front, sni_b.clone()), json!({ "auto_sni": true }));
    let hdr = with_options(
        tls_cluster("hdr", &front, sni_b),
        json!({ "auto_sni": true, "override_auto_sni_header": "x-upstream-sni" }),
    );
    let (_dir, log) = log_dir();
    let legate = origin(vec![ip, hdr], &log).await;
    let c = Client::h1();
    let cases = [
        ("/ip", "a.example", None, "sni:a"),
        // An IP literal is not sent: the configured `sni` is.
        ("/ip", "127.0.0.1", None, "sni:b"),
        ("/hdr", "a.example", Some("b.example:443"), "sni:b"),
        ("/hdr", "b.example", Some("a.example"), "sni:a"),
        // Empty: the host.
        ("/hdr", "a.example", Some(""), "sni:a"),
    ];
    for (path, host, header, want) in cases {
        let mut headers = vec![("host", host)];
        if let Some(v) = header {
            headers.push(("x-upstream-sni", v));
        }
        let r = c.get_with(&legate.url("in", path), &headers).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, want), "{path} {host} {header:?}");
    }
    let stats = legate.stats().await;
    assert_eq!(stats.get("cluster.ip.upstream_cx_total"), Some(&2));
    assert_eq!(stats.get("cluster.hdr.upstream_cx_total"), Some(&2), "a.example's connection reused");
}

#[tokio::test]
async fn auto_san_validation_checks_an_ip_host_and_without_a_ca_fails_as_envoy() {
    let ca = Ca::new("upstream ca");
    let server = ca.server(&["a.example"], Alg::Ecdsa);
    let front = front(&server).await;
    let verify = json!({ "common_tls_context": { "validation_context": trusting(&ca) } });
    let up = with_options(tls_cluster("up", &front, verify), json!({ "auto_san_validation": true }));
    // No validation context: Envoy 1.40 fails every handshake (BoringSSL has no trust anchor).
    let ip = with_options(tls_cluster("ip", &front, json!({})), json!({ "auto_san_validation": true }));
    let (_dir, log) = log_dir();
    let legate = origin(vec![up, ip], &log).await;
    let c = Client::h1();
    // The SAN is checked, no SNI sent (none configured).
    let r = c.get_with(&legate.url("in", "/"), &[("host", "a.example")]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "tls"));
    let r = c.get_with(&legate.url("in", "/"), &[("host", "127.0.0.1")]).await;
    assert_eq!(r.status.as_u16(), 503, "no IP SAN");
    let r = c.get_with(&legate.url("in", "/ip"), &[("host", "a.example")]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (503, CONNECT_FAILURE));
    let stats = legate.stats().await;
    assert_eq!(stats.get("cluster.up.ssl.fail_verify_san"), Some(&1));
    // Envoy counts no cause for these.
    assert_eq!(stats.get("cluster.ip.ssl.fail_verify_error"), Some(&0));
    assert_eq!(stats.get("cluster.ip.ssl.connection_error"), Some(&0));
    assert_eq!(stats.get("cluster.ip.upstream_cx_connect_fail"), Some(&1));
    let got = lines(&log, 3).await;
    assert_eq!(
        got[2],
        "503 UF upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:\
         OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end}"
    );
}

#[tokio::test]
async fn the_deprecated_cluster_field_works_and_is_refused_where_envoy_ignores_it() {
    let ca = Ca::new("upstream ca");
    let server = ca.server(&["a.example", "b.example"], Alg::Ecdsa);
    let front = front(&server).await;
    let mut up = tls_cluster("up", &front, json!({}));
    up["upstream_http_protocol_options"] = json!({ "auto_sni": true });
    let (_dir, log) = log_dir();
    let legate = origin(vec![up], &log).await;
    let r = Client::h1().get_with(&legate.url("in", "/"), &[("host", "b.example")]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "sni:b"));

    // With a typed HttpProtocolOptions Envoy ignores the cluster's field: refused, not ignored.
    let plain = upstream::http1().spawn().await;
    let mut c = with_options(tls_cluster("up", &front, json!({})), json!({ "auto_sni": true }));
    c["upstream_http_protocol_options"] = json!({ "auto_sni": true });
    let no_tls =
        with_options(crate::common::config::static_cluster("up", &[plain.addr()]), json!({ "auto_sni": true }));
    let bad_header = with_options(tls_cluster("up", &front, json!({})), json!({ "override_auto_sni_header": "a b" }));
    for (cluster, want) in [
        (c, "clusters[0].upstream_http_protocol_options: ignored by Envoy when typed_extension_protocol_options"),
        (no_tls, "upstream_http_protocol_options: auto_sni and auto_san_validation need an UpstreamTlsContext"),
        (bad_header, "override_auto_sni_header: \"a b\" is not a valid header name"),
    ] {
        let (_f, run) = validate("c.yaml", &boot(vec![], vec![cluster])).await;
        assert_eq!(run.code(), Some(1), "{want}\n{}", run.output);
        assert!(run.output.contains(want), "want {want:?} in:\n{}", run.output);
    }
}
