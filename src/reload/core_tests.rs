//! The core driven by a fake in-memory source: deliveries, ACK/NACK, upserts and removals,
//! and a NACKed delivery leaving no trace.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::*;
use crate::config::model::{Cluster, Listener, LocalityEndpoints};
use crate::listener::Drain;
use crate::snapshot::SnapshotStore;
use crate::stats::Store;
use crate::xds::{self, Update};

fn cluster(name: &str, eds: bool) -> Cluster {
    let kind = if eds {
        "type: EDS\n  eds_cluster_config: {service_name: svc, eds_config: {path_config_source: {path: /nonexistent/eds.yaml}}}"
    } else {
        "type: STATIC"
    };
    let cds = format!(
        "resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: {name}\n  {kind}\n"
    );
    crate::config::parse_clusters(Path::new("cds.yaml"), cds.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"))
        .resources
        .remove(0)
}

fn listener(name: &str, cluster: &str) -> Listener {
    let lds = format!(
        r#"resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: {name}
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: {name}
        http_filters:
        - name: envoy.filters.http.router
          typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
        route_config:
          virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
            - match: {{prefix: /}}
              route: {{cluster: {cluster}}}
"#
    );
    crate::config::parse_listeners(Path::new("lds.yaml"), lds.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"))
        .resources
        .remove(0)
}

fn endpoints(ports: &[u16]) -> Arc<Vec<LocalityEndpoints>> {
    let eps: Vec<String> = ports
        .iter()
        .map(|p| format!("    - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}\n"))
        .collect();
    let eds = format!("resources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: svc\n  endpoints:\n  - lb_endpoints:\n{}", eps.concat());
    let d =
        crate::config::parse_endpoints(Path::new("eds.yaml"), eds.as_bytes(), "svc").unwrap_or_else(|e| panic!("{e}"));
    Arc::new(d.resources.into_iter().flat_map(|c| c.endpoints).collect())
}

/// A core serving on a channel, as `reload::spawn` runs it, and the fake source's handle.
struct Rig {
    source: SourceHandle,
    snapshot: Arc<SnapshotStore>,
    _shutdown: watch::Sender<bool>,
}

fn rig() -> Rig {
    let store = Store::new();
    let snapshot: Arc<SnapshotStore> = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot::empty()));
    let shared = Arc::new(ProcessState {
        snapshot: Arc::clone(&snapshot),
        stats: Arc::clone(&store),
        local_ip: None,
        health_failing: AtomicBool::new(false),
        drain_time: Duration::from_secs(1),
        total_connections: store.gauge("server.total_connections"),
        local_node: crate::config::model::Node { id: String::new(), cluster: String::new() },
        runtime: crate::runtime::Runtime::empty(),
    });
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (alive, _) = mpsc::channel(1);
    let (_, admin) = watch::channel(crate::admin::drain::ListenerDrain::default());
    let manager = ListenerManager::new(Arc::clone(&shared), Drain { shutdown: shutdown.clone(), alive, admin });
    let (source, rx) = xds::channel();
    let core = Core::new(shared, Arc::new(LogWriters::new(&store)), manager, Arc::default(), source.clone());
    tokio::spawn(core.serve(rx, |_| {}, shutdown));
    Rig { source, snapshot, _shutdown: shutdown_tx }
}

impl Rig {
    async fn deliver(&self, updates: Vec<Update>) -> Response {
        self.source.deliver(updates).await.unwrap_or_else(|| panic!("the core is gone"))
    }

    fn clusters(&self) -> Vec<String> {
        let mut v: Vec<String> = self.snapshot.load().clusters.keys().cloned().collect();
        v.sort();
        v
    }
}

fn clusters(version: &str) -> Update {
    Update::new(TypeUrl::Cluster, version, "fake")
}

fn listeners(version: &str) -> Update {
    Update::new(TypeUrl::Listener, version, "fake-lds")
}

#[tokio::test]
async fn upserts_and_removals_are_acked_and_applied() {
    let r = rig();
    let up = clusters("1")
        .upsert("a", Resource::Cluster(cluster("a", false)))
        .upsert("b", Resource::Cluster(cluster("b", false)));
    assert_eq!(r.deliver(vec![up]).await, Response::Ack);
    assert_eq!(r.clusters(), ["a", "b"]);
    let a = Arc::clone(&r.snapshot.load().clusters["a"]);
    assert_eq!(r.deliver(vec![clusters("2").remove("b")]).await, Response::Ack);
    assert_eq!(r.clusters(), ["a"]);
    assert!(Arc::ptr_eq(&a, &r.snapshot.load().clusters["a"]), "an unchanged cluster keeps its object");
    let l = listeners("1").upsert("l", Resource::Listener(listener("l", "a")));
    assert_eq!(r.deliver(vec![l]).await, Response::Ack);
    assert_eq!(r.snapshot.load().listeners.len(), 1);
    assert!(Arc::ptr_eq(&a, &r.snapshot.load().clusters["a"]), "a listener update leaves the cluster as it was");
}

