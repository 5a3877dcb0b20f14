//! The signature algorithm the peer signed a handshake with, for Envoy's
//! `ssl.sigalgs.<name>` (BoringSSL's `SSL_get_peer_signature_algorithm`): the server's on an
//! upstream connection, the client's on a downstream one that presented a certificate.
//! rustls does not tell which, but the verifiers ([`super::verify`], [`super::client_verify`])
//! see it when they check the signature: they [`note`] it in a slot that the handshake
//! ([`noting`]) scopes to its own task, so concurrent handshakes never mix.

use std::future::Future;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use rustls::SignatureScheme;

tokio::task_local! {
    static SEEN: Arc<AtomicU16>;
}

/// Called by a verifier checking a handshake signature.
pub fn note(scheme: SignatureScheme) {
    let _ = SEEN.try_with(|s| s.store(u16::from(scheme), Ordering::Relaxed));
}

/// Runs the handshake `fut`, returning its output and the scheme the peer signed with (if a
/// signature was checked).
pub async fn noting<F: Future>(fut: F) -> (F::Output, Option<SignatureScheme>) {
    let slot = Arc::new(AtomicU16::new(0));
    let out = SEEN.scope(Arc::clone(&slot), fut).await;
    let seen = slot.load(Ordering::Relaxed);
    (out, (seen != 0).then(|| SignatureScheme::from(seen)))
}

/// BoringSSL's names (`SSL_get_signature_algorithm_name` with the curve, as Envoy asks).
const NAMES: &[(SignatureScheme, &str)] = &[
    (SignatureScheme::ECDSA_NISTP256_SHA256, "ecdsa_secp256r1_sha256"),
    (SignatureScheme::ECDSA_NISTP384_SHA384, "ecdsa_secp384r1_sha384"),
    (SignatureScheme::ECDSA_NISTP521_SHA512, "ecdsa_secp521r1_sha512"),
    (SignatureScheme::RSA_PSS_SHA256, "rsa_pss_rsae_sha256"),
    (SignatureScheme::RSA_PSS_SHA384, "rsa_pss_rsae_sha384"),
    (SignatureScheme::RSA_PSS_SHA512, "rsa_pss_rsae_sha512"),
    (SignatureScheme::RSA_PKCS1_SHA256, "rsa_pkcs1_sha256"),
    (SignatureScheme::RSA_PKCS1_SHA384, "rsa_pkcs1_sha384"),
    (SignatureScheme::RSA_PKCS1_SHA512, "rsa_pkcs1_sha512"),
    (SignatureScheme::RSA_PKCS1_SHA1, "rsa_pkcs1_sha1"),
    (SignatureScheme::ECDSA_SHA1_Legacy, "ecdsa_sha1"),
    (SignatureScheme::ED25519, "ed25519"),
];

/// How many names there are (the stats' slots).
pub const COUNT: usize = NAMES.len();

/// A scheme's slot and name; `None` for one BoringSSL does not name.
pub fn name(s: SignatureScheme) -> Option<(usize, &'static str)> {
    NAMES.iter().position(|(x, _)| *x == s).map(|i| (i, NAMES[i].1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scheme_noted_in_a_handshake_stays_in_it() {
        let (_, seen) = noting(async { note(SignatureScheme::ED25519) }).await;
        assert_eq!(seen, Some(SignatureScheme::ED25519));
        let (_, none) = noting(async {}).await;
        assert_eq!(none, None);
        // Outside a handshake a note goes nowhere.
        note(SignatureScheme::ED25519);
    }

    #[test]
    fn every_scheme_ring_verifies_has_a_name() {
        let p = crate::tls::server::provider();
        for s in p.signature_verification_algorithms.supported_schemes() {
            assert!(name(s).is_some(), "{s:?}");
        }
        assert_eq!(name(SignatureScheme::RSA_PSS_SHA256), Some((3, "rsa_pss_rsae_sha256")));
    }
}
