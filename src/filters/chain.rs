//! The chain itself: built from `http_filters`, per-route slots resolved from the
//! `typed_per_filter_config` levels, and the decode / encode passes a request makes.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::body::Incoming;

use super::fault::{ActiveFault, FaultRequest};
use super::local_ratelimit::{self, LocalRateLimit};
use super::rbac::{Rbac, RbacRequest, RbacSettings};
use super::{
    Buffer, ChainFilter, Cors, CorsRt, CorsState, Csrf, Decompress, Fault, FaultSettings, Filter, HealthCheck, Slot,
    Slots,
};
use crate::body::progress::Progress;
use crate::config::ext_authz::ExtAuthzPerRoute;
use crate::config::filters::{HttpFilter, HttpFilterKind, PerFilter, PerFilterConfig};
use crate::proxy::body::ResBody;
use crate::proxy::local_reply::LocalReason;
use crate::routing::matcher::RequestView;
use crate::runtime::Runtime;
use crate::server::ProcessState;
use crate::stats::Store;

/// The request body on its way to the router: as the client sends it, or read whole by a
/// filter (the buffer filter).
pub enum RequestBody {
    Incoming(Incoming),
    Buffered(Bytes),
    /// One of the above (never `Coded`), transformed by filters' codecs (a decompressor's) as
    /// it streams, in chain order.
    Coded(Box<RequestBody>, Vec<super::RequestCodec>),
    /// Started by a filter that read its first bytes (ext_authz's `with_request_body`): those
    /// frames, then the rest of the stream.
    Read(Box<crate::proxy::body::ReqBody>),
}

impl RequestBody {
    /// There is no body.
    pub fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Incoming(b) => http_body::Body::is_end_stream(b),
            RequestBody::Buffered(b) => b.is_empty(),
            RequestBody::Coded(..) => false,
            RequestBody::Read(b) => http_body::Body::is_end_stream(&**b),
        }
    }

    /// The client's body was read whole by a filter (no stream timer waits for it).
    pub fn is_buffered(&self) -> bool {
        match self {
            RequestBody::Incoming(_) | RequestBody::Read(_) => false,
            RequestBody::Buffered(_) => true,
            RequestBody::Coded(inner, _) => inner.is_buffered(),
        }
    }

    /// The gRPC-Web filter's probe, when it decodes this body from base64.
    pub fn grpc_web_probe(&self) -> Option<super::TextProbe> {
        let RequestBody::Coded(_, codecs) = self else { return None };
        codecs.iter().find_map(|c| match c {
            super::RequestCodec::GrpcWebText(p) => Some(p.clone()),
            _ => None,
        })
    }

    /// Adds a filter's codec, applied after those of the filters before it.
    pub fn push_codec(&mut self, codec: super::RequestCodec) {
        *self = match std::mem::replace(self, RequestBody::Buffered(Bytes::new())) {
            RequestBody::Coded(b, mut codecs) => {
                codecs.push(codec);
                RequestBody::Coded(b, codecs)
            }
            // A body a buffer filter read whole streams through the codec like any other.
            other => RequestBody::Coded(Box::new(other), vec![codec]),
        };
    }

    /// The body as the upstream (or a filter reading it whole) gets it, the codecs applied.
    pub fn into_stream(
        self,
        rx_bytes: Option<Arc<AtomicU64>>,
        progress: Option<Arc<Progress>>,
    ) -> crate::proxy::body::ReqBody {
        use crate::proxy::body::ReqBody;
        match self {
            RequestBody::Incoming(b) => ReqBody::Stream(b, rx_bytes, progress),
            RequestBody::Buffered(b) => ReqBody::Full((!b.is_empty()).then_some(b)),
            RequestBody::Coded(inner, codecs) => {
                super::request_codec::wrap_request(inner.into_stream(rx_bytes, progress), codecs)
            }
            // Counted and timed as it was read.
            RequestBody::Read(b) => *b,
        }
    }
}

