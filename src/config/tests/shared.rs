//! The files beside the repository, verbatim: every seed config (`../shared/seed-configs`)
//! loads unchanged with a few fields checked, Envoy's sandbox configs load or are rejected
//! naming a field path, and the dynamic-config-fs sandbox's discovery files parse. Only the
//! developers' checkout has these files: the tests are ignored by `cargo test` and run by
//! `.ci/run` (`LEGATE_SHARED=../shared cargo test --release -- --ignored`). The same features
//! are checked over our own fixtures by `seeds`, `examples` and `discovery`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::shared;
use crate::config::model::*;
use crate::config::{check_cluster_refs, load_bootstrap, parse_clusters, parse_listeners};

const NEEDS_SHARED: &str = "reads ../shared ($LEGATE_SHARED): run by .ci/run";

fn seed(name: &str) -> Bootstrap {
    let path = shared(&format!("seed-configs/{name}"));
    match load_bootstrap(Some(&path), None) {
        Ok(b) => b,
        Err(e) => panic!("{name} did not load ({NEEDS_SHARED}):\n{e}"),
    }
}

fn hcm(b: &Bootstrap, i: usize) -> &HttpConnectionManager {
    b.listeners[i].hcms().next().unwrap_or_else(|| panic!("no hcm"))
}

#[test]
#[ignore = "reads ../shared ($LEGATE_SHARED): run by .ci/run"]
fn front_envoy() {
    let b = seed("front-envoy.yaml");
    assert_eq!(b.clusters.len(), 2);
    for (c, host) in b.clusters.iter().zip(["service1", "service2"]) {
        assert_eq!(c.discovery, DiscoveryType::StrictDns);
        assert_eq!(c.protocol, UpstreamProtocol::Http2);
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.endpoints.len(), 1);
        assert_eq!(c.endpoints[0].endpoints[0].address, EndpointAddress::Dns { host: host.to_string(), port: 80 });
    }
    assert_eq!(b.listeners[0].name, "listener_0");
    assert_eq!(b.listeners[0].address, "0.0.0.0:80".parse().unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(hcm(&b, 0).http_filters, vec![HttpFilter::router()]);
    let admin = b.admin.as_ref().map(|a| a.address.port());
    assert_eq!(admin, Some(8001));
}

#[test]
#[ignore = "reads ../shared ($LEGATE_SHARED): run by .ci/run"]
fn service_envoy() {
    let b = seed("service-envoy.yaml");
    let c = &b.clusters[0];
    assert_eq!(c.discovery, DiscoveryType::StrictDns);
    assert_eq!(c.protocol, UpstreamProtocol::Http1);
    assert!(matches!(c.endpoints[0].endpoints[0].address, EndpointAddress::Ip(a) if a.port() == 8080));
}

#[test]
#[ignore = "reads ../shared ($LEGATE_SHARED): run by .ci/run"]
fn http_lb_vhosts_duplicate_vhost_names() {
    let b = seed("http-lb-vhosts.yaml");
    let RouteSource::Inline(rc) = &hcm(&b, 0).routes else { panic!("not inline") };
    assert_eq!(rc.virtual_hosts.len(), 2);
    assert_eq!(rc.virtual_hosts[1].name, "nginx_service");
    assert_eq!(rc.virtual_hosts[1].domains, ["httpd.local"]);
    assert_eq!(b.clusters[1].endpoints[0].endpoints.len(), 2);
}

#[test]
#[ignore = "reads ../shared ($LEGATE_SHARED): run by .ci/run"]
fn sidecar_gateway_access_logs() {
    let b = seed("sidecar-gateway.yaml");
    assert_eq!(b.listeners.len(), 2);
    assert_eq!(b.listeners[1].name, "listener_1");
    let log = &hcm(&b, 0).access_logs[0];
    assert_eq!(log.sink, AccessLogSink::File("/dev/stdout".into()));
    assert_eq!(log.format, AccessLogFormat::Default);
    assert_eq!(b.clusters[0].discovery, DiscoveryType::Static);
    assert_eq!(b.clusters[1].protocol, UpstreamProtocol::Http2);
    assert_eq!(b.admin.as_ref().and_then(|a| a.access_log_path.clone()), Some("/dev/stdout".into()));
}

#[test]
#[ignore = "reads ../shared ($LEGATE_SHARED): run by .ci/run"]
fn sidecar_service() {
    let b = seed("sidecar-service.yaml");
    assert_eq!(b.clusters[0].protocol, UpstreamProtocol::Http2);
    assert_eq!(b.clusters[0].discovery, DiscoveryType::Static);
}

