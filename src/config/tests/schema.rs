//! Envoy's schema pass and the support table (`config::schema`): what Envoy refuses is
//! refused with its path, what Envoy accepts and legate does not implement is refused as
//! "not implemented by legate", every problem is reported, extensions go by `@type`, and the
//! support matrix in `docs/` is the table's.

use std::path::Path;

use super::{load_text, messages, v3, A_SVC, ROUTE_A};
use crate::config::model::*;
use crate::config::reader::Ctx;
use crate::config::schema;

const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

fn errs(text: &str) -> Vec<String> {
    match load_text("bad.yaml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => messages(&e),
    }
}

fn has(errors: &[String], want: &str) {
    assert!(errors.iter().any(|e| e == want), "missing {want:?} in {errors:#?}");
}

#[test]
fn committed_support_matrix_is_the_tables() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/support-matrix.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == crate::config::support_matrix(),
        "docs/support-matrix.md is stale: legate --print-support-matrix > docs/support-matrix.md"
    );
}

#[test]
fn committed_not_supported_list_is_the_tables() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/not-supported.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = crate::config::not_supported();
    assert!(
        committed == generated,
        "docs/not-supported.md is stale: legate --print-not-supported > docs/not-supported.md"
    );
    // The list is the table's complement: an honoured field is never in it.
    assert!(generated.contains("- `envoy.config.cluster.v3.Cluster`: "), "{generated}");
    assert!(!generated.contains("`connect_timeout`"), "{generated}");
    assert!(generated.contains("`ext_authz`"), "{generated}");
}

#[test]
fn every_table_entry_is_a_message_with_those_fields() {
    for m in schema::support::TABLE {
        let Some(desc) = schema::message(m.name) else { panic!("{} is not in Envoy's schema", m.name) };
        for f in m.honoured.iter().chain(m.inert) {
            assert!(desc.get_field_by_name(f).is_some(), "{}.{f} is not a field", m.name);
        }
    }
}

#[test]
fn unknown_field_inside_a_typed_config_names_its_path() {
    let text = v3(ROUTE_A, A_SVC).replace("stat_prefix: ingress\n", "stat_prefix: ingress\n          colour: blue\n");
    assert!(text.contains("colour"), "template changed");
    has(&errs(&text), &format!("{HCM}.colour: unknown field"));
}

#[test]
fn every_unimplemented_field_is_reported() {
    let clusters = format!("{A_SVC}    lb_subset_config: {{fallback_policy: ANY_ENDPOINT}}\n    track_cluster_stats: {{}}\n    upstream_connection_options: {{tcp_keepalive: {{keepalive_time: 5}}}}\n");
    let text =
        v3(ROUTE_A, &clusters).replace("stat_prefix: ingress\n", "stat_prefix: ingress\n          via: legate\n");
    let e = errs(&text);
    has(&e, "static_resources.clusters[0].lb_subset_config: not implemented by legate");
    has(&e, "static_resources.clusters[0].upstream_connection_options: not implemented by legate");
    has(&e, &format!("{HCM}.via: not implemented by legate"));
    // An empty message is set.
    has(&e, "static_resources.clusters[0].track_cluster_stats: not implemented by legate");
    assert_eq!(e.len(), 4, "{e:#?}");
}

#[test]
fn every_schema_error_is_reported() {
    let clusters = format!("{A_SVC}    colour: blue\n    lb_policy: ROUND_ROBBIN\n    connect_timeout: soon\n");
    let clusters = clusters.replace("    connect_timeout: 1s\n", "");
    let e = errs(&v3(ROUTE_A, &clusters));
    has(&e, "static_resources.clusters[0].colour: unknown field");
    has(&e, "static_resources.clusters[0].lb_policy: unknown value \"ROUND_ROBBIN\" (expected one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV)");
    assert!(e.iter().any(|m| m.starts_with("static_resources.clusters[0].connect_timeout: ")), "{e:#?}");
    // Where only the schema speaks, the names come from Envoy's enum.
    let e = errs(&v3(ROUTE_A, &format!("{A_SVC}    upstream_bind_config: {{source_address: {{address: 127.0.0.1, port_value: 0, protocol: QUIC}}}}\n")));
    assert!(e.iter().any(|m| m.ends_with("protocol: unknown value \"QUIC\" (expected one of TCP, UDP)")), "{e:#?}");
    // And an unknown field's nearest name.
    let e = errs(&v3(ROUTE_A, &format!("{A_SVC}    conect_timeout: 2s\n")));
    has(&e, "static_resources.clusters[0].conect_timeout: unknown field (did you mean `connect_timeout`?)");
}

