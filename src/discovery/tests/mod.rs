//! Integration tests: real files in temp directories, real inotify, bounded waits on the
//! receiver. "Nothing else was reported" is checked with a sentinel: a watched file written
//! afterwards must arrive alone in the next batch.

mod symlinks;
mod writes;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::mpsc::Receiver;

use super::{FileChange, WatchOptions, WatchSpec, Watcher};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SENTINEL: &str = "sentinel.yaml";
const WAIT: Duration = Duration::from_secs(5);

struct Fixture {
    dir: TempDir,
    watcher: Watcher,
    rx: Receiver<Vec<FileChange>>,
    sentinel_writes: u32,
}

impl Fixture {
    /// Writes `files` into a fresh directory, then watches `watched` (names in it) and the
    /// sentinel.
    fn start(files: &[(&str, &str)], watched: &[&str], opts: WatchOptions) -> io::Result<Fixture> {
        let dir = tempfile::tempdir()?;
        for (name, content) in files {
            fs::write(dir.path().join(name), content)?;
        }
        let specs = watched.iter().chain([&SENTINEL]).map(|n| WatchSpec::new(dir.path().join(n))).collect();
        Self::with_specs(dir, specs, opts)
    }

    fn with_specs(dir: TempDir, specs: Vec<WatchSpec>, opts: WatchOptions) -> io::Result<Fixture> {
        let (watcher, rx) = Watcher::spawn(specs, opts)?;
        Ok(Fixture { dir, watcher, rx, sentinel_writes: 0 })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn next(&mut self) -> Vec<FileChange> {
        match tokio::time::timeout(WAIT, self.rx.recv()).await {
            Ok(Some(batch)) => batch,
            Ok(None) => panic!("watcher stopped"),
            Err(_) => panic!("no batch within {WAIT:?}"),
        }
    }

    /// The next batch is exactly one change of `name`.
    async fn expect(&mut self, name: &str, content: Option<&str>, settled: bool) {
        let batch = self.next().await;
        let want = change(&self.path(name), content, settled);
        assert_eq!(batch, vec![want], "expected one change of {name}");
    }

    /// Nothing was reported but what the test already took.
    async fn expect_nothing_else(&mut self) -> io::Result<()> {
        self.sentinel_writes += 1;
        let content = format!("sentinel {}", self.sentinel_writes);
        write_atomic(&self.path(SENTINEL), &content)?;
        self.expect(SENTINEL, Some(&content), true).await;
        Ok(())
    }
}

fn change(path: &Path, content: Option<&str>, settled: bool) -> FileChange {
    let content = content.map(|c| bytes::Bytes::copy_from_slice(c.as_bytes()));
    let hash = content.as_deref().map_or(0, super::content_hash);
    FileChange { path: path.to_path_buf(), content, hash, settled }
}

/// Write a temp file in the same directory, rename it over `path`.
fn write_atomic(path: &Path, content: &str) -> io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, content)?;
    fs::rename(&tmp, path)
}

/// A unique name for a ConfigMap's timestamped folder.
fn timestamp_dir() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("..2026_11_22_03_41_29.{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Updates a Kubernetes ConfigMap volume at `cm` as the kubelet (and the conformance harness)
/// does: new timestamped folder with every file, `..data_tmp` pointed at it, renamed over
/// `..data`, links `NAME -> ..data/NAME` created once, the old folder deleted.
fn configmap_write(cm: &Path, files: &[(&str, &str)]) -> io::Result<()> {
    use std::os::unix::fs::symlink;
    fs::create_dir_all(cm)?;
    let ts = timestamp_dir();
    fs::create_dir(cm.join(&ts))?;
    let data = cm.join("..data");
    let prev = fs::read_link(&data).ok();
    if prev.is_some() {
        for entry in fs::read_dir(&data)? {
            let entry = entry?;
            if !files.iter().any(|(n, _)| entry.file_name() == *n) {
                fs::copy(entry.path(), cm.join(&ts).join(entry.file_name()))?;
            }
        }
    }
    for (name, content) in files {
        fs::write(cm.join(&ts).join(name), content)?;
    }
    symlink(&ts, cm.join("..data_tmp"))?;
    fs::rename(cm.join("..data_tmp"), &data)?;
    for (name, _) in files {
        let link = cm.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(name), link)?;
        }
    }
    if let Some(prev) = prev {
        fs::remove_dir_all(cm.join(prev))?;
    }
    Ok(())
}
