//! The body of a request sent upstream, and how a client's body failing is told apart from
//! the upstream failing. An enum rather than a boxed trait object, so that a request
//! allocates no body box.

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
    /// Transformed by a filter of the chain (a decompressor, a request compressor).
    Filtered(Box<crate::filters::FilteredBody>),
    /// A whole body given as its frames (data, then trailers), its length not announced: a
    /// copy of a streamed one (a mirror's), framed as the headers say (`content-length`, or
    /// chunked over HTTP/1.1 without one), as the original was.
    Frames(Box<VecDeque<Frame<Bytes>>>),
}

/// Frames read ahead of the upstream connection, then the rest of the stream.
pub struct ReadAhead {
    frames: VecDeque<Result<Frame<Bytes>, BodyError>>,
    /// Data bytes in `frames`.
    bytes: u64,
    /// The stream gave its last frame (or an error) into `frames`.
    ended: bool,
    /// The stream announced its length (`content-length`): once read whole, the body's length
    /// is exact. A chunked one read whole keeps an unknown length, so that the upstream gets it
    /// chunked as Envoy sends it, not with a `content-length`.
    sized: bool,
    rest: ReqBody,
}

/// At most this much of a body is held while the upstream connection is made (Envoy's
/// default connection buffer limit); past it the client waits, as it would for the upstream.
const READ_AHEAD_LIMIT: u64 = 1024 * 1024;

impl ReqBody {
    pub fn empty() -> Self {
        ReqBody::Full(None)
    }

    /// Frames already read of `rest` (by a filter), then `rest`.
    pub fn with_prefix(frames: VecDeque<Frame<Bytes>>, rest: ReqBody) -> Self {
        let bytes = frames.iter().map(|f| f.data_ref().map_or(0, |d| d.len() as u64)).sum();
        let frames = frames.into_iter().map(Ok).collect();
        let sized = rest.size_hint().exact().is_some();
        ReqBody::Ahead(Box::new(ReadAhead { frames, bytes, ended: false, sized, rest }))
    }

    /// Reads and holds what the client sends, until `connect` is done: Envoy reads the body
    /// while it connects, so a connect that fails logs the bytes the client sent meanwhile.
    /// Bounded by `READ_AHEAD_LIMIT`; never waits longer than `connect` itself.
    pub async fn read_while<T>(&mut self, connect: impl Future<Output = T>) -> T {
        if let ReqBody::Stream(..) | ReqBody::Replay(_) | ReqBody::Filtered(_) = self {
            let rest = std::mem::replace(self, ReqBody::empty());
            let sized = rest.size_hint().exact().is_some();
            *self =
                ReqBody::Ahead(Box::new(ReadAhead { frames: VecDeque::new(), bytes: 0, ended: false, sized, rest }));
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
            ReqBody::Stream(..) | ReqBody::Replay(_) | ReqBody::Filtered(_) => 64,
            ReqBody::Ahead(a) => 64 + a.frames.len(),
            ReqBody::Full(_) | ReqBody::Frames(_) => return,
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
            ReqBody::Filtered(f) => Pin::new(&mut **f).poll_frame(cx),
            ReqBody::Frames(f) => Poll::Ready(f.pop_front().map(Ok)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Stream(b, ..) => b.is_end_stream(),
            ReqBody::Ahead(a) => a.frames.is_empty() && (a.ended || a.rest.is_end_stream()),
            ReqBody::Replay(r) => r.is_end_stream(),
            ReqBody::Full(b) => b.is_none(),
            ReqBody::Filtered(f) => f.is_end_stream(),
            ReqBody::Frames(f) => f.is_empty(),
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
                    (true, false) if a.sized => SizeHint::with_exact(0),
                    (true, false) => SizeHint::new(),
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
            ReqBody::Filtered(f) => f.size_hint(),
            ReqBody::Frames(f) if f.is_empty() => SizeHint::with_exact(0),
            ReqBody::Frames(_) => SizeHint::new(),
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
    /// The gRPC-Web filter could not base64-decode it: the filter's 400.
    GrpcWebText(crate::filters::GrpcWebTextFailure),
}

/// How the client's body failed, when `e` or an error it wraps is that failure.
pub fn client_body_failure(e: &(dyn std::error::Error + 'static)) -> Option<ClientBodyFailure> {
    let mut cause = Some(e);
    let mut ours = false;
    // hyper wraps the body's error once or twice; the bound guards against a cyclic chain.
    for _ in 0..8 {
        let Some(e) = cause else { break };
        if let Some(invalid) = e.downcast_ref::<crate::filters::InvalidGrpcWebText>() {
            // The client's gRPC-Web text was not base64: Envoy's filter answers 400.
            return Some(ClientBodyFailure::GrpcWebText(invalid.0));
        }
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
