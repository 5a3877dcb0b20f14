//! DNS discovery for STRICT_DNS and LOGICAL_DNS clusters.
//!
//! As in Envoy, each DNS endpoint (target) has its own task: it looks its name up, replaces
//! the cluster's hosts when the answer changed (STRICT_DNS: every address is a host;
//! LOGICAL_DNS: the first one) and waits as `dns_schedule` says (`dns_refresh_rate`, the TTL
//! with `respect_dns_ttl`, `dns_failure_refresh_rate` after a failure), counting Envoy's
//! `update_attempt|success|no_rebuild|failure`. A name that does not exist empties its hosts;
//! a failed lookup keeps them. The tasks hold only a `Weak` to their cluster and end with it.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::TokioAsyncResolver;

use super::dns_schedule::Schedule;
use super::membership::Input;
use super::{static_specs, Cluster, HostSpec};
use crate::config::model::{DiscoveryType, DnsLookupFamily, EndpointAddress};
use crate::stats::{Counter, Store};

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

/// What one lookup of a name gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The name resolved: its addresses (none when it does not exist or has no records of the
    /// family, which Envoy counts as a success) and the smallest TTL among them.
    Resolved { ips: Vec<IpAddr>, ttl: Duration },
    /// No answer (timeout, refused, SERVFAIL): the hosts the name gave before stay.
    Failed,
}

async fn lookup(resolver: &TokioAsyncResolver, cluster: &str, host: &str) -> Answer {
    // A fully-qualified name skips search domains, as Envoy's c-ares does for names with
    // dots; bare names (`service1`) use the search list.
    match resolver.lookup_ip(host).await {
        Ok(answer) => {
            let ttl = answer.as_lookup().records().iter().map(|r| r.ttl()).min().unwrap_or(0);
            Answer::Resolved { ips: answer.iter().collect(), ttl: Duration::from_secs(u64::from(ttl)) }
        }
        Err(e) => match e.kind() {
            ResolveErrorKind::NoRecordsFound { response_code, .. }
                if matches!(*response_code, ResponseCode::NXDomain | ResponseCode::NoError) =>
            {
                tracing::debug!(cluster.name = %cluster, dns.name = %host, "no records");
                Answer::Resolved { ips: Vec::new(), ttl: Duration::ZERO }
            }
            _ => {
                tracing::warn!(cluster.name = %cluster, dns.name = %host, error = %e, "DNS lookup failed");
                Answer::Failed
            }
        },
    }
}

/// Envoy's `cluster.<name>.update_*` for a DNS cluster: one attempt per name looked up, a
/// success or a failure per answer, and `update_no_rebuild` for a success that left the
/// name's hosts as they were.
struct DnsStats {
    attempt: Counter,
    success: Counter,
    no_rebuild: Counter,
    failure: Counter,
}

impl DnsStats {
    fn new(store: &Arc<Store>, stat_name: &str) -> Self {
        let c = |s: &str| store.counter(&format!("cluster.{stat_name}.{s}"));
        // Shown at 0 as Envoy shows it: DNS answers are never "empty" updates.
        let _ = c("update_empty");
        DnsStats {
            attempt: c("update_attempt"),
            success: c("update_success"),
            no_rebuild: c("update_no_rebuild"),
            failure: c("update_failure"),
        }
    }
}

/// One DNS endpoint of the cluster (a "target", in Envoy's words).
struct Target {
    host: String,
    port: u16,
    hostname: Option<String>,
    weight: u32,
    priority: u32,
    health: crate::config::model::EdsHealth,
    hc: crate::config::model::EndpointHc,
    locality: Arc<crate::config::model::Locality>,
    locality_weight: u32,
    hash_key: Option<String>,
}

impl Target {
    fn specs(&self, ips: &[IpAddr]) -> Vec<HostSpec> {
        let spec = |ip: &IpAddr| HostSpec {
            addr: SocketAddr::new(*ip, self.port),
            hostname: self.hostname.clone(),
            weight: self.weight,
            priority: self.priority,
            health: self.health,
            hc: self.hc.clone(),
            locality: Arc::clone(&self.locality),
            locality_weight: self.locality_weight,
            hash_key: self.hash_key.clone(),
        };
        ips.iter().map(spec).collect()
    }
}

