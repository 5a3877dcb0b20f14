//! The client-certificate check of a `validation_context`: the chain against `trusted_ca`
//! (rustls' webpki verifier), then `match_typed_subject_alt_names`, then
//! `verify_certificate_hash`, in Envoy's order. A failure carries a [`VerifyFailure`] so the
//! listener counts it under Envoy's `ssl.fail_verify_*` name.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};

use super::certs::{self, CertInfo, San};
use super::config::{SanMatcher, SanType, ValidationConfig};
use super::server::TlsConfigError;
use crate::routing::matcher::string_matches;

/// Why a client certificate was refused, beyond webpki's own errors (`fail_verify_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    #[error("no subject alternative name matches")]
    San,
    #[error("the certificate hash is not one of verify_certificate_hash")]
    CertHash,
    /// `auto_san_validation`: the request's host is not among the upstream's SANs.
    #[error("no subject alternative name is the request's host")]
    SanList,
    /// `auto_san_validation` without a `validation_context`: nothing to verify with (Envoy
    /// fails these handshakes without counting a cause).
    #[error("no trusted CA to verify the upstream's certificate with")]
    NoTrustAnchor,
}

pub struct ClientVerifier {
    webpki: Option<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
    sans: Vec<SanMatcher>,
    hashes: Vec<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientVerifier").field("mandatory", &self.mandatory).finish_non_exhaustive()
    }
}

impl ClientVerifier {
    /// The verifier and the trusted CA certificates (for `/certs`).
    pub fn new(
        v: &ValidationConfig,
        mandatory: bool,
        provider: &Arc<CryptoProvider>,
    ) -> Result<(Self, Vec<CertInfo>), TlsConfigError> {
        let at = "common_tls_context.validation_context.trusted_ca".to_string();
        let mut infos = Vec::new();
        let webpki = match &v.trusted_ca {
            Some(pem) => {
                let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| TlsConfigError { field: at.clone(), message: format!("invalid PEM: {e}") })?;
                let mut roots = RootCertStore::empty();
                for der in &ders {
                    infos.push(
                        certs::parse(der, "<inline>")
                            .map_err(|e| TlsConfigError { field: at.clone(), message: e.to_string() })?,
                    );
                    roots.add(der.clone()).map_err(|e| TlsConfigError { field: at.clone(), message: e.to_string() })?;
                }
                if roots.is_empty() {
                    return Err(TlsConfigError { field: at, message: "no certificate in the PEM data".into() });
                }
                let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .allow_unauthenticated()
                    .with_crls(crls(v)?);
                if v.only_verify_leaf_cert_crl {
                    builder = builder.only_check_end_entity_revocation();
                }
                let built = builder.build().map_err(builder_error)?;
                Some(built)
            }
            None if v.crl.is_some() => return Err(crl_without_ca()),
            None => None,
        };
        let verifier = ClientVerifier {
            webpki,
            mandatory,
            sans: v.match_typed_subject_alt_names.clone(),
            hashes: v.verify_certificate_hash.clone(),
            provider: Arc::clone(provider),
        };
        Ok((verifier, infos))
    }
}

/// The CRLs of `crl` (every one of the PEM); webpki parses them when the verifier is built
/// ([`builder_error`]).
pub(crate) fn crls(v: &ValidationConfig) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsConfigError> {
    let Some(pem) = &v.crl else { return Ok(Vec::new()) };
    let at = "common_tls_context.validation_context.crl";
    let list: Vec<_> = CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsConfigError { field: at.into(), message: format!("invalid PEM: {e}") })?;
    if list.is_empty() {
        return Err(TlsConfigError {
            field: at.into(),
            message: "no certificate revocation list in the PEM data".into(),
        });
    }
    Ok(list)
}

/// A verifier that does not build: an unusable CRL, or a trust store webpki refuses.
pub(crate) fn builder_error(e: rustls::server::VerifierBuilderError) -> TlsConfigError {
    let field = match e {
        rustls::server::VerifierBuilderError::InvalidCrl(_) => "common_tls_context.validation_context.crl",
        _ => "common_tls_context.validation_context.trusted_ca",
    };
    TlsConfigError { field: field.into(), message: e.to_string() }
}

pub(crate) fn crl_without_ca() -> TlsConfigError {
    TlsConfigError {
        field: "common_tls_context.validation_context.crl".into(),
        message: "a CRL needs trusted_ca (the chain it revokes certificates of)".into(),
    }
}

/// A handshake error carrying `f`, for [`failure_of`] to find.
pub(crate) fn fail(f: VerifyFailure) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(f))))
}

/// The checks after the chain that both directions make: a `match_typed_subject_alt_names`
/// entry and a `verify_certificate_hash` pin, each when set.
pub(crate) fn check_pins(
    sans: &[SanMatcher],
    hashes: &[[u8; 32]],
    end_entity: &CertificateDer<'_>,
) -> Result<(), rustls::Error> {
    if !sans.is_empty() {
        let info = certs::parse(end_entity, "")
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if !sans.iter().any(|m| san_matches(m, &info.sans)) {
            return Err(fail(VerifyFailure::San));
        }
    }
    if !hashes.is_empty() {
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity);
        if !hashes.iter().any(|h| h[..] == *digest.as_ref()) {
            return Err(fail(VerifyFailure::CertHash));
        }
    }
    Ok(())
}

/// The [`VerifyFailure`] inside a handshake error, if that is what it was.
pub fn failure_of(e: &rustls::Error) -> Option<VerifyFailure> {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<VerifyFailure>().copied()
        }
        _ => None,
    }
}

pub(crate) fn san_matches(m: &SanMatcher, sans: &[San]) -> bool {
    sans.iter().any(|s| match (m.san_type, s) {
        (SanType::Dns, San::Dns(v)) | (SanType::Uri, San::Uri(v)) | (SanType::Email, San::Email(v)) => {
            string_matches(&m.matcher, v)
        }
        (SanType::IpAddress, San::Ip(ip)) => string_matches(&m.matcher, &ip.to_string()),
        _ => false,
    })
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.as_ref().map_or(&[], |w| w.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(w) = &self.webpki {
            w.verify_client_cert(end_entity, intermediates, now)?;
        }
        check_pins(&self.sans, &self.hashes, end_entity)?;
        Ok(ClientCertVerified::assertion())
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
