//! `tls_params` as rustls applies them, for server and client contexts alike: the cipher
//! suites and curves of the `ring` provider chosen by their OpenSSL names, and the protocol
//! versions. What rustls cannot do is refused, naming the field.

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, NamedGroup, SupportedCipherSuite, SupportedProtocolVersion};

use super::config::{TlsParams, TlsVersion};
use super::names;
use super::server::{provider, TlsConfigError};

fn err(field: String, message: impl Into<String>) -> TlsConfigError {
    TlsConfigError { field, message: message.into() }
}

/// The provider restricted to `params`' suites and curves, and the versions to enable.
/// `default_max` is Envoy's maximum when unset: TLS 1.3 for servers, TLS 1.2 for clients.
pub fn tuned(
    params: &TlsParams,
    default_max: TlsVersion,
) -> Result<(CryptoProvider, Vec<&'static SupportedProtocolVersion>), TlsConfigError> {
    let mut provider = provider();
    let params_at = |f: &str| format!("common_tls_context.tls_params.{f}");
    if !params.cipher_suites.is_empty() {
        let mut chosen: Vec<SupportedCipherSuite> =
            provider.cipher_suites.iter().copied().filter(|s| s.version() == &rustls::version::TLS13).collect();
        for (i, name) in params.cipher_suites.iter().enumerate() {
            let found = provider.cipher_suites.iter().find(|s| names::cipher(s.suite()) == Some(name.as_str()));
            match found {
                Some(s) if s.version() == &rustls::version::TLS12 => chosen.push(*s),
                Some(_) => {
                    return Err(err(
                        params_at(&format!("cipher_suites[{i}]")),
                        format!("\"{name}\" is a TLS 1.3 suite, which cipher_suites does not configure"),
                    ))
                }
                None => {
                    return Err(err(
                        params_at(&format!("cipher_suites[{i}]")),
                        format!("cipher suite \"{name}\" is not implemented by legate (rustls)"),
                    ))
                }
            }
        }
        provider.cipher_suites = chosen;
    } else {
        // Envoy's default order (BoringSSL's): for TLS 1.2, AES-128 and ChaCha20 before
        // AES-256, ECDSA before RSA; TLS 1.3's as rustls has it.
        provider.cipher_suites.sort_by_key(|s| envoy_rank(s.suite()));
    }
    if params.ecdh_curves.is_empty() {
        // Envoy's default curves: X25519 then P-256 (P-384 only when configured).
        provider.kx_groups.retain(|g| matches!(g.name(), NamedGroup::X25519 | NamedGroup::secp256r1));
        provider.kx_groups.sort_by_key(|g| g.name() != NamedGroup::X25519);
    } else {
        let mut chosen = Vec::new();
        for (i, name) in params.ecdh_curves.iter().enumerate() {
            match provider.kx_groups.iter().find(|g| names::curve(g.name()) == Some(name.as_str())) {
                Some(g) => chosen.push(*g),
                None => {
                    return Err(err(
                        params_at(&format!("ecdh_curves[{i}]")),
                        format!("curve \"{name}\" is not implemented by legate (rustls)"),
                    ))
                }
            }
        }
        provider.kx_groups = chosen;
    }
    let min = params.min.unwrap_or(TlsVersion::V1_2);
    // An explicit minimum above the default maximum raises the maximum, as BoringSSL does.
    let max = params.max.unwrap_or(default_max.max(min));
    if min > max {
        return Err(err(
            params_at("tls_minimum_protocol_version"),
            "the minimum protocol version is above the maximum",
        ));
    }
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    if min <= TlsVersion::V1_3 && max >= TlsVersion::V1_3 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= TlsVersion::V1_2 {
        versions.push(&rustls::version::TLS12);
        if !provider.cipher_suites.iter().any(|s| s.version() == &rustls::version::TLS12) {
            return Err(err(params_at("cipher_suites"), "no TLS 1.2 cipher suite left"));
        }
    }
    Ok((provider, versions))
}

/// A suite's place in Envoy's default cipher list (TLS 1.3 suites first, in rustls' order).
fn envoy_rank(s: CipherSuite) -> u8 {
    match s {
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => 1,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => 2,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => 4,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => 5,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 6,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoys_default_curves_and_cipher_order() {
        let (p, _) = tuned(&TlsParams::default(), TlsVersion::V1_3).unwrap_or_else(|e| panic!("{e}"));
        let groups: Vec<NamedGroup> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, vec![NamedGroup::X25519, NamedGroup::secp256r1]);
        let tls12: Vec<CipherSuite> =
            p.cipher_suites.iter().filter(|s| s.version() == &rustls::version::TLS12).map(|s| s.suite()).collect();
        assert_eq!(tls12[0], CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
        assert_eq!(tls12[5], CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384);
        let p384 = TlsParams { ecdh_curves: vec!["P-384".into()], ..Default::default() };
        let (p, _) = tuned(&p384, TlsVersion::V1_3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.kx_groups.len(), 1, "configured curves are kept");
    }
}
