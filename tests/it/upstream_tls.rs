//! Upstream TLS: a cluster's `transport_socket` (`UpstreamTlsContext`) originating TLS to a
//! real TLS server: a second legate terminating TLS (its own downstream TLS, tested in
//! `tls.rs`) with certificates made in the test. Plain HTTPS, the SNI sent (the front picks
//! its chain by it), a wrong CA and a SAN mismatch (Envoy 1.40's 503 body and
//! `cluster.<name>.ssl.*` stats), mTLS, h2 by ALPN with `auto_config`, TLS and plain pools
//! to one address not mixing, tcp_proxy over TLS, `/certs`, and refusals naming the field.

use serde_json::{json, Value};

use crate::common::client::get;
use crate::common::config::{direct, hcm, route_config, static_cluster, to_cluster, vhost};
use crate::common::legate::{validate, Legate};
use crate::common::tls::{Alg, Ca, Pair};
use crate::common::upstream;

pub(crate) const DOWNSTREAM: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
pub(crate) const UPSTREAM: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const TLS_INSPECTOR: &str = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
pub(crate) const CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";

pub(crate) fn inline(pair: &Pair) -> Value {
    json!({ "certificate_chain": { "inline_string": pair.cert }, "private_key": { "inline_string": pair.key } })
}

pub(crate) fn socket(type_url: &str, ctx: Value) -> Value {
    let mut typed = json!({ "@type": type_url });
    if let (Some(t), Value::Object(ctx)) = (typed.as_object_mut(), ctx) {
        t.extend(ctx);
    }
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": typed })
}

/// A front chain answering `body` on every path, stat prefix `stat`.
pub(crate) fn chain(matcher: Value, stat: &str, body: &str, tls: Option<Value>) -> Value {
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!([direct(json!({"prefix": "/"}), body)]))])));
    h["stat_prefix"] = json!(stat);
    let mut c = json!({ "filter_chain_match": matcher, "filters": [{ "name": "hcm", "typed_config": h }] });
    if let Some(tls) = tls {
        c["transport_socket"] = tls;
    }
    c
}

pub(crate) fn listener(name: &str, chains: Vec<Value>) -> Value {
    json!({
        "name": name,
        "stat_prefix": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "listener_filters": [{ "name": "tls_inspector", "typed_config": { "@type": TLS_INSPECTOR } }],
        "filter_chains": chains,
    })
}

pub(crate) fn boot(listeners: Vec<Value>, clusters: Vec<Value>) -> String {
    let v = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": { "listeners": listeners, "clusters": clusters },
    });
    serde_yaml::to_string(&v).expect("yaml")
}

/// A TLS server: a legate whose chains answer `sni:<name>` for the SNI `upstream.example`,
/// `tls` for other TLS, and `plain` without TLS. `server_ctx` is added to its TLS contexts.
async fn front(server: &Pair, server_ctx: Value) -> Legate {
    let tls = |alpn: &[&str]| {
        let mut ctx = json!({ "common_tls_context": { "tls_certificates": [inline(server)], "alpn_protocols": alpn } });
        if let (Some(c), Value::Object(extra)) = (ctx.as_object_mut(), server_ctx.clone()) {
            c.extend(extra);
        }
        socket(DOWNSTREAM, ctx)
    };
    let chains = vec![
        chain(
            json!({ "server_names": ["upstream.example"], "transport_protocol": "tls" }),
            "sni",
            "sni:upstream.example",
            Some(tls(&["h2", "http/1.1"])),
        ),
        chain(json!({ "transport_protocol": "tls" }), "tls", "tls", Some(tls(&["h2", "http/1.1"]))),
        chain(json!({}), "plain", "plain", None),
    ];
    Legate::start(boot(vec![listener("front", chains)], vec![])).await
}

/// A legate routing `/` to cluster `up` (and `/plain` to cluster `plain` if given).
async fn origin(clusters: Vec<Value>) -> Legate {
    let routes = json!([to_cluster(json!({"prefix": "/plain"}), "plain"), to_cluster(json!({"prefix": "/"}), "up")]);
    let mut h = hcm(route_config(json!([vhost("v", &["*"], routes)])));
    h["stat_prefix"] = json!("in");
    let l = json!({
        "name": "in",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [{ "name": "hcm", "typed_config": h }] }],
    });
    Legate::start(boot(vec![l], clusters)).await
}

pub(crate) fn tls_cluster(name: &str, front: &Legate, ctx: Value) -> Value {
    let mut c = static_cluster(name, &[front.listener("front")]);
    c["transport_socket"] = socket(UPSTREAM, ctx);
    c
}

