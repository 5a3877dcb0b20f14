//! `envoy.filters.network.tcp_proxy` against real TCP echo upstreams: bytes both ways,
//! half-close, `tcp.<stat_prefix>.*` and cluster `upstream_cx_*` stats, the access log line,
//! `weighted_clusters`, `max_connect_attempts`, `idle_timeout`, no cluster, and a connection
//! keeping its chain across a reload.

use std::net::SocketAddr;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::legate::Legate;
use crate::common::{assert_eventually, bounded, dead_addr};

const TCP_PROXY: &str = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

/// A TCP server that answers every read with `greeting` followed by the bytes read, and
/// closes its side when the client closes its own.
async fn echo(greeting: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut out = greeting.to_vec();
                            out.extend_from_slice(&buf[..n]);
                            if s.write_all(&out).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn cluster(name: &str, addr: SocketAddr) -> Value {
    json!({
        "name": name,
        "connect_timeout": "1s",
        "load_assignment": { "cluster_name": name, "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
            "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } } } }] }] },
    })
}

fn boot(proxy: Value, clusters: Vec<Value>) -> String {
    let v = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": {
            "listeners": [{
                "name": "tcp",
                "stat_prefix": "tcp_l",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
                "filter_chains": [{ "filters": [{ "name": "proxy", "typed_config": proxy }] }],
            }],
            "clusters": clusters,
        },
    });
    serde_yaml::to_string(&v).expect("yaml")
}

fn proxy(extra: Value) -> Value {
    let mut p = json!({ "@type": TCP_PROXY, "stat_prefix": "db" });
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
        p.extend(extra);
    }
    p
}

/// Writes `msg`, half-closes, and reads until the proxy closes the connection.
async fn exchange(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    bounded("exchange", async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(msg).await.expect("write");
        s.shutdown().await.expect("half-close");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        out
    })
    .await
}

#[tokio::test]
async fn relays_both_ways_counts_and_logs() {
    let upstream = echo(b"").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("tcp.log");
    let logs = json!([{ "name": "file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": log.to_str().expect("utf-8") } }]);
    let legate =
        Legate::start(boot(proxy(json!({"cluster": "echo", "access_log": logs})), vec![cluster("echo", upstream)]))
            .await;
    let addr = legate.listener("tcp");
    // The upstream still answers after the client's FIN, and its FIN comes back.
    assert_eq!(exchange(addr, b"hello").await, b"hello");
    assert_eventually!(legate.stat("tcp.db.downstream_cx_tx_bytes_total").await == 5, "tx counted");
    let s = legate.stats().await;
    for (name, n) in [
        ("tcp.db.downstream_cx_total", 1),
        ("tcp.db.downstream_cx_rx_bytes_total", 5),
        ("tcp.db.downstream_cx_no_route", 0),
        ("tcp.db.idle_timeout", 0),
        ("tcp.db.upstream_flush_total", 0),
        ("cluster.echo.upstream_cx_total", 1),
        ("cluster.echo.upstream_cx_rx_bytes_total", 5),
        ("cluster.echo.upstream_cx_tx_bytes_total", 5),
        ("listener.tcp_l.downstream_cx_total", 1),
    ] {
        assert_eq!(s.get(name).copied(), Some(n), "{name}");
    }
    assert_eventually!(legate.stat("cluster.echo.upstream_cx_destroy").await == 1, "upstream closed");
    let prom = legate.admin_get("/stats/prometheus").await.text();
    assert!(prom.contains("envoy_tcp_downstream_cx_total{envoy_tcp_prefix=\"db\"} 1\n"), "{prom}");
    // Envoy's default format, its HTTP fields `-`.
    let want = "] \"- - -\" 0 - 5 5 ";
    assert_eventually!(std::fs::read_to_string(&log).is_ok_and(|l| l.contains(want)), "log line");
    let line = std::fs::read_to_string(&log).expect("log");
    assert!(line.ends_with(&format!(" - \"-\" \"-\" \"-\" \"-\" \"{upstream}\"\n")), "{line}");
}

#[tokio::test]
async fn no_cluster_and_failed_connects_close_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("tcp.log");
    let logs = json!([{ "name": "file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": log.to_str().expect("utf-8"), "log_format": { "text_format": "%RESPONSE_FLAGS% %PROTOCOL%\n" } } }]);
    let legate = Legate::start(boot(proxy(json!({"cluster": "nowhere", "access_log": logs})), vec![])).await;
    assert_eq!(exchange(legate.listener("tcp"), b"x").await, b"");
    assert_eventually!(legate.stat("tcp.db.downstream_cx_no_route").await == 1, "no route");
    assert_eventually!(std::fs::read_to_string(&log).is_ok_and(|l| l == "NC -\n"), "NC logged");

    let legate = Legate::start(boot(
        proxy(json!({"cluster": "dead", "max_connect_attempts": 3})),
        vec![cluster("dead", dead_addr())],
    ))
    .await;
    assert_eq!(exchange(legate.listener("tcp"), b"x").await, b"");
    assert_eventually!(legate.stat("cluster.dead.upstream_cx_connect_attempts_exceeded").await == 1, "exceeded");
    assert_eq!(legate.stat("cluster.dead.upstream_cx_connect_fail").await, 3);
    assert_eq!(legate.stat("cluster.dead.upstream_cx_total").await, 3);
}

