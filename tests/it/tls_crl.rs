//! `validation_context.crl` on a listener: a client certificate the CA revoked fails the
//! handshake (`ssl.fail_verify_error`); every certificate of the chain must be covered by a
//! CRL unless `only_verify_leaf_cert_crl`. (Upstream: `upstream_tls.rs`.)

use serde_json::{json, Value};

use crate::common::config::{direct, hcm, route_config, vhost};
use crate::common::legate::{validate, Legate};
use crate::common::tls::{connect, get_h1, Alg, Ca, ClientOpts, Pair};

const TLS_CONTEXT: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";

fn listener(name: &str, server: &Pair, validation: Value) -> Value {
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!([direct(json!({"prefix": "/"}), "hi")]))])));
    h["stat_prefix"] = json!(name);
    json!({
        "name": name,
        "stat_prefix": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "filters": [{ "name": "hcm", "typed_config": h }],
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": TLS_CONTEXT,
                "require_client_certificate": true,
                "common_tls_context": {
                    "tls_certificates": [{
                        "certificate_chain": { "inline_string": server.cert },
                        "private_key": { "inline_string": server.key },
                    }],
                    "validation_context": validation,
                },
            } },
        }],
    })
}

fn boot(listeners: Vec<Value>) -> String {
    let v = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": { "listeners": listeners },
    });
    serde_yaml::to_string(&v).expect("yaml")
}

/// Whether a request with `client` (and its issuers `chain`) is served.
async fn served(legate: &Legate, listener: &str, root: &Ca, client: &Pair, chain: Vec<Vec<u8>>) -> bool {
    let o = ClientOpts { client_cert: Some(client.clone()), client_chain: chain, ..Default::default() };
    match connect(legate.listener(listener), &root.cert, &o).await {
        Err(_) => false,
        Ok(mut s) => get_h1(&mut s, "localhost", "/").await.is_ok_and(|(status, _)| status.contains("200")),
    }
}

#[tokio::test]
async fn revoked_client_certificates_fail_and_the_chain_must_be_covered() {
    let root = Ca::new("root ca");
    let inter = root.intermediate("intermediate ca");
    let server = root.server(&["localhost"], Alg::Ecdsa);
    let (good, revoked) = (root.client_serial("good", 65), root.client_serial("revoked", 66));
    let (leaf, revoked_leaf) = (inter.client_serial("leaf", 76), inter.client_serial("revoked leaf", 77));
    let trusting = |crl: String, leaf_only: bool| {
        json!({ "trusted_ca": { "inline_string": root.cert }, "crl": { "inline_string": crl },
                "only_verify_leaf_cert_crl": leaf_only })
    };
    let legate = Legate::start(boot(vec![
        listener("root", &server, trusting(root.crl(&[66]), false)),
        listener("chain", &server, trusting(inter.crl(&[77]), false)),
        listener("leaf_only", &server, trusting(inter.crl(&[77]), true)),
    ]))
    .await;

    assert!(served(&legate, "root", &root, &good, vec![]).await, "not revoked");
    assert!(!served(&legate, "root", &root, &revoked, vec![]).await, "revoked");
    assert_eq!(legate.stat("listener.root.ssl.fail_verify_error").await, 1);
    assert_eq!(legate.stat("listener.root.ssl.handshake").await, 1);

    // The intermediate is covered by no CRL of the root: refused unless only the leaf counts.
    assert!(!served(&legate, "chain", &root, &leaf, vec![inter.der()]).await, "intermediate not covered");
    assert!(served(&legate, "leaf_only", &root, &leaf, vec![inter.der()]).await, "leaf only");
    assert!(!served(&legate, "leaf_only", &root, &revoked_leaf, vec![inter.der()]).await, "revoked leaf");
    assert_eq!(legate.stat("listener.leaf_only.ssl.fail_verify_error").await, 1);
}

#[tokio::test]
async fn bad_crls_are_refused() {
    let root = Ca::new("root ca");
    let server = root.server(&["localhost"], Alg::Ecdsa);
    let at = "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.validation_context.crl";
    let cases = [
        (
            json!({ "trusted_ca": { "inline_string": root.cert }, "crl": { "inline_string": "not a crl" } }),
            "no certificate revocation list",
        ),
        (json!({ "crl": { "inline_string": root.crl(&[]) } }), "a CRL needs trusted_ca"),
    ];
    for (validation, want) in cases {
        let (_f, run) = validate("tls.yaml", &boot(vec![listener("l", &server, validation)])).await;
        assert_eq!(run.code(), Some(1), "{want}\n{}", run.output);
        let want = format!("{at}: {want}");
        assert!(run.output.contains(&want), "want {want}\ngot {}", run.output);
    }
}
