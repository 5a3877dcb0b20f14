//! WebSocket over HTTP/2 (RFC 8441 extended CONNECT) where `http2_protocol_options.allow_connect`
//! enables it, with the h2 crate as the client and the HTTP/1.1 WebSocket upstream of
//! [`crate::upgrades`]: as Envoy 1.40 does, the CONNECT with `:protocol websocket` reaches the
//! upstream as `GET` with `Upgrade: websocket` and `Connection: upgrade`, its 101 reaches the
//! client as a 200 (logged and counted as the 101), and the stream carries the frames.

use std::net::SocketAddr;

use bytes::Bytes;
use serde_json::json;
use tokio::net::TcpStream;

use crate::common::legate::Legate;
use crate::common::{assert_eventually, bounded};
use crate::upgrades::{config, frame, log_lines, ws_route, WsUpstream};

/// An h2 connection to `addr`, once the server's SETTINGS arrived.
async fn h2_client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, conn) = bounded("h2 handshake", h2::client::handshake(tcp)).await.expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let client = bounded("h2 ready", client.ready()).await.expect("ready");
    // SETTINGS come right after the preface; `ready` does not wait for them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    while !client.is_extended_connect_protocol_enabled() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    client
}

fn extended_connect(addr: SocketAddr, path: &str) -> http::Request<()> {
    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{addr}{path}"))
        .header("sec-websocket-version", "13")
        .body(())
        .expect("request");
    req.extensions_mut().insert(h2::ext::Protocol::from_static("websocket"));
    req
}

/// Reads DATA until one whole short unmasked frame is in; returns its payload.
async fn read_frame(body: &mut h2::RecvStream) -> Vec<u8> {
    let mut buf = Vec::new();
    // Bounded by the frame's length (short frames only) and the bound on each read.
    while buf.len() < 2 || buf.len() < 2 + usize::from(buf[1] & 0x7f) {
        let chunk = bounded("a DATA frame", body.data()).await.expect("stream open").expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        buf.extend_from_slice(&chunk);
    }
    buf[2..].to_vec()
}

#[tokio::test]
async fn a_websocket_over_h2_reaches_an_http1_upstream_as_an_upgrade() {
    let up = WsUpstream::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let h2 = json!({ "http2_protocol_options": { "allow_connect": true } });
    let text = config(&up, &log, json!([{ "upgrade_type": "websocket" }]), json!([ws_route("/", None)]), h2);
    let legate = Legate::start(text).await;
    let addr = legate.listener("main");
    let mut client = h2_client(addr).await;
    assert!(client.is_extended_connect_protocol_enabled(), "SETTINGS_ENABLE_CONNECT_PROTOCOL sent");

    let (resp, mut send) = client.send_request(extended_connect(addr, "/chat"), false).expect("send");
    let resp = bounded("the answer", resp).await.expect("answer");
    assert_eq!(resp.status(), 200, "{resp:?}");
    assert!(resp.headers().get("upgrade").is_none() && resp.headers().get("connection").is_none(), "{resp:?}");
    assert!(resp.headers().get("sec-websocket-accept").is_some(), "{resp:?}");
    let head = up.heads().pop().unwrap_or_default().to_ascii_lowercase();
    assert!(head.starts_with("get /chat http/1.1\r\n"), "{head}");
    assert!(head.contains("upgrade: websocket\r\n") && head.contains("connection: upgrade\r\n"), "{head}");

    let mut body = resp.into_body();
    for text in ["hello", "world"] {
        send.send_data(Bytes::from(frame(1, text.as_bytes(), true)), false).expect("send data");
        assert_eq!(read_frame(&mut body).await, format!("echo:{text}").as_bytes());
    }
    assert_eq!(legate.stat("http.ingress_http.downstream_cx_upgrades_active").await, 1);
    // A close frame: the upstream answers it and closes; the client's stream ends.
    send.send_data(Bytes::from(frame(8, b"", true)), false).expect("send close");
    assert_eq!(read_frame(&mut body).await, b"");
    // The END_STREAM may come on an empty DATA frame.
    let mut end = bounded("the end of the stream", body.data()).await;
    if end.as_ref().is_some_and(|d| d.as_ref().is_ok_and(|d| d.is_empty())) {
        end = bounded("the end of the stream", body.data()).await;
    }
    assert!(end.is_none(), "the upstream's close ends the stream: {end:?}");

    assert_eventually!(log_lines(&log).len() == 1, "one line: {:?}", log_lines(&log));
    let line = log_lines(&log).remove(0);
    // Envoy 1.40: `"GET /chat HTTP/2" 101 UC 28 26 ...` (the 101 before its codec's 200).
    assert!(line.contains("\"GET /chat HTTP/2\" 101 UC 28 26 "), "{line}");
    let stats = legate.stats().await;
    for (name, value) in [
        ("http.ingress_http.downstream_cx_upgrades_total", 1),
        ("http.ingress_http.downstream_cx_upgrades_active", 0),
        ("http.ingress_http.downstream_rq_1xx", 1),
        ("http.ingress_http.downstream_rq_2xx", 0),
        ("cluster.ws.upstream_rq_101", 1),
    ] {
        assert_eq!(stats.get(name).copied(), Some(value), "{name}");
    }
}

#[tokio::test]
async fn without_allow_connect_or_an_upgrade_config_there_is_no_websocket_over_h2() {
    let up = WsUpstream::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let plain = config(&up, &log, json!([{ "upgrade_type": "websocket" }]), json!([ws_route("/", None)]), json!({}));
    let legate = Legate::start(plain).await;
    let client = h2_client(legate.listener("main")).await;
    assert!(!client.is_extended_connect_protocol_enabled(), "not offered without allow_connect");
    drop(legate);

    // allow_connect without `websocket` in upgrade_configs: Envoy's 403, nothing upstream.
    let h2 = json!({ "http2_protocol_options": { "allow_connect": true } });
    let legate = Legate::start(config(&up, &log, json!([]), json!([ws_route("/", None)]), h2)).await;
    let addr = legate.listener("main");
    let mut client = h2_client(addr).await;
    let (resp, _send) = client.send_request(extended_connect(addr, "/chat"), false).expect("send");
    let resp = bounded("the answer", resp).await.expect("answer");
    assert_eq!(resp.status(), 403);
    assert!(up.heads().is_empty(), "{:?}", up.heads());
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_ws_on_non_ws_route").await, 1);
}
