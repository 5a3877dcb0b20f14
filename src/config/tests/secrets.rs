//! TLS contexts read from files and SDS secrets: what a context records of its reads (for the
//! watcher), the SDS file picked by secret name, and a rebuild's refusals (a key that does not
//! match, an expired certificate) naming the file and the field.

use std::path::Path;

use rcgen::{CertificateParams, KeyPair};

use crate::config::{load_bootstrap, rebuild_tls};
use crate::tls::ServerTls;

fn pair(days_left: i64) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let day = std::time::Duration::from_secs(86_400);
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    let now = rcgen::date_time_ymd(1970, 1, 1) + since;
    params.not_before = now - day * 30;
    params.not_after = if days_left >= 0 { now + day * days_left as u32 } else { now - day };
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

fn bootstrap(dir: &Path, common: serde_json::Value) -> std::path::PathBuf {
    let v = serde_json::json!({
        "static_resources": { "listeners": [{
            "name": "l",
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
            "filter_chains": [{
                "filters": [{ "name": "hcm", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "h",
                    "route_config": { "virtual_hosts": [{ "name": "v", "domains": ["*"], "routes": [
                        { "match": { "prefix": "/" }, "direct_response": { "status": 200 } }] }] },
                    "http_filters": [{ "name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }],
                } }],
                "transport_socket": { "name": "tls", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "common_tls_context": common,
                } },
            }],
        }] },
    });
    let path = dir.join("bootstrap.json");
    std::fs::write(&path, v.to_string()).expect("write bootstrap");
    path
}

fn context(path: &Path) -> std::sync::Arc<ServerTls> {
    let b = load_bootstrap(Some(path), None).unwrap_or_else(|e| panic!("{e}"));
    b.listeners[0].filter_chains[0].tls.clone().expect("a TLS context")
}

#[test]
fn an_sds_file_with_two_secrets_is_read_by_name_and_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = pair(100);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert).expect("ca");
    let sds = dir.path().join("sds.yaml");
    let doc = serde_json::json!({ "version_info": "7", "resources": [
        { "@type": SECRET, "name": "ca", "validation_context": { "trusted_ca": { "filename": ca } } },
        { "@type": SECRET, "name": "server", "tls_certificate": {
            "certificate_chain": { "inline_string": cert }, "private_key": { "inline_string": key } } },
    ] });
    std::fs::write(&sds, serde_yaml::to_string(&doc).expect("yaml")).expect("sds");
    let source =
        serde_json::json!({ "path_config_source": { "path": sds, "watched_directory": { "path": dir.path() } } });
    let path = bootstrap(
        dir.path(),
        serde_json::json!({
            "tls_certificate_sds_secret_configs": [{ "name": "server", "sds_config": source }],
            "validation_context_sds_secret_config": { "name": "ca", "sds_config": { "path": sds } },
        }),
    );
    let tls = context(&path);
    let m = tls.material();
    assert_eq!(m.certs.len(), 1);
    assert_eq!(m.ca.len(), 1);
    let reads = &m.config.reads;
    let files: Vec<_> = reads.files.iter().map(|f| f.spec.path.clone()).collect();
    assert_eq!(files, vec![sds.clone(), ca.clone()]);
    assert_eq!(reads.files[0].spec.watched_directory.as_deref(), Some(dir.path()), "kept from the first read");
    let names: Vec<_> = reads.sds.iter().map(|s| (s.name.as_str(), s.version_info.as_str())).collect();
    assert_eq!(names, vec![("server", "7"), ("ca", "7")]);
    assert!(tls.origin.is_some());
    assert!(rebuild_tls(tls.origin.as_ref().expect("origin")).is_ok());

    // A secret the file does not have.
    let path = bootstrap(
        dir.path(),
        serde_json::json!({ "tls_certificate_sds_secret_configs": [{ "name": "nope", "sds_config": { "path": sds } }] }),
    );
    let err = load_bootstrap(Some(&path), None).expect_err("unknown secret").to_string();
    assert!(err.contains("sds.yaml") && err.contains("no secret named \"nope\""), "{err}");
}

