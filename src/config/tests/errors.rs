//! Each kind of error names its file, field path and problem; errors are collected.

use std::path::Path;

use super::{load_text, messages, v3, A_SVC, ROUTE_A};
use crate::config::load_bootstrap;
use crate::config::model::*;

fn errs(text: &str) -> Vec<String> {
    match load_text("bad.yaml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            assert!(e.0.iter().all(|e| e.file.ends_with("bad.yaml")), "{e}");
            messages(&e)
        }
    }
}

fn has(errors: &[String], want: &str) {
    assert!(errors.iter().any(|e| e == want), "missing {want:?} in {errors:#?}");
}

const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

#[test]
fn minimal_v3_loads() {
    let b = match load_text("ok.yaml", &v3(ROUTE_A, A_SVC)) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(b.listeners[0].name, "main");
    assert_eq!(b.clusters[0].connect_timeout, std::time::Duration::from_secs(1));
    let RouteSource::Inline(rc) = &b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).routes else {
        panic!("not inline")
    };
    let RouteAction::Forward(f) = &rc.virtual_hosts[0].routes[0].action else { panic!("not forward") };
    assert_eq!(f.timeout, Some(std::time::Duration::from_secs(15)));
    assert_eq!(f.cluster, ClusterSpecifier::Cluster("a_svc".to_string()));
}

#[test]
fn unknown_field() {
    let e = errs(&v3(ROUTE_A, &A_SVC.replace("    type: STATIC\n", "    type: STATIC\n    colour: blue\n")));
    has(&e, "static_resources.clusters[0].colour: unknown field");
}

#[test]
fn unsupported_field() {
    let e = errs(&v3(ROUTE_A, &format!("{A_SVC}    lb_subset_config: {{fallback_policy: ANY_ENDPOINT}}\n")));
    has(&e, "static_resources.clusters[0].lb_subset_config: not implemented by legate");
}

#[test]
fn bad_enum() {
    let e = errs(&v3(ROUTE_A, &format!("{A_SVC}    lb_policy: round_robbin\n")));
    has(&e, "static_resources.clusters[0].lb_policy: unknown value \"round_robbin\" (expected one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV)");
    let e = errs(&v3(ROUTE_A, &format!("{A_SVC}    lb_policy: CLUSTER_PROVIDED\n")));
    has(&e, "static_resources.clusters[0].lb_policy: unsupported value \"CLUSTER_PROVIDED\"");
}

#[test]
fn bad_duration() {
    let e = errs(&v3(ROUTE_A, &A_SVC.replace("connect_timeout: 1s", "connect_timeout: 5")));
    has(&e, "static_resources.clusters[0].connect_timeout: invalid duration 5: expected a string like \"5s\"");
    let e = errs(&v3(ROUTE_A, &A_SVC.replace("connect_timeout: 1s", "connect_timeout: -1s")));
    has(&e, "static_resources.clusters[0].connect_timeout: invalid duration \"-1s\": negative");
}

#[test]
fn bad_regex() {
    let routes =
        "              - match: {safe_regex: {regex: \"/user/[0-9+\"}}\n                route: {cluster: a_svc}\n";
    let e = errs(&v3(routes, A_SVC));
    let path = format!("{HCM}.route_config.virtual_hosts[0].routes[0].match.safe_regex.regex");
    assert!(e.iter().any(|m| m.starts_with(&format!("{path}: invalid regex"))), "{e:#?}");
}

#[test]
fn duplicate_cluster_name() {
    let e = errs(&v3(ROUTE_A, &format!("{A_SVC}{A_SVC}")));
    has(
        &e,
        "static_resources.clusters[1].name: duplicate cluster name \"a_svc\" (first at static_resources.clusters[0])",
    );
}

#[test]
fn duplicate_listener_address() {
    let text = v3(ROUTE_A, A_SVC);
    let start = text.find("  - name: main").unwrap_or(0);
    let end = text.find("  clusters:").unwrap_or(0);
    let second = text[start..end].replace("name: main", "name: other");
    let text = format!("{}{second}{}", &text[..end], &text[end..]);
    let e = errs(&text);
    has(
        &e,
        "static_resources.listeners[1].address: duplicate listener address 127.0.0.1:10000 (first at static_resources.listeners[0])",
    );
}

