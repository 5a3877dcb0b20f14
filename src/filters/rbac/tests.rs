use std::net::SocketAddr;

use super::*;
use crate::config::model::{
    CidrRange, HeaderMatchKind, HeaderMatcher, Permission, Principal, RbacAction, RbacPolicy, RbacRules, StringMatch,
    StringMatcher,
};
use crate::routing::matcher::RequestView;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn exact(s: &str) -> StringMatcher {
    StringMatcher { kind: StringMatch::Exact(s.to_string()), ignore_case: false }
}

fn prefix(s: &str) -> StringMatcher {
    StringMatcher { kind: StringMatch::Prefix(s.to_string()), ignore_case: false }
}

fn cidr(a: &str, len: u8) -> CidrRange {
    CidrRange { address: addr(&format!("{a}:0")).ip(), prefix_len: len }
}

fn config(action: RbacAction, policies: Vec<(&str, RbacPolicy)>) -> RbacConfig {
    RbacConfig {
        rules: Some(RbacRules { action, policies: policies.into_iter().map(|(n, p)| (n.to_string(), p)).collect() }),
        shadow_rules: None,
        rules_stat_prefix: String::new(),
        shadow_rules_stat_prefix: String::new(),
        track_per_rule_stats: true,
        matcher: None,
        shadow_matcher: None,
    }
}

/// Decides a request for `path` from `remote` to `local` with these headers.
fn decide(
    s: &RbacSettings,
    path: &str,
    headers: &[(&'static str, &'static str)],
    remote: &str,
    local: &str,
) -> Result<(), Option<Arc<str>>> {
    let mut h = http::HeaderMap::new();
    for (k, v) in headers {
        h.append(*k, http::HeaderValue::from_static(v));
    }
    let req = RbacRequest {
        view: RequestView::new(path, "GET", "host", "http", &h),
        remote: addr(remote).ip(),
        direct_remote: addr(remote),
        local: addr(local),
        tls: None,
    };
    let mut details = None;
    s.decode(&req, &mut details).map_err(|_| details)
}

#[test]
fn allow_needs_a_matching_policy_and_deny_refuses_one() {
    let store = crate::stats::Store::new();
    let policy = RbacPolicy {
        permissions: vec![Permission::And(vec![
            Permission::UrlPath(prefix("/api")),
            Permission::Not(Box::new(Permission::DestinationPort(9000))),
        ])],
        principals: vec![Principal::Or(vec![
            Principal::RemoteIp(cidr("10.0.0.0", 8)),
            Principal::Header(HeaderMatcher {
                name: "x-role".into(),
                kind: HeaderMatchKind::String(exact("admin")),
                invert_match: false,
                treat_missing_as_empty: false,
            }),
        ])],
    };
    let allow = RbacSettings::new(&config(RbacAction::Allow, vec![("p", policy.clone())]), &store, "in");
    assert_eq!(decide(&allow, "/api/x?q", &[], "10.1.2.3:5", "127.0.0.1:80"), Ok(()));
    assert_eq!(decide(&allow, "/api/x", &[("x-role", "admin")], "192.168.0.1:5", "127.0.0.1:80"), Ok(()));
    let denied = decide(&allow, "/api/x", &[], "192.168.0.1:5", "127.0.0.1:80");
    assert_eq!(denied.unwrap_err().as_deref(), Some("rbac_access_denied_matched_policy[none]"));
    assert!(decide(&allow, "/api/x", &[], "10.1.2.3:5", "127.0.0.1:9000").is_err(), "not_rule on the port");
    assert!(decide(&allow, "/other", &[], "10.1.2.3:5", "127.0.0.1:80").is_err());
    assert_eq!(store.value("http.in.rbac.allowed"), Some(2));
    assert_eq!(store.value("http.in.rbac.denied"), Some(3));
    assert_eq!(store.value("http.in.rbac.policy.p.allowed"), Some(2));

    let deny = RbacSettings::new(&config(RbacAction::Deny, vec![("p", policy)]), &store, "d");
    let denied = decide(&deny, "/api/x", &[], "10.1.2.3:5", "127.0.0.1:80");
    assert_eq!(denied.unwrap_err().as_deref(), Some("rbac_access_denied_matched_policy[p]"));
    assert_eq!(decide(&deny, "/other", &[], "10.1.2.3:5", "127.0.0.1:80"), Ok(()));
}

#[test]
fn policies_are_tried_by_name_and_shadow_rules_only_count() {
    let store = crate::stats::Store::new();
    let any = RbacPolicy { permissions: vec![Permission::Any], principals: vec![Principal::Any] };
    let mut c = config(RbacAction::Deny, vec![("b", any.clone()), ("a", any.clone())]);
    if let Some(r) = c.rules.as_mut() {
        r.policies.sort_by(|x, y| x.0.cmp(&y.0));
    }
    c.shadow_rules = Some(RbacRules { action: RbacAction::Allow, policies: vec![] });
    c.shadow_rules_stat_prefix = "sh".into();
    let s = RbacSettings::new(&c, &store, "in");
    let denied = decide(&s, "/", &[], "1.2.3.4:1", "127.0.0.1:80");
    assert_eq!(denied.unwrap_err().as_deref(), Some("rbac_access_denied_matched_policy[a]"));
    assert_eq!(store.value("http.in.rbac.sh.shadow_denied"), Some(1));
    assert_eq!(store.value("http.in.rbac.sh.shadow_allowed"), Some(0));
}

#[test]
fn authenticated_needs_tls() {
    let store = crate::stats::Store::new();
    let p = RbacPolicy { permissions: vec![Permission::Any], principals: vec![Principal::Authenticated(None)] };
    let s = RbacSettings::new(&config(RbacAction::Allow, vec![("tls", p)]), &store, "in");
    assert!(decide(&s, "/", &[], "1.2.3.4:1", "127.0.0.1:80").is_err());
}

#[test]
fn port_ranges_are_half_open() {
    let store = crate::stats::Store::new();
    let p = RbacPolicy {
        permissions: vec![Permission::DestinationPortRange { start: 8000, end: 8080 }],
        principals: vec![Principal::DirectRemoteIp(cidr("127.0.0.0", 8))],
    };
    let s = RbacSettings::new(&config(RbacAction::Allow, vec![("r", p)]), &store, "in");
    assert_eq!(decide(&s, "/", &[], "127.0.0.2:1", "127.0.0.1:8000"), Ok(()));
    assert!(decide(&s, "/", &[], "127.0.0.2:1", "127.0.0.1:8080").is_err());
    assert!(decide(&s, "/", &[], "10.0.0.2:1", "127.0.0.1:8000").is_err());
}
