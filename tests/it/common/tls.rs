//! Certificates made in the test (rcgen): a test CA, server certificates (ECDSA P-256, or RSA
//! from the fixed test key beside this file: ring cannot generate RSA keys) and client
//! certificates; and a rustls client that speaks to legate over TLS (HTTP/1.1, or h2 by
//! ALPN).

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::bounded;

/// A PKCS#8 RSA 2048 key for the RSA certificates.
pub const RSA_KEY: &str = include_str!("rsa_test_key.pem");

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
    pub der: Vec<u8>,
}

/// A test CA.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Ecdsa,
    Rsa,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("ca cert");
        Ca { cert: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A server certificate for `names`.
    pub fn server(&self, names: &[&str], alg: Alg) -> Pair {
        let key = match alg {
            Alg::Ecdsa => KeyPair::generate().expect("key"),
            Alg::Rsa => KeyPair::from_pem_and_sign_algo(RSA_KEY, &rcgen::PKCS_RSA_SHA256).expect("rsa key"),
        };
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("params");
        params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Pair { cert: cert.pem(), key: key.serialize_pem(), der: cert.der().to_vec() }
    }

    /// An ECDSA server certificate for `names` with URI SANs `uris` too.
    pub fn server_with_uris(&self, names: &[&str], uris: &[&str]) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or_default());
        for u in uris {
            params.subject_alt_names.push(SanType::URI((*u).try_into().expect("uri")));
        }
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Pair { cert: cert.pem(), key: key.serialize_pem(), der: cert.der().to_vec() }
    }

    /// An intermediate CA issued by this one.
    pub fn intermediate(&self, name: &str) -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.signed_by(&key, &self.issuer).expect("intermediate cert");
        Ca { cert: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A client certificate with common name `cn` and serial number `serial`.
    pub fn client_serial(&self, cn: &str, serial: u64) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Pair { cert: cert.pem(), key: key.serialize_pem(), der: cert.der().to_vec() }
    }

    /// A CRL of this CA revoking the certificates with serial numbers `revoked`, PEM.
    pub fn crl(&self, revoked: &[u64]) -> String {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
        let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
        let day = std::time::Duration::from_secs(86_400);
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - day,
            next_update: now + day * 30,
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: now - day,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).expect("crl").pem().expect("crl pem")
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert.as_bytes()).expect("ca pem").to_vec()
    }

    /// An ECDSA server certificate for `name` valid from a day ago for `days` more days.
    pub fn server_valid_for(&self, name: &str, days: i64) -> Pair {
        let day = std::time::Duration::from_secs(86_400);
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
        let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = now - day * 30;
        params.not_after = if days >= 0 { now + day * days as u32 } else { now - day * days.unsigned_abs() as u32 };
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Pair { cert: cert.pem(), key: key.serialize_pem(), der: cert.der().to_vec() }
    }

    /// An ECDSA server certificate for `name` that expired yesterday.
    pub fn server_expired(&self, name: &str) -> Pair {
        self.server_valid_for(name, -1)
    }

    /// A client certificate with common name `cn` and, optionally, a URI SAN.
    pub fn client(&self, cn: &str, uri: Option<&str>) -> Pair {
        self.client_with_dns(cn, uri, &[])
    }

    /// A client certificate with common name `cn`, optionally a URI SAN, and DNS SANs `dns`.
    pub fn client_with_dns(&self, cn: &str, uri: Option<&str>, dns: &[&str]) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.distinguished_name.push(DnType::OrganizationName, "Legate Tests");
        if let Some(u) = uri {
            params.subject_alt_names.push(SanType::URI(u.try_into().expect("uri")));
        }
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Pair { cert: cert.pem(), key: key.serialize_pem(), der: cert.der().to_vec() }
    }
}

/// A client context built at the first connection and kept for the next ones.
pub type Sessions = Arc<std::sync::OnceLock<Arc<rustls::ClientConfig>>>;

