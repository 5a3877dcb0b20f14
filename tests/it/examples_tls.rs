//! Envoy's TLS sandboxes on loopback, from their configs copied under
//! `tests/fixtures/examples/` (addresses, ports and certificate paths adapted; certificates
//! made in the test): `tls-sni` (the SNI picks the chain and its certificate, the client side
//! originates TLS by SNI, domain3 passed through by `tcp_proxy`), `double-proxy` (mTLS
//! between two legates, each checking the other's SAN) and `websocket`'s wss and wss
//! passthrough (`ws` and `ws-route` are in `upgrades.rs`).

use std::path::Path;

use serde_json::json;

use crate::common::client::Client;
use crate::common::config::{hcm, route_config, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::tls::{connect, get_h1, Alg, Ca, ClientOpts};
use crate::common::upstream;
use crate::upstream_tls::{boot, chain, inline, listener, socket, DOWNSTREAM};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// A TLS server standing in for a compose `service-https`: answers `body` over TLS with
/// `pair`'s certificate.
async fn https_service(pair: &crate::common::tls::Pair, body: &str) -> Legate {
    let tls = socket(DOWNSTREAM, json!({ "common_tls_context": { "tls_certificates": [inline(pair)] } }));
    Legate::start(boot(vec![listener("front", vec![chain(json!({}), "svc", body, Some(tls))])], vec![])).await
}

#[tokio::test]
async fn the_tls_sni_sandbox_picks_chains_by_sni_and_the_client_originates_by_sni() {
    let ca = Ca::new("tls-sni ca");
    let certs = tempfile::tempdir().expect("tempdir");
    for d in ["domain1", "domain2"] {
        let pair = ca.server(&[&format!("{d}.example.com")], Alg::Ecdsa);
        write(certs.path(), &format!("{d}.crt.pem"), &pair.cert);
        write(certs.path(), &format!("{d}.key.pem"), &pair.key);
    }
    let http0 = upstream::http1().name("service-http0").spawn().await;
    let http1 = upstream::http1().name("service-http1").spawn().await;
    let https = https_service(&ca.server(&["domain3.example.com"], Alg::Rsa), "service-https").await;
    let ports = crate::common::free_ports(2);
    let fill = |text: &str| {
        text.replace("${PROXY_PORT}", &ports[0].to_string())
            .replace("${CLIENT_PORT}", &ports[1].to_string())
            .replace("${HTTP0_PORT}", &http0.port().to_string())
            .replace("${HTTP1_PORT}", &http1.port().to_string())
            .replace("${HTTPS_PORT}", &https.listener("front").port().to_string())
            .replace("${CERTS}", &certs.path().display().to_string())
    };
    let proxy = Legate::start(fill(include_str!("../fixtures/examples/tls-sni/envoy.yaml"))).await;
    let client = Legate::start(fill(include_str!("../fixtures/examples/tls-sni/envoy-client.yaml"))).await;

    // The SNI picks the chain, so the certificate: each verifies for its own name only.
    let proxy_addr = std::net::SocketAddr::from(([127, 0, 0, 1], ports[0]));
    for d in ["domain1", "domain2"] {
        let opts = ClientOpts { sni: Some(format!("{d}.example.com")), ..Default::default() };
        let mut s = connect(proxy_addr, &ca.cert, &opts).await.unwrap_or_else(|e| panic!("{d}: {e}"));
        let (status, _) = get_h1(&mut s, "x", "/").await.unwrap_or_else(|e| panic!("{d}: {e}"));
        assert!(status.contains(" 200 "), "{d}: {status}");
    }
    assert_eq!((http0.requests(), http1.requests()), (1, 1));

    // Through the client: TLS originated with each route's SNI.
    let c = Client::h1();
    let base = format!("http://127.0.0.1:{}", ports[1]);
    assert_eq!(c.get(&format!("{base}/domain1")).await.status.as_u16(), 200);
    assert_eq!(c.get(&format!("{base}/domain2")).await.status.as_u16(), 200);
    assert_eq!((http0.requests(), http1.requests()), (2, 2), "domain1 to service-http0, domain2 to service-http1");
    // domain3: passed through to service-https, TLS 1.3 end to end.
    let r = c.get(&format!("{base}/domain3")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "service-https"));

    let stats = client.stats().await;
    for d in ["domain1", "domain2", "domain3"] {
        assert_eq!(stats.get(&format!("cluster.proxy-client-{d}.ssl.handshake")), Some(&1), "{d}");
    }
    assert_eq!(stats.get("cluster.proxy-client-domain3.ssl.versions.TLSv1.3"), Some(&1));
    let pstats = proxy.stats().await;
    assert_eq!(pstats.get("tcp.ingress_domain3.downstream_cx_total"), Some(&1));
    assert_eq!(pstats.get("cluster.proxy-domain3.upstream_cx_total"), Some(&1));
}

