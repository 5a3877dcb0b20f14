//! v2 (2018-2019) spellings rewritten to their v3 form, in this one place, on the value tree
//! before anything reads it: `config:` becomes `typed_config:` with the implied `@type`,
//! `envoy.http_connection_manager` / `envoy.router` / `envoy.health_check` /
//! `envoy.file_access_log` get their v3 names, cluster `hosts:` becomes `load_assignment`,
//! cluster-level `http2_protocol_options` / `http_protocol_options` /
//! `common_http_protocol_options` move into `typed_extension_protocol_options`, HCM-level
//! `idle_timeout` moves into `common_http_protocol_options`, and route `host_rewrite` becomes
//! `host_rewrite_literal`. Enum case needs no rewriting (the reader accepts any case), and v2
//! fields with no v3 equivalent (`use_original_dst`, `deprecated_v1`, `tls_context`...) are left
//! for the validator to report as unsupported.

use serde_yaml::{Mapping, Value};

use super::type_urls as t;

fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

fn map_mut(v: &mut Value) -> Option<&mut Mapping> {
    match v {
        Value::Mapping(m) => Some(m),
        _ => None,
    }
}

fn each_mut(v: Option<&mut Value>, mut f: impl FnMut(&mut Value)) {
    if let Some(Value::Sequence(items)) = v {
        items.iter_mut().for_each(&mut f);
    }
}

fn name_of(m: &Mapping) -> Option<&str> {
    m.get("name").and_then(Value::as_str)
}

/// Renames a key when the new one is absent.
fn rename(m: &mut Mapping, from: &str, to: &str) {
    if m.contains_key(to) {
        return;
    }
    if let Some(v) = m.remove(from) {
        m.insert(s(to), v);
    }
}

/// `config: {...}` -> `typed_config: {"@type": url, ...}`.
fn config_to_typed(m: &mut Mapping, url: &str) {
    if m.contains_key("typed_config") {
        return;
    }
    let Some(cfg) = m.remove("config") else {
        return;
    };
    let mut typed = Mapping::new();
    typed.insert(s("@type"), s(url));
    if let Value::Mapping(inner) = cfg {
        typed.extend(inner);
    }
    m.insert(s("typed_config"), Value::Mapping(typed));
}

pub(crate) fn normalise_bootstrap(v: &mut Value) {
    let Some(m) = map_mut(v) else { return };
    if let Some(sr) = m.get_mut("static_resources").and_then(map_mut) {
        each_mut(sr.get_mut("listeners"), normalise_listener);
        each_mut(sr.get_mut("clusters"), normalise_cluster);
    }
}

pub(crate) fn normalise_listener(v: &mut Value) {
    let Some(m) = map_mut(v) else { return };
    each_mut(m.get_mut("filter_chains"), |chain| {
        let Some(chain) = map_mut(chain) else { return };
        each_mut(chain.get_mut("filters"), |filter| {
            let Some(f) = map_mut(filter) else { return };
            let name = name_of(f).unwrap_or_default();
            if name == "envoy.http_connection_manager" || name == "envoy.filters.network.http_connection_manager" {
                f.insert(s("name"), s("envoy.filters.network.http_connection_manager"));
                config_to_typed(f, t::HCM);
                if let Some(hcm) = f.get_mut("typed_config") {
                    normalise_hcm(hcm);
                }
            }
        });
    });
}

fn normalise_hcm(v: &mut Value) {
    let Some(m) = map_mut(v) else { return };
    if let Some(idle) = m.remove("idle_timeout") {
        let common = m.entry(s("common_http_protocol_options")).or_insert_with(|| Value::Mapping(Mapping::new()));
        if let Some(c) = map_mut(common) {
            c.entry(s("idle_timeout")).or_insert(idle);
        }
    }
    each_mut(m.get_mut("http_filters"), |filter| {
        let Some(f) = map_mut(filter) else { return };
        match name_of(f) {
            Some("envoy.router") | Some("envoy.filters.http.router") => {
                f.insert(s("name"), s("envoy.filters.http.router"));
                config_to_typed(f, t::ROUTER);
            }
            Some("envoy.health_check") | Some("envoy.filters.http.health_check") => {
                f.insert(s("name"), s("envoy.filters.http.health_check"));
                config_to_typed(f, t::HEALTH_CHECK);
            }
            _ => {}
        }
    });
    each_mut(m.get_mut("access_log"), |log| {
        let Some(l) = map_mut(log) else { return };
        if name_of(l) != Some("envoy.file_access_log") {
            return;
        }
        l.insert(s("name"), s("envoy.access_loggers.file"));
        if let Some(Value::Mapping(cfg)) = l.get_mut("config") {
            if let Some(format) = cfg.remove("format") {
                let mut lf = Mapping::new();
                lf.insert(s("text_format"), format);
                cfg.insert(s("log_format"), Value::Mapping(lf));
            }
        }
        config_to_typed(l, t::FILE_ACCESS_LOG);
    });
    if let Some(rc) = m.get_mut("route_config") {
        normalise_route_config(rc);
    }
}

