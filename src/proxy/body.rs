//! The body of a response sent downstream (the upstream's, within its timers, or a local
//! reply), and the request-body types the proxy takes from [`crate::body`]. An enum rather
//! than a boxed trait object, so that a response allocates no body box.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

pub use crate::body::{client_body_failure, BodyError, ClientBodyFailure, ReqBody};
use crate::stats::Counter;
use crate::upstream::response::UpstreamBody;

/// Envoy's response flag and details for an upstream response body that broke off after its
/// headers were passed on: an HTTP/1.1 upstream closing early or breaking its framing is a
/// protocol error (`UPE`) to Envoy. `None` for errors told elsewhere (the route timeout) or
/// left as they are (HTTP/2 stream errors).
pub fn upstream_body_failure(e: &(dyn std::error::Error + 'static)) -> Option<(&'static str, &'static str)> {
    const UPE: (&str, &str) = ("UPE", "upstream_reset_after_response_started{protocol_error}");
    if e.is::<crate::upstream::h1::Error>() {
        return Some(UPE);
    }
    let hyper_error = e.downcast_ref::<hyper::Error>()?;
    let h2 = std::error::Error::source(hyper_error).is_some_and(|s| s.is::<h2::Error>());
    (!h2).then_some(UPE)
}

/// The route timeout ran out while the upstream was still sending the body.
#[derive(Debug, thiserror::Error)]
#[error("upstream request timeout")]
pub struct BodyTimeout;

/// The route's `max_stream_duration` ended while the response body was still streaming:
/// Envoy resets the stream.
#[derive(Debug, thiserror::Error)]
#[error("downstream duration timeout")]
pub struct BodyDurationTimeout;

/// The upstream sent nothing of the body for the `stream_idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("stream idle timeout")]
pub struct BodyIdleTimeout;

/// A deadline on the response body and the counter its expiry moves.
pub type Deadline = Option<(tokio::time::Instant, Counter)>;
/// An idle limit on the response body (from its last frame) and the counter its expiry moves.
pub type IdleLimit = Option<(std::time::Duration, Counter)>;

/// The timers of a streamed response body: the route timeout (which in Envoy covers the
/// whole response), the connection manager's `stream_idle_timeout` and the route's
/// `max_stream_duration`, on one timer that wakes at the earliest and is only moved when it
/// fires. The timer is armed the first time the body has nothing to give: a body that is
/// whole when its head arrives (most small answers) never registers one.
pub struct BodyTimers {
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    limits: Limits,
    /// When the last frame came; before the first, when the body was first found waiting.
    last: Option<tokio::time::Instant>,
}

/// The deadlines and idle limits a response body is under, with the counters they move.
struct Limits {
    /// When the route timeout ends, and `upstream_rq_timeout`.
    route: Option<(tokio::time::Instant, Counter)>,
    /// `stream_idle_timeout` and `downstream_rq_idle_timeout`.
    idle: Option<(std::time::Duration, Counter)>,
    /// When the stream's `max_stream_duration` ends, and `downstream_rq_max_duration_reached`.
    duration: Option<(tokio::time::Instant, Counter)>,
    /// The retry policy's `per_try_idle_timeout` and `upstream_rq_per_try_idle_timeout`.
    try_idle: Option<(std::time::Duration, Counter)>,
}

impl Limits {
    /// The earliest moment one may expire, given the last frame's.
    fn next(&self, last: tokio::time::Instant) -> Option<tokio::time::Instant> {
        let idle = self.idle.as_ref().map(|i| last + i.0);
        let try_idle = self.try_idle.as_ref().map(|i| last + i.0);
        [self.route.as_ref().map(|r| r.0), idle, self.duration.as_ref().map(|d| d.0), try_idle]
            .into_iter()
            .flatten()
            .min()
    }

    /// The error of the first limit passed at `now`, its counter moved.
    fn expired(&self, now: tokio::time::Instant, last: tokio::time::Instant) -> Option<BodyError> {
        if let Some((at, counter)) = &self.route {
            if *at <= now {
                counter.inc();
                return Some(Box::new(BodyTimeout));
            }
        }
        if let Some((at, counter)) = &self.duration {
            if *at <= now {
                counter.inc();
                return Some(Box::new(BodyDurationTimeout));
            }
        }
        if let Some((idle, counter)) = &self.try_idle {
            if last + *idle <= now {
                counter.inc();
                return Some(Box::new(BodyTimeout));
            }
        }
        if let Some((idle, counter)) = &self.idle {
            if last + *idle <= now {
                counter.inc();
                return Some(Box::new(BodyIdleTimeout));
            }
        }
        None
    }
}

impl BodyTimers {
    /// `None` when no timeout applies.
    pub fn new(
        route: Option<(tokio::time::Instant, Counter)>,
        idle: Option<(std::time::Duration, Counter)>,
        (duration, try_idle): (Deadline, IdleLimit),
    ) -> Option<Box<Self>> {
        if route.is_none() && idle.is_none() && duration.is_none() && try_idle.is_none() {
            return None;
        }
        Some(Box::new(BodyTimers { timer: None, limits: Limits { route, idle, duration, try_idle }, last: None }))
    }

    /// A frame came.
    fn touch(&mut self) {
        if self.limits.idle.is_some() || self.limits.try_idle.is_some() {
            self.last = Some(tokio::time::Instant::now());
        }
    }

    /// The error ending the body when a timeout expired; arms the timer on the first wait.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<BodyError> {
        if self.timer.is_none() {
            let last = *self.last.get_or_insert_with(tokio::time::Instant::now);
            let Some(first) = self.limits.next(last) else { return Poll::Pending };
            self.timer = Some(Box::pin(tokio::time::sleep_until(first)));
        }
        let Some(timer) = self.timer.as_mut() else { return Poll::Pending };
        // Bounded: each turn either expires or moves the timer to a later deadline.
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = tokio::time::Instant::now();
            let last = self.last.unwrap_or(now);
            if let Some(e) = self.limits.expired(now, last) {
                return Poll::Ready(e);
            }
            match self.limits.next(last) {
                Some(next) => timer.as_mut().reset(next),
                None => return Poll::Pending,
            }
        }
    }
}

