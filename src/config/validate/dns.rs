//! The DNS resolver fields a cluster and the bootstrap share (`typed_dns_resolver_config` with
//! c-ares, the deprecated `dns_resolution_config` and `use_tcp_for_dns_lookups`, a cluster's
//! `dns_resolvers`), and a cluster's DNS refresh fields (`respect_dns_ttl`,
//! `dns_failure_refresh_rate`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::model::{DnsOptions, DnsResolver};
use crate::config::reader::{Ctx, Obj};
use crate::config::type_urls as t;

use super::common::{ip_address, typed_config};

/// The resolver `o` configures, and whether it names one of its own: Envoy's test for a
/// cluster that does not use the bootstrap's resolver is a `typed_dns_resolver_config`, a
/// `dns_resolution_config` (whose `resolvers` may not be empty) or `dns_resolvers`.
/// `with_dns_resolvers`: the cluster's own `dns_resolvers` list (not a bootstrap field).
pub(crate) fn resolver(ctx: &mut Ctx, o: &mut Obj<'_>, with_dns_resolvers: bool) -> (DnsResolver, bool) {
    let mut resolvers = if with_dns_resolvers { addresses(ctx, o, "dns_resolvers") } else { Vec::new() };
    let mut own = !resolvers.is_empty();
    let mut options = DnsOptions::default();
    if let Some(mut cfg) = o.obj(ctx, "typed_dns_resolver_config") {
        own = true;
        match cfg.str(ctx, "name").as_deref() {
            Some("envoy.network.dns_resolver.cares") => {
                if let Some(mut c) = typed_config(ctx, &mut cfg, t::CARES) {
                    resolvers.extend(addresses(ctx, &mut c, "resolvers"));
                    options.merge(resolver_options(ctx, &mut c));
                    options.fallback = c.bool(ctx, "use_resolvers_as_fallback").unwrap_or(false);
                    if c.bool(ctx, "filter_unroutable_families") == Some(true) {
                        ctx.err(c.at("filter_unroutable_families"), "not supported: legate keeps every address family");
                    }
                    c.finish(ctx, &[]);
                }
            }
            other => {
                ctx.err(&cfg.path, format!("unsupported DNS resolver {}", other.unwrap_or("(unnamed)")));
                let _ = cfg.get("typed_config");
            }
        }
        cfg.finish(ctx, &[]);
    }
    if let Some(mut cfg) = o.obj(ctx, "dns_resolution_config") {
        own = true;
        let listed = addresses(ctx, &mut cfg, "resolvers");
        if listed.is_empty() {
            // Envoy's proto constraint (`min_items: 1`).
            ctx.err(cfg.at("resolvers"), "value must contain at least 1 item(s)");
        }
        resolvers.extend(listed);
        options.merge(resolver_options(ctx, &mut cfg));
        cfg.finish(ctx, &[]);
    }
    // The deprecated top-level spelling.
    options.tcp |= o.bool(ctx, "use_tcp_for_dns_lookups").unwrap_or(false);
    (DnsResolver { resolvers, options }, own)
}

fn addresses(ctx: &mut Ctx, o: &mut Obj<'_>, field: &'static str) -> Vec<SocketAddr> {
    let items = o.list(ctx, field);
    items.into_iter().filter_map(|(v, p)| ip_address(ctx, v, &p)).collect()
}

fn resolver_options(ctx: &mut Ctx, o: &mut Obj<'_>) -> DnsOptions {
    let mut out = DnsOptions::default();
    if let Some(mut opts) = o.obj(ctx, "dns_resolver_options") {
        out.tcp = opts.bool(ctx, "use_tcp_for_dns_lookups").unwrap_or(false);
        out.no_search = opts.bool(ctx, "no_default_search_domain").unwrap_or(false);
        opts.finish(ctx, &[]);
    }
    out
}