#[test]
fn enum_names_in_any_case_and_single_values_for_lists_still_load() {
    let text = v3(ROUTE_A, &format!("{A_SVC}    lb_policy: least_request\n    dns_lookup_family: v4_only\n"));
    let b = load_text("ok.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.clusters[0].lb_policy, LbPolicy::LeastRequest);
}

#[test]
fn extensions_are_chosen_by_type_not_name() {
    let text = v3(ROUTE_A, A_SVC)
        .replace("name: envoy.filters.network.http_connection_manager", "name: hcm")
        .replace("name: envoy.filters.http.router", "name: my-router");
    assert!(text.contains("name: hcm") && text.contains("name: my-router"), "template changed");
    let b = load_text("ok.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.listeners[0]
            .hcms()
            .next()
            .unwrap_or_else(|| panic!("no hcm"))
            .http_filters
            .iter()
            .map(|f| &f.kind)
            .collect::<Vec<_>>(),
        [&crate::config::model::HttpFilterKind::Router]
    );
    // A known name with another extension's type is that other extension.
    let lua = v3(ROUTE_A, A_SVC).replace(
        "          http_filters:\n",
        "          http_filters:\n          - name: envoy.filters.http.router\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}\n",
    );
    has(&errs(&lua), &format!("{HCM}.http_filters[0]: unsupported HTTP filter envoy.filters.http.router"));
}

#[test]
fn access_loggers_are_chosen_by_type() {
    let log = "          access_log:\n          - name: my_log\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog\n";
    let text = v3(ROUTE_A, A_SVC).replace("          http_filters:\n", &format!("{log}          http_filters:\n"));
    let b = load_text("ok.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).access_logs[0].sink,
        AccessLogSink::Stdout
    );
}

/// The schema pass alone, on a value.
fn check(yaml: &str, message: &str) -> Vec<String> {
    let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
    let mut ctx = Ctx::new("f.yaml");
    schema::check(&mut ctx, &v, message, "c", 0);
    ctx.schema_errors.iter().map(|e| format!("{}: {}", e.path, e.message)).collect()
}

/// Startup releases the schema once its configuration is applied: the next parse (a reload)
/// decodes it again and still refuses a field at its path.
#[test]
fn a_parse_after_the_schema_was_released_names_the_path() {
    let route = "match: {prefix: /}\nroute: {cluster: a, zzz_no_such: 1}\n";
    let before = check(route, "envoy.config.route.v3.Route");
    assert!(before.len() == 1 && before[0].starts_with("c.route.zzz_no_such: unknown field"), "{before:#?}");
    crate::config::release_schema();
    assert_eq!(check(route, "envoy.config.route.v3.Route"), before);
}

#[test]
fn an_extension_legate_does_not_implement_is_named_by_type() {
    let cluster = r#"
name: c
typed_extension_protocol_options:
  envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions
"#;
    assert_eq!(
        check(cluster, "envoy.config.cluster.v3.Cluster"),
        [
            "c.typed_extension_protocol_options.envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions: unsupported extension type.googleapis.com/envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions"
        ]
    );
    let unknown =
        "name: c\ntyped_dns_resolver_config: {name: x, typed_config: {\"@type\": type.googleapis.com/no.Such}}\n";
    let e = check(unknown, "envoy.config.cluster.v3.Cluster");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("c.typed_dns_resolver_config.typed_config: "), "{e:#?}");
}

#[test]
fn schema_errors_are_bounded() {
    let many: String = (0..50).map(|i| format!("f{i}: 1\n")).collect();
    let e = check(&many, "envoy.config.cluster.v3.Cluster");
    assert_eq!(e.len(), 20, "{e:#?}");
}
