//! Envoy's runtime (`layered_runtime`): string values by key that override what the code
//! documenting a runtime key would otherwise use (the fault filter's `fault.http.*`). Layers
//! apply in order, a later one overriding an earlier one:
//!
//! - `static_layer`: the bootstrap's struct, nested keys joined with `.`;
//! - `disk_layer`: every file under `symlink_root/subdirectory[/<service cluster>]`, its key the
//!   path below there with `/` as `.`, its value its lines less `#` comments, trailing
//!   whitespace trimmed (as Envoy 1.40 reads them, checked with its `/runtime`).
//!
//! A disk layer is read again when its `symlink_root` is replaced: Envoy watches for a new
//! symlink moved onto it (`ln -s v2 new && mv -Tf new current`), and a file changed in place is
//! not seen until then. legate polls the root's identity (device, inode, change time) every
//! [`POLL`].
//! The values are swapped whole; a request reads them without a lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::filters::Fraction;

/// How often a disk layer's root is looked at.
pub const POLL: Duration = Duration::from_millis(250);
/// Envoy's depth limit of a disk layer's walk.
const MAX_DEPTH: usize = 16;
/// Files read per layer at most; the rest are left out.
const MAX_FILES: usize = 4096;
/// Bytes of one file read at most.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// One `layered_runtime.layers` entry, as the bootstrap gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeLayer {
    /// `static_layer`, flattened.
    Static(Vec<(String, String)>),
    /// `disk_layer`
    Disk { symlink_root: PathBuf, subdirectory: String, append_service_cluster: bool },
}

/// The running values and where they come from.
#[derive(Default)]
pub struct Runtime {
    layers: Vec<RuntimeLayer>,
    service_cluster: String,
    values: ArcSwap<HashMap<String, String>>,
}

impl Runtime {
    /// No layer: every key has its default.
    pub fn empty() -> Arc<Runtime> {
        Arc::new(Runtime::default())
    }

    /// The layers read once; [`Runtime::watch`] keeps disk layers current.
    pub fn new(layers: &[RuntimeLayer], service_cluster: &str) -> Arc<Runtime> {
        let rt =
            Runtime { layers: layers.to_vec(), service_cluster: service_cluster.to_string(), ..Runtime::default() };
        rt.values.store(Arc::new(rt.read()));
        Arc::new(rt)
    }

    /// Whether any key is set (a request skips the look-ups otherwise).
    pub fn is_empty(&self) -> bool {
        self.values.load().is_empty()
    }

    /// `key` as an unsigned integer, or `default` (Envoy's `getInteger`).
    pub fn integer(&self, key: &str, default: u64) -> u64 {
        self.values.load().get(key).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(default)
    }

    /// The percentage `key` sets, over `default`'s denominator, or `default` (Envoy's
    /// `featureEnabled` with a `FractionalPercent` default).
    pub fn percent(&self, key: &str, default: Fraction) -> Fraction {
        match self.values.load().get(key).and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(n) => Fraction { numerator: u32::try_from(n).unwrap_or(u32::MAX), denominator: default.denominator },
            None => default,
        }
    }

    fn read(&self) -> HashMap<String, String> {
        let mut values = HashMap::new();
        for layer in &self.layers {
            match layer {
                RuntimeLayer::Static(pairs) => values.extend(pairs.iter().cloned()),
                RuntimeLayer::Disk { .. } => {
                    if let Some(dir) = self.disk_dir(layer) {
                        let mut files = 0;
                        walk(&dir, "", 0, &mut files, &mut values);
                    }
                }
            }
        }
        values
    }

    fn disk_dir(&self, layer: &RuntimeLayer) -> Option<PathBuf> {
        let RuntimeLayer::Disk { symlink_root, subdirectory, append_service_cluster } = layer else { return None };
        let mut dir = symlink_root.join(subdirectory);
        if *append_service_cluster {
            dir.push(&self.service_cluster);
        }
        Some(dir)
    }

    /// Reads the disk layers again whenever one's `symlink_root` is replaced; ends with the
    /// runtime. Nothing runs without a disk layer.
    pub fn watch(self: &Arc<Self>) {
        let roots: Vec<PathBuf> = self
            .layers
            .iter()
            .filter_map(|l| match l {
                RuntimeLayer::Disk { symlink_root, .. } => Some(symlink_root.clone()),
                RuntimeLayer::Static(_) => None,
            })
            .collect();
        if roots.is_empty() {
            return;
        }
        let weak: Weak<Runtime> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut seen: Vec<Option<(u64, u64, i64, i64)>> = roots.iter().map(|r| identity(r)).collect();
            let mut tick = tokio::time::interval(POLL);
            // Ends when the runtime is dropped (the server is done with it).
            loop {
                tick.tick().await;
                let Some(rt) = weak.upgrade() else { return };
                let now: Vec<Option<(u64, u64, i64, i64)>> = roots.iter().map(|r| identity(r)).collect();
                if now != seen {
                    seen = now;
                    let reader = Arc::clone(&rt);
                    let Ok(values) = tokio::task::spawn_blocking(move || reader.read()).await else { continue };
                    tracing::info!(keys = values.len(), "runtime disk layer reloaded");
                    rt.values.store(Arc::new(values));
                }
            }
        });
    }
}

