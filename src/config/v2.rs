//! v2 (2018-2019) spellings rewritten to their v3 form, in this one place, on the value tree
//! before anything reads it: `config:` becomes `typed_config:` with the implied `@type`,
//! `envoy.http_connection_manager` / `envoy.router` / `envoy.health_check` /
//! `envoy.file_access_log` get their v3 names, cluster `hosts:` becomes `load_assignment`,
//! cluster-level `http2_protocol_options` / `http_protocol_options` /
//! `common_http_protocol_options` move into `typed_extension_protocol_options`, HCM-level
//! `idle_timeout` moves into `common_http_protocol_options`, and route `host_rewrite` becomes
//! `host_rewrite_literal`; in a bootstrap that had any of these, a REST EDS
//! `api_config_source` naming no `transport_api_version` gets `V2` (its management server
//! speaks the v2 API). Enum case needs no rewriting (the reader accepts any case), and v2
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

/// Applies `f` to each item of a list; whether any call changed something.
fn each_mut(v: Option<&mut Value>, mut f: impl FnMut(&mut Value) -> bool) -> bool {
    let mut changed = false;
    if let Some(Value::Sequence(items)) = v {
        for item in items {
            changed |= f(item);
        }
    }
    changed
}

/// A field of a small mapping, found by comparing keys: cheaper than hashing the name when
/// this runs for each of 10,000 routes.
fn field_mut<'m>(m: &'m mut Mapping, name: &str) -> Option<&'m mut Value> {
    m.iter_mut().find(|(k, _)| k.as_str() == Some(name)).map(|(_, v)| v)
}

/// Sets `name: value` unless it is already so; whether it changed.
fn set(m: &mut Mapping, name: &str, value: &str) -> bool {
    if m.get(name).and_then(Value::as_str) == Some(value) {
        return false;
    }
    m.insert(s(name), s(value));
    true
}

fn name_of(m: &Mapping) -> Option<&str> {
    m.get("name").and_then(Value::as_str)
}

/// Renames a key when the new one is absent; whether it did.
fn rename(m: &mut Mapping, from: &str, to: &str) -> bool {
    // Scanned, not hashed: this runs for each of 10,000 routes, nearly always for nothing.
    if !m.keys().any(|k| k.as_str() == Some(from)) || m.contains_key(to) {
        return false;
    }
    match m.remove(from) {
        Some(v) => {
            m.insert(s(to), v);
            true
        }
        None => false,
    }
}

/// `config: {...}` -> `typed_config: {"@type": url, ...}`; whether it did.
fn config_to_typed(m: &mut Mapping, url: &str) -> bool {
    if m.contains_key("typed_config") {
        return false;
    }
    // A filter given by name alone (Envoy chose such filters by name before `@type`).
    let cfg = m.remove("config").unwrap_or(Value::Null);
    let mut typed = Mapping::new();
    typed.insert(s("@type"), s(url));
    if let Value::Mapping(inner) = cfg {
        typed.extend(inner);
    }
    m.insert(s("typed_config"), Value::Mapping(typed));
    true
}

// Each normaliser says whether it changed anything: a document parsed in pieces
// (`docs.rs`) is kept as parsed, and one that was rewritten is parsed in full next time.

pub(crate) fn normalise_bootstrap(v: &mut Value) -> bool {
    let Some(m) = map_mut(v) else { return false };
    let Some(sr) = m.get_mut("static_resources").and_then(map_mut) else { return false };
    let listeners = each_mut(sr.get_mut("listeners"), normalise_listener);
    let changed = each_mut(sr.get_mut("clusters"), normalise_cluster) | listeners;
    if changed {
        each_mut(sr.get_mut("clusters"), rest_eds_speaks_v2);
    }
    changed
}