#[test]
fn unknown_cluster_in_route() {
    let routes = ROUTE_A.replace("a_svc", "does_not_exist");
    let e = errs(&v3(&routes, A_SVC));
    has(
        &e,
        &format!("{HCM}.route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster \"does_not_exist\""),
    );
    // validate_clusters: false accepts it.
    let text =
        v3(&routes, A_SVC).replace("name: local_route", "name: local_route\n            validate_clusters: false");
    assert!(load_text("ok.yaml", &text).is_ok());
}

#[test]
fn router_missing_or_not_last() {
    let router = "          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n";
    let text = v3(ROUTE_A, A_SVC).replace(router, "");
    let text = text.replace("          http_filters:\n", "          http_filters: []\n");
    let e = errs(&text);
    has(&e, &format!("{HCM}.http_filters: the router filter (envoy.filters.http.router) is missing"));

    let hc = "          - name: envoy.filters.http.health_check\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck\n              pass_through_mode: false\n              headers: [{name: \":path\", string_match: {exact: /healthz}}]\n";
    let text = v3(ROUTE_A, A_SVC).replace(router, &format!("{router}{hc}"));
    let e = errs(&text);
    has(&e, &format!("{HCM}.http_filters[0]: the router filter must be the last HTTP filter"));
    let ok = v3(ROUTE_A, A_SVC).replace(router, &format!("{hc}{router}"));
    let b = load_text("ok.yaml", &ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).http_filters,
        [
            HttpFilter {
                name: "envoy.filters.http.health_check".to_string(),
                disabled: false,
                kind: crate::config::model::HttpFilterKind::HealthCheck { path: "/healthz".to_string() }
            },
            HttpFilter::router()
        ]
    );
}

#[test]
fn unsupported_http_filter() {
    let text = v3(ROUTE_A, A_SVC).replace(
        "          http_filters:\n",
        "          http_filters:\n          - name: envoy.filters.http.lua\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}\n",
    );
    has(&errs(&text), &format!("{HCM}.http_filters[0]: unsupported HTTP filter envoy.filters.http.lua"));
}

#[test]
fn wrong_type_url() {
    let text = v3(ROUTE_A, A_SVC).replace("http.router.v3.Router", "http.router.v3.Rooter");
    has(
        &errs(&text),
        &format!(
            // Filters are chosen by `@type`: a type legate does not know is an unknown filter.
            "{HCM}.http_filters[0]: unsupported HTTP filter envoy.filters.http.router"
        ),
    );
}

#[test]
fn yaml_syntax_error() {
    let Err(e) = load_text("bad.yaml", "static_resources:\n  clusters: [ {{{ x: : y\n") else { panic!("accepted") };
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0].path.is_empty());
    assert!(e.0[0].message.contains("line 2 column"), "{}", e.0[0].message);
    assert!(e.0[0].file.ends_with("bad.yaml"));
}

#[test]
fn multiple_errors_collected() {
    let clusters = format!(
        "{}{}",
        A_SVC.replace("connect_timeout: 1s", "connect_timeout: x"),
        A_SVC.replace("a_svc", "b_svc").replace("type: STATIC", "type: STATIK")
    );
    let routes = "              - match: {prefix: \"/\"}\n                direct_response: {status: 700}\n";
    let e = errs(&v3(routes, &clusters));
    assert!(e.len() >= 3, "{e:#?}");
    has(&e, "static_resources.clusters[1].type: unknown value \"STATIK\" (expected one of STATIC, STRICT_DNS, LOGICAL_DNS, EDS)");
    has(
        &e,
        &format!(
            "{HCM}.route_config.virtual_hosts[0].routes[0].direct_response.status: status 700 out of range (100-599)"
        ),
    );
    assert!(e.iter().any(|m| m.starts_with("static_resources.clusters[0].connect_timeout: invalid duration")));
}

#[test]
fn static_endpoint_must_be_ip() {
    let e = errs(&v3(ROUTE_A, &A_SVC.replace("127.0.0.11", "backend")));
    has(
        &e,
        "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: expected an IP address for a STATIC or EDS cluster, got \"backend\"",
    );
}

