//! `x-forwarded-client-cert` as Envoy's connection manager sets it
//! (`ConnectionManagerUtility::mutateXfccRequestHeader`): `forward_client_cert_details` says
//! whether the client's header is removed, kept, replaced or appended to, and
//! `set_current_client_cert_details` which of the client certificate's details the element
//! legate adds carries: `By` (the URI SANs of legate's own certificate) and `Hash` always,
//! then `Cert`, `Chain`, `Subject`, `URI` and `DNS` in that order, `;` between them; the
//! PEM of `Cert` and `Chain` percent-encoded (everything but `A-Za-z0-9-._~`) and quoted.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::accept::{PeerCert, Session};

pub static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// `forward_client_cert_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardClientCert {
    /// Remove the header (Envoy's default).
    #[default]
    Sanitize,
    /// Keep the header on mTLS connections, remove it on others.
    ForwardOnly,
    /// On mTLS connections, append this hop's element; remove the header on others.
    AppendForward,
    /// On mTLS connections, replace the header with this hop's element; remove it on others.
    SanitizeSet,
    /// Keep the header whatever the connection.
    AlwaysForwardOnly,
}

/// `set_current_client_cert_details`: which details the element carries besides `By` and
/// `Hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CertDetails {
    pub subject: bool,
    pub cert: bool,
    pub chain: bool,
    pub dns: bool,
    pub uri: bool,
}

/// Both fields, as the connection manager's configuration keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Xfcc {
    pub mode: ForwardClientCert,
    pub details: CertDetails,
}

impl Xfcc {
    /// Sets the request's header for a request that came over `tls` (`None`: plain TCP).
    pub fn apply(&self, h: &mut HeaderMap, tls: Option<&Session>) {
        if self.mode == ForwardClientCert::AlwaysForwardOnly {
            return;
        }
        let peer = match (self.mode, tls.and_then(|s| s.peer.as_ref().map(|p| (s, p)))) {
            (ForwardClientCert::Sanitize, _) | (_, None) => {
                // Nearly every request has none: a look first, not a removal (a hashed lookup).
                if crate::proxy::headers::has(h, &X_FORWARDED_CLIENT_CERT) {
                    h.remove(&X_FORWARDED_CLIENT_CERT);
                }
                return;
            }
            (_, Some(p)) => p,
        };
        let element = match self.mode {
            ForwardClientCert::AppendForward | ForwardClientCert::SanitizeSet => self.element(peer.0, peer.1),
            _ => return,
        };
        let value = if self.mode == ForwardClientCert::AppendForward {
            // Envoy joins the client's lines (and its own element) with `,`.
            let mut lines: Vec<&[u8]> = h.get_all(&X_FORWARDED_CLIENT_CERT).iter().map(HeaderValue::as_bytes).collect();
            lines.push(element.as_bytes());
            lines.join(&b","[..])
        } else {
            element.into_bytes()
        };
        match HeaderValue::from_bytes(&value) {
            Ok(v) => {
                h.insert(X_FORWARDED_CLIENT_CERT.clone(), v);
            }
            // A SAN with a byte a header cannot carry: no element rather than a broken one.
            Err(_) => {
                h.remove(&X_FORWARDED_CLIENT_CERT);
            }
        }
    }

    /// This hop's element.
    fn element(&self, session: &Session, peer: &PeerCert) -> String {
        let mut parts: Vec<String> = session.local_uris.iter().map(|u| format!("By={u}")).collect();
        parts.push(format!("Hash={}", peer.sha256));
        let d = self.details;
        if d.cert {
            parts.push(format!("Cert=\"{}\"", url_encode(&pem(&peer.der))));
        }
        if d.chain {
            let chain: String = peer.chain.iter().map(|c| pem(c)).collect();
            parts.push(format!("Chain=\"{}\"", url_encode(&chain)));
        }
        if d.subject {
            // Present even when empty, as Envoy writes it.
            parts.push(format!("Subject=\"{}\"", peer.info.subject));
        }
        if d.uri {
            let uris = peer.info.uri_sans();
            if uris.is_empty() {
                parts.push("URI=".to_string());
            }
            parts.extend(uris.iter().map(|u| format!("URI={u}")));
        }
        if d.dns {
            parts.extend(peer.info.dns_sans().map(|n| format!("DNS={n}")));
        }
        parts.join(";")
    }
}

/// A certificate as `PEM_write_bio_X509` writes it: 64-column base64 between the markers,
/// each line ended by a newline.
fn pem(der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Envoy's `PercentEncoding::urlEncode`: every byte but the unreserved ones as `%XX`.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_like_the_rfc() {
        for (input, want) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
        {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn pem_lines_are_64_columns_and_encoded_as_envoy_does() {
        let p = pem(&[0xfb; 49]);
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2], "+w==");
        assert!(p.ends_with("-----END CERTIFICATE-----\n"));
        assert_eq!(url_encode("-----BEGIN CERTIFICATE-----\n+/="), "-----BEGIN%20CERTIFICATE-----%0A%2B%2F%3D");
    }
}