pub(crate) fn trusting(ca: &Ca) -> Value {
    json!({ "trusted_ca": { "inline_string": ca.cert } })
}

#[tokio::test]
async fn https_origination_sends_the_sni_verifies_and_counts() {
    let ca = Ca::new("upstream ca");
    let server = ca.server(&["upstream.example"], Alg::Ecdsa);
    let front = front(&server, json!({})).await;
    let ctx = json!({ "sni": "upstream.example", "common_tls_context": { "validation_context": trusting(&ca) } });
    let no_sni = json!({ "common_tls_context": { "validation_context": trusting(&ca) } });
    let plain = tls_cluster("plain", &front, no_sni);
    let legate = origin(vec![tls_cluster("up", &front, ctx), plain]).await;

    let r = get(&legate.url("in", "/")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "sni:upstream.example"), "the SNI picks the chain");
    let r = get(&legate.url("in", "/plain")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "tls"), "no sni: none sent");
    let stats = legate.stats().await;
    assert_eq!(stats.get("cluster.up.ssl.handshake"), Some(&1));
    // Envoy's client default: TLS 1.2 at most.
    assert_eq!(stats.get("cluster.up.ssl.versions.TLSv1.2"), Some(&1));
    assert_eq!(stats.get("cluster.up.ssl.connection_error"), Some(&0));
    let fstats = front.stats().await;
    assert_eq!(fstats.get("listener.front.ssl.handshake"), Some(&2));
}

#[tokio::test]
async fn no_validation_context_does_not_verify_the_server_as_envoy() {
    let ca = Ca::new("unknown ca");
    let server = ca.server(&["elsewhere.example"], Alg::Rsa);
    let front = front(&server, json!({})).await;
    let trusting_other = json!({ "common_tls_context": { "validation_context": trusting(&Ca::new("other")) } });
    let legate = origin(vec![tls_cluster("up", &front, json!({})), tls_cluster("plain", &front, trusting_other)]).await;
    let r = get(&legate.url("in", "/")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "tls"));
    // The same server under a validation context is refused: the first one was not checked.
    assert_eq!(get(&legate.url("in", "/plain")).await.status.as_u16(), 503);
}

#[tokio::test]
async fn a_wrong_ca_or_san_is_a_503_with_envoys_body_and_stats() {
    let ca = Ca::new("upstream ca");
    let other = Ca::new("other ca");
    let server = ca.server(&["upstream.example"], Alg::Ecdsa);
    let front = front(&server, json!({})).await;
    let san = json!({ "common_tls_context": { "validation_context": {
        "trusted_ca": { "inline_string": ca.cert },
        "match_typed_subject_alt_names": [{ "san_type": "DNS", "matcher": { "exact": "other.example" } }],
    } } });
    let san = tls_cluster("plain", &front, san);
    let wrong = json!({ "common_tls_context": { "validation_context": trusting(&other) } });
    let legate = origin(vec![tls_cluster("up", &front, wrong), san]).await;

    for (path, cluster, stat) in [("/", "up", "fail_verify_error"), ("/plain", "plain", "fail_verify_san")] {
        let r = get(&legate.url("in", path)).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (503, CONNECT_FAILURE), "{cluster}");
        let stats = legate.stats().await;
        assert_eq!(stats.get(&format!("cluster.{cluster}.ssl.{stat}")), Some(&1), "{cluster}");
        assert_eq!(stats.get(&format!("cluster.{cluster}.upstream_cx_connect_fail")), Some(&1), "{cluster}");
        // As Envoy 1.40: a refused certificate is counted under its cause only.
        assert_eq!(stats.get(&format!("cluster.{cluster}.ssl.connection_error")), Some(&0), "{cluster}");
        assert_eq!(stats.get(&format!("cluster.{cluster}.ssl.handshake")), Some(&0), "{cluster}");
    }
}

