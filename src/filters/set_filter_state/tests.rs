use std::net::SocketAddr;
use std::time::SystemTime;

use http::header::{HeaderMap, HeaderValue};

use super::{FilterState, SetFilterState};
use crate::access_log::LogContext;
use crate::config::filters::{FilterStateValue, SetFilterStateConfig};
use crate::upstream::xxh64::xxh64;

fn ctx(req: &HeaderMap) -> LogContext<'_> {
    let remote: SocketAddr = "127.0.0.2:4000".parse().expect("addr");
    LogContext {
        start: SystemTime::UNIX_EPOCH,
        request_headers: req,
        method: "GET",
        path: "/p?q",
        authority: "h",
        scheme: "http",
        protocol: Some(http::Version::HTTP_11),
        response_code: None,
        response_code_details: None,
        response_headers: None,
        response_trailers: None,
        response_flags: "",
        bytes_received: 0,
        bytes_sent: 0,
        duration: None,
        request_duration: None,
        response_duration: None,
        upstream_host: None,
        upstream_cluster: None,
        upstream_local_address: None,
        upstream_transport_failure_reason: None,
        upstream_request_attempt_count: 0,
        downstream_remote: remote,
        downstream_local: remote,
        route_name: None,
        tls: None,
        dynamic_metadata: None,
        local_reply_body: None,
    }
}

fn value(key: &str, format: &str, hashable: bool) -> FilterStateValue {
    FilterStateValue { key: key.into(), hashable, format: format.into(), omit_empty: false, skip_if_empty: false }
}

fn run(values: Vec<FilterStateValue>, headers: &[(&'static str, &'static str)]) -> Option<Box<FilterState>> {
    let mut req = HeaderMap::new();
    for (n, v) in headers {
        req.append(*n, HeaderValue::from_static(v));
    }
    let filter = SetFilterState::new(&SetFilterStateConfig { values });
    let mut state = None;
    filter.decode(&ctx(&req), &mut state);
    state
}

/// What Envoy 1.40 logged with `%FILTER_STATE(key:PLAIN)%` for the same values.
#[test]
fn values_are_rendered_and_set_as_envoy_sets_them() {
    let state = run(
        vec![
            value("user", "%REQ(x-user)%", true),
            value("missing", "x%REQ(x-missing)%", true),
            value("literal", "%%%REQ(:METHOD)% %REQ(:PATH)%", false),
        ],
        &[("x-user", "alice")],
    );
    let state = state.unwrap_or_else(|| panic!("nothing set"));
    assert_eq!(state.get("user"), Some("alice"));
    assert_eq!(state.get("missing"), Some("x-"), "a missing operator is -");
    assert_eq!(state.get("literal"), Some("%GET /p?q"));
    assert_eq!(state.hash("user"), Some(xxh64(b"alice", 0)));
    assert_eq!(state.hash("literal"), None, "envoy.string is not hashable");
    assert_eq!(state.get("absent"), None);
}

#[test]
fn skip_if_empty_skips_only_an_empty_result() {
    let skip =
        |omit_empty| FilterStateValue { omit_empty, skip_if_empty: true, ..value("k", "%REQ(x-missing)%", true) };
    // Without omit_empty_values the missing header is "-", which is not empty (Envoy too).
    assert_eq!(run(vec![skip(false)], &[]).and_then(|s| s.get("k").map(String::from)), Some("-".into()));
    assert!(run(vec![skip(true)], &[]).is_none(), "empty: skipped");
    // Not skipping: the empty string is set, and hashes as one.
    let kept = FilterStateValue { omit_empty: true, ..value("k", "%REQ(x-missing)%", true) };
    let state = run(vec![kept], &[]).unwrap_or_else(|| panic!("nothing set"));
    assert_eq!(state.get("k"), Some(""));
    assert_eq!(state.hash("k"), Some(xxh64(b"", 0)));
}

/// A later value of the same key replaces the object, its type too (Envoy 1.40 does so even
/// for a read-only one).
#[test]
fn a_later_value_replaces_the_object() {
    let state = run(vec![value("k", "a", true), value("k", "b", false)], &[]);
    let state = state.unwrap_or_else(|| panic!("nothing set"));
    assert_eq!(state.get("k"), Some("b"));
    assert_eq!(state.hash("k"), None, "now an envoy.string");
    let state = run(vec![value("k", "a", false), value("k", "b", true)], &[]);
    assert_eq!(state.and_then(|s| s.hash("k")), Some(xxh64(b"b", 0)));
}
