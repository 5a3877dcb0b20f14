//! The file-based xDS readers (LDS, CDS, RDS, EDS files in YAML or JSON, v2 or v3 `@type`s),
//! and their incremental form: a [`DocCache`] that read one version of a file must give the
//! same result for the next version as a fresh read (its promise: same value, model, errors).
//!
//! Input: a selector byte, then the first version, then optionally `\n---next---\n` and the
//! second version.
#![no_main]

use std::collections::HashSet;
use std::fmt::Debug;
use std::path::Path;

use legate::config::{check_cluster_refs, DocCache};
use libfuzzer_sys::fuzz_target;

const NEXT: &[u8] = b"\n---next---\n";

fn split(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.windows(NEXT.len()).position(|w| w == NEXT) {
        Some(i) => (&data[..i], Some(&data[i + NEXT.len()..])),
        None => (data, None),
    }
}

/// Reads `first` then `second` with one cache, and `second` with a fresh one: both reads of
/// `second` must agree.
fn incremental<T: Debug>(first: &[u8], second: Option<&[u8]>, read: impl Fn(&mut DocCache, &[u8]) -> T) {
    let mut cache = DocCache::default();
    let _ = read(&mut cache, first);
    if let Some(second) = second {
        let again = format!("{:?}", read(&mut cache, second));
        let fresh = format!("{:?}", read(&mut DocCache::default(), second));
        assert_eq!(again, fresh, "a cached read differs from a fresh one");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else { return };
    let path = Path::new(if how & 1 == 0 { "/discovery/x.yaml" } else { "/discovery/x.json" });
    let (first, second) = split(rest);
    match (how >> 1) % 4 {
        0 => incremental(first, second, |c, b| {
            let r = c.listeners(path, b, None);
            if let Ok(d) = &r {
                let known: HashSet<String> = ["a_svc".to_string()].into();
                let _ = check_cluster_refs(&d.resources, &known, "resources");
            }
            r
        }),
        1 => incremental(first, second, |c, b| c.clusters(path, b)),
        2 => incremental(first, second, |c, b| c.route_config(path, b, "local_route")),
        _ => incremental(first, second, |c, b| c.endpoints(path, b, "a_svc")),
    }
});