#[tokio::test]
async fn mtls_client_certificate_is_accepted_and_its_absence_refused() {
    let ca = Ca::new("mesh ca");
    let server = ca.server(&["upstream.example"], Alg::Ecdsa);
    let client = ca.client("origin", Some("spiffe://mesh/origin"));
    let require = json!({
        "require_client_certificate": true,
        "common_tls_context": { "tls_certificates": [inline(&server)], "validation_context": trusting(&ca) },
    });
    let front = {
        // One TLS chain requiring a client certificate from the mesh CA.
        let tls = socket(DOWNSTREAM, require);
        Legate::start(boot(vec![listener("front", vec![chain(json!({}), "mtls", "mtls", Some(tls))])], vec![])).await
    };
    let with =
        json!({ "common_tls_context": { "tls_certificates": [inline(&client)], "validation_context": trusting(&ca) } });
    let without = json!({ "common_tls_context": { "validation_context": trusting(&ca) } });
    let plain = tls_cluster("plain", &front, without);
    let legate = origin(vec![tls_cluster("up", &front, with), plain]).await;

    let r = get(&legate.url("in", "/")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "mtls"));
    let r = get(&legate.url("in", "/plain")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (503, CONNECT_FAILURE));
    let stats = legate.stats().await;
    assert_eq!(stats.get("cluster.plain.ssl.connection_error"), Some(&1));
    assert_eq!(stats.get("cluster.plain.upstream_cx_connect_fail"), Some(&1));
    let fstats = front.stats().await;
    assert_eq!(fstats.get("listener.front.ssl.fail_verify_no_cert"), Some(&1));

    // `/certs` lists the cluster's context: its CA and its client certificate.
    let certs = legate.admin_get("/certs").await.json();
    let list = certs["certificates"].as_array().expect("certificates");
    let up = list.iter().find(|c| c["cert_chain"].as_array().is_some_and(|a| !a.is_empty())).expect("client cert");
    let san = &up["cert_chain"][0]["subject_alt_names"][0]["uri"];
    assert_eq!(san, "spiffe://mesh/origin", "{certs}");
    assert_eq!(up["ca_cert"].as_array().map(Vec::len), Some(1), "{certs}");
    assert_eq!(list.len(), 2, "one entry per TLS cluster: {certs}");
}

fn auto_config(mut c: Value) -> Value {
    c["typed_extension_protocol_options"] = json!({ "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "auto_config": { "http2_protocol_options": {} },
    } });
    c
}

#[tokio::test]
async fn auto_config_speaks_h2_when_alpn_chooses_it_and_http1_otherwise() {
    let ca = Ca::new("upstream ca");
    let server = ca.server(&["upstream.example"], Alg::Ecdsa);
    let front = front(&server, json!({})).await;
    let ctx = json!({ "sni": "upstream.example", "common_tls_context": { "validation_context": trusting(&ca) } });
    // The same cluster offering only http/1.1.
    let h1 = json!({ "common_tls_context": { "validation_context": trusting(&ca), "alpn_protocols": ["http/1.1"] } });
    let plain = auto_config(tls_cluster("plain", &front, h1));
    let legate = origin(vec![auto_config(tls_cluster("up", &front, ctx)), plain]).await;
    for _ in 0..3 {
        let r = get(&legate.url("in", "/")).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "sni:upstream.example"));
        let r = get(&legate.url("in", "/plain")).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "tls"));
    }
    let stats = legate.stats().await;
    assert_eq!(stats.get("cluster.up.upstream_cx_http2_total"), Some(&1), "one shared h2 connection");
    assert_eq!(stats.get("cluster.up.upstream_cx_http1_total"), Some(&0));
    assert_eq!(stats.get("cluster.plain.upstream_cx_http1_total"), Some(&1), "kept alive");
    assert_eq!(stats.get("cluster.plain.upstream_cx_http2_total"), Some(&0));
    let fstats = front.stats().await;
    assert_eq!(fstats.get("http.sni.downstream_cx_http2_total"), Some(&1));
    assert_eq!(fstats.get("http.tls.downstream_cx_http1_total"), Some(&1));
}

#[tokio::test]
async fn tls_and_plain_pools_to_one_address_never_mix() {
    let ca = Ca::new("upstream ca");
    let server = ca.server(&["upstream.example"], Alg::Ecdsa);
    let front = front(&server, json!({})).await;
    let plain = static_cluster("plain", &[front.listener("front")]);
    let legate = origin(vec![tls_cluster("up", &front, json!({})), plain]).await;
    for _ in 0..4 {
        assert_eq!(get(&legate.url("in", "/")).await.text(), "tls");
        assert_eq!(get(&legate.url("in", "/plain")).await.text(), "plain");
    }
    let stats = legate.stats().await;
    // Each cluster kept its one connection alive, of its own transport.
    assert_eq!(stats.get("cluster.up.upstream_cx_total"), Some(&1));
    assert_eq!(stats.get("cluster.plain.upstream_cx_total"), Some(&1));
    assert_eq!(stats.get("cluster.up.ssl.handshake"), Some(&1));
}

