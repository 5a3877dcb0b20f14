//! One writer per cluster's membership.
//!
//! A cluster's host set has one writer: its membership task, which takes the hosts every
//! discovery gives (EDS assignments through the reloader's commit, STRICT/LOGICAL DNS answers
//! from the resolution loop, later health status) and replaces the set. Nothing else changes
//! the hosts of a live cluster; a staged cluster's build sets its first hosts before anyone
//! can see it.
//!
//! Hosts are carried over by identity, their address, as pingora's load balancer keys its
//! backends: a host that stays keeps its connection pool, its counters (outstanding requests
//! for least-request, `/clusters` figures) even when its weight, priority or hostname
//! changed; only hosts whose address left lose their idle connections.
//!
//! The task is spawned on the first update (a STATIC cluster never needs one), holds only a
//! `Weak` to its cluster and ends with it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};

use tokio::sync::{mpsc, oneshot};

use super::connect::Connector;
use super::{Cluster, Host, HostSet, HostSpec, HostStats, Pool};
use crate::stats::{Counter, Gauge};

/// What a discovery says the cluster's hosts are.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An EDS assignment (a file or a REST poller), applied at the reloader's commit.
    Eds(Vec<HostSpec>),
    /// What the DNS endpoints resolved to, with the config's literal addresses.
    Dns(Vec<HostSpec>),
}

struct Command {
    input: Input,
    applied: oneshot::Sender<()>,
}

/// The sending end of a cluster's membership task.
pub struct Writer {
    tx: mpsc::Sender<Command>,
}

/// Updates a writer holds before senders wait: every sender waits for its own.
const QUEUE: usize = 16;

impl Writer {
    fn spawn(cluster: Weak<Cluster>) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(cluster, rx));
        Writer { tx }
    }
}

async fn run(cluster: Weak<Cluster>, mut rx: mpsc::Receiver<Command>) {
    // Ends when the cluster (which holds the writer) is gone.
    while let Some(cmd) = rx.recv().await {
        let Some(c) = cluster.upgrade() else { return };
        match cmd.input {
            Input::Eds(specs) | Input::Dns(specs) => c.set_hosts(specs),
        }
        drop(c);
        let _ = cmd.applied.send(());
    }
}

impl Cluster {
    /// Hands `input` to the cluster's membership task and waits until it is applied.
    pub async fn update_membership(self: &Arc<Self>, input: Input) {
        let writer = self.membership.get_or_init(|| Writer::spawn(Arc::downgrade(self)));
        let (applied, done) = oneshot::channel();
        if writer.tx.send(Command { input, applied }).await.is_ok() {
            let _ = done.await;
        }
    }

    /// The membership writer's step (and a staged cluster's first hosts, before anyone sees
    /// it): replaces the host set, carrying hosts over by address. On a live cluster the idle
    /// connections of the hosts that left are closed and the membership stats move.
    pub fn set_hosts(&self, specs: Vec<HostSpec>) {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((next, left)) = self.next_hosts(specs) else { return };
        self.hosts.store(Arc::new(next));
        self.generation.fetch_add(1, Ordering::Release);
        if *live {
            for h in left {
                h.pool.close_idle();
            }
            self.publish_membership(true);
            self.health.membership_changed();
        } else {
            self.stage_lb();
        }
    }

    /// The host set `specs` make, with the hosts that leave; `None` when nothing changes.
    ///
    /// Linear, and cheap when little changed (a 10,000-endpoint EDS update with one endpoint
    /// changed): hosts at the same place from the start and from the end are matched by
    /// position, only the ones between are looked up by address (first host of an address
    /// wins). A host found by address whose weight, priority or hostname changed becomes a new
    /// `Host` with the same pool and counters.
    fn next_hosts(&self, specs: Vec<HostSpec>) -> Option<(HostSet, Vec<Arc<Host>>)> {
        let current = self.hosts.load();
        let cur = &current.all;
        let (n, m) = (cur.len(), specs.len());
        let (head, tail) = crate::common_ends::common_ends(n, m, |i, j| same(&cur[i], &specs[j]));
        if head == n && n == m {
            return None;
        }
        let middle = &cur[head..n - tail];
        let mut by_addr: HashMap<SocketAddr, usize> = HashMap::with_capacity(middle.len());
        for (j, h) in middle.iter().enumerate() {
            by_addr.entry(h.addr).or_insert(j);
        }
        let mut kept = vec![false; middle.len()];
        let mut next = Vec::with_capacity(m);
        for (i, spec) in specs.into_iter().enumerate() {
            let host = if i < head {
                Arc::clone(&cur[i])
            } else if i >= m - tail {
                Arc::clone(&cur[n - (m - i)])
            } else {
                match by_addr.get(&spec.addr) {
                    Some(&j) => {
                        kept[j] = true;
                        let old = &middle[j];
                        if same(old, &spec) {
                            Arc::clone(old)
                        } else {
                            Arc::new(carried_over(old, spec))
                        }
                    }
                    None => self.new_host(spec),
                }
            };
            next.push(host);
        }
        let left = middle.iter().zip(kept).filter(|(_, k)| !k).map(|(h, _)| Arc::clone(h)).collect();
        Some((HostSet::new(next), left))
    }

