//! Envoy's sandbox configs: each loads or is rejected with an error naming a field path.

use std::path::{Path, PathBuf};

use super::shared;
use crate::config::load_bootstrap;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
}

#[test]
fn envoy_examples_load_or_name_a_field() {
    let root = shared("envoy-examples");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files.retain(|p| !p.to_string_lossy().contains("dynamic-config-fs/configs/"));
    assert!(!files.is_empty(), "no examples under {}", root.display());
    let mut loaded = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        match load_bootstrap(Some(f), None) {
            Ok(_) => loaded.push(rel),
            Err(e) => {
                let first = &e.0[0];
                eprintln!("rejected {rel}: {}: {}", first.path, first.message);
                assert!(e.0.iter().all(|e| !e.path.is_empty()), "{rel}: error without a path:\n{e}");
            }
        }
    }
    eprintln!("loaded {} of {}: {}", loaded.len(), files.len(), loaded.join(", "));
}
