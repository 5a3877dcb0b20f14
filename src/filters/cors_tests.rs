use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request};

use super::{Cors, CorsRt};
use crate::config::cors_csrf::{CorsPolicyConfig, RuntimeFraction};
use crate::config::filters::{PerFilter, PerFilterConfig, LEGACY_CORS};
use crate::config::model::{StringMatch, StringMatcher};
use crate::filters::{Slot, Stream};
use crate::proxy::local_reply::LocalReason;
use crate::runtime::Runtime;
use crate::stats::Store;

const NAME: &str = "envoy.filters.http.cors";

fn entry(filter: &str, p: CorsPolicyConfig) -> PerFilterConfig {
    PerFilterConfig { filter: filter.to_string(), config: PerFilter::Cors(p) }
}

fn exact(s: &str) -> StringMatcher {
    StringMatcher { kind: StringMatch::Exact(s.into()), ignore_case: false }
}

fn merged(levels: &[&[PerFilterConfig]]) -> Arc<CorsRt> {
    match CorsRt::merge(NAME, levels) {
        Slot::Cors(p) => p,
        _ => panic!("expected a CORS policy, got another slot"),
    }
}

fn parts(method: Method, pairs: &[(&'static str, &'static str)]) -> http::request::Parts {
    let mut req = Request::builder().method(method).uri("/").body(()).expect("request").into_parts().0;
    for (k, v) in pairs {
        req.headers.append(*k, HeaderValue::from_static(v));
    }
    req
}

fn vhost_policy() -> CorsPolicyConfig {
    CorsPolicyConfig {
        allow_origin_string_match: vec![exact("https://app")],
        allow_methods: "GET, POST".into(),
        allow_headers: "*".into(),
        expose_headers: "x-e".into(),
        max_age: "600".into(),
        allow_credentials: Some(true),
        ..Default::default()
    }
}

#[test]
fn each_field_comes_from_the_most_specific_level_that_sets_it() {
    let route = [entry(NAME, CorsPolicyConfig { max_age: "5".into(), ..Default::default() })];
    let vhost = [entry(NAME, vhost_policy())];
    let p = merged(&[&route, &vhost]);
    assert_eq!(p.max_age.as_ref().map(|v| v.to_str().unwrap_or("")), Some("5"));
    assert_eq!(p.expose_headers.as_ref().map(|v| v.to_str().unwrap_or("")), Some("x-e"));
    assert!(p.allow_credentials);
    // A route that only disables: the most specific policy decides enabling.
    let off = [entry(NAME, CorsPolicyConfig { filter_enabled: Some(RuntimeFraction::NONE), ..Default::default() })];
    assert!(!merged(&[&off, &vhost]).enabled.enabled(&Runtime::empty()));
    // The deprecated field counts only without a typed policy anywhere.
    let legacy = [entry(LEGACY_CORS, CorsPolicyConfig { max_age: "9".into(), ..Default::default() })];
    assert_eq!(merged(&[&legacy, &vhost]).max_age.as_ref().map(|v| v.to_str().unwrap_or("")), Some("600"));
    assert_eq!(merged(&[&legacy]).max_age.as_ref().map(|v| v.to_str().unwrap_or("")), Some("9"));
    assert!(matches!(CorsRt::merge(NAME, &[&[]]), Slot::Default));
}

#[test]
fn preflights_are_answered_and_simple_requests_get_the_origin() {
    let store = Store::new();
    let cors = Cors::new(&store, "ing");
    let vhost = [entry(NAME, vhost_policy())];
    let p = merged(&[&vhost]);
    let mut stream = Stream::default();
    let pre = parts(
        Method::OPTIONS,
        &[
            ("origin", "https://app"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-a"),
        ],
    );
    assert_eq!(cors.decode(&p, &pre, &mut stream, &Runtime::empty()), Err(LocalReason::CorsPreflight));
    let mut h = HeaderMap::new();
    Cors::encode(stream.cors.as_deref(), &mut h);
    let get = |h: &HeaderMap, n: &str| h.get(n).map(|v| v.to_str().unwrap_or("?").to_string());
    assert_eq!(get(&h, "access-control-allow-origin").as_deref(), Some("https://app"));
    assert_eq!(get(&h, "access-control-allow-methods").as_deref(), Some("GET, POST"));
    assert_eq!(get(&h, "access-control-allow-headers").as_deref(), Some("x-a"));
    assert_eq!(get(&h, "access-control-max-age").as_deref(), Some("600"));
    assert_eq!(get(&h, "access-control-allow-credentials").as_deref(), Some("true"));

    // An origin not allowed: the preflight goes upstream, nothing is added.
    let mut stream = Stream::default();
    let evil = parts(Method::OPTIONS, &[("origin", "https://evil"), ("access-control-request-method", "PUT")]);
    assert_eq!(cors.decode(&p, &evil, &mut stream, &Runtime::empty()), Ok(()));
    assert!(stream.cors.is_none());

    let mut stream = Stream::default();
    assert_eq!(
        cors.decode(&p, &parts(Method::GET, &[("origin", "https://app")]), &mut stream, &Runtime::empty()),
        Ok(())
    );
    let mut h = HeaderMap::new();
    Cors::encode(stream.cors.as_deref(), &mut h);
    assert_eq!(get(&h, "access-control-expose-headers").as_deref(), Some("x-e"));
    assert!(h.get("access-control-allow-methods").is_none());
    assert_eq!(store.counter("http.ing.cors.origin_valid").value(), 2);
    assert_eq!(store.counter("http.ing.cors.origin_invalid").value(), 1);
}
