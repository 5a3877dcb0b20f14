//! RING_HASH (Ketama-style consistent hashing) built exactly as Envoy 1.40 builds it, so that a
//! key pinned to a host by Envoy is pinned to the same host by legate. Each host's entries are
//! the xxHash64 (seed 0) of `"<key>_<i>"` (the key is the host's `address:port`), as many as
//! its share of a ring scaled so that the lightest host gets a whole number of entries and the
//! ring has at least `minimum_ring_size` (1024) and at most `maximum_ring_size` (8M) entries. A
//! request's hash takes the first entry at or after it, wrapping around to the first.
//!
//! Built off the request path, with the host list it serves ([`super::balancer::HashTable`]).

use super::xxh64::xxh64;

/// Envoy's `minimum_ring_size` default.
pub const DEFAULT_MIN_RING: u64 = 1024;
/// Envoy's `maximum_ring_size` default and the largest either may be (8M).
pub const MAX_RING: u64 = 8 * 1024 * 1024;

pub struct Ring {
    /// (hash, index of the host in the list the ring was built from), sorted by hash.
    entries: Vec<(u64, u32)>,
}

impl Ring {
    /// `hosts`: each host's key and weight, in the host set's order (the order decides how
    /// fractional shares round, as in Envoy).
    pub fn new(hosts: &[(&str, u32)], min_ring: u64, max_ring: u64) -> Ring {
        let weights = normalized(hosts.iter().map(|h| h.1));
        if weights.is_empty() {
            return Ring { entries: Vec::new() };
        }
        let min_weight = weights.iter().copied().fold(1.0, f64::min);
        let scale = ((min_weight * min_ring as f64).ceil() / min_weight).min(max_ring as f64);
        let mut entries = Vec::with_capacity(scale.ceil() as usize);
        let (mut current, mut target) = (0.0f64, 0.0f64);
        let mut key = String::new();
        for (i, ((name, _), weight)) in hosts.iter().zip(&weights).enumerate() {
            key.clear();
            key.push_str(name);
            key.push('_');
            let base = key.len();
            target += scale * weight;
            let mut n = 0u64;
            while current < target {
                key.truncate(base);
                push_decimal(&mut key, n);
                entries.push((xxh64(key.as_bytes(), 0), i as u32));
                n += 1;
                current += 1.0;
            }
        }
        entries.sort_by_key(|e| e.0);
        Ring { entries }
    }

    /// The index of the host `hash` maps to: the first entry at or after it, else the first.
    pub fn pick(&self, hash: u64) -> Option<usize> {
        self.pick_again(hash, 0)
    }

