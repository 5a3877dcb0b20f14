//! WebSocket upgrades through legate, against a real WebSocket upstream (a tokio server doing
//! the RFC 6455 handshake and framing by hand) and a raw-socket client: `upgrade_configs` on
//! the connection manager and per route, messages both ways, close propagation, the stream
//! idle timeout, the access-log line and stats Envoy 1.40 gives, and a reload while a
//! WebSocket is open.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::access_log::file_log;
use crate::common::config::{bootstrap, hcm, route_config, static_cluster, vhost};
use crate::common::legate::{validate, Legate};
use crate::common::{assert_eventually, bounded};

/// A WebSocket echo server: answers the handshake with 101, each text or binary frame with
/// `echo:<payload>`, a close frame with a close frame and the end of the connection. A
/// request for `/no101` gets a plain 404. It keeps every request head it read.
pub(crate) struct WsUpstream {
    pub(crate) addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    /// Connections whose client (legate) closed them.
    closed_by_peer: Arc<Mutex<u32>>,
}

impl WsUpstream {
    pub(crate) async fn spawn() -> WsUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let closed_by_peer = Arc::new(Mutex::new(0));
        let (h, c) = (Arc::clone(&heads), Arc::clone(&closed_by_peer));
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve_ws(s, Arc::clone(&h), Arc::clone(&c)));
            }
        });
        WsUpstream { addr, heads, closed_by_peer }
    }

    pub(crate) fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn closed_by_peer(&self) -> u32 {
        self.closed_by_peer.lock().map(|c| *c).unwrap_or(0)
    }
}

async fn serve_ws(mut s: TcpStream, heads: Arc<Mutex<Vec<String>>>, closed_by_peer: Arc<Mutex<u32>>) {
    let Some((head, mut buf)) = read_head(&mut s).await else { return };
    if let Ok(mut h) = heads.lock() {
        h.push(head.clone());
    }
    if head.starts_with("GET /no101") {
        let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot here!").await;
        return;
    }
    let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    if s.write_all(reply.as_bytes()).await.is_err() {
        return;
    }
    loop {
        let Some((op, payload)) = read_frame(&mut s, &mut buf).await else {
            if let Ok(mut c) = closed_by_peer.lock() {
                *c += 1;
            }
            return;
        };
        if op == 8 {
            let _ = s.write_all(&frame(8, &payload, false)).await;
            return;
        }
        let mut out = b"echo:".to_vec();
        out.extend_from_slice(&payload);
        if s.write_all(&frame(op, &out, false)).await.is_err() {
            return;
        }
    }
}

/// Reads up to the end of an HTTP head; returns it and the bytes after it.
async fn read_head(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Bounded by the head size.
    while buf.len() < 64 * 1024 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    None
}

