//! Route table compilation and lookup.

#[test]
fn the_port_comes_off_as_envoy_cuts_it() {
    for (host, want) in [
        ("example.com:8080", "example.com"),
        ("example.com", "example.com"),
        ("[::1]:80", "[::1]"),
        ("[::1]", "[::1]"),
        ("example.com:", "example.com"),
    ] {
        assert_eq!(super::without_port(host), want, "{host}");
    }
}

use super::*;
use crate::config::DocCache;
use crate::stats::Store;
use std::path::Path;

fn rds(last: &str) -> String {
    let mut s = String::from(
        "resources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: r\n  virtual_hosts:\n  - name: vh\n    domains: [\"*\"]\n    routes:\n",
    );
    for i in 0..60 {
        let c = if i == 59 { last } else { ["a", "b"][i % 2] };
        s.push_str(&format!("    - match: {{prefix: \"/r/{i}/\"}}\n      route: {{cluster: {c}}}\n"));
    }
    s
}

fn clusters(store: &Arc<Store>) -> HashMap<String, Arc<Cluster>> {
    let cds = b"resources:\n- {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: a}\n- {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: b}\n";
    let d = crate::config::parse_clusters(Path::new("cds.yaml"), cds).unwrap_or_else(|e| panic!("{e}"));
    d.resources.into_iter().map(|c| (c.name.clone(), Cluster::build(c, store))).collect()
}

/// The cluster the route for `path` forwards to, and that route.
fn lookup<'t>(t: &'t RouteTable, path: &str) -> (String, &'t Arc<RouteRt>) {
    let headers = http::HeaderMap::new();
    let req = RequestView::new(path, "GET", "x", "http", &headers);
    let (vh, r) = t.find(&req).unwrap_or_else(|e| panic!("{path}: {e:?}"));
    let i = vh.routes.iter().position(|x| std::ptr::eq(&**x, r)).unwrap_or(usize::MAX);
    let ActionRt::Forward(f) = &r.action else { panic!("not forward") };
    let Target::Cluster(c) = &f.target else { panic!("not one cluster") };
    (c.name.clone(), &vh.routes[i])
}

#[test]
fn a_rebuilt_table_keeps_what_did_not_change() {
    let store = Store::new();
    let cl = clusters(&store);
    let mut docs = DocCache::default();
    let path = Path::new("rds.yaml");
    let config = |docs: &mut DocCache, last| {
        let d = docs.route_config(path, rds(last).as_bytes(), "r").unwrap_or_else(|e| panic!("{e}"));
        d.resources.into_iter().next().unwrap_or_else(|| panic!("no route config"))
    };
    let rc1 = config(&mut docs, "a");
    let t1 = RouteTable::build(&rc1, &cl).unwrap_or_else(|e| panic!("{e}"));
    let rc2 = config(&mut docs, "b");
    let t2 = RouteTable::rebuild(&rc2, &cl, &Chain::default(), &t1, &cl).unwrap_or_else(|e| panic!("{e}"));
    let kept = t1.vhosts[0].routes.iter().zip(&t2.vhosts[0].routes).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
    assert_eq!(kept, 59, "all routes but the changed one are taken over");
    assert!(Arc::ptr_eq(&t1.vhosts[0].matching, &t2.vhosts[0].matching), "no matcher changed");
    assert_eq!(lookup(&t2, "/r/59/x").0, "b");
    assert_eq!(lookup(&t2, "/r/2/x").0, "a");
    // Cluster `a` replaced: the routes naming it are compiled again, against the new one.
    let mut cl2 = clusters(&store);
    cl2.insert("b".into(), Arc::clone(&cl["b"]));
    let t3 = RouteTable::rebuild(&rc2, &cl2, &Chain::default(), &t2, &cl).unwrap_or_else(|e| panic!("{e}"));
    let (name, r) = lookup(&t3, "/r/2/x");
    assert_eq!(name, "a");
    let ActionRt::Forward(f) = &r.action else { panic!("not forward") };
    let Target::Cluster(c) = &f.target else { panic!("not one cluster") };
    assert!(c.cluster.as_ref().is_some_and(|c| Arc::ptr_eq(c, &cl2["a"])), "route resolved to the new a");
    assert!(Arc::ptr_eq(lookup(&t3, "/r/1/x").1, lookup(&t2, "/r/1/x").1), "a route to b is kept");
    // A changed matcher: the index is built again and finds the new path.
    let text = rds("b").replace("/r/30/", "/moved/");
    let rc4 = docs.route_config(path, text.as_bytes(), "r").unwrap_or_else(|e| panic!("{e}")).resources.remove(0);
    let t4 = RouteTable::rebuild(&rc4, &cl2, &Chain::default(), &t3, &cl2).unwrap_or_else(|e| panic!("{e}"));
    assert!(!Arc::ptr_eq(&t3.vhosts[0].matching, &t4.vhosts[0].matching));
    assert_eq!(lookup(&t4, "/moved/x").0, "a");
    let headers = http::HeaderMap::new();
    assert!(t4.find(&RequestView::new("/r/30/x", "GET", "x", "http", &headers)).is_err());
}

