//! What the gRPC translating filters (`grpc_http1_bridge`, `grpc_web`) share: gRPC's framing
//! (RFC-less but fixed: a flags byte, a big-endian length, the message), base64 as gRPC-Web
//! text uses it (standard alphabet, padding mandatory), Envoy's percent-encoding of
//! `grpc-message`, and reading a response body whole up to a bound.

use bytes::{BufMut, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;

use crate::proxy::body::{BodyError, ResBody};

/// The flags byte, then the 4-byte length.
pub const FRAME_HEADER: usize = 5;

/// The frame header of a message of `len` bytes, uncompressed.
pub fn frame_header(flags: u8, len: usize) -> [u8; FRAME_HEADER] {
    let l = (len as u32).to_be_bytes();
    [flags, l[0], l[1], l[2], l[3]]
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with `=` padding.
pub fn base64_encode(input: &[u8], out: &mut BytesMut) {
    out.reserve(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.put_u8(ALPHABET[(n >> 18) as usize & 63]);
        out.put_u8(ALPHABET[(n >> 12) as usize & 63]);
        out.put_u8(if chunk.len() > 1 { ALPHABET[(n >> 6) as usize & 63] } else { b'=' });
        out.put_u8(if chunk.len() > 2 { ALPHABET[n as usize & 63] } else { b'=' });
    }
}

fn sextet(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes whole 4-character groups (`input.len()` a multiple of 4); padding may only end a
/// group, and a padded group ends its run of base64 (gRPC-Web text concatenates such runs).
/// `None` for anything else, as Envoy's `Base64::decode` refuses it.
pub fn base64_decode(input: &[u8], out: &mut BytesMut) -> Option<()> {
    if input.len() % 4 != 0 {
        return None;
    }
    for group in input.chunks(4) {
        let pad = group.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &group[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        out.put_u8((n >> 16) as u8);
        if pad < 2 {
            out.put_u8((n >> 8) as u8);
        }
        if pad < 1 {
            out.put_u8(n as u8);
        }
    }
    Some(())
}

/// Envoy's `PercentEncoding::encode` of a `grpc-message`: `%` and bytes outside printable
/// ASCII become `%XX`.
pub fn percent_encode(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        if b == b'%' || !(b' '..=b'~').contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
pub fn http_to_grpc_status(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

/// A response body read to its end.
pub enum Collected {
    Whole {
        data: BytesMut,
        trailers: Option<HeaderMap>,
    },
    /// More than the bound: what was read is dropped.
    TooLarge,
    /// The body failed before its end (the upstream reset, a timer expired).
    Failed(BodyError),
}

/// Reads `body` to its end, keeping at most `limit` bytes (`keep_reading`: past the bound,
/// read and drop the rest instead of stopping).
pub async fn collect(mut body: ResBody, limit: usize, keep_reading: bool) -> Collected {
    let mut data = BytesMut::new();
    let mut trailers = None;
    // Bounded by the body: each frame is one step, and the body ends.
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return Collected::Failed(e),
        };
        match frame.into_data() {
            Ok(d) => {
                let room = limit.saturating_sub(data.len());
                if d.len() > room && !keep_reading {
                    return Collected::TooLarge;
                }
                data.extend_from_slice(&d[..d.len().min(room)]);
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    Collected::Whole { data, trailers }
}

/// A body that fails at once with the error another body failed with: the client's
/// connection (or stream) is then reset, as Envoy resets it when the upstream fails after
/// the response began.
pub fn failed_body(e: BodyError) -> ResBody {
    ResBody::Grpc(Box::new(super::grpc_web_body::GrpcResBody::Failed(Some(e))))
}

/// Takes `:path`'s query off a request (the bridge's `ignore_query_parameters`).
pub fn strip_query(parts: &mut http::request::Parts) -> Option<String> {
    let pq = parts.uri.path_and_query()?;
    pq.query()?;
    let path = pq.path().to_string();
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = path.parse().ok();
    parts.uri = http::Uri::from_parts(uri).unwrap_or_default();
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(b: &[u8]) -> String {
        let mut out = BytesMut::new();
        base64_encode(b, &mut out);
        String::from_utf8(out.to_vec()).unwrap_or_default()
    }

    fn dec(s: &str) -> Option<Vec<u8>> {
        let mut out = BytesMut::new();
        base64_decode(s.as_bytes(), &mut out).map(|()| out.to_vec())
    }

    #[test]
    fn base64_round_trips_with_padding() {
        assert_eq!(enc(b"\0\0\0\0\x03abc"), "AAAAAANhYmM=");
        assert_eq!(enc(b"ab"), "YWI=");
        assert_eq!(enc(b"a"), "YQ==");
        for s in [&b""[..], b"a", b"ab", b"abc", b"\xff\xfe\x00\x80"] {
            assert_eq!(dec(&enc(s)).as_deref(), Some(s));
        }
        // Runs concatenated, as gRPC-Web text frames are.
        assert_eq!(dec("YQ==YWI=").as_deref(), Some(&b"aab"[..]));
        assert_eq!(dec("AAAAAAN"), None);
        assert_eq!(dec("AA*A"), None);
        assert_eq!(dec("A==="), None);
    }

    #[test]
    fn grpc_message_is_percent_encoded_as_envoy() {
        assert_eq!(percent_encode(b"50% off\n\"x\""), "50%25 off%0A\"x\"");
    }

    #[test]
    fn query_is_taken_off() {
        let (mut parts, ()) = http::Request::get("/svc/M?x=1").body(()).unwrap_or_default().into_parts();
        assert_eq!(strip_query(&mut parts).as_deref(), Some("/svc/M"));
        assert_eq!(parts.uri, "/svc/M");
        assert_eq!(strip_query(&mut parts), None);
    }
}
