//! The rest of the admin API: the home page, /memory, /runtime, /certs,
//! /hot_restart_version, /logging, /reset_counters, /drain_listeners, and which methods each
//! path accepts.

use crate::admin::start;
use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, route_config, static_cluster, to_cluster, vhost};
use crate::common::dead_addr;
use crate::common::legate::{self, Legate};
use crate::common::upstream::{self, Upstream};
use serde_json::json;

const POST_ONLY: &[&str] = &[
    "/drain_listeners",
    "/healthcheck/fail",
    "/healthcheck/ok",
    "/logging",
    "/quitquitquit",
    "/reopen_logs",
    "/reset_counters",
];

const GET_PATHS: &[&str] = &[
    "/",
    "/certs",
    "/clusters",
    "/config_dump",
    "/help",
    "/hot_restart_version",
    "/listeners",
    "/memory",
    "/ready",
    "/runtime",
    "/server_info",
    "/stats",
    "/stats/prometheus",
];

/// legate in front of a cluster whose only endpoint refuses connections.
async fn start_dead() -> Legate {
    Legate::start(
        bootstrap()
            .routes(json!([to_cluster(json!({"prefix": "/"}), "dead")]))
            .cluster(static_cluster("dead", &[dead_addr()]))
            .yaml(),
    )
    .await
}

#[tokio::test]
async fn post_only_paths_refuse_get() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    for path in POST_ONLY {
        let r = legate.admin_get(path).await;
        assert_eq!(r.status, 405, "GET {path}");
        assert_eq!(r.text(), "Method GET not allowed, POST required.", "GET {path}");
    }
    // None of them did anything.
    assert_eq!(legate.admin_get("/ready").await.status, 200);
}

#[tokio::test]
async fn get_paths_answer_and_help_lists_them_all() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    for path in GET_PATHS {
        assert_eq!(legate.admin_get(path).await.status, 200, "GET {path}");
    }
    let help = legate.admin_get("/help").await.text();
    for path in GET_PATHS {
        assert!(help.lines().any(|l| l.starts_with(&format!("  {path}: "))), "{path} in:\n{help}");
    }
    for path in POST_ONLY {
        assert!(help.lines().any(|l| l.starts_with(&format!("  {path} (POST): "))), "{path} in:\n{help}");
    }
}

#[tokio::test]
async fn unknown_path_is_404_with_help() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = legate.admin_get("/nope").await;
    assert_eq!(r.status, 404);
    assert!(r.text().starts_with("invalid path. admin commands are:\n"), "{}", r.text());
    assert_eq!(legate.admin_post("/nope").await.status, 404);
}

#[tokio::test]
async fn home_page_links_every_endpoint() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = legate.admin_get("/").await;
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
    let page = r.text();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    for path in GET_PATHS.iter().chain(POST_ONLY).filter(|p| **p != "/") {
        let action = path.trim_start_matches('/');
        let linked = page.contains(&format!("href='{action}'")) || page.contains(&format!("action='{action}'"));
        assert!(linked, "{path} not on the home page:\n{page}");
    }
    assert!(page.contains("<form action='logging' method='post'"), "{page}");
}

#[tokio::test]
async fn memory_runtime_certs_and_hot_restart_version() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;

    let r = legate.admin_get("/memory").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let memory = r.json();
    let keys =
        ["allocated", "heap_size", "pageheap_unmapped", "pageheap_free", "total_thread_cache", "total_physical_bytes"];
    for key in keys {
        let v = memory[key].as_str().unwrap_or_else(|| panic!("{key} is not a string: {memory}"));
        assert!(v.parse::<u64>().is_ok(), "{key}: {v:?}");
    }
    assert_eq!(memory.as_object().map(|o| o.len()), Some(keys.len()), "{memory}");
    let rss: u64 = memory["total_physical_bytes"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(rss > 0, "{memory}");

    let r = legate.admin_get("/runtime").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"entries": {}, "layers": []}));

    let r = legate.admin_get("/certs").await;
    assert_eq!(r.json(), json!({"certificates": []}));

    let r = legate.admin_get("/hot_restart_version").await;
    assert_eq!(r.text(), "disabled");
}

