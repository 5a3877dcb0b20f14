//! `http_filters` chosen by `@type`, `disabled` / `is_optional`, the v2 name-only spellings,
//! and `typed_per_filter_config` entries (Envoy 1.40's answers, asked of the real one).

use super::{load_text, messages, v3, A_SVC, ROUTE_A};
use crate::config::filters::*;
use crate::config::model::{Bootstrap, RouteSource};

const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
const ROUTER: &str = "          - name: envoy.filters.http.router\n";

/// The minimal config with `filters` (YAML list items) before the router.
fn with_filters(filters: &str, routes: &str) -> String {
    v3(routes, A_SVC).replace(ROUTER, &format!("{filters}{ROUTER}"))
}

fn load(text: &str) -> Result<Bootstrap, Vec<String>> {
    load_text("f.yaml", text).map_err(|e| messages(&e))
}

fn filters(b: &Bootstrap) -> &[HttpFilter] {
    &b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).http_filters
}

#[test]
fn filters_are_chosen_by_type_not_by_name() {
    let text = with_filters(
        "          - name: my-fault\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n              abort: {http_status: 503, percentage: {numerator: 5, denominator: TEN_THOUSAND}}\n",
        ROUTE_A,
    );
    let b = load(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let HttpFilterKind::Fault(f) = &filters(&b)[0].kind else { panic!("not a fault filter") };
    assert_eq!(filters(&b)[0].name, "my-fault");
    let abort = f.abort.as_ref().map(|a| (a.kind, a.percentage));
    assert_eq!(abort, Some((AbortKind::Http(503), Fraction { numerator: 5, denominator: 10_000 })));
}

#[test]
fn unknown_types_are_refused_unless_optional() {
    let unknown = "          - name: envoy.filters.http.lua\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}\n";
    let e = load(&with_filters(unknown, ROUTE_A)).err().unwrap_or_default();
    assert_eq!(e, [format!("{HCM}.http_filters[0]: unsupported HTTP filter envoy.filters.http.lua")]);
    let optional =
        unknown.replace("            typed_config", "            is_optional: true\n            typed_config");
    let b = load(&with_filters(&optional, ROUTE_A)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(filters(&b), [HttpFilter::router()]);
}

#[test]
fn the_router_cannot_be_disabled() {
    let text = v3(ROUTE_A, A_SVC).replace(ROUTER, &format!("{ROUTER}            disabled: true\n"));
    let e = load(&text).err().unwrap_or_default();
    assert_eq!(
        e,
        [format!(
            "{HCM}.http_filters[0].disabled: the last (terminal) filter (envoy.filters.http.router) in the chain cannot be disabled by default"
        )]
    );
}

#[test]
fn v2_names_without_typed_config_still_load() {
    let text = v3(ROUTE_A, A_SVC).replace(
        ROUTER,
        "          - name: envoy.fault\n            config: {abort: {http_status: 500, percentage: {numerator: 100}}}\n          - name: envoy.buffer\n            config: {max_request_bytes: 1024}\n          - name: envoy.router\n",
    );
    let text = text.replace(
        "            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n",
        "",
    );
    let b = load(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let kinds: Vec<&HttpFilterKind> = filters(&b).iter().map(|f| &f.kind).collect();
    assert!(matches!(kinds[0], HttpFilterKind::Fault(_)), "{kinds:?}");
    assert_eq!(kinds[1], &HttpFilterKind::Buffer(BufferConfig { max_request_bytes: 1024 }));
    assert_eq!(kinds[2], &HttpFilterKind::Router);
}

#[test]
fn per_filter_configs_are_read_by_type() {
    let routes = "              - match: {prefix: \"/\"}\n                route: {cluster: a_svc}\n                typed_per_filter_config:\n                  absent-filter: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault}\n                  off: {\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}\n                  opt: {\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, is_optional: true, config: {\"@type\": type.googleapis.com/google.protobuf.Struct, value: {}}}\n                  buf: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, buffer: {max_request_bytes: 7}}\n";
    let b = load(&v3(routes, A_SVC)).unwrap_or_else(|e| panic!("{e:?}"));
    let RouteSource::Inline(rc) = &b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).routes else {
        panic!("not inline")
    };
    let got: Vec<(&str, &PerFilter)> =
        rc.virtual_hosts[0].routes[0].per_filter.iter().map(|p| (p.filter.as_str(), &p.config)).collect();
    assert_eq!(
        got,
        [
            ("absent-filter", &PerFilter::Fault(FaultConfig::empty())),
            ("off", &PerFilter::Disabled),
            ("opt", &PerFilter::Ignored),
            ("buf", &PerFilter::Buffer(BufferConfig { max_request_bytes: 7 })),
        ]
    );
}

#[test]
fn per_filter_config_errors_name_their_entry() {
    let entry = |v: &str| {
        format!(
            "              - match: {{prefix: \"/\"}}\n                route: {{cluster: a_svc}}\n                typed_per_filter_config:\n                  f: {v}\n"
        )
    };
    let at = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].typed_per_filter_config.f";
    let e = load(&v3(&entry("{\"@type\": type.googleapis.com/google.protobuf.Struct, value: {}}"), A_SVC))
        .err()
        .unwrap_or_default();
    assert_eq!(
        e,
        [format!(
            "{at}: unsupported per-filter configuration type.googleapis.com/google.protobuf.Struct for HTTP filter f"
        )]
    );
    let e = load(&v3(&entry("{\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig}"), A_SVC))
        .err()
        .unwrap_or_default();
    assert_eq!(e, [format!("{at}: Empty route/virtual host per filter configuration for f filter")]);
    let e = load(&v3(
        &entry("{\"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, response_rate_limit: {}}"),
        A_SVC,
    ))
    .err()
    .unwrap_or_default();
    assert_eq!(e, [format!("{at}.response_rate_limit: not implemented by legate")]);
}

fn set_filter_state(values: &str) -> Result<Bootstrap, Vec<String>> {
    let filter = format!(
        "          - name: sfs\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config\n              on_request_headers: {values}\n"
    );
    load(&with_filters(&filter, ROUTE_A))
}

#[test]
fn set_filter_state_values_are_read() {
    let b = set_filter_state(
        "[{object_key: a, factory_key: envoy.hashable_string, format_string: {text_format: \"%REQ(x-u)%\"}, \
         skip_if_empty: true, read_only: true, shared_with_upstream: NONE}, \
         {object_key: b, factory_key: envoy.string, format_string: {text_format_source: {inline_string: x}, omit_empty_values: true}}]",
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let HttpFilterKind::SetFilterState(c) = &filters(&b)[0].kind else { panic!("not set_filter_state") };
    assert_eq!(
        c.values,
        [
            FilterStateValue {
                key: "a".into(),
                hashable: true,
                format: "%REQ(x-u)%".into(),
                omit_empty: false,
                skip_if_empty: true
            },
            FilterStateValue {
                key: "b".into(),
                hashable: false,
                format: "x".into(),
                omit_empty: true,
                skip_if_empty: false
            },
        ]
    );
}

/// Envoy 1.40 refuses a key with no object factory ("'my.key' does not have an object
/// factory"); legate also refuses the factories it does not have, and what it does not do.
#[test]
fn set_filter_state_refusals_name_the_field() {
    const AT: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.on_request_headers[0]";
    let has = |values: &str, want: &str| {
        let e = set_filter_state(values).err().unwrap_or_default();
        assert!(e.iter().any(|m| m.starts_with(&format!("{AT}{want}"))), "missing {want:?} in {e:#?}");
    };
    let text = "format_string: {text_format: x}";
    has(&format!("[{{object_key: my.key, {text}}}]"), ".object_key: 'my.key' does not have an object factory");
    has(
        &format!("[{{object_key: k, factory_key: bogus, {text}}}]"),
        ".factory_key: 'k' does not have an object factory",
    );
    has(
        &format!("[{{object_key: envoy.tcp_proxy.cluster, {text}}}]"),
        ".object_key: 'envoy.tcp_proxy.cluster' does not have an object factory legate implements",
    );
    has(
        &format!("[{{object_key: k, factory_key: envoy.string, shared_with_upstream: ONCE, {text}}}]"),
        ".shared_with_upstream: unsupported value \"ONCE\"",
    );
    has("[{object_key: k, factory_key: envoy.string}]", ": missing format_string");
    has(
        "[{object_key: k, factory_key: envoy.string, format_string: {json_format: {a: b}}}]",
        ".format_string.json_format: unsupported field",
    );
    has("[{object_key: k, factory_key: envoy.string, format_string: {text_format: \"%BOGUS%\"}}]", ".format_string: ");
    has(&format!("[{{object_key: \"\", factory_key: envoy.string, {text}}}]"), ".object_key: must not be empty");
}
