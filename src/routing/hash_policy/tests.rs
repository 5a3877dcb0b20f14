use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};

use super::{HashInput, HashPolicyRt, LbKey};
use crate::config::model::{HashPolicy, HashPolicyKind, RegexRewrite};
use crate::upstream::xxh64::xxh64;

fn header(name: &str) -> HashPolicy {
    HashPolicy { kind: HashPolicyKind::Header { name: name.into(), regex_rewrite: None }, terminal: false }
}

fn cookie(name: &str, ttl: Option<u64>) -> HashPolicy {
    HashPolicy {
        kind: HashPolicyKind::Cookie {
            name: name.into(),
            ttl: ttl.map(Duration::from_secs),
            path: "/app".into(),
            attributes: vec![("SameSite".into(), "Lax".into()), ("Secure".into(), String::new())],
        },
        terminal: false,
    }
}

fn key(policies: &[HashPolicy], headers: &[(&str, &str)], path: &str) -> LbKey {
    key_with_state(policies, headers, path, None)
}

fn key_with_state(
    policies: &[HashPolicy],
    headers: &[(&str, &str)],
    path: &str,
    filter_state: Option<&crate::filters::FilterState>,
) -> LbKey {
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        map.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
            HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let rt = HashPolicyRt::build(policies).unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("no policy"));
    rt.key(&HashInput {
        headers: &map,
        path,
        authority: "example.com",
        method: "GET",
        remote: [10, 0, 0, 7].into(),
        peer: ([127, 0, 0, 1], 40000).into(),
        local: ([127, 0, 0, 1], 10000).into(),
        filter_state,
    })
}

fn h(s: &str) -> u64 {
    xxh64(s.as_bytes(), 0)
}

#[test]
fn a_header_is_the_xxhash_of_its_value_and_absent_is_no_key() {
    assert_eq!(key(&[header("x-user")], &[("x-user", "alice")], "/").hash, Some(h("alice")));
    assert_eq!(key(&[header("x-user")], &[], "/").hash, None);
    // Several values: sorted, then hashed as one string, so their order does not matter.
    let k = key(&[header("x-user")], &[("x-user", "bob"), ("x-user", "alice")], "/");
    assert_eq!(k.hash, Some(h("alicebob")));
    assert_eq!(key(&[header(":authority")], &[], "/").hash, Some(h("example.com")));
    assert_eq!(key(&[header("host")], &[("host", "other")], "/").hash, Some(h("example.com")), "host is :authority");
    assert_eq!(key(&[header(":path")], &[], "/a?b").hash, Some(h("/a?b")));
}

#[test]
fn regex_rewrite_applies_before_hashing() {
    let re = RegexRewrite {
        pattern: regex::Regex::new("^(\\w+)-\\d+$").unwrap_or_else(|e| panic!("{e}")),
        substitution: "\\1".into(),
    };
    let p =
        HashPolicy { kind: HashPolicyKind::Header { name: "x-user".into(), regex_rewrite: Some(re) }, terminal: false };
    assert_eq!(key(&[p], &[("x-user", "alice-42")], "/").hash, Some(h("alice")));
}

#[test]
fn policies_combine_by_rotating_and_terminal_stops() {
    let both = key(&[header("a"), header("b")], &[("a", "1"), ("b", "2")], "/").hash;
    assert_eq!(both, Some(h("1").rotate_left(1) ^ h("2")));
    // A policy without a key is skipped.
    assert_eq!(key(&[header("a"), header("b")], &[("b", "2")], "/").hash, Some(h("2")));
    let mut first = header("a");
    first.terminal = true;
    assert_eq!(key(&[first.clone(), header("b")], &[("a", "1"), ("b", "2")], "/").hash, Some(h("1")));
    // Terminal without a key: the next ones still count.
    assert_eq!(key(&[first, header("b")], &[("b", "2")], "/").hash, Some(h("2")));
}

