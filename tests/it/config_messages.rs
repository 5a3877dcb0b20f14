//! `--mode validate` on a file-based xDS file.

use crate::common::legate::validate;

/// The stderr lines of a failed `--mode validate`, without the summary.
async fn errors_of(text: &str) -> (String, Vec<String>) {
    let (file, run) = validate("broken.yaml", text).await;
    assert_eq!(run.code(), Some(1), "{}", run.output);
    let prefix = format!("{}: ", file.path_str());
    let lines = run.output.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect();
    (run.output, lines)
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
        ["resources[0].conect_timeout: unknown field"],
        "{output}"
    );
}

