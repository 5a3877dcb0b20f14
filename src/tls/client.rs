//! Upstream TLS (a cluster's `transport_socket` `envoy.transport_sockets.tls` with an
//! `UpstreamTlsContext`): what the configuration says ([`UpstreamTlsConfig`]) and the rustls
//! `ClientConfig` built from it ([`ClientTls`]): `sni`, the client certificate for mTLS,
//! `alpn_protocols` (or Envoy's default for the cluster's protocol), `tls_params` (TLS 1.2
//! at most unless raised, Envoy's client default) and the server check of
//! [`super::client_verify`]. Built when the configuration is validated, so a bad
//! certificate refuses the configuration at its field; built again by
//! [`super::rotation`] when a file it was read from changes, and swapped in for the next
//! connection ([`ClientTls::swap`]).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::certs::{self, CertInfo};
use super::client_verify::ServerVerifier;
use super::config::{CertificateSource, TlsParams, TlsVersion, ValidationConfig};
use super::server::TlsConfigError;

/// `UpstreamTlsContext`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpstreamTlsConfig {
    /// `sni`; none sent when unset, as Envoy.
    pub sni: Option<String>,
    /// `common_tls_context.tls_certificates[0]`: the client certificate (Envoy takes one).
    pub certificate: Option<CertificateSource>,
    /// `common_tls_context.alpn_protocols`, or (when empty) the cluster protocol's default:
    /// `http/1.1`, `h2`, or both with `auto_config`.
    pub alpn: Vec<String>,
    pub params: TlsParams,
    /// `common_tls_context.validation_context`; `None`: the server is not verified (Envoy).
    pub validation: Option<ValidationConfig>,
    /// The context's field path (`clusters[0].transport_socket.typed_config`).
    pub path: String,
    /// The cluster's `upstream_http_protocol_options`: names taken from each request.
    pub auto_sni: super::auto_sni::AutoSni,
    /// The files (and SDS secrets) the context was read from.
    pub reads: super::secrets::Reads,
}

/// A cluster's TLS client context: its current [`ClientMaterial`], swapped atomically when a
/// certificate or CA file it was read from changes, so that the next connection presents the
/// new client certificate and checks the server with the new CA while established ones
/// stay. Compared by the configuration it uses now (a reload that reads the rotated files
/// again finds the cluster unchanged, its pools kept).
pub struct ClientTls {
    live: ArcSwap<ClientMaterial>,
    /// How to read it again; `None` when nothing comes from a file.
    pub origin: Option<ClientOrigin>,
    /// The cluster's `upstream_http_protocol_options` (not read from files: never rotates).
    pub auto_sni: super::auto_sni::AutoSni,
}

/// What rebuilding an upstream context needs: the message and what its cluster adds (the
/// ALPN chosen by the cluster's protocol when `alpn_protocols` is empty, `auto_sni`).
#[derive(Debug, Clone)]
pub struct ClientOrigin {
    pub origin: super::secrets::Origin,
    pub default_alpn: Vec<String>,
    pub auto_sni: super::auto_sni::AutoSni,
}

impl ClientTls {
    pub fn new(material: ClientMaterial, origin: Option<ClientOrigin>) -> Self {
        let auto_sni = material.config.auto_sni.clone();
        ClientTls { live: ArcSwap::from_pointee(material), origin, auto_sni }
    }

    /// What new connections use now.
    pub fn material(&self) -> Arc<ClientMaterial> {
        self.live.load_full()
    }

    /// Used from the next connection on.
    pub fn swap(&self, material: ClientMaterial) {
        self.live.store(Arc::new(material));
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        self.live.load().config == other.live.load().config
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("config", &self.live.load().config).finish_non_exhaustive()
    }
}

/// One version of a cluster's TLS client context, ready for handshakes.
pub struct ClientMaterial {
    pub config: UpstreamTlsConfig,
    pub rustls: Arc<rustls::ClientConfig>,
    /// The name the handshake is for: `sni`, or `None` to send none.
    pub server_name: Option<ServerName<'static>>,
    /// The client certificate's chain (`/certs`' `cert_chain`).
    pub certs: Vec<CertInfo>,
    /// The trusted CA certificates (`/certs`' `ca_cert`).
    pub ca: Vec<CertInfo>,
    /// The server check, for the contexts of [`super::auto_sni::Target`] to extend.
    pub verifier: Arc<ServerVerifier>,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> TlsConfigError {
    TlsConfigError { field: field.into(), message: message.into() }
}

/// Builds one version of the context.
pub fn build(config: UpstreamTlsConfig) -> Result<ClientMaterial, TlsConfigError> {
    let (provider, versions) = super::params::tuned(&config.params, TlsVersion::V1_2)?;
    let provider = Arc::new(provider);
    let mut ca = Vec::new();
    let verifier = match &config.validation {
        Some(v) => {
            let (verifier, infos) = ServerVerifier::new(v, &provider)?;
            ca = infos;
            verifier
        }
        None => ServerVerifier::accept_any(&provider),
    };
    let verifier = Arc::new(verifier);
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| err("common_tls_context.tls_params.tls_minimum_protocol_version", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&verifier) as Arc<dyn rustls::client::danger::ServerCertVerifier>);
    let mut certs = Vec::new();
    let mut client = match &config.certificate {
        Some(c) => {
            let (chain, key, infos) = client_certificate(c, &provider)?;
            certs = infos;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err("common_tls_context.tls_certificates[0].private_key", e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    client.alpn_protocols = config.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let server_name = match &config.sni {
        Some(sni) => Some(
            ServerName::try_from(sni.clone())
                .map_err(|e| err("sni", format!("\"{sni}\" is not a valid server name: {e}")))?,
        ),
        None => None,
    };
    Ok(ClientMaterial { config, rustls: Arc::new(client), server_name, certs, ca, verifier })
}

type Chain = Vec<CertificateDer<'static>>;

/// The client certificate and its key, the key checked against the certificate.
fn client_certificate(
    c: &CertificateSource,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<(Chain, PrivateKeyDer<'static>, Vec<CertInfo>), TlsConfigError> {
    let at = |f: &str| format!("common_tls_context.tls_certificates[0].{f}");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&c.chain)
        .collect::<Result<_, _>>()
        .map_err(|e| err(at("certificate_chain"), format!("invalid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(err(at("certificate_chain"), "no certificate in the PEM data"));
    }
    let mut infos = Vec::with_capacity(chain.len());
    for der in &chain {
        infos.push(certs::parse(der, &c.chain_path).map_err(|e| err(at("certificate_chain"), e.to_string()))?);
    }
    let der = PrivateKeyDer::from_pem_slice(&c.key)
        .map_err(|e| err(at("private_key"), format!("no private key in the PEM data: {e}")))?;
    let key = provider
        .key_provider
        .load_private_key(der.clone_key())
        .map_err(|e| err(at("private_key"), format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain.clone(), key);
    let matches = match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => true,
        Err(rustls::Error::InconsistentKeys(_)) => false,
        Err(_) => {
            certified.key.public_key().is_none_or(|k| certs::spki(&certified.cert[0]).as_deref() == Some(k.as_ref()))
        }
    };
    if !matches {
        return Err(err(at("private_key"), "the private key does not match the certificate"));
    }
    Ok((chain, der, infos))
}