#[tokio::test]
async fn the_double_proxy_sandbox_runs_mtls_between_two_legates() {
    let ca = Ca::new("double-proxy ca");
    let certs = tempfile::tempdir().expect("tempdir");
    let server = ca.server(&["proxy-postgres-backend.example.com"], Alg::Ecdsa);
    let client = ca.client_with_dns("frontend", None, &["proxy-postgres-frontend.example.com"]);
    write(certs.path(), "servercert.pem", &server.cert);
    write(certs.path(), "serverkey.pem", &server.key);
    write(certs.path(), "clientcert.pem", &client.cert);
    write(certs.path(), "clientkey.pem", &client.key);
    write(certs.path(), "cacert.pem", &ca.cert);
    // The database: bytes relayed both ways, so an HTTP service stands in for it.
    let postgres = upstream::http1().name("postgres").spawn().await;
    let ports = crate::common::free_ports(2);
    let fill = |text: &str| {
        text.replace("${FRONTEND_PORT}", &ports[0].to_string())
            .replace("${BACKEND_PORT}", &ports[1].to_string())
            .replace("${POSTGRES_PORT}", &postgres.port().to_string())
            .replace("${CERTS}", &certs.path().display().to_string())
    };
    let backend = Legate::start(fill(include_str!("../fixtures/examples/double-proxy/envoy-backend.yaml"))).await;
    let frontend = Legate::start(fill(include_str!("../fixtures/examples/double-proxy/envoy-frontend.yaml"))).await;

    let r = Client::h1().get(&format!("http://127.0.0.1:{}/db", ports[0])).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(postgres.requests(), 1);
    let fstats = frontend.stats().await;
    assert_eq!(fstats.get("cluster.postgres_cluster.ssl.handshake"), Some(&1));
    let bstats = backend.stats().await;
    let handshakes: u64 = bstats
        .iter()
        .filter(|(k, _)| k.starts_with("listener.") && k.ends_with(".ssl.handshake"))
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(handshakes, 1);

    // The backend refuses a client without the frontend's SAN, or without a certificate.
    let backend_addr = std::net::SocketAddr::from(([127, 0, 0, 1], ports[1]));
    let intruder = ca.client_with_dns("intruder", None, &["elsewhere.example.com"]);
    let sni = Some("proxy-postgres-backend.example.com".to_string());
    for cert in [Some(intruder), None] {
        let opts = ClientOpts { sni: sni.clone(), client_cert: cert, ..Default::default() };
        let refused = match connect(backend_addr, &ca.cert, &opts).await {
            Err(_) => true,
            Ok(mut s) => get_h1(&mut s, "x", "/").await.is_err(),
        };
        assert!(refused);
    }
    let bstats = backend.stats().await;
    let sum = |suffix: &str| -> u64 {
        bstats.iter().filter(|(k, _)| k.starts_with("listener.") && k.ends_with(suffix)).map(|(_, v)| *v).sum()
    };
    assert_eq!(sum(".ssl.fail_verify_san"), 1);
    assert_eq!(sum(".ssl.fail_verify_no_cert"), 1);
    assert_eq!(postgres.requests(), 1);
}