#[tokio::test]
async fn weighted_clusters_share_connections() {
    let (a, b) = (echo(b"a:").await, echo(b"b:").await);
    let weighted = json!({"weighted_clusters": {"clusters": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}});
    let legate = Legate::start(boot(proxy(weighted), vec![cluster("a", a), cluster("b", b)])).await;
    let mut seen = std::collections::HashSet::new();
    // Even odds each time: 40 connections all to one cluster is a 1 in 2^39 chance.
    for _ in 0..40 {
        seen.insert(exchange(legate.listener("tcp"), b"x").await);
    }
    let want: std::collections::HashSet<Vec<u8>> = [b"a:x".to_vec(), b"b:x".to_vec()].into();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn idle_timeout_closes_a_quiet_connection() {
    let upstream = echo(b"").await;
    let legate =
        Legate::start(boot(proxy(json!({"cluster": "echo", "idle_timeout": "0.3s"})), vec![cluster("echo", upstream)]))
            .await;
    let mut s = TcpStream::connect(legate.listener("tcp")).await.expect("connect");
    s.write_all(b"ping").await.expect("write");
    let mut got = [0u8; 4];
    bounded("echo", s.read_exact(&mut got)).await.expect("echoed");
    let mut rest = Vec::new();
    let n = bounded("closed by the idle timeout", s.read_to_end(&mut rest)).await;
    assert!(matches!(n, Ok(0)), "{n:?}");
    assert_eventually!(legate.stat("tcp.db.idle_timeout").await == 1, "idle_timeout counted");
}

#[tokio::test]
async fn a_connection_keeps_its_chain_across_a_reload() {
    let upstream = echo(b"").await;
    let config = |prefix: &str| {
        boot(json!({"@type": TCP_PROXY, "stat_prefix": prefix, "cluster": "echo"}), vec![cluster("echo", upstream)])
    };
    let legate = Legate::start(config("old")).await;
    let addr = legate.listener("tcp");
    let mut open = TcpStream::connect(addr).await.expect("connect");
    open.write_all(b"1").await.expect("write");
    let mut got = [0u8; 1];
    bounded("echo", open.read_exact(&mut got)).await.expect("echoed");
    let tmp = legate.config_path().with_extension("tmp");
    std::fs::write(&tmp, config("new")).expect("write");
    std::fs::rename(&tmp, legate.config_path()).expect("rename");
    assert_eventually!(
        exchange(addr, b"n").await == b"n" && legate.stat("tcp.new.downstream_cx_total").await == 1,
        "new connections get the new chain"
    );
    // The open connection still relays, counted on the chain that accepted it.
    open.write_all(b"23").await.expect("write");
    let mut got = [0u8; 2];
    bounded("echo after the reload", open.read_exact(&mut got)).await.expect("echoed");
    assert_eq!(&got, b"23");
    assert_eq!(legate.stat("tcp.new.downstream_cx_rx_bytes_total").await, 1, "not counted on the new chain");
}

/// As Envoy: a connection on a chain a reload replaced keeps relaying for the drain time,
/// then is closed.
#[tokio::test]
async fn a_connection_on_a_replaced_chain_relays_until_the_drain_time_ends() {
    let upstream = echo(b"").await;
    let config = |prefix: &str| {
        boot(json!({"@type": TCP_PROXY, "stat_prefix": prefix, "cluster": "echo"}), vec![cluster("echo", upstream)])
    };
    let legate = crate::common::legate::config(config("old")).arg("--drain-time-s").arg("2").spawn().await;
    let addr = legate.listener("tcp");
    let mut open = TcpStream::connect(addr).await.expect("connect");
    open.write_all(b"1").await.expect("write");
    let mut got = [0u8; 1];
    bounded("echo", open.read_exact(&mut got)).await.expect("echoed");
    let tmp = legate.config_path().with_extension("tmp");
    std::fs::write(&tmp, config("new")).expect("write");
    let written = std::time::Instant::now();
    std::fs::rename(&tmp, legate.config_path()).expect("rename");
    assert_eventually!(exchange(addr, b"n").await == b"n", "new connections get the new chain");
    open.write_all(b"2").await.expect("write");
    bounded("echo while draining", open.read_exact(&mut got)).await.expect("echoed");
    assert_eq!(&got, b"2");
    let mut rest = Vec::new();
    let n = bounded("the end of the drain", open.read_to_end(&mut rest)).await;
    assert!(n.is_ok() && rest.is_empty(), "{n:?} {rest:?}");
    assert!(written.elapsed() >= std::time::Duration::from_millis(1900), "cut at {:?}", written.elapsed());
}

/// Envoy 1.40 keeps `tcp.<stat_prefix>.*` across a reload that keeps the prefix, and drops
/// them (back at 0 if the prefix returns) once no chain uses it.
#[tokio::test]
async fn tcp_stats_persist_while_their_prefix_is_used_and_go_with_it() {
    let upstream = echo(b"").await;
    let config = |prefix: &str, idle: &str| {
        let p = json!({"@type": TCP_PROXY, "stat_prefix": prefix, "cluster": "echo", "idle_timeout": idle});
        boot(p, vec![cluster("echo", upstream)])
    };
    let legate = crate::common::legate::config(config("db", "10s")).arg("--drain-time-s").arg("1").spawn().await;
    let addr = legate.listener("tcp");
    assert_eq!(exchange(addr, b"a").await, b"a");
    let reload = |text: String| {
        let tmp = legate.config_path().with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, legate.config_path()).expect("rename");
    };
    reload(config("db", "20s"));
    assert_eventually!(legate.stat("listener_manager.listener_modified").await == 1, "reloaded");
    assert_eq!(exchange(addr, b"b").await, b"b");
    assert_eq!(legate.stat("tcp.db.downstream_cx_total").await, 2, "kept across the chain's change");
    reload(config("other", "20s"));
    assert_eventually!(
        legate.stat("tcp.other.downstream_cx_total").await == 0
            && legate.stats().await.contains_key("tcp.other.downstream_cx_total"),
        "the new prefix"
    );
    assert_eventually!(!legate.stats().await.contains_key("tcp.db.downstream_cx_total"), "gone with its last chain");
}
