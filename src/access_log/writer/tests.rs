//! The writer task against real files.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::{spawn_writer, spawn_writer_with_capacity, Sink};

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
    let writer = spawn_writer_with_capacity(Sink::File(path.clone()), 2).expect("open");
    // The current-thread runtime does not run the writer task until this test awaits.
    let queued: Vec<bool> = (0..5).map(|i| writer.send(format!("{i}\n"))).collect();
    assert_eq!(queued, [true, true, false, false, false]);
    assert_eq!(writer.dropped(), 3);
    assert_eq!(writer.dropped_counter().load(Ordering::Relaxed), 3);
    writer.flush().await;
    assert_eq!(read(&path), "0\n1\n");
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