/// The body of a response sent downstream: the upstream's, streamed (within the route timeout
/// and the stream idle timeout), or a local reply.
pub enum ResBody {
    /// The upstream's body; with `true` its trailers are dropped (an HTTP/1.1 upstream without
    /// `enable_trailers`).
    Upstream(UpstreamBody, bool),
    UpstreamUntil {
        body: UpstreamBody,
        timers: Box<BodyTimers>,
        drop_trailers: bool,
    },
    Full(Option<Bytes>),
    /// No bytes, but of unknown length: hyper frames it as chunked (Envoy's HEAD replies).
    EmptyUnsized,
    /// Compressed on the fly by a compressor filter.
    Compressed(Box<crate::filters::Compressing>),
    /// Decompressed on the fly by a decompressor filter.
    Decompressed(Box<crate::filters::Decompressing<ResBody>>),
    /// Made by a gRPC filter (gRPC-Web's conversion, a bridged body that failed).
    Grpc(Box<crate::filters::GrpcResBody>),
}

impl ResBody {
    pub fn empty() -> Self {
        ResBody::Full(None)
    }
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        if b.is_empty() {
            ResBody::Full(None)
        } else {
            ResBody::Full(Some(b))
        }
    }
}

/// The upstream body's next frame; trailers end the body instead when `drop_trailers`.
fn upstream_frame(
    body: &mut UpstreamBody,
    drop_trailers: bool,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
    match Pin::new(body).poll_frame(cx) {
        Poll::Ready(Some(Ok(frame))) if drop_trailers && frame.is_trailers() => Poll::Ready(None),
        other => other,
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ResBody::Upstream(b, drop_trailers) => upstream_frame(b, *drop_trailers, cx),
            ResBody::UpstreamUntil { body, timers, drop_trailers } => {
                if let Poll::Ready(frame) = upstream_frame(body, *drop_trailers, cx) {
                    timers.touch();
                    return Poll::Ready(frame);
                }
                timers.poll_expired(cx).map(|e| Some(Err(e)))
            }
            ResBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
            ResBody::EmptyUnsized => Poll::Ready(None),
            ResBody::Compressed(c) => c.poll_frame(cx),
            ResBody::Decompressed(d) => d.poll_frame(cx),
            ResBody::Grpc(g) => g.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Upstream(b, _) | ResBody::UpstreamUntil { body: b, .. } => b.is_end_stream(),
            ResBody::Full(b) => b.is_none(),
            ResBody::EmptyUnsized => false,
            ResBody::Compressed(c) => c.is_end_stream(),
            ResBody::Decompressed(d) => d.is_end_stream(),
            ResBody::Grpc(g) => g.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::EmptyUnsized => SizeHint::default(),
            ResBody::Upstream(b, _) | ResBody::UpstreamUntil { body: b, .. } => b.size_hint(),
            ResBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ResBody::Full(None) => SizeHint::with_exact(0),
            ResBody::Compressed(c) => c.size_hint(),
            ResBody::Decompressed(d) => d.size_hint(),
            ResBody::Grpc(g) => g.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::Store;

    async fn expiry(t: &mut BodyTimers) -> BodyError {
        std::future::poll_fn(|cx| t.poll_expired(cx)).await
    }

    #[test]
    fn no_limit_no_timers() {
        assert!(BodyTimers::new(None, None, (None, None)).is_none());
    }

    /// Timers under a route deadline `route` from now and an idle limit `idle`.
    fn timers(route: Duration, idle: Duration, counters: &(Counter, Counter)) -> Box<BodyTimers> {
        let deadline = tokio::time::Instant::now() + route;
        let t = BodyTimers::new(Some((deadline, counters.0.clone())), Some((idle, counters.1.clone())), (None, None));
        t.unwrap_or_else(|| panic!("timers expected"))
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_is_armed_at_the_first_wait_and_idle_counts_from_the_last_frame() {
        use futures_util::FutureExt;
        let store = Store::new();
        let counters = (store.counter("route"), store.counter("idle"));
        let start = tokio::time::Instant::now();
        let mut t = timers(Duration::from_secs(1), Duration::from_millis(300), &counters);
        assert!(t.timer.is_none(), "nothing registered before the body waits");
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Frames keep coming: the idle limit moves with them.
        let e = {
            let mut waited = Box::pin(expiry(&mut t));
            assert!(waited.as_mut().now_or_never().is_none());
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(waited);
            t.touch();
            expiry(&mut t).await
        };
        assert!(e.is::<BodyIdleTimeout>(), "{e}");
        assert_eq!(start.elapsed(), Duration::from_millis(600), "300 ms after the frame at 300 ms");
        assert_eq!((counters.0.value(), counters.1.value()), (0, 1));
        // The route deadline still holds when frames keep the idle timer away.
        let start = tokio::time::Instant::now();
        let mut t = timers(Duration::from_millis(500), Duration::from_secs(60), &counters);
        let e = expiry(&mut t).await;
        assert!(e.is::<BodyTimeout>(), "{e}");
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        assert_eq!((counters.0.value(), counters.1.value()), (1, 1));
    }
}
