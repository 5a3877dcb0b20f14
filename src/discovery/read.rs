//! Reading a watched file: bounded, through its symlinks, with the stamp the safety poll
//! compares and the symlinks whose replacement changes what the path points to.

use std::fs::{self, File, Metadata};
use std::hash::Hasher;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;

/// Files larger than this are not read: the change is logged as an error and skipped.
pub const MAX_FILE_SIZE: u64 = 64 << 20;

/// Symlinks followed at most while resolving a path (Linux's own limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// The hash reported in [`super::FileChange::hash`] and expected by [`super::Watcher::applied`].
/// Never 0, which stands for "gone".
pub fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hasher.write(bytes);
    match hasher.finish() {
        0 => 1,
        h => h,
    }
}

/// What the safety poll compares: a change means the file must be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub len: u64,
    pub mtime: Option<SystemTime>,
    pub dev: u64,
    pub ino: u64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Self {
        Stamp { len: meta.len(), mtime: meta.modified().ok(), dev: meta.dev(), ino: meta.ino() }
    }

    /// Same file object (not replaced by a rename or a symlink swap)?
    pub fn same_file(&self, other: &Stamp) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// The stamp of the file `path` resolves to; `None` when it does not exist or cannot be read.
pub(crate) fn stamp_of(path: &Path) -> Option<Stamp> {
    fs::metadata(path).ok().map(|m| Stamp::of(&m))
}

/// The result of reading a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Content(Bytes),
    Gone,
    /// Unreadable or too large; already logged.
    Failed,
}

/// A file as read, with what the state machine needs to watch it further.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    pub outcome: Outcome,
    pub stamp: Option<Stamp>,
    /// Every symlink traversed to reach the file (see [`symlinks_on_path`]).
    pub links: Vec<PathBuf>,
}

/// Reads `path` whole, following symlinks.
pub(crate) fn observe(path: &Path) -> Observation {
    let links = symlinks_on_path(path);
    match read_bounded(path) {
        Ok((content, stamp)) => Observation { outcome: Outcome::Content(content), stamp: Some(stamp), links },
        Err(e) if is_gone(&e) => Observation { outcome: Outcome::Gone, stamp: None, links },
        Err(e) => {
            tracing::error!(file.path = %path.display(), error = %e, "cannot read watched file; change skipped");
            Observation { outcome: Outcome::Failed, stamp: stamp_of(path), links }
        }
    }
}

fn is_gone(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// The stamp is taken before reading: if the file changes meanwhile, the next poll sees a
/// difference and reads again (never the reverse).
fn read_bounded(path: &Path) -> io::Result<(Bytes, Stamp)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
    }
    let too_large = || io::Error::other(format!("larger than {MAX_FILE_SIZE} bytes"));
    if meta.len() > MAX_FILE_SIZE {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_SIZE {
        return Err(too_large());
    }
    Ok((Bytes::from(buf), Stamp::of(&meta)))
}

/// Every symlink met while resolving `path`: the path itself when it is a link, each link it
/// points through, and the links among the components of each target (the `..data` of a
/// Kubernetes ConfigMap: `dir/f -> ..data/f`, `dir/..data -> ..2026_11_22_03_41_29.1`).
/// Paths are built lexically from `path`, so they compare equal to the paths notify reports
/// for the directories watched.
pub(crate) fn symlinks_on_path(path: &Path) -> Vec<PathBuf> {
    let mut links = Vec::new();
    let mut cur = path.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        let Ok(target) = fs::read_link(&cur) else { break };
        links.push(cur.clone());
        let base = cur.parent().map(Path::to_path_buf).unwrap_or_default();
        cur = if target.is_absolute() { target.clone() } else { base.join(&target) };
        // Links among the target's own components, e.g. `..data` in `..data/f`.
        let mut prefix = if target.is_absolute() { PathBuf::new() } else { base };
        let components: Vec<_> = target.components().collect();
        for component in components.iter().take(components.len().saturating_sub(1)) {
            prefix.push(component);
            if fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink()) {
                links.push(prefix.clone());
            }
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn hash_is_never_zero_and_tracks_content() {
        assert_ne!(content_hash(b""), 0);
        assert_eq!(content_hash(b"a"), content_hash(b"a"));
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }

    #[test]
    fn observe_reads_through_configmap_links() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let ts = dir.path().join("..2026_11_22_03_41_29.1");
        fs::create_dir(&ts)?;
        fs::write(ts.join("lds.yaml"), "v1")?;
        symlink("..2026_11_22_03_41_29.1", dir.path().join("..data"))?;
        symlink("..data/lds.yaml", dir.path().join("lds.yaml"))?;
        let obs = observe(&dir.path().join("lds.yaml"));
        assert_eq!(obs.outcome, Outcome::Content(Bytes::from_static(b"v1")));
        assert_eq!(obs.links, vec![dir.path().join("lds.yaml"), dir.path().join("..data")]);
        assert!(obs.stamp.is_some());
        Ok(())
    }

    #[test]
    fn observe_missing_and_dangling_is_gone() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(observe(&dir.path().join("nope")).outcome, Outcome::Gone);
        symlink("nowhere", dir.path().join("dangling"))?;
        let obs = observe(&dir.path().join("dangling"));
        assert_eq!(obs.outcome, Outcome::Gone);
        assert_eq!(obs.links, vec![dir.path().join("dangling")]);
        Ok(())
    }

    #[test]
    fn observe_too_large_fails_without_reading() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("huge.yaml");
        File::create(&path)?.set_len(MAX_FILE_SIZE + 1)?; // sparse: nothing is written
        let obs = observe(&path);
        assert_eq!(obs.outcome, Outcome::Failed);
        assert_eq!(obs.stamp.map(|s| s.len), Some(MAX_FILE_SIZE + 1));
        Ok(())
    }

    #[test]
    fn observe_directory_fails() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(observe(dir.path()).outcome, Outcome::Failed);
        Ok(())
    }
}