#[test]
fn duplicate_domain() {
    let text = v3(ROUTE_A, A_SVC).replace(
        "              routes:\n",
        "              routes: []\n            - name: vh2\n              domains: [\"*\"]\n              routes:\n",
    );
    let e = errs(&text);
    assert!(e.iter().any(|m| m.contains("virtual_hosts[1].domains[0]: duplicate domain \"*\"")), "{e:#?}");
}

#[test]
fn config_yaml_merge() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("base.yaml");
    std::fs::write(&path, v3(ROUTE_A, A_SVC)).unwrap_or_else(|e| panic!("{e}"));
    let over = "admin: {address: {socket_address: {port_value: 9999}}}\nstatic_resources:\n  clusters:\n  - name: b_svc\n    connect_timeout: 2s\n";
    let b = load_bootstrap(Some(&path), Some(over)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.admin.map(|a| a.address.to_string()), Some("127.0.0.1:9999".to_string()));
    assert_eq!(b.clusters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a_svc", "b_svc"]);
    // --config-yaml alone.
    let alone = over.replace("admin: {address: {socket_address: {port_value: 9999}}}\n", "");
    let b = load_bootstrap(None, Some(&alone)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.clusters.len(), 1);
    assert!(load_bootstrap(None, None).is_err());
}

#[test]
fn json_bootstrap_by_extension() {
    let json = r#"{"static_resources": {"clusters": [{"name": "c", "type": "STRICT_DNS", "connectTimeout": "0.5s",
      "load_assignment": {"endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address":
      {"address": "backend", "portValue": "8080"}}}}]}]}}]}}"#;
    let b = load_text("boot.json", json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.clusters[0].endpoints[0].endpoints[0].address,
        EndpointAddress::Dns { host: "backend".into(), port: 8080 }
    );
    // The same text named .yaml also parses (JSON is YAML), but a YAML file named .json does not.
    assert!(load_text("boot.json", "static_resources: {}\n").is_err());
    assert!(load_bootstrap(Some(Path::new("/nonexistent/legate.yaml")), None).is_err());
}

#[test]
fn route_actions_and_headers() {
    let routes = r#"              - match: {prefix: "/r", headers: [{name: X-Env, string_match: {exact: canary}}], query_parameters: [{name: debug, present_match: true}]}
                redirect: {https_redirect: true, response_code: FOUND}
              - match: {path: "/d"}
                direct_response: {status: 200, body: {inline_bytes: aGVsbG8=}}
              - match: {prefix: "/w", case_sensitive: false}
                route:
                  weighted_clusters: {clusters: [{name: a_svc, weight: 75}, {name: a_svc, weight: "25"}]}
                  timeout: 0s
                  retry_policy: {retry_on: "5xx,connect-failure", num_retries: 2, per_try_timeout: 0.5s}
                  regex_rewrite: {pattern: {regex: "^/w/(.*)$"}, substitution: "/\\1"}
                request_headers_to_add: [{header: {key: X-A, value: "1"}, append: false}, {header: {key: x-b, value: b}, append_action: ADD_IF_ABSENT}]
                response_headers_to_remove: [X-Drop]
"#;
    let b = load_text("ok.yaml", &v3(routes, A_SVC)).unwrap_or_else(|e| panic!("{e}"));
    let RouteSource::Inline(rc) = &b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).routes else {
        panic!("not inline")
    };
    let r = &rc.virtual_hosts[0].routes;
    let RouteAction::Redirect(red) = &r[0].action else { panic!("not a redirect") };
    assert_eq!((red.scheme.as_deref(), red.status), (Some("https"), 302));
    assert_eq!(r[0].matcher.headers[0].name, "x-env");
    let RouteAction::DirectResponse(d) = &r[1].action else { panic!("not direct") };
    assert_eq!(d.body.as_deref(), Some(&b"hello"[..]));
    let RouteAction::Forward(f) = &r[2].action else { panic!("not forward") };
    assert!(!r[2].matcher.case_sensitive);
    assert_eq!(f.timeout, None);
    let Some(rp) = &f.retry_policy else { panic!("no retry policy") };
    assert!(rp.retry_on.five_xx && rp.retry_on.connect_failure && !rp.retry_on.reset);
    assert_eq!(rp.num_retries, 2);
    assert_eq!(r[2].headers.request_headers_to_add[0].action, AppendAction::OverwriteOrAdd);
    assert_eq!(r[2].headers.request_headers_to_add[0].key, "x-a");
    assert_eq!(r[2].headers.request_headers_to_add[1].action, AppendAction::AddIfAbsent);
    assert_eq!(r[2].headers.response_headers_to_remove, ["x-drop"]);
}

