//! The two body types the proxy moves: requests sent upstream and responses sent downstream.
//! Both are enums rather than boxed trait objects so that a request allocates no body box.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::stats::Counter;

/// The body of a request sent upstream: streamed from downstream, or replayed from memory
/// (retries of a buffered request).
pub enum ReqBody {
    /// Streamed from downstream; the counter (when an access log wants it) sees every byte.
    Stream(Incoming, Option<Arc<AtomicU64>>),
    Full(Option<Bytes>),
}

impl ReqBody {
    pub fn empty() -> Self {
        ReqBody::Full(None)
    }

    /// Reads, without waiting, what the client has already sent (at most 64 frames), so that
    /// `%BYTES_RECEIVED%` counts it when the request fails before it was forwarded: Envoy reads
    /// the body while it connects and logs what it read.
    pub fn read_ready(&mut self) {
        if let ReqBody::Stream(..) = self {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            for _ in 0..64 {
                match Pin::new(&mut *self).poll_frame(&mut cx) {
                    Poll::Ready(Some(Ok(_))) => {}
                    _ => break,
                }
            }
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Stream(b, counter) => {
                let polled = Pin::new(b).poll_frame(cx);
                if let (Some(c), Poll::Ready(Some(Ok(frame)))) = (counter, &polled) {
                    if let Some(d) = frame.data_ref() {
                        c.fetch_add(d.len() as u64, Ordering::Relaxed);
                    }
                }
                polled
            }
            ReqBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Stream(b, _) => b.is_end_stream(),
            ReqBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Stream(b, _) => b.size_hint(),
            ReqBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ReqBody::Full(None) => SizeHint::with_exact(0),
        }
    }
}

/// An error ending a streamed response body.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The route timeout ran out while the upstream was still sending the body.
#[derive(Debug, thiserror::Error)]
#[error("upstream request timeout")]
pub struct BodyTimeout;

/// The body of a response sent downstream: the upstream's, streamed (within the route timeout,
/// which in Envoy covers the whole response), or a local reply.
pub enum ResBody {
    Upstream(Incoming),
    UpstreamUntil {
        body: Incoming,
        deadline: Pin<Box<tokio::time::Sleep>>,
        on_timeout: Option<Counter>,
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
            ResBody::UpstreamUntil { body, deadline, on_timeout } => {
                if let Poll::Ready(frame) = Pin::new(body).poll_frame(cx) {
                    return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
                }
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        if let Some(c) = on_timeout.take() {
                            c.inc();
                        }
                        Poll::Ready(Some(Err(Box::new(BodyTimeout))))
                    }
                    Poll::Pending => Poll::Pending,
                }
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
