//! Parsing in pieces (`docs.rs`) gives exactly what a full parse gives: same value (key order
//! included), same error; it is used for the one-line changes it is for, and not used where
//! the text is not that simple.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::docs::DocCache;
use crate::config::parse::{parse_value, Format};

const FILE: &str = "f.yaml";

/// Parses `text` through `cache` and in full, asserts both agree, and says whether `cache`
/// parsed it in pieces.
fn check(cache: &mut DocCache, text: &str) -> bool {
    let before = cache.pieces;
    let got = cache.parse(Path::new(FILE), text.as_bytes()).map(|r| r.value.clone());
    let want = parse_value(Path::new(FILE), text.as_bytes(), Format::Yaml);
    // Debug shows mappings in order; `==` on mappings ignores it.
    assert_eq!(format!("{got:?}"), format!("{want:?}"), "text:\n{text}");
    assert_eq!(got, want);
    cache.pieces > before
}

fn route(i: usize, cluster: &str) -> String {
    format!("    - match: {{prefix: \"/r/{i}/\"}}\n      route: {{cluster: {cluster}}}\n")
}

fn rds(routes: &[String], version: &str) -> String {
    format!(
        "version_info: \"{version}\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: r\n  virtual_hosts:\n  - name: vh\n    domains: [\"*\"]\n    routes:\n{}",
        routes.concat()
    )
}

fn routes(n: usize) -> Vec<String> {
    (0..n).map(|i| route(i, "a")).collect()
}

#[test]
fn one_changed_route_is_parsed_in_pieces() {
    let mut cache = DocCache::default();
    let mut r = routes(100);
    assert!(!check(&mut cache, &rds(&r, "1")), "the first parse is a full one");
    for i in [99, 0, 50] {
        r[i] = route(i, "b");
        assert!(check(&mut cache, &rds(&r, "1")), "route {i} changed");
    }
    assert!(check(&mut cache, &rds(&r, "2")), "version_info changed");
    r.insert(40, route(1000, "c"));
    assert!(check(&mut cache, &rds(&r, "2")), "a route added");
    r.remove(70);
    r.remove(10);
    assert!(check(&mut cache, &rds(&r, "2")), "routes removed");
    for i in [3, 33, 63] {
        r[i] = route(i, "d");
    }
    assert!(check(&mut cache, &rds(&r, "2")), "routes changed here and there");
    let more = format!("{}  - name: vh2\n    domains: [x]\n    routes: []\n", rds(&r, "2"));
    assert!(check(&mut cache, &more), "a virtual host appended after the routes");
    assert!(check(&mut cache, &rds(&r, "2")), "and removed");
    assert!(check(&mut cache, rds(&r, "2").trim_end()), "no final newline");
    r[0] = "    - match: {prefix: \"/\"}  # a comment\n\n# a comment at column 0\n      route: {cluster: a}\n".into();
    assert!(check(&mut cache, &rds(&r, "2")), "comments and blank lines inside an item");
    r[1] = "    -\n      match: {prefix: \"/x\"}\n      route:\n        cluster: a\n        timeout: 1s\n".into();
    assert!(check(&mut cache, &rds(&r, "2")), "an item starting with a bare dash");
    r[2] = "    - match: {prefix: \"/y\"}\n      direct_response:\n        status: 200\n        body: {inline_string: |\n          - not an item\n          - nor this\n          }\n".into();
    check(&mut cache, &rds(&r, "2"));
    r[2] = "    - match: {prefix: \"/y\"}\n      direct_response:\n        status: 200\n        body:\n          inline_string: |\n            - not an item\n            - nor this\n".into();
    assert!(check(&mut cache, &rds(&r, "2")), "a block scalar with dashes");
}

