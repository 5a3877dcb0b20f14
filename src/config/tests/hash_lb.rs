//! RING_HASH / MAGLEV configs and the route's `hash_policy`: Envoy's defaults, its refusals.

use super::{load_text, messages, v3, A_SVC, ROUTE_A};
use crate::config::model::*;

const CLUSTER: &str = "static_resources.clusters[0]";
const ROUTE: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route";

fn load(routes: &str, cluster_extra: &str) -> Result<Bootstrap, Vec<String>> {
    load_text("c.yaml", &v3(routes, &format!("{A_SVC}{cluster_extra}"))).map_err(|e| messages(&e))
}

fn policy(extra: &str) -> Result<LbPolicy, Vec<String>> {
    load(ROUTE_A, extra).map(|b| b.clusters[0].lb_policy)
}

fn route_hash(hash_policy: &str) -> Result<Vec<HashPolicy>, Vec<String>> {
    let routes = format!("              - match: {{prefix: \"/\"}}\n                route: {{cluster: a_svc, hash_policy: {hash_policy}}}\n");
    let b = load(&routes, "    lb_policy: RING_HASH\n")?;
    let rc = match &b.listeners[0].filter_chains[0].hcm().map(|h| &h.routes) {
        Some(RouteSource::Inline(rc)) => rc.clone(),
        _ => panic!("no inline routes"),
    };
    match &rc.virtual_hosts[0].routes[0].action {
        RouteAction::Forward(f) => Ok(f.hash_policy.clone()),
        _ => panic!("not a forward"),
    }
}

#[test]
fn ring_hash_and_maglev_with_envoys_defaults() {
    assert_eq!(
        policy("    lb_policy: RING_HASH\n"),
        Ok(LbPolicy::RingHash { minimum_ring_size: 1024, maximum_ring_size: 8 * 1024 * 1024 })
    );
    let sized = "    lb_policy: RING_HASH\n    ring_hash_lb_config: {minimum_ring_size: 12, maximum_ring_size: 100, hash_function: XX_HASH}\n";
    assert_eq!(policy(sized), Ok(LbPolicy::RingHash { minimum_ring_size: 12, maximum_ring_size: 100 }));
    assert_eq!(policy("    lb_policy: MAGLEV\n"), Ok(LbPolicy::Maglev { table_size: 65537 }));
    assert_eq!(
        policy("    lb_policy: MAGLEV\n    maglev_lb_config: {table_size: 7}\n"),
        Ok(LbPolicy::Maglev { table_size: 7 })
    );
}

#[test]
fn what_envoy_refuses_and_what_legate_does_not_do() {
    let has = |r: Result<LbPolicy, Vec<String>>, want: &str| match r {
        Err(e) => assert!(e.iter().any(|m| m == want), "missing {want:?} in {e:#?}"),
        Ok(p) => panic!("accepted: {p:?}"),
    };
    has(
        policy("    lb_policy: RING_HASH\n    ring_hash_lb_config: {hash_function: MURMUR_HASH_2}\n"),
        &format!("{CLUSTER}.ring_hash_lb_config.hash_function: unsupported value \"MURMUR_HASH_2\""),
    );
    has(
        policy("    lb_policy: RING_HASH\n    ring_hash_lb_config: {minimum_ring_size: 20, maximum_ring_size: 10}\n"),
        &format!("{CLUSTER}.ring_hash_lb_config: ring hash: minimum_ring_size (20) > maximum_ring_size (10)"),
    );
    has(
        policy("    lb_policy: RING_HASH\n    ring_hash_lb_config: {maximum_ring_size: 8388609}\n"),
        &format!("{CLUSTER}.ring_hash_lb_config.maximum_ring_size: value 8388609 out of range (max 8388608)"),
    );
    has(
        policy("    lb_policy: MAGLEV\n    maglev_lb_config: {table_size: 65536}\n"),
        &format!("{CLUSTER}.maglev_lb_config.table_size: The table size of maglev must be prime number"),
    );
    has(
        policy("    ring_hash_lb_config: {minimum_ring_size: 12}\n"),
        &format!("{CLUSTER}.ring_hash_lb_config: ring_hash_lb_config needs lb_policy RING_HASH"),
    );
}

