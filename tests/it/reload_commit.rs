//! Building the next configuration has no effect on the running one: a rejected batch leaves
//! endpoints, connections and stats as they were, and everything a batch changes takes
//! effect at its commit. REST EDS pollers follow their management cluster by name across
//! reloads.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::config::{endpoint, static_cluster};
use crate::reload::{
    cds, cds_of, cla, cluster_listener, discovery, rds_listener, rds_to, typed, Rig, Write, CLA_T, RDS,
};

/// A dynamic rig whose watcher gathers the writes of a test into one batch.
async fn batching_rig() -> Rig {
    Rig::dynamic_args(|s| vec![rds_listener(s, "main")], &["--watch-coalesce-ms", "300"]).await
}

/// An LDS file with `main` and a listener on a port another socket holds.
fn lds_that_cannot_bind(rig: &Rig, taken: &std::net::TcpListener) -> String {
    let mut l = cluster_listener("taken", "b_svc");
    l["address"]["socket_address"]["port_value"] = json!(taken.local_addr().expect("addr").port());
    discovery("v2", vec![rds_listener(&rig.setup, "main"), l])
}

async fn clusters_text(rig: &Rig) -> String {
    rig.legate.admin_get("/clusters").await.text()
}

#[tokio::test]
async fn a_rejected_batch_does_not_set_endpoints() {
    let rig = batching_rig().await;
    assert_eq!(rig.hit("/eds").await, "a");
    let (a, b) = (rig.setup.a.addr(), rig.setup.b.addr());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let rejected = rig.stat("listener_manager.lds.update_rejected").await;
    Write::Rename.apply(&rig.path("eds.yaml"), &cla("v2", "e_svc", &[b]));
    Write::Rename.apply(&rig.path("lds.yaml"), &lds_that_cannot_bind(&rig, &taken));
    assert_eventually!(
        rig.stat("listener_manager.lds.update_rejected").await == rejected + 1,
        "the listener that cannot bind rejects the batch"
    );
    let reloads = rig.reloads().await;
    assert_eq!(reloads[0]["outcome"], "rejected", "{reloads:#?}");
    assert!(reloads[0]["files"].to_string().contains("eds.yaml"), "one batch: {reloads:#?}");
    let text = clusters_text(&rig).await;
    assert!(text.contains(&format!("e_svc::{a}::")), "e_svc keeps a:\n{text}");
    assert!(!text.contains(&format!("e_svc::{b}::")), "the rejected endpoint leaked into e_svc:\n{text}");
    assert_eq!(rig.hit("/eds").await, "a");
    assert_eq!(rig.stat("cluster.e_svc.membership_change").await, 1, "only the first assignment counts");
}

#[tokio::test]
async fn a_rejected_batch_keeps_idle_connections() {
    let rig = batching_rig().await;
    let s = &rig.setup;
    assert_eq!(rig.hit("/").await, "a");
    assert_eq!(rig.stat("cluster.a_svc.upstream_cx_total").await, 1);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    // a_svc rebuilt with b instead of a: alone it would close a's idle connection.
    let moved = cds_of(s, "v2", vec![static_cluster("a_svc", &[s.b.addr()]), static_cluster("b_svc", &[s.b.addr()])]);
    let rejected = rig.stat("listener_manager.lds.update_rejected").await;
    Write::Rename.apply(&rig.path("cds.yaml"), &moved);
    Write::Rename.apply(&rig.path("lds.yaml"), &lds_that_cannot_bind(&rig, &taken));
    assert_eventually!(
        rig.stat("listener_manager.lds.update_rejected").await == rejected + 1,
        "the listener that cannot bind rejects the batch"
    );
    assert_eq!(rig.hit("/").await, "a");
    assert_eq!(rig.stat("cluster.a_svc.upstream_cx_total").await, 1, "the idle connection to a was closed");
    assert_eq!(rig.stat("cluster.a_svc.membership_change").await, 1, "a_svc's membership moved");
    // The same change alone applies, and then closes the connection it no longer uses.
    Write::Rename.apply(&rig.path("lds.yaml"), &discovery("v3", vec![rds_listener(s, "main")]));
    Write::Rename.apply(&rig.path("cds.yaml"), &moved.replace("v2", "v3"));
    assert_eventually!(rig.hit("/").await == "b", "a_svc moves to b");
    assert_eq!(rig.stat("cluster.a_svc.membership_change").await, 2);
}

