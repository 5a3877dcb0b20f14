//! Downstream TLS: a filter chain's `transport_socket` (`DownstreamTlsContext`) with
//! certificates made in the test, spoken to by a rustls client: HTTP/1.1 and h2 by ALPN,
//! RSA or ECDSA chosen by the client's signature algorithms, SNI choosing the chain and its
//! certificate, mTLS, `tls_params`, config refusals naming the field, the `ssl.*` stats,
//! `/certs` and the access-log operators.

use serde_json::{json, Value};

use crate::common::config::{direct, hcm, route_config, static_cluster, to_cluster, vhost, HCM_TYPE};
use crate::common::legate::{validate, Legate};
use crate::common::tls::{connect, get_h1, get_h2, Alg, Ca, ClientOpts, Pair};
use crate::common::upstream;
use crate::common::{assert_eventually, dead_addr};

const TLS_CONTEXT: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const TLS_INSPECTOR: &str = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";

fn inline(pair: &Pair) -> Value {
    json!({ "certificate_chain": { "inline_string": pair.cert }, "private_key": { "inline_string": pair.key } })
}

fn transport(common: Value, extra: Value) -> Value {
    let mut ctx = json!({ "@type": TLS_CONTEXT, "common_tls_context": common });
    if let (Some(c), Value::Object(extra)) = (ctx.as_object_mut(), extra) {
        c.extend(extra);
    }
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": ctx })
}

/// A chain answering `body` on every path (stat prefix `stat`), over TLS with `tls`.
fn tls_chain(matcher: Value, stat: &str, body: &str, tls: Value) -> Value {
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!([direct(json!({"prefix": "/"}), body)]))])));
    h["stat_prefix"] = json!(stat);
    json!({ "filter_chain_match": matcher, "filters": [{ "name": "hcm", "typed_config": h }], "transport_socket": tls })
}

fn boot(chains: Vec<Value>, extra: Value, clusters: Vec<Value>) -> String {
    let mut l = json!({
        "name": "tls",
        "stat_prefix": "tls",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": chains,
    });
    if let (Some(l), Value::Object(extra)) = (l.as_object_mut(), extra) {
        l.extend(extra);
    }
    let v = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": { "listeners": [l], "clusters": clusters },
    });
    serde_yaml::to_string(&v).expect("yaml")
}

