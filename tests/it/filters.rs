//! The HTTP filter chain: filters run in their order before the router, per-route
//! configuration at each level of the route configuration (most specific wins, `disabled`
//! at each level and on the filter), and the `fault` and `buffer` filters as Envoy 1.40
//! answers (status, body, stats, access-log flags).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::access_log::file_log;
use crate::common::assert_eventually;
use crate::common::client::{self, Client};
use crate::common::config::{bootstrap, hcm, route_config, router_filter, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

const T: &str = "type.googleapis.com/envoy.extensions.filters.http.";
const FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

fn fault(name: &str, config: Value) -> Value {
    let mut typed = json!({ "@type": format!("{T}fault.v3.HTTPFault") });
    merge(&mut typed, config);
    json!({ "name": name, "typed_config": typed })
}

fn http_fault(config: Value) -> Value {
    let mut typed = json!({ "@type": format!("{T}fault.v3.HTTPFault") });
    merge(&mut typed, config);
    typed
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

fn abort(status: u16) -> Value {
    json!({ "abort": { "http_status": status, "percentage": { "numerator": 100 } } })
}

fn health_check() -> Value {
    json!({ "name": "envoy.filters.http.health_check", "typed_config": {
        "@type": format!("{T}health_check.v3.HealthCheck"),
        "pass_through_mode": false,
        "headers": [{ "name": ":path", "string_match": { "exact": "/healthz" } }],
    }})
}

fn buffer(max: u32) -> Value {
    json!({ "name": "envoy.filters.http.buffer", "typed_config": {
        "@type": format!("{T}buffer.v3.Buffer"), "max_request_bytes": max,
    }})
}

/// Listener `main` with these filters (the router appended) over this route configuration.
fn config(up: &Upstream, filters: Vec<Value>, rc: Value, logs: Vec<Value>) -> String {
    let mut manager = hcm(rc);
    let mut chain = filters;
    chain.push(router_filter());
    manager["http_filters"] = json!(chain);
    manager["access_log"] = json!(logs);
    bootstrap().listener_hcm("main", manager).cluster(static_cluster("service1", &[up.addr()])).yaml()
}

fn all_to_service(routes: Vec<Value>) -> Value {
    let mut routes = routes;
    routes.push(to_cluster(json!({"prefix": "/"}), "service1"));
    route_config(json!([vhost("default", &["*"], json!(routes))]))
}

#[tokio::test]
async fn filters_run_in_their_order_before_the_router() {
    let up = upstream::http1().spawn().await;
    // The health check first: it answers its path before the fault filter sees it.
    let legate =
        Legate::start(config(&up, vec![health_check(), fault("f", abort(503))], all_to_service(vec![]), vec![])).await;
    let c = Client::h1();
    assert_eq!(c.get(&legate.url("main", "/healthz")).await.status, 200);
    let r = c.get(&legate.url("main", "/x")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (503, "fault filter abort"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    drop(legate);
    // The other way round, the fault filter answers first.
    let legate =
        Legate::start(config(&up, vec![fault("f", abort(503)), health_check()], all_to_service(vec![]), vec![])).await;
    let r = Client::h1().get(&legate.url("main", "/healthz")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (503, "fault filter abort"));
    assert_eq!(up.requests(), 0);
    assert_eq!(legate.stat("http.ingress_http.fault.aborts_injected").await, 1);
}

#[tokio::test]
async fn per_route_configuration_most_specific_wins_at_every_level() {
    let up = upstream::http1().spawn().await;
    let off = json!({ "@type": FILTER_CONFIG, "disabled": true });
    let fault_cfg = |status| http_fault(abort(status));
    let weighted = |per_filter: Value| {
        json!({ "weighted_clusters": { "clusters": [
            { "name": "service1", "weight": 1, "typed_per_filter_config": { "f": per_filter } },
        ]}})
    };
    let vh_off = json!({
        "name": "off", "domains": ["off.test"],
        "typed_per_filter_config": { "f": off.clone() },
        "routes": [
            { "match": { "prefix": "/route-on" }, "route": { "cluster": "service1" },
              "typed_per_filter_config": { "f": fault_cfg(502) } },
            to_cluster(json!({"prefix": "/"}), "service1"),
        ],
    });
    let vh_default = json!({
        "name": "default", "domains": ["*"],
        "routes": [
            { "match": { "prefix": "/wc-off" }, "route": weighted(off.clone()),
              "typed_per_filter_config": { "f": fault_cfg(503) } },
            { "match": { "prefix": "/wc-on" }, "route": weighted(fault_cfg(504)),
              "typed_per_filter_config": { "f": off.clone() } },
            { "match": { "prefix": "/empty" }, "route": { "cluster": "service1" },
              "typed_per_filter_config": { "f": http_fault(json!({})) } },
            { "match": { "prefix": "/wrapped" }, "route": { "cluster": "service1" },
              "typed_per_filter_config": { "f": { "@type": FILTER_CONFIG, "config": fault_cfg(505) } } },
            { "match": { "prefix": "/other-filter" }, "route": { "cluster": "service1" },
              "typed_per_filter_config": { "not-in-chain": fault_cfg(599) } },
            to_cluster(json!({"prefix": "/"}), "service1"),
        ],
    });
    let rc = json!({
        "name": "local_route",
        "typed_per_filter_config": { "f": fault_cfg(501) },
        "virtual_hosts": [vh_off, vh_default],
    });
    let legate = Legate::start(config(&up, vec![fault("f", abort(500))], rc, vec![])).await;
    let c = Client::h1();
    let status = |host: &'static str, path: &'static str| {
        let c = &c;
        let url = legate.url("main", path);
        async move { c.get_with(&url, &[("host", host)]).await.status }
    };
    assert_eq!(status("x.test", "/").await, 501, "route configuration level over the filter's");
    assert_eq!(status("off.test", "/").await, 200, "disabled on the virtual host");
    assert_eq!(status("off.test", "/route-on").await, 502, "route over virtual host");
    assert_eq!(status("x.test", "/wc-off").await, 200, "disabled on the weighted cluster");
    assert_eq!(status("x.test", "/wc-on").await, 504, "weighted cluster over route");
    assert_eq!(status("x.test", "/empty").await, 200, "an empty HTTPFault injects nothing");
    assert_eq!(status("x.test", "/wrapped").await, 505, "FilterConfig.config");
    assert_eq!(status("x.test", "/other-filter").await, 501, "a config for a filter not in the chain");
}

#[tokio::test]
async fn a_disabled_filter_runs_only_where_a_route_enables_it() {
    let up = upstream::http1().spawn().await;
    let mut f = fault("f", abort(503));
    f["disabled"] = json!(true);
    let rc = all_to_service(vec![json!({
        "match": { "prefix": "/on" }, "route": { "cluster": "service1" },
        "typed_per_filter_config": { "f": http_fault(abort(502)) },
    })]);
    let legate = Legate::start(config(&up, vec![f], rc, vec![])).await;
    let c = Client::h1();
    assert_eq!(c.get(&legate.url("main", "/x")).await.status, 200);
    assert_eq!(c.get(&legate.url("main", "/on")).await.status, 502);
}

#[tokio::test]
async fn fault_headers_delay_and_abort_with_envoy_flags_and_stats() {
    let up = upstream::http1().spawn().await;
    let dir = TempDir::new().expect("tempdir");
    let log = dir.path().join("access.log");
    let format = json!({ "text_format": "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n" });
    let filter = fault(
        "envoy.filters.http.fault",
        json!({
            "abort": { "header_abort": {}, "percentage": { "numerator": 100 } },
            "delay": { "header_delay": {}, "percentage": { "numerator": 100 } },
        }),
    );
    let legate =
        Legate::start(config(&up, vec![filter], all_to_service(vec![]), vec![file_log(&log, Some(format))])).await;
    let c = Client::h1();
    let url = legate.url("main", "/x");
    assert_eq!(c.get(&url).await.status, 200, "no fault header, no fault");
    let r = c.get_with(&url, &[("x-envoy-fault-abort-request", "418")]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (418, "fault filter abort"));
    let r = c.get_with(&url, &[("x-envoy-fault-abort-grpc-request", "14"), ("content-type", "application/grpc")]).await;
    assert_eq!((r.status.as_u16(), r.header("grpc-status")), (200, Some("14")));
    assert_eq!(r.header("grpc-message"), Some("fault filter abort"));
    let started = Instant::now();
    let r = c.get_with(&url, &[("x-envoy-fault-delay-request", "300")]).await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300), "not delayed: {:?}", started.elapsed());
    assert_eq!(legate.stat("http.ingress_http.fault.aborts_injected").await, 2);
    assert_eq!(legate.stat("http.ingress_http.fault.delays_injected").await, 1);
    assert_eq!(legate.stat("http.ingress_http.fault.active_faults").await, 0);
    let want = "200 - via_upstream\n418 FI fault_filter_abort\n200 FI fault_filter_abort\n200 DI via_upstream\n";
    assert_eventually!(
        std::fs::read_to_string(&log).unwrap_or_default() == want,
        "log {:?}",
        std::fs::read_to_string(&log)
    );
}

#[tokio::test]
async fn fault_headers_match_and_max_active_faults() {
    let up = upstream::http1().spawn().await;
    let filter = fault(
        "f",
        json!({
            "delay": { "fixed_delay": "2s", "percentage": { "numerator": 100 } },
            "headers": [{ "name": "x-slow", "present_match": true }],
            "max_active_faults": 1,
        }),
    );
    let legate = Legate::start(config(&up, vec![filter], all_to_service(vec![]), vec![])).await;
    let url = legate.url("main", "/x");
    let started = Instant::now();
    assert_eq!(Client::h1().get(&url).await.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "delayed without the header");
    let slow = {
        let url = url.clone();
        tokio::spawn(async move { Client::h1().get_with(&url, &[("x-slow", "1")]).await.status })
    };
    assert_eventually!(legate.stat("http.ingress_http.fault.active_faults").await == 1, "first fault active");
    let started = Instant::now();
    assert_eq!(Client::h1().get_with(&url, &[("x-slow", "1")]).await.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "over max_active_faults yet delayed");
    assert_eq!(legate.stat("http.ingress_http.fault.faults_overflow").await, 1);
    assert_eq!(slow.await.expect("join"), 200);
    assert_eq!(legate.stat("http.ingress_http.fault.delays_injected").await, 1);
}

fn chunked_post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!("POST {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n").into_bytes();
    req.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    req
}

#[tokio::test]
async fn buffer_reads_the_whole_body_and_refuses_over_its_limit() {
    let up = upstream::http1().spawn().await;
    let per_route = |v: Value| {
        let mut typed = json!({ "@type": format!("{T}buffer.v3.BufferPerRoute") });
        merge(&mut typed, v);
        typed
    };
    let rc = all_to_service(vec![
        json!({ "match": { "prefix": "/off" }, "route": { "cluster": "service1" },
                "typed_per_filter_config": { "envoy.filters.http.buffer": per_route(json!({ "disabled": true })) } }),
        json!({ "match": { "prefix": "/big" }, "route": { "cluster": "service1" },
                "typed_per_filter_config": { "envoy.filters.http.buffer":
                    per_route(json!({ "buffer": { "max_request_bytes": 100 } })) } }),
    ]);
    let legate = Legate::start(config(&up, vec![buffer(10)], rc, vec![])).await;
    let addr = legate.listener("main");
    // A chunked body under the limit reaches the upstream whole, with its length.
    let r = client::raw(addr, &chunked_post("/x", b"hello")).await.expect("answer");
    assert_eq!(r.status, 200);
    let echo: Value = serde_json::from_slice(&r.body).expect("echo json");
    assert_eq!(echo["headers"]["content-length"], "5", "{echo}");
    assert!(echo["headers"].get("transfer-encoding").is_none(), "{echo}");
    assert_eq!(echo["body_len"], 5);
    // Over it: Envoy's 413, and the connection closes (the body was not read to its end).
    let long = b"hello world this is long";
    let r = client::raw(addr, &chunked_post("/x", long)).await.expect("answer");
    assert_eq!(r.status, 413);
    assert_eq!(String::from_utf8_lossy(&r.body), "Payload Too Large");
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    let r = Client::h1().post(&legate.url("main", "/x"), &long[..]).await;
    assert_eq!(r.status, 413);
    assert_eq!(up.requests(), 1);
    // Per route: disabled, and a larger limit.
    assert_eq!(Client::h1().post(&legate.url("main", "/off"), &long[..]).await.status, 200);
    assert_eq!(Client::h1().post(&legate.url("main", "/big"), &long[..]).await.status, 200);
    assert_eq!(Client::h1().post(&legate.url("main", "/big"), vec![b'x'; 101]).await.status, 413);
}

/// Envoy's fault-injection sandbox: its config (`tests/fixtures/examples/fault-injection.yaml`)
/// with its runtime disk layer, driven as its scripts do: the runtime files are written under
/// a new version directory and a symlink moved onto `current`; aborts start, then stop when the
/// file is gone and the symlink moved again.
#[tokio::test]
async fn the_fault_injection_sandbox_aborts_as_its_runtime_files_say() {
    let up = upstream::http1().spawn().await;
    let runtime = TempDir::new().expect("tempdir");
    let root = runtime.path();
    let abort_dir = root.join("v1/envoy/fault/http/abort");
    std::fs::create_dir_all(&abort_dir).expect("mkdir");
    // `ln -s v1 new && mv -Tf new current`
    let swap = |to: &str| {
        let new = root.join("new");
        let _ = std::fs::remove_file(&new);
        std::os::unix::fs::symlink(root.join(to), &new).expect("symlink");
        std::fs::rename(&new, root.join("current")).expect("rename");
    };
    swap("v1");
    let yaml = include_str!("../fixtures/examples/fault-injection.yaml")
        .replace("${LISTEN_PORT}", "0")
        .replace("${BACKEND_ADDR}", &up.ip())
        .replace("${BACKEND_PORT}", &up.port().to_string())
        .replace("${RUNTIME_ROOT}", &root.display().to_string());
    let legate = Legate::start(yaml).await;
    let addr = *legate.listeners().values().next().expect("a listener");
    let url = format!("http://{addr}/");
    let c = Client::h1();
    assert_eq!(c.get(&url).await.status, 200, "no runtime value: the configured 0%");

    // enable_abort_fault_injection.sh
    std::fs::write(abort_dir.join("abort_percent"), "100\n").expect("write");
    std::fs::write(abort_dir.join("http_status"), "503\n").expect("write");
    swap("v1");
    assert_eventually!(c.get(&url).await.status == 503, "aborts started");
    let r = c.get(&url).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (503, "fault filter abort"));

    std::fs::write(abort_dir.join("http_status"), "429\n").expect("write");
    swap("v1");
    assert_eventually!(c.get(&url).await.status == 429, "the new status after the move");

    // disable_abort_fault_injection.sh
    std::fs::remove_file(abort_dir.join("abort_percent")).expect("rm");
    swap("v1");
    assert_eventually!(c.get(&url).await.status == 200, "aborts stopped");
    assert!(legate.stat("http.ingress_http.fault.aborts_injected").await >= 2);
}