/// A stand-in for the compose `service-wss`: wss terminated with `pair`, the WebSocket
/// proxied to `ws` (an echo server).
async fn wss_service(pair: &crate::common::tls::Pair, ws: &crate::upgrades::WsUpstream) -> Legate {
    let tls = socket(DOWNSTREAM, json!({ "common_tls_context": { "tls_certificates": [inline(pair)] } }));
    let routes = json!([to_cluster(json!({"prefix": "/"}), "ws")]);
    let mut h = hcm(route_config(json!([vhost("v", &["*"], routes)])));
    h["stat_prefix"] = json!("svc");
    h["upgrade_configs"] = json!([{ "upgrade_type": "websocket" }]);
    let c = json!({ "filters": [{ "name": "hcm", "typed_config": h }], "transport_socket": tls });
    Legate::start(boot(vec![listener("front", vec![c])], vec![static_cluster("ws", &[ws.addr])])).await
}

/// A WebSocket over TLS to `addr` (checked against `ca` for `name`): the handshake's status
/// line, and the echo of one text frame when it was a 101.
async fn wss_echo(addr: std::net::SocketAddr, ca: &Ca, name: &str, text: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let opts = ClientOpts { sni: Some(name.to_string()), ..Default::default() };
    let mut s = connect(addr, &ca.cert, &opts).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    let req = "GET /ws HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    s.stream.write_all(req.as_bytes()).await.expect("handshake");
    // Byte by byte up to the head's end, so nothing after it is read here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        let mut b = [0u8; 1];
        let n = crate::common::bounded("the handshake's answer", s.stream.read(&mut b)).await.expect("read");
        assert!(n == 1, "closed before the answer's end: {}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.lines().next().unwrap_or_default().to_string();
    if !status.contains(" 101 ") {
        return (status, String::new());
    }
    // A masked text frame (a zero mask leaves the payload as it is).
    let mut frame = vec![0x81, 0x80 | text.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(text.as_bytes());
    s.stream.write_all(&frame).await.expect("frame");
    let mut hdr = [0u8; 2];
    crate::common::bounded("the echo", s.stream.read_exact(&mut hdr)).await.expect("echo header");
    let mut payload = vec![0u8; usize::from(hdr[1] & 0x7f)];
    crate::common::bounded("the echo", s.stream.read_exact(&mut payload)).await.expect("echo payload");
    (status, String::from_utf8_lossy(&payload).into_owned())
}

#[tokio::test]
async fn the_websocket_sandbox_proxies_wss_and_passes_wss_through() {
    let ca = Ca::new("websocket ca");
    let certs = tempfile::tempdir().expect("tempdir");
    let front = ca.server(&["front-envoy"], Alg::Rsa);
    write(certs.path(), "front-proxy-crt.pem", &front.cert);
    write(certs.path(), "front-proxy-key.pem", &front.key);
    let ws = crate::upgrades::WsUpstream::spawn().await;
    let service = wss_service(&ca.server(&["service-wss"], Alg::Ecdsa), &ws).await;
    let service_port = service.listener("front").port();
    for (name, serves_as) in [("envoy-wss.yaml", "front-envoy"), ("envoy-wss-passthrough.yaml", "service-wss")] {
        let port = crate::common::free_ports(1)[0];
        let text = match name {
            "envoy-wss.yaml" => include_str!("../fixtures/examples/websocket/envoy-wss.yaml"),
            _ => include_str!("../fixtures/examples/websocket/envoy-wss-passthrough.yaml"),
        };
        let yaml = text
            .replace("${LISTEN_PORT}", &port.to_string())
            .replace("${SERVICE_WSS_PORT}", &service_port.to_string())
            .replace("${CERTS}", &certs.path().display().to_string());
        let legate = Legate::start(yaml).await;
        // wss terminates at the proxy (its certificate) or passes through (service-wss's).
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let (status, echo) = wss_echo(addr, &ca, serves_as, "hi").await;
        assert!(status.contains(" 101 "), "{name}: {status}");
        assert_eq!(echo, "echo:hi", "{name}");
        let stats = legate.stats().await;
        if name == "envoy-wss.yaml" {
            assert_eq!(stats.get("cluster.service_wss.ssl.handshake"), Some(&1), "{name}: wss to the service");
            assert_eq!(stats.get("http.ingress_wss_to_wss.downstream_cx_upgrades_total"), Some(&1));
        } else {
            assert_eq!(stats.get("tcp.wss_passthrough.downstream_cx_total"), Some(&1));
        }
    }
    assert_eq!(ws.heads().len(), 2);
}
