//! `Listener`: its address and its single filter chain holding the HTTP connection manager.

use crate::config::model::Listener;
use crate::config::reader::{Ctx, Obj};
use crate::config::type_urls as t;

use super::common::{extension_by_type, ip_address, typed_config};

const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";
use super::hcm::hcm;

/// One listener; `i` names it `listener_<i>` when it has no `name`.
pub(crate) fn listener(ctx: &mut Ctx, mut o: Obj<'_>, i: usize) -> Option<Listener> {
    let before = ctx.error_count();
    let name = o.str(ctx, "name").filter(|n| !n.is_empty()).unwrap_or_else(|| format!("listener_{i}"));
    let address = match o.get("address") {
        Some((v, p)) => ip_address(ctx, v, &p),
        None => {
            ctx.err(o.at("address"), "missing address");
            None
        }
    };
    let buffer_limit = o.u32(ctx, "per_connection_buffer_limit_bytes").unwrap_or(1 << 20);
    let inbound = o
        .enumv(
            ctx,
            "traffic_direction",
            &[("UNSPECIFIED", Some(false)), ("INBOUND", Some(true)), ("OUTBOUND", Some(false))],
        )
        .unwrap_or(false);
    let stat_prefix = o.str(ctx, "stat_prefix").filter(|p| !p.is_empty());
    o.ignore(&["metadata"]);
    let chains = o.objs(ctx, "filter_chains");
    let chains_path = o.at("filter_chains");
    let has_default = o.has("default_filter_chain");
    o.finish(
        ctx,
        &[
            "default_filter_chain",
            "listener_filters",
            "listener_filters_timeout",
            "continue_on_listener_filters_timeout",
            "use_original_dst",
            "deprecated_v1",
            "transparent",
            "freebind",
            "socket_options",
            "tcp_fast_open_queue_length",
            "udp_listener_config",
            "api_listener",
            "connection_balance_config",
            "reuse_port",
            "enable_reuse_port",
            "access_log",
            "tcp_backlog_size",
            "bind_to_port",
            "additional_addresses",
            "enable_mptcp",
            "ignore_global_conn_limit",
            "internal_listener",
            "drain_type",
            "filter_chain_matcher",
            "max_connections_to_accept_per_socket_event",
            "listener_specifier",
        ],
    );
    let mut hcm_out = None;
    match chains.len() {
        0 if !has_default => ctx.err(&chains_path, "at least one filter chain is required"),
        0 => {}
        1 => {}
        n => ctx.err(&chains_path, format!("only one filter chain is supported, found {n}")),
    }
    if let Some(mut chain) = chains.into_iter().next() {
        let filters = chain.objs(ctx, "filters");
        let filters_path = chain.at("filters");
        chain.ignore(&["name"]);
        chain.finish(
            ctx,
            &[
                "filter_chain_match",
                "transport_socket",
                "transport_socket_connect_timeout",
                "metadata",
                "use_proxy_proto",
                "tls_context",
            ],
        );
        if filters.is_empty() {
            ctx.err(&filters_path, "exactly one network filter (http_connection_manager) is required");
        }
        for (j, mut f) in filters.into_iter().enumerate() {
            let mut fname = f.str(ctx, "name").unwrap_or_default();
            // Chosen by `@type`, as Envoy does: any name with the connection manager's type.
            if let Some(by_type) = extension_by_type(&f, &[(t::HCM, HCM_NAME)]).filter(|n| !n.is_empty()) {
                fname = by_type.to_string();
            }
            if fname == HCM_NAME && j == 0 {
                hcm_out = typed_config(ctx, &mut f, t::HCM).and_then(|c| hcm(ctx, c));
            } else if fname == HCM_NAME {
                ctx.err(&f.path, "only one http_connection_manager filter is supported");
                let _ = f.get("typed_config");
            } else {
                ctx.err(&f.path, format!("unsupported network filter {fname}"));
                let _ = f.get("typed_config");
                let _ = f.get("config");
            }
            f.finish(ctx, &["config_discovery"]);
        }
    }
    if ctx.error_count() > before {
        return None;
    }
    Some(Listener { name, address: address?, inbound, stat_prefix, buffer_limit, hcm: hcm_out? })
}