/// The scale suite's EDS layout: the changed endpoint is in a short list before the long one.
#[test]
fn a_change_outside_the_long_list_keeps_all_of_it() {
    let eds = |port: u16| {
        let mut s = format!("resources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: a\n  endpoints:\n  - priority: 0\n    lb_endpoints:\n    - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n  - priority: 1\n    lb_endpoints:\n");
        for i in 0..200 {
            s.push_str(&format!(
                "    - endpoint: {{address: {{socket_address: {{address: 127.2.0.{i}, port_value: 18081}}}}}}\n"
            ));
        }
        s
    };
    let mut cache = DocCache::default();
    assert!(!check(&mut cache, &eds(18081)));
    for _ in 0..3 {
        assert!(check(&mut cache, &eds(18083)));
        assert!(check(&mut cache, &eds(18081)));
    }
}

/// Texts that must be parsed in full (still giving the full parse's value or error).
#[test]
fn what_is_not_simple_is_parsed_in_full() {
    let base = routes(60);
    let cases: Vec<(&str, String)> = vec![
        ("anchor and alias", {
            let mut r = base.clone();
            r[5] = "    - &a {match: {prefix: \"/a\"}, route: {cluster: a}}\n".into();
            r[6] = "    - *a\n".into();
            rds(&r, "1")
        }),
        ("alias without anchor", {
            let mut r = base.clone();
            r[6] = "    - *a\n".into();
            rds(&r, "1")
        }),
        ("merge key", {
            let mut r = base.clone();
            r[7] = "    - <<: {match: {prefix: \"/m\"}}\n      route: {cluster: a}\n".into();
            rds(&r, "1")
        }),
        ("tab", rds(&base, "1").replace("domains: ", "domains:\t")),
        ("CRLF", rds(&base, "1").replace('\n', "\r\n")),
        ("TAG directive", format!("%TAG !e! tag:example.com,2000:\n---\n{}", rds(&base, "1"))),
        ("placeholder in the text", {
            let mut r = base.clone();
            r[3] = "    - match: {prefix: \"/__legate_items_placeholder_7f3a__\"}\n      route: {cluster: a}\n".into();
            rds(&r, "1")
        }),
        ("short list", rds(&routes(5), "1")),
        ("string spanning item lines", {
            let mut r = base.clone();
            r[8] = "    - match: {prefix: \"/a\n    - b\"}\n      route: {cluster: a}\n".into();
            rds(&r, "1")
        }),
        ("flow list spanning item lines", {
            let mut r = base.clone();
            r[9] = "    - match: {prefix: \"/a\"}\n      route: {cluster: a}\n      foo: [a,\n    - b]\n".into();
            rds(&r, "1")
        }),
        ("second document", format!("{}---\na: 1\n", rds(&base, "1"))),
        ("syntax error in an item", {
            let mut r = base.clone();
            r[10] = "    - match: {prefix: \"/a\"\n      route: {cluster: a}\n".into();
            rds(&r, "1")
        }),
        ("duplicate key in an item", {
            let mut r = base.clone();
            r[11] = "    - match: {prefix: \"/a\"}\n      match: {prefix: \"/b\"}\n".into();
            rds(&r, "1")
        }),
        ("too deep", {
            let mut r = base.clone();
            r[12] = format!("    - x: {}{}\n", "[".repeat(130), "]".repeat(130));
            rds(&r, "1")
        }),
    ];
    for (what, text) in cases {
        let mut cache = DocCache::default();
        check(&mut cache, &rds(&base, "0"));
        assert!(!check(&mut cache, &text), "{what}: parsed in pieces");
        // And back, whatever the cache kept.
        check(&mut cache, &rds(&base, "0"));
    }
}

