//! `ssl.*` stats Envoy 1.40 prints for a TLS listener and a TLS cluster beyond the handshake
//! counts (compared with Envoy's `/stats` for the same listener and cluster):
//! `ssl.sigalgs.<name>` (the scheme the peer signed with: the client's certificate on a
//! listener, the server's on a cluster), the OCSP stapling counters at zero, the socket
//! factories' `*_secrets_not_ready` and `ssl_context_update_by_sds`, and the certificates'
//! `ssl.certificate.<name>.expiration_unix_time_seconds`.

use serde_json::json;

use crate::common::client::get;
use crate::common::legate::Legate;
use crate::common::tls::{connect, get_h1, Alg, Ca, ClientOpts};
use crate::upstream_tls::{boot, chain, inline, listener, socket, tls_cluster, trusting, DOWNSTREAM};

#[tokio::test]
async fn sigalgs_ocsp_and_socket_factory_stats_as_envoy() {
    let ca = Ca::new("stats ca");
    let server = ca.server(&["upstream.example"], Alg::Rsa);
    let client = ca.client("origin", None);
    let mtls = socket(
        DOWNSTREAM,
        json!({ "common_tls_context": { "tls_certificates": [inline(&server)], "validation_context": trusting(&ca) } }),
    );
    let front =
        Legate::start(boot(vec![listener("front", vec![chain(json!({}), "front", "ok", Some(mtls))])], vec![])).await;
    let ctx =
        json!({ "common_tls_context": { "tls_certificates": [inline(&client)], "validation_context": trusting(&ca) } });
    let l = json!({
        "name": "tcp",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [{ "name": "tcp", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "tcp",
            "cluster": "up",
        } }] }],
    });
    let origin = Legate::start(boot(vec![l], vec![tls_cluster("up", &front, ctx)])).await;

    // The origin's client certificate (ECDSA P-256) signs; the front's RSA key signs back.
    for _ in 0..2 {
        let r = get(&origin.url("tcp", "/")).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok"));
    }
    // A client without a certificate signs nothing.
    let o = ClientOpts { sni: Some("upstream.example".into()), ..Default::default() };
    let mut s = connect(front.listener("front"), &ca.cert, &o).await.expect("handshake");
    let (status, _) = get_h1(&mut s, "upstream.example", "/").await.expect("response");
    assert!(status.contains("200"), "{status}");

    let fstats = front.stats().await;
    assert_eq!(fstats.get("listener.front.ssl.handshake"), Some(&3));
    // A resumed session is not signed again, and rustls does not keep the scheme in it
    // (BoringSSL does: Envoy counts it on resumption too).
    let signed = fstats.get("listener.front.ssl.sigalgs.ecdsa_secp256r1_sha256").copied().unwrap_or(0);
    let resumed = fstats.get("listener.front.ssl.session_reused").copied().unwrap_or(0);
    assert!(signed >= 1 && signed + resumed == 2, "{fstats:?}");
    assert_eq!(fstats.get("listener.front.ssl.no_certificate"), Some(&1));
    let stats = origin.stats().await;
    let rsa: u64 =
        stats.iter().filter(|(k, _)| k.starts_with("cluster.up.ssl.sigalgs.rsa_pss_rsae_sha")).map(|(_, v)| v).sum();
    assert_eq!(rsa, 2, "the server's RSA-PSS signature, on full and resumed handshakes: {stats:?}");
    for (stats, scope) in [(&fstats, "listener.front"), (&stats, "cluster.up")] {
        for zero in ["ocsp_staple_failed", "ocsp_staple_omitted", "ocsp_staple_requests", "ocsp_staple_responses"] {
            assert_eq!(stats.get(&format!("{scope}.ssl.{zero}")), Some(&0), "{scope} {zero}");
        }
    }
    // Envoy's certificate gauges: an inline certificate is named by its data's hash.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    for (stats, scope, name) in [
        (&fstats, "listener.front", format!("unnamed_cert_{}", hash8(&server.cert))),
        (&fstats, "listener.front", format!("unnamed_ca_cert_{}", hash8(&ca.cert))),
        (&stats, "cluster.up", format!("unnamed_cert_{}", hash8(&client.cert))),
        (&stats, "cluster.up", format!("unnamed_ca_cert_{}", hash8(&ca.cert))),
    ] {
        let gauge = format!("{scope}.ssl.certificate.{name}.expiration_unix_time_seconds");
        assert!(stats.get(&gauge).is_some_and(|t| *t > now), "{gauge}: {stats:?}");
    }
    for (stats, scope) in
        [(&fstats, "listener.front.server_ssl_socket_factory"), (&stats, "cluster.up.client_ssl_socket_factory")]
    {
        for zero in
            ["downstream_context_secrets_not_ready", "upstream_context_secrets_not_ready", "ssl_context_update_by_sds"]
        {
            assert_eq!(stats.get(&format!("{scope}.{zero}")), Some(&0), "{scope} {zero}");
        }
    }
}

/// The first 8 hex digits of the SHA-256 of `text` (Envoy's name for inline data).
fn hash8(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
