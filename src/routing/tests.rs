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
