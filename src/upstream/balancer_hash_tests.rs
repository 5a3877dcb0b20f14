//! RING_HASH / MAGLEV keys (`use_hostname_for_hashing`, `envoy.lb` `hash_key`) and bounded
//! loads (`hash_balance_factor`) on a fake cluster's hosts.

use std::sync::Arc;

use super::HashTable;
use crate::config::model::{ConsistentHashing, LbPolicy};
use crate::upstream::fake::{self, FakeUpstream};
use crate::upstream::membership::carried_over;
use crate::upstream::ring_hash::MAX_RING;
use crate::upstream::{Cluster, Host};

const BY_NAME: ConsistentHashing = ConsistentHashing { use_hostname: true, balance_factor: 0 };
const BY_ADDR: ConsistentHashing = ConsistentHashing { use_hostname: false, balance_factor: 0 };

/// `h` (its address, pool and stats) renamed `hostname`, with `hash_key`.
fn renamed(h: &Host, hostname: Option<&str>, hash_key: Option<&str>) -> Arc<Host> {
    let mut spec = h.spec();
    spec.hostname = hostname.map(str::to_string);
    spec.hash_key = hash_key.map(str::to_string);
    Arc::new(carried_over(h, spec))
}

/// The hostname of the host each of a spread of hashes lands on.
fn names_by_hash(table: &HashTable, hosts: &[Arc<Host>]) -> Vec<String> {
    (0..500u64)
        .map(|k| {
            let i = table.pick(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).unwrap_or_else(|| panic!("no pick"));
            hosts[i].hostname.clone().unwrap_or_default()
        })
        .collect()
}

#[test]
fn hostnames_key_the_ring_and_the_table_whatever_the_addresses() {
    let up = FakeUpstream::new([]);
    let (c, _) = fake::cluster("", 3, &up);
    let h = c.hosts.load().all.clone();
    let named = |i: usize, name: &str| renamed(&h[i], Some(name), None);
    let hosts = vec![named(0, "alpha"), named(1, "beta"), named(2, "gamma")];
    // The same names on swapped addresses.
    let swapped = vec![named(1, "alpha"), named(0, "beta"), named(2, "gamma")];
    for policy in [
        LbPolicy::RingHash { minimum_ring_size: 1024, maximum_ring_size: MAX_RING },
        LbPolicy::Maglev { table_size: 65537 },
    ] {
        let build = |hs: &[Arc<Host>], how| HashTable::build(&policy, &how, hs).unwrap_or_else(|| panic!("no table"));
        let by_name = names_by_hash(&build(&hosts, BY_NAME), &hosts);
        assert_eq!(by_name, names_by_hash(&build(&swapped, BY_NAME), &swapped), "{policy:?}: keys stay with names");
        let by_addr = names_by_hash(&build(&hosts, BY_ADDR), &hosts);
        let by_addr_swapped = names_by_hash(&build(&swapped, BY_ADDR), &swapped);
        assert_ne!(by_addr, by_addr_swapped, "{policy:?}: by address, keys follow the addresses");
    }
}

/// Envoy's `RingHashLoadBalancerTest.BasicWithHostname`: hosts named "90" to "95" (on other
/// addresses) place the same entries as keys "90" to "95".
#[test]
fn envoys_ring_by_hostname_through_the_cluster_hosts() {
    let up = FakeUpstream::new([]);
    let (c, _) = fake::cluster("", 6, &up);
    let hosts: Vec<Arc<Host>> =
        c.hosts.load().all.iter().zip(90..96).map(|(h, n)| renamed(h, Some(&n.to_string()), None)).collect();
    let ring = LbPolicy::RingHash { minimum_ring_size: 12, maximum_ring_size: MAX_RING };
    let t = HashTable::build(&ring, &BY_NAME, &hosts).unwrap_or_else(|| panic!("no ring"));
    assert_eq!(t.pick(7225015537174310577), Some(2));
    assert_eq!(t.pick(6803900775736438537), Some(3));
    let t = HashTable::build(&ring, &BY_ADDR, &hosts).unwrap_or_else(|| panic!("no ring"));
    assert_ne!(t.pick(7225015537174310577), Some(2), "by address the ring is another");
}

