//! What a newcomer reads when a configuration is wrong (issue 17) or overlapping (issue 12):
//! the exact lines `--mode validate` and a reload print, and `--mode validate` on a file-based
//! xDS file.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::client::raw;
use crate::common::config::{self as fixture, static_cluster, to_cluster, vhost};
use crate::common::legate::{validate, Legate};
use crate::reload::{
    cluster_listener, discovery, file_source, listener, rds_hcm, typed, with_node, ConfigMap, Setup, CLUSTER_T,
    LISTENER_T, ROUTE_T,
};

const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// A bootstrap with one listener (`port`) routing `/` to `cluster` (or answering `body`
/// when `cluster` is empty), and `clusters` as written (YAML, indented for the list).
fn bootstrap(node: &str, route: &str, clusters: &str) -> String {
    format!(
        "\
node: {{id: {node}, cluster: c}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: main
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          \"@type\": {HCM}
          stat_prefix: main
          http_filters: [{{name: router, typed_config: {{\"@type\": {ROUTER}}}}}]
          route_config:
            virtual_hosts:
            - name: v
              domains: [\"*\"]
              routes:
              - match: {{prefix: /}}
                {route}
  clusters:
{clusters}"
    )
}

const GOOD_CLUSTER: &str = "  - name: backend
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]
";

/// The stderr lines of a failed `--mode validate`, without the summary.
async fn errors_of(text: &str) -> (String, Vec<String>) {
    let (file, run) = validate("broken.yaml", text).await;
    assert_eq!(run.code(), Some(1), "{}", run.output);
    let prefix = format!("{}: ", file.path_str());
    let lines = run.output.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect();
    (run.output, lines)
}

#[tokio::test]
async fn a_cluster_with_an_error_is_not_also_unknown_to_its_routes() {
    let cluster = GOOD_CLUSTER.replace("connect_timeout: 1s", "connect_timeout: 1s\n    lb_policy: ROUND_ROBBIN");
    let (output, lines) = errors_of(&bootstrap("n", "route: {cluster: backend}", &cluster)).await;
    assert_eq!(
        lines,
        ["static_resources.clusters[0].lb_policy: unknown value \"ROUND_ROBBIN\" (expected one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV) (line 25)"],
        "{output}"
    );
}

#[tokio::test]
async fn an_unknown_field_suggests_the_nearest_name() {
    let route = "route: {cluster: backend, prefix_rewirte: /x}";
    let (output, lines) = errors_of(&bootstrap("n", route, GOOD_CLUSTER)).await;
    assert_eq!(
        lines,
        ["static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.prefix_rewirte: unknown field (did you mean `prefix_rewrite`?) (line 21)"],
        "{output}"
    );
}

#[tokio::test]
async fn an_unknown_enum_name_lists_the_valid_ones() {
    let cluster = GOOD_CLUSTER.replace("connect_timeout: 1s", "connect_timeout: 1s\n    dns_lookup_family: V5_ONLY");
    let (output, lines) = errors_of(&bootstrap("n", "route: {cluster: backend}", &cluster)).await;
    assert_eq!(lines.len(), 1, "{output}");
    assert!(
        lines[0]
            .starts_with("static_resources.clusters[0].dns_lookup_family: unknown value \"V5_ONLY\" (expected one of "),
        "{output}"
    );
    assert!(lines[0].contains("V4_ONLY"), "{output}");
}

#[tokio::test]
async fn a_yaml_syntax_error_gives_its_place_once() {
    let (output, lines) = errors_of("admin:\n  address: [\n").await;
    assert_eq!(lines.len(), 1, "{output}");
    assert_eq!(lines[0].matches("line ").count(), 1, "{output}");
    assert!(lines[0].starts_with("YAML syntax error at line 3 column 1: "), "{output}");
}

#[tokio::test]
async fn overlapping_filter_chains_are_refused_as_envoy_does() {
    let chains = |a: &str, b: &str| {
        let one = bootstrap("n", "route: {cluster: backend}", GOOD_CLUSTER);
        let (head, tail) = one.split_once("    - filters:").unwrap_or_default();
        let chain = format!("    - filters:{}", tail.split_once("  clusters:").map(|(c, _)| c).unwrap_or_default());
        let with = |m: &str, name: &str| {
            chain.replacen(
                "    - filters:",
                &format!("    - name: {name}\n      filter_chain_match: {m}\n      filters:"),
                1,
            )
        };
        format!("{head}{}{}  clusters:\n{GOOD_CLUSTER}", with(a, "a"), with(b, "b"))
    };
    let (output, lines) = errors_of(&chains("{server_names: [a.com, b.com]}", "{server_names: [b.com]}")).await;
    assert_eq!(
        lines,
        ["static_resources.listeners[0].filter_chains[1]: multiple filter chains with overlapping matching rules are defined (line 24)"],
        "{output}"
    );
    let (output, lines) = errors_of(&chains("{}", "{}")).await;
    assert_eq!(
        lines,
        ["static_resources.listeners[0].filter_chains[1]: filter chain 'b' has the same matching rules defined as 'a'. duplicate matcher is: {} (line 24)"],
        "{output}"
    );
}

const CDS: &str = "\
version_info: \"1\"
resources:
- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: backend
  connect_timeout: 0.25s
  load_assignment:
    cluster_name: backend
    endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]
";

#[tokio::test]
async fn validate_reads_a_discovery_file_as_its_resource_type() {
    let (file, run) = validate("cds.yaml", CDS).await;
    assert_eq!(run.code(), Some(0), "{}", run.output);
    assert!(
        run.output.contains(&format!("configuration '{}' OK (1 Cluster resource(s))", file.path_str())),
        "{}",
        run.output
    );
    let rds = "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: r\n  virtual_hosts: [{name: v, domains: [\"*\"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]\n";
    let (file, run) = validate("rds.yaml", rds).await;
    assert!(
        run.output.contains(&format!("configuration '{}' OK (1 RouteConfiguration resource(s))", file.path_str())),
        "{}",
        run.output
    );
    let (output, lines) = errors_of(&CDS.replace("connect_timeout: 0.25s", "conect_timeout: 0.25s")).await;
    assert_eq!(
        lines,
        ["resources[0].conect_timeout: unknown field (did you mean `connect_timeout`?) (line 5)"],
        "{output}"
    );
}

#[tokio::test]
async fn the_reload_line_names_its_files_and_the_node_warning_comes_once() {
    let config = |node: &str, body: &str| {
        bootstrap(node, &format!("direct_response: {{status: 200, body: {{inline_string: {body}}}}}"), GOOD_CLUSTER)
    };
    let legate = Legate::start(config("n1", "one")).await;
    let addr = legate.listener("main");
    let write = |text: String| {
        let tmp = legate.config_path().with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, legate.config_path()).expect("rename");
    };
    write(config("n2", "two"));
    assert_eventually!(
        raw(addr, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.is_some_and(|r| r.body == b"two"),
        "reloaded"
    );
    write(config("n2", "three"));
    assert_eventually!(
        raw(addr, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.is_some_and(|r| r.body == b"three"),
        "reloaded"
    );
    // The line is logged just after the snapshot serves.
    assert_eventually!(legate.output().matches("configuration applied").count() == 2, "both reloads logged");
    let output = legate.output();
    assert_eq!(output.matches("admin or node changed").count(), 1, "{output}");
    let applied: Vec<&str> = output.lines().filter(|l| l.contains("configuration applied")).collect();
    assert_eq!(applied.len(), 2, "{output}");
    let files = format!("files={}", legate.config_path().display());
    for line in applied {
        assert!(line.contains(&files), "{line}");
        let ms = line.split("reload.ms=").nth(1).and_then(|r| r.split(' ').next()).unwrap_or_default();
        let (whole, tenths) = ms.split_once('.').unwrap_or_default();
        assert!(whole.parse::<u64>().is_ok() && tenths.len() == 1, "rounded to a tenth of a ms: {line}");
    }
}

/// A ConfigMap volume holding `lds.yaml` (listener `main` routing through `rds.yaml`, and
/// listener `side` sending everything to `cluster` inline), `cds.yaml` (`a_svc`, `b_svc` and
/// `extra`) and `rds.yaml` (`/` to `cluster`): one `..data` swap changes all three at once.
fn dynamic_files(s: &Setup, cm: &Path, version: &str, cluster: &str, extra: Vec<Value>) -> Vec<(&'static str, String)> {
    let rds = discovery(
        version,
        vec![typed(
            ROUTE_T,
            json!({"name": "local_route", "virtual_hosts": [vhost("vh", &["*"], json!([to_cluster(json!({"prefix": "/"}), cluster)]))]}),
        )],
    );
    let main = typed(LISTENER_T, listener("main", 0, rds_hcm(file_source(&cm.join("rds.yaml"), Some(cm)))));
    let lds = discovery(version, vec![main, cluster_listener("side", cluster)]);
    let mut clusters = s.static_clusters();
    clusters.extend(extra);
    let cds = discovery(version, clusters.into_iter().map(|c| typed(CLUSTER_T, c)).collect());
    vec![("lds.yaml", lds), ("cds.yaml", cds), ("rds.yaml", rds)]
}

fn as_refs<'a>(files: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    files.iter().map(|(n, c)| (*n, c.as_str())).collect()
}

/// A cluster whose `connect_timeout` Envoy refuses too.
fn broken_cluster(s: &Setup, name: &str) -> Value {
    let mut c = static_cluster(name, &[s.b.addr()]);
    c["connect_timeout"] = json!("soon");
    c
}

/// Issue 17: a broken cluster arriving by CDS, at the first load of the discovery files or on
/// a reload, is reported by its own error only: neither the LDS listener's inline routes nor
/// the RDS routes naming it add `unknown cluster`.
#[tokio::test]
async fn a_broken_cds_cluster_is_not_also_unknown_to_its_routes() {
    let s = Setup::new().await;
    let cm_dir = s.path("cm");
    let first = dynamic_files(&s, &cm_dir, "v1", "new_svc", vec![broken_cluster(&s, "new_svc")]);
    let mut cm = ConfigMap::create(&cm_dir, &as_refs(&first));
    let dynamic = json!({
        "lds_config": file_source(&cm.path("lds.yaml"), Some(cm.dir())),
        "cds_config": file_source(&cm.path("cds.yaml"), Some(cm.dir())),
    });
    let rig = s.start(with_node(fixture::bootstrap().value(), Some(dynamic))).await;
    assert_eventually!(rig.legate.output().contains("initial discovery files rejected"), "the first load is rejected");
    let output = rig.legate.output();
    assert!(output.contains("resources[2].connect_timeout"), "the cluster's own error: {output}");
    assert!(!output.contains("unknown cluster"), "no route reports the broken cluster as unknown: {output}");

    let good = dynamic_files(&rig.setup, &cm_dir, "v2", "b_svc", vec![]);
    cm.update(&as_refs(&good));
    assert_eventually!(rig.listener("main").await.is_some() && rig.hit("/").await == "b", "the good files apply");

    // A reload adding a broken cluster and, in the same swap, routes to it.
    let bad = dynamic_files(&rig.setup, &cm_dir, "v3", "newer_svc", vec![broken_cluster(&rig.setup, "newer_svc")]);
    cm.update(&as_refs(&bad));
    assert_eventually!(rig.reloads().await[0]["outcome"] == "rejected", "the broken cluster is rejected");
    let error = rig.reloads().await[0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("resources[2].connect_timeout"), "the cluster's own error: {error}");
    assert!(!error.contains("unknown cluster"), "no route reports the broken cluster as unknown: {error}");
    assert!(!rig.legate.output().contains("unknown cluster"), "{}", rig.legate.output());
    assert_eq!(rig.hit("/").await, "b", "the running configuration stays");
}

/// The files of one ConfigMap apply together. One of them reported alone (the watcher does so
/// when the file joins the watched set during a swap) is tried with its siblings' current
/// content: a route of a rejected swap never runs without the swap's broken cluster.
#[tokio::test]
async fn a_configmap_file_reported_alone_is_tried_with_its_siblings() {
    let s = Setup::new().await;
    let cm_dir = s.path("cm");
    let good = dynamic_files(&s, &cm_dir, "v1", "b_svc", vec![]);
    let mut cm = ConfigMap::create(&cm_dir, &as_refs(&good));
    let dynamic = json!({
        "lds_config": file_source(&cm.path("lds.yaml"), Some(cm.dir())),
        "cds_config": file_source(&cm.path("cds.yaml"), Some(cm.dir())),
    });
    let rig = s.start(with_node(fixture::bootstrap().value(), Some(dynamic))).await;
    assert_eventually!(rig.listener("main").await.is_some() && rig.hit("/").await == "b", "the first files apply");

    let bad = dynamic_files(&rig.setup, &cm_dir, "v2", "newer_svc", vec![broken_cluster(&rig.setup, "newer_svc")]);
    cm.update(&as_refs(&bad));
    assert_eventually!(rig.reloads().await.len() == 2, "the broken swap is tried");
    assert_eq!(rig.reloads().await[0]["outcome"], "rejected");

    // Only rds.yaml changes now: alone it would apply (a route to a_svc), but its sibling
    // cds.yaml still holds the broken cluster.
    let to_a = dynamic_files(&rig.setup, &cm_dir, "v3", "a_svc", vec![]);
    let rds = &to_a.iter().find(|(n, _)| *n == "rds.yaml").expect("rds.yaml").1;
    cm.write_in_place("rds.yaml", rds);
    assert_eventually!(rig.reloads().await.len() == 3, "the rewritten file is tried");
    let last = &rig.reloads().await[0];
    assert_eq!(last["outcome"], "rejected", "{last}");
    assert!(last["error"].as_str().unwrap_or_default().contains("resources[2].connect_timeout"), "{last}");
    assert!(last["files"].to_string().contains("cds.yaml"), "the batch holds its sibling: {last}");
    assert_eq!(rig.hit("/").await, "b", "the running configuration stays");
}
