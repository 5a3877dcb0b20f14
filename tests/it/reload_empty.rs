//! An update is built only from a complete file: an emptied file (truncated, a comment-only
//! file, a redirect whose generator has not written yet) is never "nothing configured". A
//! complete empty file is rejected and counted; one still held open by its writer is read
//! again when the writer closes it.

use std::io::Write as _;
use std::time::Duration;

use crate::common::assert_eventually;
use crate::reload::{cluster_listener, discovery, rds_to, Rig, Write, RDS};
use crate::reload_bad::{rejected, rig};

#[tokio::test]
async fn an_empty_lds_file_is_rejected() {
    let rig = rig().await;
    let good = discovery("v9", vec![cluster_listener("main", "b_svc")]);
    rejected(&rig, "lds.yaml", "", "listener_manager.lds", "update_failure", "empty", &good).await;
}

#[tokio::test]
async fn whitespace_and_comment_only_files_are_empty() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/").await, "a");
    let failures = format!("{RDS}.update_failure");
    Write::Rename.apply(&rig.path("rds.yaml"), " \n\t\n");
    assert_eventually!(rig.stat(&failures).await == 1, "the whitespace-only rds.yaml is counted");
    Write::Rename.apply(&rig.path("rds.yaml"), "# being regenerated\n---\n");
    assert_eventually!(rig.stat(&failures).await == 2, "the comment-only rds.yaml is counted");
    assert_eq!(rig.hit("/").await, "a", "the route table stays");
    let reloads = rig.reloads().await;
    assert_eq!(reloads[0]["outcome"], "rejected", "{reloads:#?}");
}

/// `: > envoy.yaml`: the bootstrap truncated in place (conformance
/// `dynamic/bootstrap_truncated_keeps_serving`).
#[tokio::test]
async fn a_truncated_bootstrap_keeps_every_listener() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/").await, "a");
    let boot = rig.legate.config_path().to_path_buf();
    Write::InPlace.apply(&boot, "");
    assert_eventually!(rig.stat("server.bootstrap.update_failure").await == 1, "the empty bootstrap is counted");
    let reloads = rig.reloads().await;
    assert_eq!(reloads[0]["outcome"], "rejected", "{reloads:#?}");
    assert!(reloads[0]["files"].to_string().contains("legate.yaml"), "{reloads:#?}");
    assert_eq!(rig.hit("/").await, "a", "the listener keeps serving");
    assert!(rig.listener("main").await.is_some());
}

/// `(sleep 1; gen) > envoy.yaml`: the shell truncates at once, the generator writes later.
/// The quiet period passes while the file is empty and open: nothing happens until the
/// writer closes it.
#[tokio::test]
async fn a_slow_redirect_is_read_when_the_writer_closes() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/").await, "a");
    let boot = rig.legate.config_path().to_path_buf();
    let same = std::fs::read(&boot).expect("read bootstrap");
    let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&boot).expect("open bootstrap");
    let rds = rig.path("rds.yaml");
    let mut g = std::fs::OpenOptions::new().write(true).truncate(true).open(&rds).expect("open rds.yaml");
    // Longer than the quiet period (100 ms): the watcher reads both files empty meanwhile.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rig.hit("/").await, "a", "listeners and routes stay while the writers hold the files");
    f.write_all(&same).expect("write bootstrap");
    drop(f);
    g.write_all(rds_to("v2", "b_svc").as_bytes()).expect("write rds.yaml");
    drop(g);
    assert_eventually!(rig.hit("/").await == "b", "the rds.yaml written then closed applies");
    assert_eq!(rig.hit("/").await, "b");
    rig.assert_no_rejected_reload().await;
    assert_eq!(rig.stat(&format!("{RDS}.update_failure")).await, 0, "an open, empty file is not a failure");
}