/// A REST EDS source in a document written in v2 spellings polls the v2 API (what its
/// management server of the time serves) unless it names a `transport_api_version`.
fn rest_eds_speaks_v2(v: &mut Value) -> bool {
    let api = map_mut(v)
        .and_then(|m| field_mut(m, "eds_cluster_config"))
        .and_then(map_mut)
        .and_then(|m| field_mut(m, "eds_config"))
        .and_then(map_mut)
        .and_then(|m| field_mut(m, "api_config_source"))
        .and_then(map_mut);
    match api {
        Some(api) if !api.contains_key("transport_api_version") => set(api, "transport_api_version", "V2"),
        _ => false,
    }
}

pub(crate) fn normalise_listener(v: &mut Value) -> bool {
    let Some(m) = map_mut(v) else { return false };
    // v2 named listener filters (`envoy.listener.tls_inspector`, `config: {}` or nothing).
    let listener_filters = each_mut(m.get_mut("listener_filters"), |filter| {
        let Some(f) = map_mut(filter) else { return false };
        let url = match name_of(f).unwrap_or_default() {
            "envoy.listener.tls_inspector" => t::TLS_INSPECTOR,
            "envoy.listener.http_inspector" => t::HTTP_INSPECTOR,
            _ => return false,
        };
        if f.contains_key("typed_config") {
            return false;
        }
        if !f.contains_key("config") {
            f.insert(s("config"), Value::Mapping(Mapping::new()));
        }
        config_to_typed(f, url)
    });
    listener_filters
        | each_mut(m.get_mut("filter_chains"), |chain| {
            let Some(chain) = map_mut(chain) else { return false };
            each_mut(chain.get_mut("filters"), |filter| {
                let Some(f) = map_mut(filter) else { return false };
                let name = name_of(f).unwrap_or_default();
                if name != "envoy.http_connection_manager" && name != "envoy.filters.network.http_connection_manager" {
                    return false;
                }
                let mut changed = set(f, "name", "envoy.filters.network.http_connection_manager");
                changed |= config_to_typed(f, t::HCM);
                if let Some(hcm) = f.get_mut("typed_config") {
                    changed |= normalise_hcm(hcm);
                }
                changed
            })
        })
}