/// A request's state in the chain. Lives on the request's stack; nothing in it allocates.
#[derive(Default)]
pub struct Stream {
    /// The access log's count of request body bytes, when it wants one.
    pub rx_bytes: Option<Arc<AtomicU64>>,
    /// When the client sent and finished its body, for the stream timers.
    pub progress: Option<Arc<Progress>>,
    /// The filters `0..decoded` saw the request: their encoding side sees the response.
    pub decoded: usize,
    /// A fault filter delayed the request (`DI`).
    pub delay_injected: bool,
    /// The fault counted in `active_faults` for this request.
    pub active_fault: Option<ActiveFault>,
    /// The route's (or weighted cluster's) per-filter slots.
    pub slots: Slots,
    /// A CORS filter allowed the request's origin (or answered its preflight).
    pub cors: Option<Box<CorsState>>,
    /// The local rate limit filter's part of the response.
    pub rate_limit: Option<local_ratelimit::Encode>,
    /// Response code details a filter made (the RBAC filter's, naming a policy).
    pub details: Option<Arc<str>>,
    /// What the compressor filters remember of the request.
    pub compress: super::CompressRequest,
    /// An ext_authz filter's denial, or the headers its service added to the response.
    pub ext_authz: Option<Box<super::ext_authz::Reply>>,
    /// A filter read the client's body to its end: a local reply leaves nothing unread.
    pub body_read: bool,
    /// What the gRPC bridge and gRPC-Web filters remember of the request.
    pub grpc: super::GrpcStream,
    /// Dynamic metadata filters set (`header_to_metadata`), for the access log.
    pub metadata: Option<Box<super::DynamicMetadata>>,
    /// The filter state `set_filter_state` filters wrote, for the route's hash policy.
    pub filter_state: Option<Box<super::FilterState>>,
}

/// What filters read of the request besides its headers.
#[derive(Clone, Copy)]
pub struct RequestInfo<'a> {
    /// `:path` with its query, after normalization.
    pub full_path: &'a str,
    pub method: &'a str,
    pub authority: &'a str,
    /// The cluster the route chose, if it forwards.
    pub cluster: Option<&'a str>,
    /// The trusted client address (the peer, or `x-forwarded-for`'s per the connection manager).
    pub remote: IpAddr,
    pub direct_remote: SocketAddr,
    pub local: SocketAddr,
    pub tls: Option<&'a crate::tls::Session>,
    /// The route's `rate_limits` (local rate limit descriptors).
    pub rate_limits: Option<&'a local_ratelimit::RouteRateLimits>,
    /// The connection's own rate limit buckets.
    pub conn_buckets: &'a local_ratelimit::ConnBuckets,
    /// The snapshot's clusters (for filters that call a service).
    pub clusters: &'a std::collections::HashMap<String, Arc<crate::upstream::Cluster>>,
    /// The matched route's `name` (`%ROUTE_NAME%` in formatted values).
    pub route_name: Option<&'a str>,
}

impl<'a> RequestInfo<'a> {
    /// What a filter's formatted value (`%REQ(...)%`, ...) reads: the request as the filter
    /// sees it, nothing answered yet (`%RESPONSE_CODE%` is 0).
    pub fn log_context<'b>(
        &self,
        headers: &'b http::HeaderMap,
        version: http::Version,
        metadata: Option<&'b super::DynamicMetadata>,
    ) -> crate::access_log::LogContext<'b>
    where
        'a: 'b,
    {
        crate::access_log::LogContext {
            start: std::time::SystemTime::now(),
            request_headers: headers,
            method: self.method,
            path: self.full_path,
            authority: self.authority,
            scheme: if self.tls.is_some() { "https" } else { "http" },
            protocol: Some(version),
            response_code: None,
            response_code_details: None,
            response_headers: None,
            response_trailers: None,
            response_flags: "",
            bytes_received: 0,
            bytes_sent: 0,
            duration: None,
            request_duration: None,
            response_duration: None,
            upstream_host: None,
            upstream_cluster: self.cluster,
            upstream_local_address: None,
            upstream_transport_failure_reason: None,
            upstream_request_attempt_count: 0,
            downstream_remote: self.direct_remote,
            downstream_local: self.local,
            route_name: self.route_name,
            tls: self.tls,
            dynamic_metadata: metadata,
            local_reply_body: None,
        }
    }
}

/// The HTTP filters before the router, in order.
#[derive(Default)]
pub struct Chain {
    filters: Box<[ChainFilter]>,
    /// What per-route filter settings are built with (their stats).
    store: Option<Arc<Store>>,
    hcm_prefix: Box<str>,
    /// Routes' local rate limit settings by the configuration they came from, so that a
    /// virtual host's configuration is one bucket for all its routes, as in Envoy.
    rate_limits: Mutex<Vec<(usize, Arc<local_ratelimit::Settings>)>>,
}

