//! Envoy's `front-proxy` sandbox and the plain-WebSocket half of its `websocket` sandbox on
//! loopback, from their configs copied under `tests/fixtures/examples/` (addresses, ports and
//! certificate paths adapted; certificates made in the test). `front-proxy`: a front proxy
//! on HTTP and HTTPS routing `/service/1` and `/service/2` to two service proxies, each in
//! front of its service. `websocket`: `ws` (the connection manager upgrades) and `ws-route`
//! (only the `/ws` route upgrades; `/` answers directly). The `wss` and wss passthrough
//! configs of the same sandbox are in `examples_tls.rs`.

use std::net::SocketAddr;
use std::path::Path;

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::legate::Legate;
use crate::common::tls::{connect, get_h1, Alg, Ca, ClientOpts};
use crate::common::upstream;
use crate::upgrades::{WsClient, WsUpstream};

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn fill(text: &str, vars: &[(&str, String)]) -> String {
    vars.iter().fold(text.to_string(), |t, (k, v)| t.replace(&format!("${{{k}}}"), v))
}

#[tokio::test]
async fn the_websocket_sandbox_upgrades_on_the_manager_or_on_one_route() {
    let ws = WsUpstream::spawn().await;
    for name in ["envoy-ws.yaml", "envoy-ws-route.yaml"] {
        let port = crate::common::free_ports(1)[0];
        let text = match name {
            "envoy-ws.yaml" => include_str!("../fixtures/examples/websocket/envoy-ws.yaml"),
            _ => include_str!("../fixtures/examples/websocket/envoy-ws-route.yaml"),
        };
        let vars = [("LISTEN_PORT", port.to_string()), ("SERVICE_WS_PORT", ws.addr.port().to_string())];
        let legate = Legate::start(fill(text, &vars)).await;
        let mut client = WsClient::connect(local(port), "/ws").await;
        assert_eq!(client.status(), "101", "{name}");
        assert_eq!(client.echo("hello").await, "echo:hello", "{name}");
        client.close().await;
        let stats = legate.stats().await;
        assert_eq!(stats.get("http.ingress_ws_to_ws.downstream_cx_upgrades_total"), Some(&1), "{name}: {stats:?}");
        if name == "envoy-ws-route.yaml" {
            // Everything else answers directly.
            let r = Client::h1().get(&format!("http://127.0.0.1:{port}/")).await;
            assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "NotWebSocket\n"));
        }
    }
    assert_eq!(ws.heads().len(), 2);
}

/// The echo upstream's name in a raw response body (`"instance":"<name>"`).
fn instance(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["instance"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn the_front_proxy_sandbox_routes_http_and_https_to_two_services() {
    let ca = Ca::new("front-proxy ca");
    let certs = tempfile::tempdir().expect("tempdir");
    let pair = ca.server(&["front-envoy"], Alg::Rsa);
    let write = |dir: &Path, name: &str, text: &str| std::fs::write(dir.join(name), text).expect(name);
    write(certs.path(), "front-proxy-crt.pem", &pair.cert);
    write(certs.path(), "front-proxy-key.pem", &pair.key);
    let service1 = upstream::http1().name("service1").spawn().await;
    let service2 = upstream::http1().name("service2").spawn().await;
    let ports = crate::common::free_ports(4);
    let (http, https, envoy1, envoy2) = (ports[0], ports[1], ports[2], ports[3]);
    let mut services = Vec::new();
    for (text, port, service) in [
        (include_str!("../fixtures/examples/front-proxy/service-envoy.yaml"), envoy1, &service1),
        (include_str!("../fixtures/examples/front-proxy/service-envoy-2.yaml"), envoy2, &service2),
    ] {
        let vars = [("LISTEN_PORT", port.to_string()), ("SERVICE_PORT", service.port().to_string())];
        services.push(Legate::start(fill(text, &vars)).await);
    }
    let vars = [
        ("HTTP_PORT", http.to_string()),
        ("HTTPS_PORT", https.to_string()),
        ("SERVICE1_ENVOY_PORT", envoy1.to_string()),
        ("SERVICE2_ENVOY_PORT", envoy2.to_string()),
        ("CERTS", certs.path().display().to_string()),
    ];
    let front = Legate::start(fill(include_str!("../fixtures/examples/front-proxy/envoy.yaml"), &vars)).await;

    // HTTPS (the sandbox's `curl -k https://localhost:8443/service/1`), checked against the CA.
    for n in ["1", "2"] {
        let opts = ClientOpts { sni: Some("front-envoy".into()), alpn: vec!["http/1.1"], ..Default::default() };
        let mut s = connect(local(https), &ca.cert, &opts).await.unwrap_or_else(|e| panic!("service {n}: {e}"));
        let (status, body) = get_h1(&mut s, "localhost", &format!("/service/{n}")).await.expect("response");
        assert!(status.contains(" 200 "), "service {n}: {status}");
        assert_eq!(instance(&body), format!("service{n}"));
    }
    // Plain HTTP. (The example sets no `alpn_protocols`: no h2 over TLS, as in Envoy.)
    for n in ["1", "2"] {
        let r = Client::h1().get(&format!("http://127.0.0.1:{http}/service/{n}")).await;
        assert_eq!(r.instance(), format!("service{n}"));
    }
    let opts = ClientOpts { sni: Some("front-envoy".into()), alpn: vec!["h2", "http/1.1"], ..Default::default() };
    let s = connect(local(https), &ca.cert, &opts).await.expect("handshake");
    assert_eq!(s.alpn, None, "no ALPN configured");
    assert_eq!((service1.requests(), service2.requests()), (2, 2));
    // The server counts the last handshake when the client's Finished arrives.
    let handshakes = format!("listener.127.0.0.1_{https}.ssl.handshake");
    assert_eventually!(front.stat(&handshakes).await == 3, "three handshakes counted");
    let stats = front.stats().await;
    assert_eq!(stats.get("cluster.service1-envoy.upstream_rq_total"), Some(&2));
    assert_eq!(stats.get("cluster.service2-envoy.upstream_rq_total"), Some(&2));
    for (s, n) in services.iter().zip(["1", "2"]) {
        assert_eq!(s.stat(&format!("http.service_envoy_{n}.downstream_rq_total")).await, 2);
    }
}
