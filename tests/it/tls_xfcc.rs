//! `x-forwarded-client-cert`: each `forward_client_cert_details` mode on its own TLS
//! listener, spoken to with and without a client certificate by a client that also sends
//! the header; the element legate adds is compared with one built here the way Envoy 1.40
//! builds it (checked against Envoy with `curl --cert`).

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::config::{hcm, route_config, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::tls::{connect, Ca, ClientOpts, Pair};
use crate::common::{bounded, upstream};

const TLS_CONTEXT: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";

fn listener(name: &str, port_ip: &str, server: &Pair, ca: &Ca, xfcc: Value) -> Value {
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!([to_cluster(json!({"prefix": "/"}), "up")]))])));
    h["stat_prefix"] = json!(name);
    if let (Some(h), Value::Object(x)) = (h.as_object_mut(), xfcc) {
        h.extend(x);
    }
    json!({
        "name": name,
        "address": { "socket_address": { "address": port_ip, "port_value": 0 } },
        "filter_chains": [{
            "filters": [{ "name": "hcm", "typed_config": h }],
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": TLS_CONTEXT,
                "common_tls_context": {
                    "tls_certificates": [{
                        "certificate_chain": { "inline_string": server.cert },
                        "private_key": { "inline_string": server.key },
                    }],
                    "validation_context": { "trusted_ca": { "inline_string": ca.cert } },
                },
            } },
        }],
    })
}

/// The `x-forwarded-client-cert` the upstream saw for a request carrying `By=old`.
async fn seen(addr: std::net::SocketAddr, ca: &Ca, o: &ClientOpts) -> Option<String> {
    let mut s = connect(addr, &ca.cert, o).await.expect("handshake");
    let req = "GET / HTTP/1.1\r\nhost: localhost\r\nx-forwarded-client-cert: By=old\r\nconnection: close\r\n\r\n";
    s.stream.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    bounded("response", s.stream.read_to_end(&mut out)).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let echo: Value = serde_json::from_str(body).expect("echo json");
    echo["headers"]["x-forwarded-client-cert"].as_str().map(str::to_string)
}

/// Envoy's `urlEncode` of a PEM as `PEM_write_bio_X509` writes it.
fn encoded_pem(pem: &str) -> String {
    let pem = pem.replace("\r\n", "\n");
    pem.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn each_forward_client_cert_details_mode_sets_the_header_as_envoy_does() {
    let ca = Ca::new("test ca");
    let server = ca.server_with_uris(&["localhost"], &["spiffe://legate/server", "spiffe://legate/server2"]);
    let client = ca.client_with_dns("good client", Some("spiffe://legate/good"), &["a.example", "B.example"]);
    let plain_client = ca.client("plain client", None);
    let up = upstream::http1().spawn().await;
    let all = json!({ "subject": true, "cert": true, "chain": true, "dns": true, "uri": true });
    let modes: [(&str, Value); 5] = [
        ("sanitize", json!({})),
        ("forward_only", json!({ "forward_client_cert_details": "FORWARD_ONLY" })),
        ("append", json!({ "forward_client_cert_details": "APPEND_FORWARD", "set_current_client_cert_details": all })),
        (
            "set",
            json!({ "forward_client_cert_details": "SANITIZE_SET",
                    "set_current_client_cert_details": { "subject": true, "uri": true, "dns": true } }),
        ),
        ("always", json!({ "forward_client_cert_details": "ALWAYS_FORWARD_ONLY" })),
    ];
    let listeners: Vec<Value> = modes.iter().map(|(n, x)| listener(n, "127.0.0.1", &server, &ca, x.clone())).collect();
    let boot = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": { "listeners": listeners, "clusters": [static_cluster("up", &[up.addr()])] },
    });
    let legate = Legate::start(serde_yaml::to_string(&boot).expect("yaml")).await;

    let with_chain =
        ClientOpts { client_cert: Some(client.clone()), client_chain: vec![ca.der()], ..Default::default() };
    let plain = ClientOpts { client_cert: Some(plain_client.clone()), ..Default::default() };
    let none = ClientOpts::default();
    let by = "By=spiffe://legate/server;By=spiffe://legate/server2";

    // SANITIZE (the default): never forwarded.
    assert_eq!(seen(legate.listener("sanitize"), &ca, &with_chain).await, None);
    assert_eq!(seen(legate.listener("sanitize"), &ca, &none).await, None);
    // FORWARD_ONLY: the client's header, on mTLS connections only.
    assert_eq!(seen(legate.listener("forward_only"), &ca, &with_chain).await.as_deref(), Some("By=old"));
    assert_eq!(seen(legate.listener("forward_only"), &ca, &none).await, None);
    // APPEND_FORWARD with every detail.
    let element = format!(
        "{by};Hash={};Cert=\"{}\";Chain=\"{}{}\";Subject=\"O=Legate Tests,CN=good client\";URI=spiffe://legate/good;DNS=a.example;DNS=B.example",
        sha256_hex(&client.der),
        encoded_pem(&client.cert),
        encoded_pem(&client.cert),
        encoded_pem(&ca.cert),
    );
    assert_eq!(
        seen(legate.listener("append"), &ca, &with_chain).await.as_deref(),
        Some(format!("By=old,{element}").as_str())
    );
    assert_eq!(seen(legate.listener("append"), &ca, &none).await, None);
    // SANITIZE_SET: this hop's element only; `URI=` stays when the certificate has none, `DNS`
    // does not.
    let element =
        format!("{by};Hash={};Subject=\"O=Legate Tests,CN=plain client\";URI=", sha256_hex(&plain_client.der));
    assert_eq!(seen(legate.listener("set"), &ca, &plain).await.as_deref(), Some(element.as_str()));
    assert_eq!(seen(legate.listener("set"), &ca, &none).await, None);
    // ALWAYS_FORWARD_ONLY: the client's header whatever the connection.
    assert_eq!(seen(legate.listener("always"), &ca, &with_chain).await.as_deref(), Some("By=old"));
    assert_eq!(seen(legate.listener("always"), &ca, &none).await.as_deref(), Some("By=old"));
}
