//! Certificate rotation: certificate and key files named by `filename`, file-based SDS
//! secrets and `static_resources.secrets` are watched; a change swaps the listener's
//! certificates for the next handshake (rename, in place, delete and recreate, a Kubernetes
//! Secret `..data` swap, `watched_directory`), established connections stay, and a bad
//! update (a key that does not match, an expired certificate) is rejected whole, visible in
//! `/reloads`, the stats and `/certs`, while the old certificate keeps serving.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::config::{direct, hcm, route_config, vhost};
use crate::common::legate::Legate;
use crate::common::tls::{connect, get_h1, Alg, Ca, ClientOpts, Pair, Session};

const TLS_CONTEXT: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// A bootstrap with one TLS listener `tls` whose `common_tls_context` is `common`, and
/// `secrets` as its static secrets.
fn boot(common: Value, secrets: Value) -> String {
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!([direct(json!({"prefix": "/"}), "hello")]))])));
    h["stat_prefix"] = json!("https");
    let v = json!({
        "node": { "id": "n", "cluster": "c" },
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": {
            "secrets": secrets,
            "listeners": [{
                "name": "tls",
                "stat_prefix": "tls",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
                "filter_chains": [{
                    "filters": [{ "name": "hcm", "typed_config": h }],
                    "transport_socket": {
                        "name": "envoy.transport_sockets.tls",
                        "typed_config": { "@type": TLS_CONTEXT, "common_tls_context": common },
                    },
                }],
            }],
        },
    });
    serde_yaml::to_string(&v).expect("yaml")
}

/// One request on an established keep-alive connection; panics if the server closed it.
async fn keep_alive(s: &mut Session) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.stream.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n").await.expect("write");
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("hello") {
        let n = crate::common::bounded("keep-alive response", s.stream.read(&mut buf)).await.expect("read");
        assert!(n > 0, "the established connection was closed");
        got.extend_from_slice(&buf[..n]);
    }
}

fn files(cert: &Path, key: &Path) -> Value {
    json!({ "certificate_chain": { "filename": cert }, "private_key": { "filename": key } })
}

/// The serial of the certificate a new handshake gets.
async fn served(legate: &Legate, ca: &Ca) -> Vec<u8> {
    match connect(legate.listener("tls"), &ca.cert, &ClientOpts::default()).await {
        Ok(s) => s.peer_der,
        Err(_) => Vec::new(),
    }
}

/// Writes `pair` over `cert` and `key` by rename (a temporary file then `mv`), the key first.
fn rename_pair(pair: &Pair, cert: &Path, key: &Path) {
    for (path, text) in [(key, &pair.key), (cert, &pair.cert)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write tmp");
        std::fs::rename(&tmp, path).expect("rename");
    }
}

/// A Kubernetes Secret volume: `NAME -> ..data/NAME`, `..data -> ..TIMESTAMP`; an update
/// writes a new timestamped directory and renames a new `..data` link over the old one.
struct SecretVolume {
    dir: PathBuf,
    generation: usize,
}

impl SecretVolume {
    fn new(dir: PathBuf, pair: &Pair) -> SecretVolume {
        std::fs::create_dir_all(&dir).expect("volume dir");
        let mut v = SecretVolume { dir, generation: 0 };
        let ts = v.write_generation(pair);
        std::os::unix::fs::symlink(&ts, v.dir.join("..data")).expect("..data");
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), v.dir.join(name)).expect("file symlink");
        }
        v
    }

    fn write_generation(&mut self, pair: &Pair) -> String {
        self.generation += 1;
        let ts = format!("..2026_12_06_00_00_{:02}.{}", self.generation, self.generation);
        let path = self.dir.join(&ts);
        std::fs::create_dir(&path).expect("generation dir");
        std::fs::write(path.join("tls.crt"), &pair.cert).expect("crt");
        std::fs::write(path.join("tls.key"), &pair.key).expect("key");
        ts
    }

    fn swap(&mut self, pair: &Pair) {
        let old = std::fs::read_link(self.dir.join("..data")).expect("..data target");
        let ts = self.write_generation(pair);
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&ts, &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
        std::fs::remove_dir_all(self.dir.join(old)).expect("remove old generation");
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }
}

