//! `RouteAction` fields beyond the cluster and rewrites: the stream duration, gRPC timeouts and
//! the route's idle timeout.

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
