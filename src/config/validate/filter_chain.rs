//! A listener's `filter_chains` (and `default_filter_chain`): each chain's `filter_chain_match`,
//! its network filters chosen by `typed_config` `@type` (never by `name`, as in Envoy), and the
//! `listener_filters` that run before a chain is chosen.
//!
//! legate implements two network filters, both terminal: the HTTP connection manager and
//! `tcp_proxy`; another is one more arm in [`network_filter`] and one more `NetworkFilter`
//! variant.

use serde_yaml::Value;

use crate::config::model::{CidrRange, FilterChain, FilterChainMatch, ListenerFilter, NetworkFilter, SourceType};
use crate::config::reader::{scalar_string, Ctx, Obj};
use crate::config::type_urls as t;

use super::common::parse_ip;
use super::hcm::hcm;
use super::tcp_proxy::tcp_proxy;

/// One chain; `None` when it has errors.
pub(crate) fn filter_chain(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<FilterChain> {
    let before = ctx.error_count();
    let name = o.str(ctx, "name").unwrap_or_default();
    let matcher = o.obj(ctx, "filter_chain_match").map(|m| chain_match(ctx, m)).unwrap_or_default();
    let items = o.objs(ctx, "filters");
    let count = items.len();
    let mut filters = Vec::with_capacity(count);
    for (j, f) in items.into_iter().enumerate() {
        if let Some(f) = network_filter(ctx, f, j + 1 == count) {
            filters.push(f);
        }
    }
    // Terminated in front of the connection manager or of tcp_proxy (which relays the
    // decrypted bytes).
    let tls = o.obj(ctx, "transport_socket").and_then(|t| super::tls::transport_socket(ctx, t));
    o.ignore(&["metadata"]);
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(FilterChain { name, matcher, filters, tls })
}

/// One network filter, by its `@type`.
fn network_filter(ctx: &mut Ctx, mut f: Obj<'_>, last: bool) -> Option<NetworkFilter> {
    let name = f.str(ctx, "name").unwrap_or_default();
    let typed = f.obj(ctx, "typed_config");
    let path = f.path.clone();
    f.finish(ctx, &[]);
    let Some(mut typed) = typed else {
        ctx.err(&path, "missing typed_config: a network filter is chosen by its @type");
        return None;
    };
    let Some(type_url) = typed.str(ctx, "@type") else {
        ctx.err(&typed.path, "missing @type");
        return None;
    };
    let filter = match type_url.as_str() {
        t::HCM => NetworkFilter::HttpConnectionManager(Box::new(hcm(ctx, typed)?)),
        t::TCP_PROXY => NetworkFilter::TcpProxy(Box::new(tcp_proxy(ctx, typed)?)),
        other => {
            ctx.err(format!("{}.@type", typed.path), format!("unsupported network filter \"{other}\""));
            return None;
        }
    };
    // Every filter legate has is terminal (it owns the connection's bytes), as Envoy checks.
    if !last {
        let short = type_url.rsplit('/').next().unwrap_or(&type_url);
        ctx.err(
            &path,
            format!("terminal filter named {name} of type {short} must be the last filter in a network filter chain."),
        );
        return None;
    }
    Some(filter)
}

fn chain_match(ctx: &mut Ctx, mut o: Obj<'_>) -> FilterChainMatch {
    let destination_port = o.uint(ctx, "destination_port", 65535).map(|p| p as u16);
    if destination_port == Some(0) {
        ctx.err(o.at("destination_port"), "must be in 1-65535");
    }
    let prefix_ranges = cidrs(ctx, &mut o, "prefix_ranges");
    let mut server_names = o.strs(ctx, "server_names");
    for (i, n) in server_names.iter_mut().enumerate() {
        *n = n.to_ascii_lowercase();
        // Envoy: only a leading `*.` wildcard.
        let bare = n.strip_prefix("*.").unwrap_or(n);
        if bare.contains('*') {
            ctx.err(
                format!("{}[{i}]", o.at("server_names")),
                format!("partial wildcards are not supported in \"server_names\": {n}"),
            );
        }
    }
    let transport_protocol = o.str(ctx, "transport_protocol").filter(|p| !p.is_empty());
    let application_protocols = o.strs(ctx, "application_protocols");
    let direct_source_prefix_ranges = cidrs(ctx, &mut o, "direct_source_prefix_ranges");
    let source_type = o
        .enumv(
            ctx,
            "source_type",
            &[
                ("ANY", Some(SourceType::Any)),
                ("SAME_IP_OR_LOOPBACK", Some(SourceType::Local)),
                ("EXTERNAL", Some(SourceType::External)),
            ],
        )
        .unwrap_or_default();
    let source_prefix_ranges = cidrs(ctx, &mut o, "source_prefix_ranges");
    let mut source_ports = Vec::new();
    for (v, p) in o.list(ctx, "source_ports") {
        match scalar_string(v).and_then(|s| s.trim().parse::<u16>().ok()) {
            Some(port) if port > 0 => source_ports.push(port),
            _ => ctx.err(&p, "expected a port in 1-65535"),
        }
    }
    o.finish(ctx, &[]);
    FilterChainMatch {
        destination_port,
        prefix_ranges,
        server_names,
        transport_protocol,
        application_protocols,
        direct_source_prefix_ranges,
        source_type,
        source_prefix_ranges,
        source_ports,
    }
}

/// A repeated `CidrRange` field (filter chain matches, the HCM's internal addresses).
pub(super) fn cidrs(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str) -> Vec<CidrRange> {
    let mut out = Vec::new();
    for mut c in o.objs(ctx, name) {
        let prefix = c.str(ctx, "address_prefix");
        let len = c.uint(ctx, "prefix_len", 128);
        let path = c.path.clone();
        c.finish(ctx, &[]);
        match prefix.as_deref().map(parse_ip) {
            Some(Some(address)) => {
                let max = if address.is_ipv4() { 32 } else { 128 };
                let prefix_len = len.unwrap_or(0);
                if prefix_len > max {
                    ctx.err(format!("{path}.prefix_len"), format!("must be at most {max}"));
                } else {
                    out.push(CidrRange { address, prefix_len: prefix_len as u8 });
                }
            }
            _ => ctx.err(format!("{path}.address_prefix"), "expected an IP address"),
        }
    }
    out
}

/// `listener_filters`, each by its `@type`.
pub(crate) fn listener_filters(ctx: &mut Ctx, items: Vec<Obj<'_>>) -> Vec<ListenerFilter> {
    let mut out = Vec::new();
    for mut f in items {
        let _ = f.str(ctx, "name");
        let typed = f.obj(ctx, "typed_config");
        let path = f.path.clone();
        f.finish(ctx, &[]);
        let Some(mut typed) = typed else {
            ctx.err(&path, "missing typed_config: a listener filter is chosen by its @type");
            continue;
        };
        let Some(type_url) = typed.str(ctx, "@type") else {
            ctx.err(&typed.path, "missing @type");
            continue;
        };
        match type_url.as_str() {
            t::TLS_INSPECTOR => {
                typed.finish(
                    ctx,
                    &[
                        "enable_ja3_fingerprinting",
                        "enable_ja4_fingerprinting",
                        "initial_read_buffer_size",
                        "max_client_hello_size",
                        "close_connection_on_client_hello_parsing_errors",
                    ],
                );
                out.push(ListenerFilter::TlsInspector);
            }
            t::HTTP_INSPECTOR => {
                typed.finish(ctx, &[]);
                out.push(ListenerFilter::HttpInspector);
            }
            other => ctx.err(format!("{}.@type", typed.path), format!("unsupported listener filter \"{other}\"")),
        }
    }
    out
}

/// Envoy's check that no two chains have the same `filter_chain_match` (lists compared as
/// sets). `raw` is each chain's `filter_chain_match` as written, for the message.
pub(crate) fn duplicate_matches<'a>(chains: &[(&'a FilterChain, Option<&'a Value>)]) -> Option<(usize, String)> {
    let key = |m: &FilterChainMatch| {
        let mut m = m.clone();
        for v in [&mut m.prefix_ranges, &mut m.direct_source_prefix_ranges, &mut m.source_prefix_ranges] {
            v.sort_by_key(|c| (c.address, c.prefix_len));
            v.dedup();
        }
        for v in [&mut m.server_names, &mut m.application_protocols] {
            v.sort();
            v.dedup();
        }
        m.source_ports.sort_unstable();
        m.source_ports.dedup();
        m
    };
    let keys: Vec<FilterChainMatch> = chains.iter().map(|(c, _)| key(&c.matcher)).collect();
    for (i, k) in keys.iter().enumerate() {
        if let Some(j) = keys[..i].iter().position(|o| o == k) {
            let shown = chains[i].1.and_then(|v| serde_json::to_string(v).ok()).unwrap_or_else(|| "{}".to_string());
            return Some((
                i,
                format!(
                    "filter chain '{}' has the same matching rules defined as '{}'. duplicate matcher is: {shown}",
                    chains[i].0.name, chains[j].0.name
                ),
            ));
        }
    }
    None
}
