//! Hot reload, driven through the files: the rig and the discovery documents shared by the
//! `reload_*` test modules (file writers and the raw connection are in `reload_io`).
//!
//! A [`Rig`] is two echo upstreams (`a`, `b`), a tempdir holding the discovery files, and
//! legate reading them:
//!
//! ```text
//! Rig::rds():     static listener main --rds--> rds.yaml (local_route)
//!                 static clusters a_svc, b_svc; e_svc (EDS) --> eds.yaml
//! Rig::dynamic(): lds.yaml (listeners) + cds.yaml (a_svc, b_svc, e_svc) + rds.yaml + eds.yaml
//! ```
//! `local_route` sends `/eds` to `e_svc` and everything else to the cluster under test, so one
//! GET tells which route and which endpoint are live.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::client::{Client, Resp};
use crate::common::config::{self, bootstrap, hcm, static_cluster, to_cluster, vhost};
use crate::common::legate::{self, parse_listeners, Legate};
use crate::common::upstream::{self, Upstream};
pub use crate::reload_io::{body_text, ConfigMap, Conn, Write};

pub const ROUTE_T: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER_T: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const LISTENER_T: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const CLA_T: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// RDS stats of `local_route` on the fixture's HCM (stat prefix `ingress_http`).
pub const RDS: &str = "http.ingress_http.rds.local_route";

// ------------------------------------------------------------------ discovery documents

/// A DiscoveryResponse file: `version_info` + `resources`.
pub fn discovery(version: &str, resources: Vec<Value>) -> String {
    serde_yaml::to_string(&json!({ "version_info": version, "resources": resources })).expect("yaml")
}

/// `v` with its `@type`.
pub fn typed(type_url: &str, mut v: Value) -> Value {
    v["@type"] = json!(type_url);
    v
}

/// A RouteConfiguration `name`: `/eds` to `e_svc`, everything else to `cluster`.
pub fn route_config_to(name: &str, cluster: &str) -> Value {
    typed(
        ROUTE_T,
        json!({ "name": name, "virtual_hosts": [vhost("vh", &["*"], json!([
            to_cluster(json!({"prefix": "/eds"}), "e_svc"),
            to_cluster(json!({"prefix": "/"}), cluster),
        ]))]}),
    )
}

/// `rds.yaml` content: `local_route` sending `/` to `cluster`.
pub fn rds_to(version: &str, cluster: &str) -> String {
    discovery(version, vec![route_config_to("local_route", cluster)])
}

/// An EDS file assigning `addrs` to `cluster`.
pub fn cla(version: &str, cluster: &str, addrs: &[SocketAddr]) -> String {
    let eps: Vec<Value> = addrs.iter().map(|a| config::endpoint(*a)).collect();
    discovery(version, vec![typed(CLA_T, json!({ "cluster_name": cluster, "endpoints": [{ "lb_endpoints": eps }] }))])
}

/// `path_config_source` for `path`, optionally with Envoy's `watched_directory`.
pub fn file_source(path: &Path, watched: Option<&Path>) -> Value {
    let mut pcs = json!({ "path": path.to_str().expect("utf-8 path") });
    if let Some(w) = watched {
        pcs["watched_directory"] = json!({ "path": w.to_str().expect("utf-8 path") });
    }
    json!({ "path_config_source": pcs, "resource_api_version": "V3" })
}

/// A cluster of type EDS reading its endpoints from `source`.
pub fn eds_cluster(name: &str, source: Value) -> Value {
    json!({ "name": name, "type": "EDS", "connect_timeout": "1s", "eds_cluster_config": { "eds_config": source } })
}

/// The fixture's HCM with `rds` (route `local_route`) instead of an inline route config.
pub fn rds_hcm(source: Value) -> Value {
    let mut h = hcm(json!({}));
    let o = h.as_object_mut().expect("hcm object");
    o.remove("route_config");
    o.insert("rds".into(), json!({ "route_config_name": "local_route", "config_source": source }));
    h
}

