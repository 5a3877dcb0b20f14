//! The connection manager's HTTP filter chain, compiled once per connection manager when a
//! snapshot is built. The router is not in the list: it is always last and is the request
//! path itself (`proxy::dispatch::process`), which runs [`Chain::decode`] before routing upstream and
//! [`Chain::encode`] on every response, local replies included.
//!
//! A filter may act on the request headers and body (and answer locally instead), and on the
//! response headers, body and trailers. A local reply from filter `i` goes back through the
//! encoding side of filters `0..i` only, as in Envoy.
//!
//! Per-route configuration (`typed_per_filter_config` at the route configuration, virtual
//! host, route and weighted cluster) is resolved when the route table is built into one
//! [`Slot`] per filter of the chain ([`Chain::slots`]), so a request looks nothing up by
//! name. A chain with no filter but the router costs a request one branch.

mod buffer;
mod chain;
mod compress;
mod compress_accept;
mod compress_body;
mod cors;
mod csrf;
mod decompress;
mod decompress_body;
pub mod ext_authz;
mod fault;
mod grpc_bridge;
mod grpc_codec;
mod grpc_web;
mod grpc_web_body;
mod grpc_web_stats;
mod header_to_metadata;
mod health_check;
pub mod local_ratelimit;
pub mod rbac;
mod request_codec;
mod set_filter_state;

use std::sync::Arc;

pub use buffer::Buffer;
pub use chain::{Chain, RequestBody, RequestInfo, Stream};
pub use compress::{Compress, CompressRequest};
pub use compress_body::Compressing;
pub use cors::{Cors, CorsRt, CorsState};
pub use csrf::Csrf;
pub use decompress::Decompress;
pub use decompress_body::Decompressing;
pub use fault::{Fault, FaultSettings};
pub use grpc_bridge::{Bridge, GrpcStream};
pub use grpc_web::{GrpcWeb, InvalidText as InvalidGrpcWebText, TextFailure as GrpcWebTextFailure, TextProbe};
pub use grpc_web_body::GrpcResBody;
pub use header_to_metadata::{DynamicMetadata, HeaderToMetadata};
pub use health_check::HealthCheck;
pub use request_codec::{FilteredBody, RequestCodec};
pub use set_filter_state::{FilterState, SetFilterState};

/// One filter of the chain, before the router.
pub struct ChainFilter {
    /// `name`: what per-route configurations are keyed by.
    pub name: String,
    /// `disabled`: runs only on routes whose configuration enables it.
    pub disabled: bool,
    pub filter: Filter,
}

pub enum Filter {
    HealthCheck(HealthCheck),
    Fault(Fault),
    Buffer(Buffer),
    Cors(Cors),
    Csrf(Csrf),
    LocalRateLimit(local_ratelimit::LocalRateLimit),
    Rbac(rbac::Rbac),
    Compress(Compress),
    Decompress(Decompress),
    ExtAuthz(ext_authz::ExtAuthz),
    GrpcHttp1Bridge(Bridge),
    GrpcWeb(GrpcWeb),
    HeaderToMetadata(HeaderToMetadata),
    SetFilterState(SetFilterState),
}

/// What a route says about one filter of the chain, its most specific
/// `typed_per_filter_config` entry for the filter's name having won.
#[derive(Clone)]
pub enum Slot {
    /// No entry: the filter runs with its own configuration, unless it is `disabled`.
    Default,
    /// `FilterConfig` with `disabled: true` (or `BufferPerRoute` with `disabled: true`).
    Off,
    /// An entry of a type that does not configure this filter: it runs with its own.
    On,
    /// `HTTPFault` for a fault filter.
    Fault(Arc<FaultSettings>),
    /// `BufferPerRoute.buffer` for a buffer filter.
    Buffer(Buffer),
    /// The merged `CorsPolicy` of the route's levels for a CORS filter.
    Cors(Arc<CorsRt>),
    /// `CsrfPolicy` for a CSRF filter.
    Csrf(Arc<crate::config::cors_csrf::CsrfPolicyConfig>),
    /// A route's `LocalRateLimit` for a local rate limit filter.
    LocalRateLimit(Arc<local_ratelimit::Settings>),
    /// `RBACPerRoute` for an RBAC filter: its policies, or none (the filter lets requests through).
    Rbac(Option<Arc<rbac::RbacSettings>>),
    /// `CompressorPerRoute` for a compressor filter.
    Compress(crate::config::compressor::CompressorPerRoute),
    /// `ExtAuthzPerRoute.check_settings` for an ext_authz filter.
    ExtAuthz(Arc<crate::config::ext_authz::CheckSettings>),
}

/// A route's (or weighted cluster's) slots; `None` when every slot is [`Slot::Default`].
pub type Slots = Option<Arc<[Slot]>>;

/// The access log's response flags with `DI` (a fault filter delayed the request) in front,
/// as Envoy lists it before the flags of what happened next.
pub fn with_delay_flag(flags: &'static str) -> &'static str {
    match flags {
        "" => "DI",
        "FI" => "DI,FI",
        "UH" => "UH,DI",
        "UF" => "UF,DI",
        "UC" => "UC,DI",
        "UT" => "UT,DI",
        "NR" => "NR,DI",
        "DC" => "DI,DC",
        other => other,
    }
}
