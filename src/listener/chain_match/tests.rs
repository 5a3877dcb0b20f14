use super::*;
use crate::config::model::FilterChain;

fn cidr(s: &str) -> CidrRange {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    CidrRange { address: a.parse().unwrap_or_else(|e| panic!("{a}: {e}")), prefix_len: l.parse().unwrap_or(32) }
}

fn listener(matches: Vec<FilterChainMatch>, default: bool) -> Listener {
    let chain = |(i, matcher): (usize, FilterChainMatch)| FilterChain {
        name: format!("c{i}"),
        matcher,
        filters: vec![],
        tls: None,
    };
    Listener {
        name: "l".into(),
        address: "127.0.0.1:80".parse().unwrap_or_else(|e| panic!("{e}")),
        inbound: false,
        stat_prefix: None,
        buffer_limit: 1 << 20,
        filter_chains: matches.into_iter().enumerate().map(chain).collect(),
        default_chain: default.then(|| chain((99, FilterChainMatch::default()))),
        listener_filters: vec![],
        listener_filters_timeout: None,
        continue_on_listener_filters_timeout: false,
    }
}

struct Conn {
    local: &'static str,
    remote: &'static str,
    sni: Option<&'static str>,
    transport: &'static str,
    alpn: Vec<String>,
}

fn conn(local: &'static str, remote: &'static str) -> Conn {
    Conn { local, remote, sni: None, transport: "raw_buffer", alpn: vec![] }
}

fn pick(l: &Listener, c: &Conn) -> Option<usize> {
    let info = ConnInfo {
        local: c.local.parse().unwrap_or_else(|e| panic!("{e}")),
        remote: c.remote.parse().unwrap_or_else(|e| panic!("{e}")),
        server_name: c.sni,
        transport_protocol: c.transport,
        application_protocols: &c.alpn,
    };
    select(l, &info)
}

#[test]
fn destination_port_then_fallback_to_unset() {
    let l = listener(
        vec![FilterChainMatch { destination_port: Some(8080), ..Default::default() }, FilterChainMatch::default()],
        false,
    );
    assert_eq!(pick(&l, &conn("127.0.0.1:8080", "127.0.0.9:5000")), Some(0));
    assert_eq!(pick(&l, &conn("127.0.0.1:9090", "127.0.0.9:5000")), Some(1));
}

#[test]
fn longest_destination_prefix_wins() {
    let l = listener(
        vec![
            FilterChainMatch { prefix_ranges: vec![cidr("127.0.0.0/8")], ..Default::default() },
            FilterChainMatch { prefix_ranges: vec![cidr("127.0.0.2/32")], ..Default::default() },
        ],
        false,
    );
    assert_eq!(pick(&l, &conn("127.0.0.2:80", "127.0.0.9:5000")), Some(1));
    assert_eq!(pick(&l, &conn("127.0.0.3:80", "127.0.0.9:5000")), Some(0));
    assert_eq!(pick(&l, &conn("10.0.0.3:80", "127.0.0.9:5000")), None);
}

#[test]
fn server_names_exact_then_longest_wildcard() {
    let names =
        |v: &[&str]| FilterChainMatch { server_names: v.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    let l = listener(vec![names(&["*.example.com"]), names(&["*.a.example.com"]), names(&["x.a.example.com"])], true);
    let with = |sni| Conn { sni: Some(sni), ..conn("127.0.0.1:80", "127.0.0.9:5000") };
    assert_eq!(pick(&l, &with("x.a.example.com")), Some(2));
    assert_eq!(pick(&l, &with("y.a.example.com")), Some(1));
    assert_eq!(pick(&l, &with("b.example.com")), Some(0));
    // `*.example.com` does not match `example.com` itself.
    assert_eq!(pick(&l, &with("example.com")), Some(3), "the default chain");
    assert_eq!(pick(&l, &conn("127.0.0.1:80", "127.0.0.9:5000")), Some(3));
}

#[test]
fn no_backtracking_after_a_specific_step() {
    // The port chain wins the first step, then fails on the server name: no match, even
    // though the second chain would match every later field.
    let l = listener(
        vec![
            FilterChainMatch {
                destination_port: Some(80),
                server_names: vec!["a.example".into()],
                ..Default::default()
            },
            FilterChainMatch::default(),
        ],
        false,
    );
    assert_eq!(pick(&l, &conn("127.0.0.1:80", "127.0.0.9:5000")), None);
    let l = listener(l.filter_chains.iter().map(|c| c.matcher.clone()).collect(), true);
    assert_eq!(pick(&l, &conn("127.0.0.1:80", "127.0.0.9:5000")), Some(2));
}

#[test]
fn transport_and_application_protocols() {
    let l = listener(
        vec![
            FilterChainMatch { transport_protocol: Some("tls".into()), ..Default::default() },
            FilterChainMatch {
                transport_protocol: Some("raw_buffer".into()),
                application_protocols: vec!["http/1.1".into()],
                ..Default::default()
            },
            FilterChainMatch {
                transport_protocol: Some("raw_buffer".into()),
                application_protocols: vec!["h2c".into()],
                ..Default::default()
            },
        ],
        false,
    );
    let c = |transport, alpn: &[&str]| Conn {
        transport,
        alpn: alpn.iter().map(|s| s.to_string()).collect(),
        ..conn("127.0.0.1:80", "127.0.0.9:5000")
    };
    assert_eq!(pick(&l, &c("tls", &[])), Some(0));
    assert_eq!(pick(&l, &c("raw_buffer", &["h2c"])), Some(2));
    assert_eq!(pick(&l, &c("raw_buffer", &["h2c", "http/1.1"])), Some(2));
    assert_eq!(pick(&l, &c("raw_buffer", &["http/1.1", "h2c"])), Some(1));
    assert_eq!(pick(&l, &c("raw_buffer", &["spdy"])), None);
}

#[test]
fn source_fields() {
    let l = listener(
        vec![
            FilterChainMatch { source_prefix_ranges: vec![cidr("127.0.0.0/24")], ..Default::default() },
            FilterChainMatch {
                source_prefix_ranges: vec![cidr("127.0.0.0/24")],
                source_ports: vec![4000],
                ..Default::default()
            },
            FilterChainMatch { source_type: SourceType::External, ..Default::default() },
            FilterChainMatch::default(),
        ],
        false,
    );
    assert_eq!(pick(&l, &conn("127.0.0.1:80", "127.0.0.9:5000")), Some(0));
    assert_eq!(pick(&l, &conn("127.0.0.1:80", "127.0.0.9:4000")), Some(1));
    // Loopback is never EXTERNAL: the chain with nothing set.
    assert_eq!(pick(&l, &conn("127.0.0.1:80", "127.0.1.9:4000")), Some(3));
    assert_eq!(pick(&l, &conn("10.0.0.1:80", "10.0.1.9:4000")), Some(2));
    let l = listener(
        vec![
            FilterChainMatch { direct_source_prefix_ranges: vec![cidr("127.0.0.7/32")], ..Default::default() },
            FilterChainMatch { source_type: SourceType::Local, ..Default::default() },
        ],
        false,
    );
    assert_eq!(pick(&l, &conn("127.0.0.1:80", "127.0.0.7:5000")), Some(0));
    assert_eq!(pick(&l, &conn("127.0.0.1:80", "127.0.0.8:5000")), Some(1));
}
