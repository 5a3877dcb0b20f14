//! Symlink swaps (Kubernetes ConfigMaps), the watched set changing, the safety poll, and the
//! handle's lifecycle.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::time::Duration;

use super::{change, configmap_write, write_atomic, Fixture, TestResult, SENTINEL, WAIT};
use crate::discovery::{content_hash, WatchOptions, WatchSpec, Watcher};

fn configmap_fixture(watched_directory: bool) -> Result<Fixture, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let cm = dir.path().join("cm");
    configmap_write(&cm, &[("rds.yaml", "v1"), ("lds.yaml", "l1")])?;
    let spec = |name: &str| {
        let spec = WatchSpec::new(cm.join(name));
        if watched_directory {
            spec.with_watched_directory(&cm)
        } else {
            spec
        }
    };
    let specs = vec![spec("rds.yaml"), spec("lds.yaml"), WatchSpec::new(dir.path().join(SENTINEL))];
    Ok(Fixture::with_specs(dir, specs, WatchOptions::default())?)
}

#[tokio::test]
async fn configmap_swap_without_watched_directory() -> TestResult {
    let mut fx = configmap_fixture(false)?;
    configmap_write(&fx.path("cm"), &[("rds.yaml", "v2")])?;
    fx.expect("cm/rds.yaml", Some("v2"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn configmap_swap_with_watched_directory() -> TestResult {
    let mut fx = configmap_fixture(true)?;
    configmap_write(&fx.path("cm"), &[("rds.yaml", "v2")])?;
    fx.expect("cm/rds.yaml", Some("v2"), true).await;
    configmap_write(&fx.path("cm"), &[("rds.yaml", "v3")])?;
    fx.expect("cm/rds.yaml", Some("v3"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn configmap_swap_of_two_files_is_one_batch() -> TestResult {
    let mut fx = configmap_fixture(false)?;
    configmap_write(&fx.path("cm"), &[("rds.yaml", "v2"), ("lds.yaml", "l2")])?;
    let mut batch = fx.next().await;
    batch.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        batch,
        vec![change(&fx.path("cm/lds.yaml"), Some("l2"), true), change(&fx.path("cm/rds.yaml"), Some("v2"), true)]
    );
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn set_specs_adds_and_drops_files_without_reporting_baselines() -> TestResult {
    let mut fx = Fixture::start(&[("lds.yaml", "l1"), ("rds.yaml", "r1")], &["lds.yaml"], WatchOptions::default())?;
    let sentinel = WatchSpec::new(fx.path(SENTINEL));
    fx.watcher.set_specs(vec![WatchSpec::new(fx.path("rds.yaml")), sentinel.clone()]);
    fx.expect_nothing_else().await?; // the new baseline r1 is not reported
    write_atomic(&fx.path("lds.yaml"), "l2")?; // dropped
    write_atomic(&fx.path("rds.yaml"), "r2")?;
    fx.expect("rds.yaml", Some("r2"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn applied_content_is_not_reported_again() -> TestResult {
    let mut fx = Fixture::start(&[("cds.yaml", "good")], &["cds.yaml"], WatchOptions::default())?;
    write_atomic(&fx.path("cds.yaml"), "bad")?;
    fx.expect("cds.yaml", Some("bad"), true).await;
    fx.watcher.applied(&fx.path("cds.yaml"), content_hash(b"good")); // rejected: still runs good
    write_atomic(&fx.path("cds.yaml"), "good")?;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn applied_older_than_the_baseline_reports_the_file() -> TestResult {
    // The caller read "old" at startup; the file changed before the watcher started.
    let mut fx = Fixture::start(&[("cds.yaml", "new")], &["cds.yaml"], WatchOptions::default())?;
    fx.watcher.applied(&fx.path("cds.yaml"), content_hash(b"old"));
    fx.expect("cds.yaml", Some("new"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn poll_sees_changes_outside_the_watched_directories() -> TestResult {
    let elsewhere = tempfile::tempdir()?;
    let real = elsewhere.path().join("real.yaml");
    fs::write(&real, "v1")?;
    let dir = tempfile::tempdir()?;
    symlink(&real, dir.path().join("eds.yaml"))?;
    let opts = WatchOptions { poll: Duration::from_millis(50), ..WatchOptions::default() };
    let specs = vec![WatchSpec::new(dir.path().join("eds.yaml")), WatchSpec::new(dir.path().join(SENTINEL))];
    let mut fx = Fixture::with_specs(dir, specs, opts)?;
    OpenOptions::new().write(true).truncate(true).open(&real)?.write_all(b"v2 longer")?;
    fx.expect("eds.yaml", Some("v2 longer"), false).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn a_directory_created_later_is_watched_once_it_exists() -> TestResult {
    let dir = tempfile::tempdir()?;
    let opts = WatchOptions { poll: Duration::from_millis(50), ..WatchOptions::default() };
    let specs = vec![WatchSpec::new(dir.path().join("cm/rds.yaml")), WatchSpec::new(dir.path().join(SENTINEL))];
    let mut fx = Fixture::with_specs(dir, specs, opts)?;
    configmap_write(&fx.path("cm"), &[("rds.yaml", "v1")])?;
    fx.expect("cm/rds.yaml", Some("v1"), true).await;
    configmap_write(&fx.path("cm"), &[("rds.yaml", "v2")])?;
    fx.expect("cm/rds.yaml", Some("v2"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[test]
fn the_handle_can_be_shared_across_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Watcher>();
}

#[tokio::test]
async fn dropping_the_handle_ends_the_task() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (watcher, mut rx) = Watcher::spawn(vec![WatchSpec::new(dir.path().join("x.yaml"))], WatchOptions::default())?;
    drop(watcher);
    assert!(matches!(tokio::time::timeout(WAIT, rx.recv()).await, Ok(None)));
    Ok(())
}
