//! What a `DownstreamTlsContext` says, as read from the configuration: certificate and key
//! PEM bytes (already read from their `filename` or inline), ALPN, `tls_params` and the
//! client-certificate validation. Plain data, compared by value: a chain whose TLS context
//! changes (a new certificate file content too) is a new chain.

use bytes::Bytes;

use crate::config::model::StringMatcher;

/// `DownstreamTlsContext`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DownstreamTlsConfig {
    /// `common_tls_context.tls_certificates`, in order.
    pub certificates: Vec<CertificateSource>,
    /// `common_tls_context.alpn_protocols`, in preference order.
    pub alpn: Vec<String>,
    pub params: TlsParams,
    pub validation: Option<ValidationConfig>,
    /// `require_client_certificate`
    pub require_client_certificate: bool,
    /// `session_ticket_keys`, `disable_stateless_session_resumption`,
    /// `disable_stateful_session_resumption`.
    pub resumption: super::tickets::Resumption,
    /// The field path of the context (`...filter_chains[0].transport_socket.typed_config`),
    /// the start of every error's path.
    pub path: String,
    /// The files and SDS secrets the certificates were read from (what rotation watches).
    pub reads: super::secrets::Reads,
}

/// One `TlsCertificate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSource {
    pub chain: Bytes,
    pub key: Bytes,
    /// Where the chain came from as `/certs` shows it: the file, or `<inline>`.
    pub chain_path: String,
    /// Envoy's certificate name (`ssl.certificate.<name>.expiration_unix_time_seconds`): the
    /// SDS secret's name, else [`unnamed`]`("unnamed_cert_", ...)`.
    pub name: String,
}

/// Envoy's name for a certificate not from SDS: `prefix` and the first 8 hex digits of the
/// SHA-256 of its inline data (of nothing for a file: Envoy hashes the inline bytes only).
pub fn unnamed(prefix: &str, inline: Option<&[u8]>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, inline.unwrap_or_default());
    let hex: String = digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// `TlsParameters.TlsProtocol`, the versions rustls has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// `tls_params`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsParams {
    /// `tls_minimum_protocol_version`; TLS 1.2 when unset or `TLS_AUTO` (Envoy's server default).
    pub min: Option<TlsVersion>,
    /// `tls_maximum_protocol_version`; TLS 1.3 when unset.
    pub max: Option<TlsVersion>,
    /// `cipher_suites` by their OpenSSL names (`[a|b]` groups flattened), in order.
    pub cipher_suites: Vec<String>,
    /// `ecdh_curves` (`X25519`, `P-256`, `P-384`).
    pub ecdh_curves: Vec<String>,
}

/// `CertificateValidationContext` (`validation_context`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidationConfig {
    /// `trusted_ca` PEM; `None` accepts any client certificate that passes the other checks,
    /// as Envoy does without a trusted CA.
    pub trusted_ca: Option<Bytes>,
    pub match_typed_subject_alt_names: Vec<SanMatcher>,
    /// `verify_certificate_hash`: SHA-256 fingerprints of accepted client certificates.
    pub verify_certificate_hash: Vec<[u8; 32]>,
    /// `crl` PEM: revoked certificates fail the chain check (`fail_verify_error`).
    pub crl: Option<Bytes>,
    /// `only_verify_leaf_cert_crl`: the peer's certificate alone is looked up in the CRLs;
    /// otherwise every certificate of the chain below the trust anchor must be covered.
    pub only_verify_leaf_cert_crl: bool,
    /// Envoy's name for the trusted CA (`ssl.certificate.<name>.expiration_unix_time_seconds`):
    /// the SDS secret's name, else [`unnamed`]`("unnamed_ca_cert_", ...)`.
    pub ca_name: String,
}

/// `SubjectAltNameMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub struct SanMatcher {
    pub san_type: SanType,
    pub matcher: StringMatcher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanType {
    Dns,
    Email,
    Uri,
    IpAddress,
}