/// One WebSocket frame (short payloads only); `masked` as a client sends it.
pub(crate) fn frame(op: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    assert!(payload.len() < 126, "short frames only");
    let mut out = vec![0x80 | op, payload.len() as u8 | if masked { 0x80 } else { 0 }];
    if masked {
        let mask = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Reads one frame, `buf` holding bytes already read; `None` at the end of the stream.
async fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    let mut chunk = [0u8; 4096];
    // Bounded by the peer: each turn reads bytes or ends.
    loop {
        if buf.len() >= 2 {
            let len = usize::from(buf[1] & 0x7f);
            let masked = buf[1] & 0x80 != 0;
            let header = 2 + if masked { 4 } else { 0 };
            if len < 126 && buf.len() >= header + len {
                let op = buf[0] & 0x0f;
                let mut payload = buf[header..header + len].to_vec();
                if masked {
                    let mask = [buf[2], buf[3], buf[4], buf[5]];
                    payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= mask[i % 4]);
                }
                buf.drain(..header + len);
                return Some((op, payload));
            }
        }
        let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A WebSocket client on a raw socket.
pub(crate) struct WsClient {
    s: TcpStream,
    buf: Vec<u8>,
    head: String,
}

impl WsClient {
    /// Sends the handshake for `path` and reads the answer's head.
    pub(crate) async fn connect(addr: SocketAddr, path: &str) -> WsClient {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("handshake");
        let (head, buf) = bounded("the handshake's answer", read_head(&mut s)).await.expect("an answer");
        WsClient { s, buf, head }
    }

    pub(crate) fn status(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// Sends a text frame and reads the echo.
    pub(crate) async fn echo(&mut self, text: &str) -> String {
        self.s.write_all(&frame(1, text.as_bytes(), true)).await.expect("send");
        let (op, payload) = bounded("the echo", read_frame(&mut self.s, &mut self.buf)).await.expect("a frame");
        assert_eq!(op, 1);
        String::from_utf8_lossy(&payload).into_owned()
    }

    /// Sends a close frame: the close frame comes back, then the end of the stream.
    pub(crate) async fn close(mut self) {
        self.s.write_all(&frame(8, &[0x03, 0xe8], true)).await.expect("close");
        let (op, _) = bounded("the close frame", read_frame(&mut self.s, &mut self.buf)).await.expect("a frame");
        assert_eq!(op, 8);
        let mut rest = Vec::new();
        let n = bounded("the end of the stream", self.s.read_to_end(&mut rest)).await;
        assert!(n.is_ok() && rest.is_empty(), "closed after the close frame: {n:?} {rest:?}");
    }
}

/// Listener `main` (stat prefix `ingress_http`) with the connection manager's
/// `upgrade_configs` as given and these routes, all to cluster `ws`, logging to `log`.
pub(crate) fn config(up: &WsUpstream, log: &Path, hcm_upgrades: Value, routes: Value, extra: Value) -> String {
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    manager["upgrade_configs"] = hcm_upgrades;
    manager["access_log"] = json!([file_log(log, None)]);
    if let (Some(m), Some(extra)) = (manager.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    bootstrap().listener_hcm("main", manager).cluster(static_cluster("ws", &[up.addr])).yaml()
}

pub(crate) fn ws_route(prefix: &str, upgrades: Option<Value>) -> Value {
    let mut action = json!({ "cluster": "ws" });
    if let Some(u) = upgrades {
        action["upgrade_configs"] = u;
    }
    json!({ "match": { "prefix": prefix }, "route": action })
}

pub(crate) fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

#[tokio::test]
async fn a_websocket_echoes_both_ways_and_the_upstream_close_reaches_the_client() {
    let up = WsUpstream::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let routes = json!([ws_route("/", None)]);
    let legate = Legate::start(config(&up, &log, json!([{ "upgrade_type": "websocket" }]), routes, json!({}))).await;
    let mut ws = WsClient::connect(legate.listener("main"), "/chat").await;
    assert_eq!(ws.status(), "101", "{}", ws.head);
    assert_eq!(ws.header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(ws.header("connection").as_deref(), Some("Upgrade"));
    assert!(ws.header("sec-websocket-accept").is_some());
    // Envoy sets neither on a 101: the request never ended.
    assert_eq!(ws.header("x-envoy-upstream-service-time"), None, "{}", ws.head);
    assert_eq!(ws.header("content-length"), None, "{}", ws.head);
    let head = up.heads().pop().unwrap_or_default().to_ascii_lowercase();
    assert!(head.contains("upgrade: websocket\r\n") && head.contains("connection: upgrade\r\n"), "{head}");
    assert!(head.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n"), "{head}");

    assert_eq!(ws.echo("hello").await, "echo:hello");
    assert_eq!(ws.echo("world").await, "echo:world");
    assert_eq!(legate.stat("http.ingress_http.downstream_cx_upgrades_active").await, 1);
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_active").await, 1);
    assert_eq!(legate.stat("cluster.ws.upstream_cx_active").await, 1, "the upstream connection is the tunnel's");
    assert!(log_lines(&log).is_empty(), "logged when the tunnel closes, not before");
    ws.close().await;

    // Envoy 1.40 logs `"GET /chat HTTP/1.1" 101 UC 30 28 <ms> - ...`: the bytes of the tunnel
    // (two masked 5-byte frames and a close frame in; two 12-byte echoes and a close frame
    // out), its whole duration, and who closed first.
    assert_eventually!(log_lines(&log).len() == 1, "one line: {:?}", log_lines(&log));
    let line = log_lines(&log).remove(0);
    let re = regex::Regex::new(
        r#""GET /chat HTTP/1\.1" 101 UC 30 28 \d+ - "-" "-" "[0-9a-f-]+" "example" "127\.0\.0\.1:\d+"$"#,
    )
    .expect("regex");
    assert!(re.is_match(&line), "{line}");
    assert_eventually!(legate.stat("http.ingress_http.downstream_cx_upgrades_active").await == 0, "closed");
    assert_eventually!(legate.stat("cluster.ws.upstream_cx_active").await == 0, "upstream closed");
    assert_eventually!(legate.stat("http.ingress_http.downstream_cx_active").await == 0, "downstream closed");
    let stats = legate.stats().await;
    for (name, value) in [
        ("http.ingress_http.downstream_cx_upgrades_total", 1),
        ("http.ingress_http.downstream_rq_1xx", 1),
        ("http.ingress_http.downstream_rq_active", 0),
        ("cluster.ws.upstream_rq_101", 1),
        ("cluster.ws.upstream_cx_destroy", 1),
    ] {
        assert_eq!(stats.get(name).copied(), Some(value), "{name}");
    }
}

#[tokio::test]
async fn the_client_closing_closes_the_upstream_and_logs_dc() {
    let up = WsUpstream::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let routes = json!([ws_route("/", Some(json!([{ "upgrade_type": "WebSocket" }])))]);
    // The route alone enables it (the connection manager lists none), as in Envoy.
    let legate = Legate::start(config(&up, &log, json!([]), routes, json!({}))).await;
    let mut ws = WsClient::connect(legate.listener("main"), "/").await;
    assert_eq!(ws.status(), "101", "{}", ws.head);
    assert_eq!(ws.echo("once").await, "echo:once");
    drop(ws);
    assert_eventually!(up.closed_by_peer() == 1, "the upstream saw its connection end");
    assert_eventually!(log_lines(&log).len() == 1, "logged");
    assert!(log_lines(&log)[0].contains("\" 101 DC 10 11 "), "{:?}", log_lines(&log));
}

#[tokio::test]
async fn upgrades_not_enabled_get_envoys_403_and_a_non_101_answer_passes() {
    let up = WsUpstream::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let routes = json!([
        ws_route("/off", Some(json!([{ "upgrade_type": "websocket", "enabled": false }]))),
        ws_route("/other", Some(json!([{ "upgrade_type": "h2-ish" }]))),
        ws_route("/", None),
    ]);
    let legate = Legate::start(config(&up, &log, json!([{ "upgrade_type": "websocket" }]), routes, json!({}))).await;
    let addr = legate.listener("main");
    for path in ["/off"] {
        let ws = WsClient::connect(addr, path).await;
        assert_eq!(ws.status(), "403", "{}", ws.head);
        assert_eq!(ws.header("connection").as_deref(), Some("close"));
        assert_eq!(ws.header("content-length").as_deref(), Some("0"));
    }
    // A route entry for another type leaves websocket to the connection manager.
    assert_eq!(WsClient::connect(addr, "/other").await.status(), "101");
    // The upstream may refuse: its answer passes, and the connection closes after it.
    let ws = WsClient::connect(addr, "/no101").await;
    assert_eq!(ws.status(), "404", "{}", ws.head);
    assert_eq!(ws.header("connection").as_deref(), Some("close"));
    assert_eq!(ws.header("x-envoy-upstream-service-time"), None);
    assert_eq!(up.heads().len(), 2, "the refused upgrade never reached the upstream");
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_ws_on_non_ws_route").await, 1);
    assert_eventually!(log_lines(&log).iter().any(|l| l.contains("\"GET /off HTTP/1.1\" 403 - 0 0 ")), "logged");

    // Without any upgrade_configs, Envoy refuses every upgrade.
    let plain = Legate::start(config(&up, &log, json!([]), json!([ws_route("/", None)]), json!({}))).await;
    assert_eq!(WsClient::connect(plain.listener("main"), "/").await.status(), "403");
}

#[tokio::test]
async fn the_stream_idle_timeout_ends_an_idle_websocket_and_the_route_timeout_does_not() {
    let up = WsUpstream::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let routes = json!([{ "match": { "prefix": "/" }, "route": { "cluster": "ws", "timeout": "0.3s" } }]);
    let extra = json!({ "stream_idle_timeout": "1s" });
    let legate = Legate::start(config(&up, &log, json!([{ "upgrade_type": "websocket" }]), routes, extra)).await;
    let mut ws = WsClient::connect(legate.listener("main"), "/").await;
    assert_eq!(ws.status(), "101", "{}", ws.head);
    // Past the route timeout, with traffic: the tunnel stays.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(ws.echo("tick").await, "echo:tick");
    }
    // Then idle: cut after the stream idle timeout.
    let mut rest = Vec::new();
    let n = bounded("the idle cut", ws.s.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "no bytes, then the end: {n:?} {rest:?}");
    assert_eventually!(log_lines(&log).len() == 1, "logged");
    assert!(log_lines(&log)[0].contains("\" 101 SI 40 44 "), "{:?}", log_lines(&log));
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_idle_timeout").await, 1);
    assert_eq!(legate.stat("cluster.ws.upstream_rq_timeout").await, 0);
}

#[tokio::test]
async fn an_open_websocket_survives_a_reload() {
    let up = WsUpstream::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let upgrades = json!([{ "upgrade_type": "websocket" }]);
    let legate = Legate::start(config(&up, &log, upgrades.clone(), json!([ws_route("/", None)]), json!({}))).await;
    let addr = legate.listener("main");
    let mut ws = WsClient::connect(addr, "/").await;
    assert_eq!(ws.echo("before").await, "echo:before");
    let routes = json!([
        { "match": { "prefix": "/new" }, "direct_response": { "status": 200, "body": { "inline_string": "new" } } },
        ws_route("/", None),
    ]);
    let tmp = legate.config_path().with_extension("tmp");
    std::fs::write(&tmp, config(&up, &log, upgrades, routes, json!({}))).expect("write");
    std::fs::rename(&tmp, legate.config_path()).expect("rename");
    assert_eventually!(
        crate::common::client::raw(addr, b"GET /new HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .is_some_and(|r| r.body == b"new"),
        "the reload is in"
    );
    assert_eq!(ws.echo("after").await, "echo:after");
    ws.close().await;
}

/// Envoy keeps a drained chain's connections, tunnels included, until the drain time ends,
/// then closes them.
#[tokio::test]
async fn a_websocket_lives_through_its_chains_drain_and_ends_with_it() {
    let up = WsUpstream::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let upgrades = json!([{ "upgrade_type": "websocket" }]);
    let text = config(&up, &log, upgrades.clone(), json!([ws_route("/", None)]), json!({}));
    let legate = crate::common::legate::config(text).arg("--drain-time-s").arg("2").spawn().await;
    let addr = legate.listener("main");
    let mut ws = WsClient::connect(addr, "/").await;
    assert_eq!(ws.echo("before").await, "echo:before");
    let routes = json!([
        { "match": { "prefix": "/new" }, "direct_response": { "status": 200, "body": { "inline_string": "new" } } },
        ws_route("/", None),
    ]);
    let tmp = legate.config_path().with_extension("tmp");
    std::fs::write(&tmp, config(&up, &log, upgrades, routes, json!({}))).expect("write");
    let written = std::time::Instant::now();
    std::fs::rename(&tmp, legate.config_path()).expect("rename");
    assert_eventually!(
        crate::common::client::raw(addr, b"GET /new HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .is_some_and(|r| r.body == b"new"),
        "the reload is in"
    );
    assert_eq!(ws.echo("draining").await, "echo:draining", "not cut when the drain begins");
    let mut rest = Vec::new();
    let n = bounded("the end of the drain", ws.s.read_to_end(&mut rest)).await;
    assert!(n.is_ok() && rest.is_empty(), "{n:?} {rest:?}");
    assert!(written.elapsed() >= Duration::from_millis(1900), "cut at {:?}", written.elapsed());
    assert_eventually!(
        log_lines(&log).iter().any(|l| l.contains("\"GET / HTTP/1.1\" 101 DC ")),
        "logged when cut: {:?}",
        log_lines(&log)
    );
    assert_eventually!(legate.stat("http.ingress_http.downstream_cx_upgrades_active").await == 0, "closed");
}

#[tokio::test]
async fn connect_is_refused_by_name() {
    let up = WsUpstream::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    let route = json!([ws_route("/", Some(json!([{ "upgrade_type": "websocket", "connect_config": {} }])))]);
    let text = config(&up, &log, json!([{ "upgrade_type": "CONNECT" }]), route, json!({}));
    let (_file, run) = validate("connect.yaml", &text).await;
    assert_eq!(run.code(), Some(1), "{}", run.output);
    for expected in [
        "typed_config.upgrade_configs[0].upgrade_type: not supported: legate does not proxy CONNECT",
        "routes[0].route.upgrade_configs[0].connect_config: not implemented by legate",
    ] {
        assert!(run.output.contains(expected), "{expected}:\n{}", run.output);
    }
}

/// `websocket/envoy-ws.yaml` and `envoy-ws-route.yaml` from `../shared/envoy-examples`, on
/// loopback: the listener on 127.0.0.1 port 0, `service-ws` our WebSocket upstream.
#[tokio::test]
#[ignore = "reads ../shared ($LEGATE_SHARED): run by .ci/run"]
async fn shared_websocket_examples_proxy_a_websocket_on_loopback() {
    let shared = std::env::var("LEGATE_SHARED").unwrap_or_else(|_| "../shared".to_string());
    let up = WsUpstream::spawn().await;
    for name in ["envoy-ws.yaml", "envoy-ws-route.yaml"] {
        let path = Path::new(&shared).join("envoy-examples/websocket").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut v: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
        let loopback = |port: u16| {
            serde_yaml::to_value(json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } }))
                .expect("value")
        };
        v["admin"] = serde_yaml::to_value(json!({ "address": { "socket_address": {
            "address": "127.0.0.1", "port_value": 0 } } }))
        .expect("value");
        let listener = &mut v["static_resources"]["listeners"][0];
        listener["name"] = "main".into();
        listener["address"] = loopback(0);
        let cluster = &mut v["static_resources"]["clusters"][0];
        cluster["type"] = "STATIC".into();
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] = loopback(up.addr.port());
        let legate = Legate::start(serde_yaml::to_string(&v).expect("yaml")).await;
        let mut ws = WsClient::connect(legate.listener("main"), "/ws").await;
        assert_eq!(ws.status(), "101", "{name}: {}", ws.head);
        assert_eq!(ws.echo("hi").await, "echo:hi", "{name}");
        ws.close().await;
        if name == "envoy-ws-route.yaml" {
            // Only `/ws` enables the upgrade there; `/` is a direct response.
            assert_eq!(WsClient::connect(legate.listener("main"), "/").await.status(), "403");
        }
    }
}