fn normalise_hcm(v: &mut Value) -> bool {
    let Some(m) = map_mut(v) else { return false };
    let mut changed = false;
    if let Some(idle) = m.remove("idle_timeout") {
        changed = true;
        let common = m.entry(s("common_http_protocol_options")).or_insert_with(|| Value::Mapping(Mapping::new()));
        if let Some(c) = map_mut(common) {
            c.entry(s("idle_timeout")).or_insert(idle);
        }
    }
    changed |= each_mut(m.get_mut("http_filters"), |filter| {
        let Some(f) = map_mut(filter) else { return false };
        match name_of(f) {
            Some("envoy.router") | Some("envoy.filters.http.router") => {
                set(f, "name", "envoy.filters.http.router") | config_to_typed(f, t::ROUTER)
            }
            Some("envoy.health_check") | Some("envoy.filters.http.health_check") => {
                set(f, "name", "envoy.filters.http.health_check") | config_to_typed(f, t::HEALTH_CHECK)
            }
            Some("envoy.fault") | Some("envoy.filters.http.fault") => {
                set(f, "name", "envoy.filters.http.fault") | config_to_typed(f, t::FAULT)
            }
            Some("envoy.buffer") | Some("envoy.filters.http.buffer") => {
                set(f, "name", "envoy.filters.http.buffer") | config_to_typed(f, t::BUFFER)
            }
            _ => false,
        }
    });
    changed |= each_mut(m.get_mut("access_log"), |log| {
        let Some(l) = map_mut(log) else { return false };
        if name_of(l) != Some("envoy.file_access_log") {
            return false;
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
        true
    });
    if let Some(rc) = m.get_mut("route_config") {
        changed |= normalise_route_config(rc);
    }
    changed
}

/// The keys [`normalise_route_config`] rewrites: a file that spells none of them (and has no
/// `\` escape, which could spell one in a quoted key) needs no walk over its 10,000 routes.
pub(crate) const ROUTE_CONFIG_KEYS: &[&str] = &["host_rewrite"];

/// Whether a file's text may hold one of `keys` (see [`ROUTE_CONFIG_KEYS`]); not UTF-8 text
/// is never read, and says yes.
pub(crate) fn may_spell(text: &[u8], keys: &[&str]) -> bool {
    match std::str::from_utf8(text) {
        Ok(t) => t.contains('\\') || keys.iter().any(|k| t.contains(k)),
        Err(_) => true,
    }
}

pub(crate) fn normalise_route_config(v: &mut Value) -> bool {
    let Some(m) = map_mut(v) else { return false };
    each_mut(m.get_mut("virtual_hosts"), |vh| {
        let Some(vh) = map_mut(vh) else { return false };
        each_mut(field_mut(vh, "routes"), |r| match map_mut(r).and_then(|r| field_mut(r, "route")).and_then(map_mut) {
            Some(action) => rename(action, "host_rewrite", "host_rewrite_literal"),
            None => false,
        })
    })
}

pub(crate) fn normalise_cluster(v: &mut Value) -> bool {
    let Some(m) = map_mut(v) else { return false };
    let mut changed = false;
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
            changed = true;
        }
    }
    let h2 = m.remove("http2_protocol_options");
    let h1 = m.remove("http_protocol_options");
    let common = m.remove("common_http_protocol_options");
    if h2.is_none() && h1.is_none() && common.is_none() {
        return changed;
    }
    // With the other deprecated fields, Envoy honours the cluster's
    // `upstream_http_protocol_options` too; a typed entry of the user's own replaces them all
    // (the field then stays where it is, for the validator to refuse).
    let created = !matches!(m.get("typed_extension_protocol_options"), Some(Value::Mapping(o)) if o.contains_key(t::HTTP_PROTOCOL_OPTIONS_KEY));
    let upstream = if created { m.remove("upstream_http_protocol_options") } else { None };
    let opts = m.entry(s("typed_extension_protocol_options")).or_insert_with(|| Value::Mapping(Mapping::new()));
    let Some(opts) = map_mut(opts) else { return true };
    let entry = opts.entry(s(t::HTTP_PROTOCOL_OPTIONS_KEY)).or_insert_with(|| {
        let mut e = Mapping::new();
        e.insert(s("@type"), s(t::HTTP_PROTOCOL_OPTIONS));
        Value::Mapping(e)
    });
    let Some(entry) = map_mut(entry) else { return true };
    if let Some(u) = upstream {
        entry.insert(s("upstream_http_protocol_options"), u);
    }
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
    true
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
        assert!(normalise_cluster(&mut c));
        assert!(!normalise_cluster(&mut c), "normalising twice changes nothing");
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
    fn cluster_upstream_http_protocol_options_moves_with_the_other_deprecated_fields() {
        let mut c = y("{name: c, http_protocol_options: {}, upstream_http_protocol_options: {auto_sni: true}}");
        assert!(normalise_cluster(&mut c));
        let want = y(r#"
name: c
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    upstream_http_protocol_options: {auto_sni: true}
    explicit_http_config: {http_protocol_options: {}}
"#);
        assert_eq!(c, want);
        // Beside the user's own typed entry, Envoy ignores it: left for the validator to refuse.
        let typed = "typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {}}";
        let mut c =
            y(&format!("{{name: c, http_protocol_options: {{}}, upstream_http_protocol_options: {{}}, {typed}}}"));
        assert!(normalise_cluster(&mut c));
        assert!(c.get("upstream_http_protocol_options").is_some());
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
        assert!(normalise_listener(&mut l));
        assert!(!normalise_listener(&mut l), "normalising twice changes nothing");
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

    #[test]
    fn named_listener_filters() {
        let mut l = y("listener_filters: [{name: envoy.listener.tls_inspector}, {name: envoy.listener.http_inspector, config: {}}]");
        assert!(normalise_listener(&mut l));
        assert!(!normalise_listener(&mut l), "normalising twice changes nothing");
        let want = y(r#"
listener_filters:
- name: envoy.listener.tls_inspector
  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}
- name: envoy.listener.http_inspector
  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}
"#);
        assert_eq!(l, want);
    }
}
