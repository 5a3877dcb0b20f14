//! [`ScanIo`]: a connection's reads followed by a [`HeadScan`] until it reports or stops, and
//! the stream idle timeout of a request head that stops arriving halfway.
//!
//! Envoy's connection manager starts a stream, and its `stream_idle_timeout`, with the first
//! bytes of a request; a head that never completes gets `408 stream timeout` when it runs
//! out. hyper's own header read timer cannot stand in for it: it also runs while a keep-alive
//! connection waits for its next request, which Envoy leaves to the connection's
//! `idle_timeout`. So hyper's is off, and this one runs only while a head is in progress.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::HeadScan;
use crate::proxy::request_head::HeadRejection;
use crate::proxy::ConnCtx;

/// Envoy's answer to a head that ran out of its stream idle timeout.
const HEAD_TIMEOUT: HeadRejection = HeadRejection {
    status: http::StatusCode::REQUEST_TIMEOUT,
    body: "stream timeout",
    flag: "SI",
    details: "stream_idle_timeout",
    close: true,
};

/// The stream idle timeout of a head in progress: its length, the listener's `server`, and
/// the timer while a head is arriving.
pub struct HeadTimeout {
    period: Duration,
    server: HeaderValue,
    /// The timer of the head in progress, and how many heads were whole before it.
    timer: Option<(Pin<Box<tokio::time::Sleep>>, u64)>,
}

impl HeadTimeout {
    pub fn new(period: Duration, server: HeaderValue) -> Self {
        HeadTimeout { period, server, timer: None }
    }
}

/// The connection's reads, followed by a [`HeadScan`] until it reports or stops; a report goes
/// to the connection's context, where the service looks for it.
pub struct ScanIo<T> {
    inner: T,
    scan: Option<HeadScan>,
    ctx: Arc<ConnCtx>,
    head_timeout: Option<HeadTimeout>,
}

impl<T> ScanIo<T> {
    /// `scan` is `None` for h2 connections (nothing is followed), or one already fed the
    /// connection's first bytes. `head_timeout`: the manager's `stream_idle_timeout`.
    pub fn new(inner: T, scan: Option<HeadScan>, ctx: Arc<ConnCtx>, head_timeout: Option<HeadTimeout>) -> Self {
        let scan = scan.filter(|s| !s.is_off());
        let mut io = ScanIo { inner, scan, ctx, head_timeout };
        io.follow_head();
        io
    }

    /// Arms the head timer when a head has begun, disarms it once the head is whole.
    fn follow_head(&mut self) {
        let Some(t) = &mut self.head_timeout else { return };
        match &self.scan {
            // Still the head the timer was armed for.
            Some(scan) if scan.mid_head() && t.timer.as_ref().is_some_and(|(_, before)| *before == scan.heads()) => {}
            Some(scan) if scan.mid_head() => {
                t.timer = Some((Box::pin(tokio::time::sleep(t.period)), scan.heads()));
            }
            _ => t.timer = None,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> ScanIo<T> {
    /// The head in progress ran out of time: Envoy's 408 is written (as far as the socket
    /// takes it at once: the connection ends anyway), counted and logged.
    fn head_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(t) = &mut self.head_timeout else { return false };
        let Some((timer, _)) = &mut t.timer else { return false };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        t.timer = None;
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let reply = crate::listener::codec_reply::render(&HEAD_TIMEOUT, date.as_bytes(), &t.server);
        let _ = Pin::new(&mut self.inner).poll_write(cx, &reply);
        if let Some(hcm) = self.ctx.hcm(&self.ctx.shared.snapshot.load()) {
            hcm.stats.downstream_rq_idle_timeout.inc();
        }
        crate::proxy::log_codec_reply(&self.ctx, HEAD_TIMEOUT, HEAD_TIMEOUT.body.len() as u64);
        // No more requests: the scanner's work is over too.
        self.scan = None;
        self.head_timeout = None;
        true
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for ScanIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) => {
                if let Some(scan) = &mut this.scan {
                    if let Some(flagged) = scan.feed(&mut buf.filled_mut()[before..]) {
                        let _ = this.ctx.head_flaw.set(flagged);
                    }
                    if scan.is_off() {
                        this.scan = None;
                    }
                    this.follow_head();
                }
            }
            // The head stalled: the connection reads as closed, and hyper ends it without an
            // answer of its own (an incomplete head is no parse error).
            Poll::Pending if this.head_expired(cx) => return Poll::Ready(Ok(())),
            _ => {}
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ScanIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
