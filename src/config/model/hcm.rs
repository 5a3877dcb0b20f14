//! The HTTP connection manager (a network filter): its options, where its routes come from,
//! and its access logs.

use std::path::PathBuf;
use std::time::Duration;

use super::{FileSource, Http2Options, HttpFilter, RouteConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecType {
    #[default]
    Auto,
    Http1,
    Http2,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub codec_type: CodecType,
    pub routes: RouteSource,
    /// `server_name`, default `envoy` (what Envoy sends).
    pub server_name: String,
    /// `server_header_transformation`: `OVERWRITE` (default), `APPEND_IF_ABSENT`, `PASS_THROUGH`.
    pub server_header: ServerHeaderTransformation,
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u32,
    /// `internal_address_config.cidr_ranges`; empty means no client is internal (Envoy 1.40's
    /// default), so `x-envoy-*` request headers are never trusted.
    pub internal_cidrs: Vec<CidrRange>,
    /// `skip_xff_append`
    pub skip_xff_append: bool,
    /// `add_user_agent`: the local node's cluster in `x-envoy-downstream-service-cluster`
    /// (and `user-agent` when the client sent none), its id in `...-service-node`.
    pub add_user_agent: bool,
    /// `generate_request_id`, default true.
    pub generate_request_id: bool,
    /// `preserve_external_request_id`, default false.
    pub preserve_external_request_id: bool,
    /// `max_request_headers_kb`, default 60.
    pub max_request_headers_kb: u32,
    /// `common_http_protocol_options.max_headers_count`, default 100.
    pub max_headers_count: u32,
    /// `http_protocol_options.accept_http_10`
    pub accept_http_10: bool,
    /// `http_protocol_options.default_host_for_http_10`
    pub default_host_for_http_10: Option<String>,
    /// `stream_idle_timeout`, default 5 min; `None` when set to 0.
    pub stream_idle_timeout: Option<Duration>,
    /// `request_timeout`, default disabled.
    pub request_timeout: Option<Duration>,
    /// `common_http_protocol_options.idle_timeout`, default 1 h; `None` when 0.
    pub idle_timeout: Option<Duration>,
    /// `drain_timeout`, default 5 s.
    pub drain_timeout: Duration,
    /// `http2_protocol_options`
    pub http2: Http2Options,
    /// `normalize_path`: RFC 3986 normalization of the path before routing.
    pub normalize_path: bool,
    /// `merge_slashes`: runs of slashes in the path become one before routing.
    pub merge_slashes: bool,
    pub access_logs: Vec<AccessLog>,
    /// The HTTP filters in order; the last one is always the router.
    pub http_filters: Vec<HttpFilter>,
    /// `upgrade_configs`: the `Upgrade` types tunnelled unless a route says otherwise.
    pub upgrades: Vec<UpgradeConfig>,
    /// `forward_client_cert_details` and `set_current_client_cert_details`.
    pub xfcc: crate::tls::xfcc::Xfcc,
}

/// One `upgrade_configs` entry (connection manager or route): an `Upgrade` type, lowercase
/// (Envoy compares them case-insensitively), and whether it is allowed (`enabled`, default true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeConfig {
    pub upgrade_type: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerHeaderTransformation {
    #[default]
    Overwrite,
    AppendIfAbsent,
    PassThrough,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CidrRange {
    pub address: std::net::IpAddr,
    pub prefix_len: u8,
}

impl CidrRange {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                (u32::from(net) & mask) == (u32::from(ip) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                (u128::from(net) & mask) == (u128::from(ip) & mask)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteSource {
    Inline(RouteConfig),
    /// `rds`: a route configuration read from a file.
    Rds {
        route_config_name: String,
        source: FileSource,
    },
}

/// `access_log` entries of the connection manager.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    pub sink: AccessLogSink,
    pub format: AccessLogFormat,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccessLogSink {
    File(PathBuf),
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccessLogFormat {
    /// Envoy's default line.
    Default,
    /// `text_format` / `text_format_source.inline_string` / v2 `format`.
    Text(String),
    /// `json_format`: key -> format string, in file order.
    Json(Vec<(String, String)>),
}
