//! What legate reads out of an X.509 certificate (x509-parser): serial, subject, SANs and
//! validity, for `/certs`, the certificate choice by SNI, client SAN matching and the
//! access log's `%DOWNSTREAM_PEER_*%` operators.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid2abbrev, oid_registry};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

/// One certificate, as `/certs` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The file it came from, or `<inline>`.
    pub path: String,
    /// Lowercase hex without leading zero bytes (Envoy's `serial_number`).
    pub serial_number: String,
    /// RFC 2253 (`CN=client,O=Acme`), as Envoy's `%DOWNSTREAM_PEER_SUBJECT%`.
    pub subject: String,
    pub sans: Vec<San>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Uri(String),
    Email(String),
    Ip(IpAddr),
}

/// Why a certificate could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unparsable certificate: {0}")]
pub struct CertError(String);

/// Reads one DER certificate.
pub fn parse(der: &[u8], path: &str) -> Result<CertInfo, CertError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CertError(e.to_string()))?;
    let serial = cert.raw_serial();
    let first = serial.iter().position(|&b| b != 0).unwrap_or(serial.len().saturating_sub(1));
    let serial_number = serial[first..].iter().map(|b| format!("{b:02x}")).collect();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => sans.push(San::Dns((*d).to_string())),
                GeneralName::URI(u) => sans.push(San::Uri((*u).to_string())),
                GeneralName::RFC822Name(e) => sans.push(San::Email((*e).to_string())),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        sans.push(San::Ip(IpAddr::from(a)));
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        sans.push(San::Ip(IpAddr::from(a)));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        path: path.to_string(),
        serial_number,
        subject: rfc2253(cert.subject()),
        sans,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// The certificate's SubjectPublicKeyInfo, DER.
pub fn spki(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.public_key().raw.to_vec())
}

/// A name as RFC 2253 writes it: the last RDN first, `,` between RDNs, `+` inside one.
fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|a| {
                    let key = oid2abbrev(a.attr_type(), oid_registry())
                        .map(str::to_string)
                        .unwrap_or_else(|_| a.attr_type().to_id_string());
                    let value = a.as_str().map(escape).unwrap_or_default();
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == v.chars().count() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl CertInfo {
    /// Whole days from `now` (Unix seconds) to expiry, 0 once expired (Envoy's
    /// `days_until_expiration`).
    pub fn days_until_expiration(&self, now: i64) -> u64 {
        u64::try_from((self.not_after - now) / 86_400).unwrap_or(0)
    }

    /// The DNS SANs (the subject's CN when there are none), lowercased.
    pub fn dns_names(&self) -> Vec<String> {
        self.sans
            .iter()
            .filter_map(|s| match s {
                San::Dns(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect()
    }

    /// The DNS SANs as the certificate writes them (`x-forwarded-client-cert`'s `DNS`).
    pub fn dns_sans(&self) -> impl Iterator<Item = &str> {
        self.sans.iter().filter_map(|s| match s {
            San::Dns(d) => Some(d.as_str()),
            _ => None,
        })
    }

    /// The first URI SAN (`%DOWNSTREAM_PEER_URI_SAN%` shows them all, comma-separated).
    pub fn uri_sans(&self) -> Vec<&str> {
        self.sans
            .iter()
            .filter_map(|s| match s {
                San::Uri(u) => Some(u.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Whether `name` (lowercase) is covered by a certificate name (`*.example.com` covers one
/// label).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix))
        }
        None => pattern.eq_ignore_ascii_case(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(name_matches("Example.com", "example.com"));
    }

    #[test]
    fn escapes_specials() {
        assert_eq!(escape("a,b"), "a\\,b");
        assert_eq!(escape(" x "), "\\ x\\ ");
    }
}
