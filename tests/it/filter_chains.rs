//! Listeners with several filter chains: `filter_chain_match` on destination port and
//! address, source address, server name (a raw TLS ClientHello read by `tls_inspector`) and
//! HTTP version (`http_inspector`); the default chain; no match; chains across a reload.

use std::net::SocketAddr;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::client::{raw, Client};
use crate::common::config::{direct, hcm, route_config, vhost, HCM_TYPE};
use crate::common::legate::{validate, Legate};
use crate::common::{assert_eventually, bounded, dead_addr};
use crate::reload_io::Conn;

const TLS_INSPECTOR: &str = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
const HTTP_INSPECTOR: &str = "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector";

/// A chain whose connection manager (stat prefix `stat`) answers every request with `body`.
fn chain(matcher: Value, stat: &str, body: &str) -> Value {
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!([direct(json!({"prefix": "/"}), body)]))])));
    h["stat_prefix"] = json!(stat);
    json!({ "filter_chain_match": matcher, "filters": [{ "name": "hcm", "typed_config": h }] })
}

fn listener(port: u16, chains: Vec<Value>, extra: Value) -> Value {
    let mut l = json!({
        "name": "main",
        "stat_prefix": "main",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "filter_chains": chains,
    });
    if let (Some(l), Value::Object(extra)) = (l.as_object_mut(), extra) {
        l.extend(extra);
    }
    l
}

fn boot(l: Value) -> String {
    let v = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": { "listeners": [l] },
    });
    serde_yaml::to_string(&v).expect("yaml")
}

/// `GET /` from source address `from`; the body, or `None` when the connection is closed.
async fn get_from(from: &str, to: SocketAddr) -> Option<String> {
    bounded("request", async {
        let s = TcpSocket::new_v4().expect("socket");
        s.bind(format!("{from}:0").parse().expect("addr")).expect("bind source");
        let mut c = s.connect(to).await.expect("connect");
        let _ = c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    })
    .await
}

#[tokio::test]
async fn destination_port_then_source_prefix_choose_the_chain() {
    let port = dead_addr().port();
    let legate = Legate::start(boot(listener(
        port,
        vec![
            chain(json!({"destination_port": port}), "by_port", "port"),
            chain(
                json!({"destination_port": port, "source_prefix_ranges": [{"address_prefix": "127.0.0.7", "prefix_len": 32}]}),
                "by_source",
                "seven",
            ),
            // No destination port: never considered while a chain names the port.
            chain(json!({}), "catch_all", "all"),
        ],
        json!({}),
    )))
    .await;
    let addr = legate.listener("main");
    assert_eq!(get_from("127.0.0.7", addr).await.as_deref(), Some("seven"));
    assert_eq!(get_from("127.0.0.8", addr).await.as_deref(), Some("port"));
    assert_eq!(legate.stat("http.by_source.downstream_cx_total").await, 1);
    assert_eq!(legate.stat("http.by_port.downstream_cx_total").await, 1);
    assert_eq!(legate.stat("http.catch_all.downstream_cx_total").await, 0);
}

#[tokio::test]
async fn longest_destination_prefix_wins_and_no_match_closes() {
    let legate = Legate::start(boot(listener(
        0,
        vec![
            chain(json!({"prefix_ranges": [{"address_prefix": "127.0.0.0", "prefix_len": 8}]}), "wide", "wide"),
            chain(json!({"prefix_ranges": [{"address_prefix": "127.0.0.1", "prefix_len": 32}]}), "narrow", "narrow"),
            chain(json!({"source_ports": [1]}), "never", "never"),
        ],
        json!({}),
    )))
    .await;
    let addr = legate.listener("main");
    assert_eq!(get_from("127.0.0.1", addr).await.as_deref(), Some("narrow"));

    // Only a chain for another port: the connection is closed and counted, as in Envoy.
    let port = dead_addr().port();
    let legate =
        Legate::start(boot(listener(port, vec![chain(json!({"destination_port": 1}), "a", "a")], json!({})))).await;
    let addr = legate.listener("main");
    assert_eq!(get_from("127.0.0.1", addr).await, None, "closed without a response");
    assert_eventually!(legate.stat("listener.main.no_filter_chain_match").await == 1, "no_filter_chain_match");
    assert_eq!(legate.stat("listener.main.downstream_cx_total").await, 0);
}