#[test]
#[ignore = "reads ../shared ($LEGATE_SHARED): run by .ci/run"]
fn eds_rest() {
    let b = seed("eds-rest.yaml");
    let want = DiscoveryType::Eds {
        service_name: "myservice".to_string(),
        source: EdsConfigSource::Rest {
            cluster: "eds_cluster".to_string(),
            refresh_delay: Duration::from_secs(5),
            request_timeout: Duration::from_secs(1),
            transport_v3: false,
        },
    };
    assert_eq!(b.clusters[0].discovery, want);
    assert!(b.clusters[0].endpoints.is_empty());
    assert_eq!(b.admin.as_ref().and_then(|a| a.access_log_path.clone()), None);
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
}

/// `docs/envoy-examples.md`: what `--mode validate` says of each of Envoy's sandbox configs.
fn examples_doc(rows: &[(String, String)]) -> String {
    let ok = rows.iter().filter(|(_, r)| r == "OK").count();
    let mut out = format!(
        "# Envoy's sandbox configs under `legate --mode validate`\n\n\
         Each bootstrap of `../shared/envoy-examples` (Envoy's own sandboxes): OK, or the first \
         error legate reports, naming the field by its Envoy path. {ok} of {} load. Checked by \
         `config::tests::shared::envoy_examples_load_or_name_a_field` (run by `.ci/run`; \
         `LEGATE_BLESS=1` rewrites this file). `dynamic-config-fs/configs/{{cds,lds}}.yaml` are \
         DiscoveryResponse files, not bootstraps: as with Envoy, a bootstrap has no `resources` \
         (they load as discovery files: `dynamic_config_fs_clusters_and_listeners`).\n\n\
         | file | result |\n|---|---|\n",
        rows.len()
    );
    for (file, result) in rows {
        out.push_str(&format!("| `{file}` | {} |\n", result.replace('|', "\\|")));
    }
    out
}

#[test]
#[ignore = "reads ../shared ($LEGATE_SHARED): run by .ci/run"]
fn envoy_examples_load_or_name_a_field() {
    let root = shared("envoy-examples");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no examples under {} ({NEEDS_SHARED})", root.display());
    let mut rows = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        match load_bootstrap(Some(f), None) {
            Ok(_) => rows.push((rel, "OK".to_string())),
            Err(e) => {
                let first = &e.0[0];
                assert!(e.0.iter().all(|e| !e.path.is_empty()), "{rel}: error without a path:\n{e}");
                // A field Envoy knows is never called unknown (the DiscoveryResponse files
                // aside: `resources` is no bootstrap field, for Envoy either).
                let discovery = rel.contains("dynamic-config-fs/configs/");
                assert!(
                    discovery || e.0.iter().all(|e| e.message != "unknown field"),
                    "{rel}: a field Envoy knows called unknown:\n{e}"
                );
                rows.push((rel, format!("`{}`: {}", first.path, first.message)));
            }
        }
    }
    let doc = examples_doc(&rows);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/envoy-examples.md");
    if std::env::var_os("LEGATE_BLESS").is_some() {
        std::fs::write(&path, &doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/envoy-examples.md is not what validation says now (LEGATE_BLESS=1 rewrites it):\n{doc}"
    );
}

#[test]
#[ignore = "reads ../shared ($LEGATE_SHARED): run by .ci/run"]
fn dynamic_config_fs_clusters_and_listeners() {
    let cds = shared("envoy-examples/dynamic-config-fs/configs/cds.yaml");
    let bytes = std::fs::read(&cds).unwrap_or_else(|e| panic!("{}: {e} ({NEEDS_SHARED})", cds.display()));
    let d = parse_clusters(&cds, &bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.resources[0].name, "example_proxy_cluster");
    assert_eq!(d.resources[0].discovery, DiscoveryType::StrictDns);
    // Its `filters:` is a single object, not a list: accepted like Envoy does.
    let lds = shared("envoy-examples/dynamic-config-fs/configs/lds.yaml");
    let bytes = std::fs::read(&lds).unwrap_or_else(|e| panic!("{}: {e}", lds.display()));
    let d = parse_listeners(&lds, &bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.resources[0].name, "listener_0");
    assert!(check_cluster_refs(&d.resources, &["example_proxy_cluster".to_string()].into(), "resources").is_empty());
}