#[tokio::test]
async fn https_to_an_upstream_with_stats_log_operators_and_certs() {
    let ca = Ca::new("test ca");
    let server = ca.server(&["localhost"], Alg::Ecdsa);
    let up = upstream::http1().spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_file, key_file) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert_file, &server.cert).expect("write cert");
    std::fs::write(&key_file, &server.key).expect("write key");
    let log = dir.path().join("access.log");
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!([to_cluster(json!({"prefix": "/"}), "up")]))])));
    h["stat_prefix"] = json!("https");
    h["access_log"] = json!([{ "name": "file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": log,
        "log_format": { "text_format_source": { "inline_string":
            "%DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_TLS_CIPHER% %REQUESTED_SERVER_NAME% %DOWNSTREAM_PEER_SUBJECT%\n" } },
    } }]);
    let tls = transport(
        json!({ "tls_certificates": [{
            "certificate_chain": { "filename": cert_file },
            "private_key": { "filename": key_file },
        }] }),
        json!({}),
    );
    let chain = json!({ "filters": [{ "name": "hcm", "typed_config": h }], "transport_socket": tls });
    let legate = Legate::start(boot(vec![chain], json!({}), vec![static_cluster("up", &[up.addr()])])).await;
    let addr = legate.listener("tls");

    let mut s = connect(addr, &ca.cert, &ClientOpts::default()).await.expect("handshake");
    assert_eq!(s.peer_der, server.der, "the configured certificate is served");
    let (status, body) = get_h1(&mut s, "localhost", "/hello").await.expect("response");
    assert!(status.contains("200"), "{status}");
    let echo: Value = serde_json::from_str(&body).expect("echo json");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https", "{echo}");

    let stats = legate.stats().await;
    assert_eq!(stats.get("listener.tls.ssl.handshake"), Some(&1), "{stats:?}");
    assert_eq!(stats.get("listener.tls.ssl.versions.TLSv1.3"), Some(&1));
    assert_eq!(stats.get("listener.tls.ssl.ciphers.TLS_AES_256_GCM_SHA384"), Some(&1));
    let curves: u64 = stats.iter().filter(|(k, _)| k.starts_with("listener.tls.ssl.curves.")).map(|(_, v)| *v).sum();
    assert_eq!(curves, 1, "one curve counted: {stats:?}");
    assert_eq!(stats.get("listener.tls.ssl.no_certificate"), Some(&1));
    assert_eq!(stats.get("http.https.downstream_cx_ssl_total"), Some(&1));

    // A client that is not TLS fails the handshake.
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = plain.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let mut sink = Vec::new();
    let _ = crate::common::bounded("plaintext refused", plain.read_to_end(&mut sink)).await;
    assert_eventually!(legate.stat("listener.tls.ssl.connection_error").await == 1, "connection_error counted");

    assert_eventually!(
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("TLSv1.3 TLS_AES_256_GCM_SHA384 - -")),
        "access log: {:?}",
        std::fs::read_to_string(&log)
    );

    let certs = legate.admin_get("/certs").await.json();
    let leaf = &certs["certificates"][0]["cert_chain"][0];
    assert_eq!(leaf["path"], json!(cert_file), "{certs}");
    assert_eq!(leaf["subject_alt_names"], json!([{ "dns": "localhost" }]));
    let days: u64 = leaf["days_until_expiration"].as_str().and_then(|d| d.parse().ok()).expect("days as a string");
    assert!(days > 300, "{certs}");
    assert!(leaf["serial_number"].as_str().is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())));
}

#[tokio::test]
async fn h2_over_tls_chosen_by_alpn() {
    let ca = Ca::new("test ca");
    let server = ca.server(&["localhost"], Alg::Ecdsa);
    let tls =
        transport(json!({ "tls_certificates": [inline(&server)], "alpn_protocols": ["h2", "http/1.1"] }), json!({}));
    let legate = Legate::start(boot(vec![tls_chain(json!({}), "alpn", "over tls", tls)], json!({}), vec![])).await;
    let addr = legate.listener("tls");

    let s = connect(addr, &ca.cert, &ClientOpts { alpn: vec!["h2", "http/1.1"], ..Default::default() })
        .await
        .expect("handshake");
    assert_eq!(s.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(get_h2(s, "localhost", "/").await, (200, "over tls".to_string()));

    let mut s =
        connect(addr, &ca.cert, &ClientOpts { alpn: vec!["http/1.1"], ..Default::default() }).await.expect("handshake");
    assert_eq!(s.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (status, body) = get_h1(&mut s, "localhost", "/").await.expect("h1 response");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, "over tls");
    assert_eq!(legate.stat("http.alpn.downstream_cx_http2_total").await, 1);
    assert_eq!(legate.stat("http.alpn.downstream_cx_http1_total").await, 1);
}

#[tokio::test]
async fn rsa_or_ecdsa_certificate_by_the_clients_signature_algorithms() {
    let ca = Ca::new("test ca");
    let rsa = ca.server(&["localhost"], Alg::Rsa);
    let ecdsa = ca.server(&["localhost"], Alg::Ecdsa);
    let tls = transport(json!({ "tls_certificates": [inline(&rsa), inline(&ecdsa)] }), json!({}));
    let legate = Legate::start(boot(vec![tls_chain(json!({}), "multi", "ok", tls)], json!({}), vec![])).await;
    let addr = legate.listener("tls");
    for (only, want) in [(Some(Alg::Rsa), &rsa), (Some(Alg::Ecdsa), &ecdsa), (None, &ecdsa)] {
        let o = ClientOpts { only, ..Default::default() };
        let mut s = connect(addr, &ca.cert, &o).await.expect("handshake");
        assert!(s.peer_der == want.der, "client offering {:?} got the wrong certificate", only.map(|a| a == Alg::Rsa));
        assert!(get_h1(&mut s, "localhost", "/").await.expect("response").0.contains("200"));
    }
    // TLS 1.2 with an RSA-only client: an ECDHE-RSA suite.
    let o = ClientOpts { only: Some(Alg::Rsa), tls12_only: true, ..Default::default() };
    let s = connect(addr, &ca.cert, &o).await.expect("TLS 1.2 handshake");
    assert_eq!(s.peer_der, rsa.der);
    assert_eq!(s.version, Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_2));
    assert_eventually!(
        legate.stat("listener.tls.ssl.ciphers.ECDHE-RSA-AES256-GCM-SHA384").await
            + legate.stat("listener.tls.ssl.ciphers.ECDHE-RSA-AES128-GCM-SHA256").await
            == 1,
        "an ECDHE-RSA cipher counted"
    );
    assert_eq!(legate.stat("listener.tls.ssl.versions.TLSv1.2").await, 1);
}