/// What every target of a cluster resolved to last, and the config's literal addresses:
/// together, the cluster's hosts. Locked while the hosts are handed over, so that two
/// targets' updates reach the membership writer in the order they were made.
struct Resolved {
    literal: Vec<HostSpec>,
    by_target: tokio::sync::Mutex<Vec<Vec<HostSpec>>>,
}

impl Resolved {
    fn all(&self, by_target: &[Vec<HostSpec>]) -> Vec<HostSpec> {
        let mut specs = self.literal.clone();
        specs.extend(by_target.iter().flatten().cloned());
        specs.dedup();
        specs
    }
}

/// The targets of a cluster, each starting from the hosts the cluster already has for its
/// name (hosts adopted from the cluster this one replaces), so a failed first lookup keeps them.
fn targets(cluster: &Cluster) -> (Vec<Target>, Vec<Vec<HostSpec>>) {
    let current = cluster.hosts.load();
    let mut targets = Vec::new();
    let mut start = Vec::new();
    for loc in &cluster.config.endpoints {
        for ep in &loc.endpoints {
            let EndpointAddress::Dns { host, port } = &ep.address else { continue };
            let t = Target {
                host: host.clone(),
                port: *port,
                hostname: ep.hostname.clone().or_else(|| Some(host.clone())),
                weight: ep.weight,
                priority: loc.priority,
                health: ep.health,
                hc: ep.hc.clone(),
                locality: Arc::clone(&loc.locality),
                locality_weight: loc.weight,
                hash_key: ep.hash_key.clone(),
            };
            let kept: Vec<HostSpec> = current
                .all
                .iter()
                .filter(|h| h.hostname == t.hostname && h.addr.port() == t.port)
                .map(|h| h.spec())
                .collect();
            start.push(kept);
            targets.push(t);
        }
    }
    (targets, start)
}

/// Starts the resolution loops of a DNS cluster and waits (bounded by `first_wait`) for every
/// name's first answer, so the cluster is warm before listeners take traffic.
pub async fn spawn_dns(cluster: &Arc<Cluster>, first_wait: Duration) {
    let resolver = match build_resolver(cluster) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::error!(cluster.name = %cluster.name(), error = %e, "cannot build DNS resolver");
            return;
        }
    };
    let name = cluster.name().to_string();
    let lookup = move |host: String| {
        let (resolver, name) = (Arc::clone(&resolver), name.clone());
        async move { lookup(&resolver, &name, &host).await }
    };
    spawn_loop(cluster, first_wait, lookup).await;
}