/// How a test client connects.
#[derive(Clone, Default)]
pub struct ClientOpts {
    pub sni: Option<String>,
    pub alpn: Vec<&'static str>,
    pub client_cert: Option<Pair>,
    /// Sent after the client certificate (its issuers), DER.
    pub client_chain: Vec<Vec<u8>>,
    /// Connections given the same one share one client context, and so resume each other's
    /// sessions (rustls resumes only with the verifier that checked the first handshake);
    /// none resume otherwise.
    pub sessions: Option<Sessions>,
    /// Only these signature schemes are offered: RSA-only or ECDSA-only clients.
    pub only: Option<Alg>,
    pub tls12_only: bool,
}

/// What a handshake gave.
pub struct Session {
    pub stream: tokio_rustls::client::TlsStream<TcpStream>,
    pub peer_der: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<rustls::ProtocolVersion>,
    /// The handshake resumed a session.
    pub resumed: bool,
}

/// Trusts `ca_pem`; the host name checked is the SNI (or `localhost`).
#[allow(deprecated)] // ring's provider: see src/tls/server.rs
pub async fn connect(addr: SocketAddr, ca_pem: &str, o: &ClientOpts) -> Result<Session, std::io::Error> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(alg) = o.only {
        let keep = |s: &rustls::SignatureScheme| {
            let ecdsa = format!("{s:?}").starts_with("ECDSA");
            (alg == Alg::Ecdsa) == ecdsa
        };
        let algs = &mut provider.signature_verification_algorithms;
        let mapping: Vec<_> = algs.mapping.iter().filter(|(s, _)| keep(s)).cloned().collect();
        algs.mapping = Box::leak(mapping.into_boxed_slice());
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add root");
    }
    let versions: &[&rustls::SupportedProtocolVersion] =
        if o.tls12_only { &[&rustls::version::TLS12] } else { &[&rustls::version::TLS13, &rustls::version::TLS12] };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut cfg = match &o.client_cert {
        Some(p) => {
            let mut chain = vec![CertificateDer::from(p.der.clone())];
            chain.extend(o.client_chain.iter().map(|c| CertificateDer::from(c.clone())));
            let key = PrivateKeyDer::from_pem_slice(p.key.as_bytes()).expect("client key");
            builder.with_client_auth_cert(chain, key).expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    if o.sessions.is_none() {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    cfg.alpn_protocols = o.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    cfg.enable_sni = o.sni.is_some();
    let name = ServerName::try_from(o.sni.clone().unwrap_or_else(|| "localhost".into())).expect("server name");
    let tcp = TcpStream::connect(addr).await?;
    let cfg = match &o.sessions {
        Some(kept) => Arc::clone(kept.get_or_init(|| Arc::new(cfg))),
        None => Arc::new(cfg),
    };
    let connector = tokio_rustls::TlsConnector::from(cfg);
    let stream = bounded("TLS handshake", connector.connect(name, tcp)).await?;
    let (_, conn) = stream.get_ref();
    let peer_der = conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let version = conn.protocol_version();
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    Ok(Session { stream, peer_der, alpn, version, resumed })
}

/// `GET path` over HTTP/1.1 on a TLS session (`connection: close`): status line and body.
/// An error when the server closes or refuses (mTLS refusals surface on the first read in
/// TLS 1.3).
pub async fn get_h1(s: &mut Session, host: &str, path: &str) -> Result<(String, String), std::io::Error> {
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    s.stream.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    bounded("response", s.stream.read_to_end(&mut out)).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}

/// `GET path` over h2 on a TLS session: status and body.
pub async fn get_h2(s: Session, host: &str, path: &str) -> (u16, String) {
    let io = TokioIo::new(s.stream);
    let (mut send, conn) =
        bounded("h2 handshake", hyper::client::conn::http2::handshake(TokioExecutor::new(), io)).await.expect("h2");
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://{host}{path}")).body(Empty::<bytes::Bytes>::new()).expect("req");
    let resp = bounded("h2 request", send.send_request(req)).await.expect("h2 response");
    let status = resp.status().as_u16();
    let body = bounded("h2 body", resp.into_body().collect()).await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
