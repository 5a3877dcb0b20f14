//! The two body types the proxy moves: requests sent upstream and responses sent downstream.
//! Both are enums rather than boxed trait objects so that a request allocates no body box.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::progress::Progress;
use super::replay::Replay;
use crate::stats::Counter;

/// The body of a request sent upstream: streamed from downstream, or replayed from memory
/// (retries of a buffered request).
pub enum ReqBody {
    /// Streamed from downstream; the counter (when an access log wants it) sees every byte,
    /// the progress (when a stream timer wants it) when the client sent and finished.
    Stream(Incoming, Option<Arc<AtomicU64>>, Option<Arc<Progress>>),
    /// A stream some of which was read while the upstream connection was being made.
    Ahead(Box<ReadAhead>),
    /// Streamed and recorded, so that a retry can send it again (`super::replay`).
    Replay(Box<Replay>),
    Full(Option<Bytes>),
}

/// Frames read ahead of the upstream connection, then the rest of the stream.
pub struct ReadAhead {
    frames: VecDeque<Result<Frame<Bytes>, BodyError>>,
    /// Data bytes in `frames`.
    bytes: u64,
    /// The stream gave its last frame (or an error) into `frames`.
    ended: bool,
    rest: ReqBody,
}

/// At most this much of a body is held while the upstream connection is made (Envoy's
/// default connection buffer limit); past it the client waits, as it would for the upstream.
const READ_AHEAD_LIMIT: u64 = 1024 * 1024;

impl ReqBody {
    pub fn empty() -> Self {
        ReqBody::Full(None)
    }

    /// Reads and holds what the client sends, until `connect` is done: Envoy reads the body
    /// while it connects, so a connect that fails logs the bytes the client sent meanwhile.
    /// Bounded by `READ_AHEAD_LIMIT`; never waits longer than `connect` itself.
    pub async fn read_while<T>(&mut self, connect: impl Future<Output = T>) -> T {
        if let ReqBody::Stream(..) | ReqBody::Replay(_) = self {
            let rest = std::mem::replace(self, ReqBody::empty());
            *self = ReqBody::Ahead(Box::new(ReadAhead { frames: VecDeque::new(), bytes: 0, ended: false, rest }));
        }
        let mut connect = std::pin::pin!(connect);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = connect.as_mut().poll(cx) {
                return Poll::Ready(v);
            }
            if let ReqBody::Ahead(a) = self {
                while !a.ended && a.bytes < READ_AHEAD_LIMIT {
                    match Pin::new(&mut a.rest).poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            a.bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
                            a.frames.push_back(Ok(frame));
                        }
                        Poll::Ready(Some(Err(e))) => {
                            a.frames.push_back(Err(e));
                            a.ended = true;
                        }
                        Poll::Ready(None) => a.ended = true,
                        Poll::Pending => break,
                    }
                }
            }
            Poll::Pending
        })
        .await
    }

    /// The client's body already failed while it was read ahead: sending the request now
    /// would frame only the bytes decoded before the error, as if they were all of it.
    pub fn failure(&self) -> Option<ClientBodyFailure> {
        let ReqBody::Ahead(a) = self else { return None };
        match a.frames.back() {
            Some(Err(e)) => Some(client_body_failure(e.as_ref()).unwrap_or(ClientBodyFailure::Malformed)),
            _ => None,
        }
    }

    /// Reads, without waiting, what the client has already sent (at most 64 frames), so that
    /// `%BYTES_RECEIVED%` counts it when the request fails before it was forwarded: Envoy reads
    /// the body while it connects and logs what it read.
    pub fn read_ready(&mut self) {
        let frames = match self {
            ReqBody::Stream(..) | ReqBody::Replay(_) => 64,
            ReqBody::Ahead(a) => 64 + a.frames.len(),
            ReqBody::Full(_) => return,
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..frames {
            match Pin::new(&mut *self).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(_))) => {}
                _ => break,
            }
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ReqBody::Stream(b, counter, progress) => {
                let mut b = Pin::new(b);
                let polled = b.as_mut().poll_frame(cx);
                if let (Some(c), Poll::Ready(Some(Ok(frame)))) = (counter, &polled) {
                    if let Some(d) = frame.data_ref() {
                        c.fetch_add(d.len() as u64, Ordering::Relaxed);
                    }
                }
                if let (Some(p), Poll::Ready(r)) = (progress, &polled) {
                    // The writer may stop at the last byte of a known length without
                    // polling for the end, so the end is also read from the stream's state.
                    match r {
                        Some(Ok(_)) if !b.is_end_stream() => p.touch(),
                        _ => p.end(),
                    }
                }
                polled.map_err(|e| Box::new(DownstreamBodyError(e)) as BodyError)
            }
            ReqBody::Replay(r) => r.poll_frame(cx),
            ReqBody::Ahead(a) => match a.frames.pop_front() {
                Some(f) => {
                    if let Ok(d) = &f {
                        a.bytes = a.bytes.saturating_sub(d.data_ref().map_or(0, |d| d.len() as u64));
                    }
                    Poll::Ready(Some(f))
                }
                None if a.ended => Poll::Ready(None),
                None => Pin::new(&mut a.rest).poll_frame(cx),
            },
            ReqBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Stream(b, ..) => b.is_end_stream(),
            ReqBody::Ahead(a) => a.frames.is_empty() && (a.ended || a.rest.is_end_stream()),
            ReqBody::Replay(r) => r.is_end_stream(),
            ReqBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Stream(b, ..) => b.size_hint(),
            ReqBody::Replay(r) => r.size_hint(),
            // The stream's hint counts only what it has not given yet. A body that failed has
            // no length: an exact one would let the bytes before the error pass as complete.
            ReqBody::Ahead(a) => {
                let rest = match (a.ended, self.failure().is_some()) {
                    (_, true) => SizeHint::new(),
                    (true, false) => SizeHint::with_exact(0),
                    (false, false) => a.rest.size_hint(),
                };
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + a.bytes);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + a.bytes);
                }
                hint
            }
            ReqBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ReqBody::Full(None) => SizeHint::with_exact(0),
        }
    }
}

