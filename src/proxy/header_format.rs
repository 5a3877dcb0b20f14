//! What Envoy's header value formatters (`%REQ(...)%`, `%UPSTREAM_HOST%`, ... in
//! `request_headers_to_add` / `response_headers_to_add`) read on the request path. Built only
//! for a request whose route levels have a formatted value for the side being changed, so a
//! configuration of plain values never pays for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, Version};

use super::router::Side;
use crate::access_log::LogContext;
use crate::routing::header_ops::HeaderOpsRt;
use crate::routing::{RouteRt, RouteTable, VirtualHostRt};

/// The downstream side of a request, for formatted header values.
pub struct FormatEnv {
    pub start: SystemTime,
    pub version: Version,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub tls: Option<Arc<crate::tls::Session>>,
    pub route_name: Option<String>,
}

/// The request a formatted value reads; its headers are the map the level changes when it
/// changes the request's.
pub struct FormatRequest<'a> {
    pub headers: &'a HeaderMap,
    pub method: &'a str,
    pub path: &'a str,
    pub authority: &'a str,
}

/// What the response side adds: Envoy's answer so far.
#[derive(Default, Clone, Copy)]
pub struct FormatResponse<'a> {
    pub code: Option<u16>,
    pub flags: &'a str,
    pub upstream_host: Option<SocketAddr>,
    pub cluster: Option<&'a str>,
}

impl FormatEnv {
    pub fn context<'a>(&'a self, req: FormatRequest<'a>, resp: FormatResponse<'a>) -> LogContext<'a> {
        LogContext {
            start: self.start,
            request_headers: req.headers,
            method: req.method,
            path: req.path,
            authority: req.authority,
            scheme: if self.tls.is_some() { "https" } else { "http" },
            protocol: Some(self.version),
            response_code: resp.code,
            response_code_details: None,
            response_headers: None,
            response_trailers: None,
            response_flags: resp.flags,
            bytes_received: 0,
            bytes_sent: 0,
            duration: None,
            request_duration: None,
            response_duration: None,
            upstream_host: resp.upstream_host,
            upstream_cluster: resp.cluster,
            upstream_local_address: None,
            upstream_transport_failure_reason: None,
            upstream_request_attempt_count: 0,
            downstream_remote: self.remote,
            downstream_local: self.local,
            route_name: self.route_name.as_deref(),
            tls: self.tls.as_deref(),
            dynamic_metadata: None,
            local_reply_body: None,
        }
    }
}

/// Whether any level of a route has a formatted value for `side`.
pub fn formatted(
    side: Side,
    weighted: Option<&HeaderOpsRt>,
    route: &RouteRt,
    vh: &VirtualHostRt,
    table: &RouteTable,
) -> bool {
    weighted.into_iter().chain([&route.headers, &vh.headers, &table.headers]).any(|ops| match side {
        Side::Request => ops.request_formatted,
        Side::Response => ops.response_formatted,
    })
}
