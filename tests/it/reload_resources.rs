//! What a reload does to running things: listeners added, changed under an open keep-alive
//! connection, removed (drained); clusters removed under an in-flight request or kept with
//! their upstream connections; an empty EDS update; an edit of the bootstrap file itself.

use serde_json::json;

use crate::common::client::Client;
use crate::common::config::{bootstrap, direct, static_cluster};
use crate::common::legate::{parse_listeners, Legate};
use crate::common::{assert_eventually, dead_addr};
use crate::reload::{body_text, cds, cds_of, cla, direct_listener, discovery, rds_listener, rds_to, Conn, Rig, Write};

#[tokio::test]
async fn lds_adds_a_listener() {
    let rig = Rig::dynamic(|s| vec![rds_listener(s, "main")]).await;
    let main = rig.listener("main").await.expect("main");
    let mut conn = Conn::open(main).await;
    assert_eq!(conn.get("/").await.expect("GET on main").status, 200);
    let added = rig.stat("listener_manager.listener_added").await;
    let s = &rig.setup;
    Write::Rename.apply(
        &rig.path("lds.yaml"),
        &discovery("v2", vec![rds_listener(s, "main"), direct_listener("extra", "extra says hi")]),
    );
    assert_eventually!(rig.listener("extra").await.is_some(), "listener extra shows in /listeners");
    let extra = rig.listener("extra").await.unwrap();
    assert_ne!(extra.port(), 0);
    let r = Client::h1().get(&format!("http://{extra}/")).await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "extra says hi".to_string()));
    assert_eq!(rig.stat("listener_manager.listener_added").await, added + 1);
    assert_eq!(rig.stat("listener_manager.total_listeners_active").await, 2);
    assert_eventually!(rig.stat("listener_manager.lds.update_success").await == 2, "the LDS update is counted");
    // main did not change: same socket, and the open connection still works.
    assert_eq!(rig.listener("main").await, Some(main), "main keeps its address");
    let r = conn.get("/").await.expect("keep-alive connection to main survives the reload");
    assert_eq!(r.status, 200);
    assert!(r.header("connection").is_none(), "unexpected connection header: {}", r.head);
    assert_eventually!(
        rig.reloads().await[0]["changes"]["listeners"]["added"] == json!(["extra"]),
        "the reload is recorded"
    );
}

#[tokio::test]
async fn lds_changes_a_route_open_connections_keep_their_chain() {
    let rig = Rig::dynamic(|_| vec![direct_listener("main", "v1")]).await;
    let main = rig.listener("main").await.expect("main");
    let mut conn = Conn::open(main).await;
    assert_eq!(body_text(&conn.get("/").await.expect("first GET")), "v1");
    let modified = rig.stat("listener_manager.listener_modified").await;
    Write::Rename.apply(&rig.path("lds.yaml"), &discovery("v2", vec![direct_listener("main", "v2")]));
    assert_eventually!(
        Client::h1().get(&format!("http://{main}/")).await.text() == "v2",
        "a new connection sees the new route"
    );
    assert_eq!(rig.stat("listener_manager.listener_modified").await, modified + 1);
    assert_eq!(rig.listener("main").await, Some(main), "main keeps its address");
    // As in Envoy, the open connection stays on the filter chain that accepted it (the route
    // is part of that chain) and drains.
    let r = conn.get("/").await.unwrap_or_else(|e| panic!("the keep-alive connection broke: {e}"));
    assert_eq!(body_text(&r), "v1");
    assert_eq!(r.header("connection").as_deref(), Some("close"), "draining answer: {}", r.head);
}

