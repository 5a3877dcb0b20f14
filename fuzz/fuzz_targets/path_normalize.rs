//! The connection manager's `normalize_path` / `merge_slashes` rewrite, with the properties
//! Envoy's rewrite has: the query is kept as written, the result is normal (normalizing it
//! again changes nothing: a stray `%` that decoding put before two hex digits is escaped),
//! has no `.`/`..` segment (with `normalize_path`) and no `//` (with `merge_slashes`), and
//! stays an absolute path.
#![no_main]

use legate::proxy::normalize::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else { return };
    let Ok(input) = std::str::from_utf8(rest) else { return };
    let (dots, merge) = (how & 1 == 1, how & 2 == 2);
    let Some(out) = normalize(input, dots, merge) else { return };
    let query = |s: &str| s.find('?').map(|i| s[i..].to_string()).unwrap_or_default();
    assert_eq!(query(&out), query(input), "the query changed: {input:?} -> {out:?}");
    assert_eq!(normalize(&out, dots, merge), None, "not normal: {input:?} -> {out:?}");
    let path = &out[..out.find('?').unwrap_or(out.len())];
    if input.starts_with('/') {
        assert!(path.starts_with('/'), "no longer absolute: {input:?} -> {out:?}");
    }
    if dots {
        assert!(path.split('/').all(|s| s != "." && s != ".."), "a dot segment is left: {input:?} -> {out:?}");
    }
    if merge {
        assert!(!path.contains("//"), "a run of slashes is left: {input:?} -> {out:?}");
    }
});
