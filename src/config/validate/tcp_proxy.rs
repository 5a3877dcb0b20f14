//! `envoy.filters.network.tcp_proxy` (`TcpProxy`): the cluster (or weighted clusters) a
//! connection's bytes are relayed to, `idle_timeout`, `max_connect_attempts` and access logs.

use std::time::Duration;

use crate::config::model::TcpProxy;
use crate::config::reader::{Ctx, Obj};

use super::access_log::access_log;

/// Envoy's default `idle_timeout`.
const DEFAULT_IDLE: Duration = Duration::from_secs(3600);

pub(crate) fn tcp_proxy(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<TcpProxy> {
    let before = ctx.error_count();
    let stat_prefix = o.str(ctx, "stat_prefix").unwrap_or_default();
    if stat_prefix.is_empty() {
        ctx.err(o.at("stat_prefix"), "value length must be at least 1 characters");
    }
    let mut clusters = Vec::new();
    let single = o.str(ctx, "cluster");
    if let Some(mut w) = o.obj(ctx, "weighted_clusters") {
        for mut c in w.objs(ctx, "clusters") {
            let name = c.str(ctx, "name").unwrap_or_default();
            let weight = c.u32(ctx, "weight").unwrap_or(0);
            if name.is_empty() {
                ctx.err(c.at("name"), "value length must be at least 1 characters");
            }
            if weight == 0 {
                ctx.err(c.at("weight"), "value must be greater than or equal to 1");
            }
            clusters.push((name, weight));
            c.finish(ctx, &[]);
        }
        if clusters.is_empty() {
            ctx.err(w.at("clusters"), "value must contain at least 1 item(s)");
        }
        w.finish(ctx, &[]);
    }
    match single {
        Some(name) if clusters.is_empty() => clusters.push((name, 1)),
        Some(_) => ctx.err(o.at("cluster"), "only one of cluster and weighted_clusters may be set"),
        None if clusters.is_empty() => ctx.err(&o.path, "one of cluster or weighted_clusters is required"),
        None => {}
    }
    // `0s` disables it, as in Envoy.
    let idle_timeout = match o.duration(ctx, "idle_timeout") {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None => Some(DEFAULT_IDLE),
    };
    let max_connect_attempts = o.u32(ctx, "max_connect_attempts").unwrap_or(1);
    if max_connect_attempts == 0 {
        ctx.err(o.at("max_connect_attempts"), "value must be greater than or equal to 1");
    }
    let mut access_logs = Vec::new();
    for l in o.objs(ctx, "access_log") {
        if let Some(l) = access_log(ctx, l) {
            access_logs.push(l);
        }
    }
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(TcpProxy {
        stat_prefix,
        clusters,
        idle_timeout,
        max_connect_attempts,
        access_logs,
    })
}
