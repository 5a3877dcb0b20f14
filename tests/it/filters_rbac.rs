//! `envoy.filters.http.rbac` on loopback, as Envoy 1.40 answers (checked side by side): ALLOW
//! and DENY policies, shadow rules counted only, per-route override and disable, the 403
//! `RBAC: access denied` with the policy in the response details, the stats, an
//! `authenticated` principal against the client certificate of an mTLS connection, and the
//! matcher API (`matcher`, `shadow_matcher`) with the rbac sandbox's configuration.

use serde_json::{json, Value};

use crate::access_log::file_log;
use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, direct, hcm, route_config, router_filter, static_cluster, to_cluster, vhost};
use crate::common::legate::{validate, Legate};
use crate::common::tls::{connect, get_h1, Alg, Ca, ClientOpts};
use crate::common::upstream;

const RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
const PER_ROUTE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute";

fn rbac(config: Value) -> Value {
    let mut typed = json!({ "@type": RBAC });
    if let (Some(t), Value::Object(c)) = (typed.as_object_mut(), config) {
        t.extend(c);
    }
    json!({ "name": "envoy.filters.http.rbac", "typed_config": typed })
}

fn prefix_path(p: &str) -> Value {
    json!({ "url_path": { "path": { "prefix": p } } })
}

#[tokio::test]
async fn policies_allow_deny_per_route_and_count() {
    let up = upstream::http1().spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let format = json!({ "text_format_source": { "inline_string": "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS%\n" } });
    let filter = rbac(json!({
        "rules": { "action": "ALLOW", "policies": {
            "public": { "permissions": [prefix_path("/public")], "principals": [{ "any": true }] },
            "admins": { "permissions": [{ "any": true }],
                        "principals": [{ "and_ids": { "ids": [
                            { "header": { "name": "x-role", "string_match": { "exact": "admin" } } },
                            { "direct_remote_ip": { "address_prefix": "127.0.0.0", "prefix_len": 8 } },
                        ] } }] },
        } },
        "shadow_rules": { "action": "DENY", "policies": {
            "no-post": { "permissions": [{ "header": { "name": ":method", "string_match": { "exact": "POST" } } }],
                         "principals": [{ "not_id": { "remote_ip": { "address_prefix": "10.0.0.0", "prefix_len": 8 } } }] },
        } },
        "rules_stat_prefix": "enforced",
        "track_per_rule_stats": true,
    }));
    let mut open = to_cluster(json!({"prefix": "/open"}), "service1");
    open["typed_per_filter_config"] = json!({ "envoy.filters.http.rbac": { "@type": PER_ROUTE } });
    let mut strict = to_cluster(json!({"prefix": "/public/strict"}), "service1");
    strict["typed_per_filter_config"] = json!({ "envoy.filters.http.rbac": { "@type": PER_ROUTE, "rbac": {
        "rules": { "action": "DENY", "policies": { "loopback": {
            "permissions": [{ "destination_port_range": { "start": 1, "end": 65536 } }],
            "principals": [{ "direct_remote_ip": { "address_prefix": "127.0.0.0", "prefix_len": 8 } }],
        } } },
    } } });
    let routes = json!([open, strict, to_cluster(json!({"prefix": "/"}), "service1")]);
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    manager["http_filters"] = json!([filter, router_filter()]);
    manager["access_log"] = json!([file_log(&log, Some(format))]);
    let yaml = bootstrap().listener_hcm("main", manager).cluster(static_cluster("service1", &[up.addr()])).yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();

    assert_eq!(c.get(&legate.url("main", "/public/x")).await.status, 200);
    let r = c.get(&legate.url("main", "/private")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (403, "RBAC: access denied"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(c.get_with(&legate.url("main", "/private"), &[("x-role", "admin")]).await.status, 200);
    assert_eq!(c.get_with(&legate.url("main", "/private"), &[("x-role", "user")]).await.status, 403);
    assert_eq!(c.get(&legate.url("main", "/open/x")).await.status, 200, "RBACPerRoute without rbac");
    assert_eq!(c.get(&legate.url("main", "/public/strict")).await.status, 403, "the route's own policy");
    assert_eq!(c.post(&legate.url("main", "/public/y"), "x").await.status, 200, "shadow rules never deny");
    assert_eq!(up.requests(), 4);

    let s = "http.ingress_http.rbac.";
    assert_eq!(legate.stat(&format!("{s}enforced.allowed")).await, 3);
    assert_eq!(legate.stat(&format!("{s}enforced.denied")).await, 2);
    assert_eq!(legate.stat(&format!("{s}enforced.policy.public.allowed")).await, 2);
    assert_eq!(legate.stat(&format!("{s}enforced.policy.admins.allowed")).await, 1);
    assert_eq!(legate.stat(&format!("{s}shadow_denied")).await, 1);
    assert_eq!(legate.stat(&format!("{s}shadow_allowed")).await, 4);
    assert_eventually!(
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("403 rbac_access_denied_matched_policy[none]")
            && l.contains("403 rbac_access_denied_matched_policy[loopback]")),
        "access log: {:?}",
        std::fs::read_to_string(&log)
    );
}

#[tokio::test]
async fn authenticated_principals_read_the_client_certificate() {
    let ca = Ca::new("test ca");
    let server = ca.server(&["localhost"], Alg::Ecdsa);
    let good = ca.client("good client", Some("spiffe://legate/good"));
    let other = ca.client("other client", Some("spiffe://legate/other"));
    let filter = rbac(json!({ "rules": { "action": "ALLOW", "policies": { "good": {
        "permissions": [{ "any": true }],
        "principals": [{ "authenticated": { "principal_name": { "exact": "spiffe://legate/good" } } }],
    } } } }));
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!([direct(json!({"prefix": "/"}), "hello")]))])));
    h["http_filters"] = json!([filter, router_filter()]);
    let tls = json!({ "name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {
            "tls_certificates": [{ "certificate_chain": { "inline_string": server.cert },
                                   "private_key": { "inline_string": server.key } }],
            "validation_context": { "trusted_ca": { "inline_string": ca.cert } },
        },
    } });
    let v = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": { "listeners": [{
            "name": "tls",
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
            "filter_chains": [{ "filters": [{ "name": "hcm", "typed_config": h }], "transport_socket": tls }],
        }] },
    });
    let legate = Legate::start(serde_yaml::to_string(&v).expect("yaml")).await;
    let addr = legate.listener("tls");
    for (cert, want) in [(Some(good), "200"), (Some(other), "403"), (None, "403")] {
        let o = ClientOpts { client_cert: cert, ..Default::default() };
        let mut s = connect(addr, &ca.cert, &o).await.expect("handshake");
        let (status, _) = get_h1(&mut s, "localhost", "/").await.expect("response");
        assert!(status.contains(want), "{want}: {status}");
    }
}

