//! The server side of one TLS handshake: runs it (bounded), counts it in the listener's
//! `ssl.*` stats, and keeps what the connection's requests need to know of it (version,
//! cipher, SNI, ALPN, the client's certificate) as a [`Session`].

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use super::certs::{self, CertInfo};
use super::names;
use super::server::ServerTls;
use super::stats::SslStats;

/// What a connection's requests see of its TLS session.
#[derive(Debug, Clone)]
pub struct Session {
    /// `TLSv1.3`
    pub version: &'static str,
    /// OpenSSL name (`TLS_AES_128_GCM_SHA256`, `ECDHE-RSA-AES128-GCM-SHA256`).
    pub cipher: &'static str,
    /// The SNI `tls_inspector` read (`%REQUESTED_SERVER_NAME%`: Envoy sets it from the
    /// inspector only, not from the handshake).
    pub server_name: Option<Box<str>>,
    /// ALPN chose h2.
    pub h2: bool,
    pub peer: Option<PeerCert>,
    /// The URI SANs of the certificate legate presented (`x-forwarded-client-cert`'s `By`).
    pub local_uris: Arc<[String]>,
}

/// The client's certificate (mTLS).
#[derive(Debug, Clone)]
pub struct PeerCert {
    pub info: CertInfo,
    /// SHA-256 of the DER, lowercase hex (`x-forwarded-client-cert`'s `Hash`).
    pub sha256: String,
    /// The DER (for `x-forwarded-client-cert`'s `Cert`).
    pub der: Arc<[u8]>,
    /// The chain the client sent, its certificate first (`x-forwarded-client-cert`'s `Chain`).
    pub chain: Vec<Arc<[u8]>>,
}

/// The longest a handshake may take (Envoy bounds it only with
/// `transport_socket_connect_timeout`; a connection must not wait forever here).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
    #[error("TLS handshake timed out")]
    TimedOut,
}

/// Runs the handshake on `io` with the chain's context; `requested` is the SNI the listener
/// filters found.
pub async fn handshake<IO: AsyncRead + AsyncWrite + Unpin>(
    io: IO,
    tls: &ServerTls,
    stats: &SslStats,
    requested: Option<String>,
) -> Result<(TlsStream<IO>, Session), HandshakeError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.rustls());
    let (result, sigalg) = super::sigalgs::noting(tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io))).await;
    let stream = match result {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(r) => stats.failed(r),
                None => stats.connection_error.inc(),
            }
            return Err(HandshakeError::Failed(e));
        }
        Err(_) => {
            stats.connection_error.inc();
            return Err(HandshakeError::TimedOut);
        }
    };
    let (_, conn) = stream.get_ref();
    let version = conn.protocol_version();
    let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
    let curve = conn.negotiated_key_exchange_group().map(|g| g.name());
    stats.negotiated(version, suite, curve, sigalg);
    if conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        stats.session_reused.inc();
    }
    let peer = conn.peer_certificates().and_then(|sent| {
        let der = sent.first()?;
        let info = certs::parse(der, "").ok()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let chain: Vec<Arc<[u8]>> = sent.iter().map(|c| Arc::from(c.as_ref())).collect();
        Some(PeerCert { info, sha256, der: Arc::clone(&chain[0]), chain })
    });
    if peer.is_none() {
        stats.no_certificate.inc();
    }
    let session = Session {
        version: version.map_or("", names::version),
        cipher: suite.and_then(names::cipher).unwrap_or(""),
        server_name: requested.map(String::into_boxed_str),
        h2: conn.alpn_protocol() == Some(b"h2"),
        local_uris: tls.material().local_uris(conn.server_name()),
        peer,
    };
    Ok((stream, session))
}