/// A management server answering every REST EDS poll with the endpoints in `answer`.
struct Management {
    addr: SocketAddr,
    answer: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Management {
    async fn spawn(service: &'static str, first: SocketAddr) -> Management {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind management");
        let addr = listener.local_addr().expect("addr");
        let answer = Arc::new(Mutex::new(vec![first]));
        let shared = Arc::clone(&answer);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| {
                        let addrs = shared.lock().expect("answer").clone();
                        let eps: Vec<Value> = addrs.iter().map(|a| endpoint(*a)).collect();
                        let body = json!({"version_info": "1", "resources": [
                            typed(CLA_T, json!({"cluster_name": service, "endpoints": [{"lb_endpoints": eps}]}))
                        ]});
                        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string())))) }
                    });
                    let io = TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                });
            }
        });
        Management { addr, answer, task }
    }

    fn answer(&self, addrs: &[SocketAddr]) {
        *self.answer.lock().expect("answer") = addrs.to_vec();
    }
}

impl Drop for Management {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `cds.yaml` with `mgmt_svc` (the management server, `connect_timeout`) and `r_svc` (REST
/// EDS through it) besides the usual clusters.
fn cds_with_rest(rig: &Rig, version: &str, mgmt: SocketAddr, connect_timeout: &str) -> String {
    let mut m = static_cluster("mgmt_svc", &[mgmt]);
    m["connect_timeout"] = json!(connect_timeout);
    let r = json!({"name": "r_svc", "type": "EDS", "connect_timeout": "1s", "eds_cluster_config": {"eds_config": {
        "api_config_source": {"api_type": "REST", "cluster_names": ["mgmt_svc"], "refresh_delay": "0.1s"}
    }}});
    cds(&rig.setup, version, vec![m, r])
}

#[tokio::test]
async fn rest_eds_follows_its_management_cluster_across_reloads() {
    let rig = Rig::dynamic(|s| vec![rds_listener(s, "main")]).await;
    let (a, b) = (rig.setup.a.addr(), rig.setup.b.addr());
    let first = Management::spawn("r_svc", a).await;
    Write::Rename.apply(&rig.path("cds.yaml"), &cds_with_rest(&rig, "v2", first.addr, "1s"));
    Write::Rename.apply(&rig.path("rds.yaml"), &rds_to("v2", "r_svc"));
    assert_eventually!(
        rig.stat("cluster.r_svc.membership_total").await == 1,
        "r_svc gets a from the management server"
    );
    assert_eventually!(
        rig.version_text(&format!("{RDS}.version_text")).await.as_deref() == Some("v2"),
        "rds v2 applies"
    );
    assert_eq!(rig.hit("/").await, "a");
    // mgmt_svc moves to another management server; r_svc itself is not modified.
    let second = Management::spawn("r_svc", b).await;
    Write::Rename.apply(&rig.path("cds.yaml"), &cds_with_rest(&rig, "v3", second.addr, "2s"));
    assert_eventually!(rig.stat("cluster_manager.cluster_modified").await == 1, "cds v3 modifies mgmt_svc");
    // The file source records the reload after the core's ACK, a moment after the stat.
    assert_eventually!(
        rig.reloads().await[0]["changes"]["clusters"]["modified"] == json!(["mgmt_svc"]),
        "the last reload modified mgmt_svc: {:#?}",
        rig.reloads().await
    );
    drop(first);
    assert_eventually!(rig.hit("/").await == "b", "polling goes on through the new mgmt_svc");
    rig.assert_no_rejected_reload().await;
    second.answer(&[a, b]);
    assert_eventually!(rig.stat("cluster.r_svc.membership_total").await == 2, "and keeps following it");
}
