//! The upstream's certificate check of an `UpstreamTlsContext`'s `validation_context`, as
//! Envoy does it: the chain against `trusted_ca` (webpki), then `match_typed_subject_alt_names`.
//! The SNI is not compared with the certificate's names, except with `auto_san_validation`:
//! [`ServerVerifier::with_san_list`] then requires the request's host among the SANs, before
//! the configured matchers (Envoy's "verify SAN list"). Without a `validation_context` Envoy
//! does not verify the server at all: [`ServerVerifier::accept_any`] does the same (the
//! handshake's signatures are still checked, so the peer holds the certificate's key), except
//! that a SAN list there fails every handshake, as in Envoy (BoringSSL then verifies with no
//! trust anchors). System roots are never used.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::certs::{self, CertInfo, San};
use super::config::{SanMatcher, ValidationConfig};
use super::server::TlsConfigError;
use super::verify::{builder_error, check_pins, crl_without_ca, crls, fail, VerifyFailure};

#[derive(Clone)]
pub struct ServerVerifier {
    /// A `validation_context` is configured.
    validating: bool,
    /// `auto_san_validation`: names of which one must be a SAN (DNS names by Envoy's
    /// wildcard rule, others as text).
    san_list: Vec<String>,
    roots: Option<RootCertStore>,
    /// With a `crl`: webpki's verifier, which checks revocation too (its host-name check is
    /// not Envoy's and is ignored).
    revoking: Option<Arc<WebPkiServerVerifier>>,
    sans: Vec<SanMatcher>,
    hashes: Vec<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for ServerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerVerifier").field("roots", &self.roots.as_ref().map(RootCertStore::len)).finish()
    }
}

impl ServerVerifier {
    /// No `validation_context`: any certificate (Envoy's behaviour without one).
    pub fn accept_any(provider: &Arc<CryptoProvider>) -> Self {
        ServerVerifier {
            validating: false,
            san_list: Vec::new(),
            roots: None,
            revoking: None,
            sans: Vec::new(),
            hashes: Vec::new(),
            provider: Arc::clone(provider),
        }
    }

    /// The verifier and the trusted CA certificates (for `/certs`).
    pub fn new(v: &ValidationConfig, provider: &Arc<CryptoProvider>) -> Result<(Self, Vec<CertInfo>), TlsConfigError> {
        let at = "common_tls_context.validation_context.trusted_ca";
        let fail = |message: String| TlsConfigError { field: at.to_string(), message };
        let mut infos = Vec::new();
        let roots = match &v.trusted_ca {
            Some(pem) => {
                let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| fail(format!("invalid PEM: {e}")))?;
                let mut roots = RootCertStore::empty();
                for der in &ders {
                    infos.push(certs::parse(der, "<inline>").map_err(|e| fail(e.to_string()))?);
                    roots.add(der.clone()).map_err(|e| fail(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(fail("no certificate in the PEM data".into()));
                }
                Some(roots)
            }
            None if v.crl.is_some() => return Err(crl_without_ca()),
            None => None,
        };
        let crls = crls(v)?;
        let revoking = match &roots {
            Some(r) if !crls.is_empty() => {
                let mut b = WebPkiServerVerifier::builder_with_provider(Arc::new(r.clone()), Arc::clone(provider))
                    .with_crls(crls);
                if v.only_verify_leaf_cert_crl {
                    b = b.only_check_end_entity_revocation();
                }
                Some(b.build().map_err(builder_error)?)
            }
            _ => None,
        };
        let verifier = ServerVerifier {
            validating: true,
            san_list: Vec::new(),
            roots,
            revoking,
            sans: v.match_typed_subject_alt_names.clone(),
            hashes: v.verify_certificate_hash.clone(),
            provider: Arc::clone(provider),
        };
        Ok((verifier, infos))
    }

    /// The same check requiring one of `names` among the SANs too.
    pub fn with_san_list(&self, names: Vec<String>) -> Self {
        ServerVerifier { san_list: names, ..self.clone() }
    }
}

/// Envoy's `verifySubjectAltName`: a DNS SAN covers a name by the wildcard rule, any other
/// SAN must equal it as text.
fn san_list_matches(names: &[String], end_entity: &CertificateDer<'_>) -> Result<bool, rustls::Error> {
    let info =
        certs::parse(end_entity, "").map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    Ok(info.sans.iter().any(|san| {
        names.iter().any(|n| match san {
            San::Dns(d) => certs::name_matches(d, n),
            San::Uri(u) | San::Email(u) => u == n,
            San::Ip(ip) => ip.to_string() == *n,
        })
    }))
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(w) = &self.revoking {
            match w.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
                // The name is checked last: the chain and its revocation passed.
                Ok(_)
                | Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(e) => return Err(e),
            }
        } else if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        if !self.san_list.is_empty() {
            if !self.validating {
                return Err(fail(VerifyFailure::NoTrustAnchor));
            }
            if !san_list_matches(&self.san_list, end_entity)? {
                return Err(fail(VerifyFailure::SanList));
            }
        }
        check_pins(&self.sans, &self.hashes, end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        super::sigalgs::note(dss.scheme);
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        super::sigalgs::note(dss.scheme);
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
