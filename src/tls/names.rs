//! The names Envoy (BoringSSL) gives what rustls negotiates: cipher suites by their OpenSSL
//! names, curves (`X25519`, `P-256`), versions (`TLSv1.3`). They are config values
//! (`tls_params`), stat names (`ssl.ciphers.<name>`) and access-log values.

use rustls::{CipherSuite, NamedGroup, ProtocolVersion};

const CIPHERS: &[(CipherSuite, &str)] = &[
    (CipherSuite::TLS13_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256"),
    (CipherSuite::TLS13_AES_256_GCM_SHA384, "TLS_AES_256_GCM_SHA384"),
    (CipherSuite::TLS13_CHACHA20_POLY1305_SHA256, "TLS_CHACHA20_POLY1305_SHA256"),
    (CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ECDHE-ECDSA-AES256-GCM-SHA384"),
    (CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-ECDSA-CHACHA20-POLY1305"),
    (CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ECDHE-RSA-AES128-GCM-SHA256"),
    (CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "ECDHE-RSA-AES256-GCM-SHA384"),
    (CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-RSA-CHACHA20-POLY1305"),
];

/// A suite's OpenSSL name; `None` for one rustls' ring provider does not have.
pub fn cipher(s: CipherSuite) -> Option<&'static str> {
    CIPHERS.iter().find(|(c, _)| *c == s).map(|(_, n)| *n)
}

/// The suite's place in the table (a stat slot).
pub fn index_of_cipher(s: CipherSuite) -> Option<usize> {
    CIPHERS.iter().position(|(c, _)| *c == s)
}

/// A key-exchange group's name as Envoy's `ecdh_curves` and `ssl.curves.*` write it.
pub fn curve(g: NamedGroup) -> Option<&'static str> {
    match g {
        NamedGroup::X25519 => Some("X25519"),
        NamedGroup::secp256r1 => Some("P-256"),
        NamedGroup::secp384r1 => Some("P-384"),
        _ => None,
    }
}

/// `TLSv1.2`, `TLSv1.3`.
pub fn version(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        ProtocolVersion::TLSv1_1 => "TLSv1.1",
        ProtocolVersion::TLSv1_0 => "TLSv1",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ring_suite_and_group_has_a_name() {
        let p = crate::tls::server::provider();
        for s in &p.cipher_suites {
            assert!(cipher(s.suite()).is_some(), "{:?}", s.suite());
        }
        for g in &p.kx_groups {
            assert!(curve(g.name()).is_some(), "{:?}", g.name());
        }
    }
}
