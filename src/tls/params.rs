//! `tls_params` as rustls applies them, for server and client contexts alike: the cipher
//! suites and curves of the `ring` provider chosen by their OpenSSL names, and the protocol
//! versions. What rustls cannot do is refused, naming the field.

use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

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
    }
    if !params.ecdh_curves.is_empty() {
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
