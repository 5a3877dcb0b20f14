//! Load balancing: Envoy's ROUND_ROBIN (weighted, as a precomputed smooth schedule), RANDOM
//! (weighted), LEAST_REQUEST (power of two choices), and the consistent hashes RING_HASH and
//! MAGLEV ([`HashTable`]: one ring or table per source of [`super::lb_state::LbState`], built
//! with it). Choosing takes no lock: schedules and tables are built with the host set, and
//! the round-robin position is one atomic in the cluster.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rand::Rng;

use super::maglev::Maglev;
use super::ring_hash::Ring;
use super::Host;
use crate::config::model::LbPolicy;

/// A consistent-hash lookup over one source's hosts (indexes into its host list).
pub enum HashTable {
    Ring(Ring),
    Maglev(Maglev),
}

impl HashTable {
    /// The table `policy` wants over `hosts` (keyed by their `envoy.lb` `hash_key`, else
    /// `address:port`, as Envoy keys them), or `None` for a policy that does not hash.
    pub fn build(policy: &LbPolicy, hosts: &[Arc<Host>]) -> Option<HashTable> {
        let keys: Vec<String> =
            hosts.iter().map(|h| h.hash_key.clone().unwrap_or_else(|| h.addr.to_string())).collect();
        let keyed: Vec<(&str, u32)> = keys.iter().zip(hosts).map(|(k, h)| (k.as_str(), h.weight.max(1))).collect();
        match *policy {
            LbPolicy::RingHash { minimum_ring_size, maximum_ring_size } => {
                Some(HashTable::Ring(Ring::new(&keyed, minimum_ring_size, maximum_ring_size)))
            }
            LbPolicy::Maglev { table_size } => Some(HashTable::Maglev(Maglev::new(&keyed, table_size))),
            LbPolicy::RoundRobin | LbPolicy::LeastRequest | LbPolicy::Random => None,
        }
    }

    /// The index of the host `hash` maps to.
    #[inline]
    pub fn pick(&self, hash: u64) -> Option<usize> {
        self.pick_again(hash, 0)
    }

    /// The pick of host selection attempt `attempt` (`retry_host_predicate` reattempts).
    #[inline]
    pub fn pick_again(&self, hash: u64, attempt: u32) -> Option<usize> {
        match self {
            HashTable::Ring(r) => r.pick_again(hash, attempt),
            HashTable::Maglev(m) => m.pick_again(hash, attempt),
        }
    }
}

/// Host indexes in round-robin order, each host as often as its weight (scaled down to at most
/// `MAX_SLOTS` entries), interleaved by smooth weighted round robin.
pub struct Schedule {
    slots: Vec<u32>,
    /// Cumulative weights for weighted random choice.
    cumulative: Vec<u64>,
    equal_weights: bool,
}

const MAX_SLOTS: u64 = 4096;

impl Schedule {
    pub fn new(hosts: &[Arc<Host>]) -> Self {
        let weights: Vec<u64> = hosts.iter().map(|h| u64::from(h.weight.max(1))).collect();
        let equal_weights = weights.windows(2).all(|w| w[0] == w[1]);
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut sum = 0;
        for w in &weights {
            sum += w;
            cumulative.push(sum);
        }
        let slots = if equal_weights {
            Vec::new()
        } else {
            let scale = sum.div_ceil(MAX_SLOTS).max(1);
            let scaled: Vec<i64> = weights.iter().map(|w| (w / scale).max(1) as i64).collect();
            let total: i64 = scaled.iter().sum();
            let mut current = vec![0i64; scaled.len()];
            let mut slots = Vec::with_capacity(total as usize);
            for _ in 0..total {
                let mut best = 0;
                for i in 0..scaled.len() {
                    current[i] += scaled[i];
                    if current[i] > current[best] {
                        best = i;
                    }
                }
                current[best] -= total;
                slots.push(best as u32);
            }
            slots
        };
        Schedule { slots, cumulative, equal_weights }
    }
}

pub struct Balancer {
    policy: LbPolicy,
    next: AtomicUsize,
}

impl Balancer {
    pub fn new(policy: LbPolicy) -> Self {
        // Envoy starts round robin at a random position so that proxies do not move in step.
        let start = rand::thread_rng().gen_range(0..1024);
        Balancer { policy, next: AtomicUsize::new(start) }
    }

    /// One of `hosts` (a source of [`super::lb_state::LbState`]), `schedule` built from them.
    pub fn choose<'a>(&self, hosts: &'a [Arc<Host>], schedule: &Schedule) -> Option<&'a Arc<Host>> {
        match hosts.len() {
            0 => None,
            1 => hosts.first(),
            n => {
                let i = match self.policy {
                    LbPolicy::RoundRobin => {
                        let k = self.next.fetch_add(1, Ordering::Relaxed);
                        if schedule.equal_weights {
                            k % n
                        } else {
                            schedule.slots[k % schedule.slots.len()] as usize
                        }
                    }
                    // Reached only without a table (see `Cluster::choose_for`): random, as
                    // Envoy's hashing balancers are for a request without a key.
                    LbPolicy::Random | LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. } => weighted_random(schedule),
                    LbPolicy::LeastRequest => {
                        let mut rng = rand::thread_rng();
                        let a = rng.gen_range(0..n);
                        let b = rng.gen_range(0..n);
                        let ra = hosts[a].stats.rq_active.value() as f64 / f64::from(hosts[a].weight);
                        let rb = hosts[b].stats.rq_active.value() as f64 / f64::from(hosts[b].weight);
                        if rb < ra {
                            b
                        } else {
                            a
                        }
                    }
                };
                hosts.get(i)
            }
        }
    }
}

fn weighted_random(s: &Schedule) -> usize {
    let total = s.cumulative.last().copied().unwrap_or(1);
    let r = rand::thread_rng().gen_range(0..total);
    s.cumulative.partition_point(|&c| c <= r)
}