/// A listener named `name` on 127.0.0.1:`port` with this HCM.
pub fn listener(name: &str, port: u16, hcm: Value) -> Value {
    json!({
        "name": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "filter_chains": [{ "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm,
        }]}],
    })
}

/// An LDS resource: listener `name` on port 0 answering `body` directly.
pub fn direct_listener(name: &str, body: &str) -> Value {
    let rc = config::route_config(json!([vhost("vh", &["*"], json!([config::direct(json!({"prefix": "/"}), body)]))]));
    typed(LISTENER_T, listener(name, 0, hcm(rc)))
}

/// An LDS resource: listener `name` on port 0 sending everything to `cluster` (inline routes).
pub fn cluster_listener(name: &str, cluster: &str) -> Value {
    let rc = config::route_config(json!([vhost("vh", &["*"], json!([to_cluster(json!({"prefix": "/"}), cluster)]))]));
    typed(LISTENER_T, listener(name, 0, hcm(rc)))
}

/// A bootstrap value with a `node` (file subscriptions want one) and optional dynamic resources.
pub fn with_node(mut boot: Value, dynamic: Option<Value>) -> String {
    boot["node"] = json!({ "id": "legate-it", "cluster": "legate-it" });
    if let Some(d) = dynamic {
        boot["dynamic_resources"] = d;
    }
    serde_yaml::to_string(&boot).expect("yaml")
}

// ------------------------------------------------------------------ the rig

/// Upstreams `a` and `b` and the directory for the discovery files, before legate starts.
pub struct Setup {
    pub dir: TempDir,
    pub a: Upstream,
    pub b: Upstream,
}

impl Setup {
    pub async fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            a: upstream::http1().name("a").spawn().await,
            b: upstream::http1().name("b").spawn().await,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `name` in the files directory.
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).expect("write file");
        p
    }

    /// Static clusters `a_svc` -> a, `b_svc` -> b.
    pub fn static_clusters(&self) -> Vec<Value> {
        vec![static_cluster("a_svc", &[self.a.addr()]), static_cluster("b_svc", &[self.b.addr()])]
    }

    /// Starts legate with this bootstrap.
    pub async fn start(self, bootstrap_yaml: String) -> Rig {
        self.start_args(bootstrap_yaml, &[]).await
    }

    /// Starts legate with this bootstrap and extra command-line arguments.
    pub async fn start_args(self, bootstrap_yaml: String, args: &[&str]) -> Rig {
        let mut b = legate::config(bootstrap_yaml);
        for a in args {
            b = b.arg(a);
        }
        Rig { legate: b.spawn().await, setup: self, client: Client::h1() }
    }
}

/// A running legate with its upstreams and discovery files.
pub struct Rig {
    pub legate: Legate,
    pub setup: Setup,
    pub client: Client,
}

impl Rig {
    /// Static listener `main` routing through `rds.yaml` (`/` to `a_svc`), static clusters
    /// `a_svc`, `b_svc`, and `e_svc` whose endpoints (a) come from `eds.yaml`.
    pub async fn rds() -> Rig {
        let s = Setup::new().await;
        let rds = s.file("rds.yaml", &rds_to("v1", "a_svc"));
        let eds = s.file("eds.yaml", &cla("v1", "e_svc", &[s.a.addr()]));
        let mut b = bootstrap().listener_hcm("main", rds_hcm(file_source(&rds, None)));
        for c in s.static_clusters() {
            b = b.cluster(c);
        }
        b = b.cluster(eds_cluster("e_svc", file_source(&eds, None)));
        let yaml = with_node(b.value(), None);
        s.start(yaml).await
    }

    /// Everything from files: `lds.yaml` holds `listeners`, `cds.yaml` holds `a_svc`, `b_svc`
    /// and `e_svc` (EDS from `eds.yaml`, endpoint a); `rds.yaml` sends `/` to `a_svc`.
    pub async fn dynamic(listeners: impl FnOnce(&Setup) -> Vec<Value>) -> Rig {
        Rig::dynamic_args(listeners, &[]).await
    }