#[tokio::test]
async fn rotates_on_every_write_style_and_keeps_connections() {
    let ca = Ca::new("rotation ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let first = ca.server(&["localhost"], Alg::Ecdsa);
    std::fs::write(&cert, &first.cert).expect("cert");
    std::fs::write(&key, &first.key).expect("key");
    let legate = Legate::start(boot(json!({ "tls_certificates": [files(&cert, &key)] }), json!([]))).await;
    assert_eq!(served(&legate, &ca).await, first.der);

    // An established keep-alive connection, used again after every rotation.
    let mut kept = connect(legate.listener("tls"), &ca.cert, &ClientOpts::default()).await.expect("handshake");
    keep_alive(&mut kept).await;

    // Rename (mv of a temporary file), key first.
    let second = ca.server(&["localhost"], Alg::Ecdsa);
    rename_pair(&second, &cert, &key);
    assert_eventually!(served(&legate, &ca).await == second.der, "renamed pair served");
    keep_alive(&mut kept).await;

    // In place (truncate and write, as `cp` or `cat >`), certificate first.
    let third = ca.server(&["localhost"], Alg::Ecdsa);
    std::fs::write(&cert, &third.cert).expect("cert in place");
    std::fs::write(&key, &third.key).expect("key in place");
    assert_eventually!(served(&legate, &ca).await == third.der, "pair written in place served");
    keep_alive(&mut kept).await;

    // Delete and recreate.
    let fourth = ca.server(&["localhost"], Alg::Ecdsa);
    std::fs::remove_file(&cert).expect("rm cert");
    std::fs::remove_file(&key).expect("rm key");
    std::fs::write(&key, &fourth.key).expect("recreate key");
    std::fs::write(&cert, &fourth.cert).expect("recreate cert");
    assert_eventually!(served(&legate, &ca).await == fourth.der, "recreated pair served");
    keep_alive(&mut kept).await;

    let stats = legate.stats().await;
    let rotations = stats.get("listener.tls.server_ssl_socket_factory.ssl_context_update_by_sds").copied();
    assert!(rotations.is_some_and(|n| n >= 3), "{stats:?}");
    let certs = legate.admin_get("/certs").await.json();
    let leaf = &certs["certificates"][0]["cert_chain"][0];
    let serial = leaf["serial_number"].as_str().unwrap_or_default().to_string();
    assert!(!serial.is_empty(), "{certs}");
    let reloads = legate.admin_get("/reloads").await.json();
    let applied = reloads["reloads"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|e| e["outcome"] == "applied" && e["changes"]["listener"] == "tls").count());
    assert!(applied >= 3, "{reloads}");
    assert_eq!(reloads["reloads"][0]["changes"]["serial_numbers"][0], json!(serial), "{reloads}");
}

