//! Every bootstrap under `tests/fixtures/` (our own configs in the style of Envoy's sandboxes):
//! those in `v2/` and `v3/` load; each in `unsupported/` is rejected, every error naming a
//! field path, one of them the path its `# expect:` first line gives.

use std::path::{Path, PathBuf};

use super::fixture;
use crate::config::load_bootstrap;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

#[test]
fn v2_and_v3_fixtures_load() {
    let mut seen = 0;
    for dir in ["v2", "v3"] {
        for f in yaml_files(&fixture(dir)) {
            seen += 1;
            if let Err(e) = load_bootstrap(Some(&f), None) {
                panic!("{} did not load:\n{e}", f.display());
            }
        }
    }
    assert!(seen >= 7, "only {seen} fixtures");
}

#[test]
fn unsupported_fixtures_are_rejected_naming_the_field() {
    let files = yaml_files(&fixture("unsupported"));
    assert!(files.len() >= 5, "only {} fixtures", files.len());
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect: PATH` first line", f.display()));
        let Err(e) = load_bootstrap(Some(f), None) else { panic!("{} loaded", f.display()) };
        assert!(e.0.iter().all(|e| !e.path.is_empty()), "{}: an error without a path:\n{e}", f.display());
        assert!(e.0.iter().any(|e| e.path == expect), "{}: no error at {expect}:\n{e}", f.display());
    }
}
