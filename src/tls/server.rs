//! Builds a filter chain's rustls `ServerConfig` from its [`DownstreamTlsConfig`]: the
//! certificates (each key checked against its certificate), the versions, cipher suites and
//! curves of `tls_params` (what rustls cannot do is refused, naming the field), ALPN, and the
//! client-certificate verifier. Built when the configuration is validated, so a bad
//! certificate or key refuses the configuration with the field's path.

use std::sync::Arc;

use arc_swap::ArcSwap;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureAlgorithm;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::certs::{self, CertInfo};
use super::config::{DownstreamTlsConfig, TlsVersion};
use super::verify::ClientVerifier;

/// What one version of a chain's certificates built: the rustls context and what `/certs`
/// shows of it. Replaced whole when a certificate rotates.
pub struct Material {
    pub config: DownstreamTlsConfig,
    pub rustls: Arc<rustls::ServerConfig>,
    /// `tls_certificates`, each with its chain as read (`/certs`' `cert_chain`).
    pub certs: Vec<Vec<CertInfo>>,
    /// The trusted CA certificates (`/certs`' `ca_cert`).
    pub ca: Vec<CertInfo>,
    /// Per certificate: whether it is ECDSA, and its URI SANs.
    served: Vec<(bool, Arc<[String]>)>,
}

impl Material {
    /// The URI SANs of the certificate a handshake with SNI `sni` was most likely given
    /// (`x-forwarded-client-cert`'s `By`): rustls does not say which one the resolver chose,
    /// so this makes the [`Resolver`]'s choice for a client that accepts every signature
    /// algorithm (a name covering the SNI, then ECDSA, then file order).
    pub fn local_uris(&self, sni: Option<&str>) -> Arc<[String]> {
        if let [(_, only)] = self.served.as_slice() {
            return Arc::clone(only);
        }
        let covers = |i: &usize| {
            let names = self.certs.get(*i).and_then(|c| c.first()).map(CertInfo::dns_names).unwrap_or_default();
            sni.is_some_and(|sni| names.iter().any(|n| certs::name_matches(n, sni)))
        };
        let mut pool: Vec<usize> = (0..self.served.len()).filter(covers).collect();
        if pool.is_empty() {
            pool = (0..self.served.len()).collect();
        }
        let pick = pool.iter().find(|i| self.served[**i].0).or(pool.first());
        pick.map_or_else(|| Arc::from(Vec::new()), |i| Arc::clone(&self.served[*i].1))
    }
}

/// A chain's TLS context, ready for handshakes: its current [`Material`], swapped atomically
/// when a certificate file or SDS secret it was read from changes (`crate::tls::rotation`),
/// so new handshakes use the new certificate while the listener and its connections stay.
/// Compared by the configuration it serves now (sources and bytes): a reload that reads the
/// rotated files again finds the chain unchanged.
pub struct ServerTls {
    live: ArcSwap<Material>,
    /// How to read the certificates again; `None` when nothing comes from a file.
    pub origin: Option<super::secrets::Origin>,
}

impl ServerTls {
    pub fn new(material: Material, origin: Option<super::secrets::Origin>) -> Self {
        ServerTls { live: ArcSwap::from_pointee(material), origin }
    }

    /// What handshakes use now.
    pub fn material(&self) -> Arc<Material> {
        self.live.load_full()
    }

    /// The rustls context for a new handshake.
    pub fn rustls(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.live.load().rustls)
    }

    /// Serves `material` from the next handshake on.
    pub fn swap(&self, material: Material) {
        self.live.store(Arc::new(material));
    }
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        self.live.load().config == other.live.load().config
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("config", &self.live.load().config).finish_non_exhaustive()
    }
}

/// A context legate cannot build: the field (relative to the `DownstreamTlsContext`) and why.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TlsConfigError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> TlsConfigError {
    TlsConfigError { field: field.into(), message: message.into() }
}

/// rustls' `ring` provider. Deprecated in rustls 0.23.48 only because it has no
/// post-quantum key exchange (`X25519MLKEM768`); `aws-lc-rs`, which has it, builds C and
/// assembly with cmake and takes minutes longer to build on a 2-core machine.
#[allow(deprecated)]
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A ticketer with a random key of its own, rotated by rustls (Envoy's default tickets).
#[allow(deprecated)]
pub fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    rustls::crypto::ring::Ticketer::new()
}

/// Builds the context.
pub fn build(config: DownstreamTlsConfig) -> Result<ServerTls, TlsConfigError> {
    build_material(config).map(|m| ServerTls::new(m, None))
}