#[test]
fn bad_retry_on() {
    let routes = "              - match: {prefix: \"/\"}\n                route: {cluster: a_svc, retry_policy: {retry_on: \"5xx,sometimes\"}}\n";
    has(
        &errs(&v3(routes, A_SVC)),
        &format!("{HCM}.route_config.virtual_hosts[0].routes[0].route.retry_policy.retry_on: unknown retry condition \"sometimes\""),
    );
}

fn retry_route(policy: &str) -> String {
    format!("              - match: {{prefix: \"/\"}}\n                route: {{cluster: a_svc, retry_policy: {{{policy}}}}}\n")
}

#[test]
fn retry_back_off_and_host_predicates_are_checked_as_envoy_checks_them() {
    let at = format!("{HCM}.route_config.virtual_hosts[0].routes[0].route.retry_policy");
    let e = errs(&v3(&retry_route("retry_on: 5xx, retry_back_off: {base_interval: 1s, max_interval: 0.1s}"), A_SVC));
    has(
        &e,
        &format!("{at}.retry_back_off.max_interval: max_interval must be greater than or equal to the base_interval"),
    );
    let e = errs(&v3(&retry_route("retry_on: 5xx, retry_back_off: {max_interval: 1s}"), A_SVC));
    has(&e, &format!("{at}.retry_back_off.base_interval: missing base_interval"));
    let e = errs(&v3(&retry_route("retry_on: 5xx, rate_limited_retry_back_off: {max_interval: 1s}"), A_SVC));
    has(&e, &format!("{at}.rate_limited_retry_back_off.reset_headers: at least one reset header is required"));
    let e = errs(&v3(
        &retry_route("retry_on: 5xx, retry_host_predicate: [{name: envoy.retry_host_predicates.omit_canary_hosts}]"),
        A_SVC,
    ));
    has(
        &e,
        &format!("{at}.retry_host_predicate[0]: unsupported retry host predicate (only envoy.retry_host_predicates.previous_hosts)"),
    );
    let e = errs(&v3(&retry_route("retry_on: 5xx, retry_priority: {name: my.priority}"), A_SVC));
    has(
        &e,
        &format!("{at}.retry_priority: unsupported retry priority (only envoy.retry_priorities.previous_priorities)"),
    );
    let pp = "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig";
    let e = errs(&v3(
        &retry_route(&format!(
            "retry_on: 5xx, retry_priority: {{name: x, typed_config: {{\"@type\": {pp}, update_frequency: 0}}}}"
        )),
        A_SVC,
    ));
    has(&e, &format!("{at}.retry_priority.typed_config.update_frequency: value must be greater than 0"));
    let e = errs(&v3(
        &retry_route("retry_on: 5xx, retry_priority: {name: envoy.retry_priorities.previous_priorities}"),
        A_SVC,
    ));
    has(&e, &format!("{at}.retry_priority.typed_config: missing typed_config (update_frequency is required)"));
    let e = errs(&v3(&retry_route("retry_on: \"5xx,reset-before-request\""), A_SVC));
    has(&e, &format!("{at}.retry_on: unsupported retry condition \"reset-before-request\""));
}

