//! Upstream certificate rotation: a cluster's client certificate (mTLS to the upstream) and
//! the CA it checks the upstream with, read from files (`filename`, file-based SDS), are
//! watched like a listener's. The upstream is a real TLS server (a second legate requiring a
//! client certificate) that forwards to an echo server with `x-forwarded-client-cert`, whose
//! `Hash` says which client certificate each new upstream connection presented. The origin
//! is a tcp_proxy, so every request is a new upstream connection and handshake.

use std::path::Path;

use serde_json::{json, Value};

use http_body_util::Full;
use hyper::Method;

use crate::common::client::{request, Client};
use crate::common::config::{hcm, route_config, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::tls::{Alg, Ca, Pair};
use crate::common::upstream::{self, Upstream};
use crate::common::{assert_eventually, bounded};
use crate::upstream_tls::{boot, inline, socket, DOWNSTREAM, UPSTREAM};

const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
const TCP_PROXY: &str = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `text` over `path` by rename.
fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write tmp");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The TLS upstream: listener `front` serving `server` and requiring a client certificate of
/// `ca` (its own files: the test rotates them too), forwarding to `echo` with the client
/// certificate's hash in `x-forwarded-client-cert`.
async fn front(dir: &Path, server: &Pair, ca: &Ca, echo: &Upstream) -> Legate {
    let (cert, key, trusted) = (dir.join("front.crt"), dir.join("front.key"), dir.join("front-ca.pem"));
    std::fs::write(&cert, &server.cert).expect("cert");
    std::fs::write(&key, &server.key).expect("key");
    std::fs::write(&trusted, &ca.cert).expect("ca");
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!([to_cluster(json!({"prefix": "/"}), "echo")]))])));
    h["stat_prefix"] = json!("front");
    h["forward_client_cert_details"] = json!("SANITIZE_SET");
    h["set_current_client_cert_details"] = json!({ "subject": true });
    let tls = socket(
        DOWNSTREAM,
        json!({
            "require_client_certificate": true,
            "common_tls_context": {
                "tls_certificates": [{ "certificate_chain": { "filename": cert }, "private_key": { "filename": key } }],
                "validation_context": { "trusted_ca": { "filename": trusted } },
            },
        }),
    );
    let l = json!({
        "name": "front",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [{ "name": "hcm", "typed_config": h }], "transport_socket": tls }],
    });
    Legate::start(boot(vec![l], vec![static_cluster("echo", &[echo.addr()])])).await
}

/// The origin: a tcp_proxy listener `tcp` to cluster `up` (the front over TLS, `ctx`).
async fn origin(front: &Legate, ctx: Value) -> Legate {
    let l = json!({
        "name": "tcp",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [{ "name": "tcp",
            "typed_config": { "@type": TCP_PROXY, "stat_prefix": "tcp", "cluster": "up" } }] }],
    });
    let mut up = static_cluster("up", &[front.listener("front")]);
    up["transport_socket"] = socket(UPSTREAM, ctx);
    Legate::start(boot(vec![l], vec![up])).await
}

/// The `Hash` of the client certificate the upstream saw on a new connection; `None` when
/// the request failed (the handshake was refused).
async fn presented(origin: &Legate) -> Option<String> {
    let req = request(Method::GET, &origin.url("tcp", "/")).body(Full::default()).expect("request");
    let r = bounded("request", Client::h1().try_send(req)).await.ok()?;
    if !r.status.is_success() {
        return None;
    }
    let xfcc = r.echo()["headers"]["x-forwarded-client-cert"].as_str().unwrap_or_default().to_string();
    xfcc.split(';').find_map(|p| p.strip_prefix("Hash=")).map(str::to_string)
}

fn files(cert: &Path, key: &Path) -> Value {
    json!({ "certificate_chain": { "filename": cert }, "private_key": { "filename": key } })
}

