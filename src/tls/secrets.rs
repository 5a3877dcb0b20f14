//! Where a TLS context's certificates come from, so that they can be read again when they
//! change: the files read (`DataSource.filename`, SDS files), the SDS secrets used, and the
//! [`Origin`] a context is rebuilt from (`crate::tls::rotation` does that on a file change).
//!
//! The reading itself is the configuration validator's (`config::validate::tls` and
//! `config::validate::secret`): a rotated certificate goes through exactly the checks of a
//! configuration load, and its errors name the file and field the same way. Nothing here is
//! specific to the server side: an upstream context that keeps its [`Origin`] and
//! [`Reads`] is rebuilt the same way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::discovery::WatchSpec;

/// The bootstrap's `static_resources.secrets`: each `Secret` message by name, as written.
pub type StaticSecrets = HashMap<String, serde_yaml::Value>;

/// What building a context read from files, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    pub files: Vec<FileRead>,
    pub sds: Vec<SdsRead>,
}

/// One file a context was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    /// The file, and the `watched_directory` that also triggers a reread.
    pub spec: WatchSpec,
    /// `discovery::content_hash` of what was read (the watcher's baseline).
    pub hash: u64,
}

/// One SDS secret a context uses (`sds.<name>.*` stats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdsRead {
    pub name: String,
    /// The SDS file (`sds_config.path_config_source.path`).
    pub path: PathBuf,
    /// The file's `version_info` (`sds.<name>.version_text`).
    pub version_info: String,
}

impl Reads {
    /// Records a file read; a file read twice (two secrets of one SDS file) is watched once,
    /// with the `watched_directory` either read gave.
    pub fn file(&mut self, mut spec: WatchSpec, bytes: &[u8]) {
        let hash = crate::discovery::content_hash(bytes);
        if let Some(i) = self.files.iter().position(|f| f.spec.path == spec.path) {
            let old = self.files.remove(i);
            spec.watched_directory = spec.watched_directory.or(old.spec.watched_directory);
        }
        self.files.push(FileRead { spec, hash });
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.sds.is_empty()
    }
}

/// How to build a context again: its configuration message as written, where it was, and
/// the static secrets it could name.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The `DownstreamTlsContext` (the transport socket's `typed_config`).
    pub value: serde_yaml::Value,
    /// Its field path in its file (`static_resources.listeners[0].filter_chains[0].transport_socket.typed_config`).
    pub path: String,
    /// The configuration file it is in.
    pub file: PathBuf,
    pub static_secrets: Option<Arc<StaticSecrets>>,
}

/// Prefixes a path relative to a context with the context's own path.
pub fn join_path(base: &str, rel: &str) -> String {
    match rel.as_bytes().first() {
        None => base.to_string(),
        Some(b'.' | b'[') => format!("{base}{rel}"),
        Some(_) if base.is_empty() => rel.to_string(),
        Some(_) => format!("{base}.{rel}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_relative_paths() {
        assert_eq!(join_path("a.b", ""), "a.b");
        assert_eq!(join_path("a.b", "c"), "a.b.c");
        assert_eq!(join_path("a.b", ".c"), "a.b.c");
        assert_eq!(join_path("a", "[0]"), "a[0]");
        assert_eq!(join_path("", "c"), "c");
    }

    #[test]
    fn a_file_read_twice_is_kept_once() {
        let mut r = Reads::default();
        r.file(WatchSpec::new("/a").with_watched_directory("/d"), b"1");
        r.file(WatchSpec::new("/a"), b"2");
        assert_eq!(r.files.len(), 1);
        assert_eq!(r.files[0].spec.watched_directory.as_deref(), Some(std::path::Path::new("/d")));
        assert_eq!(r.files[0].hash, crate::discovery::content_hash(b"2"));
    }
}
