use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};

use super::{host_and_port, source_origin, Csrf};
use crate::config::cors_csrf::{CsrfPolicyConfig, RuntimeFraction};
use crate::config::model::{StringMatch, StringMatcher};
use crate::proxy::local_reply::LocalReason;
use crate::runtime::Runtime;
use crate::stats::Store;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn urls_compare_by_host_and_port() {
    assert_eq!(host_and_port("http://a.test:8080/x?y"), "a.test:8080");
    assert_eq!(host_and_port("https://u@a.test"), "a.test");
    assert_eq!(host_and_port("a.test:1"), "a.test:1");
    assert_eq!(host_and_port("foo"), "foo");
    assert_eq!(source_origin(&headers(&[("origin", "null"), ("referer", "http://h/")])), None);
    assert_eq!(source_origin(&headers(&[("referer", "http://h/p")])), Some("h"));
    assert_eq!(source_origin(&headers(&[("origin", "http://o"), ("referer", "http://h/p")])), Some("o"));
}

#[test]
fn unsafe_methods_need_a_matching_origin_unless_shadowed() {
    let store = Arc::new(Store::default());
    let extra = StringMatcher { kind: StringMatch::Suffix(".trusted".into()), ignore_case: false };
    let policy = CsrfPolicyConfig {
        filter_enabled: RuntimeFraction::ALL,
        shadow_enabled: RuntimeFraction::NONE,
        additional_origins: vec![extra],
    };
    let csrf = Csrf::new(&policy, &store, "ing");
    let check =
        |m: Method, h: &[(&'static str, &'static str)]| csrf.decode(&policy, &headers(h), &m, "h:1", &Runtime::empty());
    assert_eq!(check(Method::GET, &[("origin", "http://evil")]), Ok(()));
    assert_eq!(check(Method::POST, &[("origin", "http://h:1")]), Ok(()));
    assert_eq!(check(Method::PATCH, &[("origin", "https://a.trusted")]), Ok(()));
    assert_eq!(check(Method::DELETE, &[("origin", "http://evil")]), Err(LocalReason::CsrfInvalidOrigin));
    assert_eq!(check(Method::PUT, &[]), Err(LocalReason::CsrfInvalidOrigin));
    let shadow = CsrfPolicyConfig {
        filter_enabled: RuntimeFraction::NONE,
        shadow_enabled: RuntimeFraction::ALL,
        ..policy.clone()
    };
    assert_eq!(
        csrf.decode(&shadow, &headers(&[("origin", "http://evil")]), &Method::POST, "h:1", &Runtime::empty()),
        Ok(())
    );
    let count = |s: &str| store.counter(&format!("http.ing.csrf.{s}")).value();
    assert_eq!((count("request_valid"), count("request_invalid"), count("missing_source_origin")), (2, 2, 1));
}

#[test]
fn filter_enabled_and_shadow_enabled_read_their_runtime_keys() {
    use crate::runtime::RuntimeLayer;
    let store = Arc::new(Store::default());
    let policy = CsrfPolicyConfig {
        filter_enabled: RuntimeFraction { runtime_key: Some("csrf.on".into()), ..RuntimeFraction::ALL },
        shadow_enabled: RuntimeFraction { runtime_key: Some("csrf.shadow".into()), ..RuntimeFraction::NONE },
        additional_origins: Vec::new(),
    };
    let csrf = Csrf::new(&policy, &store, "ing");
    let layer = |pairs: &[(&str, &str)]| {
        let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Runtime::new(&[("s".to_string(), RuntimeLayer::Static(pairs))], "")
    };
    let evil = headers(&[("origin", "http://evil")]);
    let check = |rt: &Runtime| csrf.decode(&policy, &evil, &Method::POST, "h:1", rt);
    assert_eq!(check(&layer(&[])), Err(LocalReason::CsrfInvalidOrigin), "the default: enforced");
    assert_eq!(check(&layer(&[("csrf.on", "0")])), Ok(()), "the runtime turns it off");
    assert_eq!(check(&layer(&[("csrf.on", "0"), ("csrf.shadow", "100")])), Ok(()), "shadowed: counted only");
    let count = |s: &str| store.counter(&format!("http.ing.csrf.{s}")).value();
    assert_eq!(count("request_invalid"), 2, "the enforced one and the shadowed one");
}