#[test]
fn a_rebuild_refuses_a_mismatched_key_and_an_expired_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = pair(100);
    let (cert_file, key_file) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_file, &cert).expect("cert");
    std::fs::write(&key_file, &key).expect("key");
    let path = bootstrap(
        dir.path(),
        serde_json::json!({ "tls_certificates": [{
            "certificate_chain": { "filename": cert_file }, "private_key": { "filename": key_file } }] }),
    );
    let tls = context(&path);
    let origin = tls.origin.clone().expect("origin");
    assert_eq!(origin.path, "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config");

    let (_, other_key) = pair(100);
    std::fs::write(&key_file, &other_key).expect("key");
    let err = rebuild_tls(&origin).err().expect("mismatch refused").to_string();
    assert!(
        err.contains("typed_config.common_tls_context.tls_certificates[0].private_key")
            && err.contains("does not match"),
        "{err}"
    );

    let (expired, expired_key) = pair(-1);
    std::fs::write(&cert_file, &expired).expect("cert");
    std::fs::write(&key_file, &expired_key).expect("key");
    let err = rebuild_tls(&origin).err().expect("expired refused").to_string();
    assert!(err.contains("tls_certificates[0].certificate_chain") && err.contains("has expired"), "{err}");

    let (fresh, fresh_key) = pair(10);
    std::fs::write(&cert_file, &fresh).expect("cert");
    std::fs::write(&key_file, &fresh_key).expect("key");
    let m = rebuild_tls(&origin).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(m.config, tls.material().config, "the new pair differs");
    tls.swap(m);
    assert!(tls.material().certs[0][0].days_until_expiration(0) > 0);
}

#[test]
fn an_upstream_context_records_its_reads_and_a_rebuild_refuses_a_mismatched_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = pair(100);
    let (cert_file, key_file, ca_file) =
        (dir.path().join("c.pem"), dir.path().join("k.pem"), dir.path().join("ca.pem"));
    std::fs::write(&cert_file, &cert).expect("cert");
    std::fs::write(&key_file, &key).expect("key");
    std::fs::write(&ca_file, &cert).expect("ca");
    let v = serde_json::json!({ "static_resources": { "clusters": [{
        "name": "up",
        "connect_timeout": "1s",
        "type": "STATIC",
        "load_assignment": { "cluster_name": "up", "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
            "socket_address": { "address": "127.0.0.1", "port_value": 1 } } } }] }] },
        "transport_socket": { "name": "tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [{ "certificate_chain": { "filename": cert_file }, "private_key": { "filename": key_file } }],
                "validation_context": { "trusted_ca": { "filename": ca_file }, "watched_directory": { "path": dir.path() } },
            },
        } },
    }] } });
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, v.to_string()).expect("write bootstrap");
    let b = load_bootstrap(Some(&path), None).unwrap_or_else(|e| panic!("{e}"));
    let tls = b.clusters[0].tls.clone().expect("a TLS context");
    let m = tls.material();
    let files: Vec<_> = m.config.reads.files.iter().map(|f| f.spec.path.clone()).collect();
    assert_eq!(files, vec![cert_file.clone(), key_file.clone(), ca_file.clone()]);
    assert_eq!(m.config.reads.files[2].spec.watched_directory.as_deref(), Some(dir.path()));
    assert_eq!(m.config.alpn, vec!["http/1.1".to_string()], "the cluster's default ALPN");
    let origin = tls.origin.clone().expect("origin");

    let (_, other_key) = pair(100);
    std::fs::write(&key_file, &other_key).expect("key");
    let err = crate::config::rebuild_client_tls(&origin).err().expect("mismatch refused").to_string();
    assert!(
        err.contains("clusters[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].private_key")
            && err.contains("does not match"),
        "{err}"
    );
    let (fresh, fresh_key) = pair(10);
    std::fs::write(&cert_file, &fresh).expect("cert");
    std::fs::write(&key_file, &fresh_key).expect("key");
    let m = crate::config::rebuild_client_tls(&origin).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.config.alpn, vec!["http/1.1".to_string()]);
    assert_ne!(m.config, tls.material().config, "the new pair differs");
    tls.swap(m);
    assert!(tls.material().certs[0].days_until_expiration(0) > 0);
}
