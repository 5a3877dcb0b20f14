//! Which requests the own client sends, and their bytes: the head as hyper's client writes
//! it (the same request line, header order and case, and hyper's `content-length` rule),
//! then the body, in one buffer written at once.

use std::io::Write;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Version};

use crate::body::ReqBody;

/// The largest body sent by the own client. It is written before the response is read; a
/// body the socket buffers take whole cannot wait on an upstream that answers before it
/// reads (hyper, which reads while it writes, sends longer ones).
const MAX_BODY: usize = 64 * 1024;

/// A request the own client can send: its body, and whether its `content-length` is added.
pub struct Plan<'a> {
    body: Option<&'a Bytes>,
    add_length: bool,
}

/// What the own client sends of `req`, or `None` when hyper must: a streamed or large body,
/// an upgrade, `expect`, a `transfer-encoding` of the client's, CONNECT, HTTP/1.0.
pub fn plan(req: &Request<ReqBody>) -> Option<Plan<'_>> {
    if req.method() == Method::CONNECT || !matches!(req.version(), Version::HTTP_11 | Version::HTTP_2) {
        return None;
    }
    let h = req.headers();
    // The usual few names are compared in one pass (three lookups hashed each cost more);
    // many are looked up.
    let hyper_only_asked = if h.keys_len() <= 16 {
        h.keys().any(|k| k == header::UPGRADE || k == header::EXPECT || k == header::TRANSFER_ENCODING)
    } else {
        h.contains_key(header::UPGRADE) || h.contains_key(header::EXPECT) || h.contains_key(header::TRANSFER_ENCODING)
    };
    if hyper_only_asked {
        return None;
    }
    match req.body() {
        // hyper sends a finished body as none, the headers as they are.
        ReqBody::Full(None) => Some(Plan { body: None, add_length: false }),
        ReqBody::Full(Some(b)) if b.len() <= MAX_BODY => match content_length(h) {
            None => Some(Plan { body: Some(b), add_length: true }),
            Some(Some(n)) if n == b.len() as u64 => Some(Plan { body: Some(b), add_length: false }),
            // A length that is not the body's: hyper's error to give.
            Some(_) => None,
        },
        _ => None,
    }
}

/// The request's `content-length`: `None` without one, `Some(None)` when it is not one
/// number.
fn content_length(h: &HeaderMap) -> Option<Option<u64>> {
    let mut values = h.get_all(header::CONTENT_LENGTH).iter();
    let first = values.next()?;
    let n = std::str::from_utf8(first.as_bytes()).ok().and_then(|s| s.trim().parse::<u64>().ok());
    Some(n.filter(|_| values.next().is_none()))
}

/// Writes `req`'s head and body into `out` (cleared first). `title_case`: header names
/// Proper-Cased (`header_key_format.proper_case_words`), as hyper's `title_case_headers`.
pub fn encode(out: &mut Vec<u8>, req: &Request<ReqBody>, plan: &Plan<'_>, title_case: bool) {
    out.clear();
    let body_len = plan.body.map_or(0, |b| b.len());
    out.reserve(256 + req.headers().len() * 32 + body_len);
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let uri = req.uri();
    if uri.scheme().is_none() && uri.authority().is_none() {
        out.extend_from_slice(uri.path().as_bytes());
        if let Some(q) = uri.query() {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
    } else {
        // Absolute form, as hyper writes it (through the URI's `Display`).
        let _ = write!(out, "{uri}");
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        header_line(out, name.as_str().as_bytes(), value.as_bytes(), title_case);
    }
    if plan.add_length {
        let digits = body_len.to_string();
        header_line(out, b"content-length", digits.as_bytes(), title_case);
    }
    out.extend_from_slice(b"\r\n");
    if let Some(b) = plan.body {
        out.extend_from_slice(b);
    }
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8], title_case: bool) {
    if title_case {
        let mut upper = true;
        for &c in name {
            out.push(if upper { c.to_ascii_uppercase() } else { c });
            upper = c == b'-';
        }
    } else {
        out.extend_from_slice(name);
    }
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
