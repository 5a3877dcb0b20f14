//! The seed configs in `../shared/seed-configs/` (Envoy v2-era files from real deployments):
//! each validates, and the front proxy and service sidecar work when pointed at test servers.

use std::path::PathBuf;

use crate::common::client::Client;
use crate::common::legate::{self, Legate};
use crate::common::upstream::{self, Upstream};

fn seeds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/seed-configs")
}

fn seed(name: &str) -> String {
    let path = seeds_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces the one match of `pattern` in `text` (panics unless there is exactly one).
fn replace_once(text: &str, pattern: &str, with: &str) -> String {
    let re = regex::Regex::new(pattern).unwrap();
    assert_eq!(re.find_iter(text).count(), 1, "pattern {pattern:?}");
    re.replace(text, with).into_owned()
}

/// The only listener of a seed (seed listeners have no names).
fn sole_listener(legate: &Legate) -> std::net::SocketAddr {
    let all = legate.listeners();
    assert_eq!(all.len(), 1, "listeners: {all:?}");
    *all.values().next().unwrap()
}

#[tokio::test]
async fn every_seed_config_validates() {
    let mut seen = 0;
    for entry in std::fs::read_dir(seeds_dir()).expect("seed-configs dir") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        let p = path.to_str().unwrap();
        let run = legate::run(&["-c", p, "--mode", "validate"]).await;
        assert_eq!(run.code(), Some(0), "{p}:\n{}", run.output);
        assert!(run.output.contains(&format!("configuration '{p}' OK")), "{p}:\n{}", run.output);
    }
    assert!(seen >= 6, "found {seen} seeds");
}

async fn front_envoy(s1: &Upstream, s2: &Upstream) -> Legate {
    let mut text = seed("front-envoy.yaml");
    text = replace_once(&text, r"address: 0\.0\.0\.0(\s+)port_value: 80\b", "address: 127.0.0.1${1}port_value: 0");
    text = replace_once(&text, r"address: 0\.0\.0\.0(\s+)port_value: 8001\b", "address: 127.0.0.1${1}port_value: 0");
    for (name, up) in [("service1", s1), ("service2", s2)] {
        text = replace_once(
            &text,
            &format!(r"address: {name}(\s+)port_value: 80\b"),
            &format!("address: {}${{1}}port_value: {}", up.ip(), up.port()),
        );
    }
    Legate::start(text).await
}

#[tokio::test]
async fn front_envoy_routes_each_service_over_h2c() {
    let s1 = upstream::h2().name("service1").bind("127.0.0.41:0").spawn().await;
    let s2 = upstream::h2().name("service2").bind("127.0.0.42:0").spawn().await;
    let legate = front_envoy(&s1, &s2).await;
    let base = format!("http://{}", sole_listener(&legate));
    let c = Client::h1();
    for _ in 0..3 {
        let e = c.get(&format!("{base}/service/1")).await.echo();
        assert_eq!(e["instance"], "service1");
        assert_eq!(e["proto"], "HTTP/2.0");
        let e = c.get(&format!("{base}/service/2/x")).await.echo();
        assert_eq!(e["instance"], "service2");
        assert_eq!(e["path"], "/service/2/x");
    }
    assert_eq!(c.get(&format!("{base}/service/3")).await.status, 404);
    assert_eq!((s1.requests(), s2.requests()), (3, 3));
    let h2 = Client::h2c().get(&format!("{base}/service/1")).await.echo();
    assert_eq!(h2["instance"], "service1");
}

#[tokio::test]
async fn service_sidecar_forwards_to_the_local_app() {
    let app = upstream::http1().name("app").spawn().await;
    let mut text = seed("service-envoy.yaml");
    text = replace_once(&text, r"address: 0\.0\.0\.0(\s+)port_value: 80\b", "address: 127.0.0.1${1}port_value: 0");
    text = replace_once(&text, r"address: 0\.0\.0\.0(\s+)port_value: 8081\b", "address: 127.0.0.1${1}port_value: 0");
    text = replace_once(&text, r"port_value: 8080\b", &format!("port_value: {}", app.port()));
    let legate = Legate::start(text).await;
    let base = format!("http://{}", sole_listener(&legate));
    let c = Client::h1();
    let e = c.get(&format!("{base}/service/1")).await.echo();
    assert_eq!(e["instance"], "app");
    assert_eq!(e["proto"], "HTTP/1.1");
    assert_eq!(c.get(&format!("{base}/other")).await.status, 404);
}