pub(crate) fn normalise_route_config(v: &mut Value) {
    let Some(m) = map_mut(v) else { return };
    each_mut(m.get_mut("virtual_hosts"), |vh| {
        let Some(vh) = map_mut(vh) else { return };
        each_mut(vh.get_mut("routes"), |r| {
            if let Some(action) = map_mut(r).and_then(|r| r.get_mut("route")).and_then(map_mut) {
                rename(action, "host_rewrite", "host_rewrite_literal");
            }
        });
    });
}

pub(crate) fn normalise_cluster(v: &mut Value) {
    let Some(m) = map_mut(v) else { return };
    if !m.contains_key("load_assignment") {
        if let Some(Value::Sequence(hosts)) = m.remove("hosts") {
            let lb_endpoints: Vec<Value> = hosts
                .into_iter()
                .map(|address| {
                    let mut ep = Mapping::new();
                    ep.insert(s("address"), address);
                    let mut lb = Mapping::new();
                    lb.insert(s("endpoint"), Value::Mapping(ep));
                    Value::Mapping(lb)
                })
                .collect();
            let mut locality = Mapping::new();
            locality.insert(s("lb_endpoints"), Value::Sequence(lb_endpoints));
            let mut la = Mapping::new();
            if let Some(name) = m.get("name").cloned() {
                la.insert(s("cluster_name"), name);
            }
            la.insert(s("endpoints"), Value::Sequence(vec![Value::Mapping(locality)]));
            m.insert(s("load_assignment"), Value::Mapping(la));
        }
    }
    let h2 = m.remove("http2_protocol_options");
    let h1 = m.remove("http_protocol_options");
    let common = m.remove("common_http_protocol_options");
    if h2.is_none() && h1.is_none() && common.is_none() {
        return;
    }
    let opts = m.entry(s("typed_extension_protocol_options")).or_insert_with(|| Value::Mapping(Mapping::new()));
    let Some(opts) = map_mut(opts) else { return };
    let entry = opts.entry(s(t::HTTP_PROTOCOL_OPTIONS_KEY)).or_insert_with(|| {
        let mut e = Mapping::new();
        e.insert(s("@type"), s(t::HTTP_PROTOCOL_OPTIONS));
        Value::Mapping(e)
    });
    let Some(entry) = map_mut(entry) else { return };
    if let Some(c) = common {
        entry.entry(s("common_http_protocol_options")).or_insert(c);
    }
    let explicit = match (h2, h1) {
        (Some(h2), _) => Some(("http2_protocol_options", h2)),
        (None, Some(h1)) => Some(("http_protocol_options", h1)),
        (None, None) => None,
    };
    if let Some((key, value)) = explicit {
        let value = if value.is_null() { Value::Mapping(Mapping::new()) } else { value };
        let mut e = Mapping::new();
        e.insert(s(key), value);
        entry.entry(s("explicit_http_config")).or_insert(Value::Mapping(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap_or(Value::Null)
    }

    #[test]
    fn cluster_hosts_and_h2() {
        let mut c = y("{name: c, http2_protocol_options: {}, hosts: [{socket_address: {address: a, port_value: 80}}]}");
        normalise_cluster(&mut c);
        let want = y(r#"
name: c
load_assignment:
  cluster_name: c
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: a, port_value: 80}}}}]}]
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: {http2_protocol_options: {}}
"#);
        assert_eq!(c, want);
    }

    #[test]
    fn hcm_config_and_filters() {
        let mut l = y(r#"
filter_chains:
- filters:
  - name: envoy.http_connection_manager
    config:
      stat_prefix: x
      access_log: [{name: envoy.file_access_log, config: {path: /dev/stdout, format: "%START_TIME%\n"}}]
      http_filters: [{name: envoy.router, config: {}}]
"#);
        normalise_listener(&mut l);
        let want = y(r#"
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: x
      access_log:
      - name: envoy.access_loggers.file
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: /dev/stdout
          log_format: {text_format: "%START_TIME%\n"}
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
"#);
        assert_eq!(l, want);
    }
}