    /// The pick of host selection attempt `attempt` (0 first): as in Envoy, a reattempt (the
    /// retry host predicate refused the host) steps `attempt` entries along the ring.
    pub fn pick_again(&self, hash: u64, attempt: u32) -> Option<usize> {
        let n = self.entries.len();
        if n == 0 {
            return None;
        }
        let i = self.entries.partition_point(|e| e.0 < hash) % n;
        self.entries.get((i + attempt as usize) % n).map(|e| e.1 as usize)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Envoy's normalized host weights: each weight over their sum, as doubles (the same
/// operations, so the same rounding).
pub fn normalized(weights: impl Iterator<Item = u32> + Clone) -> Vec<f64> {
    let sum: u64 = weights.clone().map(u64::from).sum();
    if sum == 0 {
        return Vec::new();
    }
    weights.map(|w| f64::from(w) / sum as f64).collect()
}

fn push_decimal(s: &mut String, n: u64) {
    use std::fmt::Write;
    let _ = write!(s, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(list: &[&str]) -> Vec<(String, u32)> {
        list.iter().map(|p| (format!("127.0.0.1:{p}"), 1)).collect()
    }

    fn ring(hosts: &[(String, u32)], min: u64, max: u64) -> Ring {
        let refs: Vec<(&str, u32)> = hosts.iter().map(|(k, w)| (k.as_str(), *w)).collect();
        Ring::new(&refs, min, max)
    }

    /// Envoy's `RingHashLoadBalancerTest.Basic`: its ring, entry by entry, and its lookups.
    #[test]
    fn envoys_basic_ring() {
        let hosts = ports(&["90", "91", "92", "93", "94", "95"]);
        let r = ring(&hosts, 12, MAX_RING);
        let expected: [(u64, u32); 12] = [
            (833437586790550860, 4),
            (928266305478181108, 2),
            (1033482794131418490, 0),
            (3551244743356806947, 5),
            (3851675632748031481, 3),
            (5583722120771150861, 1),
            (6311230543546372928, 1),
            (7700377290971790572, 3),
            (13144177310400110813, 5),
            (13444792449719432967, 2),
            (15516499411664133160, 4),
            (16117243373044804889, 0),
        ];
        assert_eq!(r.entries, expected);
        assert_eq!(r.pick(0), Some(4));
        assert_eq!(r.pick(u64::MAX), Some(4), "past the last entry wraps to the first");
        assert_eq!(r.pick(3551244743356806947), Some(5), "an entry's own hash is its host");
        assert_eq!(r.pick(3551244743356806948), Some(3));
        assert_eq!(r.pick(16117243373044804880), Some(0));
    }

    /// Envoy's `BasicWithHostname`: the same ring with the hosts' names as keys.
    #[test]
    fn envoys_ring_by_hostname() {
        let hosts: Vec<(String, u32)> = (90..96).map(|p| (p.to_string(), 1)).collect();
        let r = ring(&hosts, 12, MAX_RING);
        assert_eq!(r.entries.first(), Some(&(1975508444536362413, 5)));
        assert_eq!(r.entries.last(), Some(&(15364271037087512980, 4)));
        assert_eq!(r.pick(7225015537174310577), Some(2));
        assert_eq!(r.pick(6803900775736438537), Some(3));
    }

    #[test]
    fn sizes_follow_the_lightest_host_and_the_bounds() {
        let hosts = ports(&["1", "2", "3"]);
        // 1/3 of 1024 is 341.33: each host gets 342 entries.
        assert_eq!(ring(&hosts, DEFAULT_MIN_RING, MAX_RING).len(), 1026);
        assert_eq!(ring(&hosts, DEFAULT_MIN_RING, 100).len(), 100);
        let weighted = vec![("127.0.0.1:1".to_string(), 1), ("127.0.0.1:2".to_string(), 3)];
        // The lightest host (1/4) gets ceil(8 / 4) = 2 entries, the other three times as many.
        let r = ring(&weighted, 8, MAX_RING);
        assert_eq!(r.len(), 8);
        assert_eq!(r.entries.iter().filter(|e| e.1 == 1).count(), 6);
        assert!(ring(&[], 1024, MAX_RING).pick(7).is_none());
    }

    /// Removing a host moves all of its keys; a key of a host that stayed moves only when it
    /// now lands on one of the entries the ring's re-scaling gave another host (the hosts'
    /// old entries all stay where they were), as in Envoy.
    #[test]
    fn removing_a_host_moves_its_keys_and_few_others() {
        let all = ports(&["1", "2", "3", "4"]);
        let before = ring(&all, DEFAULT_MIN_RING, MAX_RING);
        let without: Vec<(String, u32)> = all.iter().filter(|h| h.0 != "127.0.0.1:3").cloned().collect();
        let after = ring(&without, DEFAULT_MIN_RING, MAX_RING);
        let old: std::collections::HashSet<u64> = before.entries.iter().map(|e| e.0).collect();
        let (mut gone, mut moved, mut stayed) = (0, 0, 0);
        for k in 0..2000u32 {
            let h = xxh64(format!("user-{k}").as_bytes(), 0);
            let a = &all[before.pick(h).unwrap_or(usize::MAX)].0;
            let b = &without[after.pick(h).unwrap_or(usize::MAX)].0;
            if a == "127.0.0.1:3" {
                gone += 1;
            } else if a == b {
                stayed += 1;
            } else {
                let i = after.entries.partition_point(|e| e.0 < h) % after.len();
                assert!(!old.contains(&after.entries[i].0), "key {k} moved to an entry that was there before");
                moved += 1;
            }
        }
        assert!(gone > 300, "the removed host had its share of keys ({gone})");
        assert!(stayed > 4 * moved, "most keys of the other hosts stay ({stayed} stayed, {moved} moved)");
    }
}
