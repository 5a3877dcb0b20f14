//! Tests of the whole config pipeline: our v2-era and v3 fixtures (`tests/fixtures/`), error
//! reporting, `--config-yaml`, the discovery parsers. The checks of the files beside the
//! repository (the seed configs verbatim, Envoy's sandbox configs) are in `shared`, ignored by
//! `cargo test`: `.ci/run` runs them.

mod compressor;
mod decompressor;
mod discovery;
mod docs;
mod errors;
mod examples;
mod filters;
mod hash_lb;
mod lb_tuning;
mod outlier;
mod route_action;
mod route_fields;
mod runtime;
mod schema;
mod secrets;
mod seeds;
mod shared;
mod upstream_h1;

use std::path::{Path, PathBuf};

use super::{load_bootstrap, ConfigErrors};

/// `tests/fixtures/<rel>` in the repository.
pub(super) fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// `<rel>` under `$LEGATE_SHARED`, or else under `../shared` beside the repository (only the
/// developers' checkout has it; `.ci/run` sets the variable).
pub(super) fn shared(rel: &str) -> PathBuf {
    let root = std::env::var_os("LEGATE_SHARED")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"), PathBuf::from);
    root.join(rel)
}

/// Writes `text` to a temporary file named `name` and loads it as a bootstrap.
pub(super) fn load_text(name: &str, text: &str) -> Result<super::model::Bootstrap, ConfigErrors> {
    let dir = tempfile::tempdir().map_err(|e| panic!("tempdir: {e}"))?;
    let path = dir.path().join(name);
    std::fs::write(&path, text).map_err(|e| panic!("write: {e}"))?;
    load_bootstrap(Some(&path), None)
}

/// `path: message` of every error.
pub(super) fn messages(e: &ConfigErrors) -> Vec<String> {
    e.0.iter().map(|e| format!("{}: {}", e.path, e.message)).collect()
}

/// A minimal v3 bootstrap in the conformance style, with `{ROUTES}` and `{CLUSTERS}` holes.
pub(super) const V3_TEMPLATE: &str = r#"
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}
static_resources:
  listeners:
  - name: main
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            name: local_route
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
{ROUTES}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{CLUSTERS}
"#;

pub(super) const A_SVC: &str = r#"  - name: a_svc
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: a_svc
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.11, port_value: 8080}}}
"#;

pub(super) const ROUTE_A: &str = "              - match: {prefix: \"/\"}\n                route: {cluster: a_svc}\n";

pub(super) fn v3(routes: &str, clusters: &str) -> String {
    V3_TEMPLATE
        .replace("{ROUTES}", routes.trim_end_matches('\n'))
        .replace("{CLUSTERS}", clusters.trim_end_matches('\n'))
}
