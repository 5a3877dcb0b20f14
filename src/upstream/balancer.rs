//! Load balancing: Envoy's ROUND_ROBIN (weighted, as a precomputed smooth schedule), RANDOM
//! (weighted), LEAST_REQUEST (power of two choices), and the consistent hashes RING_HASH and
//! MAGLEV ([`HashTable`]: one ring or table per source of [`super::lb_state::LbState`], built
//! with it, with `hash_balance_factor`'s bounded loads in [`bounded`]). Choosing takes no lock: schedules and tables are built with the host set, and
//! the round-robin position is one atomic in the cluster.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use rand::Rng;

use super::maglev::Maglev;
use super::ring_hash::Ring;
use super::Host;
use crate::config::model::{ConsistentHashing, LbPolicy, LbTuning, SlowStart};
use bounded::Bound;

/// A consistent-hash lookup over one source's hosts (indexes into its host list), with
/// `hash_balance_factor`'s bound on their loads when set.
pub struct HashTable {
    lookup: Lookup,
    bound: Option<Bound>,
}

enum Lookup {
    Ring(Ring),
    Maglev(Maglev),
}

impl HashTable {
    /// The table `policy` wants over `hosts`, or `None` for a policy that does not hash. A
    /// host's key is its `envoy.lb` `hash_key`, else (`use_hostname_for_hashing`) its
    /// hostname, else `address:port`, as Envoy's `hashKey` has it.
    pub fn build(policy: &LbPolicy, hashing: &ConsistentHashing, hosts: &[Arc<Host>]) -> Option<HashTable> {
        let keys: Vec<String> = hosts.iter().map(|h| hash_key(h, hashing.use_hostname)).collect();
        let keyed: Vec<(&str, u32)> = keys.iter().zip(hosts).map(|(k, h)| (k.as_str(), h.weight.max(1))).collect();
        let lookup = match *policy {
            LbPolicy::RingHash { minimum_ring_size, maximum_ring_size } => {
                Lookup::Ring(Ring::new(&keyed, minimum_ring_size, maximum_ring_size))
            }
            LbPolicy::Maglev { table_size } => Lookup::Maglev(Maglev::new(&keyed, table_size)),
            LbPolicy::RoundRobin | LbPolicy::LeastRequest | LbPolicy::Random => return None,
        };
        Some(HashTable { lookup, bound: Bound::new(hashing.balance_factor, hosts) })
    }

    /// The index of the host `hash` maps to (without bounded loads).
    #[inline]
    pub fn pick(&self, hash: u64) -> Option<usize> {
        self.pick_again(hash, 0)
    }

    /// The pick of host selection attempt `attempt` (`retry_host_predicate` reattempts),
    /// without bounded loads.
    #[inline]
    pub fn pick_again(&self, hash: u64, attempt: u32) -> Option<usize> {
        match &self.lookup {
            Lookup::Ring(r) => r.pick_again(hash, attempt),
            Lookup::Maglev(m) => m.pick_again(hash, attempt),
        }
    }

    /// [`HashTable::pick_again`] over `hosts` (those the table was built from), handed on to
    /// a less loaded host when `hash_balance_factor` is set and the picked one is over its
    /// bound; `cluster_active` is the cluster's `upstream_rq_active`.
    #[inline]
    pub fn choose(&self, hash: u64, attempt: u32, hosts: &[Arc<Host>], cluster_active: i64) -> Option<usize> {
        let first = self.pick_again(hash, attempt)?;
        match &self.bound {
            None => Some(first),
            Some(b) => Some(b.choose(first, hash, hosts, cluster_active)),
        }
    }
}

/// A host's key on a hashing table (see [`HashTable::build`]). A STRICT_DNS endpoint given as
/// an IP literal is named by that IP in Envoy (its "DNS name"), as here.
fn hash_key(h: &Host, use_hostname: bool) -> String {
    match (&h.hash_key, &h.hostname) {
        (Some(k), _) => k.clone(),
        (None, Some(name)) if use_hostname => name.clone(),
        (None, None) if use_hostname => h.addr.ip().to_string(),
        _ => h.addr.to_string(),
    }
}

/// Host indexes in round-robin order, each host as often as its weight (scaled down to at most
/// `MAX_SLOTS` entries), interleaved by smooth weighted round robin. With `slow_start_config`
/// the weights are those of the moment it was built (the cluster rebuilds it while a host
/// is in slow start).
pub struct Schedule {
    slots: Vec<u32>,
    /// Cumulative weights for weighted random choice.
    cumulative: Vec<u64>,
    /// Each host's weight, for LEAST_REQUEST's load-adjusted choice (empty when equal).
    weights: Vec<f64>,
    equal_weights: bool,
    /// Some host's weight is scaled down by slow start.
    pub slow_starting: bool,
}

