//! Reading the layers: a disk layer's files (as Envoy 1.40 reads them, checked with its
//! `/runtime`) and a static layer's struct.

use std::collections::HashMap;
use std::path::Path;

/// Envoy's depth limit of a disk layer's walk.
const MAX_DEPTH: usize = 16;
/// Files read per layer at most; the rest are left out.
const MAX_FILES: usize = 4096;
/// Bytes of one file read at most.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Every file under `dir`: its key the path below `dir` with `/` as `.`.
pub fn disk(dir: &Path) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut files = 0;
    walk(dir, "", 0, &mut files, &mut out);
    out
}

/// Who `path` itself is (not what a symlink points to): its device, inode and change time,
/// which a symlink moved onto it replaces (the time tells an inode number used again).
pub fn identity(path: &Path) -> Option<(u64, u64, i64, i64)> {
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
/// written (an integral one without a fraction), booleans as `true` / `false`. A map with a
/// `numerator` or `denominator` (or an empty one) is one value, a `FractionalPercent`, as in
/// Envoy; it is kept as YAML text.
pub fn flatten(value: &serde_yaml::Value, prefix: &str, out: &mut Vec<(String, String)>) {
    use serde_yaml::Value;
    match value {
        Value::Mapping(m)
            if !prefix.is_empty() && (m.is_empty() || m.contains_key("numerator") || m.contains_key("denominator")) =>
        {
            let text = serde_yaml::to_string(value).unwrap_or_default();
            out.push((prefix.to_string(), text.trim_end().to_string()));
        }
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
    fn a_static_layer_flattens_its_struct() {
        let v: serde_yaml::Value = serde_yaml::from_str(
            "fault: {http: {abort: {abort_percent: 100, on: true}}}\nx: 1.5\ny: 2.0\np: {numerator: 5, denominator: MILLION}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        flatten(&v, "", &mut out);
        out.sort();
        let want = [
            ("fault.http.abort.abort_percent", "100"),
            ("fault.http.abort.on", "true"),
            ("p", "numerator: 5\ndenominator: MILLION"),
            ("x", "1.5"),
            ("y", "2"),
        ];
        assert_eq!(out, want.map(|(k, v)| (k.to_string(), v.to_string())));
    }
}
