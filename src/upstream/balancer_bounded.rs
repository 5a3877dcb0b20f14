//! RING_HASH and MAGLEV with bounded loads (`consistent_hashing_lb_config.hash_balance_factor`),
//! as Envoy 1.40's `BoundedLoadHashingLoadBalancer` (consistent hashing with bounded loads,
//! arXiv 1608.01350): a host may serve `factor / 100` times its weighted share of the cluster's
//! active requests (plus one); a request whose table pick is over that goes to another host of
//! the table, tried in an order shuffled by a Mersenne Twister seeded with the request's hash
//! (so a key always overflows to the same host while loads stay the same), the first host
//! under its bound, else the least overloaded.
//!
//! Reads only the hosts' `rq_active` and the cluster's `upstream_rq_active` gauges: no lock.
//! The shuffle's index list is allocated only when the pick is over its bound.

use std::sync::Arc;

use super::super::ring_hash::normalized;
use super::super::Host;

/// The bound of one table (its hosts' weights, in the table's host order).
pub struct Bound {
    factor: u64,
    /// Each host's weight over the table's total weight.
    weights: Vec<f64>,
}

impl Bound {
    /// `None` when `factor` is 0 (unset: no bound).
    pub fn new(factor: u32, hosts: &[Arc<Host>]) -> Option<Bound> {
        if factor == 0 {
            return None;
        }
        let weights = normalized(hosts.iter().map(|h| h.weight.max(1)));
        Some(Bound { factor: u64::from(factor), weights })
    }

    /// Envoy's overload factor of host `i`: its active requests over its slots, where the
    /// table's slots are `ceil((cluster_active + 1) * factor / 100)` shared by weight (at
    /// least one each). Over 1.0 is over the bound.
    fn overload(&self, i: usize, hosts: &[Arc<Host>], cluster_active: u64) -> f64 {
        let (Some(h), Some(&w)) = (hosts.get(i), self.weights.get(i)) else {
            return f64::INFINITY;
        };
        let total_slots = ((cluster_active + 1) * self.factor).div_ceil(100);
        let slots = ((total_slots as f64 * w).ceil() as u64).max(1);
        h.stats.rq_active.value().max(0) as f64 / slots as f64
    }

    /// The host to use for `hash`, whose table pick is host `first` of `hosts`.
    pub fn choose(&self, first: usize, hash: u64, hosts: &[Arc<Host>], cluster_active: i64) -> usize {
        let active = cluster_active.max(0) as u64;
        let mut least = (first, self.overload(first, hosts, active));
        if least.1 <= 1.0 {
            return first;
        }
        let n = self.weights.len().min(hosts.len());
        let mut order: Vec<u32> = (0..n as u32).collect();
        // Envoy seeds `std::mt19937` with the 64-bit hash: the engine keeps its low 32 bits.
        let mut rng = Mt19937::new(hash as u32);
        for i in 0..n {
            // One step of a Fisher-Yates shuffle, drawn as Envoy draws it.
            let j = rng.below((n - i) as u32) as usize;
            order.swap(i, i + j);
            let k = order[i] as usize;
            if k == first {
                continue;
            }
            let f = self.overload(k, hosts, active);
            if f <= 1.0 {
                return k;
            }
            if least.1 > f {
                least = (k, f);
            }
        }
        least.0
    }
}

const N: usize = 624;
const M: usize = 397;

/// The 32-bit Mersenne Twister (`std::mt19937`), which Envoy's shuffle draws from; its
/// outputs are fixed by the C++ standard, so both proxies shuffle alike.
pub(crate) struct Mt19937 {
    state: [u32; N],
    next: usize,
}

impl Mt19937 {
    pub(crate) fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { state, next: N }
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        if self.next >= N {
            self.twist();
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % N] & 0x7fff_ffff);
            let mut v = self.state[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.state[i] = v;
        }
        self.next = 0;
    }

    /// A number in `[0, k)` (k > 0) as Envoy's `uniform_int` draws it: an output divided by
    /// `2^32 / k`, redrawn while it is `k` or more. A redraw is needed with probability under
    /// a half, so 64 of them in a row never happen in practice; the bound keeps the loop finite.
    fn below(&mut self, k: u32) -> u32 {
        let k = u64::from(k.max(1));
        let bucket = (1u64 << 32) / k;
        let mut x = u64::from(self.next_u32()) / bucket;
        for _ in 0..64 {
            if x < k {
                break;
            }
            x = u64::from(self.next_u32()) / bucket;
        }
        (x % k) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::Mt19937;

    /// The C++ standard's check of `std::mt19937`: default seed 5489, 10000th output.
    #[test]
    fn mersenne_twister_matches_the_standard() {
        let mut mt = Mt19937::new(5489);
        assert_eq!(mt.next_u32(), 3_499_211_612);
        for _ in 1..9999 {
            mt.next_u32();
        }
        assert_eq!(mt.next_u32(), 4_123_659_995);
    }

    #[test]
    fn draws_stay_below_their_bound() {
        let mut mt = Mt19937::new(7);
        for k in 1..50u32 {
            for _ in 0..20 {
                assert!(mt.below(k) < k);
            }
        }
    }
}