impl Chain {
    /// Compiles `http_filters` (the router, last, is the request path itself).
    pub fn build(filters: &[HttpFilter], store: &Arc<Store>, hcm_prefix: &str) -> Chain {
        let filters = filters
            .iter()
            .filter_map(|f| {
                let filter = match &f.kind {
                    HttpFilterKind::Router => return None,
                    HttpFilterKind::HealthCheck { path } => Filter::HealthCheck(HealthCheck::new(path.clone())),
                    HttpFilterKind::Fault(c) => Filter::Fault(Fault::new(c, store, hcm_prefix)),
                    HttpFilterKind::Buffer(c) => Filter::Buffer(Buffer::new(c)),
                    HttpFilterKind::Cors => Filter::Cors(Cors::new(store, hcm_prefix)),
                    HttpFilterKind::Csrf(c) => Filter::Csrf(Csrf::new(c, store, hcm_prefix)),
                    HttpFilterKind::LocalRateLimit(c) => Filter::LocalRateLimit(LocalRateLimit::new(c, store)),
                    HttpFilterKind::Rbac(c) => Filter::Rbac(Rbac::new(c, store, hcm_prefix)),
                    HttpFilterKind::Compressor(c) => Filter::Compress(super::Compress::new(c, store, hcm_prefix)),
                    HttpFilterKind::Decompressor(c) => Filter::Decompress(Decompress::new(c, store, hcm_prefix)),
                    HttpFilterKind::ExtAuthz(c) => {
                        Filter::ExtAuthz(super::ext_authz::ExtAuthz::new(c, store, hcm_prefix))
                    }
                    HttpFilterKind::GrpcHttp1Bridge(c) => Filter::GrpcHttp1Bridge(super::Bridge::new(c)),
                    HttpFilterKind::GrpcWeb => Filter::GrpcWeb(super::GrpcWeb::new(store)),
                    HttpFilterKind::HeaderToMetadata(c) => Filter::HeaderToMetadata(super::HeaderToMetadata::new(c)),
                    HttpFilterKind::SetFilterState(c) => Filter::SetFilterState(super::SetFilterState::new(c)),
                };
                Some(ChainFilter { name: f.name.clone(), disabled: f.disabled, filter })
            })
            .collect::<Box<[ChainFilter]>>();
        let mut filters = filters;
        super::compress::link(&mut filters);
        Chain { filters, store: Some(Arc::clone(store)), hcm_prefix: hcm_prefix.into(), rate_limits: Mutex::default() }
    }

    /// No filter but the router.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// One slot per filter from the `typed_per_filter_config` maps of a route's levels, most
    /// specific first (weighted cluster, route, virtual host, route configuration). The first
    /// level with an entry for a filter's name decides, as Envoy's most specific config does.
    pub fn slots(&self, levels: &[&[PerFilterConfig]]) -> Slots {
        if self.filters.is_empty() || levels.iter().all(|l| l.is_empty()) {
            return None;
        }
        let slots: Vec<Slot> = self
            .filters
            .iter()
            .map(|f| {
                if matches!(f.filter, Filter::Cors(_)) {
                    return CorsRt::merge(&f.name, levels);
                }
                let entry = levels.iter().find_map(|level| {
                    level.iter().find(|e| e.filter == f.name && !matches!(e.config, PerFilter::Ignored))
                });
                match (entry.map(|e| &e.config), &f.filter) {
                    (None, _) => Slot::Default,
                    (Some(PerFilter::Disabled), _) => Slot::Off,
                    (Some(PerFilter::Fault(c)), Filter::Fault(_)) => Slot::Fault(Arc::new(FaultSettings::new(c))),
                    (Some(PerFilter::Buffer(c)), Filter::Buffer(_)) => Slot::Buffer(Buffer::new(c)),
                    (Some(PerFilter::BufferDisabled), Filter::Buffer(_)) => Slot::Off,
                    (Some(PerFilter::Csrf(c)), Filter::Csrf(_)) => Slot::Csrf(Arc::new(c.clone())),
                    (Some(PerFilter::LocalRateLimit(c)), Filter::LocalRateLimit(_)) => match &self.store {
                        Some(store) => Slot::LocalRateLimit(self.route_rate_limit(c, store)),
                        None => Slot::On,
                    },
                    (Some(PerFilter::Rbac(c)), Filter::Rbac(_)) => match (&self.store, c) {
                        (Some(store), Some(c)) => {
                            Slot::Rbac(Some(Arc::new(RbacSettings::new(c, store, &self.hcm_prefix))))
                        }
                        _ => Slot::Rbac(None),
                    },
                    (Some(PerFilter::Compressor(c)), Filter::Compress(_)) => Slot::Compress(*c),
                    (Some(PerFilter::ExtAuthz(ExtAuthzPerRoute::Disabled)), Filter::ExtAuthz(_)) => Slot::Off,
                    (Some(PerFilter::ExtAuthz(ExtAuthzPerRoute::Check(c))), Filter::ExtAuthz(_)) => {
                        Slot::ExtAuthz(Arc::new(c.clone()))
                    }
                    // A config of another filter's type: Envoy's filter finds no settings of
                    // its own type there and keeps its own, but the entry still enables it.
                    (Some(_), _) => Slot::On,
                }
            })
            .collect();
        if slots.iter().all(|s| matches!(s, Slot::Default)) {
            None
        } else {
            Some(slots.into())
        }
    }