#[test]
fn a_full_retry_policy_loads_with_envoys_defaults() {
    let policy = "retry_on: \"retriable-headers,envoy-ratelimited\", retry_back_off: {base_interval: 0.1s}, \
                  rate_limited_retry_back_off: {reset_headers: [{name: Retry-After}, {name: X-RateLimit-Reset, format: UNIX_TIMESTAMP}]}, \
                  retriable_headers: [{name: x-retry}], retriable_request_headers: [{name: x-idem}], \
                  retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts}], host_selection_retry_max_attempts: 3";
    let b = load_text("ok.yaml", &v3(&retry_route(policy), A_SVC)).unwrap_or_else(|e| panic!("{e}"));
    let RouteSource::Inline(rc) = &b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).routes else {
        panic!("not inline")
    };
    let RouteAction::Forward(f) = &rc.virtual_hosts[0].routes[0].action else { panic!("not forward") };
    let Some(p) = &f.retry_policy else { panic!("no retry policy") };
    assert!(p.retry_on.retriable_headers && p.retry_on.envoy_ratelimited && !p.retry_on.five_xx);
    assert_eq!(
        (p.backoff_base, p.backoff_max),
        (std::time::Duration::from_millis(100), std::time::Duration::from_secs(1))
    );
    let Some(r) = &p.rate_limited else { panic!("no rate limited back-off") };
    assert_eq!(r.max_interval, std::time::Duration::from_secs(300));
    assert_eq!((r.reset_headers[0].name.as_str(), r.reset_headers[0].unix_timestamp), ("retry-after", false));
    assert_eq!((r.reset_headers[1].name.as_str(), r.reset_headers[1].unix_timestamp), ("x-ratelimit-reset", true));
    assert_eq!((p.retriable_headers.len(), p.retriable_request_headers.len()), (1, 1));
    assert!(p.previous_hosts);
    assert_eq!(p.host_selection_max_attempts, 3);
}

#[test]
fn grpc_health_checks_need_an_http2_cluster_and_check_addresses_an_ip() {
    let grpc = "    health_checks: [{timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, \
                grpc_health_check: {service_name: s}}]\n";
    let e = errs(&v3(ROUTE_A, &format!("{A_SVC}{grpc}")));
    has(&e, "static_resources.clusters[0].health_checks: a_svc cluster must support HTTP/2 for gRPC healthchecking");
    let named = A_SVC.replace(
        "port_value: 8080}}}",
        "port_value: 8080}}, health_check_config: {address: {socket_address: {address: hc.test, port_value: 1}}}}",
    );
    let e = errs(&v3(ROUTE_A, &named));
    has(
        &e,
        "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.health_check_config.address.socket_address.address: expected an IP address, got \"hc.test\"",
    );
}

#[test]
fn mirror_policies_name_one_known_cluster_with_envoys_words() {
    let route = |policy: &str| {
        format!("              - match: {{prefix: \"/\"}}\n                route: {{cluster: a_svc, request_mirror_policies: [{policy}]}}\n")
    };
    let base = format!("{HCM}.route_config.virtual_hosts[0].routes[0].route.request_mirror_policies[0]");
    let e = errs(&v3(&route("{cluster: a_svc, cluster_header: x-m}"), A_SVC));
    has(
        &e,
        &format!(
            "{base}: Only one of cluster 'a_svc' or cluster_header 'x-m' in request mirror policy can be specified"
        ),
    );
    let e = errs(&v3(&route("{disable_shadow_host_suffix_append: true}"), A_SVC));
    has(&e, &format!("{base}: Exactly one of cluster or cluster_header in request mirror policy need to be specified"));
    let e = errs(&v3(&route("{cluster: nosuch}"), A_SVC));
    has(&e, &format!("{base}.cluster: route: unknown shadow cluster 'nosuch'"));
    let e = errs(&v3(&route("{cluster: a_svc, trace_sampled: false}"), A_SVC));
    has(&e, &format!("{base}.trace_sampled: not implemented by legate"));
    let ok = v3(&route("{cluster: a_svc, runtime_fraction: {default_value: {numerator: 5, denominator: TEN_THOUSAND}, runtime_key: k}}"), A_SVC);
    let b = load_text("ok.yaml", &ok).unwrap_or_else(|e| panic!("{e}"));
    let RouteSource::Inline(rc) = &b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).routes else {
        panic!("not inline")
    };
    let RouteAction::Forward(f) = &rc.virtual_hosts[0].routes[0].action else { panic!("not forward") };
    let want = crate::config::filters::Fraction { numerator: 5, denominator: 10_000 };
    let want = crate::runtime::FractionKey { default_value: want, runtime_key: Some("k".into()) };
    assert_eq!((&f.mirrors[0].fraction, f.mirrors[0].keep_host), (&want, false));
}