/// One loop per target: look the name up, hand the cluster's hosts to its membership writer
/// when the name's answer changed, and wait as [`Schedule`] says. Each loop holds only a
/// `Weak` to the cluster and ends with it.
async fn spawn_loop<F, Fut>(cluster: &Arc<Cluster>, first_wait: Duration, lookup: F)
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send,
{
    let logical = matches!(cluster.config.discovery, DiscoveryType::LogicalDns);
    let stats = Arc::new(DnsStats::new(&cluster.stats.store, cluster.config.stat_name()));
    let (targets, start) = targets(cluster);
    let resolved = Arc::new(Resolved { literal: static_specs(&cluster.config), by_target: start.into() });
    let lookup = Arc::new(lookup);
    let mut first = Vec::new();
    for (i, target) in targets.into_iter().enumerate() {
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        first.push(first_rx);
        let weak: Weak<Cluster> = Arc::downgrade(cluster);
        let mut schedule = Schedule::new(&cluster.config);
        let (stats, resolved, lookup) = (Arc::clone(&stats), Arc::clone(&resolved), Arc::clone(&lookup));
        tokio::spawn(async move {
            let mut first = Some(first_tx);
            loop {
                let Some(cluster) = weak.upgrade() else { return };
                stats.attempt.inc();
                let wait = match lookup(target.host.clone()).await {
                    // A LOGICAL_DNS name that resolves to nothing has failed, as in Envoy.
                    Answer::Resolved { ips, ttl } if !(logical && ips.is_empty()) => {
                        stats.success.inc();
                        let ips = if logical { &ips[..1] } else { &ips[..] };
                        let specs = target.specs(ips);
                        let mut by_target = resolved.by_target.lock().await;
                        if by_target[i] == specs {
                            stats.no_rebuild.inc();
                        } else {
                            by_target[i] = specs;
                            cluster.update_membership(Input::Dns(resolved.all(&by_target))).await;
                        }
                        schedule.after_success(ttl)
                    }
                    _ => {
                        stats.failure.inc();
                        schedule.after_failure(rand::random())
                    }
                };
                drop(cluster);
                if let Some(tx) = first.take() {
                    let _ = tx.send(());
                }
                tokio::time::sleep(wait).await;
            }
        });
    }
    let _ = tokio::time::timeout(first_wait, futures_util::future::join_all(first)).await;
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

    /// A DNS cluster on `svc.test:80`; `extra` adds cluster fields (YAML lines).
    fn cluster(kind: &str, refresh: &str, extra: &str) -> Arc<Cluster> {
        let cds = format!(
            "resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: d\n  type: {kind}\n  dns_refresh_rate: {refresh}\n{extra}  load_assignment:\n    cluster_name: d\n    endpoints:\n    - lb_endpoints:\n      - endpoint: {{address: {{socket_address: {{address: svc.test, port_value: 80}}}}}}\n"
        );
        let cfg = crate::config::parse_clusters(std::path::Path::new("cds.yaml"), cds.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .resources
            .remove(0);
        Cluster::build(cfg, &crate::stats::Store::new())
    }

    fn strict_dns(refresh: &str) -> Arc<Cluster> {
        cluster("STRICT_DNS", refresh, "")
    }

    fn spec(last: u8) -> HostSpec {
        HostSpec {
            addr: ([127, 0, 0, last], 80).into(),
            hostname: Some("svc.test".into()),
            weight: 1,
            priority: 0,
            health: Default::default(),
            hc: Default::default(),
            locality: Default::default(),
            locality_weight: 1,
            hash_key: None,
        }
    }

    fn ips(lasts: &[u8]) -> Answer {
        Answer::Resolved { ips: lasts.iter().map(|l| IpAddr::from([127, 0, 0, *l])).collect(), ttl: Duration::ZERO }
    }

    fn addrs(c: &Cluster) -> Vec<SocketAddr> {
        c.hosts.load().all.iter().map(|h| h.addr).collect()
    }

    /// `(update_attempt, update_success, update_no_rebuild, update_failure)`.
    fn updates(c: &Cluster) -> [u64; 4] {
        ["attempt", "success", "no_rebuild", "failure"]
            .map(|s| c.stats.store.counter(&format!("cluster.d.update_{s}")).value())
    }

    /// A resolver whose answers a test scripts: each lookup takes the next one (the last
    /// repeats). Returns the lookups made so far.
    fn scripted(
        answers: Vec<Answer>,
    ) -> (Arc<Mutex<usize>>, impl Fn(String) -> std::future::Ready<Answer> + Send + Sync + 'static) {
        let calls = Arc::new(Mutex::new(0usize));
        let counter = Arc::clone(&calls);
        let lookup = move |_host: String| {
            let mut n = counter.lock().unwrap_or_else(|e| e.into_inner());
            let answer = answers[(*n).min(answers.len() - 1)].clone();
            *n += 1;
            std::future::ready(answer)
        };
        (calls, lookup)
    }

    fn calls(c: &Arc<Mutex<usize>>) -> usize {
        *c.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[tokio::test(start_paused = true)]
    async fn re_resolution_feeds_the_membership_writer_keeping_hosts_by_address() {
        let c = strict_dns("5s");
        let (n, lookup) = scripted(vec![ips(&[1, 2]), ips(&[2, 3])]);
        spawn_loop(&c, Duration::from_secs(5), lookup).await;
        assert_eq!(addrs(&c), [spec(1).addr, spec(2).addr], "warm after the first answer");
        let kept = Arc::clone(&c.hosts.load().all[1]);
        kept.stats.rq_total.inc();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(calls(&n), 1, "not before dns_refresh_rate");
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
        let (n, lookup) = scripted(vec![ips(&[1])]);
        spawn_loop(&c, Duration::from_secs(5), lookup).await;
        drop(c);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(calls(&n), 1, "no lookup once the cluster is gone");
    }

    /// Envoy 1.40's counts: an attempt per lookup; a success, and a no_rebuild when the hosts
    /// stay; a failure keeps the hosts; a name that no longer exists is a success that empties them.
    #[tokio::test(start_paused = true)]
    async fn update_stats_count_as_envoy_counts_them() {
        let c = strict_dns("1s");
        let nxdomain = Answer::Resolved { ips: vec![], ttl: Duration::ZERO };
        let (_, lookup) = scripted(vec![ips(&[1]), ips(&[1]), ips(&[1, 2]), Answer::Failed, nxdomain]);
        spawn_loop(&c, Duration::from_secs(5), lookup).await;
        assert_eq!(updates(&c), [1, 1, 0, 0], "the first answer rebuilds");
        tokio::time::sleep(Duration::from_millis(1001)).await;
        assert_eq!(updates(&c), [2, 2, 1, 0], "the same answer: no rebuild");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(updates(&c), [3, 3, 1, 0]);
        assert_eq!(addrs(&c), [spec(1).addr, spec(2).addr]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(updates(&c), [4, 3, 1, 1], "a failure");
        assert_eq!(addrs(&c), [spec(1).addr, spec(2).addr], "keeps the hosts");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(updates(&c), [5, 4, 1, 1], "no such name: a success");
        assert!(addrs(&c).is_empty(), "that empties the hosts");
    }

    #[tokio::test(start_paused = true)]
    async fn a_logical_dns_name_resolving_to_nothing_has_failed() {
        let c = cluster("LOGICAL_DNS", "1s", "");
        let (_, lookup) = scripted(vec![ips(&[1, 2]), ips(&[])]);
        spawn_loop(&c, Duration::from_secs(5), lookup).await;
        assert_eq!(addrs(&c), [spec(1).addr], "the first address only");
        tokio::time::sleep(Duration::from_millis(1001)).await;
        assert_eq!(updates(&c), [2, 1, 0, 1]);
        assert_eq!(addrs(&c), [spec(1).addr], "kept");
    }

    #[tokio::test(start_paused = true)]
    async fn respect_dns_ttl_waits_for_the_records_ttl() {
        let c = cluster("STRICT_DNS", "1s", "  respect_dns_ttl: true\n");
        let answer = Answer::Resolved { ips: vec![IpAddr::from([127, 0, 0, 1])], ttl: Duration::from_secs(7) };
        let (n, lookup) = scripted(vec![answer]);
        spawn_loop(&c, Duration::from_secs(5), lookup).await;
        tokio::time::sleep(Duration::from_millis(6900)).await;
        assert_eq!(calls(&n), 1, "dns_refresh_rate (1s) gives way to the TTL (7s)");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(calls(&n), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn dns_failure_refresh_rate_paces_lookups_after_a_failure() {
        let extra = "  dns_failure_refresh_rate: {base_interval: 20s, max_interval: 40s}\n";
        let c = cluster("STRICT_DNS", "1s", extra);
        let (n, lookup) = scripted(vec![Answer::Failed]);
        spawn_loop(&c, Duration::from_secs(5), lookup).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let early = calls(&n);
        tokio::time::sleep(Duration::from_secs(200)).await;
        let late = calls(&n);
        // Every wait is below 40 s and at least 1 ms; at 1 s each there would be 200 more.
        assert!(late - early >= 5 && late - early < 200, "{early} then {late} lookups in 200 s");
    }
}