    /// The settings of a route's `LocalRateLimit`, one per configuration entry.
    fn route_rate_limit(
        &self,
        c: &crate::config::model::LocalRateLimitConfig,
        store: &Arc<Store>,
    ) -> Arc<local_ratelimit::Settings> {
        let key = std::ptr::addr_of!(*c) as usize;
        let mut memo = self.rate_limits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = memo.iter().find(|(k, s)| *k == key && s.config() == c) {
            return Arc::clone(s);
        }
        let s = Arc::new(local_ratelimit::Settings::new(c, store));
        memo.push((key, Arc::clone(&s)));
        s
    }

    /// Whether filter `i` runs on a request with these slots.
    fn runs(&self, i: usize, slots: Option<&[Slot]>) -> bool {
        match slots.and_then(|s| s.get(i)) {
            None | Some(Slot::Default) => !self.filters[i].disabled,
            Some(Slot::Off) => false,
            Some(_) => true,
        }
    }

    /// The decoding pass: each filter in order sees the request headers (and body, if it
    /// wants it); `Err` is a local reply from the filter at `stream.decoded`.
    pub async fn decode(
        &self,
        shared: &ProcessState,
        parts: &mut http::request::Parts,
        body: &mut RequestBody,
        info: RequestInfo<'_>,
        stream: &mut Stream,
    ) -> Result<(), LocalReason> {
        let slots = stream.slots.clone();
        let slots = slots.as_deref();
        for (i, f) in self.filters.iter().enumerate() {
            if !self.runs(i, slots) {
                continue;
            }
            stream.decoded = i;
            let slot = slots.and_then(|s| s.get(i));
            match &f.filter {
                Filter::HealthCheck(h) => h.decode_headers(parts, shared)?,
                Filter::Fault(fault) => {
                    let settings = match slot {
                        Some(Slot::Fault(s)) => s,
                        _ => fault.settings(),
                    };
                    let view = RequestView::new(info.full_path, info.method, info.authority, "http", &parts.headers);
                    let req = FaultRequest {
                        headers: &parts.headers,
                        view,
                        cluster: info.cluster,
                        runtime: Some(&shared.runtime),
                    };
                    fault.decode(settings, req, stream).await?;
                }
                Filter::Buffer(b) => {
                    let b = match slot {
                        Some(Slot::Buffer(b)) => b,
                        _ => b,
                    };
                    b.decode(parts, body, stream).await?;
                }
                Filter::Cors(cors) => {
                    if let Some(Slot::Cors(policy)) = slot {
                        if let Err(preflight) = cors.decode(policy, parts, stream, &shared.runtime) {
                            // Envoy's CORS filter sees its own preflight answer on its
                            // encoding side (it adds the exposed headers there).
                            stream.decoded = i + 1;
                            return Err(preflight);
                        }
                    }
                }
                Filter::Csrf(csrf) => {
                    let policy = match slot {
                        Some(Slot::Csrf(p)) => p,
                        _ => csrf.policy(),
                    };
                    csrf.decode(policy, &parts.headers, &parts.method, info.authority, &shared.runtime)?;
                }
                Filter::LocalRateLimit(l) => {
                    let settings = match slot {
                        Some(Slot::LocalRateLimit(s)) => s,
                        _ => l.settings(),
                    };
                    let view = RequestView::new(info.full_path, info.method, info.authority, "http", &parts.headers);
                    let req = local_ratelimit::RateLimitRequest {
                        view,
                        remote: info.remote,
                        cluster: info.cluster,
                        route_limits: info.rate_limits,
                        conn: info.conn_buckets,
                        runtime: &shared.runtime,
                    };
                    let mut out = None;
                    let mut added = http::HeaderMap::new();
                    let r = LocalRateLimit::decode(settings, req, &mut added, &mut out);
                    for (k, v) in added.drain().filter_map(|(k, v)| k.map(|k| (k, v))) {
                        parts.headers.append(k, v);
                    }
                    stream.rate_limit = out;
                    r?;
                }
                Filter::Rbac(r) => {
                    let settings = match slot {
                        Some(Slot::Rbac(None)) => continue,
                        Some(Slot::Rbac(Some(s))) => s,
                        _ => r.settings(),
                    };
                    let view = RequestView::new(info.full_path, info.method, info.authority, "http", &parts.headers);
                    let req = RbacRequest {
                        view,
                        remote: info.remote,
                        direct_remote: info.direct_remote,
                        local: info.local,
                        tls: info.tls,
                    };
                    settings.decode(&req, &mut stream.details)?;
                }
                Filter::Compress(c) => {
                    let per_route = match slot {
                        Some(Slot::Compress(p)) => Some(p),
                        _ => None,
                    };
                    c.decode(i, parts, per_route, &mut stream.compress, body, &shared.runtime);
                }
                Filter::Decompress(d) => d.decode(parts, body, &shared.runtime),
                Filter::ExtAuthz(a) => {
                    let settings = match slot {
                        Some(Slot::ExtAuthz(s)) => Some(&**s),
                        _ => None,
                    };
                    let checked = a.decode(settings, parts, body, info, stream, shared.local_ip).await;
                    if checked.is_err() && stream.ext_authz.is_some() {
                        // Its denial's headers and body go on the local reply in its encoding side.
                        stream.decoded = i + 1;
                    }
                    checked?;
                }
                Filter::GrpcHttp1Bridge(b) => b.decode(parts, body, stream).await?,
                Filter::GrpcWeb(w) => w.decode(parts, body, info, stream),
                Filter::HeaderToMetadata(h) => h.decode(&mut parts.headers, &mut stream.metadata),
                Filter::SetFilterState(f) => {
                    let ctx = info.log_context(&parts.headers, parts.version, stream.metadata.as_deref());
                    f.decode(&ctx, &mut stream.filter_state);
                }
            }
            stream.decoded = i + 1;
        }
        Ok(())
    }

