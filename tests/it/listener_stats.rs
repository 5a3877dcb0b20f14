//! Stats Envoy keeps per listener and per listener filter: `tls_inspector.*` (with the
//! `bytes_processed` histogram) and a listener's `listener.<address>.http.<stat_prefix>.*`
//! response classes, in `/stats` and `/stats/prometheus` with Envoy's names and tags.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::client::Client;
use crate::common::config::{direct, hcm, route_config, vhost};
use crate::common::legate::Legate;
use crate::common::{assert_eventually, bounded, dead_addr};
use crate::filter_chains::client_hello;

const TLS_INSPECTOR: &str = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";

fn boot(listener_filters: serde_json::Value, port: u16) -> String {
    let routes = json!([
        direct(json!({"path": "/ok"}), "ok"),
        {"match": {"prefix": "/"}, "direct_response": {"status": 503}},
    ]);
    let mut h = hcm(route_config(json!([vhost("v", &["*"], routes)])));
    h["stat_prefix"] = json!("ingress");
    let v = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": { "listeners": [{
            "name": "main",
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
            "listener_filters": listener_filters,
            "filter_chains": [{ "filters": [{ "name": "hcm", "typed_config": h }] }],
        }] },
    });
    serde_yaml::to_string(&v).expect("yaml")
}

/// Sends `bytes` and reads until legate closes the connection.
async fn send(legate: &Legate, bytes: &[u8]) {
    let mut s = TcpStream::connect(legate.listener("main")).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = bounded("answered", s.read_to_end(&mut out)).await;
}

#[tokio::test]
async fn tls_inspector_counts_what_it_found() {
    let legate = Legate::start(boot(json!([{"name": "tls", "typed_config": {"@type": TLS_INSPECTOR}}]), 0)).await;
    // Registered with the inspector, before any connection (Envoy shows them at 0).
    assert!(legate.admin_get("/stats").await.text().contains("tls_inspector.client_hello_too_large: 0"));
    let with_both = client_hello("api.example.com", &["h2", "http/1.1"]);
    send(&legate, &with_both).await;
    send(&legate, &client_hello("", &[])).await;
    send(&legate, b"GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    // A ClientHello longer than the inspector reads (16 KiB): the connection is closed.
    let mut huge = vec![22u8, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00];
    huge.resize(64, 0);
    send(&legate, &huge).await;
    assert_eventually!(legate.stat("tls_inspector.client_hello_too_large").await == 1, "too large counted");
    let s = legate.stats().await;
    let want = [
        ("tls_found", 2),
        ("tls_not_found", 1),
        ("sni_found", 1),
        ("sni_not_found", 1),
        ("alpn_found", 1),
        ("alpn_not_found", 1),
        ("client_hello_too_large", 1),
    ];
    for (name, n) in want {
        assert_eq!(s.get(&format!("tls_inspector.{name}")).copied(), Some(n), "tls_inspector.{name}");
    }
    let prom = legate.admin_get("/stats/prometheus").await.text();
    assert!(prom.contains("# TYPE envoy_tls_inspector_tls_found counter\nenvoy_tls_inspector_tls_found 2\n"), "{prom}");
    // Each verdict records the bytes judged: the ClientHello records, 5 bytes of plaintext.
    let hellos = (with_both.len() + client_hello("", &[]).len() + 5) as u64;
    assert!(prom.contains("envoy_tls_inspector_bytes_processed_count 3\n"), "{prom}");
    assert!(prom.contains(&format!("envoy_tls_inspector_bytes_processed_sum {hellos}\n")), "{prom}");
}

#[tokio::test]
async fn no_tls_inspector_no_tls_inspector_stats() {
    let legate = Legate::start(boot(json!([]), 0)).await;
    assert!(!legate.admin_get("/stats").await.text().contains("tls_inspector."));
}

#[tokio::test]
async fn a_listener_counts_its_connection_managers_responses() {
    // A fixed port: the listener's stats are named by its configured address.
    let port = dead_addr().port();
    let legate = Legate::start(boot(json!([]), port)).await;
    let c = Client::h1();
    assert_eq!(c.get(&legate.url("main", "/ok")).await.status, 200);
    assert_eq!(c.get(&legate.url("main", "/ok")).await.status, 200);
    assert_eq!(c.get(&legate.url("main", "/down")).await.status, 503);
    let addr = legate.listener("main");
    let name = format!("listener.{}_{}.http.ingress", addr.ip(), addr.port());
    assert_eventually!(legate.stat(&format!("{name}.downstream_rq_completed")).await == 3, "completed");
    let s = legate.stats().await;
    for (class, n) in [(1, 0), (2, 2), (3, 0), (4, 0), (5, 1)] {
        assert_eq!(s.get(&format!("{name}.downstream_rq_{class}xx")).copied(), Some(n), "{class}xx");
    }
    // No per-code counters at the listener, as in Envoy.
    assert!(!s.contains_key(&format!("{name}.downstream_rq_200")));
    let prom = legate.admin_get("/stats/prometheus").await.text();
    let labels =
        format!("envoy_http_conn_manager_prefix=\"ingress\",envoy_listener_address=\"{}_{}\"", addr.ip(), addr.port());
    assert!(prom.contains(&format!("envoy_listener_http_downstream_rq_completed{{{labels}}} 3\n")), "{prom}");
    assert!(
        prom.contains(&format!("envoy_listener_http_downstream_rq_xx{{envoy_response_code_class=\"5\",{labels}}} 1\n")),
        "{prom}"
    );
}
