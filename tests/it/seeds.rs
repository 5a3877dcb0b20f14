//! v2-era configs (`config:`, `hosts:`, `envoy.router`, lowercase enums, REST EDS) validate and
//! serve: our own fixtures in `tests/fixtures/v2/` always, and the seed configs of
//! `../shared/seed-configs/` verbatim in the ignored `shared_*` test, which `.ci/run` runs
//! (`LEGATE_SHARED=../shared cargo test --release -- --ignored`).
//!
//! To serve, a file keeps its v2 spellings; only its addresses change: listeners and the admin
//! (added when the file has none: the harness reads the ports from it) go to 127.0.0.1:0, each cluster host to an echo upstream named after its cluster (h2c when
//! the cluster has `http2_protocol_options`), and a REST EDS management cluster's host to a
//! small management server naming an echo upstream. Then every route is asked for with its
//! prefix and the first domain of its virtual host, and must be answered by its cluster over
//! the cluster's protocol; a path no route takes gets 404; `/dev/stdout` access logs show the
//! requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::legate::{self, Legate};
use crate::common::upstream::{self, Upstream};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2")
}

/// `$LEGATE_SHARED/seed-configs`, or `../shared/seed-configs` beside the repository.
fn shared_seeds_dir() -> PathBuf {
    std::env::var_os("LEGATE_SHARED")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"), PathBuf::from)
        .join("seed-configs")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    files.sort();
    files
}

/// `legate --mode validate` says the file is OK.
async fn validates(path: &Path) {
    let p = path.to_str().expect("utf-8 path");
    let run = legate::run(&["-c", p, "--mode", "validate"]).await;
    assert_eq!(run.code(), Some(0), "{p}:\n{}", run.output);
    assert!(run.output.contains(&format!("configuration '{p}' OK")), "{p}:\n{}", run.output);
}

const LOOPBACK_ANY_PORT: &str = "127.0.0.1";

fn to_loopback(socket_address: &mut Value) {
    socket_address["address"] = json!(LOOPBACK_ANY_PORT);
    socket_address["port_value"] = json!(0);
}

fn point_at(socket_address: &mut Value, addr: SocketAddr) {
    socket_address["address"] = json!(addr.ip().to_string());
    socket_address["port_value"] = json!(addr.port());
}

/// The `socket_address` of every host of a cluster: v2 `hosts:` or v3 `load_assignment`.
fn host_addresses(cluster: &mut Value) -> Vec<&mut Value> {
    let mut out = Vec::new();
    if cluster.get("hosts").is_some() {
        if let Some(hosts) = cluster["hosts"].as_array_mut() {
            out.extend(hosts.iter_mut().map(|h| &mut h["socket_address"]));
        }
    } else if let Some(localities) = cluster.pointer_mut("/load_assignment/endpoints").and_then(Value::as_array_mut) {
        for loc in localities {
            if let Some(eps) = loc.get_mut("lb_endpoints").and_then(Value::as_array_mut) {
                out.extend(eps.iter_mut().map(|e| &mut e["endpoint"]["address"]["socket_address"]));
            }
        }
    }
    out
}

fn speaks_h2(cluster: &Value) -> bool {
    cluster.get("http2_protocol_options").is_some() || cluster.to_string().contains("\"http2_protocol_options\"")
}

/// `(management cluster, service name)` of a REST EDS cluster.
fn rest_eds(cluster: &Value) -> Option<(String, String)> {
    let eds = cluster.get("eds_cluster_config")?;
    let source = eds.pointer("/eds_config/api_config_source")?;
    if !source["api_type"].as_str()?.eq_ignore_ascii_case("rest") {
        return None;
    }
    let mgmt = source["cluster_names"][0].as_str()?.to_string();
    let service = eds["service_name"].as_str().or_else(|| cluster["name"].as_str())?.to_string();
    Some((mgmt, service))
}