/// Random edits of a file full of awkward lines: every parse agrees with a full parse, every
/// validation with one from scratch.
#[test]
fn random_edits_agree_with_a_full_parse() {
    const LINES: &[&str] = &[
        "    - match: {prefix: \"/a\"}",
        "      route: {cluster: a}",
        "    - x: 1",
        "    -",
        "      y: 2",
        "    - - nested",
        "      - nested too",
        "    - \"quoted",
        "    - continued\"",
        "      s: 'single",
        "    - still'",
        "    - [flow,",
        "      more]",
        "    - {a: 1,",
        "    - b: 2}",
        "      body: |",
        "        - in a block scalar",
        "    - in a block scalar, or not",
        "      folded: >-",
        "  # comment",
        "# comment",
        "",
        "   ",
        "    - plain",
        "      continued plain",
        "  key: value",
        "    routes:",
        "  - name: vh2",
        "    domains: [x]",
        "- top: level",
        "    - tagged: !!str 5",
        "    - !!map {a: 1}",
        "    - ? complex",
        "      : value",
        "    - 'x': &anchor 1",
        "    - *anchor",
        "    - \"\\u2028 escaped\"",
        "      k: v # trailing",
        "    - é: ü",
        "---",
        "...",
    ];
    let mut rng = StdRng::seed_from_u64(0x1e9a7e);
    let mut pieces = 0;
    for round in 0..60 {
        let mut cache = DocCache::default();
        let mut validating = DocCache::default();
        // Edits pile up on the last text that parsed, as they do on a file being worked on; every
        // third file is a top-level list (items at column 0).
        let mut good: Vec<String> = rds(&routes(60), "1").lines().map(str::to_string).collect();
        let shift = round % 3 == 1;
        if shift {
            good = good.iter().filter(|l| l.starts_with("    ")).map(|l| l[4..].to_string()).collect();
        }
        check(&mut cache, &(good.join("\n") + "\n"));
        for _ in 0..25 {
            let mut lines = good.clone();
            for _ in 0..rng.gen_range(1..3) {
                let at = rng.gen_range(0..lines.len());
                let mut awkward = LINES[rng.gen_range(0..LINES.len())].to_string();
                if shift && awkward.starts_with("    ") {
                    awkward = awkward[4..].to_string();
                }
                match rng.gen_range(0..6) {
                    0 if lines.len() > 10 => {
                        lines.remove(at);
                    }
                    1 => lines.insert(at, awkward),
                    2 => lines.insert(at, route(at, "z").trim_end().to_string()),
                    3 if at > 8 => lines[at] = format!("    - match: {{prefix: \"/{}\"}}", rng.gen_range(0..1000)),
                    _ => lines[at] = awkward,
                }
            }
            let text = lines.join("\n") + if round % 2 == 0 { "\n" } else { "" };
            if check(&mut cache, &text) {
                pieces += 1;
            }
            check_routes(&mut validating, &text);
            if parse_value(Path::new(FILE), text.as_bytes(), Format::Yaml).is_ok() {
                good = lines;
            }
        }
    }
    assert!(pieces > 50, "only {pieces} of 1500 edits were parsed in pieces: the test tests little");
}

/// Validating through the cache (unchanged routes and endpoints reused) gives what validating
/// from scratch gives: same resources, same errors in the same order.
fn check_routes(cache: &mut DocCache, text: &str) -> u64 {
    let before = cache.reused;
    let path = Path::new(FILE);
    let got = cache.route_config(path, text.as_bytes(), "r");
    let want = crate::config::parse_route_config(path, text.as_bytes(), "r");
    assert_eq!(got, want, "text:\n{text}");
    cache.reused - before
}