/// An error ending a streamed body.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The client's request body broke (a malformed chunk, a connection cut short): told apart
/// from upstream errors so that the request ends as Envoy's codec error (400), never as an
/// upstream failure.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub struct DownstreamBodyError(#[source] hyper::Error);

/// How the client's request body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientBodyFailure {
    /// Its framing broke (a malformed chunk): Envoy's codec error, a 400.
    Malformed,
    /// The client went away (closed before the end, reset its h2 stream): Envoy logs `DC`.
    Disconnected,
}

/// How the client's body failed, when `e` or an error it wraps is that failure.
pub fn client_body_failure(e: &(dyn std::error::Error + 'static)) -> Option<ClientBodyFailure> {
    let mut cause = Some(e);
    let mut ours = false;
    // hyper wraps the body's error once or twice; the bound guards against a cyclic chain.
    for _ in 0..8 {
        let Some(e) = cause else { break };
        if e.is::<DownstreamBodyError>() {
            ours = true;
        } else if ours {
            let eof =
                e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
            let h2 = e.is::<h2::Error>();
            let incomplete = e.downcast_ref::<hyper::Error>().is_some_and(|h| h.is_incomplete_message());
            if eof || h2 || incomplete {
                return Some(ClientBodyFailure::Disconnected);
            }
        }
        cause = e.source();
    }
    ours.then_some(ClientBodyFailure::Malformed)
}

/// Envoy's response flag and details for an upstream response body that broke off after its
/// headers were passed on: an HTTP/1.1 upstream closing early or breaking its framing is a
/// protocol error (`UPE`) to Envoy. `None` for errors told elsewhere (the route timeout) or
/// left as they are (HTTP/2 stream errors).
pub fn upstream_body_failure(e: &(dyn std::error::Error + 'static)) -> Option<(&'static str, &'static str)> {
    let hyper_error = e.downcast_ref::<hyper::Error>()?;
    let h2 = std::error::Error::source(hyper_error).is_some_and(|s| s.is::<h2::Error>());
    (!h2).then_some(("UPE", "upstream_reset_after_response_started{protocol_error}"))
}

/// The route timeout ran out while the upstream was still sending the body.
#[derive(Debug, thiserror::Error)]
#[error("upstream request timeout")]
pub struct BodyTimeout;

/// The upstream sent nothing of the body for the `stream_idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("stream idle timeout")]
pub struct BodyIdleTimeout;

/// The timers of a streamed response body: the route timeout (which in Envoy covers the
/// whole response) and the connection manager's `stream_idle_timeout`, on one timer that
/// wakes at the earlier and is only moved when it fires.
pub struct BodyTimers {
    pub timer: Pin<Box<tokio::time::Sleep>>,
    /// When the route timeout ends, and `upstream_rq_timeout`.
    pub route: Option<(tokio::time::Instant, Counter)>,
    /// `stream_idle_timeout` and `downstream_rq_idle_timeout`.
    pub idle: Option<(std::time::Duration, Counter)>,
    /// When the last frame came.
    pub last: tokio::time::Instant,
}

impl BodyTimers {
    /// `None` when neither timeout applies (no timer is made).
    pub fn new(
        route: Option<(tokio::time::Instant, Counter)>,
        idle: Option<(std::time::Duration, Counter)>,
    ) -> Option<Box<Self>> {
        let last = tokio::time::Instant::now();
        let first = Self::next(route.as_ref(), idle.as_ref(), last)?;
        Some(Box::new(BodyTimers { timer: Box::pin(tokio::time::sleep_until(first)), route, idle, last }))
    }

    fn next(
        route: Option<&(tokio::time::Instant, Counter)>,
        idle: Option<&(std::time::Duration, Counter)>,
        last: tokio::time::Instant,
    ) -> Option<tokio::time::Instant> {
        match (route.map(|r| r.0), idle.map(|i| last + i.0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A frame came.
    fn touch(&mut self) {
        if self.idle.is_some() {
            self.last = tokio::time::Instant::now();
        }
    }

    /// The error ending the body when a timeout expired.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<BodyError> {
        // Bounded: each turn either expires or moves the timer to a later deadline.
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = tokio::time::Instant::now();
            if let Some((at, counter)) = &self.route {
                if *at <= now {
                    counter.inc();
                    return Poll::Ready(Box::new(BodyTimeout));
                }
            }
            if let Some((idle, counter)) = &self.idle {
                if self.last + *idle <= now {
                    counter.inc();
                    return Poll::Ready(Box::new(BodyIdleTimeout));
                }
            }
            match Self::next(self.route.as_ref(), self.idle.as_ref(), self.last) {
                Some(next) => self.timer.as_mut().reset(next),
                None => return Poll::Pending,
            }
        }
    }
}

/// The body of a response sent downstream: the upstream's, streamed (within the route timeout
/// and the stream idle timeout), or a local reply.
pub enum ResBody {
    Upstream(Incoming),
    UpstreamUntil {
        body: Incoming,
        timers: Box<BodyTimers>,
    },
    Full(Option<Bytes>),
    /// No bytes, but of unknown length: hyper frames it as chunked (Envoy's HEAD replies).
    EmptyUnsized,
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

impl Body for ResBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ResBody::Upstream(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ResBody::UpstreamUntil { body, timers } => {
                if let Poll::Ready(frame) = Pin::new(body).poll_frame(cx) {
                    timers.touch();
                    return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
                }
                timers.poll_expired(cx).map(|e| Some(Err(e)))
            }
            ResBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
            ResBody::EmptyUnsized => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Upstream(b) | ResBody::UpstreamUntil { body: b, .. } => b.is_end_stream(),
            ResBody::Full(b) => b.is_none(),
            ResBody::EmptyUnsized => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::EmptyUnsized => SizeHint::default(),
            ResBody::Upstream(b) | ResBody::UpstreamUntil { body: b, .. } => b.size_hint(),
            ResBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ResBody::Full(None) => SizeHint::with_exact(0),
        }
    }
}
