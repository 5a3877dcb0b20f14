//! Choosing a listener's filter chain for a new connection, in Envoy's order: destination
//! port, destination IP (longest prefix), server name (exact, then the longest `*.` wildcard),
//! transport protocol, application protocols, direct source IP, source type, source IP
//! (longest prefix), source port. At each step the chains that name a value matching the
//! connection win; only when none does, the chains leaving the field empty go on. There is no
//! backtracking: a chain that wins a step and fails a later one leaves no match (then the
//! default chain, if any).

use std::net::SocketAddr;

use crate::config::model::{CidrRange, FilterChainMatch, Listener, SourceType};

/// What a connection shows the matcher (the listener filters found the last three).
pub struct ConnInfo<'a> {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Lowercased SNI.
    pub server_name: Option<&'a str>,
    /// `raw_buffer` unless a listener filter detected another (`tls`).
    pub transport_protocol: &'a str,
    pub application_protocols: &'a [String],
}

/// How one chain's field compares with the connection.
enum Spec {
    /// The field is empty.
    Any,
    /// Matched, with this specificity (higher wins).
    Match(u32),
    Miss,
}

/// The index into [`Listener::chains`] of the chain serving `c`, `None` when no chain matches
/// and there is no default.
pub fn select(l: &Listener, c: &ConnInfo<'_>) -> Option<usize> {
    let chains = &l.filter_chains;
    let fallback = l.default_chain.as_ref().map(|_| chains.len());
    if chains.len() == 1 && chains[0].matcher == FilterChainMatch::default() {
        return Some(0);
    }
    let mut cands: Vec<usize> = (0..chains.len()).collect();
    let steps: [&dyn Fn(&FilterChainMatch) -> Spec; 9] = [
        &|m| match m.destination_port {
            None => Spec::Any,
            Some(p) if p == c.local.port() => Spec::Match(0),
            Some(_) => Spec::Miss,
        },
        &|m| prefix(&m.prefix_ranges, c.local),
        &|m| server_name(&m.server_names, c.server_name),
        &|m| match &m.transport_protocol {
            None => Spec::Any,
            Some(p) if p == c.transport_protocol => Spec::Match(0),
            Some(_) => Spec::Miss,
        },
        &|m| application_protocol(&m.application_protocols, c.application_protocols),
        &|m| prefix(&m.direct_source_prefix_ranges, c.remote),
        &|m| {
            let local = c.remote.ip().is_loopback() || c.remote.ip() == c.local.ip();
            match m.source_type {
                SourceType::Any => Spec::Any,
                SourceType::Local if local => Spec::Match(0),
                SourceType::External if !local => Spec::Match(0),
                _ => Spec::Miss,
            }
        },
        &|m| prefix(&m.source_prefix_ranges, c.remote),
        &|m| match m.source_ports.is_empty() {
            true => Spec::Any,
            false if m.source_ports.contains(&c.remote.port()) => Spec::Match(0),
            false => Spec::Miss,
        },
    ];
    for step in steps {
        let mut best: Option<u32> = None;
        let mut any = false;
        for &i in &cands {
            match step(&chains[i].matcher) {
                Spec::Match(r) => best = Some(best.map_or(r, |b| b.max(r))),
                Spec::Any => any = true,
                Spec::Miss => {}
            }
        }
        match best {
            Some(b) => cands.retain(|&i| matches!(step(&chains[i].matcher), Spec::Match(r) if r == b)),
            None if any => cands.retain(|&i| matches!(step(&chains[i].matcher), Spec::Any)),
            None => return fallback,
        }
    }
    cands.first().copied().or(fallback)
}

fn prefix(ranges: &[CidrRange], addr: SocketAddr) -> Spec {
    if ranges.is_empty() {
        return Spec::Any;
    }
    let ip = match addr.ip() {
        // An IPv4 client on a dual-stack socket matches IPv4 ranges.
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr.ip(), std::net::IpAddr::V4),
        v4 => v4,
    };
    ranges.iter().filter(|r| r.contains(ip)).map(|r| u32::from(r.prefix_len)).max().map_or(Spec::Miss, Spec::Match)
}

fn server_name(names: &[String], sni: Option<&str>) -> Spec {
    if names.is_empty() {
        return Spec::Any;
    }
    let Some(sni) = sni.filter(|s| !s.is_empty()) else { return Spec::Miss };
    let mut best = None;
    for n in names {
        let rank = if n == sni {
            Some(u32::MAX)
        } else if let Some(suffix) = n.strip_prefix('*') {
            // `*.example.com` matches any name ending in `.example.com`; longer suffixes win.
            (sni.len() > suffix.len() && sni.ends_with(suffix)).then_some(suffix.len() as u32)
        } else {
            None
        };
        best = best.max(rank);
    }
    best.map_or(Spec::Miss, Spec::Match)
}

fn application_protocol(chain: &[String], conn: &[String]) -> Spec {
    if chain.is_empty() {
        return Spec::Any;
    }
    // The connection's first protocol that any chain names decides, as in Envoy.
    match conn.iter().position(|p| chain.contains(p)) {
        Some(i) => Spec::Match(u32::MAX - i as u32),
        None => Spec::Miss,
    }
}

#[cfg(test)]
mod tests;
