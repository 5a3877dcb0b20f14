//! Envoy's checks of a request head that hyper's HTTP/1 parser lets through: the request
//! target's form, `transfer-encoding` other than a single `chunked`, a repeated
//! `content-length`, a `Host` that is not an authority, and CONNECT (legate has no
//! `connect_matcher`). Each refusal carries Envoy's status, body, response flag and details,
//! and whether Envoy closes the connection after it.

use http::header::{HeaderMap, HOST, TRANSFER_ENCODING};
use http::request::Parts;
use http::{Method, StatusCode, Version};

/// How Envoy refuses a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadRejection {
    pub status: StatusCode,
    pub body: &'static str,
    pub flag: &'static str,
    pub details: &'static str,
    /// Envoy answers with `connection: close` and closes.
    pub close: bool,
}

const fn codec(status: StatusCode, body: &'static str, details: &'static str) -> HeadRejection {
    HeadRejection { status, body, flag: "DPE", details, close: true }
}

pub const CODEC_ERROR: HeadRejection = codec(StatusCode::BAD_REQUEST, "Bad Request", "http1.codec_error");
const INVALID_URL: HeadRejection = codec(StatusCode::BAD_REQUEST, "Bad Request", "http1.invalid_url");
pub const INVALID_TE: HeadRejection =
    codec(StatusCode::NOT_IMPLEMENTED, "Not Implemented", "http1.invalid_transfer_encoding");
pub const CL_AND_CHUNKED: HeadRejection =
    codec(StatusCode::BAD_REQUEST, "Bad Request", "http1.content_length_and_chunked_not_allowed");
/// HTTP/1.0 without `accept_http_10`, HTTP/0.9, or a version Envoy does not speak.
pub const LOW_VERSION: HeadRejection = codec(StatusCode::UPGRADE_REQUIRED, "Upgrade Required", "low_version");
/// What Envoy answers to a head its codec cannot parse (hyper's own 400).
pub const UNPARSED: HeadRejection = CODEC_ERROR;
const INVALID_AUTHORITY: HeadRejection = codec(StatusCode::BAD_REQUEST, "Bad Request", "http.invalid_authority");
/// `OPTIONS *`: Envoy's connection manager refuses the asterisk path, without a flag.
const ASTERISK: HeadRejection = HeadRejection {
    status: StatusCode::NOT_FOUND,
    body: "",
    flag: "",
    details: "absolute_path_rejected",
    close: false,
};
/// CONNECT with an authority: no route matches it without a `connect_matcher`.
const CONNECT_NO_ROUTE: HeadRejection =
    HeadRejection { status: StatusCode::NOT_FOUND, body: "", flag: "NR", details: "route_not_found", close: true };

/// Checks the head in Envoy's order: the request line (its codec parses the target first),
/// then the transfer-coding, then the authority (its connection manager's check).
pub fn check(parts: &Parts) -> Result<(), HeadRejection> {
    if parts.version != Version::HTTP_2 {
        check_target(parts)?;
        check_framing(&parts.headers)?;
    }
    if let Some(host) = parts.headers.get(HOST) {
        if !host.as_bytes().iter().all(|b| authority_char(*b)) {
            return Err(INVALID_AUTHORITY);
        }
    }
    if parts.method == Method::CONNECT {
        return Err(CONNECT_NO_ROUTE);
    }
    Ok(())
}

/// HTTP/1 targets: origin-form (`/...`), absolute-form (a scheme), authority-form only for
/// CONNECT, and `*` only for OPTIONS.
fn check_target(parts: &Parts) -> Result<(), HeadRejection> {
    let uri = &parts.uri;
    let connect = parts.method == Method::CONNECT;
    if uri.scheme().is_some() {
        return if connect { Err(INVALID_URL) } else { Ok(()) };
    }
    if connect {
        return if uri.authority().is_some() { Ok(()) } else { Err(INVALID_URL) };
    }
    if uri.authority().is_some() {
        // Authority-form outside CONNECT; also how hyper reads `$` or `a/b`.
        return Err(CODEC_ERROR);
    }
    let target = uri.path_and_query().map_or("", |p| p.as_str());
    if target == "*" {
        return if parts.method == Method::OPTIONS { Err(ASTERISK) } else { Err(INVALID_URL) };
    }
    if target.starts_with('/') {
        Ok(())
    } else {
        Err(CODEC_ERROR)
    }
}

/// Envoy's codec accepts, as transfer-coding, exactly `chunked` (RFC 9112 6.1 lets a
/// server answer 501 to a coding it does not understand, and forwarding `gzip, chunked` as
/// `chunked` would change the body's meaning). A repeated `content-length` never gets here:
/// hyper keeps one of identical lines and refuses differing ones or a list.
fn check_framing(h: &HeaderMap) -> Result<(), HeadRejection> {
    let mut te = h.get_all(TRANSFER_ENCODING).iter();
    match (te.next(), te.next()) {
        (None, _) => Ok(()),
        (Some(v), None) if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(INVALID_TE),
    }
}

/// The bytes nghttp2's authority check (which Envoy uses) allows: RFC 3986's unreserved,
/// sub-delims, `:`, `@`, `[`, `]` and `%`.
fn authority_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@[]%".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, target: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("a valid test request").into_parts().0
    }

    fn details(method: &str, target: &str, headers: &[(&str, &str)]) -> Option<&'static str> {
        check(&parts(method, target, headers)).err().map(|r| r.details)
    }

    #[test]
    fn targets_neither_origin_nor_absolute_form_are_refused() {
        assert_eq!(details("GET", "/a?b", &[]), None);
        assert_eq!(details("GET", "http://a.com/x", &[]), None);
        assert_eq!(details("GET", "*", &[]), Some("http1.invalid_url"));
        assert_eq!(check(&parts("OPTIONS", "*", &[])), Err(ASTERISK));
        assert_eq!(details("GET", "$", &[]), Some("http1.codec_error"));
        assert_eq!(details("GET", "example.com:80", &[]), Some("http1.codec_error"));
    }

    #[test]
    fn connect_is_refused_without_a_connect_matcher() {
        assert_eq!(details("CONNECT", "/", &[]), Some("http1.invalid_url"));
        assert_eq!(check(&parts("CONNECT", "example.com:443", &[])), Err(CONNECT_NO_ROUTE));
    }

    #[test]
    fn only_a_single_chunked_transfer_coding_passes() {
        assert_eq!(details("POST", "/", &[("transfer-encoding", "Chunked")]), None);
        for te in ["gzip, chunked", "chunked, chunked", "identity", "xchunked", "", "chunked;q=1"] {
            let r = check(&parts("POST", "/", &[("transfer-encoding", te)]));
            assert_eq!(r.map_err(|r| r.status), Err(StatusCode::NOT_IMPLEMENTED), "{te:?}");
        }
        let two = [("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")];
        assert_eq!(details("POST", "/", &two), Some("http1.invalid_transfer_encoding"));
    }

    #[test]
    fn hosts_that_are_not_an_authority_are_refused() {
        for ok in ["example.com", "", "example.com:abc", "[::1]:80", "u@ex%41mple.com:80", "a.com,b.com"] {
            assert_eq!(details("GET", "/", &[("host", ok)]), None, "{ok:?}");
        }
        for bad in ["a.com, b.com", "e{ample.com", "|xample.com", "ex\"ample.com"] {
            assert_eq!(details("GET", "/", &[("host", bad)]), Some("http.invalid_authority"), "{bad:?}");
        }
    }
}