const MAX_SLOTS: u64 = 4096;

/// Weights are kept in thousandths of an endpoint weight, so that slow start's fractions
/// survive in integers.
const WEIGHT_UNIT: f64 = 1000.0;

impl Schedule {
    pub fn new(hosts: &[Arc<Host>], slow: Option<&SlowStart>) -> Self {
        let mut slow_starting = false;
        let weights: Vec<u64> = hosts
            .iter()
            .map(|h| {
                let w = f64::from(h.weight.max(1)) * WEIGHT_UNIT;
                let factor = slow.and_then(|s| s.factor(h.health.slow_start.elapsed()));
                slow_starting |= factor.is_some();
                (w * factor.unwrap_or(1.0)).round().max(1.0) as u64
            })
            .collect();
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
        let weights = if equal_weights { Vec::new() } else { weights.iter().map(|&w| w as f64).collect() };
        Schedule { slots, cumulative, weights, equal_weights, slow_starting }
    }
}

pub struct Balancer {
    policy: LbPolicy,
    choice_count: u32,
    /// `active_request_bias` as an `f64`'s bits: the configured value, or the runtime's as of
    /// the cluster's last host-set refresh (Envoy caches it there too).
    bias: AtomicU64,
    next: AtomicUsize,
}

impl Balancer {
    pub fn new(policy: LbPolicy, tuning: &LbTuning) -> Self {
        // Envoy starts round robin at a random position so that proxies do not move in step.
        let start = rand::thread_rng().gen_range(0..1024);
        Balancer {
            policy,
            choice_count: tuning.choice_count,
            bias: AtomicU64::new(tuning.active_request_bias.to_bits()),
            next: AtomicUsize::new(start),
        }
    }

    /// The `active_request_bias` picks use from now on.
    pub fn set_active_request_bias(&self, bias: f64) {
        self.bias.store(bias.to_bits(), Ordering::Relaxed);
    }

    pub fn active_request_bias(&self) -> f64 {
        f64::from_bits(self.bias.load(Ordering::Relaxed))
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
                    LbPolicy::LeastRequest if schedule.equal_weights => self.fewest_of_sample(hosts),
                    LbPolicy::LeastRequest => self.load_weighted(hosts, schedule),
                };
                hosts.get(i)
            }
        }
    }

    /// Equal weights: the host with the fewest active requests of `choice_count` drawn at
    /// random (the first drawn on a tie), as Envoy's.
    fn fewest_of_sample(&self, hosts: &[Arc<Host>]) -> usize {
        let mut rng = rand::thread_rng();
        let mut best = rng.gen_range(0..hosts.len());
        let mut best_active = hosts[best].stats.rq_active.value();
        for _ in 1..self.choice_count {
            let i = rng.gen_range(0..hosts.len());
            let active = hosts[i].stats.rq_active.value();
            if active < best_active {
                (best, best_active) = (i, active);
            }
        }
        best
    }

    /// Unequal weights (or slow start): each host weighs `weight / (active + 1) ^ bias`
    /// (Envoy's `active_request_bias`) at the moment of the pick, and one is drawn by those
    /// weights in a single pass (a reservoir of one), without allocating.
    fn load_weighted(&self, hosts: &[Arc<Host>], schedule: &Schedule) -> usize {
        let bias = self.active_request_bias();
        if bias == 0.0 {
            return weighted_random(schedule);
        }
        let mut rng = rand::thread_rng();
        let (mut chosen, mut total) = (0, 0.0);
        for (i, (h, w)) in hosts.iter().zip(&schedule.weights).enumerate() {
            let load = (h.stats.rq_active.value().max(0) + 1) as f64;
            let w = if bias == 1.0 { w / load } else { w / load.powf(bias) };
            total += w;
            if rng.gen::<f64>() * total < w {
                chosen = i;
            }
        }
        chosen
    }
}

fn weighted_random(s: &Schedule) -> usize {
    let total = s.cumulative.last().copied().unwrap_or(1);
    let r = rand::thread_rng().gen_range(0..total);
    s.cumulative.partition_point(|&c| c <= r)
}

#[path = "balancer_bounded.rs"]
mod bounded;

#[cfg(test)]
#[path = "balancer_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "balancer_hash_tests.rs"]
mod hash_tests;
