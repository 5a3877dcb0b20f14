//! An upstream connection's life as Envoy counts it (`upstream_cx_active` of the cluster and
//! the host, `upstream_cx_destroy`, `upstream_cx_length_ms`) and its place under
//! `max_connections`, held by the connection's byte stream: they last as long as the socket,
//! also after an upgrade (WebSocket) hands the socket from hyper's connection to a tunnel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::breakers::ConnectionSlot;
use crate::stats::{Counter, GaugeGuard, Histogram};

/// Counted open from its creation; counted closed when dropped.
pub struct ConnLife {
    pub _active: GaugeGuard,
    pub _host_active: GaugeGuard,
    pub destroy: Counter,
    pub length: Histogram,
    pub opened: Instant,
    pub _slot: ConnectionSlot,
}

impl Drop for ConnLife {
    fn drop(&mut self) {
        self.length.record_duration(self.opened.elapsed());
        self.destroy.inc();
        // The gauges and the slot are released after this, as the fields drop.
    }
}

/// A connection's IO that carries its [`ConnLife`].
pub struct Lived<T> {
    inner: T,
    _life: ConnLife,
}

impl<T> Lived<T> {
    pub fn new(inner: T, life: ConnLife) -> Self {
        Lived { inner, _life: life }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Lived<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Lived<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
