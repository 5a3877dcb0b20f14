//! Times each phase of applying a 10,000-route RDS file and a 10,000-endpoint EDS file, the
//! sizes the hot-reload budget names (one changed line applied in under 40 ms). Run with
//! `cargo bench --bench reload_phases`; it prints a table, asserts nothing.
//!
//! The last phases replay what the reloader does for one changed line, through the same
//! functions (`reload::load::load`, `Sources::effective`, the file source's
//! `to_updates::updates`, the core's `Resources::next`, `state::diff`, `build::build`), from
//! the file's bytes to the next snapshot, dropping the state it replaces. The files have
//! the layout of the `scale` suite of `../shared/bench`: the last of 10,000 routes switches
//! cluster; the one priority-0 endpoint next to 9,999 priority-1 endpoints switches port.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use legate::access_log::LogWriters;
use legate::config;
use legate::listener::manager::ListenerManager;
use legate::listener::Drain;
use legate::reload::{build, core, load, sources, state, to_updates};
use legate::routing::RouteTable;
use legate::server::ProcessState;
use legate::snapshot::Snapshot;
use legate::stats::Store;

const N: usize = 10_000;

/// N routes `prefix: /r/i/` to cluster `a`, the last one to `last`.
fn rds_yaml(last: &str) -> String {
    let mut s = String::from(
        "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: r\n  virtual_hosts:\n  - name: vh\n    domains: [\"*\"]\n    routes:\n",
    );
    for i in 0..N {
        let cluster = if i == N - 1 { last } else { "a" };
        s.push_str(&format!("    - match: {{ prefix: \"/r/{i}/\" }}\n      route: {{ cluster: {cluster} }}\n"));
    }
    s
}

/// One locality of N endpoints, the last one on `last_port`.
fn eds_yaml(last_port: u16) -> String {
    let mut s = String::from(
        "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: a\n  endpoints:\n  - lb_endpoints:\n",
    );
    for i in 0..N {
        let port = if i == N - 1 { last_port } else { 10_000 + (i % 50_000) as u16 };
        s.push_str(&format!(
            "    - endpoint: {{ address: {{ socket_address: {{ address: 127.2.{}.{}, port_value: {port} }} }} }}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    s
}

/// The scale suite's EDS file: one priority-0 endpoint on `port`, N - 1 at priority 1.
fn eds_scale_yaml(port: u16) -> String {
    let mut s = format!(
        "resources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: e\n  endpoints:\n  - priority: 0\n    lb_endpoints:\n    - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n  - priority: 1\n    lb_endpoints:\n"
    );
    for i in 0..N - 1 {
        s.push_str(&format!(
            "    - endpoint: {{address: {{socket_address: {{address: 127.2.{}.{}, port_value: 18081}}}}}}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    s
}

const BOOTSTRAP: &str = r#"
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          rds: {route_config_name: r, config_source: {path_config_source: {path: /nonexistent/rds.yaml}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: a
    type: STATIC
    load_assignment: {cluster_name: a, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}
  - name: b
    type: STATIC
    load_assignment: {cluster_name: b, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 2}}}}]}]}
  - name: e
    type: EDS
    eds_cluster_config: {eds_config: {path_config_source: {path: /nonexistent/eds.yaml}}}
"#;

fn time<T>(label: &str, rounds: u32, mut f: impl FnMut() -> T) -> T {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..rounds {
        let t = Instant::now();
        out = Some(f());
        best = best.min(t.elapsed());
    }
    println!("| {label} | {:.2} ms |", best.as_secs_f64() * 1000.0);
    out.expect("at least one round")
}

/// The reloader's state between two reloads, and what it needs to build a snapshot.
struct Replay {
    sources: sources::Sources,
    effective: state::Effective,
    /// The core's per-type maps.
    resources: core::Resources,
    snapshot: Arc<Snapshot>,
    store: Arc<Store>,
    writers: LogWriters,
    manager: ListenerManager,
    docs: config::DocCache,
}

impl Replay {
    fn new() -> Replay {
        let (bootstrap, json) = config::load_bootstrap_with_json(None, Some(BOOTSTRAP)).expect("valid bootstrap");
        let store = Store::new();
        let shared = Arc::new(ProcessState {
            snapshot: Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot::empty())),
            stats: Arc::clone(&store),
            local_ip: None,
            health_failing: AtomicBool::new(false),
            drain_time: Duration::from_secs(1),
            total_connections: store.gauge("server.total_connections"),
            local_node: bootstrap.node.clone(),
            runtime: legate::runtime::Runtime::empty(),
        });
        let (_, shutdown) = tokio::sync::watch::channel(false);
        let (alive, _) = tokio::sync::mpsc::channel(1);
        let (_, admin) = tokio::sync::watch::channel(legate::admin::drain::ListenerDrain::default());
        Replay {
            sources: sources::Sources::new(None, None, bootstrap, json),
            effective: state::Effective::default(),
            resources: core::Resources::default(),
            snapshot: Arc::new(Snapshot::empty()),
            writers: LogWriters::new(&store),
            store,
            manager: ListenerManager::new(shared, Drain { shutdown, alive, admin }),
            docs: config::DocCache::default(),
        }
    }

    /// One reload of one file, as `Reloader::apply_batch` does it (no accept loops started).
    async fn reload(&mut self, role: &sources::Role, path: &Path, bytes: &[u8]) {
        let mut next = self.sources.clone();
        load::load(&mut next, &mut self.docs, role, path, bytes, &mut Vec::new()).expect("valid file");
        let eff = next.effective();
        // The file source's updates, then the core's copy of its maps with them applied.
        let updates = to_updates::updates(&self.effective, &eff, &next);
        let resources = self.resources.next(&updates).expect("valid updates");
        let d = state::diff(&self.resources.maps, &resources.maps);
        let bootstrap = Arc::new(next.bootstrap.clone());
        let built = build::build(
            &self.snapshot,
            &resources.maps,
            &d,
            &resources.order,
            bootstrap,
            &self.store,
            &self.writers,
            &self.manager,
        )
        .await
        .expect("builds");
        self.snapshot = Arc::new(built.snapshot);
        self.sources = next;
        self.effective = eff;
        self.resources = resources;
    }
}