#[tokio::test]
async fn logging_lists_and_rejects_unknown_names_and_levels() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let r = legate.admin_post("/logging").await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.starts_with("active loggers:\n"), "{text}");
    for logger in ["admin", "config", "http", "main", "router", "upstream"] {
        assert!(text.contains(&format!("\n  {logger}: info\n")), "{logger} in:\n{text}");
    }

    for (query, error) in [
        ("level=bogus", "unknown logger level"),
        ("nope=debug", "unknown logger name"),
        ("paths=admin:debug,nope:info", "unknown logger name"),
        ("a=b&c=d", "invalid number of parameters"),
    ] {
        let r = legate.admin_post(&format!("/logging?{query}")).await;
        assert_eq!(r.status, 400, "{query}");
        assert!(r.text().starts_with(&format!("error: {error}\n\nusage: ")), "{query}: {}", r.text());
    }
    // The refused requests changed nothing.
    assert!(legate.admin_post("/logging").await.text().contains("\n  admin: info\n"));

    let text = legate.admin_post("/logging?paths=admin:debug,upstream:warning").await.text();
    assert!(text.contains("\n  admin: debug\n") && text.contains("\n  upstream: warning\n"), "{text}");
    assert!(text.contains("\n  http: info\n"), "{text}");
    let text = legate.admin_post("/logging?http=trace").await.text();
    assert!(text.contains("\n  http: trace\n"), "{text}");
}

#[tokio::test]
async fn logging_level_debug_takes_effect_live() {
    let legate = start_dead().await;
    let c = Client::h1();
    const LINE: &str = "upstream attempt failed";

    assert_eq!(c.get(&legate.url("main", "/")).await.status, 503);
    assert!(!legate.output().contains(LINE), "{}", legate.output());
    assert!(!legate.output().contains(" DEBUG "), "{}", legate.output());

    let r = legate.admin_post("/logging?level=debug").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("\n  http: debug\n"), "{}", r.text());
    assert_eq!(c.get(&legate.url("main", "/")).await.status, 503);
    assert_eventually!(legate.output().contains(LINE), "a debug line {LINE:?} in:\n{}", legate.output());

    // Back to info: a new failure adds no debug line.
    legate.admin_post("/logging?level=info").await;
    let before = legate.output().matches(LINE).count();
    assert_eq!(c.get(&legate.url("main", "/")).await.status, 503);
    assert_eq!(c.get(&legate.url("main", "/")).await.status, 503);
    assert_eq!(legate.output().matches(LINE).count(), before, "{}", legate.output());
}

#[tokio::test]
async fn logging_paths_change_only_the_named_loggers() {
    let legate = start_dead().await;
    let c = Client::h1();
    legate.admin_post("/logging?paths=admin:debug").await;
    legate.admin_get("/ready").await;
    assert_eq!(c.get(&legate.url("main", "/")).await.status, 503);
    assert_eventually!(legate.output().contains("admin request"), "an admin debug line in:\n{}", legate.output());
    assert!(!legate.output().contains("upstream attempt failed"), "{}", legate.output());
}

#[tokio::test]
async fn reset_counters_zeroes_counters_after_traffic() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let c = Client::h1();
    for _ in 0..3 {
        assert_eq!(c.get(&legate.url("main", "/")).await.status, 200);
    }
    const TOTAL: &str = "http.ingress_http.downstream_rq_total";
    assert_eventually!(legate.stat(TOTAL).await == 3, "{TOTAL} reaches 3");
    let live_before = legate.stats().await.get("server.live").copied();

    let r = legate.admin_post("/reset_counters").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK\n");
    let stats = legate.stats().await;
    assert_eq!(stats.get(TOTAL), Some(&0), "{TOTAL} after the reset");
    assert_eq!(stats.get("cluster.service1.upstream_rq_total"), Some(&0));
    // Gauges keep their values.
    assert_eq!(stats.get("server.live").copied(), live_before);
    assert_eq!(live_before, Some(1));

    // Counting goes on from zero.
    assert_eq!(c.get(&legate.url("main", "/")).await.status, 200);
    assert_eventually!(legate.stat(TOTAL).await == 1, "{TOTAL} counts again after the reset");
}

/// Two listeners, one `traffic_direction: INBOUND`, both routing to `up`.
async fn start_in_and_out(up: &Upstream, args: &[&str]) -> Legate {
    let mut b = bootstrap()
        .listener(
            "outbound",
            route_config(json!([vhost("all", &["*"], json!([to_cluster(json!({"prefix": "/"}), "service1")]))])),
        )
        .listener(
            "inbound",
            route_config(json!([vhost("all", &["*"], json!([to_cluster(json!({"prefix": "/"}), "service1")]))])),
        )
        .cluster(static_cluster("service1", &[up.addr()]))
        .value();
    b["static_resources"]["listeners"][1]["traffic_direction"] = json!("INBOUND");
    let mut builder = legate::config(b.to_string());
    for a in args {
        builder = builder.arg(a);
    }
    builder.spawn().await
}

