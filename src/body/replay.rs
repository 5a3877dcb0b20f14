//! Envoy's retry buffer for a streamed request body: what the client sends is kept as it is
//! forwarded, so that a retry can send it again from the start and then go on with the rest
//! of the stream. At most `limit` bytes are kept; past that the copy is dropped, the request
//! is no longer retried and `retry_or_shadow_abandoned` counts it, as in Envoy.
//!
//! The limit is the listener's `per_connection_buffer_limit_bytes` (Envoy's decoder buffer
//! limit). A body of known length within it is read whole before the first attempt instead
//! (`BodySource::Replayable`); this module is for chunked or HTTP/2 bodies of unknown length
//! (gRPC calls, for one) and for those larger than the limit.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::{BodyError, ReqBody};
use crate::stats::Counter;

/// What every attempt of one request shares: the client's stream and the copy of what has
/// been read from it. Locked once per frame, by one attempt at a time: never contended.
pub struct Recording {
    inner: Arc<Mutex<Recorded>>,
}

struct Recorded {
    /// The attempt allowed to read; an older attempt's body fails when polled again, so
    /// that its upstream request is aborted rather than ended early (a chunked request cut
    /// short would look complete to the upstream).
    attempt: u32,
    /// Whoever last waited on the stream: woken when a newer attempt takes over, so that
    /// the older upstream request is aborted now rather than when the upstream gives up.
    waiting: Option<Waker>,
    source: ReqBody,
    chunks: Vec<Bytes>,
    bytes: u64,
    trailers: Option<HeaderMap>,
    ended: bool,
    /// The copy is whole: false once it overflowed or the client's stream failed.
    replayable: bool,
    limit: u64,
    abandoned: Counter,
}

/// An older attempt's body, polled after a retry took the stream over.
#[derive(Debug, thiserror::Error)]
#[error("request body taken over by a retry")]
struct Superseded;

impl Recording {
    pub fn new(source: ReqBody, limit: u64, abandoned: Counter) -> Self {
        let rec = Recorded {
            attempt: 0,
            waiting: None,
            source,
            chunks: Vec::new(),
            bytes: 0,
            trailers: None,
            ended: false,
            replayable: true,
            limit,
            abandoned,
        };
        Recording { inner: Arc::new(Mutex::new(rec)) }
    }

    /// Another handle on the same recording, for the mirrors, which read it once it is whole.
    pub fn handle(&self) -> Recording {
        Recording { inner: Arc::clone(&self.inner) }
    }

    /// The body as the client sent it, its data and its trailers, once its stream has ended
    /// within the limit; `None` before, and when the copy was dropped.
    pub fn whole(&self) -> Option<(Bytes, Option<HeaderMap>)> {
        let rec = lock(&self.inner);
        // A sender stops at the announced length without polling for the end.
        if !(rec.ended || rec.source.is_end_stream()) || !rec.replayable {
            return None;
        }
        let data = match rec.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => many.concat().into(),
        };
        Some((data, rec.trailers.clone()))
    }

    /// Whether another attempt could send the whole body again.
    pub fn replayable(&self) -> bool {
        lock(&self.inner).replayable
    }

    /// A retry is coming: the current attempt stops reading (as Envoy resets the upstream
    /// request it retries), so that nothing reads the client's body during the back-off.
    /// Whether the copy is whole, checked after that stop so that no read can race it.
    pub fn hold(&self) -> bool {
        let mut rec = lock(&self.inner);
        rec.attempt += 1;
        if let Some(w) = rec.waiting.take() {
            w.wake();
        }
        rec.replayable
    }

    /// The body for the next attempt: what was recorded, then the rest of the stream. The
    /// previous attempt's body stops reading. `None` when the copy is not whole.
    pub fn attempt(&self) -> Option<ReqBody> {
        let mut rec = lock(&self.inner);
        if rec.attempt > 0 && !rec.replayable {
            return None;
        }
        rec.attempt += 1;
        if let Some(w) = rec.waiting.take() {
            w.wake();
        }
        let replay =
            Replay { rec: Arc::clone(&self.inner), attempt: rec.attempt, next: 0, sent: 0, trailers_sent: false };
        Some(ReqBody::Replay(Box::new(replay)))
    }
}

/// One attempt's view of the recording.
pub struct Replay {
    rec: Arc<Mutex<Recorded>>,
    attempt: u32,
    /// The next recorded chunk to send.
    next: usize,
    /// Recorded bytes sent so far (for the size hint).
    sent: u64,
    trailers_sent: bool,
}

impl Replay {
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut rec = lock(&self.rec);
        if rec.attempt != self.attempt {
            return Poll::Ready(Some(Err(Box::new(Superseded))));
        }
        if rec.replayable {
            if let Some(chunk) = rec.chunks.get(self.next) {
                let chunk = chunk.clone();
                self.next += 1;
                self.sent += chunk.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
        }
        if !self.trailers_sent {
            if let Some(t) = &rec.trailers {
                self.trailers_sent = true;
                return Poll::Ready(Some(Ok(Frame::trailers(t.clone()))));
            }
        }
        if rec.ended {
            return Poll::Ready(None);
        }
        let rec = &mut *rec;
        match Pin::new(&mut rec.source).poll_frame(cx) {
            Poll::Pending => {
                if !rec.waiting.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    rec.waiting = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    rec.record(data);
                    self.next = rec.chunks.len();
                    self.sent = rec.bytes;
                } else if let Some(t) = frame.trailers_ref() {
                    rec.trailers = Some(t.clone());
                    self.trailers_sent = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // The client's body broke: no attempt can send it whole any more.
                rec.replayable = false;
                rec.chunks = Vec::new();
                rec.ended = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                rec.ended = true;
                Poll::Ready(None)
            }
        }
    }

    pub fn is_end_stream(&self) -> bool {
        let rec = lock(&self.rec);
        rec.attempt == self.attempt
            && rec.ended
            && (!rec.replayable || self.next >= rec.chunks.len())
            && (self.trailers_sent || rec.trailers.is_none())
    }

    pub fn size_hint(&self) -> SizeHint {
        let rec = lock(&self.rec);
        let recorded = if rec.replayable { rec.bytes.saturating_sub(self.sent) } else { 0 };
        let rest = if rec.ended { SizeHint::with_exact(0) } else { rec.source.size_hint() };
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + recorded);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + recorded);
        }
        hint
    }
}

impl Recorded {
    fn record(&mut self, data: &Bytes) {
        if !self.replayable {
            return;
        }
        self.bytes += data.len() as u64;
        if self.bytes > self.limit {
            self.replayable = false;
            self.chunks = Vec::new();
            self.abandoned.inc();
            tracing::debug!(limit = self.limit, "request body over the retry buffer limit: not retried");
        } else {
            self.chunks.push(data.clone());
        }
    }
}

fn lock(m: &Mutex<Recorded>) -> MutexGuard<'_, Recorded> {
    // A panic while holding the lock leaves counters and chunks consistent enough to go on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