fn replay(label: &str, role: sources::Role, path: &Path, texts: [String; 2]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut r = Replay::new();
        r.reload(&role, path, texts[1].as_bytes()).await;
        let mut best = Duration::MAX;
        for round in 0..6 {
            let t = Instant::now();
            r.reload(&role, path, texts[round % 2].as_bytes()).await;
            best = best.min(t.elapsed());
        }
        println!("| {label} | {:.2} ms |", best.as_secs_f64() * 1000.0);
    });
}

fn main() {
    let rds = rds_yaml("a");
    let eds = eds_yaml(20_000);
    let path = Path::new("rds.yaml");
    println!("| phase ({N} resources, best of 5) | time |\n|---|---|");
    time("YAML text to serde_yaml::Value only", 5, || serde_yaml::from_str::<serde_yaml::Value>(&rds).map(|_| ()).ok());
    let json_text =
        serde_json::to_string(&serde_yaml::from_str::<serde_json::Value>(&rds).unwrap_or_default()).unwrap_or_default();
    time("JSON text to serde_yaml::Value only", 5, || {
        serde_json::from_str::<serde_yaml::Value>(&json_text).map(|_| ()).ok()
    });
    time("same file as JSON: parse + validate", 5, || {
        config::parse_route_config(Path::new("rds.json"), json_text.as_bytes(), "r").is_ok()
    });
    let d = time("parse + validate RDS file", 5, || config::parse_route_config(path, rds.as_bytes(), "r"));
    let rc = d.ok().and_then(|d| d.resources.into_iter().next()).expect("valid RDS");
    let mut docs = config::DocCache::default();
    // Every timed parse differs from the one before by one line.
    let versions = [rds_yaml("a"), rds_yaml("b")];
    let _ = docs.route_config(path, versions[0].as_bytes(), "r");
    let mut k = 0;
    time("parse + validate RDS file, one line changed (DocCache)", 5, || {
        k += 1;
        docs.route_config(path, versions[k % 2].as_bytes(), "r").is_ok()
    });
    time("resources as JSON (config_dump)", 5, || config::resources_json(path, rds.as_bytes()));
    let store = Store::new();
    let clusters: HashMap<String, Arc<legate::upstream::Cluster>> = HashMap::new();
    time("compile route table", 5, || RouteTable::build(&rc, &clusters).is_ok());
    time("clone route config", 5, || rc.clone());
    time("compare route configs", 5, || rc == rc.clone());
    let e =
        time("parse + validate EDS file", 5, || config::parse_endpoints(Path::new("eds.yaml"), eds.as_bytes(), "a"));
    let eps = e.ok().map(|d| d.resources).unwrap_or_default();
    let versions = [eds_yaml(20_000), eds_yaml(20_001)];
    let _ = docs.endpoints(Path::new("eds.yaml"), versions[0].as_bytes(), "a");
    let mut k = 0;
    time("parse + validate EDS file, one line changed (DocCache)", 5, || {
        k += 1;
        docs.endpoints(Path::new("eds.yaml"), versions[k % 2].as_bytes(), "a").is_ok()
    });
    let specs = legate::upstream::eds_rest::specs_from_assignment(&eps[0].endpoints);
    let cluster_cfg = config::parse_clusters(
        Path::new("cds.yaml"),
        b"resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: a\n  type: STATIC\n",
    )
    .ok()
    .and_then(|d| d.resources.into_iter().next())
    .expect("valid cluster");
    let cluster = legate::upstream::Cluster::build(cluster_cfg, &store);
    time("set 10k hosts (all new)", 1, || cluster.set_hosts(specs.clone()));
    let mut changed = specs.clone();
    if let Some(last) = changed.last_mut() {
        last.addr.set_port(20_001);
    }
    time("set 10k hosts (one changed)", 5, || cluster.set_hosts(changed.clone()));
    replay(
        "RDS one line changed: load + effective + diff + build + drop old",
        sources::Role::Rds("r".into()),
        Path::new("/nonexistent/rds.yaml"),
        [rds_yaml("b"), rds_yaml("a")],
    );
    replay(
        "EDS one line changed: load + effective + diff + build + drop old",
        sources::Role::Eds("e".into()),
        Path::new("/nonexistent/eds.yaml"),
        [eds_scale_yaml(18083), eds_scale_yaml(18081)],
    );
}
