//! Access logging on the request path: a response body wrapper that counts bytes and, when
//! the response ends (or the client goes away), renders one line per configured logger.
//! Nothing here runs unless the connection manager has a logger.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Version};
use http_body::{Body, Frame, SizeHint};

use super::body::{BodyError, ResBody};
use crate::access_log::{AccessLogWriter, LineFormat, LogContext};
use crate::stats::Histogram;

/// One configured logger: its compiled format and its sink's writer.
pub struct Logger {
    pub format: LineFormat,
    /// `None` only in `--mode validate`, where nothing is written.
    pub writer: Option<AccessLogWriter>,
}

/// What the request path learned about a request, for logs and stats.
#[derive(Default)]
pub struct StreamInfo {
    /// When the stream started, on tokio's clock (`max_stream_duration` counts from it).
    pub started: Option<tokio::time::Instant>,
    pub upstream_host: Option<SocketAddr>,
    pub cluster: Option<Arc<crate::upstream::Cluster>>,
    pub route_name: Option<String>,
    pub response_flags: &'static str,
    /// Why the retry policy's last wish was refused (`URX`, `UO`).
    pub retry_stop: Option<super::forward::RetryStop>,
    /// Upstream attempts made (`%UPSTREAM_REQUEST_ATTEMPT_COUNT%`).
    pub attempts: u32,
    pub details: Option<&'static str>,
    /// Details a filter made at run time (the RBAC filter's policy name), over `details`.
    pub filter_details: Option<Arc<str>>,
    /// Dynamic metadata filters set (`%DYNAMIC_METADATA(...)%`).
    pub metadata: Option<Box<crate::filters::DynamicMetadata>>,
    /// The proxy answered by itself (no upstream response).
    pub local_reply: bool,
    /// A logger is configured: keep what it needs.
    pub logging: bool,
    /// Counts request body bytes, when logging a request that has a body.
    pub rx_bytes: Option<Arc<AtomicU64>>,
    /// When the request body ended and the client last sent some, while stream timers or
    /// the route's timeouts need to know.
    pub progress: Option<Arc<crate::body::progress::Progress>>,
    /// The connection manager's forwarding headers (`x-forwarded-*`, `x-request-id`) are set.
    pub forwarding_headers_set: bool,
    /// The request as it was forwarded, kept only for a logger.
    pub forwarded: Option<ForwardedRequest>,
    /// When the answering upstream attempt was sent, and its cluster's `upstream_rq_time`.
    pub upstream_sent: Option<(Instant, Histogram)>,
    /// The request was refused on its raw head, before Envoy would have parsed it whole.
    pub raw_head: Option<RawHead>,
    /// The downstream side formatted header values read; only when the route has some.
    pub format: Option<Box<super::header_format::FormatEnv>>,
    /// An HTTP/1.1 upgrade request (WebSocket), and the upstream's side once it answered 101.
    pub upgrade: Option<super::upgrade::UpgradeRequest>,
    /// An answer the route's internal redirect policy may follow, set by the router only
    /// for a route with a policy and an answer of one of its codes.
    pub redirect: Option<Box<super::internal_redirect::Candidate>>,
}

/// How Envoy's log shows a request refused on its raw head.
pub enum RawHead {
    /// Refused by the codec: no method, path, headers, and protocol `HTTP/1.1`.
    Unparsed,
    /// Refused by the connection manager before it set `x-request-id`: the target as received.
    Target(Box<str>),
}

/// Envoy's request-time histograms, recorded when the response to the client ends.
pub struct RqTiming {
    pub started: Instant,
    /// `http.<prefix>.downstream_rq_time`.
    pub downstream: Histogram,
    /// When the upstream attempt was sent, and `cluster.<name>.upstream_rq_time`.
    pub upstream: Option<(Instant, Histogram)>,
    /// The request counts as in progress on its connection until its response ends.
    pub _stream: crate::listener::idle::StreamGuard,
}

impl RqTiming {
    fn record(&self) {
        // One reading of the clock for both: they end at the same moment.
        let now = Instant::now();
        self.downstream.record_duration(now.saturating_duration_since(self.started));
        if let Some((sent, h)) = &self.upstream {
            h.record_duration(now.saturating_duration_since(*sent));
        }
    }
}

/// What a forwarded request looked like upstream (before per-attempt headers).
pub struct ForwardedRequest {
    pub path: String,
    pub authority: HeaderValue,
    pub headers: HeaderMap,
}

/// The request head a log line reads `%REQ(...)%` and the pseudo-headers from.
pub struct LoggedRequest {
    pub method: Method,
    /// `:path` with the query.
    pub path: String,
    pub authority: HeaderValue,
    pub headers: HeaderMap,
}

/// Everything a line needs that outlives the handler.
pub struct PendingLog {
    pub loggers: Arc<[Logger]>,
    pub start: SystemTime,
    pub started: Instant,
    pub request: LoggedRequest,
    pub version: Version,
    pub status: u16,
    pub response_headers: HeaderMap,
    pub trailers: Option<HeaderMap>,
    pub trace: StreamInfo,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub bytes_sent: u64,
    /// The connection's TLS session, if any.
    pub tls: Option<Arc<crate::tls::Session>>,
}

