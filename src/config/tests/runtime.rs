//! `layered_runtime` (named layers, at most one admin layer) and the fields that name runtime
//! keys: `HTTPFault`'s `*_runtime`, `RouteMatch.runtime_fraction`.

use super::{load_text, messages, v3, A_SVC, ROUTE_A};
use crate::config::filters::{FaultKeys, HttpFilterKind};
use crate::config::model::{RouteAction, RouteSource};
use crate::runtime::{FractionKey, RuntimeLayer};

const ROUTER: &str = "          - name: envoy.filters.http.router\n";
const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

fn with_fault(fields: &str) -> String {
    let f = format!(
        "          - name: f\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n{fields}"
    );
    v3(ROUTE_A, A_SVC).replace(ROUTER, &format!("{f}{ROUTER}"))
}

#[test]
fn fault_runtime_fields_rename_its_keys() {
    let text = with_fault(
        "              abort: {http_status: 503, percentage: {numerator: 1}}\n              abort_percent_runtime: a.p\n              delay_percent_runtime: d.p\n              delay_duration_runtime: d.ms\n              abort_http_status_runtime: a.s\n              abort_grpc_status_runtime: a.g\n              max_active_faults_runtime: m\n",
    );
    let b = load_text("f.yaml", &text).unwrap_or_else(|e| panic!("{:?}", messages(&e)));
    let hcm = b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm"));
    let HttpFilterKind::Fault(c) = &hcm.http_filters[0].kind else { panic!("not a fault") };
    let want = FaultKeys {
        abort_percent: "a.p".into(),
        delay_percent: "d.p".into(),
        delay_duration: "d.ms".into(),
        abort_http_status: "a.s".into(),
        abort_grpc_status: "a.g".into(),
        max_active_faults: "m".into(),
    };
    assert_eq!(c.keys, want);
    // Unset (or empty) keeps Envoy's names.
    let b = load_text("f.yaml", &with_fault("              abort_percent_runtime: \"\"\n"))
        .unwrap_or_else(|e| panic!("{:?}", messages(&e)));
    let hcm = b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm"));
    let HttpFilterKind::Fault(c) = &hcm.http_filters[0].kind else { panic!("not a fault") };
    assert_eq!(c.keys.abort_percent, "fault.http.abort.abort_percent");
    // No response rate limit, so no key for its percentage.
    let e = load_text("f.yaml", &with_fault("              response_rate_limit_percent_runtime: r\n"))
        .map(|_| ())
        .map_err(|e| messages(&e))
        .expect_err("refused");
    let want = format!("{HCM}.http_filters[0].typed_config.response_rate_limit_percent_runtime");
    assert!(e.iter().any(|m| m.contains(&want)), "{e:?}");
}

#[test]
fn route_runtime_fraction_reads_its_key() {
    let routes = "              - match: {prefix: \"/\", runtime_fraction: {default_value: {numerator: 20}, runtime_key: r.k}}\n                route: {cluster: a_svc}\n";
    let b = load_text("r.yaml", &v3(routes, A_SVC)).unwrap_or_else(|e| panic!("{:?}", messages(&e)));
    let hcm = b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm"));
    let RouteSource::Inline(rc) = &hcm.routes else { panic!("not inline") };
    let route = &rc.virtual_hosts[0].routes[0];
    assert!(matches!(route.action, RouteAction::Forward(_)));
    let want = FractionKey {
        default_value: crate::config::filters::Fraction { numerator: 20, denominator: 100 },
        runtime_key: Some("r.k".into()),
    };
    assert_eq!(route.matcher.runtime_fraction, Some(want));
}

#[test]
fn layers_are_named_and_one_admin_layer_at_most() {
    let layers = "layered_runtime:\n  layers:\n  - {name: s, static_layer: {a: {b: 1}}}\n  - {name: d, disk_layer: {symlink_root: /nonexistent, subdirectory: envoy}}\n  - {name: adm, admin_layer: {}}\n";
    let b = load_text("l.yaml", &format!("{layers}{}", v3(ROUTE_A, A_SVC)))
        .unwrap_or_else(|e| panic!("{:?}", messages(&e)));
    let names: Vec<&str> = b.runtime.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["s", "d", "adm"]);
    assert_eq!(b.runtime[0].1, RuntimeLayer::Static(vec![("a.b".into(), "1".into())]));
    assert_eq!(b.runtime[2].1, RuntimeLayer::Admin);
    let two = "layered_runtime:\n  layers:\n  - {name: a1, admin_layer: {}}\n  - {name: a2, admin_layer: {}}\n";
    let e = load_text("l.yaml", &format!("{two}{}", v3(ROUTE_A, A_SVC))).map(|_| ()).map_err(|e| messages(&e));
    let e = e.expect_err("two admin layers");
    assert!(
        e.iter().any(|m| m.contains("layered_runtime.layers[1].admin_layer") && m.contains("at most one")),
        "{e:?}"
    );
}
