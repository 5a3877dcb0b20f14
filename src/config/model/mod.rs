//! Validated domain types: what the rest of legate sees of a configuration.
//!
//! Nothing here knows about YAML, JSON, v2 spellings or `@type` URLs: `config::parse_*` turns
//! text into serde types, `config::validate_*` turns those into the types below (durations as
//! `Duration`, regexes compiled, enums resolved, header names lowercased). Every type is
//! `PartialEq` so that a reload can diff two configurations without rebuilding anything.
//!
//! The types are grouped by the resource they belong to: `listener` (listeners, filter
//! chains), `hcm` (the HTTP connection manager), `route` (route configurations),
//! `cluster` (clusters and endpoints); this file keeps what the bootstrap itself holds and
//! what several resources share.

mod cluster;
mod hash_policy;
mod hcm;
mod health;
mod listener;
mod local_ratelimit;
mod rbac;
mod route;
mod xds_matcher;

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

pub use super::filters::{HttpFilter, HttpFilterKind, PerFilter, PerFilterConfig};
pub use cluster::*;
pub use hash_policy::*;
pub use hcm::*;
pub use health::*;
pub use listener::*;
pub use local_ratelimit::*;
pub use rbac::*;
pub use route::*;
pub use xds_matcher::*;

/// A value kept between two versions of a configuration that both have it (a route of a
/// 10,000-route file that one reload did not change): compared by pointer first, so that
/// diffing two versions costs little more than the parts that changed.
#[derive(Debug, Clone)]
pub struct Kept<T>(pub Arc<T>);

impl<T> Kept<T> {
    pub fn new(value: T) -> Self {
        Kept(Arc::new(value))
    }

    /// The very same value (not just an equal one).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T: PartialEq> PartialEq for Kept<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl<T> Deref for Kept<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A whole bootstrap after v2 normalisation and validation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bootstrap {
    pub node: Node,
    pub admin: Option<Admin>,
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    pub dynamic: DynamicResources,
    /// The bootstrap's `typed_dns_resolver_config` / `dns_resolution_config` /
    /// `use_tcp_for_dns_lookups`: the resolver of every DNS cluster without its own.
    pub dns_resolver: DnsResolver,
    /// `static_resources.secrets` by name: TLS contexts of LDS listeners name them too.
    pub static_secrets: Option<std::sync::Arc<crate::tls::secrets::StaticSecrets>>,
    /// `layered_runtime.layers`: read at start (a disk layer is watched from then on).
    pub runtime: Vec<(String, crate::runtime::RuntimeLayer)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Node {
    pub id: String,
    pub cluster: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    pub address: SocketAddr,
    /// v2 `admin.access_log_path` or v3 `admin.access_log` file path; `None` logs nothing.
    pub access_log_path: Option<PathBuf>,
}

/// `dynamic_resources`: file-based LDS and CDS.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DynamicResources {
    pub lds: Option<FileSource>,
    pub cds: Option<FileSource>,
}

/// A `config_source` that names a file (`path` or `path_config_source`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSource {
    pub path: PathBuf,
    /// `path_config_source.watched_directory.path`
    pub watched_directory: Option<PathBuf>,
}

/// A DNS resolver: its servers (none: the system's, from /etc/resolv.conf) and options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsResolver {
    pub resolvers: Vec<SocketAddr>,
    pub options: DnsOptions,
}

/// `DnsResolverOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DnsOptions {
    /// `use_tcp_for_dns_lookups`
    pub tcp: bool,
    /// `no_default_search_domain`: names are looked up as written, without search domains.
    pub no_search: bool,
    /// c-ares' `use_resolvers_as_fallback`: the configured resolvers only when the system
    /// has none.
    pub fallback: bool,
}

impl DnsOptions {
    /// Either spelling turns an option on.
    pub fn merge(&mut self, other: DnsOptions) {
        self.tcp |= other.tcp;
        self.no_search |= other.no_search;
        self.fallback |= other.fallback;
    }
}

/// The `Http2ProtocolOptions` legate applies, downstream (connection manager) and upstream
/// (cluster); `None` keeps the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Http2Options {
    /// Downstream only: the SETTINGS_MAX_CONCURRENT_STREAMS a client is given.
    pub max_concurrent_streams: Option<u32>,
    pub initial_stream_window_size: Option<u32>,
    pub initial_connection_window_size: Option<u32>,
    pub hpack_table_size: Option<u32>,
    /// Downstream only: `allow_connect`, WebSocket over HTTP/2 (RFC 8441 extended CONNECT).
    pub allow_connect: bool,
}

/// One resource of a file-based discovery response.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterLoadAssignment {
    pub cluster_name: String,
    pub endpoints: Vec<LocalityEndpoints>,
}

/// A validated file-based xDS file: `version_info` plus its resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery<T> {
    pub version_info: String,
    pub resources: Vec<T>,
    /// Values tolerated as Envoy tolerates them in dynamic resources (an unknown enum name).
    pub warnings: Vec<super::error::ConfigError>,
}