impl PendingLog {
    pub(super) fn write(&self) {
        let unparsed = matches!(self.trace.raw_head, Some(RawHead::Unparsed));
        let ctx = LogContext {
            start: self.start,
            request_headers: &self.request.headers,
            method: if unparsed { "" } else { self.request.method.as_str() },
            path: &self.request.path,
            authority: self.request.authority.to_str().unwrap_or_default(),
            scheme: "http",
            protocol: Some(if unparsed { Version::HTTP_11 } else { self.version }),
            response_code: Some(self.status),
            response_code_details: self.trace.filter_details.as_deref().or(self.trace.details),
            response_headers: Some(&self.response_headers),
            response_trailers: self.trailers.as_ref(),
            response_flags: self.trace.response_flags,
            bytes_received: self.trace.rx_bytes.as_ref().map_or(0, |n| n.load(Ordering::Relaxed)),
            bytes_sent: self.bytes_sent,
            duration: Some(self.started.elapsed()),
            request_duration: None,
            response_duration: None,
            upstream_host: self.trace.upstream_host,
            upstream_cluster: self.trace.cluster.as_ref().map(|c| c.config.stat_name()),
            upstream_local_address: None,
            upstream_transport_failure_reason: self.trace.details.and_then(transport_failure),
            upstream_request_attempt_count: self.trace.attempts,
            downstream_remote: self.remote,
            downstream_local: self.local,
            route_name: self.trace.route_name.as_deref(),
            tls: self.tls.as_deref(),
            dynamic_metadata: self.trace.metadata.as_deref(),
            local_reply_body: None,
        };
        for logger in self.loggers.iter() {
            if let Some(w) = &logger.writer {
                let mut line = String::with_capacity(256);
                logger.format.render(&ctx, &mut line);
                w.send(line);
            }
        }
    }
}

/// The log line and stats of an answer the listener wrote for a head hyper refused (Envoy's
/// codec error replies, which Envoy logs as `"- - HTTP/1.1" 400 DPE`).
pub fn log_codec_reply(ctx: &super::ConnCtx, r: super::request_head::HeadRejection, bytes_sent: u64) {
    let Some(hcm) = ctx.hcm(&ctx.shared.snapshot.load()) else { return };
    hcm.stats.downstream_rq_total.inc();
    hcm.stats.codes.record(r.status.as_u16());
    if hcm.access_logs.is_empty() {
        return;
    }
    let trace = StreamInfo {
        response_flags: r.flag,
        details: Some(r.details),
        local_reply: true,
        raw_head: Some(RawHead::Unparsed),
        ..StreamInfo::default()
    };
    PendingLog {
        loggers: Arc::clone(&hcm.access_logs),
        start: SystemTime::now(),
        started: Instant::now(),
        request: LoggedRequest {
            method: Method::GET,
            path: String::new(),
            authority: HeaderValue::from_static(""),
            headers: HeaderMap::new(),
        },
        version: Version::HTTP_11,
        status: r.status.as_u16(),
        response_headers: HeaderMap::new(),
        trailers: None,
        trace,
        remote: ctx.remote,
        local: ctx.local,
        bytes_sent,
        tls: ctx.tls.get().cloned(),
    }
    .write();
}

/// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`: Envoy appends the transport failure to the reset
/// reason in the details (`…{remote_connection_failure|delayed_connect_error:_Connection_refused}`),
/// so the two fields always agree.
fn transport_failure(details: &str) -> Option<&str> {
    let inner = details.strip_prefix("upstream_reset_before_response_started{")?.strip_suffix('}')?;
    inner.split_once('|').map(|(_, t)| t).filter(|t| !t.is_empty())
}

/// The body sent downstream, with the access log that is written when it ends.
pub struct LoggedBody {
    inner: ResBody,
    log: Option<Box<PendingLog>>,
    timing: Option<RqTiming>,
}

impl LoggedBody {
    pub fn plain(inner: ResBody) -> Self {
        LoggedBody { inner, log: None, timing: None }
    }
    pub fn logged(inner: ResBody, log: Box<PendingLog>) -> Self {
        LoggedBody { inner, log: Some(log), timing: None }
    }
    /// Records the request-time histograms when the body ends.
    pub fn timed(mut self, timing: RqTiming) -> Self {
        self.timing = Some(timing);
        self
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(t) = self.timing.take() {
            t.record();
        }
        if let Some(log) = self.log.take() {
            log.write();
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match (this.log.as_mut(), &polled) {
            (Some(log), Poll::Ready(Some(Ok(frame)))) => {
                if let Some(data) = frame.data_ref() {
                    log.bytes_sent += data.len() as u64;
                } else if let Some(t) = frame.trailers_ref() {
                    log.trailers = Some(t.clone());
                }
            }
            (Some(log), Poll::Ready(Some(Err(e)))) => {
                if let Some((flag, details)) = super::body::upstream_body_failure(e.as_ref()) {
                    if log.trace.response_flags.is_empty() {
                        log.trace.response_flags = flag;
                    }
                    log.trace.details = Some(details);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::transport_failure;

    #[test]
    fn transport_failure_is_the_part_after_the_reset_reason() {
        assert_eq!(
            transport_failure(
                "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
            ),
            Some("delayed_connect_error:_Connection_refused")
        );
        assert_eq!(transport_failure("upstream_reset_before_response_started{connection_termination}"), None);
        assert_eq!(transport_failure("via_upstream"), None);
    }
}
