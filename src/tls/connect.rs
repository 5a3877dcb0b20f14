//! The TLS handshake of an upstream connection: a cluster's [`UpstreamTls`] (its
//! [`ClientTls`] context and its `cluster.<name>.ssl.*` stats) turns a connected TCP stream
//! into a TLS one, counting the handshake or its failure by cause as Envoy does. The pool
//! bounds the whole connect (TCP and handshake) with the cluster's `connect_timeout`, as
//! Envoy's connection is "connected" only once its transport socket's handshake is done.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::auto_sni::Target;
use super::client::ClientTls;
use super::stats::SslStats;
use crate::stats::Store;

/// A TLS cluster's handshakes.
pub struct UpstreamTls {
    pub tls: Arc<ClientTls>,
    pub stats: SslStats,
    /// The scheme the server signed the last full handshake with: a resumed session counts
    /// it again, as BoringSSL keeps it in the session Envoy resumes.
    last_sigalg: AtomicU16,
}

impl UpstreamTls {
    /// `cluster` is the cluster's stat name.
    pub fn new(tls: Arc<ClientTls>, store: &Arc<Store>, cluster: &str) -> Self {
        UpstreamTls { tls, stats: SslStats::for_cluster(store, cluster), last_sigalg: AtomicU16::new(0) }
    }

    /// Runs the handshake over `tcp` (connected to `addr`). The SNI is the context's `sni`;
    /// without one none is sent (rustls sends none for an IP address). The context's current
    /// certificates: a rotated one is presented from the next connection on.
    pub async fn handshake(&self, tcp: TcpStream, addr: SocketAddr) -> io::Result<TlsStream<TcpStream>> {
        let m = self.tls.material();
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&m.rustls));
        self.run(&connector, m.server_name.clone(), tcp, addr).await
    }

    /// The handshake of a connection for one request name (`auto_sni`, `auto_san_validation`).
    pub async fn handshake_to(
        &self,
        target: &Target,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> io::Result<TlsStream<TcpStream>> {
        let (connector, name) = target.connector(&self.tls);
        self.run(&connector, name, tcp, addr).await
    }

    /// Whether names come from requests, each with its own connections.
    pub fn per_request_names(&self) -> bool {
        self.tls.auto_sni.enabled()
    }

    async fn run(
        &self,
        connector: &tokio_rustls::TlsConnector,
        name: Option<ServerName<'static>>,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = name.unwrap_or(ServerName::IpAddress(addr.ip().into()));
        let (result, signed) = super::sigalgs::noting(connector.connect(name, tcp)).await;
        match result {
            Ok(stream) => {
                let (_, conn) = stream.get_ref();
                let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
                let curve = conn.negotiated_key_exchange_group().map(|g| g.name());
                let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                let sigalg = match signed {
                    Some(s) => {
                        self.last_sigalg.store(u16::from(s), Ordering::Relaxed);
                        Some(s)
                    }
                    None if resumed => {
                        let last = self.last_sigalg.load(Ordering::Relaxed);
                        (last != 0).then(|| rustls::SignatureScheme::from(last))
                    }
                    None => None,
                };
                self.stats.negotiated(conn.protocol_version(), suite, curve, sigalg);
                if resumed {
                    self.stats.session_reused.inc();
                }
                Ok(stream)
            }
            Err(e) => {
                match tls_error(&e) {
                    // Envoy counts a refused server certificate under its cause only.
                    Some(r @ rustls::Error::InvalidCertificate(_)) => self.stats.failed_verify(r),
                    Some(r) => self.stats.failed(r),
                    None => self.stats.connection_error.inc(),
                }
                Err(e)
            }
        }
    }
}

/// The rustls error inside a failed handshake's IO error.
pub fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}