#[test]
fn unchanged_routes_are_not_validated_again() {
    let mut cache = DocCache::default();
    let mut r = routes(100);
    assert_eq!(check_routes(&mut cache, &rds(&r, "1")), 0);
    r[99] = route(99, "b");
    assert_eq!(check_routes(&mut cache, &rds(&r, "1")), 99, "all but the changed route reused");
    assert_eq!(check_routes(&mut cache, &rds(&r, "1")), 100, "the same text again");
    r.insert(10, route(1000, "c"));
    r.remove(50);
    assert_eq!(check_routes(&mut cache, &rds(&r, "2")), 60, "items between the edits are read again");
    // An invalid route is reported every time, also when another one changes.
    r[20] = "    - match: {prefix: \"/bad\"}\n      route: {cluster: a, timeout: forever}\n".into();
    check_routes(&mut cache, &rds(&r, "2"));
    r[80] = route(80, "d");
    check_routes(&mut cache, &rds(&r, "2"));
    r[21] = "    - match: {prefx: \"/bad\"}\n      route: {cluster: a}\n".into();
    check_routes(&mut cache, &rds(&r, "2"));
    r[20] = route(20, "a");
    r[21] = route(21, "a");
    assert!(check_routes(&mut cache, &rds(&r, "2")) > 90);
    // A different max_direct_response_body_size_bytes is a different context: nothing reused.
    let text = rds(&r, "2").replace("  name: r\n", "  name: r\n  max_direct_response_body_size_bytes: 10\n");
    assert_eq!(check_routes(&mut cache, &text), 0);
}

#[test]
fn routes_reading_files_are_read_again() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let body = dir.path().join("body.txt");
    std::fs::write(&body, "one").unwrap_or_else(|e| panic!("write: {e}"));
    let mut cache = DocCache::default();
    let mut r = routes(60);
    r[3] = format!(
        "    - match: {{prefix: \"/f\"}}\n      direct_response: {{status: 200, body: {{filename: {}}}}}\n",
        body.display()
    );
    check_routes(&mut cache, &rds(&r, "1"));
    std::fs::write(&body, "two").unwrap_or_else(|e| panic!("write: {e}"));
    r[50] = route(50, "b");
    // check_routes compares with a fresh parse, which reads "two".
    assert_eq!(check_routes(&mut cache, &rds(&r, "1")), 58);
}

#[test]
fn unchanged_endpoints_are_not_validated_again() {
    let eds = |port: u16, bad: bool| {
        let mut s = format!("resources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: a\n  endpoints:\n  - priority: 0\n    lb_endpoints:\n    - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n  - priority: 1\n    lb_endpoints:\n");
        for i in 0..100 {
            let host = if bad && i == 7 { "localhost".to_string() } else { format!("127.2.0.{i}") };
            s.push_str(&format!(
                "    - endpoint: {{address: {{socket_address: {{address: {host}, port_value: 18081}}}}}}\n"
            ));
        }
        s
    };
    let mut cache = DocCache::default();
    let path = Path::new(FILE);
    for (port, bad, reused) in [(18081, false, 0), (18083, false, 100), (18081, true, 99), (18083, true, 99)] {
        let before = cache.reused;
        let text = eds(port, bad);
        let got = cache.endpoints(path, text.as_bytes(), "a");
        assert_eq!(got, crate::config::parse_endpoints(path, text.as_bytes(), "a"));
        assert_eq!(got.is_err(), bad);
        assert_eq!(cache.reused - before, reused, "port {port}, bad {bad}");
    }
}

/// The v2 `host_rewrite` is rewritten whether the file spells it plainly or with an escape,
/// and a rewritten document is not reused as parsed.
#[test]
fn v2_route_spellings_are_still_normalised() {
    use crate::config::model::{HostRewrite, RouteAction};
    for key in ["host_rewrite", "\"host\\x5frewrite\""] {
        let mut cache = DocCache::default();
        let mut r = routes(60);
        r[30] = format!("    - match: {{prefix: \"/h\"}}\n      route: {{cluster: a, {key}: example.com}}\n");
        for round in 0..3 {
            r[59] = route(59, if round % 2 == 0 { "a" } else { "b" });
            check_routes(&mut cache, &rds(&r, "1"));
            let d = cache.route_config(Path::new(FILE), rds(&r, "1").as_bytes(), "r");
            let Ok(d) = d else { panic!("{key}: rejected") };
            let RouteAction::Forward(f) = &d.resources[0].virtual_hosts[0].routes[30].action else {
                panic!("{key}: not forward")
            };
            assert_eq!(f.host_rewrite, HostRewrite::Literal("example.com".into()), "{key}");
        }
    }
}
