//! MAGLEV consistent hashing built exactly as Envoy 1.40 builds it (Google's Maglev paper,
//! pseudocode listing 1, with Envoy's weighting): hosts sorted by key (`address:port`), each
//! with an offset (xxHash64 seed 0 of the key, modulo the table size) and a skip (seed 1,
//! modulo size - 1, plus 1), take turns filling the next free slot of their permutation; a
//! host of weight w takes a turn on the iterations where `iteration * w` reaches its running
//! target. A request's hash picks slot `hash % table_size`.
//!
//! `table_size` must be prime (65537 by default); the table is built off the request path.

use super::ring_hash::normalized;
use super::xxh64::xxh64;

/// Envoy's default `maglev_lb_config.table_size` (the paper's recommendation).
pub const DEFAULT_TABLE_SIZE: u64 = 65537;
/// The largest `table_size` Envoy accepts.
pub const MAX_TABLE_SIZE: u64 = 5_000_011;

pub struct Maglev {
    /// Index of each slot's host in the list the table was built from.
    slots: Vec<u32>,
}

struct Entry {
    host: u32,
    offset: u64,
    skip: u64,
    weight: f64,
    target: f64,
    next: u64,
}

impl Maglev {
    /// `hosts`: each host's key and weight, in the host set's order; `size` is prime.
    pub fn new(hosts: &[(&str, u32)], size: u64) -> Maglev {
        let weights = normalized(hosts.iter().map(|h| h.1));
        if weights.is_empty() || size < 2 {
            return Maglev { slots: Vec::new() };
        }
        let max_weight = weights.iter().copied().fold(0.0, f64::max);
        let mut sorted: Vec<(&str, u32, f64)> =
            hosts.iter().zip(&weights).enumerate().map(|(i, (h, w))| (h.0, i as u32, *w)).collect();
        // Envoy sorts (key, host, weight) tuples; equal keys are one host listed twice.
        sorted.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
        let mut entries: Vec<Entry> = sorted
            .iter()
            .map(|&(key, host, weight)| Entry {
                host,
                offset: xxh64(key.as_bytes(), 0) % size,
                skip: xxh64(key.as_bytes(), 1) % (size - 1) + 1,
                weight,
                target: 0.0,
                next: 0,
            })
            .collect();
        const EMPTY: u32 = u32::MAX;
        let mut slots = vec![EMPTY; size as usize];
        let mut filled = 0u64;
        let mut iteration = 1u32;
        while filled < size {
            for e in entries.iter_mut() {
                if filled >= size {
                    break;
                }
                if f64::from(iteration) * e.weight < e.target {
                    continue;
                }
                e.target += max_weight;
                // A free slot exists (filled < size) and skip is coprime with the prime size,
                // so the permutation reaches it within `size` steps.
                let mut c = permutation(e, size);
                while slots[c as usize] != EMPTY {
                    e.next += 1;
                    c = permutation(e, size);
                }
                slots[c as usize] = e.host;
                e.next += 1;
                filled += 1;
            }
            iteration = iteration.wrapping_add(1);
        }
        Maglev { slots }
    }

    /// The index of the host `hash` maps to.
    pub fn pick(&self, hash: u64) -> Option<usize> {
        self.pick_again(hash, 0)
    }

    /// The pick of host selection attempt `attempt` (0 first): as in Envoy, a reattempt flips
    /// most bits of the hash (`hash ^ (2^64 - attempt)`) for a far-away slot.
    pub fn pick_again(&self, hash: u64, attempt: u32) -> Option<usize> {
        let hash = if attempt > 0 { hash ^ u64::from(attempt).wrapping_neg() } else { hash };
        let n = self.slots.len() as u64;
        if n == 0 {
            return None;
        }
        self.slots.get((hash % n) as usize).map(|&i| i as usize)
    }
}

fn permutation(e: &Entry, size: u64) -> u64 {
    e.offset.wrapping_add(e.skip.wrapping_mul(e.next)) % size
}

/// Envoy's check on `table_size`.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(hosts: &[(&str, u32)], size: u64) -> Vec<usize> {
        let m = Maglev::new(hosts, size);
        (0..size).filter_map(|h| m.pick(h)).collect()
    }

    /// Envoy's `MaglevLoadBalancerTest.Basic`: six hosts in a table of 7.
    #[test]
    fn envoys_basic_table() {
        let keys: Vec<String> = (90..96).map(|p| format!("127.0.0.1:{p}")).collect();
        let hosts: Vec<(&str, u32)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
        assert_eq!(table(&hosts, 7), [2, 4, 0, 1, 5, 0, 3]);
        assert_eq!(Maglev::new(&hosts, 7).pick(7 + 4), Some(5), "the hash modulo the table size");
    }

    /// Envoy's `MaglevLoadBalancerTest.Weighted`: weights 1 and 2 in a table of 17.
    #[test]
    fn envoys_weighted_table() {
        let hosts = [("127.0.0.1:90", 1), ("127.0.0.1:91", 2)];
        assert_eq!(table(&hosts, 17), [1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn default_table_is_shared_evenly_and_empty_without_hosts() {
        let keys: Vec<String> = (1..4).map(|p| format!("127.0.0.1:{p}")).collect();
        let hosts: Vec<(&str, u32)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
        let t = table(&hosts, DEFAULT_TABLE_SIZE);
        for i in 0..3 {
            let n = t.iter().filter(|&&h| h == i).count();
            assert!((21845..=21846).contains(&n), "host {i} has {n} slots");
        }
        assert!(Maglev::new(&[], 7).pick(1).is_none());
    }

    #[test]
    fn primes() {
        assert!(is_prime(65537) && is_prime(7) && is_prime(5_000_011) && is_prime(2));
        assert!(!is_prime(65536) && !is_prime(1) && !is_prime(0) && !is_prime(9));
    }
}
