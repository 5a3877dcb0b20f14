//! Listeners: their filter chains, the chains' match, network and listener filters.

use std::net::SocketAddr;
use std::time::Duration;

use super::{AccessLog, CidrRange, HttpConnectionManager};

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Envoy's `name`; when absent in the file, `listener_<index>` (stable across reloads).
    pub name: String,
    pub address: SocketAddr,
    /// `traffic_direction: INBOUND` (what the admin's `/drain_listeners?inboundonly` drains).
    pub inbound: bool,
    /// `stat_prefix`: the name in `listener.<it>.*` instead of the address.
    pub stat_prefix: Option<String>,
    /// `per_connection_buffer_limit_bytes`, default 1 MiB: how much of a request body is held
    /// for retries (and read while connecting), as Envoy's decoder buffer limit.
    pub buffer_limit: u32,
    /// `filter_chains`, in file order.
    pub filter_chains: Vec<FilterChain>,
    /// `default_filter_chain`: serves connections no chain matches.
    pub default_chain: Option<FilterChain>,
    /// `listener_filters`, run in order before a chain is chosen.
    pub listener_filters: Vec<ListenerFilter>,
    /// `listener_filters_timeout`, default 15 s; `None` when 0 (no bound).
    pub listener_filters_timeout: Option<Duration>,
    /// `continue_on_listener_filters_timeout`: a connection whose listener filters time out
    /// is matched with what they found, instead of closed.
    pub continue_on_listener_filters_timeout: bool,
}

/// One `filter_chains` entry, or the `default_filter_chain`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterChain {
    /// `name`, empty when absent.
    pub name: String,
    pub matcher: FilterChainMatch,
    /// `filters`: the network filters in order, the terminal one last. Empty is valid (as in
    /// Envoy): such a chain closes its connections.
    pub filters: Vec<NetworkFilter>,
    /// `transport_socket` `envoy.transport_sockets.tls`: the chain terminates TLS.
    pub tls: Option<std::sync::Arc<crate::tls::ServerTls>>,
}

impl FilterChain {
    /// The chain's HTTP connection manager, when it ends in one.
    pub fn hcm(&self) -> Option<&HttpConnectionManager> {
        self.filters.iter().find_map(|f| match f {
            NetworkFilter::HttpConnectionManager(h) => Some(&**h),
            NetworkFilter::TcpProxy(_) => None,
        })
    }

    /// The chain's `tcp_proxy`, when it ends in one.
    pub fn tcp_proxy(&self) -> Option<&TcpProxy> {
        self.filters.iter().find_map(|f| match f {
            NetworkFilter::TcpProxy(t) => Some(&**t),
            NetworkFilter::HttpConnectionManager(_) => None,
        })
    }
}

/// A network filter, chosen by its `typed_config` `@type`.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkFilter {
    /// `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`
    HttpConnectionManager(Box<HttpConnectionManager>),
    /// `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`
    TcpProxy(Box<TcpProxy>),
}

/// `TcpProxy`: a connection's bytes relayed to a host of one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpProxy {
    pub stat_prefix: String,
    /// `cluster` (weight 1), or `weighted_clusters` with their weights.
    pub clusters: Vec<(String, u32)>,
    /// `None` when disabled (`0s`); Envoy's default is 1 h.
    pub idle_timeout: Option<Duration>,
    pub max_connect_attempts: u32,
    pub access_logs: Vec<AccessLog>,
}

/// `FilterChainMatch`: every field empty matches every connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterChainMatch {
    pub destination_port: Option<u16>,
    /// `prefix_ranges`: the connection's destination (local) address.
    pub prefix_ranges: Vec<CidrRange>,
    /// Lowercased; `*.example.com` wildcards included.
    pub server_names: Vec<String>,
    pub transport_protocol: Option<String>,
    pub application_protocols: Vec<String>,
    pub direct_source_prefix_ranges: Vec<CidrRange>,
    pub source_type: SourceType,
    pub source_prefix_ranges: Vec<CidrRange>,
    pub source_ports: Vec<u16>,
}

/// `FilterChainMatch.ConnectionSourceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceType {
    #[default]
    Any,
    /// `SAME_IP_OR_LOOPBACK`
    Local,
    External,
}

/// A listener filter, chosen by its `typed_config` `@type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerFilter {
    /// `envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector`
    TlsInspector,
    /// `envoy.extensions.filters.listener.http_inspector.v3.HttpInspector`
    HttpInspector,
}

impl Listener {
    /// `filter_chains`, then the default chain.
    pub fn chains(&self) -> impl Iterator<Item = &FilterChain> {
        self.filter_chains.iter().chain(self.default_chain.as_ref())
    }

    /// The connection manager of every chain that has one, in [`Listener::chains`] order.
    pub fn hcms(&self) -> impl Iterator<Item = &HttpConnectionManager> {
        self.chains().filter_map(FilterChain::hcm)
    }

    /// The name in `listener.<name>.*`: `stat_prefix`, else the address as Envoy writes it
    /// (127.0.0.1:10000 is `127.0.0.1_10000`, `[::1]:80` is `[__1]_80`).
    pub fn stat_name(&self) -> String {
        match (&self.stat_prefix, self.address) {
            (Some(p), _) => p.clone(),
            (None, SocketAddr::V4(a)) => format!("{}_{}", a.ip(), a.port()),
            (None, SocketAddr::V6(a)) => format!("[{}]_{}", a.ip().to_string().replace(':', "_"), a.port()),
        }
    }
}
