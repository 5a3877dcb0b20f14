//! The ways people and tools write a file: each is exactly one report of the final content.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::time::{Duration, SystemTime};

use super::{change, write_atomic, Fixture, TestResult};
use crate::discovery::content_hash;
use crate::discovery::WatchOptions;

fn opts() -> WatchOptions {
    WatchOptions::default()
}

#[tokio::test]
async fn atomic_rename_is_one_settled_report() -> TestResult {
    let mut fx = Fixture::start(&[("rds.yaml", "v1")], &["rds.yaml"], opts())?;
    write_atomic(&fx.path("rds.yaml"), "v2")?;
    fx.expect("rds.yaml", Some("v2"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn in_place_rewrite_is_reported_when_the_writer_closes() -> TestResult {
    let mut fx = Fixture::start(&[("eds.yaml", "endpoints: [a]\n")], &["eds.yaml"], opts())?;
    {
        // Like `cat > eds.yaml`, with a pause after the truncate and between chunks.
        let mut f = OpenOptions::new().write(true).truncate(true).open(fx.path("eds.yaml"))?;
        tokio::time::sleep(Duration::from_millis(10)).await;
        f.write_all(b"endpoints: ")?;
        f.flush()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        f.write_all(b"[b]\n")?;
    }
    fx.expect("eds.yaml", Some("endpoints: [b]\n"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn harness_in_place_mode_seek_write_truncate() -> TestResult {
    // runner.py "inplace": open r+, seek 0, write, truncate, close (no O_TRUNC).
    let mut fx = Fixture::start(&[("rds.yaml", "a much longer old content\n")], &["rds.yaml"], opts())?;
    {
        let mut f = OpenOptions::new().read(true).write(true).open(fx.path("rds.yaml"))?;
        f.write_all(b"short\n")?;
        f.set_len(6)?;
    }
    fx.expect("rds.yaml", Some("short\n"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn a_writer_holding_the_file_open_is_reported_unsettled_after_quiet() -> TestResult {
    let mut fx = Fixture::start(&[("cds.yaml", "v1")], &["cds.yaml"], opts())?;
    let mut f = OpenOptions::new().write(true).truncate(true).open(fx.path("cds.yaml"))?;
    f.write_all(b"v2")?;
    f.flush()?;
    fx.expect("cds.yaml", Some("v2"), false).await;
    fx.watcher.applied(&fx.path("cds.yaml"), content_hash(b"v2")); // it validated and runs
    drop(f); // the close finds the same content, applied already: nothing more
    fx.expect_nothing_else().await?;
    Ok(())
}

/// An unsettled read that was not applied (it did not validate while its writer might still
/// be writing) is reported again, settled, when the close finds the same content: a truncated
/// file closed empty is then rejected and counted rather than waited on forever.
#[tokio::test]
async fn an_unsettled_report_not_applied_is_reported_settled_at_the_close() -> TestResult {
    let mut fx = Fixture::start(&[("cds.yaml", "v1")], &["cds.yaml"], opts())?;
    let f = OpenOptions::new().write(true).truncate(true).open(fx.path("cds.yaml"))?;
    fx.expect("cds.yaml", Some(""), false).await;
    drop(f);
    fx.expect("cds.yaml", Some(""), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn vim_rename_save_dance_is_one_report() -> TestResult {
    let mut fx = Fixture::start(&[("lds.yaml", "v1")], &["lds.yaml"], opts())?;
    let (file, swap, backup, probe) =
        (fx.path("lds.yaml"), fx.path(".lds.yaml.swp"), fx.path("lds.yaml~"), fx.path("4913"));
    fs::write(&swap, "swap")?;
    OpenOptions::new().append(true).open(&swap)?.write_all(b" more")?;
    File::create(&probe)?;
    fs::remove_file(&probe)?;
    fs::rename(&file, &backup)?;
    tokio::time::sleep(Duration::from_millis(5)).await; // longer than the coalescing window
    {
        let mut f = File::create(&file)?;
        f.write_all(b"v2")?;
        f.sync_all()?;
    }
    fs::set_permissions(&file, fs::metadata(&backup)?.permissions())?;
    fs::remove_file(&backup)?;
    fs::remove_file(&swap)?;
    fx.expect("lds.yaml", Some("v2"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn vim_backupcopy_save_writes_in_place() -> TestResult {
    let mut fx = Fixture::start(&[("lds.yaml", "v1")], &["lds.yaml"], opts())?;
    fs::copy(fx.path("lds.yaml"), fx.path("lds.yaml~"))?;
    fs::write(fx.path("lds.yaml"), "v2")?;
    fs::remove_file(fx.path("lds.yaml~"))?;
    fx.expect("lds.yaml", Some("v2"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn delete_then_recreate() -> TestResult {
    let mut fx = Fixture::start(&[("rds.yaml", "v1")], &["rds.yaml"], opts())?;
    fs::remove_file(fx.path("rds.yaml"))?;
    fx.expect("rds.yaml", None, true).await;
    fs::write(fx.path("rds.yaml"), "v1")?;
    fx.expect("rds.yaml", Some("v1"), true).await;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn same_content_and_touch_are_not_reported() -> TestResult {
    let mut fx = Fixture::start(&[("rds.yaml", "v1")], &["rds.yaml"], opts())?;
    let path = fx.path("rds.yaml");
    write_atomic(&path, "v1")?;
    fs::write(&path, "v1")?;
    let f = OpenOptions::new().write(true).open(&path)?;
    f.set_modified(SystemTime::now() + Duration::from_secs(5))?;
    drop(f);
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn files_not_watched_are_not_reported() -> TestResult {
    let mut fx = Fixture::start(&[("rds.yaml", "v1"), ("other.yaml", "x")], &["rds.yaml"], opts())?;
    write_atomic(&fx.path("other.yaml"), "y")?;
    fs::write(fx.path("rds.yaml~"), "backup")?;
    fs::write(fx.path(".rds.yaml.swp"), "swap")?;
    fs::remove_file(fx.path("other.yaml"))?;
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn files_renamed_together_are_one_batch() -> TestResult {
    // A wider window than the default 2 ms keeps this deterministic on a loaded machine.
    let opts = WatchOptions { coalesce: Duration::from_millis(20), ..opts() };
    let names = ["cds.yaml", "lds.yaml", "rds.yaml"];
    let files: Vec<_> = names.iter().map(|n| (*n, "v1")).collect();
    let mut fx = Fixture::start(&files, &names, opts)?;
    for n in names {
        fs::write(fx.path(&format!(".{n}.tmp")), format!("{n} v2"))?;
    }
    for n in names {
        fs::rename(fx.path(&format!(".{n}.tmp")), fx.path(n))?;
    }
    let mut batch = fx.next().await;
    batch.sort_by(|a, b| a.path.cmp(&b.path));
    let want: Vec<_> = names.iter().map(|n| change(&fx.path(n), Some(&format!("{n} v2")), true)).collect();
    assert_eq!(batch, want);
    fx.expect_nothing_else().await?;
    Ok(())
}

#[tokio::test]
async fn a_file_over_the_size_limit_is_skipped() -> TestResult {
    let mut fx = Fixture::start(&[("rds.yaml", "v1")], &["rds.yaml"], opts())?;
    let tmp = fx.path(".rds.yaml.tmp");
    File::create(&tmp)?.set_len(crate::discovery::MAX_FILE_SIZE + 1)?; // sparse
    fs::rename(&tmp, fx.path("rds.yaml"))?;
    fx.expect_nothing_else().await?;
    write_atomic(&fx.path("rds.yaml"), "v2")?;
    fx.expect("rds.yaml", Some("v2"), true).await;
    Ok(())
}