/// Envoy's rbac sandbox (`tests/fixtures/examples/rbac.yaml`): the matcher denies a request
/// whose `referer` is not Envoy's docs (`illegal-referer`, also when there is none) and lets
/// the others through by its `on_no_match` action.
#[tokio::test]
async fn the_rbac_sandbox_matcher_denies_foreign_referers() {
    let up = upstream::http1().spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let ports: Vec<u16> = crate::common::free_ports(2);
    let yaml = include_str!("../fixtures/examples/rbac.yaml")
        .replace("${LISTEN_PORT}", &ports[0].to_string())
        .replace("${ADMIN_PORT}", &ports[1].to_string())
        .replace("${SERVICE_PORT}", &up.port().to_string())
        .replace("${LOG_PATH}", &log.display().to_string());
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    let url = format!("http://127.0.0.1:{}/", ports[0]);
    let docs = [("referer", "https://www.envoyproxy.io/docs/envoy/latest/")];
    assert_eq!(c.get_with(&url, &docs).await.status, 200);
    let r = c.get_with(&url, &[("referer", "https://example.com/")]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (403, "RBAC: access denied"));
    assert_eq!(c.get(&url).await.status, 403, "no referer: the not_matcher matches");
    assert_eq!(up.requests(), 1);
    assert_eq!(legate.stat("http.ingress_http.rbac.allowed").await, 1);
    assert_eq!(legate.stat("http.ingress_http.rbac.denied").await, 2);
    assert_eventually!(
        std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("403 rbac_access_denied_matched_policy[illegal-referer]")),
        "access log: {:?}",
        std::fs::read_to_string(&log)
    );
}

fn action(name: &str, action: &str) -> Value {
    json!({ "action": { "name": "a", "typed_config": {
        "@type": "type.googleapis.com/envoy.config.rbac.v3.Action", "name": name, "action": action } } })
}

fn input(ty: &str, extra: Value) -> Value {
    let mut t = json!({ "@type": ty });
    if let (Some(t), Value::Object(e)) = (t.as_object_mut(), extra) {
        t.extend(e);
    }
    json!({ "name": "i", "typed_config": t })
}

const NET: &str = "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.";

