//! Issue 16's route fields: header `range_match` and `treat_missing_header_as_empty`, a
//! redirect's `regex_rewrite`, `require_tls` and `tls_context`, read into the model and
//! refused with their paths when wrong.

use super::{load_text, messages, v3, A_SVC, ROUTE_A};
use crate::config::model::*;

const VH: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]";

fn errs(text: &str) -> Vec<String> {
    match load_text("bad.yaml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => messages(&e),
    }
}

fn has(errors: &[String], want: &str) {
    assert!(errors.iter().any(|e| e == want), "missing {want:?} in {errors:#?}");
}

fn vhost(text: &str) -> VirtualHost {
    let b = load_text("ok.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    let RouteSource::Inline(rc) = &b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).routes else {
        panic!("not inline")
    };
    rc.virtual_hosts[0].clone()
}

/// With `require_tls` set on the virtual host.
fn with_require_tls(value: &str) -> String {
    v3(ROUTE_A, A_SVC).replace(
        "              domains: [\"*\"]\n",
        &format!("              domains: [\"*\"]\n              require_tls: {value}\n"),
    )
}

#[test]
fn header_ranges_and_missing_as_empty_are_read() {
    let routes = r#"              - match: {prefix: "/", headers: [{name: X-N, range_match: {start: "-5", end: 9223372036854775807}}, {name: x-e, exact_match: "", treat_missing_header_as_empty: true}, {name: x-z, range_match: {}}]}
                route: {cluster: a_svc}
"#;
    let vh = vhost(&v3(routes, A_SVC));
    let h = &vh.routes[0].matcher.headers;
    assert_eq!((h[0].name.as_str(), &h[0].kind), ("x-n", &HeaderMatchKind::Range { start: -5, end: i64::MAX }));
    assert!(!h[0].treat_missing_as_empty && h[1].treat_missing_as_empty);
    assert_eq!(h[2].kind, HeaderMatchKind::Range { start: 0, end: 0 }, "Envoy takes an empty range");
    let bad = routes.replace("end: 9223372036854775807", "end: 1.5");
    has(
        &errs(&v3(&bad, A_SVC)),
        &format!("{VH}.routes[0].match.headers[0].range_match.end: expected a 64-bit integer"),
    );
    let two = routes.replace("{name: x-z, range_match: {}}", "{name: x-z, range_match: {}, exact_match: a}");
    has(
        &errs(&v3(&two, A_SVC)),
        &format!("{VH}.routes[0].match.headers[2]: only one header match specifier may be set"),
    );
}