#[tokio::test]
async fn a_kubernetes_secret_swap_rotates() {
    let ca = Ca::new("k8s ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let first = ca.server(&["localhost"], Alg::Ecdsa);
    let mut volume = SecretVolume::new(dir.path().join("secret"), &first);
    let legate =
        Legate::start(boot(json!({ "tls_certificates": [files(&volume.cert(), &volume.key())] }), json!([]))).await;
    assert_eq!(served(&legate, &ca).await, first.der);
    for _ in 0..3 {
        let next = ca.server(&["localhost"], Alg::Ecdsa);
        volume.swap(&next);
        assert_eventually!(served(&legate, &ca).await == next.der, "the swapped Secret is served");
    }
    assert_eq!(legate.stat("listener.tls.server_ssl_socket_factory.ssl_context_update_rejected").await, 0);
}

#[tokio::test]
async fn a_bad_pair_is_rejected_and_the_old_one_keeps_serving() {
    let ca = Ca::new("bad ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let good = ca.server(&["localhost"], Alg::Ecdsa);
    std::fs::write(&cert, &good.cert).expect("cert");
    std::fs::write(&key, &good.key).expect("key");
    let legate = Legate::start(boot(json!({ "tls_certificates": [files(&cert, &key)] }), json!([]))).await;
    let rejected = "listener.tls.server_ssl_socket_factory.ssl_context_update_rejected";

    // A key that is not the certificate's.
    let other = ca.server(&["localhost"], Alg::Ecdsa);
    let tmp = dir.path().join("k.tmp");
    std::fs::write(&tmp, &other.key).expect("tmp");
    std::fs::rename(&tmp, &key).expect("rename key");
    assert_eventually!(legate.stat(rejected).await == 1, "the mismatched key is rejected");
    assert_eq!(served(&legate, &ca).await, good.der, "the old pair keeps serving");
    let reloads = legate.admin_get("/reloads").await.json();
    let last = &reloads["reloads"][0];
    assert_eq!(last["outcome"], "rejected", "{reloads}");
    let error = last["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("common_tls_context.tls_certificates[0].private_key")
            && error.contains("does not match the certificate"),
        "{error}"
    );
    assert!(last["files"].to_string().contains("server.key"), "{last}");
    assert!(legate.output().contains("certificate update rejected"), "{}", legate.output());

    // Its certificate lands: the pair applies together.
    std::fs::write(&tmp, &other.cert).expect("tmp");
    std::fs::rename(&tmp, &cert).expect("rename cert");
    assert_eventually!(served(&legate, &ca).await == other.der, "the completed pair is served");

    // Garbage is rejected too.
    std::fs::write(&tmp, "not a certificate").expect("tmp");
    std::fs::rename(&tmp, &cert).expect("rename garbage");
    assert_eventually!(legate.stat(rejected).await == 2, "garbage rejected");
    assert_eq!(served(&legate, &ca).await, other.der);

    // An expired certificate (with its key) is rejected whole.
    let expired = ca.server_expired("localhost");
    rename_pair(&expired, &cert, &key);
    assert_eventually!(legate.stat(rejected).await >= 3, "expired certificate rejected");
    let reloads = legate.admin_get("/reloads").await.json();
    assert!(reloads["reloads"][0]["error"].as_str().unwrap_or_default().contains("has expired"), "{reloads}");
    assert_eq!(served(&legate, &ca).await, other.der);
    assert_eq!(legate.stat("listener.tls.server_ssl_socket_factory.ssl_context_update_by_sds").await, 1);
}

fn sds_file(path: &Path, version: &str, secrets: Value) {
    let doc = json!({ "version_info": version, "resources": secrets });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_yaml::to_string(&doc).expect("yaml")).expect("write sds");
    std::fs::rename(&tmp, path).expect("rename sds");
}

fn cert_secret(name: &str, pair: &Pair) -> Value {
    json!({ "@type": SECRET, "name": name, "tls_certificate": {
        "certificate_chain": { "inline_string": pair.cert }, "private_key": { "inline_string": pair.key } } })
}

#[tokio::test]
async fn sds_file_with_two_secrets_and_mtls() {
    let ca = Ca::new("sds ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let sds = dir.path().join("sds.yaml");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.cert).expect("ca");
    let first = ca.server(&["localhost"], Alg::Ecdsa);
    let validation =
        json!({ "@type": SECRET, "name": "ca", "validation_context": { "trusted_ca": { "filename": ca_file } } });
    sds_file(&sds, "v1", json!([cert_secret("server", &first), validation]));
    let source = json!({ "path_config_source": { "path": sds }, "resource_api_version": "V3" });
    let common = json!({
        "tls_certificate_sds_secret_configs": [{ "name": "server", "sds_config": source }],
        "validation_context_sds_secret_config": { "name": "ca", "sds_config": source },
    });
    let legate = Legate::start(boot(common, json!([]))).await;
    let client = ca.client("alice", None);
    let with_cert = ClientOpts { client_cert: Some(client), ..Default::default() };
    let mut s = connect(legate.listener("tls"), &ca.cert, &with_cert).await.expect("mTLS handshake");
    assert_eq!(s.peer_der, first.der);
    let (status, _) = get_h1(&mut s, "localhost", "/").await.expect("response");
    assert!(status.contains("200"), "{status}");
    assert_eq!(legate.stat("sds.server.update_success").await, 1);
    assert_eq!(legate.stat("sds.ca.update_success").await, 1);

    // A new version of the file: the certificate changes, the CA secret stays.
    let second = ca.server(&["localhost"], Alg::Ecdsa);
    sds_file(&sds, "v2", json!([cert_secret("server", &second), validation.clone()]));
    assert_eventually!(served(&legate, &ca).await == second.der, "the v2 secret is served");
    assert_eventually!(legate.stat("sds.server.update_success").await == 2, "sds.server.update_success counts v2");
    let text = legate.admin_get("/stats").await.text();
    assert!(text.contains("sds.server.version_text: \"v2\""), "{text}");

    // A secret whose key does not match: rejected, v2 keeps serving.
    let third = ca.server(&["localhost"], Alg::Ecdsa);
    let mut bad = cert_secret("server", &third);
    bad["tls_certificate"]["private_key"]["inline_string"] = json!(second.key);
    sds_file(&sds, "v3", json!([bad, validation]));
    assert_eventually!(legate.stat("sds.server.update_rejected").await == 1, "sds.server.update_rejected");
    assert_eq!(served(&legate, &ca).await, second.der);
    let reloads = legate.admin_get("/reloads").await.json();
    let error = reloads["reloads"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("tls_certificate_sds_secret_configs[0].private_key (secret \"server\" of ")
            && error.contains("does not match"),
        "{error}"
    );
}

#[tokio::test]
async fn sds_watched_directory_and_static_secrets() {
    let ca = Ca::new("watched ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let first = ca.server(&["localhost"], Alg::Ecdsa);
    // The SDS file is a link into a Secret volume; `watched_directory` is the volume.
    let mut volume = SecretVolume::new(dir.path().join("vol"), &first);
    let sds = dir.path().join("sds.yaml");
    let secret = json!({ "@type": SECRET, "name": "server", "tls_certificate": files(&volume.cert(), &volume.key()) });
    sds_file(&sds, "v1", json!([secret]));
    let source = json!({ "path_config_source": { "path": sds, "watched_directory": { "path": volume.dir } } });
    let static_secret = json!({ "name": "static", "tls_certificate": files(&volume.cert(), &volume.key()) });
    let common = json!({
        "tls_certificate_sds_secret_configs": [{ "name": "server", "sds_config": source }, { "name": "static" }],
    });
    let legate = Legate::start(boot(common, json!([static_secret]))).await;
    assert_eq!(served(&legate, &ca).await, first.der);
    let next = ca.server(&["localhost"], Alg::Ecdsa);
    volume.swap(&next);
    assert_eventually!(served(&legate, &ca).await == next.der, "the volume's new generation is served");
    let certs = legate.admin_get("/certs").await.json();
    let chains = certs["certificates"][0]["cert_chain"].as_array().map_or(0, Vec::len);
    assert_eq!(chains, 2, "both secrets listed: {certs}");

    // An unknown static secret refuses the configuration at its field.
    let bad = boot(json!({ "tls_certificate_sds_secret_configs": [{ "name": "nope" }] }), json!([]));
    let (_f, run) = crate::common::legate::validate("bad.yaml", &bad).await;
    assert_eq!(run.code(), Some(1), "{}", run.output);
    let out = &run.output;
    assert!(
        out.contains("tls_certificate_sds_secret_configs[0].name") && out.contains("unknown static secret"),
        "{out}"
    );
}

#[tokio::test]
async fn days_until_first_cert_expiring() {
    let ca = Ca::new("days ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let long = ca.server(&["localhost"], Alg::Ecdsa);
    std::fs::write(&cert, &long.cert).expect("cert");
    std::fs::write(&key, &long.key).expect("key");
    let legate = Legate::start(boot(json!({ "tls_certificates": [files(&cert, &key)] }), json!([]))).await;
    let days = legate.stat("server.days_until_first_cert_expiring").await;
    assert!(days > 300, "{days}");
    let short = ca.server_valid_for("localhost", 10);
    rename_pair(&short, &cert, &key);
    assert_eventually!(served(&legate, &ca).await == short.der, "the short-lived certificate is served");
    let days = legate.stat("server.days_until_first_cert_expiring").await;
    assert!((9..=10).contains(&days), "{days}");
    let certs = legate.admin_get("/certs").await.json();
    let leaf = &certs["certificates"][0]["cert_chain"][0];
    assert!(matches!(leaf["days_until_expiration"].as_str(), Some("9" | "10")), "{certs}");
}

/// An LDS listener's TLS context naming a secret of the bootstrap's
/// `static_resources.secrets` (no `sds_config`): served, and rotated from its files.
#[tokio::test]
async fn an_lds_listener_names_a_static_secret() {
    let ca = Ca::new("lds ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let first = ca.server(&["localhost"], Alg::Ecdsa);
    std::fs::write(&cert, &first.cert).expect("cert");
    std::fs::write(&key, &first.key).expect("key");
    // The bootstrap's listener, moved into an LDS file.
    let common = json!({ "tls_certificate_sds_secret_configs": [{ "name": "static" }] });
    let secret = json!({ "name": "static", "tls_certificate": files(&cert, &key) });
    let mut v: Value = serde_yaml::from_str(&boot(common, json!([secret]))).expect("yaml");
    let mut listener = v["static_resources"]["listeners"][0].take();
    listener["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
    v["static_resources"]["listeners"] = json!([]);
    let lds = dir.path().join("lds.yaml");
    std::fs::write(&lds, serde_yaml::to_string(&json!({ "resources": [listener] })).expect("yaml")).expect("lds");
    v["dynamic_resources"] = json!({ "lds_config": { "path_config_source": { "path": lds } } });
    let legate = Legate::start(serde_yaml::to_string(&v).expect("yaml")).await;
    assert_eq!(served(&legate, &ca).await, first.der);
    let next = ca.server(&["localhost"], Alg::Ecdsa);
    rename_pair(&next, &cert, &key);
    assert_eventually!(served(&legate, &ca).await == next.der, "the secret's files rotate");
}