#[tokio::test]
async fn lds_removes_a_listener_and_drains_its_connections() {
    let gone_listener = || {
        let mut l = direct_listener("gone", "bye");
        l["filter_chains"][0]["filters"][0]["typed_config"]["stat_prefix"] = json!("gone_http");
        l
    };
    let rig = Rig::dynamic_args(|s| vec![rds_listener(s, "main"), gone_listener()], &["--drain-time-s", "1"]).await;
    assert!(rig.legate.admin_get("/stats").await.text().contains("http.gone_http.downstream_cx_total"));
    let gone = rig.listener("gone").await.expect("gone");
    let mut busy = Conn::open(gone).await;
    let mut idle = Conn::open(gone).await;
    assert_eq!(body_text(&busy.get("/").await.expect("GET")), "bye");
    assert_eq!(body_text(&idle.get("/").await.expect("GET")), "bye");
    let removed = rig.stat("listener_manager.listener_removed").await;
    Write::Rename.apply(&rig.path("lds.yaml"), &discovery("v2", vec![rds_listener(&rig.setup, "main")]));
    assert_eventually!(rig.listener("gone").await.is_none(), "gone leaves /listeners");
    assert_eq!(rig.stat("listener_manager.listener_removed").await, removed + 1);
    assert_eq!(rig.stat("listener_manager.total_listeners_active").await, 1);
    let r = busy.get("/").await.expect("the open connection gets one more answer");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("connection").as_deref(), Some("close"), "draining answer: {}", r.head);
    assert_eventually!(tokio::net::TcpStream::connect(gone).await.is_err(), "new connections are refused");
    // The idle connection is closed once the drain time is over.
    assert_eventually!(idle.get("/").await.is_err(), "the idle connection is closed after the drain time");
    assert_eq!(rig.hit("/").await, "a", "main is untouched");
    drop((busy, idle));
    assert_eventually!(
        !rig.legate.admin_get("/stats").await.text().contains("http.gone_http."),
        "the removed listener's connection-manager stats leave /stats once it has drained"
    );
    assert!(rig.legate.admin_get("/stats").await.text().contains("http.ingress_http.downstream_cx_total"));
}

/// With the default (long) drain time, a removed listener must refuse new connections at once
/// rather than leave them queued on a socket nobody accepts from.
#[tokio::test]
async fn lds_removed_listener_refuses_new_connections_during_the_drain() {
    let rig = Rig::dynamic(|s| vec![rds_listener(s, "main"), direct_listener("gone", "bye")]).await;
    let gone = rig.listener("gone").await.expect("gone");
    Write::Rename.apply(&rig.path("lds.yaml"), &discovery("v2", vec![rds_listener(&rig.setup, "main")]));
    assert_eventually!(rig.listener("gone").await.is_none(), "gone leaves /listeners");
    assert_eventually!(tokio::net::TcpStream::connect(gone).await.is_err(), "new connections to {gone} are refused");
}

#[tokio::test]
async fn lds_moves_a_listener_to_a_new_address() {
    let rig = Rig::dynamic(|_| vec![direct_listener("main", "here")]).await;
    let old = rig.listener("main").await.expect("main");
    let new = dead_addr();
    let mut moved = direct_listener("main", "moved");
    moved["address"]["socket_address"]["port_value"] = json!(new.port());
    Write::Rename.apply(&rig.path("lds.yaml"), &discovery("v2", vec![moved]));
    assert_eventually!(rig.listener("main").await == Some(new), "main moves to {new}");
    let r = Client::h1().get(&format!("http://{new}/")).await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "moved".to_string()));
    assert_eventually!(tokio::net::TcpStream::connect(old).await.is_err(), "the old address stops accepting");
    rig.assert_no_rejected_reload().await;
}

/// A request that started before a route swap finishes on the old route.
#[tokio::test]
async fn rds_swap_under_an_in_flight_request() {
    let rig = Rig::rds().await;
    let main = rig.listener("main").await.expect("main");
    let slow = tokio::spawn(async move { Client::h1().get(&format!("http://{main}/delay/1500ms")).await });
    assert_eventually!(rig.setup.a.in_flight() == 1, "the slow request reaches a");
    Write::Rename.apply(&rig.path("rds.yaml"), &rds_to("v2", "b_svc"));
    assert_eventually!(rig.hit("/").await == "b", "new requests take the new route");
    let r = slow.await.expect("slow request task");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.instance(), "a", "the in-flight request finishes on the old route");
}

#[tokio::test]
async fn cds_removes_a_cluster_under_an_in_flight_request() {
    let rig = Rig::dynamic(|s| vec![rds_listener(s, "main")]).await;
    let main = rig.listener("main").await.expect("main");
    let slow = tokio::spawn(async move { Client::h1().get(&format!("http://{main}/delay/1500ms")).await });
    assert_eventually!(rig.setup.a.in_flight() == 1, "the slow request reaches a");
    let removed = rig.stat("cluster_manager.cluster_removed").await;
    let active = rig.stat("cluster_manager.active_clusters").await;
    let s = &rig.setup;
    // The route moves to b_svc and a_svc goes away, together.
    Write::Rename.apply(&rig.path("rds.yaml"), &rds_to("v2", "b_svc"));
    Write::Rename.apply(&rig.path("cds.yaml"), &cds_of(s, "v2", vec![static_cluster("b_svc", &[s.b.addr()])]));
    assert_eventually!(
        rig.stat("cluster_manager.cluster_removed").await == removed + 1,
        "a_svc is removed (reloads: {:#?})",
        rig.reloads().await
    );
    assert_eq!(rig.stat("cluster_manager.active_clusters").await, active - 1);
    assert_eq!(rig.hit("/").await, "b");
    let r = slow.await.expect("slow request task");
    assert_eq!(r.status, 200, "the in-flight request through the removed cluster completes: {}", r.text());
    assert_eq!(r.instance(), "a");
    assert_eventually!(
        !rig.legate.admin_get("/stats").await.text().contains("cluster.a_svc."),
        "cluster.a_svc.* stats are dropped after the cluster is gone"
    );
}

