//! `RouteAction` fields beyond the cluster and rewrites: the stream duration, gRPC timeouts,
//! the route's idle timeout and the internal redirect policy.

use std::time::Duration;

use super::{load_text, messages, v3, A_SVC};
use crate::config::model::*;

const ROUTE: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route";

/// The forward action of a route `{cluster: a_svc, <extra>}`.
fn action(extra: &str) -> Result<ForwardAction, Vec<String>> {
    let routes =
        format!("              - match: {{prefix: \"/\"}}\n                route: {{cluster: a_svc, {extra}}}\n");
    let b = load_text("c.yaml", &v3(&routes, A_SVC)).map_err(|e| messages(&e))?;
    let rc = match &b.listeners[0].filter_chains[0].hcm().map(|h| &h.routes) {
        Some(RouteSource::Inline(rc)) => rc.clone(),
        _ => panic!("no inline routes"),
    };
    match &rc.virtual_hosts[0].routes[0].action {
        RouteAction::Forward(f) => Ok(f.clone()),
        _ => panic!("not a forward"),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn max_stream_duration_and_its_grpc_header_fields() {
    let f = action("max_stream_duration: {max_stream_duration: 1.5s, grpc_timeout_header_max: 2s, grpc_timeout_header_offset: 0.1s}");
    assert_eq!(
        f.map(|f| f.max_stream_duration),
        Ok(Some(StreamDuration { max: Some(ms(1500)), header_max: Some(ms(2000)), header_offset: Some(ms(100)) }))
    );
    // Set but empty, or 0: Envoy's "new timeouts" with no limit of their own.
    let f = action("max_stream_duration: {max_stream_duration: 0s}");
    assert_eq!(f.map(|f| f.max_stream_duration), Ok(Some(StreamDuration::default())));
    let f = action("max_stream_duration: {}");
    assert_eq!(f.map(|f| f.max_stream_duration), Ok(Some(StreamDuration::default())));
    assert_eq!(action("timeout: 1s").map(|f| f.max_stream_duration), Ok(None));
}

#[test]
fn the_legacy_grpc_timeout_fields() {
    let f = action("max_grpc_timeout: 2s, grpc_timeout_offset: 0.1s");
    assert_eq!(f.map(|f| f.legacy_grpc), Ok(Some(LegacyGrpcTimeout { max: ms(2000), offset: Some(ms(100)) })));
    let f = action("max_grpc_timeout: 0s");
    assert_eq!(f.map(|f| f.legacy_grpc), Ok(Some(LegacyGrpcTimeout { max: Duration::ZERO, offset: None })));
    // Envoy reads the offset only under a maximum.
    assert_eq!(action("grpc_timeout_offset: 0.1s").map(|f| f.legacy_grpc), Ok(None));
}

#[test]
fn a_bad_stream_duration_names_its_field() {
    let e = action("max_stream_duration: {max_stream_duration: 1s, bogus: 2}").err().unwrap_or_default();
    assert!(e.iter().any(|m| m.starts_with(&format!("{ROUTE}.max_stream_duration.bogus"))), "{e:#?}");
    let e = action("max_stream_duration: {grpc_timeout_header_max: soon}").err().unwrap_or_default();
    assert!(e.iter().any(|m| m.starts_with(&format!("{ROUTE}.max_stream_duration.grpc_timeout_header_max"))), "{e:#?}");
}

#[test]
fn the_route_idle_timeout_and_its_zero() {
    assert_eq!(action("idle_timeout: 2s").map(|f| f.idle_timeout), Ok(Some(Some(ms(2000)))));
    assert_eq!(action("idle_timeout: 0s").map(|f| f.idle_timeout), Ok(Some(None)), "0: none at all");
    assert_eq!(action("timeout: 1s").map(|f| f.idle_timeout), Ok(None));
}

#[test]
fn host_rewrite_header_and_path_regex() {
    assert_eq!(action("host_rewrite_header: X-Host").map(|f| f.host_rewrite), Ok(HostRewrite::Header("x-host".into())));
    let f = action(r#"host_rewrite_path_regex: {pattern: {regex: "^/(\\w+).*$"}, substitution: "\\1.example"}"#);
    match f.map(|f| f.host_rewrite) {
        Ok(HostRewrite::PathRegex(r)) => {
            assert_eq!((r.pattern.as_str(), r.substitution.as_str()), ("^/(\\w+).*$", "\\1.example"))
        }
        other => panic!("{other:?}"),
    }
    let e = action("host_rewrite_header: x-host, host_rewrite_literal: a.example").err().unwrap_or_default();
    assert!(e.iter().any(|m| m.ends_with("may be set") && m.starts_with(ROUTE)), "{e:#?}");
    let e = action(r#"host_rewrite_path_regex: {pattern: {regex: "^/"}}"#).err().unwrap_or_default();
    assert!(
        e.iter().any(|m| m == &format!("{ROUTE}.host_rewrite_path_regex.substitution: missing substitution")),
        "{e:#?}"
    );
}

#[test]
fn the_per_try_idle_timeout() {
    let f = action("retry_policy: {retry_on: 5xx, per_try_idle_timeout: 0.5s}");
    assert_eq!(f.map(|f| f.retry_policy.and_then(|p| p.per_try_idle_timeout)), Ok(Some(ms(500))));
    let f = action("retry_policy: {retry_on: 5xx, per_try_idle_timeout: 0s}");
    assert_eq!(f.map(|f| f.retry_policy.and_then(|p| p.per_try_idle_timeout)), Ok(None));
}

#[test]
fn internal_redirect_policy_with_envoys_defaults() {
    let f = action("internal_redirect_policy: {}");
    let expected = InternalRedirectPolicy {
        max_internal_redirects: 1,
        codes: vec![302],
        predicates: vec![],
        allow_cross_scheme_redirect: false,
        response_headers_to_copy: vec![],
    };
    assert_eq!(f.map(|f| f.internal_redirect), Ok(Some(expected.clone())));
    // Codes Envoy does not follow are dropped without a word; none left follows nothing.
    let f = action("internal_redirect_policy: {redirect_response_codes: [200, 303, 308], max_internal_redirects: 3}");
    let p = f.map(|f| f.internal_redirect.map(|p| (p.codes, p.max_internal_redirects)));
    assert_eq!(p, Ok(Some((vec![303, 308], 3))));
    let f = action("internal_redirect_policy: {redirect_response_codes: [404]}");
    assert_eq!(f.map(|f| f.internal_redirect.map(|p| p.codes)), Ok(Some(vec![])));
    let prev = "{name: p, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.internal_redirect.previous_routes.v3.PreviousRoutesConfig}}";
    let listed = "{name: a, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.internal_redirect.allow_listed_routes.v3.AllowListedRoutesConfig, allowed_route_names: [r1]}}";
    let safe = "{name: s, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.internal_redirect.safe_cross_scheme.v3.SafeCrossSchemeConfig}}";
    let f = action(&format!(
        "internal_redirect_policy: {{predicates: [{prev}, {listed}, {safe}], allow_cross_scheme_redirect: true, response_headers_to_copy: [X-Copied]}}"
    ));
    let p = f.map(|f| {
        f.internal_redirect.map(|p| (p.predicates, p.allow_cross_scheme_redirect, p.response_headers_to_copy))
    });
    let predicates = vec![
        RedirectPredicate::PreviousRoutes,
        RedirectPredicate::AllowListedRoutes(vec!["r1".to_string()]),
        RedirectPredicate::SafeCrossScheme,
    ];
    assert_eq!(p, Ok(Some((predicates, true, vec!["x-copied".to_string()]))));
    assert_eq!(action("timeout: 1s").map(|f| f.internal_redirect), Ok(None));
}

#[test]
fn the_deprecated_internal_redirect_fields() {
    let f = action("internal_redirect_action: HANDLE_INTERNAL_REDIRECT, max_internal_redirects: 4");
    assert_eq!(f.map(|f| f.internal_redirect.map(|p| (p.codes, p.max_internal_redirects))), Ok(Some((vec![302], 4))));
    let f = action("internal_redirect_action: PASS_THROUGH_INTERNAL_REDIRECT, max_internal_redirects: 4");
    assert_eq!(f.map(|f| f.internal_redirect), Ok(None));
    // The policy, when set, is the one Envoy reads.
    let f = action(
        "internal_redirect_action: HANDLE_INTERNAL_REDIRECT, internal_redirect_policy: {max_internal_redirects: 2}",
    );
    assert_eq!(f.map(|f| f.internal_redirect.map(|p| p.max_internal_redirects)), Ok(Some(2)));
}

#[test]
fn an_internal_redirect_policy_envoy_refuses_names_its_field() {
    let at = format!("{ROUTE}.internal_redirect_policy");
    let e = action("internal_redirect_policy: {response_headers_to_copy: [\":path\"]}").err().unwrap_or_default();
    assert!(e.iter().any(|m| m.starts_with(&format!("{at}.response_headers_to_copy"))), "{e:#?}");
    let e = action("internal_redirect_policy: {response_headers_to_copy: [host]}").err().unwrap_or_default();
    assert!(e.iter().any(|m| m.starts_with(&format!("{at}.response_headers_to_copy"))), "{e:#?}");
    let fs = "{name: f, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.internal_redirect.filter_state.v3.FilterStateConfig}}";
    let e = action(&format!("internal_redirect_policy: {{predicates: [{fs}]}}")).err().unwrap_or_default();
    assert!(e.iter().any(|m| m.starts_with(&format!("{at}.predicates[0]"))), "{e:#?}");
    let e = action("internal_redirect_policy: {redirect_response_codes: [301, 302, 303, 307, 308, 302]}")
        .err()
        .unwrap_or_default();
    assert!(e.iter().any(|m| m.starts_with(&format!("{at}.redirect_response_codes"))), "{e:#?}");
    let e = action("internal_redirect_action: SOMETIMES").err().unwrap_or_default();
    assert!(e.iter().any(|m| m.starts_with(&format!("{ROUTE}.internal_redirect_action"))), "{e:#?}");
}