#[test]
fn converts_re2_substitutions() {
    assert_eq!(re2_substitution("\\2/instance/\\1"), "${2}/instance/${1}");
    assert_eq!(re2_substitution("0"), "0");
    assert_eq!(re2_substitution("a$b"), "a$$b");
}

/// `HeaderMatcher` for `x-n` of `kind`.
fn hm(kind: model::HeaderMatchKind, invert: bool, missing_empty: bool) -> model::HeaderMatcher {
    model::HeaderMatcher { name: "x-n".into(), kind, invert_match: invert, treat_missing_as_empty: missing_empty }
}

fn headers_of(values: &[&str]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for v in values {
        h.append("x-n", HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")));
    }
    h
}

#[test]
fn header_ranges_match_as_envoy_reads_integers() {
    use matcher::header_matches;
    let range = model::HeaderMatchKind::Range { start: 10, end: 20 };
    for (values, want) in [
        (&["10"][..], true),
        (&["19"][..], true),
        (&["20"][..], false),
        (&["+15"][..], true),
        (&[" 15 "][..], true),
        (&["-5"][..], false),
        (&["0x10"][..], false),
        (&["15x"][..], false),
        (&["1.5"][..], false),
        (&[""][..], false),
        (&["99999999999999999999"][..], false),
        (&["25", "16"][..], true),
        (&["25", "26"][..], false),
    ] {
        let h = headers_of(values);
        let view = RequestView::new("/", "GET", "x", "http", &h);
        assert_eq!(header_matches(&hm(range.clone(), false, false), &view), want, "{values:?}");
        assert_eq!(header_matches(&hm(range.clone(), true, false), &view), !want, "inverted {values:?}");
    }
    let none = http::HeaderMap::new();
    let missing = RequestView::new("/", "GET", "x", "http", &none);
    assert!(!header_matches(&hm(range.clone(), false, false), &missing));
    assert!(!header_matches(&hm(range.clone(), true, false), &missing), "a missing header matches no inverted range");
    let negative = model::HeaderMatchKind::Range { start: i64::MIN, end: 0 };
    let h = headers_of(&["-9223372036854775808"]);
    assert!(header_matches(&hm(negative, false, false), &RequestView::new("/", "GET", "x", "http", &h)));
}

#[test]
fn missing_headers_match_as_empty_only_when_asked() {
    use matcher::header_matches;
    use model::{HeaderMatchKind as K, StringMatch, StringMatcher};
    let exact = |s: &str| K::String(StringMatcher { kind: StringMatch::Exact(s.into()), ignore_case: false });
    let none = http::HeaderMap::new();
    let missing = RequestView::new("/", "GET", "x", "http", &none);
    // (kind, invert, treat missing as empty) → matches a missing header.
    for (kind, invert, empty, want) in [
        (exact(""), false, false, false),
        (exact(""), false, true, true),
        (exact("x"), true, false, false),
        (exact("x"), true, true, true),
        (K::Present(false), false, false, true),
        (K::Present(false), false, true, false),
        (K::Present(true), false, true, true),
        (K::Present(true), true, false, true),
        (K::Range { start: 0, end: 1 }, true, true, true),
    ] {
        assert_eq!(header_matches(&hm(kind.clone(), invert, empty), &missing), want, "{kind:?} {invert} {empty}");
    }
    // Each value of a repeated header on its own.
    let h = headers_of(&["a", "b"]);
    let view = RequestView::new("/", "GET", "x", "http", &h);
    assert!(!header_matches(&hm(exact("a,b"), false, false), &view));
    assert!(header_matches(&hm(exact("b"), false, false), &view));
    assert!(!header_matches(&hm(exact("b"), true, false), &view));
}

#[test]
fn tls_context_compares_each_option_set() {
    use matcher::{tls_matches, Downstream};
    let plain = Downstream::default();
    let cert = Downstream { cert_presented: true, cert_validated: true, ..Default::default() };
    let m = |presented, validated| model::TlsContextMatch { presented, validated };
    assert!(tls_matches(&m(None, None), &plain));
    assert!(tls_matches(&m(Some(false), None), &plain));
    assert!(!tls_matches(&m(Some(true), None), &plain));
    assert!(!tls_matches(&m(None, Some(true)), &plain));
    assert!(tls_matches(&m(Some(true), Some(true)), &cert));
    assert!(!tls_matches(&m(Some(true), Some(false)), &cert));
}

#[test]
fn require_tls_answers_before_any_route() {
    use matcher::Downstream;
    let store = Store::new();
    let cl = clusters(&store);
    let mut docs = DocCache::default();
    let text = rds("a").replace("    domains: [\"*\"]\n", "    domains: [\"*\"]\n    require_tls: EXTERNAL_ONLY\n");
    let rc = docs.route_config(Path::new("rds.yaml"), text.as_bytes(), "r").unwrap_or_else(|e| panic!("{e}"));
    let t = RouteTable::build(&rc.resources[0], &cl).unwrap_or_else(|e| panic!("{e}"));
    assert!(t.require_tls);
    let headers = http::HeaderMap::new();
    let find = |d: Downstream| {
        let mut view = RequestView::new("/r/1/x?q", "GET", "x", "http", &headers);
        view.downstream = d;
        match t.find(&view) {
            Ok((_, r)) => matches!(&r.action, ActionRt::Redirect(rd) if rd.scheme.as_deref() == Some("https")),
            Err(e) => panic!("{e:?}"),
        }
    };
    assert!(find(Downstream::default()), "plaintext, external");
    assert!(!find(Downstream { https: true, ..Default::default() }));
    assert!(!find(Downstream { internal: true, ..Default::default() }), "EXTERNAL_ONLY lets internal requests in");
    let plain = rds("a");
    let rc = docs.route_config(Path::new("rds.yaml"), plain.as_bytes(), "r").unwrap_or_else(|e| panic!("{e}"));
    assert!(!RouteTable::build(&rc.resources[0], &cl).unwrap_or_else(|e| panic!("{e}")).require_tls);
}

fn weighted_table(store: &Arc<Store>, weighted: &str, extra: &str) -> (RouteTable, HashMap<String, Arc<Cluster>>) {
    let cl = clusters(store);
    let text = format!(
        "resources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: r\n  virtual_hosts:\n  - name: vh\n    domains: [\"*\"]\n    routes:\n    - match: {{prefix: \"/\"}}\n      route: {{{extra}weighted_clusters: {weighted}}}\n"
    );
    let rc =
        DocCache::default().route_config(Path::new("rds.yaml"), text.as_bytes(), "r").unwrap_or_else(|e| panic!("{e}"));
    (RouteTable::build(&rc.resources[0], &cl).unwrap_or_else(|e| panic!("{e}")), cl)
}

fn forward_of(t: &RouteTable) -> &ForwardRt {
    match &t.vhosts[0].routes[0].action {
        ActionRt::Forward(f) => f,
        _ => panic!("not forward"),
    }
}

/// The cluster (`a`, `b`, or `-` for none) and the entry's host rewrite.
fn picked(
    t: &RouteTable,
    cl: &HashMap<String, Arc<Cluster>>,
    h: &http::HeaderMap,
    hash: Option<u64>,
) -> (String, Option<String>) {
    let (c, w) = forward_of(t).target.pick(h, cl, || hash);
    let name = c.map_or("-".to_string(), |c| c.name().to_string());
    (name, w.and_then(|w| w.host_rewrite.as_ref()).map(|v| v.to_str().unwrap_or("").to_string()))
}

#[test]
fn weighted_header_name_picks_by_value_modulo_the_total() {
    let store = Store::new();
    let (t, cl) = weighted_table(
        &store,
        "{header_name: x-w, clusters: [{name: a, weight: 1}, {name: b, weight: 2, host_rewrite_literal: rb.example}]}",
        "",
    );
    // Envoy 1.40: value % 3 in [0, 1) is a, [1, 3) is b.
    for (value, want) in
        [("0", "a"), ("1", "b"), ("2", "b"), ("3", "a"), ("+4", "b"), (" 6 ", "a"), ("18446744073709551615", "a")]
    {
        let mut h = http::HeaderMap::new();
        h.insert("x-w", HeaderValue::from_static(value));
        let (c, host) = picked(&t, &cl, &h, None);
        assert_eq!(c, want, "{value:?}");
        assert_eq!(host.as_deref(), (want == "b").then_some("rb.example"));
    }
    // Not a number, too large, negative or repeated: a random draw (both clusters seen).
    for bad in [&["x"][..], &["18446744073709551616"][..], &["-1"][..], &["0", "0"][..]] {
        let mut h = http::HeaderMap::new();
        for v in bad {
            h.append("x-w", HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")));
        }
        let seen: HashSet<String> = (0..200).map(|_| picked(&t, &cl, &h, None).0).collect();
        assert_eq!(seen.len(), 2, "{bad:?}: {seen:?}");
    }
}

#[test]
fn weighted_use_hash_policy_picks_by_the_routes_hash() {
    let store = Store::new();
    let (t, cl) = weighted_table(
        &store,
        "{use_hash_policy: true, clusters: [{name: a, weight: 1}, {name: b, weight: 2}]}",
        "hash_policy: [{header: {header_name: x-h}}], ",
    );
    let f = forward_of(&t);
    let policy = f.hash_policy.as_ref().unwrap_or_else(|| panic!("no hash policy"));
    let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}"));
    // What Envoy 1.40 chose for each value of x-h with the same weights.
    for (value, want) in [("a", "b"), ("b", "a"), ("c", "b"), ("d", "b"), ("j", "b")] {
        let mut h = http::HeaderMap::new();
        h.insert("x-h", HeaderValue::from_static(value));
        let input = hash_policy::HashInput {
            headers: &h,
            path: "/",
            authority: "x",
            method: "GET",
            remote: addr.ip(),
            peer: addr,
            local: addr,
            filter_state: None,
        };
        let hash = policy.key(&input).hash;
        assert!(hash.is_some(), "{value}");
        assert_eq!(picked(&t, &cl, &h, hash).0, want, "x-h: {value}");
    }
}

#[test]
fn a_weighted_cluster_header_entry_is_served_as_the_route() {
    let store = Store::new();
    let (t, cl) = weighted_table(
        &store,
        "{header_name: x-w, clusters: [{cluster_header: x-cl, weight: 1, host_rewrite_literal: ra.example}, {name: b, weight: 2}]}",
        "",
    );
    let mut h = http::HeaderMap::new();
    h.insert("x-w", HeaderValue::from_static("0"));
    assert_eq!(picked(&t, &cl, &h, None), ("-".to_string(), None), "no x-cl: no cluster");
    h.insert("x-cl", HeaderValue::from_static("b"));
    assert_eq!(picked(&t, &cl, &h, None), ("b".to_string(), None), "no entry of its own (no host rewrite)");
    h.insert("x-cl", HeaderValue::from_static("nosuch"));
    assert_eq!(picked(&t, &cl, &h, None).0, "-");
    assert!(t.clusters_unchanged(&cl));
}

#[test]
fn mirror_policies_come_from_the_most_specific_level() {
    let store = Store::new();
    let cl = clusters(&store);
    let text = "resources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: r\n  request_mirror_policies: [{cluster: b, host_rewrite_literal: rc}]\n  virtual_hosts:\n  - name: vh\n    domains: [\"v\"]\n    request_mirror_policies: [{cluster: b, host_rewrite_literal: vh}]\n    routes:\n    - match: {prefix: \"/own\"}\n      route: {cluster: a, request_mirror_policies: [{cluster: b, host_rewrite_literal: own}, {cluster: a}]}\n    - match: {prefix: \"/\"}\n      route: {cluster: a}\n  - name: other\n    domains: [\"*\"]\n    routes:\n    - match: {prefix: \"/\"}\n      route: {cluster: a}\n";
    let rc =
        DocCache::default().route_config(Path::new("rds.yaml"), text.as_bytes(), "r").unwrap_or_else(|e| panic!("{e}"));
    let t = RouteTable::build(&rc.resources[0], &cl).unwrap_or_else(|e| panic!("{e}"));
    let hosts = |vh: usize, route: usize| -> Vec<String> {
        let ActionRt::Forward(f) = &t.vhosts[vh].routes[route].action else { panic!("not forward") };
        f.mirrors
            .iter()
            .map(|m| m.host_rewrite.as_ref().map_or("-", |h| h.to_str().unwrap_or("?")).to_string())
            .collect()
    };
    assert_eq!(hosts(0, 0), ["own", "-"], "the route's own list, not merged");
    assert_eq!(hosts(0, 1), ["vh"]);
    assert_eq!(hosts(1, 0), ["rc"]);
}
