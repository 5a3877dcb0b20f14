//! What triggers a reload and what does not: identical content, unrelated files in the
//! watched folder, and several files written together (one consistent snapshot).

use serde_json::json;

use crate::common::assert_eventually;
use crate::common::config::static_cluster;
use crate::common::upstream;
use crate::reload::{cds, cla, rds_listener, rds_to, Rig, Write, RDS};

#[tokio::test]
async fn identical_content_changes_nothing() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/").await, "a");
    let attempts = rig.stat(&format!("{RDS}.update_attempt")).await;
    let reloads = rig.reloads().await.len();
    let same = std::fs::read_to_string(rig.path("rds.yaml")).expect("read rds.yaml");
    Write::Rename.apply(&rig.path("rds.yaml"), &same);
    Write::InPlace.apply(&rig.path("rds.yaml"), &same);
    // A real change to another file, written after: once it is live, the identical writes
    // before it have been seen.
    Write::Rename.apply(&rig.path("eds.yaml"), &cla("v2", "e_svc", &[rig.setup.b.addr()]));
    assert_eventually!(rig.hit("/eds").await == "b", "eds.yaml moved e_svc to b");
    // The attempt is recorded just after the new snapshot serves.
    assert_eventually!(rig.reloads().await.len() > reloads, "the eds.yaml reload is recorded");
    assert_eq!(rig.stat(&format!("{RDS}.update_attempt")).await, attempts, "rds update_attempt moved");
    let now = rig.reloads().await;
    assert_eq!(now.len(), reloads + 1, "one new reload (eds.yaml) expected: {now:#?}");
    let files = now[0]["files"].to_string();
    assert!(!files.contains("rds.yaml"), "the identical rds.yaml took part in a reload: {:#?}", now[0]);
    assert_eq!(rig.hit("/").await, "a");
}

#[tokio::test]
async fn unrelated_files_trigger_nothing() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/").await, "a");
    let reloads = rig.reloads().await.len();
    rig.setup.file("notes.txt", "remember the milk\n");
    rig.setup.file(".rds.yaml.swp", "b0VIM 9.0 swap bytes");
    rig.setup.file("rds.yaml.bak", &rds_to("bak", "b_svc"));
    std::fs::create_dir(rig.path("subdir")).expect("mkdir");
    Write::Rename.apply(&rig.path("eds.yaml"), &cla("v2", "e_svc", &[rig.setup.b.addr()]));
    assert_eventually!(rig.hit("/eds").await == "b", "eds.yaml moved e_svc to b");
    assert_eventually!(rig.reloads().await.len() > reloads, "the eds.yaml reload is recorded");
    let now = rig.reloads().await;
    assert_eq!(now.len(), reloads + 1, "only the eds.yaml change reloads: {now:#?}");
    assert_eq!(now[0]["files"], json!([rig.path("eds.yaml").to_str().unwrap()]), "{:#?}", now[0]);
    assert_eq!(rig.hit("/").await, "a", "rds.yaml.bak must not be read");
}

#[tokio::test]
async fn cds_and_rds_written_together_apply_as_one() {
    // With the default (no window) two renames apply as one batch only when the watcher
    // wakes after both; a window makes it certain.
    let rig = Rig::dynamic_args(|s| vec![rds_listener(s, "main")], &["--watch-coalesce-ms", "50"]).await;
    assert_eq!(rig.hit("/").await, "a");
    let c = upstream::http1().name("c").spawn().await;
    // The route first: alone it would name a cluster that does not exist yet.
    Write::Rename.apply(&rig.path("rds.yaml"), &rds_to("v2", "c_svc"));
    Write::Rename.apply(&rig.path("cds.yaml"), &cds(&rig.setup, "v2", vec![static_cluster("c_svc", &[c.addr()])]));
    assert_eventually!(rig.hit("/").await == "c", "traffic reaches c");
    let both = |reloads: &[serde_json::Value]| {
        reloads.iter().any(|r| {
            let f = r["files"].to_string();
            r["outcome"] == "applied" && f.contains("rds.yaml") && f.contains("cds.yaml")
        })
    };
    // The attempt is recorded just after the new snapshot serves.
    assert_eventually!(both(&rig.reloads().await), "one applied reload names both files");
    rig.assert_no_rejected_reload().await;
    assert_eq!(rig.stat("cluster_manager.cds.update_rejected").await, 0);
    assert_eq!(rig.stat(&format!("{RDS}.update_rejected")).await, 0);
}