/// A REST EDS management server: every `POST /v2/discovery:endpoints` gets a
/// DiscoveryResponse assigning `endpoint` to `service` (the v2 `@type` a 2019 server sends).
/// Counts the polls that asked for `service`.
async fn rest_eds_server(service: String, endpoint: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let polls = Arc::new(AtomicUsize::new(0));
    let answer = json!({"version_info": "1", "resources": [{
        "@type": "type.googleapis.com/envoy.api.v2.ClusterLoadAssignment",
        "cluster_name": service,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": endpoint.ip().to_string(), "port_value": endpoint.port()}}}}]}],
    }]})
    .to_string();
    let counter = Arc::clone(&polls);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (polls, answer, service) = (Arc::clone(&counter), answer.clone(), service.clone());
            tokio::spawn(async move {
                let mut s = BufReader::new(stream);
                loop {
                    let (mut request_line, mut line, mut length) = (String::new(), String::new(), 0usize);
                    if s.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length.min(1 << 20)];
                    if s.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let asked: Value = serde_json::from_slice(&body).unwrap_or_default();
                    if request_line.starts_with("POST /v2/discovery:endpoints ")
                        && asked["resource_names"] == json!([service])
                    {
                        polls.fetch_add(1, Ordering::SeqCst);
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        answer.len()
                    );
                    if s.get_mut().write_all(format!("{head}{answer}").as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, polls)
}

/// A v2-era config running on loopback, with what answers for each of its clusters.
struct Served {
    legate: Legate,
    /// The config as legate runs it (addresses rewritten).
    config: Value,
    /// Echo upstreams by cluster name (every one named after its cluster).
    upstreams: HashMap<String, Vec<Upstream>>,
    /// REST EDS polls by management cluster.
    eds_polls: HashMap<String, Arc<AtomicUsize>>,
}

async fn serve(path: &Path) -> Served {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut config: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The harness learns the ports from the admin: one is added to a file without it.
    to_loopback(&mut config["admin"]["address"]["socket_address"]);
    for l in config["static_resources"]["listeners"].as_array_mut().into_iter().flatten() {
        to_loopback(&mut l["address"]["socket_address"]);
    }
    let mut upstreams: HashMap<String, Vec<Upstream>> = HashMap::new();
    let mut eds_polls = HashMap::new();
    // REST EDS first: its management cluster's hosts become management servers.
    let mut management: HashMap<String, (String, SocketAddr)> = HashMap::new();
    let clusters = config["static_resources"]["clusters"].as_array_mut().expect("static_resources.clusters");
    for c in clusters.iter() {
        if let Some((mgmt, service)) = rest_eds(c) {
            let name = c["name"].as_str().expect("cluster name").to_string();
            let builder = if speaks_h2(c) { upstream::h2() } else { upstream::http1() };
            let up = builder.name(&name).spawn().await;
            management.insert(mgmt, (service, up.addr()));
            upstreams.entry(name).or_default().push(up);
        }
    }
    for c in clusters.iter_mut() {
        let name = c["name"].as_str().expect("cluster name").to_string();
        let h2 = speaks_h2(c);
        for sa in host_addresses(c) {
            if let Some((service, endpoint)) = management.get(&name) {
                let (addr, polls) = rest_eds_server(service.clone(), *endpoint).await;
                eds_polls.insert(name.clone(), polls);
                point_at(sa, addr);
            } else {
                let up = if h2 { upstream::h2() } else { upstream::http1() }.name(&name).spawn().await;
                point_at(sa, up.addr());
                upstreams.entry(name.clone()).or_default().push(up);
            }
        }
    }
    let yaml = serde_yaml::to_string(&config).expect("yaml");
    Served { legate: Legate::start(yaml).await, config, upstreams, eds_polls }
}

/// The connection manager's config of a listener (`config:` or `typed_config:`).
fn hcm_of(listener: &Value) -> &Value {
    let filters = &listener["filter_chains"][0]["filters"];
    let f = match filters {
        Value::Array(all) => all
            .iter()
            .find(|f| f["name"].as_str().is_some_and(|n| n.contains("http_connection_manager")))
            .expect("an HTTP connection manager"),
        single => single,
    };
    f.get("config").or_else(|| f.get("typed_config")).expect("the manager's config")
}

/// A Host header the domain pattern takes.
fn host_for(domain: &str) -> String {
    if domain == "*" {
        "anything.test".to_string()
    } else if let Some(rest) = domain.strip_prefix('*') {
        format!("x{rest}")
    } else if let Some(rest) = domain.strip_suffix('*') {
        format!("{rest}test")
    } else {
        domain.to_string()
    }
}

/// Routes of a virtual host as `(prefix, cluster)`; only the prefix-to-cluster routes the
/// seeds use (anything else fails the test, so that the check never silently shrinks).
fn prefix_routes(vh: &Value) -> Vec<(String, String)> {
    let routes = vh["routes"].as_array().expect("routes");
    routes
        .iter()
        .map(|r| {
            let prefix = r["match"]["prefix"].as_str().unwrap_or_else(|| panic!("not a prefix route: {r}"));
            let cluster = r["route"]["cluster"].as_str().unwrap_or_else(|| panic!("not a cluster route: {r}"));
            (prefix.to_string(), cluster.to_string())
        })
        .collect()
}

/// Every route of every listener answered by its cluster over the cluster's protocol; an
/// unrouted path gets 404; the `/dev/stdout` access logs show the requests.
async fn assert_serves(s: &Served, what: &str) {
    let clusters: HashMap<&str, &Value> = s.config["static_resources"]["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["name"].as_str().expect("name"), c))
        .collect();
    let listeners = s.config["static_resources"]["listeners"].as_array().expect("listeners");
    let mut checked = 0;
    for (i, l) in listeners.iter().enumerate() {
        let name = l["name"].as_str().map_or_else(|| format!("listener_{i}"), str::to_string);
        let addr = s.legate.listener(&name);
        let hcm = hcm_of(l);
        let logs_to_stdout = hcm["access_log"].to_string().contains("/dev/stdout");
        for vh in hcm["route_config"]["virtual_hosts"].as_array().expect("virtual_hosts") {
            let host = host_for(vh["domains"][0].as_str().expect("a domain"));
            let routes = prefix_routes(vh);
            for (path, _) in &routes {
                // The first route whose prefix the path has answers it.
                let (_, cluster) = routes.iter().find(|(p, _)| path.starts_with(p.as_str())).expect("itself at least");
                let url = format!("http://{addr}{path}");
                let c = Client::h1();
                let headers = [("host", host.as_str())];
                // A REST EDS cluster has its endpoints once the first poll is answered.
                assert_eventually!(
                    c.get_with(&url, &headers).await.status == 200,
                    "{what}: {name} GET {path} (Host {host}) is answered by {cluster}"
                );
                let e = c.get_with(&url, &headers).await.echo();
                assert_eq!(e["instance"], cluster.as_str(), "{what}: {name} {path}");
                assert_eq!(e["path"], path.as_str(), "{what}: {name} {path}");
                let proto = if speaks_h2(clusters[cluster.as_str()]) { "HTTP/2.0" } else { "HTTP/1.1" };
                assert_eq!(e["proto"], proto, "{what}: {name} {path}: cluster {cluster}'s protocol");
                if logs_to_stdout {
                    let line = format!("\"GET {path} HTTP/1.1\" 200 - ");
                    assert_eventually!(s.legate.output().contains(&line), "{what}: {name} logs {line:?} to stdout");
                }
                checked += 1;
            }
            let unrouted = "/__no_route_takes_this__";
            if !routes.iter().any(|(p, _)| unrouted.starts_with(p.as_str())) {
                let r = Client::h1().get_with(&format!("http://{addr}{unrouted}"), &[("host", &host)]).await;
                assert_eq!(r.status, 404, "{what}: {name} {unrouted}");
            }
            // h2c by prior knowledge on the same port (`codec_type: auto`); its `:authority`
            // is the listener's address, which only a `*` domain takes.
            let any_host = vh["domains"][0] == "*";
            if any_host && hcm["codec_type"].as_str().is_none_or(|c| c.eq_ignore_ascii_case("auto")) {
                let (path, cluster) = &routes[0];
                let r = Client::h2c().get_with(&format!("http://{addr}{path}"), &[("host", &host)]).await;
                assert_eq!((r.status.as_u16(), r.version), (200, hyper::Version::HTTP_2), "{what}: {name} h2c {path}");
                assert_eq!(r.instance(), cluster.as_str(), "{what}: {name} h2c {path}");
            }
        }
    }
    assert!(checked > 0, "{what}: no route checked");
    for (mgmt, polls) in &s.eds_polls {
        assert!(polls.load(Ordering::SeqCst) > 0, "{what}: no REST EDS poll reached {mgmt}");
    }
    for (cluster, ups) in &s.upstreams {
        assert!(ups.iter().any(|u| u.requests() > 0), "{what}: cluster {cluster} got no request");
    }
}

async fn validates_and_serves(path: &Path) {
    validates(path).await;
    let served = serve(path).await;
    assert_serves(&served, &path.display().to_string()).await;
}

#[tokio::test]
async fn every_v2_fixture_validates() {
    let files = yaml_files(&fixtures_dir());
    assert!(files.len() >= 5, "found {} fixtures", files.len());
    for f in &files {
        validates(f).await;
    }
}

#[tokio::test]
async fn edge_proxy_serves_h2_and_h1_clusters() {
    validates_and_serves(&fixtures_dir().join("edge-proxy.yaml")).await;
}

#[tokio::test]
async fn app_sidecar_serves_the_local_app() {
    validates_and_serves(&fixtures_dir().join("app-sidecar.yaml")).await;
}

#[tokio::test]
async fn host_router_serves_by_host_over_every_host() {
    let path = fixtures_dir().join("host-router.yaml");
    validates_and_serves(&path).await;
}

#[tokio::test]
async fn grpc_gateway_serves_both_listeners_and_logs_to_stdout() {
    validates_and_serves(&fixtures_dir().join("grpc-gateway.yaml")).await;
}

#[tokio::test]
async fn rest_eds_serves_the_polled_endpoints() {
    validates_and_serves(&fixtures_dir().join("rest-eds.yaml")).await;
}

/// The seed configs verbatim (only their addresses moved to loopback): each validates and
/// serves. Needs `../shared`; `.ci/run` runs it.
#[tokio::test]
#[ignore = "reads ../shared ($LEGATE_SHARED): run by .ci/run"]
async fn shared_every_seed_config_validates_and_serves() {
    let dir = shared_seeds_dir();
    let files = yaml_files(&dir);
    assert!(files.len() >= 6, "found {} seeds in {}", files.len(), dir.display());
    for f in &files {
        validates_and_serves(f).await;
    }
}