#[tokio::test]
async fn a_nacked_delivery_leaves_no_trace() {
    let r = rig();
    assert_eq!(r.deliver(vec![clusters("1").upsert("a", Resource::Cluster(cluster("a", false)))]).await, Response::Ack);
    let before = r.snapshot.load_full();
    // A valid cluster and a listener naming a cluster nobody has: the whole delivery goes.
    let bad = vec![
        clusters("2").upsert("b", Resource::Cluster(cluster("b", false))),
        listeners("1").upsert("l", Resource::Listener(listener("l", "missing"))),
    ];
    let Response::Nack(errors) = r.deliver(bad).await else { panic!("a dangling reference is NACKed") };
    let e = &errors.0[0];
    assert_eq!(e.file, Path::new("fake-lds"), "the error names where the listener came from");
    assert!(e.path.starts_with("listeners[\"l\"]"), "and its field path: {}", e.path);
    assert!(e.message.contains("missing"), "and the reason: {}", e.message);
    assert!(Arc::ptr_eq(&before, &r.snapshot.load_full()), "the running snapshot is untouched");
    assert_eq!(r.clusters(), ["a"]);
    // The next delivery starts from what runs, not from what was refused.
    assert_eq!(r.deliver(vec![clusters("3").upsert("c", Resource::Cluster(cluster("c", false)))]).await, Response::Ack);
    assert_eq!(r.clusters(), ["a", "c"]);
}

#[tokio::test]
async fn a_resource_of_the_wrong_type_is_nacked() {
    let r = rig();
    let wrong = clusters("1").upsert("l", Resource::Listener(listener("l", "a")));
    let Response::Nack(e) = r.deliver(vec![wrong]).await else { panic!("NACK expected") };
    assert!(e.0[0].message.contains("Listener"), "{}", e);
    assert!(r.clusters().is_empty());
}

#[tokio::test]
async fn assignments_reach_the_cluster_through_the_commit() {
    let r = rig();
    assert_eq!(r.deliver(vec![clusters("1").upsert("e", Resource::Cluster(cluster("e", true)))]).await, Response::Ack);
    let e = Arc::clone(&r.snapshot.load().clusters["e"]);
    assert!(e.hosts.load().all.is_empty());
    let cla = |v: &str, ports: &[u16]| {
        Update::new(TypeUrl::ClusterLoadAssignment, v, "fake-eds")
            .upsert("svc", Resource::ClusterLoadAssignment(endpoints(ports)))
    };
    assert_eq!(r.deliver(vec![cla("1", &[1, 2])]).await, Response::Ack);
    let ports = |c: &crate::upstream::Cluster| c.hosts.load().all.iter().map(|h| h.addr.port()).collect::<Vec<_>>();
    assert_eq!(ports(&e), [1, 2], "the running cluster took the endpoints");
    assert!(Arc::ptr_eq(&e, &r.snapshot.load().clusters["e"]), "without being rebuilt");
    let kept = Arc::clone(&e.hosts.load().all[1]);
    assert_eq!(r.deliver(vec![cla("2", &[2, 3])]).await, Response::Ack);
    assert_eq!(ports(&e), [2, 3]);
    assert!(Arc::ptr_eq(&kept, &e.hosts.load().all[0]), "the host that stayed is the same host");
    // An assignment nothing uses any more is dropped with its cluster.
    assert_eq!(r.deliver(vec![clusters("2").remove("e")]).await, Response::Ack);
    assert_eq!(r.deliver(vec![clusters("3").upsert("e", Resource::Cluster(cluster("e", true)))]).await, Response::Ack);
    assert!(r.snapshot.load().clusters["e"].hosts.load().all.is_empty(), "no stale endpoints for a new cluster");
}

#[test]
fn next_keeps_listener_order_and_leaves_self_alone() {
    let mut base = Resources::default();
    base.maps.clusters.insert("a".into(), cluster("a", false));
    let u = listeners("1")
        .upsert("z", Resource::Listener(listener("z", "a")))
        .upsert("m", Resource::Listener(listener("m", "a")));
    let next = base.next(&[u]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next.order, ["z", "m"], "first delivered first, not by name");
    assert!(base.maps.listeners.is_empty(), "the base is not touched");
    let again = next.next(&[listeners("2").upsert("m", Resource::Listener(listener("m", "a"))).remove("z")]);
    assert_eq!(again.map(|r| r.order).unwrap_or_default(), ["m"]);
}