#[tokio::test]
async fn tcp_proxy_to_a_tls_cluster_originates_tls() {
    let ca = Ca::new("upstream ca");
    let server = ca.server(&["upstream.example"], Alg::Ecdsa);
    let front = front(&server, json!({})).await;
    let ctx = json!({ "sni": "upstream.example", "common_tls_context": { "validation_context": trusting(&ca) } });
    let tcp = json!({
        "name": "tcp",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [{ "name": "tcp", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "tcp",
            "cluster": "up",
        } }] }],
    });
    let legate = Legate::start(boot(vec![tcp], vec![tls_cluster("up", &front, ctx)])).await;
    let r = get(&legate.url("tcp", "/")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "sni:upstream.example"));
    assert_eq!(legate.stats().await.get("cluster.up.ssl.handshake"), Some(&1));
}

#[tokio::test]
async fn unimplemented_or_bad_upstream_tls_is_refused_naming_the_field() {
    let up = upstream::http1().spawn().await;
    let ca = Ca::new("ca");
    let pair = ca.client("c", None);
    let cases: Vec<(Value, Value, &str)> = vec![
        (json!({ "allow_renegotiation": true }), json!({}), "transport_socket.typed_config.allow_renegotiation"),
        (
            json!({ "common_tls_context": { "tls_params": { "cipher_suites": ["AES128-SHA"] } } }),
            json!({}),
            "tls_params.cipher_suites[0]: cipher suite \"AES128-SHA\" is not implemented",
        ),
        (
            json!({ "common_tls_context": { "tls_certificates": [inline(&pair), inline(&pair)] } }),
            json!({}),
            "tls_certificates[1]: Multiple TLS certificates are not supported for client contexts",
        ),
        (
            json!({ "common_tls_context": { "tls_params": { "tls_maximum_protocol_version": "TLSv1_1" } } }),
            json!({}),
            "tls_params.tls_maximum_protocol_version",
        ),
    ];
    for (ctx, options, want) in cases {
        let mut c = static_cluster("up", &[up.addr()]);
        c["transport_socket"] = socket(UPSTREAM, ctx);
        if options != json!({}) {
            let mut o =
                json!({ "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions" });
            if let (Some(o), Value::Object(extra)) = (o.as_object_mut(), options) {
                o.extend(extra);
            }
            c["typed_extension_protocol_options"] =
                json!({ "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": o });
        }
        let (_f, run) = validate("c.yaml", &boot(vec![], vec![c])).await;
        assert_eq!(run.code(), Some(1), "{want}\n{}", run.output);
        assert!(run.output.contains(want), "want {want:?} in:\n{}", run.output);
    }
    // auto_config needs TLS, as in Envoy.
    let (_f, run) = validate("c.yaml", &boot(vec![], vec![auto_config(static_cluster("up", &[up.addr()]))])).await;
    assert_eq!(run.code(), Some(1), "{}", run.output);
    assert!(
        run.output.contains("ALPN configured for a cluster which has a non-ALPN transport socket"),
        "{}",
        run.output
    );
}

#[tokio::test]
async fn verify_certificate_hash_pins_the_upstream_certificate() {
    let ca = Ca::new("upstream ca");
    let server = ca.server(&["upstream.example"], Alg::Ecdsa);
    let other = ca.server(&["upstream.example"], Alg::Ecdsa);
    let front = front(&server, json!({})).await;
    let pin = |pair: &Pair| {
        let hash = crate::common::sha256::hex(&pair.der);
        json!({ "common_tls_context": { "validation_context": {
            "trusted_ca": { "inline_string": ca.cert }, "verify_certificate_hash": [hash],
        } } })
    };
    let legate = origin(vec![tls_cluster("up", &front, pin(&server)), tls_cluster("plain", &front, pin(&other))]).await;
    assert_eq!(get(&legate.url("in", "/")).await.text(), "tls");
    let r = get(&legate.url("in", "/plain")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (503, CONNECT_FAILURE));
    assert_eq!(legate.stats().await.get("cluster.plain.ssl.fail_verify_cert_hash"), Some(&1));
}

#[tokio::test]
async fn a_revoked_upstream_certificate_fails_the_handshake() {
    let ca = Ca::new("upstream ca");
    let server = ca.client_serial("localhost", 5);
    let front = front(&server, json!({})).await;
    let with_crl = |revoked: &[u64]| {
        json!({ "common_tls_context": { "validation_context": {
            "trusted_ca": { "inline_string": ca.cert },
            "crl": { "inline_string": ca.crl(revoked) },
        } } })
    };
    let legate =
        origin(vec![tls_cluster("up", &front, with_crl(&[5])), tls_cluster("plain", &front, with_crl(&[6]))]).await;
    let r = get(&legate.url("in", "/plain")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "tls"), "a CRL revoking another certificate");
    let r = get(&legate.url("in", "/")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (503, CONNECT_FAILURE), "the server's certificate is revoked");
    assert_eq!(legate.stat("cluster.up.ssl.fail_verify_error").await, 1);
}