#[tokio::test]
async fn default_chain_serves_what_no_chain_matches() {
    let mut l = listener(0, vec![chain(json!({"destination_port": 1}), "a", "a")], json!({}));
    l["default_filter_chain"] = chain(json!(null), "fallback", "default")
        .as_object()
        .map(|o| json!({ "filters": o["filters"] }))
        .unwrap_or_default();
    let legate = Legate::start(boot(l)).await;
    assert_eq!(get_from("127.0.0.1", legate.listener("main")).await.as_deref(), Some("default"));
    assert_eq!(legate.stat("listener.main.no_filter_chain_match").await, 0);
    assert_eq!(legate.stat("http.fallback.downstream_rq_2xx").await, 1);
}

#[tokio::test]
async fn tls_inspector_matches_the_client_hello_server_name() {
    let legate = Legate::start(boot(listener(
        0,
        vec![
            chain(json!({"transport_protocol": "tls", "server_names": ["*.example.com"]}), "tls_wild", "w"),
            chain(json!({"transport_protocol": "tls", "server_names": ["api.example.com"]}), "tls_api", "t"),
            chain(json!({"transport_protocol": "raw_buffer"}), "plain", "plain"),
        ],
        json!({"listener_filters": [{"name": "tls", "typed_config": {"@type": TLS_INSPECTOR}}]}),
    )))
    .await;
    let addr = legate.listener("main");
    // No TLS termination yet: the chosen chain's connection manager gets the TLS bytes (and
    // rejects them); which chain got the connection shows in its stats.
    let send_hello = |sni: &'static str| async move {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let _ = s.write_all(&client_hello(sni, &["h2"])).await;
        let mut out = Vec::new();
        let _ = bounded("hello answered", s.read_to_end(&mut out)).await;
    };
    send_hello("API.example.com").await;
    assert_eventually!(legate.stat("http.tls_api.downstream_cx_total").await == 1, "exact name");
    send_hello("www.example.com").await;
    assert_eventually!(legate.stat("http.tls_wild.downstream_cx_total").await == 1, "wildcard");
    send_hello("example.org").await;
    assert_eventually!(legate.stat("listener.main.no_filter_chain_match").await == 1, "no chain for example.org");
    let r = raw(addr, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("plaintext answered");
    assert_eq!(String::from_utf8_lossy(&r.body), "plain");
    assert_eq!(legate.stat("http.tls_api.downstream_cx_total").await, 1);
}

