//! Records the commit legate is built from, for `legate --version` and `/server_info`:
//! `LEGATE_GIT_SHA` from the environment if set (an image or package built without `.git`),
//! else `git rev-parse HEAD` when this directory is a checkout's top level, else `unknown`.
//! A tarball without `.git` builds the same way, with `unknown`.
//!
//! Only HEAD, the branch's ref and `packed-refs` are watched (not the index), so a build
//! reruns this script after a commit or a checkout and at no other time. That still
//! recompiles the whole crate once per commit: cargo rebuilds every target of a package whose
//! build script reran (lib included, though only `--version` and `/server_info` read the
//! value), and a package has one build script. Doing better means a second package for the
//! binary, or a commit that goes stale in `--version`; neither is worth it. A developer who
//! commits often sets `LEGATE_GIT_SHA=dev`: git is then not read, nor watched.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LEGATE_GIT_SHA");
    let sha = std::env::var("LEGATE_GIT_SHA")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_string())
        .or_else(git_sha)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=LEGATE_GIT_SHA={sha}");
    let build_type = if std::env::var("PROFILE").as_deref() == Ok("release") { "RELEASE" } else { "DEBUG" };
    println!("cargo:rustc-env=LEGATE_BUILD_TYPE={build_type}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn git_sha() -> Option<String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    // A tarball unpacked inside another repository must not take that repository's commit.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(&manifest_dir).ok()? {
        return None;
    }
    let sha = git(&["rev-parse", "HEAD"])?;
    // Built again when HEAD moves: a checkout rewrites HEAD, a commit the branch's ref (or
    // packed-refs once the ref is packed). Only existing files: a missing one would rerun
    // this script on every build.
    let mut watched =
        vec![git(&["rev-parse", "--git-path", "HEAD"])?, git(&["rev-parse", "--git-path", "packed-refs"])?];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(&["rev-parse", "--git-path", &branch]));
    }
    for path in watched {
        let path = Path::new(&manifest_dir).join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(sha)
}