#[test]
fn hash_policies_are_read_in_order() {
    let p = route_hash(
        "[{header: {header_name: X-User}}, {cookie: {name: sid, ttl: 60s, path: /}, terminal: true}, \
         {connection_properties: {source_ip: true}}, {query_parameter: {name: u}}, {connection_properties: {source_ip: false}}]",
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(p.len(), 4, "source_ip: false adds nothing, as in Envoy");
    assert_eq!(p[0].kind, HashPolicyKind::Header { name: "x-user".into(), regex_rewrite: None });
    assert!(p[1].terminal && !p[0].terminal);
    assert!(matches!(&p[1].kind, HashPolicyKind::Cookie { ttl: Some(t), .. } if t.as_secs() == 60));
    assert_eq!(p[2].kind, HashPolicyKind::SourceIp);
    assert_eq!(p[3].kind, HashPolicyKind::QueryParameter("u".into()));
}

#[test]
fn filter_state_is_read_by_its_key() {
    let p = route_hash("[{filter_state: {key: my.key}, terminal: true}]").unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(p, [HashPolicy { kind: HashPolicyKind::FilterState("my.key".into()), terminal: true }]);
    let e = route_hash("[{filter_state: {key: \"\"}}]").err().unwrap_or_default();
    assert!(e.iter().any(|m| m == &format!("{ROUTE}.hash_policy[0].filter_state.key: must not be empty")), "{e:#?}");
    let e = route_hash("[{filter_state: {key: k}, header: {header_name: x}}]").err().unwrap_or_default();
    assert!(e.iter().any(|m| m.ends_with("hash_policy[0]: only one of header, cookie, connection_properties, query_parameter, filter_state may be set")), "{e:#?}");
}

#[test]
fn unknown_pseudo_headers_are_refused() {
    let e = route_hash("[{header: {header_name: \":scheme\"}}]").err().unwrap_or_default();
    assert!(e.iter().any(|m| m.contains("hash_policy[0].header.header_name: unsupported pseudo-header")), "{e:#?}");
    let e = route_hash("[{cookie: {name: \"\"}}]").err().unwrap_or_default();
    assert!(e.iter().any(|m| m.ends_with("hash_policy[0].cookie.name: must not be empty")), "{e:#?}");
}

#[test]
fn an_endpoints_envoy_lb_hash_key_is_read_and_other_metadata_is_not() {
    let key_of = |metadata: &str| {
        let with =
            A_SVC.replace("port_value: 8080}}}", &format!("port_value: 8080}}}}}}\n          metadata: {metadata}"));
        let b = load_text("c.yaml", &v3(ROUTE_A, &format!("{with}    lb_policy: RING_HASH\n")))
            .unwrap_or_else(|e| panic!("{}", messages(&e).join("\n")));
        b.clusters[0].endpoints[0].endpoints[0].hash_key.clone()
    };
    assert_eq!(key_of("{filter_metadata: {envoy.lb: {hash_key: alpha}, team: {a: 1}}}"), Some("alpha".into()));
    assert_eq!(key_of("{filterMetadata: {envoy.lb: {hash_key: beta}}}"), Some("beta".into()));
    // Envoy reads the string value: a number or an empty string is no key.
    assert_eq!(key_of("{filter_metadata: {envoy.lb: {hash_key: 7}}}"), None);
    assert_eq!(key_of("{filter_metadata: {envoy.lb: {hash_key: \"\"}}}"), None);
    assert_eq!(key_of("{filter_metadata: {team: {hash_key: x}}}"), None);
}

fn hashing(cluster_extra: &str, strict_dns: bool) -> Result<ConsistentHashing, Vec<String>> {
    let cluster = if strict_dns { A_SVC.replace("type: STATIC", "type: STRICT_DNS") } else { A_SVC.to_string() };
    load_text("c.yaml", &v3(ROUTE_A, &format!("{cluster}{cluster_extra}")))
        .map(|b| b.clusters[0].consistent_hashing)
        .map_err(|e| messages(&e))
}

#[test]
fn consistent_hashing_lb_config_is_read_for_ring_hash_and_maglev() {
    let cfg = "    lb_policy: RING_HASH\n    common_lb_config:\n      consistent_hashing_lb_config: \
               {use_hostname_for_hashing: true, hash_balance_factor: 125}\n";
    assert_eq!(hashing(cfg, true), Ok(ConsistentHashing { use_hostname: true, balance_factor: 125 }));
    let maglev =
        "    lb_policy: MAGLEV\n    common_lb_config: {consistent_hashing_lb_config: {hash_balance_factor: 100}}\n";
    assert_eq!(hashing(maglev, false), Ok(ConsistentHashing { use_hostname: false, balance_factor: 100 }));
    assert_eq!(hashing("    lb_policy: MAGLEV\n", false), Ok(ConsistentHashing::default()));
}

#[test]
fn consistent_hashing_lb_config_refusals() {
    let has = |r: Result<ConsistentHashing, Vec<String>>, want: &str| match r {
        Err(e) => assert!(e.iter().any(|m| m == want), "missing {want:?} in {e:#?}"),
        Ok(c) => panic!("accepted: {c:?}"),
    };
    let at = format!("{CLUSTER}.common_lb_config.consistent_hashing_lb_config");
    // Envoy's words for each.
    has(
        hashing("    lb_policy: RING_HASH\n    common_lb_config: {consistent_hashing_lb_config: {hash_balance_factor: 99}}\n", false),
        &format!("{at}.hash_balance_factor: value must be greater than or equal to 100"),
    );
    has(
        hashing("    lb_policy: RING_HASH\n    common_lb_config: {consistent_hashing_lb_config: {use_hostname_for_hashing: true}}\n", false),
        &format!(
            "{at}.use_hostname_for_hashing: Cannot use hostname for consistent hashing loadbalancing for cluster of type: 'envoy.cluster.static'"
        ),
    );
    // Envoy ignores it under other policies; legate refuses what would have no effect.
    has(
        hashing("    common_lb_config: {consistent_hashing_lb_config: {hash_balance_factor: 150}}\n", true),
        &format!("{at}: consistent_hashing_lb_config needs lb_policy RING_HASH or MAGLEV"),
    );
}
