//! DNS discovery for STRICT_DNS and LOGICAL_DNS clusters.
//!
//! One task per cluster resolves every DNS endpoint each `dns_refresh_rate` and replaces the
//! host set when the answer changes (STRICT_DNS: every address is a host; LOGICAL_DNS: the
//! first one). The task holds only a `Weak` to its cluster and ends once the cluster is gone.
//! A failed lookup keeps the previous hosts, as Envoy does.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::TokioAsyncResolver;

use super::{static_specs, Cluster, HostSpec};
use crate::config::model::{DiscoveryType, DnsLookupFamily, EndpointAddress};

fn build_resolver(cluster: &Cluster) -> Result<TokioAsyncResolver, String> {
    let mut opts = ResolverOpts::default();
    // We re-resolve on our own schedule; a cache would hide answer changes.
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    opts.ip_strategy = match cluster.config.dns_lookup_family {
        DnsLookupFamily::Auto => LookupIpStrategy::Ipv6thenIpv4,
        DnsLookupFamily::V4Preferred => LookupIpStrategy::Ipv4thenIpv6,
        DnsLookupFamily::V4Only => LookupIpStrategy::Ipv4Only,
        DnsLookupFamily::V6Only => LookupIpStrategy::Ipv6Only,
        DnsLookupFamily::All => LookupIpStrategy::Ipv4AndIpv6,
    };
    let dns = cluster.config.dns_options;
    let protocol = if dns.tcp { Protocol::Tcp } else { Protocol::Udp };
    let system =
        || hickory_resolver::system_conf::read_system_conf().map_err(|e| format!("reading /etc/resolv.conf: {e}"));
    let configured = !cluster.config.dns_resolvers.is_empty();
    // resolv.conf is read for this only when the answer can matter.
    let system_has_servers = || system().is_ok_and(|(c, _)| !c.name_servers().is_empty());
    if use_system(configured, dns.fallback, system_has_servers) {
        let (config, mut sys_opts) = system()?;
        sys_opts.cache_size = 0;
        sys_opts.ip_strategy = opts.ip_strategy;
        sys_opts.timeout = opts.timeout;
        sys_opts.attempts = opts.attempts;
        // resolv.conf's servers come as a UDP and a TCP entry each; keep the protocol asked.
        let servers: Vec<NameServerConfig> =
            config.name_servers().iter().filter(|n| n.protocol == protocol).cloned().collect();
        let search = if dns.no_search { Vec::new() } else { config.search().to_vec() };
        let config = ResolverConfig::from_parts(config.domain().cloned().filter(|_| !dns.no_search), search, servers);
        return Ok(TokioAsyncResolver::tokio(config, sys_opts));
    }
    let mut config = ResolverConfig::new();
    for addr in &cluster.config.dns_resolvers {
        config.add_name_server(NameServerConfig::new(*addr, protocol));
    }
    Ok(TokioAsyncResolver::tokio(config, opts))
}

/// Whether the system's resolvers are used: when none are configured, or when the configured
/// ones are only a fallback (`use_resolvers_as_fallback`) and the system has some.
fn use_system(configured: bool, fallback: bool, system_has_servers: impl FnOnce() -> bool) -> bool {
    !configured || (fallback && system_has_servers())
}

/// Resolves once and applies the answer; `false` if any lookup failed.
async fn refresh(resolver: &TokioAsyncResolver, cluster: &Cluster) -> bool {
    let logical = matches!(cluster.config.discovery, DiscoveryType::LogicalDns);
    let mut specs = static_specs(&cluster.config);
    let mut ok = true;
    for loc in &cluster.config.endpoints {
        for ep in &loc.endpoints {
            let EndpointAddress::Dns { host, port } = &ep.address else { continue };
            // A fully-qualified name skips search domains, as Envoy's c-ares does for names
            // with dots; bare names (`service1`) use the search list.
            match resolver.lookup_ip(host.as_str()).await {
                Ok(answer) => {
                    let mut addrs: Vec<SocketAddr> = answer.iter().map(|ip| SocketAddr::new(ip, *port)).collect();
                    if logical {
                        addrs.truncate(1);
                    }
                    for addr in addrs {
                        let hostname = ep.hostname.clone().or_else(|| Some(host.clone()));
                        specs.push(HostSpec { addr, hostname, weight: ep.weight, priority: loc.priority });
                    }
                }
                Err(e) => {
                    ok = false;
                    if matches!(e.kind(), hickory_resolver::error::ResolveErrorKind::NoRecordsFound { .. }) {
                        // The name exists no more: its hosts go away, as in Envoy.
                        tracing::debug!(cluster.name = %cluster.name(), dns.name = %host, "no records");
                    } else {
                        tracing::warn!(cluster.name = %cluster.name(), dns.name = %host, error = %e, "DNS lookup failed");
                        // Keep what this name resolved to before.
                        let current = cluster.hosts.load();
                        for h in current
                            .all
                            .iter()
                            .filter(|h| h.hostname.as_deref() == Some(host.as_str()) && h.addr.port() == *port)
                        {
                            specs.push(HostSpec {
                                addr: h.addr,
                                hostname: h.hostname.clone(),
                                weight: h.weight,
                                priority: h.priority,
                            });
                        }
                    }
                }
            }
        }
    }
    specs.dedup();
    cluster.set_hosts(specs);
    ok
}

/// Starts the resolution loop of a DNS cluster and waits (bounded by `first_wait`) for its
/// first answer, so the cluster is warm before listeners take traffic.
pub async fn spawn_dns(cluster: &Arc<Cluster>, first_wait: Duration) {
    let resolver = match build_resolver(cluster) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(cluster.name = %cluster.name(), error = %e, "cannot build DNS resolver");
            return;
        }
    };
    let weak: Weak<Cluster> = Arc::downgrade(cluster);
    let refresh_rate = cluster.config.dns_refresh_rate.max(Duration::from_millis(10));
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut first = Some(first_tx);
        loop {
            let Some(cluster) = weak.upgrade() else { return };
            refresh(&resolver, &cluster).await;
            drop(cluster);
            if let Some(tx) = first.take() {
                let _ = tx.send(());
            }
            tokio::time::sleep(refresh_rate).await;
        }
    });
    let _ = tokio::time::timeout(first_wait, first_rx).await;
}

#[cfg(test)]
mod tests {
    use super::use_system;

    #[test]
    fn configured_resolvers_are_a_fallback_only_when_asked() {
        assert!(use_system(false, false, || false), "nothing configured: the system's");
        assert!(!use_system(true, false, || true), "configured: those");
        assert!(use_system(true, true, || true), "a fallback, and the system has servers");
        assert!(!use_system(true, true, || false), "a fallback, and the system has none");
    }
}
