//! `Listener`: its address, its filter chains (see `filter_chain`) and its listener filters.

use std::time::Duration;

use crate::config::model::Listener;
use crate::config::reader::{Ctx, Obj};

use super::common::ip_address;
use super::{filter_chain, overlap};

/// One listener; `i` names it `listener_<i>` when it has no `name`.
pub(crate) fn listener(ctx: &mut Ctx, mut o: Obj<'_>, i: usize) -> Option<Listener> {
    let before = ctx.error_count();
    let o_path = o.path.clone();
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
    let chain_items = o.list(ctx, "filter_chains");
    let default_item = o.get("default_filter_chain");
    let filter_items = o.objs(ctx, "listener_filters");
    let listener_filters = filter_chain::listener_filters(ctx, filter_items);
    let listener_filters_timeout = o.duration(ctx, "listener_filters_timeout").unwrap_or(Duration::from_secs(15));
    let continue_on_listener_filters_timeout = o.bool(ctx, "continue_on_listener_filters_timeout").unwrap_or(false);
    o.finish(ctx, &[]);
    if chain_items.is_empty() && default_item.is_none() {
        ctx.err(format!("{o_path}.filter_chains"), "at least one filter chain is required");
    }
    let mut filter_chains = Vec::with_capacity(chain_items.len());
    let mut raw_matches = Vec::with_capacity(chain_items.len());
    for (v, p) in chain_items {
        if let Some(c) = Obj::new(ctx, v, p.clone()).and_then(|o| filter_chain::filter_chain(ctx, o)) {
            filter_chains.push((c, p));
            raw_matches.push(v.get("filter_chain_match"));
        }
    }
    let default_chain =
        default_item.and_then(|(v, p)| Obj::new(ctx, v, p)).and_then(|o| filter_chain::filter_chain(ctx, o));
    let pairs: Vec<_> = filter_chains.iter().map(|(c, _)| c).zip(raw_matches).collect();
    if let Some((i, message)) = filter_chain::duplicate_matches(&pairs) {
        ctx.err(&filter_chains[i].1, message);
    } else if let Some(j) = overlap::first_overlap(&pairs.iter().map(|(c, _)| &c.matcher).collect::<Vec<_>>()) {
        ctx.err(&filter_chains[j].1, overlap::OVERLAP);
    }
    let filter_chains = filter_chains.into_iter().map(|(c, _)| c).collect();
    if ctx.error_count() > before {
        return None;
    }
    Some(Listener {
        name,
        address: address?,
        inbound,
        stat_prefix,
        buffer_limit,
        filter_chains,
        default_chain,
        listener_filters,
        listener_filters_timeout: (!listener_filters_timeout.is_zero()).then_some(listener_filters_timeout),
        continue_on_listener_filters_timeout,
    })
}
