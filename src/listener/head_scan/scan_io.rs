//! [`ScanIo`]: a connection's reads followed by a [`HeadScan`] until it reports or stops.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::HeadScan;
use crate::proxy::ConnCtx;

/// The connection's reads, followed by a [`HeadScan`] until it reports or stops; a report goes
/// to the connection's context, where the service looks for it.
pub struct ScanIo<T> {
    inner: T,
    scan: Option<HeadScan>,
    ctx: Arc<ConnCtx>,
}

impl<T> ScanIo<T> {
    /// `scan` is `None` for h2 connections (nothing is followed), or one already fed the
    /// connection's first bytes.
    pub fn new(inner: T, scan: Option<HeadScan>, ctx: Arc<ConnCtx>) -> Self {
        let scan = scan.filter(|s| !s.is_off());
        ScanIo { inner, scan, ctx }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ScanIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(scan)) = (&polled, &mut this.scan) {
            if let Some(flagged) = scan.feed(&mut buf.filled_mut()[before..]) {
                let _ = this.ctx.head_flaw.set(flagged);
            }
            if scan.is_off() {
                this.scan = None;
            }
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
