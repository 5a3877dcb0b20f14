//! DNS discovery for STRICT_DNS and LOGICAL_DNS clusters.
//!
//! One task per cluster resolves every DNS endpoint each `dns_refresh_rate` and replaces the
//! host set when the answer changes (STRICT_DNS: every address is a host; LOGICAL_DNS: the
//! first one). The task holds only a `Weak` to its cluster and ends once the cluster is gone.
//! A failed lookup keeps the previous hosts, as Envoy does.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::TokioAsyncResolver;

use super::membership::Input;
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

/// Resolves every DNS endpoint once: the hosts the answers make (a failed lookup keeps what
/// its name resolved to before).
async fn resolve(resolver: &TokioAsyncResolver, cluster: &Cluster) -> Vec<HostSpec> {
    let logical = matches!(cluster.config.discovery, DiscoveryType::LogicalDns);
    let mut specs = static_specs(&cluster.config);
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
    specs
}

/// Starts the resolution loop of a DNS cluster and waits (bounded by `first_wait`) for its
/// first answer, so the cluster is warm before listeners take traffic.
pub async fn spawn_dns(cluster: &Arc<Cluster>, first_wait: Duration) {
    let resolver = match build_resolver(cluster) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::error!(cluster.name = %cluster.name(), error = %e, "cannot build DNS resolver");
            return;
        }
    };
    let lookup = move |c: Arc<Cluster>| {
        let resolver = Arc::clone(&resolver);
        async move { resolve(&resolver, &c).await }
    };
    spawn_loop(cluster, first_wait, lookup).await;
}

/// The resolution loop: every `dns_refresh_rate`, `lookup` the cluster's names and hand the
/// hosts to its membership writer. It holds only a `Weak` to the cluster and ends with it.
async fn spawn_loop<F, Fut>(cluster: &Arc<Cluster>, first_wait: Duration, mut lookup: F)
where
    F: FnMut(Arc<Cluster>) -> Fut + Send + 'static,
    Fut: Future<Output = Vec<HostSpec>> + Send,
{
    let weak: Weak<Cluster> = Arc::downgrade(cluster);
    let refresh_rate = cluster.config.dns_refresh_rate.max(Duration::from_millis(10));
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut first = Some(first_tx);
        loop {
            let Some(cluster) = weak.upgrade() else { return };
            let specs = lookup(Arc::clone(&cluster)).await;
            cluster.update_membership(Input::Dns(specs)).await;
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
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn configured_resolvers_are_a_fallback_only_when_asked() {
        assert!(use_system(false, false, || false), "nothing configured: the system's");
        assert!(!use_system(true, false, || true), "configured: those");
        assert!(use_system(true, true, || true), "a fallback, and the system has servers");
        assert!(!use_system(true, true, || false), "a fallback, and the system has none");
    }

    fn strict_dns(refresh: &str) -> Arc<Cluster> {
        let cds = format!(
            "resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: d\n  type: STRICT_DNS\n  dns_refresh_rate: {refresh}\n  load_assignment:\n    cluster_name: d\n    endpoints:\n    - lb_endpoints:\n      - endpoint: {{address: {{socket_address: {{address: svc.test, port_value: 80}}}}}}\n"
        );
        let cfg = crate::config::parse_clusters(std::path::Path::new("cds.yaml"), cds.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .resources
            .remove(0);
        Cluster::build(cfg, &crate::stats::Store::new())
    }

    fn spec(last: u8) -> HostSpec {
        HostSpec { addr: ([127, 0, 0, last], 80).into(), hostname: Some("svc.test".into()), weight: 1, priority: 0 }
    }

    fn addrs(c: &Cluster) -> Vec<SocketAddr> {
        c.hosts.load().all.iter().map(|h| h.addr).collect()
    }

    type Lookup = Box<dyn FnMut(Arc<Cluster>) -> std::future::Ready<Vec<HostSpec>> + Send>;

    /// A resolver whose answers a test scripts: each lookup takes the next one (the last repeats).
    fn scripted(answers: Vec<Vec<HostSpec>>) -> (Arc<Mutex<usize>>, Lookup) {
        let calls = Arc::new(Mutex::new(0usize));
        let counter = Arc::clone(&calls);
        let lookup = move |_c: Arc<Cluster>| {
            let mut n = counter.lock().unwrap_or_else(|e| e.into_inner());
            let answer = answers[(*n).min(answers.len() - 1)].clone();
            *n += 1;
            std::future::ready(answer)
        };
        (calls, Box::new(lookup))
    }

    #[tokio::test(start_paused = true)]
    async fn re_resolution_feeds_the_membership_writer_keeping_hosts_by_address() {
        let c = strict_dns("5s");
        let (calls, lookup) = scripted(vec![vec![spec(1), spec(2)], vec![spec(2), spec(3)]]);
        spawn_loop(&c, Duration::from_secs(5), lookup).await;
        assert_eq!(addrs(&c), [spec(1).addr, spec(2).addr], "warm after the first answer");
        let kept = Arc::clone(&c.hosts.load().all[1]);
        kept.stats.rq_total.inc();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(*calls.lock().unwrap_or_else(|e| e.into_inner()), 1, "not before dns_refresh_rate");
        tokio::time::sleep(Duration::from_millis(1001)).await;
        assert_eq!(addrs(&c), [spec(2).addr, spec(3).addr], "the second answer replaced the set");
        let now = Arc::clone(&c.hosts.load().all[0]);
        assert!(Arc::ptr_eq(&now.pool, &kept.pool), "the host that stayed keeps its pool");
        assert_eq!(now.stats.rq_total.value(), 1, "and its counters");
        assert_eq!(c.stats.membership_total.value(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_ends_with_its_cluster() {
        let c = strict_dns("1s");
        let (calls, lookup) = scripted(vec![vec![spec(1)]]);
        spawn_loop(&c, Duration::from_secs(5), lookup).await;
        drop(c);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(*calls.lock().unwrap_or_else(|e| e.into_inner()), 1, "no lookup once the cluster is gone");
    }
}
