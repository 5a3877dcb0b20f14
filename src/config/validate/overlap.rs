//! Envoy's second check on a listener's `filter_chain_match`es (after the one for identical
//! matches in `filter_chain::duplicate_matches`): two chains that share a leaf of Envoy's match
//! tree are refused, "multiple filter chains with overlapping matching rules are defined".
//!
//! Envoy builds its tree by expanding each chain's match into every combination of its
//! fields' values (an empty list is one "any" value of its own, not a wildcard over the
//! others), and fails when a combination is already taken. Two chains therefore overlap when,
//! field by field, their value sets share a value. CIDR ranges are compared as Envoy keys
//! them: by their masked network (`10.1.0.0/8` is `10.0.0.0/8`), and `10.0.0.0/8` does not
//! overlap `10.0.0.0/16` (the longer prefix wins at match time).

use std::net::IpAddr;

use crate::config::model::{CidrRange, FilterChainMatch};

/// What Envoy says, naming no chain.
pub(crate) const OVERLAP: &str = "multiple filter chains with overlapping matching rules are defined";

/// The index of the first chain whose match overlaps an earlier one's.
pub(crate) fn first_overlap(matches: &[&FilterChainMatch]) -> Option<usize> {
    let keys: Vec<Key> = matches.iter().map(|m| Key::of(m)).collect();
    (1..keys.len()).find(|&j| keys[..j].iter().any(|k| k.overlaps(&keys[j])))
}

/// A match with its ranges normalised to their networks.
struct Key<'m> {
    m: &'m FilterChainMatch,
    prefix_ranges: Vec<(IpAddr, u8)>,
    direct_source_prefix_ranges: Vec<(IpAddr, u8)>,
    source_prefix_ranges: Vec<(IpAddr, u8)>,
}

impl<'m> Key<'m> {
    fn of(m: &'m FilterChainMatch) -> Self {
        Key {
            m,
            prefix_ranges: networks(&m.prefix_ranges),
            direct_source_prefix_ranges: networks(&m.direct_source_prefix_ranges),
            source_prefix_ranges: networks(&m.source_prefix_ranges),
        }
    }

    fn overlaps(&self, o: &Key<'_>) -> bool {
        let (a, b) = (self.m, o.m);
        a.destination_port == b.destination_port
            && share(&self.prefix_ranges, &o.prefix_ranges)
            && share(&a.server_names, &b.server_names)
            && a.transport_protocol == b.transport_protocol
            && share(&a.application_protocols, &b.application_protocols)
            && share(&self.direct_source_prefix_ranges, &o.direct_source_prefix_ranges)
            && a.source_type == b.source_type
            && share(&self.source_prefix_ranges, &o.source_prefix_ranges)
            && share(&a.source_ports, &b.source_ports)
    }
}

/// Whether two fields' value sets meet, an empty list being the one "any" value.
fn share<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => true,
        (false, false) => a.iter().any(|x| b.contains(x)),
        _ => false,
    }
}

fn networks(ranges: &[CidrRange]) -> Vec<(IpAddr, u8)> {
    ranges.iter().map(network).collect()
}

/// The range's address with the bits past its prefix cleared.
fn network(c: &CidrRange) -> (IpAddr, u8) {
    let address = match c.address {
        IpAddr::V4(a) => {
            let bits = u32::from(c.prefix_len.min(32));
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u32::from(c.prefix_len.min(128));
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    (address, c.prefix_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str, len: u8) -> CidrRange {
        CidrRange { address: s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])), prefix_len: len }
    }

    fn names(n: &[&str]) -> FilterChainMatch {
        FilterChainMatch { server_names: n.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    #[test]
    fn a_shared_server_name_overlaps() {
        assert_eq!(first_overlap(&[&names(&["a.com", "b.com"]), &names(&["b.com"])]), Some(1));
        assert_eq!(first_overlap(&[&names(&["a.com"]), &names(&["b.com"]), &names(&["c.com", "a.com"])]), Some(2));
        assert_eq!(first_overlap(&[&names(&["a.com"]), &names(&["b.com"])]), None);
    }

    #[test]
    fn an_empty_list_is_its_own_value() {
        assert_eq!(first_overlap(&[&names(&[]), &names(&["a.com"])]), None);
        let port = FilterChainMatch { destination_port: Some(80), ..names(&["a.com"]) };
        assert_eq!(first_overlap(&[&port, &names(&["a.com"])]), None, "a port and no port differ");
    }

    #[test]
    fn every_field_must_meet() {
        let a = FilterChainMatch { destination_port: Some(80), source_ports: vec![1, 2], ..names(&["a.com"]) };
        let b = FilterChainMatch { destination_port: Some(80), source_ports: vec![2], ..names(&["c.com", "a.com"]) };
        assert_eq!(first_overlap(&[&a, &b]), Some(1));
        let c = FilterChainMatch { source_ports: vec![3], ..b.clone() };
        assert_eq!(first_overlap(&[&a, &c]), None);
        let d = FilterChainMatch { application_protocols: vec!["h2".into()], ..b };
        assert_eq!(first_overlap(&[&a, &d]), None);
    }

    #[test]
    fn ranges_compare_by_network() {
        let m = |r: Vec<CidrRange>| FilterChainMatch { prefix_ranges: r, ..Default::default() };
        let a = m(vec![cidr("10.1.0.0", 8)]);
        assert_eq!(first_overlap(&[&a, &m(vec![cidr("10.0.0.0", 8)])]), Some(1));
        assert_eq!(first_overlap(&[&a, &m(vec![cidr("10.0.0.0", 16)])]), None, "a longer prefix is another key");
        assert_eq!(first_overlap(&[&a, &m(vec![cidr("11.0.0.0", 8), cidr("10.9.9.9", 8)])]), Some(1));
        let v6 = m(vec![cidr("2001:db8::1", 32)]);
        assert_eq!(first_overlap(&[&v6, &m(vec![cidr("2001:db8::", 32)])]), Some(1));
    }
}