    /// The encoding pass, in reverse order, over the filters that saw the request: for the
    /// upstream's response and for local replies alike. It waits only where a filter reads
    /// the response body (the gRPC bridge, gRPC-Web on a response that is not gRPC).
    pub async fn encode(&self, rt: &Runtime, stream: &mut Stream, resp: &mut http::Response<ResBody>) {
        if let Some(rl) = &stream.rate_limit {
            rl.apply(resp.headers_mut());
        }
        let slots = stream.slots.clone();
        let slots = slots.as_deref();
        for i in (0..stream.decoded.min(self.filters.len())).rev() {
            if !self.runs(i, slots) {
                continue;
            }
            match &self.filters[i].filter {
                Filter::Cors(_) => Cors::encode(stream.cors.as_deref(), resp.headers_mut()),
                // None of these filters changes a response.
                Filter::HealthCheck(_)
                | Filter::Fault(_)
                | Filter::Buffer(_)
                | Filter::Csrf(_)
                | Filter::LocalRateLimit(_)
                | Filter::Rbac(_) => {
                    let _ = &resp;
                }
                Filter::Compress(c) => {
                    let per_route = match slots.and_then(|s| s.get(i)) {
                        Some(Slot::Compress(p)) => Some(p),
                        _ => None,
                    };
                    c.encode(i, &stream.compress, per_route, resp, rt);
                }
                Filter::Decompress(d) => d.encode(resp, rt),
                Filter::ExtAuthz(_) => super::ext_authz::encode(stream.ext_authz.as_deref(), resp),
                Filter::GrpcHttp1Bridge(_) => super::Bridge::encode(stream, resp).await,
                Filter::GrpcWeb(_) => super::GrpcWeb::encode(stream, resp).await,
                Filter::HeaderToMetadata(h) => h.encode(resp.headers_mut(), &mut stream.metadata),
                Filter::SetFilterState(_) => {}
            }
        }
    }
}
