//! Every way of writing a file is picked up: atomic rename, in-place rewrite, vim's save,
//! delete then recreate, and a Kubernetes ConfigMap `..data` swap with and without
//! `watched_directory`, for an RDS file (route flips from a to b) and an EDS file.

use std::path::Path;

use crate::common::assert_eventually;
use crate::common::config::bootstrap;
use crate::reload::{cla, eds_cluster, file_source, rds_hcm, rds_to, with_node, ConfigMap, Rig, Setup, Write, RDS};

/// `rds.yaml` flips `/` from a_svc to b_svc when written with `how`; the RDS stats count one
/// success and nothing else, and `/reloads` records it as applied.
async fn rds_flip(how: Write) {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/").await, "a");
    let success = rig.stat(&format!("{RDS}.update_success")).await;
    how.apply(&rig.path("rds.yaml"), &rds_to("v2", "b_svc"));
    assert_eventually!(rig.hit("/").await == "b", "route flips to b after a {how:?} write");
    assert_eventually!(
        rig.version_text(&format!("{RDS}.version_text")).await.as_deref() == Some("v2"),
        "version_text shows v2"
    );
    assert_eq!(rig.stat(&format!("{RDS}.update_success")).await, success + 1, "one update_success");
    assert_eq!(rig.stat(&format!("{RDS}.update_rejected")).await, 0);
    assert_eq!(rig.stat(&format!("{RDS}.update_failure")).await, 0);
    rig.assert_no_rejected_reload().await;
    // The source records the reload once the core acknowledged it, after the commit.
    assert_eventually!(
        rig.reloads().await[0]["changes"]["routes"]["modified"] == serde_json::json!(["local_route"]),
        "the reload is recorded"
    );
    // And back again, the same way.
    how.apply(&rig.path("rds.yaml"), &rds_to("v3", "a_svc"));
    assert_eventually!(rig.hit("/").await == "a", "route flips back to a after a {how:?} write");
    rig.assert_no_rejected_reload().await;
}

#[tokio::test]
async fn rds_atomic_rename() {
    rds_flip(Write::Rename).await;
}

#[tokio::test]
async fn rds_in_place_rewrite() {
    rds_flip(Write::InPlace).await;
}

#[tokio::test]
async fn rds_vim_save() {
    rds_flip(Write::Vim).await;
}

#[tokio::test]
async fn rds_delete_then_recreate() {
    rds_flip(Write::DeleteRecreate).await;
}

/// A -> B -> A: the file goes back to exactly the content legate started with.
#[tokio::test]
async fn rds_back_to_the_first_content() {
    let rig = Rig::rds().await;
    let first = std::fs::read_to_string(rig.path("rds.yaml")).expect("read rds.yaml");
    assert_eq!(rig.hit("/").await, "a");
    Write::Rename.apply(&rig.path("rds.yaml"), &rds_to("v2", "b_svc"));
    assert_eventually!(rig.hit("/").await == "b", "route flips to b");
    Write::Rename.apply(&rig.path("rds.yaml"), &first);
    assert_eventually!(rig.hit("/").await == "a", "route flips back to a (the first content again)");
}

/// The same for an EDS file: a -> b -> a with the first file's exact bytes.
#[tokio::test]
async fn eds_back_to_the_first_content() {
    let rig = Rig::rds().await;
    let first = std::fs::read_to_string(rig.path("eds.yaml")).expect("read eds.yaml");
    assert_eq!(rig.hit("/eds").await, "a");
    Write::Rename.apply(&rig.path("eds.yaml"), &cla("v2", "e_svc", &[rig.setup.b.addr()]));
    assert_eventually!(rig.hit("/eds").await == "b", "e_svc moves to b");
    Write::Rename.apply(&rig.path("eds.yaml"), &first);
    assert_eventually!(rig.hit("/eds").await == "a", "e_svc moves back to a (the first content again)");
}