#[tokio::test]
async fn sni_picks_the_chain_and_its_certificate() {
    let ca = Ca::new("test ca");
    let a = ca.server(&["a.example.com"], Alg::Ecdsa);
    let b = ca.server(&["*.b.example.com"], Alg::Ecdsa);
    let fallback = ca.server(&["localhost"], Alg::Ecdsa);
    let ctx = |p: &Pair| transport(json!({ "tls_certificates": [inline(p)] }), json!({}));
    let chains = vec![
        tls_chain(json!({ "server_names": ["a.example.com"] }), "a", "chain a", ctx(&a)),
        tls_chain(json!({ "server_names": ["*.b.example.com"] }), "b", "chain b", ctx(&b)),
        tls_chain(json!({ "transport_protocol": "tls" }), "other", "chain other", ctx(&fallback)),
    ];
    let extra =
        json!({ "listener_filters": [{ "name": "tls_inspector", "typed_config": { "@type": TLS_INSPECTOR } }] });
    let legate = Legate::start(boot(chains, extra, vec![])).await;
    let addr = legate.listener("tls");
    for (sni, want, body) in
        [("a.example.com", &a, "chain a"), ("x.b.example.com", &b, "chain b"), ("localhost", &fallback, "chain other")]
    {
        let mut s =
            connect(addr, &ca.cert, &ClientOpts { sni: Some(sni.into()), ..Default::default() }).await.expect(sni);
        assert!(s.peer_der == want.der, "{sni}: wrong certificate");
        let (status, got) = get_h1(&mut s, sni, "/").await.expect("response");
        assert!(status.contains("200"), "{sni}: {status}");
        assert_eq!(got, body, "{sni}");
    }
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_trusted_ca_with_a_matching_san() {
    let ca = Ca::new("test ca");
    let other_ca = Ca::new("other ca");
    let server = ca.server(&["localhost"], Alg::Ecdsa);
    let good = ca.client("good client", Some("spiffe://legate/good"));
    let wrong_san = ca.client("other client", Some("spiffe://legate/other"));
    let stranger = other_ca.client("stranger", Some("spiffe://legate/good"));
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let tls = transport(
        json!({
            "tls_certificates": [inline(&server)],
            "validation_context": {
                "trusted_ca": { "inline_string": ca.cert },
                "match_typed_subject_alt_names": [{ "san_type": "URI", "matcher": { "prefix": "spiffe://legate/good" } }],
            },
        }),
        json!({ "require_client_certificate": true }),
    );
    let mut chain = tls_chain(json!({}), "mtls", "hello client", tls);
    chain["filters"][0]["typed_config"]["access_log"] = json!([{ "name": "file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": log,
        "log_format": { "text_format_source": { "inline_string": "%DOWNSTREAM_PEER_SUBJECT% %DOWNSTREAM_PEER_URI_SAN%\n" } },
    } }]);
    let legate = Legate::start(boot(vec![chain], json!({}), vec![])).await;
    let addr = legate.listener("tls");

    let o = ClientOpts { client_cert: Some(good.clone()), ..Default::default() };
    let mut s = connect(addr, &ca.cert, &o).await.expect("handshake with a good certificate");
    let (status, body) = get_h1(&mut s, "localhost", "/").await.expect("response");
    assert!(status.contains("200") && body == "hello client", "{status} {body}");
    assert_eventually!(
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("O=Legate Tests,CN=good client spiffe://legate/good")
            || l.contains("CN=good client,O=Legate Tests spiffe://legate/good")),
        "access log: {:?}",
        std::fs::read_to_string(&log)
    );

    // Refused: no certificate, a certificate from another CA, a SAN that does not match. In
    // TLS 1.3 the client learns it on its first read.
    for (cert, stat) in [
        (None, "listener.tls.ssl.fail_verify_no_cert"),
        (Some(stranger), "listener.tls.ssl.fail_verify_error"),
        (Some(wrong_san), "listener.tls.ssl.fail_verify_san"),
    ] {
        let o = ClientOpts { client_cert: cert, ..Default::default() };
        let refused = match connect(addr, &ca.cert, &o).await {
            Err(_) => true,
            Ok(mut s) => get_h1(&mut s, "localhost", "/").await.map_or(true, |(status, _)| status.is_empty()),
        };
        assert!(refused, "{stat}: the request was served");
        assert_eventually!(legate.stat(stat).await == 1, "{stat} counted");
    }
    assert_eq!(legate.stat("listener.tls.ssl.connection_error").await, 3);
    assert_eq!(legate.stat("listener.tls.ssl.handshake").await, 1);
}