    /// [`Rig::dynamic`] with extra command-line arguments for legate.
    pub async fn dynamic_args(listeners: impl FnOnce(&Setup) -> Vec<Value>, args: &[&str]) -> Rig {
        let s = Setup::new().await;
        s.file("rds.yaml", &rds_to("v1", "a_svc"));
        s.file("eds.yaml", &cla("v1", "e_svc", &[s.a.addr()]));
        s.file("cds.yaml", &cds(&s, "v1", vec![]));
        let ls = listeners(&s);
        s.file("lds.yaml", &discovery("v1", ls));
        let dynamic = json!({
            "lds_config": file_source(&s.path("lds.yaml"), Some(s.dir.path())),
            "cds_config": file_source(&s.path("cds.yaml"), Some(s.dir.path())),
        });
        let yaml = with_node(bootstrap().value(), Some(dynamic));
        s.start_args(yaml, args).await
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.setup.path(name)
    }

    /// `GET path` on listener `main` (as listed now by `/listeners`).
    pub async fn get(&self, path: &str) -> Resp {
        let addr = self.listener("main").await.expect("listener main");
        self.client.get(&format!("http://{addr}{path}")).await
    }

    /// Which upstream answered `GET path` on `main` (`"503"`-style status text if none did).
    pub async fn hit(&self, path: &str) -> String {
        let r = self.get(path).await;
        match r.header("x-upstream-instance") {
            Some(i) if r.status == 200 => i.to_string(),
            _ => format!("{} {}", r.status.as_u16(), r.text()),
        }
    }

    /// The listeners `/listeners` shows now.
    pub async fn listeners(&self) -> HashMap<String, SocketAddr> {
        let r = self.legate.admin_get("/listeners").await;
        assert_eq!(r.status, 200, "GET /listeners");
        parse_listeners(&r.text())
    }

    pub async fn listener(&self, name: &str) -> Option<SocketAddr> {
        self.listeners().await.get(name).copied()
    }

    pub async fn stat(&self, name: &str) -> u64 {
        self.legate.stat(name).await
    }

    /// `/reloads`, newest first.
    pub async fn reloads(&self) -> Vec<Value> {
        let r = self.legate.admin_get("/reloads").await;
        assert_eq!(r.status, 200, "GET /reloads");
        r.json()["reloads"].as_array().cloned().unwrap_or_default()
    }

    /// The text value of a `*.version_text` stat (`name: "v2"`), if shown.
    pub async fn version_text(&self, name: &str) -> Option<String> {
        let text = self.legate.admin_get("/stats").await.text();
        let prefix = format!("{name}: ");
        text.lines().find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().trim_matches('"').to_string()))
    }

    /// Asserts `/reloads` never recorded a rejected attempt.
    pub async fn assert_no_rejected_reload(&self) {
        let reloads = self.reloads().await;
        let bad: Vec<&Value> = reloads.iter().filter(|r| r["outcome"] != "applied").collect();
        assert!(bad.is_empty(), "reloads not applied: {bad:#?}");
    }
}

/// An LDS resource: listener `name` on port 0 routing through `rds.yaml`.
pub fn rds_listener(s: &Setup, name: &str) -> Value {
    typed(LISTENER_T, listener(name, 0, rds_hcm(file_source(&s.path("rds.yaml"), None))))
}

/// `cds.yaml` content: `a_svc` -> a, `b_svc` -> b, `e_svc` (EDS, `eds.yaml`), then `extra`.
pub fn cds(s: &Setup, version: &str, extra: Vec<Value>) -> String {
    let mut clusters = s.static_clusters();
    clusters.extend(extra);
    cds_of(s, version, clusters)
}

/// `cds.yaml` content: `e_svc` (EDS, `eds.yaml`) and `clusters`.
pub fn cds_of(s: &Setup, version: &str, clusters: Vec<Value>) -> String {
    let mut all = vec![typed(CLUSTER_T, eds_cluster("e_svc", file_source(&s.path("eds.yaml"), None)))];
    all.extend(clusters.into_iter().map(|c| typed(CLUSTER_T, c)));
    discovery(version, all)
}