#[tokio::test]
async fn cds_change_keeps_the_untouched_cluster_pool() {
    let rig = Rig::dynamic(|s| vec![rds_listener(s, "main")]).await;
    let first = rig.get("/").await.echo();
    assert_eq!(first["instance"], "a");
    let conns = rig.setup.a.connections();
    let modified = rig.stat("cluster_manager.cluster_modified").await;
    let s = &rig.setup;
    let mut b_svc = static_cluster("b_svc", &[s.b.addr()]);
    b_svc["connect_timeout"] = json!("2s");
    Write::Rename.apply(&rig.path("cds.yaml"), &cds_of(s, "v2", vec![static_cluster("a_svc", &[s.a.addr()]), b_svc]));
    assert_eventually!(rig.stat("cluster_manager.cluster_modified").await == modified + 1, "b_svc is modified");
    // The source records the reload once the core has acknowledged it, after the commit.
    assert_eventually!(
        rig.reloads().await[0]["changes"]["clusters"]["modified"] == json!(["b_svc"]),
        "the reload is recorded"
    );
    let again = rig.get("/").await.echo();
    assert_eq!(again["instance"], "a");
    assert_eq!(again["conn_seq"], first["conn_seq"], "a_svc's upstream connection is reused: {again}");
    assert_eq!(rig.setup.a.connections(), conns, "a saw no new connection");
}

#[tokio::test]
async fn eds_empty_update_keeps_the_old_endpoints() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/eds").await, "a");
    let empty = rig.stat("cluster.e_svc.update_empty").await;
    Write::Rename.apply(&rig.path("eds.yaml"), &discovery("v2", vec![]));
    assert_eventually!(rig.stat("cluster.e_svc.update_empty").await == empty + 1, "update_empty counts");
    assert_eq!(rig.stat("cluster.e_svc.update_rejected").await, 0);
    for _ in 0..5 {
        assert_eq!(rig.hit("/eds").await, "a", "traffic still flows to the old endpoint");
    }
    Write::Rename.apply(&rig.path("eds.yaml"), &cla("v3", "e_svc", &[rig.setup.b.addr()]));
    assert_eventually!(rig.hit("/eds").await == "b", "the next real assignment applies");
}

/// `http://MAIN/` as `/listeners` shows it now.
async fn main_url(legate: &Legate) -> String {
    let ls = parse_listeners(&legate.admin_get("/listeners").await.text());
    format!("http://{}/", ls["main"])
}

#[tokio::test]
async fn bootstrap_edit_applies_live() {
    let boot = |body: &str| bootstrap().routes(json!([direct(json!({"prefix": "/"}), body)])).yaml();
    let legate = Legate::start(boot("static v1")).await;
    let c = Client::h1();
    assert_eq!(c.get(&main_url(&legate).await).await.text(), "static v1");
    Write::Rename.apply(legate.config_path(), &boot("static v2"));
    assert_eventually!(c.get(&main_url(&legate).await).await.text() == "static v2", "the bootstrap edit is served");
    assert_eventually!(
        legate.admin_get("/reloads").await.json()["reloads"][0]["outcome"] == "applied",
        "the reload is recorded"
    );
}

#[tokio::test]
async fn cds_adds_a_cluster() {
    let rig = Rig::dynamic(|s| vec![rds_listener(s, "main")]).await;
    let c = crate::common::upstream::http1().name("c").spawn().await;
    let added = rig.stat("cluster_manager.cluster_added").await;
    Write::Rename.apply(&rig.path("cds.yaml"), &cds(&rig.setup, "v2", vec![static_cluster("c_svc", &[c.addr()])]));
    assert_eventually!(rig.stat("cluster_manager.cluster_added").await == added + 1, "c_svc is added");
    assert_eq!(rig.stat("cluster_manager.active_clusters").await, 4);
    // The source counts its update once the core has acknowledged it, after the commit.
    assert_eventually!(rig.stat("cluster_manager.cds.update_success").await == 2, "the CDS update is counted");
    Write::Rename.apply(&rig.path("rds.yaml"), &rds_to("v2", "c_svc"));
    assert_eventually!(rig.hit("/").await == "c", "traffic reaches the added cluster");
}
