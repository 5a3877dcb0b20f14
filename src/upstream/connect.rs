//! How a pool reaches its host: the seam between the connection pool and the network.
//!
//! In the proxy every connection is TCP, and for a cluster with an `UpstreamTlsContext` TLS
//! over it (the handshake is part of connecting, under the same `connect_timeout`). Unit tests put an in-memory fake upstream
//! ([`super::fake`]) behind the same seam, so that the pool, forwarding, retries and timeouts
//! run unchanged against scripted answers in tokio's paused time (the way linkerd2-proxy tests
//! its outbound stack with mock connections). Both types are enums rather than trait objects,
//! so the seam costs no dispatch and no allocation.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Makes a pool's connections.
#[derive(Clone)]
pub enum Connector {
    Tcp,
    /// TCP then the cluster's TLS handshake.
    Tls(std::sync::Arc<crate::tls::connect::UpstreamTls>),
    /// TCP then the cluster's TLS handshake for one request name (`auto_sni`).
    TlsTo(std::sync::Arc<crate::tls::connect::UpstreamTls>, std::sync::Arc<crate::tls::auto_sni::Target>),
    #[cfg(test)]
    Fake(std::sync::Arc<super::fake::FakeUpstream>),
}

impl Connector {
    /// Opens a connection to `addr`; the caller bounds it with the connect timeout.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<UpstreamIo> {
        match self {
            Connector::Tcp => {
                let stream = TcpStream::connect(addr).await?;
                let _ = stream.set_nodelay(true);
                Ok(UpstreamIo::Tcp(stream))
            }
            Connector::Tls(tls) => {
                let stream = TcpStream::connect(addr).await?;
                let _ = stream.set_nodelay(true);
                Ok(UpstreamIo::Tls(Box::new(tls.handshake(stream, addr).await?)))
            }
            Connector::TlsTo(tls, target) => {
                let stream = TcpStream::connect(addr).await?;
                let _ = stream.set_nodelay(true);
                Ok(UpstreamIo::Tls(Box::new(tls.handshake_to(target, stream, addr).await?)))
            }
            #[cfg(test)]
            Connector::Fake(fake) => fake.connect().await.map(UpstreamIo::Memory),
        }
    }
}

impl UpstreamIo {
    /// The TLS handshake chose HTTP/2 by ALPN.
    pub fn alpn_h2(&self) -> bool {
        match self {
            UpstreamIo::Tls(s) => s.get_ref().1.alpn_protocol() == Some(b"h2"),
            _ => false,
        }
    }
}

/// One upstream connection's byte stream.
pub enum UpstreamIo {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    #[cfg(test)]
    Memory(tokio::io::DuplexStream),
}

impl AsyncRead for UpstreamIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(test)]
            UpstreamIo::Memory(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(test)]
            UpstreamIo::Memory(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            #[cfg(test)]
            UpstreamIo::Memory(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Tcp(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
            #[cfg(test)]
            UpstreamIo::Memory(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Tcp(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(test)]
            UpstreamIo::Memory(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(test)]
            UpstreamIo::Memory(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
