//! A TLS listener's `listener.<name>.ssl.*` stats (and a TLS cluster's `cluster.<name>.ssl.*`),
//! Envoy's names: handshakes, failures by cause, and per negotiated version, cipher, curve
//! and the peer's signature algorithm (created at first use, as Envoy's appear, then counted
//! without touching the store's lock). The OCSP stapling counters and the socket factory's
//! `*_secrets_not_ready` are shown at zero as Envoy shows them: legate staples nothing and
//! never serves a context whose secrets are missing.

use std::sync::{Arc, OnceLock};

use rustls::{CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme};

use super::verify::VerifyFailure;
use super::{names, sigalgs};
use crate::stats::{Counter, Store};

pub struct SslStats {
    store: Arc<Store>,
    prefix: String,
    pub handshake: Counter,
    pub connection_error: Counter,
    pub no_certificate: Counter,
    pub fail_verify_no_cert: Counter,
    pub fail_verify_error: Counter,
    pub fail_verify_san: Counter,
    pub fail_verify_cert_hash: Counter,
    pub session_reused: Counter,
    /// `ssl.versions.TLSv1.2`, `ssl.versions.TLSv1.3`.
    versions: [OnceLock<Counter>; 2],
    /// One per suite of [`names`]' table.
    ciphers: [OnceLock<Counter>; 9],
    curves: [OnceLock<Counter>; 3],
    /// One per scheme of [`sigalgs`]' table.
    sigalgs: [OnceLock<Counter>; sigalgs::COUNT],
}

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::TLSv1_2, ProtocolVersion::TLSv1_3];
const CURVES: [NamedGroup; 3] = [NamedGroup::X25519, NamedGroup::secp256r1, NamedGroup::secp384r1];

impl SslStats {
    /// `listener.<name>.ssl.*`.
    pub fn new(store: &Arc<Store>, listener: &str) -> Self {
        factory_zeros(store, &format!("listener.{listener}.server_ssl_socket_factory"));
        Self::with_prefix(store, format!("listener.{listener}.ssl"))
    }

    /// `cluster.<name>.ssl.*` (upstream TLS).
    pub fn for_cluster(store: &Arc<Store>, cluster: &str) -> Self {
        factory_zeros(store, &format!("cluster.{cluster}.client_ssl_socket_factory"));
        Self::with_prefix(store, format!("cluster.{cluster}.ssl"))
    }

    fn with_prefix(store: &Arc<Store>, prefix: String) -> Self {
        let c = |s: &str| store.counter(&format!("{prefix}.{s}"));
        for zero in ["ocsp_staple_failed", "ocsp_staple_omitted", "ocsp_staple_requests", "ocsp_staple_responses"] {
            c(zero);
        }
        SslStats {
            handshake: c("handshake"),
            connection_error: c("connection_error"),
            no_certificate: c("no_certificate"),
            fail_verify_no_cert: c("fail_verify_no_cert"),
            fail_verify_error: c("fail_verify_error"),
            fail_verify_san: c("fail_verify_san"),
            fail_verify_cert_hash: c("fail_verify_cert_hash"),
            session_reused: c("session_reused"),
            versions: Default::default(),
            ciphers: Default::default(),
            curves: Default::default(),
            sigalgs: Default::default(),
            store: Arc::clone(store),
            prefix,
        }
    }

    fn lazy(&self, slot: &OnceLock<Counter>, group: &str, name: &str) {
        slot.get_or_init(|| self.store.counter(&format!("{}.{group}.{name}", self.prefix))).inc();
    }

    /// Counts a completed handshake's version, cipher, curve and the scheme the peer signed
    /// with (none when it did not sign: a client without a certificate).
    pub fn negotiated(
        &self,
        version: Option<ProtocolVersion>,
        cipher: Option<CipherSuite>,
        curve: Option<NamedGroup>,
        sigalg: Option<SignatureScheme>,
    ) {
        self.handshake.inc();
        if let Some((i, name)) = sigalg.and_then(sigalgs::name) {
            self.lazy(&self.sigalgs[i], "sigalgs", name);
        }
        if let Some(i) = version.and_then(|v| VERSIONS.iter().position(|x| *x == v)) {
            self.lazy(&self.versions[i], "versions", names::version(VERSIONS[i]));
        }
        if let Some((i, name)) = cipher.and_then(|c| Some((names::index_of_cipher(c)?, names::cipher(c)?))) {
            if let Some(slot) = self.ciphers.get(i) {
                self.lazy(slot, "ciphers", name);
            }
        }
        if let Some((i, name)) = curve.and_then(|g| Some((CURVES.iter().position(|x| *x == g)?, names::curve(g)?))) {
            self.lazy(&self.curves[i], "curves", name);
        }
    }

    /// Counts a failed handshake by its cause.
    pub fn failed(&self, e: &rustls::Error) {
        self.connection_error.inc();
        self.failed_verify(e);
    }

    /// Counts a refused peer certificate under its `fail_verify_*` cause alone.
    pub fn failed_verify(&self, e: &rustls::Error) {
        match e {
            rustls::Error::NoCertificatesPresented => self.fail_verify_no_cert.inc(),
            rustls::Error::InvalidCertificate(_) => match super::verify::failure_of(e) {
                Some(VerifyFailure::San | VerifyFailure::SanList) => self.fail_verify_san.inc(),
                Some(VerifyFailure::CertHash) => self.fail_verify_cert_hash.inc(),
                Some(VerifyFailure::NoTrustAnchor) => {}
                None => self.fail_verify_error.inc(),
            },
            _ => {}
        }
    }
}

/// A socket factory's counters Envoy shows at zero until an SDS secret is missing or
/// updated (legate's rotation counts `ssl_context_update_by_sds` in the same scope).
fn factory_zeros(store: &Store, scope: &str) {
    for name in
        ["downstream_context_secrets_not_ready", "upstream_context_secrets_not_ready", "ssl_context_update_by_sds"]
    {
        store.counter(&format!("{scope}.{name}"));
    }
}