/// Who `path` itself is (not what a symlink points to): its device, inode and change time,
/// which a symlink moved onto it replaces (the time tells an inode number used again).
fn identity(path: &Path) -> Option<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

/// Adds the files under `dir` (keys prefixed by `prefix`), depth and count bounded.
fn walk(dir: &Path, prefix: &str, depth: usize, files: &mut usize, out: &mut HashMap<String, String>) {
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if *files >= MAX_FILES {
            return;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = if prefix.is_empty() { name } else { format!("{prefix}.{name}") };
        let path = entry.path();
        // Followed as Envoy does: a symlinked directory or file counts as what it points to.
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            walk(&path, &key, depth + 1, files, out);
        } else if meta.is_file() {
            *files += 1;
            if let Some(value) = read_value(&path) {
                out.insert(key, value);
            }
        }
    }
}

/// A file's value: its lines less `#` comments, trailing whitespace trimmed.
fn read_value(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path).ok()?.take(MAX_FILE_BYTES).read_to_string(&mut text).ok()?;
    let kept: Vec<&str> = text.split('\n').filter(|l| !l.starts_with('#')).collect();
    Some(kept.join("\n").trim_end().to_string())
}

/// A `static_layer` struct as keys and values: nested keys joined with `.`; numbers as
/// written (an integral one without a fraction), booleans as `true` / `false`.
pub fn flatten(value: &serde_yaml::Value, prefix: &str, out: &mut Vec<(String, String)>) {
    use serde_yaml::Value;
    match value {
        Value::Mapping(m) => {
            for (k, v) in m {
                let Some(k) = k.as_str().map(str::to_string).or_else(|| k.as_u64().map(|n| n.to_string())) else {
                    continue;
                };
                let key = if prefix.is_empty() { k } else { format!("{prefix}.{k}") };
                flatten(v, &key, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
        Value::Number(n) => {
            let text = match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => u.to_string(),
                (None, Some(i), _) => i.to_string(),
                (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
                _ => n.to_string(),
            };
            out.push((prefix.to_string(), text));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_layer_reads_files_as_envoy_does() {
        let dir = std::env::temp_dir().join(format!("legate-runtime-{}", std::process::id()));
        let base = dir.join("v1/envoy");
        std::fs::create_dir_all(base.join("fault/http/abort")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(base.join("a")).unwrap_or_else(|e| panic!("{e}"));
        let write = |p: &str, text: &str| std::fs::write(base.join(p), text).unwrap_or_else(|e| panic!("{e}"));
        write("fault/http/abort/abort_percent", "100\n");
        write("a/commented", "# comment\nfoo  \n");
        write("a/two", "x\ny\n");
        let layers = [
            RuntimeLayer::Static(vec![("a.two".into(), "static".into()), ("s".into(), "7".into())]),
            RuntimeLayer::Disk {
                symlink_root: dir.join("v1"),
                subdirectory: "envoy".into(),
                append_service_cluster: false,
            },
        ];
        let rt = Runtime::new(&layers, "");
        assert_eq!(rt.integer("fault.http.abort.abort_percent", 0), 100);
        assert_eq!(rt.values.load().get("a.commented").map(String::as_str), Some("foo"));
        assert_eq!(rt.values.load().get("a.two").map(String::as_str), Some("x\ny"), "the later layer wins");
        assert_eq!(rt.integer("s", 0), 7);
        assert_eq!(rt.integer("missing", 3), 3);
        let f = rt.percent("fault.http.abort.abort_percent", Fraction { numerator: 0, denominator: 1_000_000 });
        assert_eq!((f.numerator, f.denominator), (100, 1_000_000));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_static_layer_flattens_its_struct() {
        let v: serde_yaml::Value =
            serde_yaml::from_str("fault: {http: {abort: {abort_percent: 100, on: true}}}\nx: 1.5\ny: 2.0")
                .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        flatten(&v, "", &mut out);
        out.sort();
        let want =
            [("fault.http.abort.abort_percent", "100"), ("fault.http.abort.on", "true"), ("x", "1.5"), ("y", "2")];
        assert_eq!(out, want.map(|(k, v)| (k.to_string(), v.to_string())));
    }
}
