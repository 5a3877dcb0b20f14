//! The writer task against real files.

use std::path::{Path, PathBuf};

use super::{spawn_writer, spawn_writer_with, Sink, WriterStats, QUEUE_CAPACITY, QUEUE_MAX_BYTES};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn writes_lines_in_order_and_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    std::fs::write(&path, "old\n").expect("seed");
    let writer = spawn_writer(Sink::File(path.clone())).expect("open");
    for i in 0..100 {
        assert!(writer.send(format!("line {i}\n")));
    }
    writer.clone().flush().await;
    let text = read(&path);
    let expected: String =
        std::iter::once("old\n".to_string()).chain((0..100).map(|i| format!("line {i}\n"))).collect();
    assert_eq!(text, expected);
    assert_eq!(writer.dropped(), 0);
}

#[tokio::test]
async fn reopen_after_rename_writes_the_new_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let writer = spawn_writer(Sink::File(path.clone())).expect("open");
    writer.send("before\n".to_string());
    writer.flush().await;
    std::fs::rename(&path, &rotated).expect("rotate");
    writer.send("still old\n".to_string());
    writer.flush().await;
    writer.reopen();
    writer.send("after\n".to_string());
    writer.flush().await;
    assert_eq!(read(&rotated), "before\nstill old\n");
    assert_eq!(read(&path), "after\n");
}

#[tokio::test]
async fn reopen_while_idle_creates_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let writer = spawn_writer(Sink::File(path.clone())).expect("open");
    std::fs::remove_file(&path).expect("remove");
    writer.reopen();
    writer.flush().await;
    assert!(path.exists());
}

#[tokio::test]
async fn a_full_queue_drops_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let stats = WriterStats::default();
    let writer = spawn_writer_with(Sink::File(path.clone()), 2, QUEUE_MAX_BYTES, stats.clone()).expect("open");
    // The current-thread runtime does not run the writer task until this test awaits.
    let queued: Vec<bool> = (0..5).map(|i| writer.send(format!("{i}\n"))).collect();
    assert_eq!(queued, [true, true, false, false, false]);
    assert_eq!(writer.dropped(), 3);
    assert_eq!(stats.dropped.value(), 3, "the stats handle is the writer's count");
    assert_eq!(stats.write_total_buffered.value(), 4, "two lines of two bytes queued");
    writer.flush().await;
    assert_eq!(read(&path), "0\n1\n");
    assert_eq!(stats.write_buffered.value(), 2);
    assert_eq!(stats.write_completed.value(), 1, "both lines in one write");
    assert_eq!(stats.write_total_buffered.value(), 0);
}

#[tokio::test]
async fn a_queue_full_of_bytes_drops_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let stats = WriterStats::default();
    let writer = spawn_writer_with(Sink::File(path.clone()), QUEUE_CAPACITY, 10, stats.clone()).expect("open");
    let queued: Vec<bool> = ["four\n", "five\n", "x\n", "y\n"].iter().map(|l| writer.send(l.to_string())).collect();
    assert_eq!(queued, [true, true, false, false], "10 bytes hold two 5-byte lines");
    assert_eq!(stats.dropped.value(), 2);
    writer.flush().await;
    // Written bytes leave the bound: the queue takes lines again.
    assert!(writer.send("z\n".to_string()));
    writer.flush().await;
    assert_eq!(read(&path), "four\nfive\nz\n");
}

#[tokio::test]
async fn a_failed_write_and_a_failed_reopen_are_counted() {
    // Writes to /dev/full fail with ENOSPC.
    let stats = WriterStats::default();
    let writer = spawn_writer_with(Sink::File(PathBuf::from("/dev/full")), 8, 1024, stats.clone()).expect("open");
    assert!(writer.send("lost\n".to_string()));
    writer.flush().await;
    assert_eq!((stats.write_failed.value(), stats.write_completed.value()), (1, 0));
    assert_eq!(stats.write_total_buffered.value(), 0, "a failed write is no longer buffered");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let writer = spawn_writer_with(Sink::File(path.clone()), 8, 1024, stats.clone()).expect("open");
    std::fs::rename(&path, &rotated).expect("rotate");
    // A directory where the file was: opening it for writing fails.
    std::fs::create_dir(&path).expect("mkdir");
    writer.reopen();
    writer.send("kept\n".to_string());
    writer.flush().await;
    assert_eq!(stats.reopen_failed.value(), 1);
    assert_eq!(read(&rotated), "kept\n", "the old file stays in use");
}

#[test]
fn stat_names_are_stable_and_safe() {
    assert_eq!(Sink::Stdout.stat_name(), "stdout");
    assert_eq!(Sink::Stderr.stat_name(), "stderr");
    assert_eq!(Sink::File("/var/log/envoy/access.log".into()).stat_name(), "var_log_envoy_access_log");
    assert_eq!(Sink::File("logs/a-b.log".into()).stat_name(), "logs_a_b_log");
}

#[tokio::test]
async fn a_bad_path_fails_at_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = spawn_writer(Sink::File(dir.path().join("missing/dir/access.log"))).expect_err("no such dir");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn spawning_outside_a_runtime_is_an_error() {
    assert!(spawn_writer(Sink::Stdout).is_err());
}