/// While the file is gone the old route serves; the recreated file applies.
#[tokio::test]
async fn rds_deleted_for_a_while_keeps_serving_then_recreated() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/").await, "a");
    std::fs::remove_file(rig.path("rds.yaml")).expect("remove");
    // Some requests while the file is missing (well past the watcher's quiet time).
    for _ in 0..20 {
        assert_eq!(rig.hit("/").await, "a", "old route serves while rds.yaml is missing");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    std::fs::write(rig.path("rds.yaml"), rds_to("v2", "b_svc")).expect("recreate");
    assert_eventually!(rig.hit("/").await == "b", "recreated rds.yaml applies");
    // The stats of an update are counted just after its snapshot serves.
    assert_eventually!(
        rig.stat(&format!("{RDS}.update_success")).await == 2,
        "initial load + the recreated file count as successes"
    );
}

#[tokio::test]
async fn eds_in_place_rewrite() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/eds").await, "a");
    Write::InPlace.apply(&rig.path("eds.yaml"), &cla("v2", "e_svc", &[rig.setup.b.addr()]));
    assert_eventually!(rig.hit("/eds").await == "b", "e_svc moves to b");
    assert_eventually!(rig.stat("cluster.e_svc.update_success").await == 2, "initial load + the rewrite succeed");
    assert_eq!(rig.stat("cluster.e_svc.update_rejected").await, 0);
    rig.assert_no_rejected_reload().await;
}

#[tokio::test]
async fn eds_delete_then_recreate() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/eds").await, "a");
    Write::DeleteRecreate.apply(&rig.path("eds.yaml"), &cla("v2", "e_svc", &[rig.setup.b.addr()]));
    assert_eventually!(rig.hit("/eds").await == "b", "e_svc moves to b");
    rig.assert_no_rejected_reload().await;
}

/// A rig whose `rds.yaml` and `eds.yaml` live in a ConfigMap volume `cm/`.
async fn configmap_rig(watched_directory: bool) -> (Rig, ConfigMap) {
    let s = Setup::new().await;
    let rds = rds_to("v1", "a_svc");
    let eds = cla("v1", "e_svc", &[s.a.addr()]);
    let cm = ConfigMap::create(&s.path("cm"), &[("rds.yaml", &rds), ("eds.yaml", &eds)]);
    let watched: Option<&Path> = watched_directory.then(|| cm.dir());
    let mut b = bootstrap().listener_hcm("main", rds_hcm(file_source(&cm.path("rds.yaml"), watched)));
    for c in s.static_clusters() {
        b = b.cluster(c);
    }
    b = b.cluster(eds_cluster("e_svc", file_source(&cm.path("eds.yaml"), watched)));
    let yaml = with_node(b.value(), None);
    (s.start(yaml).await, cm)
}

async fn configmap_swap(watched_directory: bool) {
    let (rig, mut cm) = configmap_rig(watched_directory).await;
    assert_eq!(rig.hit("/").await, "a");
    assert_eq!(rig.hit("/eds").await, "a");
    let a_eds = cla("v1", "e_svc", &[rig.setup.a.addr()]);
    cm.update(&[("rds.yaml", &rds_to("v2", "b_svc")), ("eds.yaml", &a_eds)]);
    assert_eventually!(rig.hit("/").await == "b", "route flips to b after the ..data swap");
    assert_eq!(rig.hit("/eds").await, "a", "eds.yaml did not change");
    let b_eds = cla("v2", "e_svc", &[rig.setup.b.addr()]);
    cm.update(&[("rds.yaml", &rds_to("v2", "b_svc")), ("eds.yaml", &b_eds)]);
    assert_eventually!(rig.hit("/eds").await == "b", "e_svc moves to b after the ..data swap");
    assert_eq!(rig.hit("/").await, "b");
    // Both files at once (fresh versions: see `rds_back_to_the_first_content`).
    let a_eds = cla("v3", "e_svc", &[rig.setup.a.addr()]);
    cm.update(&[("rds.yaml", &rds_to("v3", "a_svc")), ("eds.yaml", &a_eds)]);
    assert_eventually!(
        rig.hit("/").await == "a" && rig.hit("/eds").await == "a",
        "both files of the third generation apply"
    );
    rig.assert_no_rejected_reload().await;
    assert_eq!(rig.stat(&format!("{RDS}.update_rejected")).await, 0);
    assert_eq!(rig.stat("cluster.e_svc.update_rejected").await, 0);
}

#[tokio::test]
async fn configmap_swap_with_watched_directory() {
    configmap_swap(true).await;
}

#[tokio::test]
async fn configmap_swap_without_watched_directory() {
    configmap_swap(false).await;
}