/// A cluster's `dns_failure_refresh_rate` (`base_interval` required, `max_interval` ten times
/// it by default and not below it; both over 1 ms, as Envoy's proto requires).
pub(crate) fn failure_refresh_rate(ctx: &mut Ctx, o: &mut Obj<'_>) -> Option<(Duration, Duration)> {
    let mut r = o.obj(ctx, "dns_failure_refresh_rate")?;
    let min = Duration::from_millis(1);
    let base = r.duration(ctx, "base_interval");
    let max = r.duration(ctx, "max_interval");
    let base_path = r.at("base_interval");
    let max_path = r.at("max_interval");
    r.finish(ctx, &[]);
    let Some(base) = base else {
        ctx.err(&base_path, "missing base_interval");
        return None;
    };
    if base <= min {
        ctx.err(&base_path, "must be greater than 1ms");
        return None;
    }
    let max = max.unwrap_or(base * 10);
    if max <= min {
        ctx.err(&max_path, "must be greater than 1ms");
        return None;
    }
    if max < base {
        ctx.err(&max_path, "max_interval must be greater than or equal to the base_interval");
        return None;
    }
    Some((base, max))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::load_bootstrap;
    use crate::config::model::{Bootstrap, DnsOptions, DnsResolver};

    const CLUSTER: &str = "  - name: d\n    type: STRICT_DNS\n    load_assignment: {cluster_name: d, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: svc, port_value: 80}}}}]}]}\n";

    fn load(top: &str, cluster_extra: &str) -> Result<Bootstrap, Vec<String>> {
        let text = format!("{top}static_resources:\n  clusters:\n{CLUSTER}{cluster_extra}");
        load_bootstrap(None, Some(&text))
            .map_err(|e| e.0.iter().map(|e| format!("{}: {}", e.path, e.message)).collect())
    }

    fn ok(top: &str, cluster_extra: &str) -> Bootstrap {
        load(top, cluster_extra).unwrap_or_else(|e| panic!("{e:#?}"))
    }

    const CARES: &str = "typed_dns_resolver_config:\n  name: envoy.network.dns_resolver.cares\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig\n    resolvers: [{socket_address: {address: 127.0.0.53, port_value: 5353}}]\n    dns_resolver_options: {use_tcp_for_dns_lookups: true, no_default_search_domain: true}\n";

    #[test]
    fn the_bootstrap_resolver_is_the_default_of_clusters_without_their_own() {
        let b = ok(CARES, "");
        let want = DnsResolver {
            resolvers: vec!["127.0.0.53:5353".parse().unwrap_or_else(|e| panic!("{e}"))],
            options: DnsOptions { tcp: true, no_search: true, fallback: false },
        };
        assert_eq!(b.dns_resolver, want);
        let mut c = b.clusters[0].clone();
        assert!(!c.dns_own_resolver);
        c.use_default_resolver(&b.dns_resolver);
        assert_eq!((c.dns_resolvers, c.dns_options), (want.resolvers, want.options));
    }

    #[test]
    fn a_cluster_with_its_own_resolver_keeps_it() {
        let own = "    dns_resolvers: [{socket_address: {address: 127.0.0.9, port_value: 53}}]\n";
        let b = ok(CARES, own);
        let mut c = b.clusters[0].clone();
        assert!(c.dns_own_resolver);
        c.use_default_resolver(&b.dns_resolver);
        assert_eq!(c.dns_resolvers, ["127.0.0.9:53".parse().unwrap_or_else(|e| panic!("{e}"))]);
        assert_eq!(c.dns_options, DnsOptions::default());
    }

    #[test]
    fn the_deprecated_bootstrap_spellings_configure_the_default_too() {
        let b = ok("dns_resolution_config:\n  resolvers: [{socket_address: {address: 127.0.0.54, port_value: 5354}}]\nuse_tcp_for_dns_lookups: true\n", "");
        assert_eq!(b.dns_resolver.resolvers, ["127.0.0.54:5354".parse().unwrap_or_else(|e| panic!("{e}"))]);
        assert!(b.dns_resolver.options.tcp);
    }

    #[test]
    fn dns_resolution_config_needs_a_resolver() {
        let e = load("dns_resolution_config: {dns_resolver_options: {no_default_search_domain: true}}\n", "")
            .err()
            .unwrap_or_default();
        assert_eq!(e, ["dns_resolution_config.resolvers: value must contain at least 1 item(s)"]);
    }

    #[test]
    fn refresh_fields() {
        let b = ok("", "    respect_dns_ttl: true\n    dns_failure_refresh_rate: {base_interval: 2s}\n");
        assert!(b.clusters[0].respect_dns_ttl);
        assert_eq!(b.clusters[0].dns_failure_refresh_rate, Some((Duration::from_secs(2), Duration::from_secs(20))));
        let e =
            load("", "    dns_failure_refresh_rate: {base_interval: 2s, max_interval: 1s}\n").err().unwrap_or_default();
        assert_eq!(
            e,
            ["static_resources.clusters[0].dns_failure_refresh_rate.max_interval: max_interval must be greater than or equal to the base_interval"]
        );
        let e = load("", "    dns_failure_refresh_rate: {max_interval: 1s}\n").err().unwrap_or_default();
        assert_eq!(e, ["static_resources.clusters[0].dns_failure_refresh_rate.base_interval: missing base_interval"]);
    }
}