/// A tree on a header, a list with `and_matcher` / `or_matcher` over connection inputs and
/// the IP input matcher, nested matchers, `shadow_matcher` counted only, and no match at
/// all denied (Envoy's default).
#[tokio::test]
async fn matcher_trees_lists_and_ip_ranges() {
    let up = upstream::http1().spawn().await;
    let header = input(
        "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
        json!({ "header_name": "X-Team" }),
    );
    let ip = |ty: &str, cidr: &str| {
        json!({ "single_predicate": {
        "input": input(&format!("{NET}{ty}"), json!({})),
        "custom_match": { "name": "ip", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.matching.input_matchers.ip.v3.Ip",
            "cidr_ranges": [{ "address_prefix": cidr, "prefix_len": 8 }], "stat_prefix": "ip" } } } })
    };
    let filter = rbac(json!({
        "matcher": {
            "matcher_tree": {
                "input": header,
                "exact_match_map": { "map": {
                    "blue": action("blue-team", "ALLOW"),
                    "red": action("red-team", "DENY"),
                    // A nested list: green only from loopback to a port it names.
                    "green": { "matcher": { "matcher_list": { "matchers": [{
                        "predicate": { "and_matcher": { "predicate": [
                            ip("DirectSourceIPInput", "127.0.0.0"),
                            { "or_matcher": { "predicate": [
                                ip("SourceIPInput", "10.0.0.0"),
                                { "single_predicate": { "input": input(&format!("{NET}DestinationPortInput"), json!({})),
                                    "value_match": { "exact": "1" } } },
                            ] } },
                        ] } },
                        "on_match": action("green-local", "ALLOW"),
                    }] } } },
                } },
            },
            "on_no_match": { "matcher": { "matcher_list": { "matchers": [{
                "predicate": { "not_matcher": { "single_predicate": {
                    "input": input("type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput", json!({ "header_name": ":method" })),
                    "value_match": { "exact": "GET" } } } },
                "on_match": action("log-writes", "LOG"),
            }] } } },
        },
        "shadow_matcher": { "matcher_list": { "matchers": [{
            "predicate": { "single_predicate": { "input": input(&format!("{NET}DirectSourceIPInput"), json!({})),
                "value_match": { "prefix": "127." } } },
            "on_match": action("shadow-deny", "DENY"),
        }] } },
    }));
    let mut manager = hcm(route_config(json!([vhost("v", &["*"], json!([to_cluster(json!({"prefix": "/"}), "c")]))])));
    manager["http_filters"] = json!([filter, router_filter()]);
    let yaml = bootstrap().listener_hcm("main", manager).cluster(static_cluster("c", &[up.addr()])).yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    let url = legate.url("main", "/");
    assert_eq!(c.get_with(&url, &[("x-team", "blue")]).await.status, 200);
    assert_eq!(c.get_with(&url, &[("x-team", "red")]).await.status, 403);
    // Green's nested matcher fails (the port is not 1, the client not in 10/8): no match,
    // and GET is not a write: denied.
    assert_eq!(c.get_with(&url, &[("x-team", "green")]).await.status, 403);
    assert_eq!(c.post(&url, "x").await.status, 200, "on_no_match's LOG action lets it through");
    assert_eq!(c.get(&url).await.status, 403, "nothing matched: denied");
    assert_eq!(up.requests(), 2);
    assert_eq!(legate.stat("http.ingress_http.rbac.shadow_denied").await, 5);
}

#[tokio::test]
async fn unsupported_matcher_inputs_are_refused_by_name() {
    let up = upstream::http1().spawn().await;
    let filter = rbac(json!({ "matcher": { "matcher_list": { "matchers": [{
        "predicate": { "single_predicate": {
            "input": input(&format!("{NET}ApplicationProtocolInput"), json!({})),
            "value_match": { "exact": "h2" } } },
        "on_match": action("a", "ALLOW"),
    }] } } }));
    let mut manager = hcm(route_config(json!([vhost("v", &["*"], json!([to_cluster(json!({"prefix": "/"}), "c")]))])));
    manager["http_filters"] = json!([filter, router_filter()]);
    let yaml = bootstrap().listener_hcm("main", manager).cluster(static_cluster("c", &[up.addr()])).yaml();
    let (_f, run) = validate("envoy.yaml", &yaml).await;
    assert_eq!(run.code(), Some(1));
    assert!(
        run.output.contains("single_predicate.input.typed_config")
            && run.output.contains("envoy.extensions.matching.common_inputs.network.v3.ApplicationProtocolInput"),
        "{}",
        run.output
    );
}
