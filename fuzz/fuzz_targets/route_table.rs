//! Route tables: an RDS file (YAML or JSON) compiled into a table, then requests routed by it.
//! The table's path index must choose the route a plain first-match scan of the virtual host's
//! routes chooses.
//!
//! Input: the RDS file (its RouteConfiguration named `r`; clusters `a`, `b`, `c` exist), then
//! `\n--requests--\n` and one request per line: `HOST PATH [NAME:VALUE ...]`.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderName, HeaderValue};
use legate::routing::matcher::{route_matches, RequestView};
use legate::routing::RouteTable;
use legate::upstream::Cluster;
use libfuzzer_sys::fuzz_target;

const REQUESTS: &str = "\n--requests--\n";

const CLUSTERS: &str = r#"resources:
- {"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: a, type: STATIC, connect_timeout: 1s}
- {"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: b, type: STATIC, connect_timeout: 1s}
- {"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c, type: STATIC, connect_timeout: 1s}
"#;

fn clusters() -> &'static HashMap<String, Arc<Cluster>> {
    static CLUSTERS_BUILT: OnceLock<HashMap<String, Arc<Cluster>>> = OnceLock::new();
    CLUSTERS_BUILT.get_or_init(|| {
        let store = legate::stats::Store::new();
        let d = legate::config::parse_clusters(Path::new("cds.yaml"), CLUSTERS.as_bytes()).expect("clusters");
        d.resources.into_iter().map(|c| (c.name.clone(), Cluster::build(c, &store))).collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (rds, requests) = text.split_once(REQUESTS).unwrap_or((text, ""));
    let path = Path::new(if rds.trim_start().starts_with('{') { "rds.json" } else { "rds.yaml" });
    let Ok(d) = legate::config::parse_route_config(path, rds.as_bytes(), "r") else { return };
    let Some(config) = d.resources.first() else { return };
    let Ok(table) = RouteTable::build(config, clusters()) else { return };
    for line in requests.lines().take(32) {
        let mut words = line.split(' ');
        let (Some(host), Some(full_path)) = (words.next(), words.next()) else { continue };
        let mut headers = HeaderMap::new();
        for h in words {
            let Some((n, v)) = h.split_once(':') else { continue };
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                headers.append(n, v);
            }
        }
        let req = RequestView::new(full_path, "GET", host, "http", &headers);
        if let Ok((vh, route)) = table.find(&req) {
            let first = vh.matchers().iter().position(|m| route_matches(m, &req));
            let chosen = vh.routes.iter().position(|r| std::ptr::eq(r.as_ref(), route));
            assert_eq!(chosen, first, "the index and a first-match scan disagree on {line:?}");
        }
    }
});