#[tokio::test]
async fn verify_certificate_hash_pins_the_client_certificate() {
    let ca = Ca::new("test ca");
    let server = ca.server(&["localhost"], Alg::Ecdsa);
    let pinned = ca.client("pinned", None);
    let other = ca.client("other", None);
    let digest = crate::common::sha256::hex(&pinned.der);
    let colons = digest.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_uppercase()).collect::<Vec<_>>();
    let tls = transport(
        json!({
            "tls_certificates": [inline(&server)],
            "validation_context": { "trusted_ca": { "inline_string": ca.cert }, "verify_certificate_hash": [colons.join(":")] },
        }),
        json!({ "require_client_certificate": true }),
    );
    let legate = Legate::start(boot(vec![tls_chain(json!({}), "pin", "pinned", tls)], json!({}), vec![])).await;
    let addr = legate.listener("tls");
    let mut s = connect(addr, &ca.cert, &ClientOpts { client_cert: Some(pinned), ..Default::default() })
        .await
        .expect("handshake");
    assert_eq!(get_h1(&mut s, "localhost", "/").await.expect("response").1, "pinned");
    let refused = match connect(addr, &ca.cert, &ClientOpts { client_cert: Some(other), ..Default::default() }).await {
        Err(_) => true,
        Ok(mut s) => get_h1(&mut s, "localhost", "/").await.map_or(true, |(status, _)| status.is_empty()),
    };
    assert!(refused, "a certificate with another hash was served");
    assert_eventually!(legate.stat("listener.tls.ssl.fail_verify_cert_hash").await == 1, "fail_verify_cert_hash");
}