#[test]
fn redirect_regex_rewrite_is_one_of_the_path_rewrites() {
    let route = |r: &str| format!("              - match: {{prefix: \"/\"}}\n                redirect: {{{r}}}\n");
    let vh = vhost(&v3(&route(r#"regex_rewrite: {pattern: {regex: "^/a/(.*)"}, substitution: "/b/\\1"}"#), A_SVC));
    let RouteAction::Redirect(rd) = &vh.routes[0].action else { panic!("not a redirect") };
    let r = rd.regex_rewrite.as_ref().unwrap_or_else(|| panic!("no regex_rewrite"));
    assert_eq!((r.pattern.as_str(), r.substitution.as_str()), ("^/a/(.*)", "/b/\\1"));
    let e = errs(&v3(&route(r#"path_redirect: /x, regex_rewrite: {pattern: {regex: "a"}, substitution: b}"#), A_SVC));
    has(&e, &format!("{VH}.routes[0].redirect: only one of path_redirect, prefix_rewrite, regex_rewrite may be set"));
    // The substitution-format `path_rewrite` stays refused.
    let e = errs(&v3(&route("path_rewrite: {text_format: /x}"), A_SVC));
    assert!(e.iter().any(|e| e.starts_with(&format!("{VH}.routes[0].redirect.path_rewrite"))), "{e:#?}");
}

#[test]
fn require_tls_and_tls_context_are_read() {
    for (v, want) in [("NONE", RequireTls::None), ("EXTERNAL_ONLY", RequireTls::ExternalOnly), ("ALL", RequireTls::All)]
    {
        assert_eq!(vhost(&with_require_tls(v)).require_tls, want, "{v}");
    }
    assert_eq!(vhost(&v3(ROUTE_A, A_SVC)).require_tls, RequireTls::None);
    let e = errs(&with_require_tls("SOME"));
    assert!(e.iter().any(|e| e.starts_with(&format!("{VH}.require_tls: unknown value \"SOME\""))), "{e:#?}");

    let routes = "              - match: {prefix: \"/\", tls_context: {presented: true}}\n                route: {cluster: a_svc}\n              - match: {prefix: \"/\", tls_context: {validated: false}}\n                route: {cluster: a_svc}\n";
    let vh = vhost(&v3(routes, A_SVC));
    assert_eq!(vh.routes[0].matcher.tls_context, Some(TlsContextMatch { presented: Some(true), validated: None }));
    assert_eq!(vh.routes[1].matcher.tls_context, Some(TlsContextMatch { presented: None, validated: Some(false) }));
    let e = errs(&v3(&routes.replace("presented: true", "presented: true, sni: x"), A_SVC));
    assert!(e.iter().any(|e| e.starts_with(&format!("{VH}.routes[0].match.tls_context.sni"))), "{e:#?}");
}

#[test]
fn weighted_clusters_pick_by_header_or_hash_and_name_by_header() {
    let route = |w: &str| {
        format!("              - match: {{prefix: \"/\"}}\n                route: {{weighted_clusters: {{{w}}}}}\n")
    };
    let vh = vhost(&v3(
        &route("header_name: X-W, clusters: [{name: a_svc, weight: 1, host_rewrite_literal: h.example}, {cluster_header: X-Cl, weight: 2}]"),
        A_SVC,
    ));
    let RouteAction::Forward(f) = &vh.routes[0].action else { panic!("not forward") };
    assert_eq!(f.weighted_pick, WeightedPick::Header("x-w".into()));
    let ClusterSpecifier::Weighted(ws) = &f.cluster else { panic!("not weighted") };
    assert_eq!(
        (ws[0].name.as_str(), ws[0].host_rewrite.as_deref(), ws[0].cluster_header.as_deref()),
        ("a_svc", Some("h.example"), None)
    );
    assert_eq!((ws[1].name.as_str(), ws[1].cluster_header.as_deref()), ("", Some("x-cl")));
    let vh = vhost(&v3(&route("use_hash_policy: true, clusters: [{name: a_svc, weight: 1}]"), A_SVC));
    let RouteAction::Forward(f) = &vh.routes[0].action else { panic!("not forward") };
    assert_eq!(f.weighted_pick, WeightedPick::Hash);

    let at = format!("{VH}.routes[0].route.weighted_clusters");
    // Envoy's words.
    let e = errs(&v3(&route("clusters: [{name: a_svc, cluster_header: x, weight: 1}]"), A_SVC));
    has(&e, &format!("{at}.clusters[0]: Only one of name or cluster_header can be specified"));
    let e = errs(&v3(&route("clusters: [{weight: 1}]"), A_SVC));
    has(&e, &format!("{at}.clusters[0]: At least one of name or cluster_header need to be specified"));
    let e = errs(&v3(&route("header_name: x, use_hash_policy: true, clusters: [{name: a_svc, weight: 1}]"), A_SVC));
    assert!(e.iter().any(|e| e.starts_with(&at)), "{e:#?}");
    // A cluster named by a header is not checked against the clusters.
    vhost(&v3(&route("clusters: [{cluster_header: x-cl, weight: 1}]"), A_SVC));
}

#[test]
fn mirror_policies_at_every_level_name_known_clusters() {
    let text = v3(ROUTE_A, A_SVC)
        .replace("            name: local_route\n", "            name: local_route\n            request_mirror_policies: [{cluster: a_svc, host_rewrite_literal: m.example}]\n")
        .replace("              domains: [\"*\"]\n", "              domains: [\"*\"]\n              request_mirror_policies: [{cluster_header: x-m}]\n");
    let b = load_text("ok.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let RouteSource::Inline(rc) = &b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).routes else {
        panic!("not inline")
    };
    assert_eq!(
        (&rc.mirrors[0].cluster, rc.mirrors[0].host_rewrite.as_deref()),
        (&MirrorCluster::Named("a_svc".into()), Some("m.example"))
    );
    assert_eq!(rc.virtual_hosts[0].mirrors[0].cluster, MirrorCluster::Header("x-m".into()));
    let bad = text.replace("[{cluster_header: x-m}]", "[{cluster: nosuch}]");
    has(&errs(&bad), &format!("{VH}.request_mirror_policies[0].cluster: route: unknown shadow cluster 'nosuch'"));
    let bad = text.replace("[{cluster: a_svc, host_rewrite_literal: m.example}]", "[{cluster: nosuch}]");
    let rc_at = VH.trim_end_matches(".virtual_hosts[0]");
    has(&errs(&bad), &format!("{rc_at}.request_mirror_policies[0].cluster: route: unknown shadow cluster 'nosuch'"));
}

#[test]
fn direct_response_body_format_is_compiled_at_validation() {
    let route = |f: &str| {
        format!("              - match: {{prefix: \"/\"}}\n                direct_response: {{status: 200, body: {{inline_string: hi}}, body_format: {{{f}}}}}\n")
    };
    let vh = vhost(&v3(&route("text_format: \"[%LOCAL_REPLY_BODY%]\", content_type: text/html"), A_SVC));
    let RouteAction::DirectResponse(d) = &vh.routes[0].action else { panic!("not direct") };
    let f = d.body_format.as_ref().unwrap_or_else(|| panic!("no body_format"));
    assert_eq!(
        (&f.format, f.content_type.as_deref()),
        (&AccessLogFormat::Text("[%LOCAL_REPLY_BODY%]".into()), Some("text/html"))
    );
    let vh = vhost(&v3(&route("json_format: {b: \"%LOCAL_REPLY_BODY%\"}"), A_SVC));
    let RouteAction::DirectResponse(d) = &vh.routes[0].action else { panic!("not direct") };
    assert!(matches!(d.body_format.as_ref().map(|f| &f.format), Some(AccessLogFormat::Json(_))));
    let e = errs(&v3(&route("text_format: \"%NO_SUCH_OPERATOR%\""), A_SVC));
    assert!(e.iter().any(|e| e.starts_with(&format!("{VH}.routes[0].direct_response.body_format: "))), "{e:#?}");
}

/// Issue 14: `hedge_policy` on the virtual host and the route; the route's wins whole.
#[test]
fn hedge_policy_is_read_and_its_unimplemented_fields_keep_their_defaults() {
    let routes = r#"              - match: {prefix: "/a"}
                route: {cluster: a_svc, hedge_policy: {}}
              - match: {prefix: "/"}
                route: {cluster: a_svc}
"#;
    let with_vh = |vh_policy: &str, routes: &str| {
        v3(routes, A_SVC).replace(
            "              domains: [\"*\"]\n",
            &format!("              domains: [\"*\"]\n              hedge_policy: {vh_policy}\n"),
        )
    };
    let vh = vhost(&with_vh(
        "{hedge_on_per_try_timeout: true, initial_requests: 1, additional_request_chance: {numerator: 0}}",
        routes,
    ));
    assert_eq!(vh.hedge_policy, Some(HedgePolicy { hedge_on_per_try_timeout: true }));
    let RouteAction::Forward(f) = &vh.routes[0].action else { panic!("not forwarded") };
    assert_eq!(f.hedge_policy, Some(HedgePolicy { hedge_on_per_try_timeout: false }));
    let RouteAction::Forward(f) = &vh.routes[1].action else { panic!("not forwarded") };
    assert_eq!(f.hedge_policy, None);
    let e = errs(&with_vh("{initial_requests: 2}", routes));
    has(
        &e,
        &format!(
            "{VH}.hedge_policy.initial_requests: only 1 (the default) is supported: Envoy does not implement more"
        ),
    );
    let bad_route = routes.replace("hedge_policy: {}", "hedge_policy: {additional_request_chance: {numerator: 5}}");
    let e = errs(&v3(&bad_route, A_SVC));
    has(
        &e,
        &format!("{VH}.routes[0].route.hedge_policy.additional_request_chance: only 0 (the default) is supported: Envoy does not implement it"),
    );
}