#[tokio::test]
async fn http_inspector_matches_h2c_and_http11() {
    let legate = Legate::start(boot(listener(
        0,
        vec![
            chain(json!({"application_protocols": ["h2c"]}), "h2", "h2c"),
            chain(json!({"application_protocols": ["http/1.1"]}), "h1", "h1"),
        ],
        json!({"listener_filters": [
            {"name": "tls", "typed_config": {"@type": TLS_INSPECTOR}},
            {"name": "http", "typed_config": {"@type": HTTP_INSPECTOR}},
        ]}),
    )))
    .await;
    let url = legate.url("main", "/");
    assert_eq!(Client::h1().get(&url).await.text(), "h1");
    assert_eq!(Client::h2c().get(&url).await.text(), "h2c");
    // HTTP/1.0 is neither: closed.
    let r = raw(legate.listener("main"), b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(r.is_none(), "{r:?}");
    assert_eventually!(legate.stat("listener.main.no_filter_chain_match").await == 1, "HTTP/1.0 unmatched");
}

#[tokio::test]
async fn listener_filter_timeout_closes_or_continues() {
    let filters = json!([{"name": "tls", "typed_config": {"@type": TLS_INSPECTOR}}]);
    let slow = |cont: bool| {
        boot(listener(
            0,
            vec![chain(json!({}), "s", "served")],
            json!({"listener_filters": filters, "listener_filters_timeout": "0.2s", "continue_on_listener_filters_timeout": cont}),
        ))
    };
    for cont in [false, true] {
        let legate = Legate::start(slow(cont)).await;
        let mut s = TcpStream::connect(legate.listener("main")).await.expect("connect");
        // Two bytes of a TLS record: the inspector waits for more until its timeout.
        s.write_all(&[22, 3]).await.expect("write");
        assert_eventually!(legate.stat("listener.main.downstream_pre_cx_timeout").await == 1, "timeout counted");
        if cont {
            assert_eventually!(legate.stat("http.s.downstream_cx_total").await == 1, "served after the timeout");
        } else {
            let mut rest = Vec::new();
            let n = bounded("closed", s.read_to_end(&mut rest)).await;
            assert!(n.is_ok() && rest.is_empty(), "closed without an answer: {n:?} {rest:?}");
            assert_eq!(legate.stat("http.s.downstream_cx_total").await, 0);
        }
    }
}

#[tokio::test]
async fn a_reload_keeps_open_connections_on_their_chain() {
    let config = |body: &str| boot(listener(0, vec![chain(json!({}), "main_http", body)], json!({})));
    let legate = Legate::start(config("old")).await;
    let addr = legate.listener("main");
    let mut open = Conn::open(addr).await;
    let r = open.get("/").await.expect("first request");
    assert_eq!(String::from_utf8_lossy(&r.body), "old");
    let tmp = legate.config_path().with_extension("tmp");
    std::fs::write(&tmp, config("new")).expect("write");
    std::fs::rename(&tmp, legate.config_path()).expect("rename");
    assert_eventually!(
        raw(addr, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.is_some_and(|r| r.body == b"new"),
        "new connections get the new chain"
    );
    // The open connection stays on the chain that accepted it (as in Envoy 1.40), and drains.
    let r = open.get("/").await.expect("request on the open connection");
    assert_eq!(String::from_utf8_lossy(&r.body), "old");
}

#[tokio::test]
async fn an_empty_chain_closes_its_connections() {
    let mut l = listener(0, vec![], json!({}));
    l["filter_chains"] = json!([{ "filters": [] }]);
    let legate = Legate::start(boot(l)).await;
    assert_eq!(get_from("127.0.0.1", legate.listener("main")).await, None);
    assert_eventually!(legate.stat("listener.main.network_extension_config_missing").await == 1, "counted");
}

#[tokio::test]
async fn chain_errors_name_their_path() {
    let dup = boot(listener(
        1,
        vec![chain(json!({"destination_port": 80}), "a", "a"), chain(json!({"destination_port": 80}), "b", "b")],
        json!({}),
    ));
    let (_f, run) = validate("dup.yaml", &dup).await;
    assert_eq!(run.code(), Some(1), "{}", run.output);
    assert!(
        run.output.contains(
            "static_resources.listeners[0].filter_chains[1]: filter chain '' has the same matching rules defined as ''. duplicate matcher is: {\"destination_port\":80}"
        ),
        "{}",
        run.output
    );
    let mut tcp = listener(1, vec![], json!({}));
    tcp["filter_chains"] = json!([{ "filters": [{ "name": "tcp", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "t", "cluster": "c",
        "max_downstream_connection_duration": "5s" } }] }]);
    let (_f, run) = validate("tcp.yaml", &boot(tcp)).await;
    assert_eq!(run.code(), Some(1), "{}", run.output);
    let want = "filter_chains[0].filters[0].typed_config.max_downstream_connection_duration: not implemented by legate";
    assert!(run.output.contains(want), "{}", run.output);
    let mut orig = listener(1, vec![chain(json!({}), "a", "a")], json!({}));
    orig["listener_filters"] = json!([{ "name": "envoy.filters.listener.tls_inspector", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst" } }]);
    let (_f, run) = validate("orig.yaml", &boot(orig)).await;
    assert_eq!(run.code(), Some(1), "{}", run.output);
    assert!(
        run.output.contains("listener_filters[0].typed_config.@type: unsupported listener filter"),
        "{}",
        run.output
    );
    // A connection manager is found by its @type, whatever its name.
    let mut named = listener(1, vec![chain(json!({}), "a", "a")], json!({}));
    named["filter_chains"][0]["filters"][0]["name"] = json!("anything");
    assert_eq!(named["filter_chains"][0]["filters"][0]["typed_config"]["@type"], json!(HCM_TYPE));
    let (_f, run) = validate("named.yaml", &boot(named)).await;
    assert_eq!(run.code(), Some(0), "{}", run.output);
}

/// A TLS 1.2-style ClientHello record with SNI and ALPN.
/// A ClientHello record; an empty `sni` or `alpn` leaves its extension out.
pub(crate) fn client_hello(sni: &str, alpn: &[&str]) -> Vec<u8> {
    fn vec16(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }
    let mut exts = Vec::new();
    if !sni.is_empty() {
        let mut entry = vec![0u8];
        entry.extend(vec16(sni.as_bytes()));
        exts.extend([0u8, 0]);
        exts.extend(vec16(&vec16(&entry)));
    }
    let mut list = Vec::new();
    for p in alpn {
        list.push(p.len() as u8);
        list.extend_from_slice(p.as_bytes());
    }
    if !alpn.is_empty() {
        exts.extend([0u8, 16]);
        exts.extend(vec16(&vec16(&list)));
    }
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.push(0);
    body.extend(vec16(&[0x13, 0x01, 0xc0, 0x2f]));
    body.extend([1, 0]);
    body.extend(vec16(&exts));
    let mut hs = vec![1u8];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![22u8, 3, 1];
    rec.extend(vec16(&hs));
    rec
}