#[test]
fn cookies_are_read_as_envoy_reads_them() {
    let c = [cookie("sid", None)];
    assert_eq!(key(&c, &[("cookie", "a=1; sid=xyz; b=2")], "/").hash, Some(h("xyz")));
    assert_eq!(key(&c, &[("cookie", "sid=\"xyz\"")], "/").hash, Some(h("xyz")), "quotes are not the value");
    assert_eq!(key(&c, &[("cookie", "a=1"), ("cookie", "sid=2")], "/").hash, Some(h("2")));
    assert_eq!(key(&c, &[("cookie", "xsid=1; sid")], "/").hash, None);
    assert_eq!(key(&c, &[("cookie", "sid=")], "/").hash, None, "an empty value is no key");
}

#[test]
fn a_missing_cookie_with_ttl_is_generated_and_set() {
    let k = key(&[cookie("sid", Some(3600))], &[], "/");
    let value = format!("{:016x}", h("127.0.0.1:40000127.0.0.1:10000"));
    assert_eq!(k.hash, Some(h(&value)));
    let set = k.set_cookie.unwrap_or_else(|| panic!("no Set-Cookie"));
    assert_eq!(set, format!("sid=\"{value}\"; Max-Age=3600; Path=/app; SameSite=Lax; Secure; HttpOnly").as_str());
    // ttl 0: a session cookie, no Max-Age.
    let k = key(&[cookie("sid", Some(0))], &[], "/");
    assert!(k.set_cookie.is_some_and(|v| !v.to_str().unwrap_or_default().contains("Max-Age")));
    // Present: nothing set.
    assert_eq!(key(&[cookie("sid", Some(60))], &[("cookie", "sid=1")], "/").set_cookie, None);
}

#[test]
fn source_ip_and_query_parameter() {
    let ip = HashPolicy { kind: HashPolicyKind::SourceIp, terminal: false };
    assert_eq!(key(&[ip], &[], "/").hash, Some(h("10.0.0.7")));
    let q = [HashPolicy { kind: HashPolicyKind::QueryParameter("u".into()), terminal: false }];
    assert_eq!(key(&q, &[], "/p?x=1&u=a%20b&u=c").hash, Some(h("a%20b")), "the first value, undecoded");
    assert_eq!(key(&q, &[], "/p?u").hash, Some(h("")));
    assert_eq!(key(&q, &[], "/p?uu=1").hash, None);
    assert_eq!(key(&q, &[], "/p").hash, None);
}

fn filter_state(key: &str) -> HashPolicy {
    HashPolicy { kind: HashPolicyKind::FilterState(key.into()), terminal: false }
}

/// Envoy's `FilterStateHashMethod`: the object's own hash (an `envoy.hashable_string`'s is
/// xxHash64 of its string); no object, or one that is not hashable, gives no key.
#[test]
fn filter_state_is_the_hash_of_a_hashable_object_and_nothing_else() {
    let mut state = crate::filters::FilterState::default();
    state.set("my.key", "alice".into(), true);
    state.set("plain", "alice".into(), false);
    let with = |p: &[HashPolicy]| key_with_state(p, &[], "/", Some(&state)).hash;
    assert_eq!(with(&[filter_state("my.key")]), Some(h("alice")));
    assert_eq!(with(&[filter_state("plain")]), None, "an envoy.string is not Hashable");
    assert_eq!(with(&[filter_state("absent")]), None);
    assert_eq!(key(&[filter_state("my.key")], &[], "/").hash, None, "before the filters: no state");
    // Combined with the next policy as any other: rotate, then xor.
    let both = with(&[filter_state("my.key"), header(":path")]);
    assert_eq!(both, Some(h("alice").rotate_left(1) ^ h("/")));
    // A terminal filter_state that found nothing does not stop the list.
    let terminal = HashPolicy { terminal: true, ..filter_state("absent") };
    assert_eq!(with(&[terminal, header(":path")]), Some(h("/")));
}