/// Builds one version of the context's certificates.
pub fn build_material(config: DownstreamTlsConfig) -> Result<Material, TlsConfigError> {
    let (provider, versions) = super::params::tuned(&config.params, TlsVersion::V1_3)?;

    if config.certificates.is_empty() {
        return Err(err("common_tls_context.tls_certificates", "a server TLS context needs a certificate"));
    }
    let mut keys = Vec::new();
    let mut infos = Vec::new();
    let mut served = Vec::new();
    for (i, c) in config.certificates.iter().enumerate() {
        let at = |f: &str| format!("common_tls_context.tls_certificates[{i}].{f}");
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&c.chain)
            .collect::<Result<_, _>>()
            .map_err(|e| err(at("certificate_chain"), format!("invalid PEM: {e}")))?;
        if chain.is_empty() {
            return Err(err(at("certificate_chain"), "no certificate in the PEM data"));
        }
        let mut chain_info = Vec::with_capacity(chain.len());
        for der in &chain {
            chain_info.push(certs::parse(der, &c.chain_path).map_err(|e| err(at("certificate_chain"), e.to_string()))?);
        }
        let key = PrivateKeyDer::from_pem_slice(&c.key)
            .map_err(|e| err(at("private_key"), format!("no private key in the PEM data: {e}")))?;
        let key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| err(at("private_key"), format!("unusable private key: {e}")))?;
        let certified = CertifiedKey::new(chain, key);
        // rustls compares through webpki, which refuses X.509 v1 certificates (`openssl req
        // -x509` without extensions, as Envoy's examples have): x509-parser reads those.
        let matches = match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => true,
            Err(rustls::Error::InconsistentKeys(_)) => false,
            Err(_) => certified
                .key
                .public_key()
                .is_none_or(|k| certs::spki(&certified.cert[0]).as_deref() == Some(k.as_ref())),
        };
        if !matches {
            return Err(err(at("private_key"), "the private key does not match the certificate"));
        }
        let names = chain_info[0].dns_names();
        let uris: Vec<String> = chain_info[0].uri_sans().into_iter().map(str::to_string).collect();
        served.push((certified.key.algorithm() == SignatureAlgorithm::ECDSA, Arc::from(uris)));
        keys.push(Entry {
            ecdsa: certified.key.algorithm() == SignatureAlgorithm::ECDSA,
            names,
            key: Arc::new(certified),
        });
        infos.push(chain_info);
    }

    let provider = Arc::new(provider);
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| err("common_tls_context.tls_params.tls_minimum_protocol_version", e.to_string()))?;
    let mut ca = Vec::new();
    let builder = match &config.validation {
        Some(v) => {
            let (verifier, infos) = ClientVerifier::new(v, config.require_client_certificate, &provider)?;
            ca = infos;
            builder.with_client_cert_verifier(Arc::new(verifier))
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder.with_cert_resolver(Arc::new(Resolver { keys }));
    config.resumption.apply(&mut server).map_err(|e| err("session_ticket_keys", e.to_string()))?;
    server.alpn_protocols = config.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // The server's cipher order, as Envoy's BoringSSL (`SSL_OP_CIPHER_SERVER_PREFERENCE`).
    server.ignore_client_order = true;
    Ok(Material { config, rustls: Arc::new(server), certs: infos, ca, served })
}

struct Entry {
    key: Arc<CertifiedKey>,
    ecdsa: bool,
    names: Vec<String>,
}

/// Chooses among a context's certificates for each handshake, as Envoy does: those the
/// client's signature algorithms can use; of these, one whose names cover the SNI; then
/// ECDSA before RSA; then file order.
struct Resolver {
    keys: Vec<Entry>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").field("certificates", &self.keys.len()).finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if self.keys.len() == 1 {
            return self.keys.first().map(|e| Arc::clone(&e.key));
        }
        let schemes = hello.signature_schemes();
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        let usable = || self.keys.iter().filter(|e| e.key.key.choose_scheme(schemes).is_some());
        let by_name: Vec<&Entry> = match &sni {
            Some(sni) => usable().filter(|e| e.names.iter().any(|n| certs::name_matches(n, sni))).collect(),
            None => Vec::new(),
        };
        let pool: Vec<&Entry> = if by_name.is_empty() { usable().collect() } else { by_name };
        pool.iter().find(|e| e.ecdsa).or(pool.first()).map(|e| Arc::clone(&e.key))
    }
}