    fn new_host(&self, spec: HostSpec) -> Arc<Host> {
        let stats = HostStats::default();
        let mut conn = self.stats.conn.clone();
        conn.host_cx_total = Counter::default();
        conn.host_cx_active = Gauge::default();
        conn.host_cx_connect_fail = Counter::default();
        let host_conn = (conn.host_cx_total.clone(), conn.host_cx_active.clone(), conn.host_cx_connect_fail.clone());
        let pool = Arc::new(
            Pool::new(
                spec.addr,
                self.config.protocol,
                self.config.http2,
                self.config.per_connection_buffer_limit_bytes,
                self.config.connect_timeout,
                self.config.idle_timeout,
                conn,
                Arc::clone(&self.breakers),
            )
            .with_connector(match &self.tls {
                Some(tls) => Connector::Tls(Arc::clone(tls)),
                None => Connector::Tcp,
            })
            .with_auto_protocol(self.config.auto_config)
            .with_proper_case(self.config.h1_proper_case),
        );
        let checked = !self.config.health_checks.is_empty() && !spec.hc.disabled;
        let health = self.health.host(spec.addr, spec.health, checked);
        Arc::new(Host {
            addr: spec.addr,
            conn: host_conn,
            hostname: spec.hostname,
            weight: spec.weight.max(1),
            priority: spec.priority,
            pool,
            stats,
            eds: spec.health,
            health,
            hc: spec.hc,
            locality: spec.locality,
            locality_weight: spec.locality_weight,
            hash_key: spec.hash_key,
        })
    }
}

fn same(h: &Host, s: &HostSpec) -> bool {
    h.addr == s.addr
        && h.weight == s.weight.max(1)
        && h.priority == s.priority
        && h.hostname == s.hostname
        && h.eds == s.health
        && h.hc == s.hc
        && h.locality == s.locality
        && h.locality_weight == s.locality_weight
        && h.hash_key == s.hash_key
}

/// `old`'s state (pool, connections, counters) under `spec`'s attributes.
pub(crate) fn carried_over(old: &Host, spec: HostSpec) -> Host {
    old.health.set_eds(spec.health);
    Host {
        addr: old.addr,
        conn: old.conn.clone(),
        hostname: spec.hostname,
        weight: spec.weight.max(1),
        priority: spec.priority,
        pool: Arc::clone(&old.pool),
        stats: old.stats.clone(),
        eds: spec.health,
        health: Arc::clone(&old.health),
        hc: spec.hc,
        locality: spec.locality,
        locality_weight: spec.locality_weight,
        hash_key: spec.hash_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Store;

    fn cluster() -> Arc<Cluster> {
        let cds = b"resources:\n- {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c}\n";
        let cfg = crate::config::parse_clusters(std::path::Path::new("cds.yaml"), cds)
            .unwrap_or_else(|e| panic!("{e}"))
            .resources
            .remove(0);
        Cluster::build(cfg, &Store::new())
    }

    fn spec(port: u16, weight: u32) -> HostSpec {
        HostSpec {
            addr: ([127, 0, 0, 1], port).into(),
            hostname: None,
            weight,
            priority: 0,
            health: Default::default(),
            hc: Default::default(),
            locality: Default::default(),
            locality_weight: 1,
            hash_key: None,
        }
    }

    #[tokio::test]
    async fn a_host_keeps_its_pool_and_counters_when_its_weight_changes() {
        let c = cluster();
        c.update_membership(Input::Eds(vec![spec(1, 1), spec(2, 1), spec(3, 1)])).await;
        let before = Arc::clone(&c.hosts.load().all[1]);
        before.stats.rq_active.inc();
        c.update_membership(Input::Eds(vec![spec(1, 1), spec(2, 5), spec(4, 1)])).await;
        let set = c.hosts.load();
        let after = &set.all[1];
        assert_eq!(after.weight, 5, "the new weight applies");
        assert!(!Arc::ptr_eq(after, &before), "a new host for the new attributes");
        assert!(Arc::ptr_eq(&after.pool, &before.pool), "with the same pool");
        assert_eq!(after.stats.rq_active.value(), 1, "and the same outstanding requests");
        let ports: Vec<u16> = set.all.iter().map(|h| h.addr.port()).collect();
        assert_eq!(ports, [1, 2, 4]);
    }

    #[tokio::test]
    async fn the_writer_ends_with_its_cluster() {
        let c = cluster();
        c.update_membership(Input::Eds(vec![spec(1, 1)])).await;
        let weak = Arc::downgrade(&c);
        drop(c);
        assert!(weak.upgrade().is_none(), "the task holds no strong reference");
    }
}