/// An `envoy.lb` `hash_key` comes before the hostname (Envoy's `hashKey`); a STRICT_DNS host
/// given as an IP literal is named by its IP.
#[test]
fn hash_key_first_then_hostname_then_the_ip_of_a_literal() {
    let up = FakeUpstream::new([]);
    let (c, _) = fake::cluster("", 2, &up);
    let h = c.hosts.load().all.clone();
    let ring = LbPolicy::RingHash { minimum_ring_size: 12, maximum_ring_size: MAX_RING };
    let entries = |hosts: &[Arc<Host>], how| {
        let t = HashTable::build(&ring, &how, hosts).unwrap_or_else(|| panic!("no ring"));
        (0..64u64).map(|k| t.pick(k << 58)).collect::<Vec<_>>()
    };
    let keyed = [renamed(&h[0], Some("x"), Some("k0")), renamed(&h[1], Some("y"), Some("k1"))];
    let named = [renamed(&h[0], Some("k0"), None), renamed(&h[1], Some("k1"), None)];
    assert_eq!(entries(&keyed, BY_NAME), entries(&named, BY_NAME), "hash_key wins over the hostname");
    assert_eq!(entries(&keyed, BY_ADDR), entries(&named, BY_NAME), "and over the address");
    let literal = [renamed(&h[0], None, None), renamed(&h[1], None, None)];
    let ips = [renamed(&h[0], Some("127.0.0.1"), None), renamed(&h[1], Some("127.0.0.1"), None)];
    assert_eq!(entries(&literal, BY_NAME), entries(&ips, BY_NAME));
}

/// A cluster of four equal hosts under `policy` with `hash_balance_factor: 150`, its hosts'
/// active requests `active` and the cluster's `total`.
fn bounded(policy: &str, active: [i64; 4], total: i64) -> (Arc<Cluster>, Vec<Arc<Host>>) {
    let up = FakeUpstream::new([]);
    let yaml = format!(
        "lb_policy: {policy}, common_lb_config: {{consistent_hashing_lb_config: {{hash_balance_factor: 150}}}}"
    );
    let (c, _) = fake::cluster(&yaml, 4, &up);
    let hosts = c.hosts.load().all.clone();
    for (h, a) in hosts.iter().zip(active) {
        h.stats.rq_active.set(a);
    }
    c.stats.upstream_rq_active.set(total);
    (c, hosts)
}

fn index_of(hosts: &[Arc<Host>], h: &Host) -> usize {
    hosts.iter().position(|x| x.addr == h.addr).unwrap_or_else(|| panic!("unknown host"))
}

#[test]
fn an_overloaded_host_hands_its_keys_on_by_the_hash() {
    for policy in ["RING_HASH", "MAGLEV"] {
        // 10 requests in the cluster: (11 * 150 + 99) / 100 = 17 slots, ceil(17 / 4) = 5 a
        // host. Host 0 has 10 (over), the others none.
        let (c, hosts) = bounded(policy, [10, 0, 0, 0], 10);
        let lb = c.lb.load();
        let table = &lb.hashed[0];
        let mut spread = [0usize; 4];
        for k in 0..2000u64 {
            let hash = k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let plain = table.pick(hash).unwrap_or_else(|| panic!("no pick"));
            let chosen = c.choose_for(Some(hash)).unwrap_or_else(|| panic!("no host"));
            let i = index_of(&hosts, &chosen);
            if plain == 0 {
                assert_ne!(i, 0, "{policy}: the overloaded host's key {hash} moves");
                let again = c.choose_for(Some(hash)).unwrap_or_else(|| panic!("no host"));
                assert_eq!(index_of(&hosts, &again), i, "{policy}: to the same host every time");
                spread[i] += 1;
            } else {
                assert_eq!(i, plain, "{policy}: a host under its bound keeps its keys");
            }
        }
        // The overflow jumps at random (seeded by the hash), not to one neighbour.
        assert!(spread[1..].iter().all(|&n| n > 60), "{policy}: {spread:?}");
        // Under the bound again (5 of 5 slots), host 0 has its keys back.
        hosts[0].stats.rq_active.set(5);
        let back = (0..2000u64).map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).find(|&h| table.pick(h) == Some(0));
        let back = back.unwrap_or_else(|| panic!("no key of host 0"));
        let chosen = c.choose_for(Some(back)).unwrap_or_else(|| panic!("no host"));
        assert_eq!(index_of(&hosts, &chosen), 0, "{policy}");
    }
}

#[test]
fn all_hosts_over_their_bound_take_the_least_overloaded() {
    // 5 slots a host: loads 4, 2.4, 3.2 and 3.6 times their bound.
    let (c, hosts) = bounded("RING_HASH", [20, 12, 16, 18], 10);
    for k in 0..200u64 {
        let chosen = c.choose_for(Some(k.wrapping_mul(0x9e37_79b9_7f4a_7c15))).unwrap_or_else(|| panic!("no host"));
        assert_eq!(index_of(&hosts, &chosen), 1);
    }
}

#[test]
fn without_a_balance_factor_loads_do_not_matter() {
    let up = FakeUpstream::new([]);
    let (c, _) = fake::cluster("lb_policy: MAGLEV", 4, &up);
    let hosts = c.hosts.load().all.clone();
    hosts[0].stats.rq_active.set(1000);
    c.stats.upstream_rq_active.set(1000);
    let lb = c.lb.load();
    for k in 0..500u64 {
        let hash = k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let chosen = c.choose_for(Some(hash)).unwrap_or_else(|| panic!("no host"));
        assert_eq!(Some(index_of(&hosts, &chosen)), lb.hashed[0].pick(hash));
    }
}
