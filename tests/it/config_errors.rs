//! `--mode validate` and the CLI: a good config prints `configuration 'FILE' OK`; each kind of
//! config error exits 1 and names the file and the field path.

use crate::common::config::{bootstrap, hcm, route_config, static_cluster, to_cluster, vhost};
use crate::common::legate::{self, validate};
use serde_json::{json, Value};

fn good() -> Value {
    let addr = "127.0.0.1:8080".parse().unwrap();
    let b = bootstrap()
        .routes(json!([to_cluster(json!({"prefix": "/"}), "service1")]))
        .cluster(static_cluster("service1", &[addr]))
        .cluster(static_cluster("service2", &[addr]));
    b.value()
}

fn yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap()
}

/// Validates `text` and checks exit code 1 and that the output names the file and `needles`.
async fn rejects(text: &str, needles: &[&str]) -> String {
    let (file, run) = validate("broken.yaml", text).await;
    assert_eq!(run.code(), Some(1), "exit code; output:\n{}", run.output);
    // Each error is one line `FILE: field.path: message`.
    let prefix = format!("{}: ", file.path_str());
    assert!(run.output.lines().any(|l| l.starts_with(&prefix)), "no line starts with {prefix:?}:\n{}", run.output);
    for n in needles {
        assert!(run.output.contains(n), "output lacks {n:?}:\n{}", run.output);
    }
    assert!(!run.output.contains("' OK"), "claims OK:\n{}", run.output);
    run.output
}

#[tokio::test]
async fn valid_yaml_config_is_ok() {
    let (file, run) = validate("good.yaml", &yaml(&good())).await;
    assert_eq!(run.code(), Some(0), "{}", run.output);
    assert!(run.output.contains(&format!("configuration '{}' OK", file.path_str())), "{}", run.output);
}

#[tokio::test]
async fn valid_json_config_is_ok() {
    let (file, run) = validate("good.json", &serde_json::to_string(&good()).unwrap()).await;
    assert_eq!(run.code(), Some(0), "{}", run.output);
    assert!(run.output.contains(&format!("configuration '{}' OK", file.path_str())));
}

#[tokio::test]
async fn unknown_field() {
    let mut v = good();
    v["static_resources"]["clusters"][1]["bogus_field"] = json!(1);
    rejects(&yaml(&v), &["static_resources.clusters[1]", "bogus_field"]).await;
}

#[tokio::test]
async fn bad_enum_value() {
    let mut v = good();
    v["static_resources"]["clusters"][1]["lb_policy"] = json!("ROUND_ROBBIN");
    rejects(&yaml(&v), &["static_resources.clusters[1].lb_policy", "ROUND_ROBBIN"]).await;
}

#[tokio::test]
async fn duplicate_cluster_name() {
    let mut v = good();
    v["static_resources"]["clusters"][1]["name"] = json!("service1");
    v["static_resources"]["clusters"][1]["load_assignment"]["cluster_name"] = json!("service1");
    rejects(&yaml(&v), &["static_resources.clusters[1]", "service1"]).await;
}

#[tokio::test]
async fn route_to_unknown_cluster() {
    let mut v = good();
    v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"] =
        hcm(route_config(json!([vhost(
            "v",
            &["*"],
            json!([to_cluster(json!({"prefix": "/a"}), "service1"), to_cluster(json!({"prefix": "/"}), "nope")])
        )])));
    rejects(&yaml(&v), &["virtual_hosts[0].routes[1]", "nope"]).await;
}

#[tokio::test]
async fn yaml_syntax_error() {
    let text = "static_resources:\n  clusters:\n  - name: [unclosed\n    type: STATIC\n";
    rejects(text, &[]).await;
}

#[tokio::test]
async fn router_filter_missing() {
    let mut v = good();
    v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"] = json!([]);
    rejects(&yaml(&v), &["static_resources.listeners[0]", "http_filters"]).await;
}

#[tokio::test]
async fn every_error_is_reported() {
    let mut v = good();
    v["static_resources"]["clusters"][0]["lb_policy"] = json!("NOPE_ONE");
    v["static_resources"]["clusters"][1]["lb_policy"] = json!("NOPE_TWO");
    rejects(&yaml(&v), &["static_resources.clusters[0].lb_policy", "static_resources.clusters[1].lb_policy"]).await;
}

#[tokio::test]
async fn missing_config_file() {
    let run = legate::run(&["-c", "/nonexistent/legate.yaml", "--mode", "validate"]).await;
    assert_ne!(run.code(), Some(0), "{}", run.output);
    assert!(run.output.contains("/nonexistent/legate.yaml"), "{}", run.output);
}

#[tokio::test]
async fn unknown_flag_fails() {
    let run = legate::run(&["--no-such-flag"]).await;
    assert!(!run.status.success(), "{}", run.output);
}

#[tokio::test]
async fn version_flag() {
    let run = legate::run(&["--version"]).await;
    assert!(run.status.success(), "{}", run.output);
    assert!(!run.output.trim().is_empty());
}

#[tokio::test]
async fn config_yaml_flag_is_merged_into_the_file() {
    let mut v = good();
    v["static_resources"]["clusters"] = json!([]);
    let file = legate::ConfigFile::new("base.yaml", &yaml(&v));
    let alone = legate::run(&["-c", file.path_str(), "--mode", "validate"]).await;
    assert_eq!(alone.code(), Some(1), "route to a missing cluster:\n{}", alone.output);
    // Envoy merges --config-yaml into the file; repeated fields are appended.
    let extra = serde_json::to_string(&json!({"static_resources": {"clusters": [
        static_cluster("service1", &["127.0.0.1:8080".parse().unwrap()])
    ]}}))
    .unwrap();
    let run = legate::run(&["-c", file.path_str(), "--config-yaml", &extra, "--mode", "validate"]).await;
    assert_eq!(run.code(), Some(0), "{}", run.output);
}

/// HTTP/2 options legate cannot apply, or out of Envoy's bounds, are errors naming the field.
#[tokio::test]
async fn http2_options_out_of_bounds_or_unsupported() {
    let mut v = good();
    let hcm = &mut v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["http2_protocol_options"] = json!({"initial_stream_window_size": 100, "hpack_table_size": 8192});
    v["static_resources"]["clusters"][0]["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {"max_concurrent_streams": 0, "allow_connect": true}},
        }
    });
    let out = rejects(
        &yaml(&v),
        &[
            "http2_protocol_options.initial_stream_window_size: must be between 65535 and 2147483647",
            "http2_protocol_options.allow_connect: not supported for upstream connections",
            "http2_protocol_options.hpack_table_size: not supported for downstream",
            "http2_protocol_options.max_concurrent_streams: must be between 1",
        ],
    )
    .await;
    assert!(out.contains("static_resources.clusters[0]"), "{out}");
}

/// c-ares' `filter_unroutable_families: true` is refused, naming the field.
#[tokio::test]
async fn filter_unroutable_families_is_refused() {
    let mut cluster = crate::common::config::strict_dns_cluster("dns", "service1.example", 80, 53);
    cluster["typed_dns_resolver_config"]["typed_config"]["filter_unroutable_families"] = json!(true);
    let mut v = good();
    v["static_resources"]["clusters"][1] = cluster;
    rejects(&yaml(&v), &["static_resources.clusters[1].typed_dns_resolver_config", "filter_unroutable_families"]).await;
}