#[tokio::test]
async fn tls_params_bound_versions_and_suites() {
    let ca = Ca::new("test ca");
    let server = ca.server(&["localhost"], Alg::Ecdsa);
    let tls = transport(
        json!({
            "tls_certificates": [inline(&server)],
            "tls_params": { "tls_minimum_protocol_version": "TLSv1_3", "ecdh_curves": ["P-256"] },
        }),
        json!({}),
    );
    let legate = Legate::start(boot(vec![tls_chain(json!({}), "p", "modern", tls)], json!({}), vec![])).await;
    let addr = legate.listener("tls");
    let o = ClientOpts { tls12_only: true, ..Default::default() };
    assert!(connect(addr, &ca.cert, &o).await.is_err(), "a TLS 1.2 client must be refused");
    let mut s = connect(addr, &ca.cert, &ClientOpts::default()).await.expect("TLS 1.3");
    assert_eq!(get_h1(&mut s, "localhost", "/").await.expect("response").1, "modern");
    assert_eventually!(legate.stat("listener.tls.ssl.curves.P-256").await == 1, "P-256 negotiated");

    // TLS 1.2 only, one suite.
    let tls = transport(
        json!({
            "tls_certificates": [inline(&server)],
            "tls_params": { "tls_maximum_protocol_version": "TLSv1_2", "cipher_suites": ["[ECDHE-ECDSA-CHACHA20-POLY1305|ECDHE-RSA-CHACHA20-POLY1305]"] },
        }),
        json!({}),
    );
    let legate = Legate::start(boot(vec![tls_chain(json!({}), "p", "old", tls)], json!({}), vec![])).await;
    let s = connect(legate.listener("tls"), &ca.cert, &ClientOpts::default()).await.expect("handshake");
    assert_eq!(s.version, Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_2));
    assert_eventually!(
        legate.stat("listener.tls.ssl.ciphers.ECDHE-ECDSA-CHACHA20-POLY1305").await == 1,
        "the one configured suite"
    );
}

#[tokio::test]
async fn bad_tls_contexts_are_refused_naming_the_field() {
    let ca = Ca::new("test ca");
    let server = ca.server(&["localhost"], Alg::Ecdsa);
    let other = ca.server(&["localhost"], Alg::Ecdsa);
    let at = "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context";
    let mismatched =
        json!({ "certificate_chain": { "inline_string": server.cert }, "private_key": { "inline_string": other.key } });
    let missing = dead_addr().port().to_string();
    let cases = [
        (
            json!({ "tls_certificates": [mismatched] }),
            format!("{at}.tls_certificates[0].private_key: the private key does not match"),
        ),
        (
            json!({ "tls_certificates": [{ "certificate_chain": { "filename": format!("/nonexistent/{missing}.pem") }, "private_key": { "inline_string": server.key } }] }),
            format!("{at}.tls_certificates[0].certificate_chain.filename: cannot read"),
        ),
        (
            json!({ "tls_certificates": [inline(&server)], "tls_params": { "cipher_suites": ["AES128-SHA"] } }),
            format!("{at}.tls_params.cipher_suites[0]: cipher suite \"AES128-SHA\" is not implemented by legate"),
        ),
        (
            json!({ "tls_certificates": [inline(&server)], "tls_params": { "ecdh_curves": ["X448"] } }),
            format!("{at}.tls_params.ecdh_curves[0]: curve \"X448\" is not implemented"),
        ),
        (
            json!({ "tls_certificates": [inline(&server)], "tls_params": { "tls_minimum_protocol_version": "TLSv1_0" } }),
            format!("{at}.tls_params.tls_minimum_protocol_version: TLS 1.0 and 1.1 are not implemented"),
        ),
        (
            json!({ "tls_certificates": [{ "certificate_chain": { "inline_string": "not pem" }, "private_key": { "inline_string": server.key } }] }),
            format!("{at}.tls_certificates[0].certificate_chain: no certificate"),
        ),
    ];
    for (common, want) in cases {
        let tls = transport(common, json!({}));
        let (_f, run) = validate("tls.yaml", &boot(vec![tls_chain(json!({}), "x", "x", tls)], json!({}), vec![])).await;
        assert_eq!(run.code(), Some(1), "{want}\n{}", run.output);
        assert!(run.output.contains(&want), "want {want}\ngot {}", run.output);
    }
    // TLS in front of tcp_proxy is terminated, the relay carrying the decrypted bytes
    // (`examples_tls.rs`, the double-proxy sandbox).
    let tcp = json!({ "filters": [{ "name": "tcp", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "t", "cluster": "c" } }],
        "transport_socket": transport(json!({ "tls_certificates": [inline(&server)] }), json!({})) });
    let (_f, run) = validate("tcp.yaml", &boot(vec![tcp], json!({}), vec![static_cluster("c", &[dead_addr()])])).await;
    assert_eq!(run.code(), Some(0), "{}", run.output);
    let _ = HCM_TYPE;
}