async fn refuses(addr: std::net::SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn drain_listeners_is_post_only_and_leaves_ready_live() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    assert_eq!(legate.admin_get("/drain_listeners").await.status, 405);
    let r = legate.admin_post("/drain_listeners?graceful&inboundonly").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK\n");
    // As in Envoy 1.40: draining listeners does not make the server unready.
    let r = legate.admin_get("/ready").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "LIVE\n");
}

#[tokio::test]
async fn drain_listeners_stops_accepting_and_closes_kept_alive_connections() {
    let up = upstream::http1().spawn().await;
    let legate = start_in_and_out(&up, &[]).await;
    let c = Client::h1();
    let before = c.get(&legate.url("outbound", "/")).await;
    assert_eq!((before.status.as_u16(), before.header("connection")), (200, None));
    assert_eq!(legate.admin_post("/drain_listeners").await.status, 200);
    for name in ["outbound", "inbound"] {
        let addr = legate.listener(name);
        assert_eventually!(refuses(addr).await, "listener {name} stops accepting");
    }
    // The connection opened before is still served, and told to close.
    let after = c.get(&legate.url("outbound", "/")).await;
    assert_eq!((after.status.as_u16(), after.header("connection")), (200, Some("close")));
    assert!(legate.stat("http.ingress_http.downstream_cx_drain_close").await >= 1);
}

#[tokio::test]
async fn drain_listeners_inboundonly_keeps_other_listeners() {
    let up = upstream::http1().spawn().await;
    let legate = start_in_and_out(&up, &[]).await;
    assert_eq!(legate.admin_post("/drain_listeners?inboundonly").await.status, 200);
    let inbound = legate.listener("inbound");
    assert_eventually!(refuses(inbound).await, "the INBOUND listener stops accepting");
    // The other one still accepts new connections.
    assert_eq!(Client::h1().get(&legate.url("outbound", "/")).await.status, 200);
}

#[tokio::test]
async fn graceful_drain_stops_accepting_after_the_drain_time() {
    let up = upstream::http1().spawn().await;
    let legate = start_in_and_out(&up, &["--drain-time-s", "1"]).await;
    assert_eq!(legate.admin_post("/drain_listeners?graceful").await.status, 200);
    let addr = legate.listener("outbound");
    assert_eventually!(refuses(addr).await, "accepting ends once the drain time is over");
}

#[tokio::test]
async fn healthcheck_fail_drains_until_ok() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    assert_eq!(legate.admin_post("/healthcheck/fail").await.text(), "OK\n");
    assert_eq!(legate.admin_get("/ready").await.status, 503);
    assert_eq!(legate.admin_get("/server_info").await.json()["state"], "DRAINING");
    legate.admin_post("/healthcheck/ok").await;
    let r = legate.admin_get("/ready").await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "LIVE\n".to_string()));
    assert_eq!(legate.admin_get("/server_info").await.json()["state"], "LIVE");
}

#[tokio::test]
async fn healthcheck_fail_closes_connections_after_their_response_until_ok() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up).await;
    let c = Client::h1();
    assert_eq!(c.get(&legate.url("main", "/")).await.header("connection"), None);
    legate.admin_post("/healthcheck/fail").await;
    // Listeners keep accepting (Envoy's drain-close); responses end the connection.
    let r = c.get(&legate.url("main", "/")).await;
    assert_eq!((r.status.as_u16(), r.header("connection")), (200, Some("close")));
    let fresh = Client::h1().get(&legate.url("main", "/")).await;
    assert_eq!((fresh.status.as_u16(), fresh.header("connection")), (200, Some("close")));
    legate.admin_post("/healthcheck/ok").await;
    let c = Client::h1();
    let r = c.get(&legate.url("main", "/")).await;
    assert_eq!((r.status.as_u16(), r.header("connection")), (200, None));
}

/// `--log-format json`: every line of the process log is one JSON object with the level and
/// the event's fields; `/logging` still changes what is logged.
#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    let yaml = bootstrap()
        .routes(json!([to_cluster(json!({"prefix": "/"}), "dead")]))
        .cluster(static_cluster("dead", &[dead_addr()]))
        .yaml();
    let legate = legate::config(yaml).arg("--log-format").arg("json").spawn().await;
    assert_eventually!(legate.output().contains("all listeners started"), "startup is logged");
    assert_eq!(legate.admin_post("/logging?level=debug").await.status, 200);
    assert_eq!(Client::h1().get(&legate.url("main", "/")).await.status, 503);
    assert_eventually!(legate.output().contains("\"level\":\"DEBUG\""), "debug lines after /logging");
    let out = legate.output();
    for line in out.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{out}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(out.lines().any(|l| l.contains("\"message\":\"all listeners started\"")), "{out}");
}