#[tokio::test]
async fn a_rotated_client_certificate_is_presented_and_a_bad_pair_rejected() {
    let ca = Ca::new("mesh ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let echo = upstream::http1().spawn().await;
    let front = front(dir.path(), &ca.server(&["upstream.example"], Alg::Ecdsa), &ca, &echo).await;
    let (cert, key, trusted) =
        (dir.path().join("client.crt"), dir.path().join("client.key"), dir.path().join("ca.pem"));
    let first = ca.client("first", None);
    std::fs::write(&cert, &first.cert).expect("cert");
    std::fs::write(&key, &first.key).expect("key");
    std::fs::write(&trusted, &ca.cert).expect("ca");
    let ctx = json!({ "sni": "upstream.example", "common_tls_context": {
        "tls_certificates": [files(&cert, &key)],
        "validation_context": { "trusted_ca": { "filename": trusted } },
    } });
    let origin = origin(&front, ctx).await;
    assert_eq!(presented(&origin).await, Some(sha256_hex(&first.der)), "the first certificate");

    // Renamed into place, key first: the new pair is presented on new connections.
    let second = ca.client("second", None);
    put(&key, &second.key);
    put(&cert, &second.cert);
    let want = Some(sha256_hex(&second.der));
    assert_eventually!(presented(&origin).await == want, "the second certificate is presented");
    let updated = "cluster.up.client_ssl_socket_factory.ssl_context_update_by_sds";
    assert_eq!(origin.stat(updated).await, 1);

    // A key that is not the certificate's: rejected whole, the second pair stays.
    let rejected = "cluster.up.client_ssl_socket_factory.ssl_context_update_rejected";
    put(&key, &ca.client("third", None).key);
    assert_eventually!(origin.stat(rejected).await == 1, "the mismatched key is rejected");
    assert_eq!(presented(&origin).await, want, "the second pair is still presented");
    let reloads = origin.admin_get("/reloads").await.json();
    let last = &reloads["reloads"][0];
    assert_eq!((&last["outcome"], &last["changes"]["cluster"]), (&json!("rejected"), &json!("up")), "{reloads}");
    let error = last["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("clusters[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].private_key")
            && error.contains("does not match the certificate"),
        "{error}"
    );
    assert!(origin.output().contains("certificate update rejected"), "{}", origin.output());

    // Written in place (truncate and write), a good pair again.
    let fourth = ca.client("fourth", None);
    std::fs::write(&cert, &fourth.cert).expect("cert in place");
    std::fs::write(&key, &fourth.key).expect("key in place");
    let want = Some(sha256_hex(&fourth.der));
    assert_eventually!(presented(&origin).await == want, "the pair written in place is presented");
    let certs = origin.admin_get("/certs").await.json();
    let serial = certs["certificates"][0]["cert_chain"][0]["serial_number"].clone();
    let reloads = origin.admin_get("/reloads").await.json();
    assert_eq!(reloads["reloads"][0]["changes"]["serial_numbers"][0], serial, "{reloads} {certs}");
    assert_eq!(origin.stat(updated).await, 2);
    // Files are unnamed, as Envoy names them (the hash of no inline data).
    let stats = origin.stats().await;
    for name in ["unnamed_cert_e3b0c442", "unnamed_ca_cert_e3b0c442"] {
        let gauge = format!("cluster.up.ssl.certificate.{name}.expiration_unix_time_seconds");
        assert!(stats.get(&gauge).is_some_and(|t| *t > 0), "{gauge}: {stats:?}");
    }
}

#[tokio::test]
async fn a_rotated_trusted_ca_checks_new_connections() {
    let (old_ca, new_ca) = (Ca::new("old ca"), Ca::new("new ca"));
    let dir = tempfile::tempdir().expect("tempdir");
    let echo = upstream::http1().spawn().await;
    // The front accepts clients of the old CA throughout; its own certificate rotates.
    let front = front(dir.path(), &old_ca.server(&["upstream.example"], Alg::Ecdsa), &old_ca, &echo).await;
    let client = old_ca.client("origin", None);
    let trusted = dir.path().join("ca.pem");
    std::fs::write(&trusted, &old_ca.cert).expect("ca");
    let ctx = json!({ "sni": "upstream.example", "common_tls_context": {
        "tls_certificates": [inline(&client)],
        "validation_context": { "trusted_ca": { "filename": trusted } },
    } });
    let origin = origin(&front, ctx).await;
    assert_eq!(presented(&origin).await, Some(sha256_hex(&client.der)));

    // The origin now trusts only the new CA: the front's old certificate is refused.
    put(&trusted, &new_ca.cert);
    assert_eventually!(presented(&origin).await.is_none(), "the new CA refuses the old server certificate");
    assert!(origin.stat("cluster.up.ssl.fail_verify_error").await >= 1);
    // The front rotates to a certificate of the new CA: accepted again.
    let server = new_ca.server(&["upstream.example"], Alg::Ecdsa);
    put(&dir.path().join("front.key"), &server.key);
    put(&dir.path().join("front.crt"), &server.cert);
    assert_eventually!(presented(&origin).await.is_some(), "the new CA accepts the new server certificate");
    let certs = origin.admin_get("/certs").await.json();
    let ca_serial = certs["certificates"][0]["ca_cert"][0]["serial_number"].as_str().unwrap_or_default().to_string();
    assert!(!ca_serial.is_empty(), "{certs}");

    // Garbage for a CA is rejected; the new CA stays.
    put(&trusted, "not a certificate");
    let rejected = "cluster.up.client_ssl_socket_factory.ssl_context_update_rejected";
    assert_eventually!(origin.stat(rejected).await == 1, "the unparsable CA is rejected");
    assert!(presented(&origin).await.is_some(), "the new CA still checks");
}

#[tokio::test]
async fn an_sds_client_certificate_and_ca_rotate() {
    let ca = Ca::new("sds ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let echo = upstream::http1().spawn().await;
    let front = front(dir.path(), &ca.server(&["upstream.example"], Alg::Ecdsa), &ca, &echo).await;
    let sds = dir.path().join("sds.yaml");
    let write = |version: &str, pair: &Pair| {
        let secrets = json!([
            { "@type": SECRET, "name": "client", "tls_certificate": inline(pair) },
            { "@type": SECRET, "name": "ca", "validation_context": { "trusted_ca": { "inline_string": ca.cert } } },
        ]);
        put(&sds, &serde_yaml::to_string(&json!({ "version_info": version, "resources": secrets })).expect("yaml"));
    };
    let first = ca.client("first", None);
    write("v1", &first);
    let source = json!({ "path_config_source": { "path": sds } });
    let ctx = json!({ "sni": "upstream.example", "common_tls_context": {
        "tls_certificate_sds_secret_configs": [{ "name": "client", "sds_config": source }],
        "validation_context_sds_secret_config": { "name": "ca", "sds_config": source },
    } });
    let origin = origin(&front, ctx).await;
    assert_eq!(presented(&origin).await, Some(sha256_hex(&first.der)));
    assert_eq!(origin.stat("sds.client.update_success").await, 1);
    // SDS certificates are named by their secrets.
    for name in ["client", "ca"] {
        let gauge = format!("cluster.up.ssl.certificate.{name}.expiration_unix_time_seconds");
        assert!(origin.stat(&gauge).await > 0, "{gauge}");
    }

    let second = ca.client("second", None);
    write("v2", &second);
    let want = Some(sha256_hex(&second.der));
    assert_eventually!(presented(&origin).await == want, "the v2 secret is presented");
    assert_eventually!(origin.stat("sds.client.update_success").await == 2, "sds.client.update_success counts v2");

    // A secret whose key does not match: rejected, v2 stays.
    let mut bad = ca.client("third", None);
    bad.key = first.key.clone();
    write("v3", &bad);
    assert_eventually!(origin.stat("sds.client.update_rejected").await == 1, "sds.client.update_rejected");
    assert_eq!(presented(&origin).await, want);
}
