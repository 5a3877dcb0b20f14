//! The response side of the own client: the head parsed as hyper's client parses it (the same
//! limits, framing and keep-alive rules), and the body read by its framing in the task that
//! polls it, the connection handed back when the body's last byte is read.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use http_body::{Frame, SizeHint};

use tokio::io::AsyncRead;

use super::{Conn, Error, Io};

/// Headers a response head may have (hyper's default).
const MAX_HEADERS: usize = 100;
/// Informational (1xx) answers skipped before the final one; more is not a server.
const MAX_INFORMATIONAL: usize = 16;
/// The longest chunk-size line (with its extensions) and trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// How the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// When the upstream closes (never kept).
    Eof,
    Done,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    /// This many bytes of the chunk's data are left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
}

/// A response head: the response (bodiless), how its body is framed, and whether the
/// connection may carry another request after it.
pub struct Head {
    pub response: http::Response<()>,
    framing: Framing,
    keep_alive: bool,
    length_and_chunked: bool,
}

impl Head {
    /// The head has both `content-length` and `transfer-encoding` (which Envoy refuses).
    pub fn length_and_transfer_encoding(&self) -> bool {
        self.length_and_chunked
    }
}

/// What a head's framing headers say, gathered as its lines are read (looking each up again
/// by name cost more than the rest of the framing).
#[derive(Default)]
struct Lengths {
    /// `transfer-encoding` was present: whether its last coding is chunked.
    chunked: Option<bool>,
    seen_length: bool,
    /// Every `content-length` item so far is this one number (`None`: none yet, or invalid).
    length: Option<u64>,
    invalid: bool,
}

impl Lengths {
    fn add(&mut self, v: &HeaderValue) {
        self.seen_length = true;
        // The usual value, one number, read without the general path's `str` splitting; at
        // most 19 digits cannot overflow, so this is the general path's result.
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 19 && b.iter().all(u8::is_ascii_digit) {
            let n = b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            match self.length {
                Some(l) if n != l => self.invalid = true,
                _ => self.length = Some(n),
            }
            return;
        }
        self.add_items(v);
    }

    /// The general path: comma-separated items, each one the same number.
    fn add_items(&mut self, v: &HeaderValue) {
        let Ok(s) = v.to_str() else {
            self.invalid = true;
            return;
        };
        for item in s.split(',') {
            let item = item.trim();
            let n = match item.bytes().all(|b| b.is_ascii_digit()) {
                true if !item.is_empty() => item.parse::<u64>().ok(),
                _ => None,
            };
            match (n, self.length) {
                (Some(n), Some(l)) if n != l => self.invalid = true,
                (Some(n), _) => self.length = Some(n),
                (None, _) => self.invalid = true,
            }
        }
    }
}

fn last_coding_is_chunked(v: &HeaderValue) -> bool {
    v.to_str().ok().and_then(|v| v.rsplit(',').next()).is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
}

/// Reads the final response head of an exchange (informational ones skipped). `head_request`:
/// the request was a HEAD (the response has no body whatever it says); `limit`: the longest
/// head (the pool's buffer limit, hyper's `max_buf_size`).
pub fn poll_head<T: AsyncRead + Unpin>(
    conn: &mut Conn<T>,
    cx: &mut Context<'_>,
    head_request: bool,
    limit: usize,
) -> Poll<Result<Head, Error>> {
    let mut skipped = 0;
    // Bounded: each turn reads more bytes (up to `limit`) or skips an informational answer.
    loop {
        match parse_head(conn, head_request)? {
            Some(Parsed::Final(head)) => return Poll::Ready(Ok(head)),
            Some(Parsed::Informational) => {
                skipped += 1;
                if skipped > MAX_INFORMATIONAL {
                    return Poll::Ready(Err(Error::Parse("too many informational responses")));
                }
                continue;
            }
            None if conn.buf.len() >= limit => return Poll::Ready(Err(Error::TooLarge)),
            None => {}
        }
        if ready!(conn.poll_fill(cx))? == 0 {
            return Poll::Ready(Err(Error::Incomplete));
        }
    }
}

/// Response headers whose positions are kept on the stack.
const INLINE_SPANS: usize = 16;

/// Header slots beyond the upstream's own in a response's map (see `parse_head`).
const MAP_HEADROOM: usize = 8;

enum Parsed {
    Final(Head),
    Informational,
}

/// One head from the buffer (consumed); `None` when the buffer does not hold a whole one.
fn parse_head<T>(conn: &mut Conn<T>, head_request: bool) -> Result<Option<Parsed>, Error> {
    if conn.buf.is_empty() {
        return Ok(None);
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len =
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, &conn.buf, &mut slots) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(Error::Parse(parse_error(e))),
        };
    let code = res.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| Error::Parse("invalid status code"))?;
    if (100..200).contains(&code) && code != 101 {
        conn.buf.advance(len);
        return Ok(Some(Parsed::Informational));
    }
    let version = if res.version == Some(1) { Version::HTTP_11 } else { Version::HTTP_10 };
    let reason =
        res.reason.filter(|r| Some(*r) != status.canonical_reason()).map(|r| Bytes::copy_from_slice(r.as_bytes()));
    // Header positions, so that values become slices of the head's bytes, not copies. On the
    // stack for the usual few headers (an array for the most would be zeroed per response,
    // 3 KiB); a Vec beyond.
    let base = conn.buf.as_ptr() as usize;
    let span = |h: &httparse::Header<'_>| {
        let name = h.name.as_ptr() as usize - base;
        let value = h.value.as_ptr() as usize - base;
        (name, name + h.name.len(), value, value + h.value.len())
    };
    let mut inline = [(0, 0, 0, 0); INLINE_SPANS];
    let heap: Vec<(usize, usize, usize, usize)>;
    let spans = if res.headers.len() <= INLINE_SPANS {
        for (slot, h) in inline.iter_mut().zip(res.headers.iter()) {
            *slot = span(h);
        }
        &inline[..res.headers.len()]
    } else {
        heap = res.headers.iter().map(span).collect();
        &heap[..]
    };
    let bytes = conn.buf.split_to(len).freeze();
    // Room for what the proxy adds to the response, and for the next request: hyper keeps the
    // map of the response it wrote and parses the connection's next request into it, to which
    // the proxy adds its forwarding headers. A map sized to the upstream's headers alone grew
    // (a reallocation and a rehash) on every request.
    let mut headers = HeaderMap::with_capacity(spans.len() + MAP_HEADROOM);
    let mut keep_alive = version == Version::HTTP_11;
    let mut saw_close = false;
    let mut lengths = Lengths::default();
    for &(n0, n1, v0, v1) in spans {
        let raw = &bytes[n0..n1];
        let name = match known_name(raw) {
            Some(name) => name,
            None => HeaderName::from_bytes(raw).map_err(|_| Error::Parse("invalid header name"))?,
        };
        let value =
            HeaderValue::from_maybe_shared(bytes.slice(v0..v1)).map_err(|_| Error::Parse("invalid header value"))?;
        if name == header::TRANSFER_ENCODING {
            // The last line's last coding is the one that counts.
            lengths.chunked = Some(last_coding_is_chunked(&value));
        } else if name == header::CONTENT_LENGTH {
            lengths.add(&value);
        } else if name == header::CONNECTION {
            // Once a line asks to close, a later keep-alive does not undo it (hyper's rule).
            let (close, asks_keep_alive) = connection_tokens(&value);
            if saw_close || close {
                saw_close = true;
                keep_alive = false;
            } else if !keep_alive {
                keep_alive = asks_keep_alive;
            }
        }
        headers.append(name, value);
    }
    let (framing, upgrade) = framing(code, version, &lengths, head_request)?;
    if upgrade {
        // Only requests asking for no upgrade are sent here: a switch is not an answer.
        return Err(Error::Parse("unexpected 101 Switching Protocols"));
    }
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    if let Some(reason) = reason.and_then(|r| hyper::ext::ReasonPhrase::try_from(r).ok()) {
        response.extensions_mut().insert(reason);
    }
    let keep_alive = keep_alive && framing != Framing::Eof;
    let length_and_chunked = lengths.chunked.is_some() && lengths.seen_length;
    Ok(Some(Parsed::Final(Head { response, framing, keep_alive, length_and_chunked })))
}

fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid new line",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid version",
    }
}

/// RFC 9112's message body length, hyper's client's way; true: a protocol switch.
fn framing(code: u16, version: Version, l: &Lengths, head_request: bool) -> Result<(Framing, bool), Error> {
    if code == 101 {
        return Ok((Framing::Done, true));
    }
    if code == 204 || code == 304 || head_request {
        return Ok((Framing::Done, false));
    }
    if let Some(chunked) = l.chunked {
        if version == Version::HTTP_10 {
            return Err(Error::Parse("transfer-encoding in an HTTP/1.0 response"));
        }
        return Ok((if chunked { Framing::Chunked(Chunk::Size) } else { Framing::Eof }, false));
    }
    if !l.seen_length {
        return Ok((Framing::Eof, false));
    }
    match l.length.filter(|_| !l.invalid) {
        Some(0) => Ok((Framing::Done, false)),
        Some(n) => Ok((Framing::Length(n), false)),
        None => Err(Error::Parse("invalid content-length")),
    }
}

/// Whether a `connection` value lists `close` and `keep-alive`: comma-separated tokens, blanks
/// around them ignored, case-insensitive; a value that is not visible ASCII lists none
/// (`HeaderValue::to_str`'s rule). One pass over the bytes: through `str` splitting it cost
/// more than the rest of the head's framing.
fn connection_tokens(v: &HeaderValue) -> (bool, bool) {
    let b = v.as_bytes();
    if !b.iter().all(|&c| c == b'\t' || (32..127).contains(&c)) {
        return (false, false);
    }
    let (mut close, mut keep_alive) = (false, false);
    for t in b.split(|&c| c == b',') {
        // Only blanks and tabs can surround a token here (the bytes are visible ASCII).
        let t = t.trim_ascii();
        close |= t.eq_ignore_ascii_case(b"close");
        keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
    }
    (close, keep_alive)
}

/// The standard header names upstream responses mostly carry, by length, matched before
/// `HeaderName::from_bytes` (which lowercases the name into a buffer and looks it up among
/// all standard names, about 150 instructions a name). A name equal to one of these but
/// for ASCII case is that standard name whichever way it is parsed.
fn known_name(raw: &[u8]) -> Option<HeaderName> {
    // The two usual spellings compare as a few words; any other casing byte by byte.
    let is = |lower: &[u8], canonical: &[u8]| raw == lower || raw == canonical || raw.eq_ignore_ascii_case(lower);
    // By length and first letter, so that at most one name is compared.
    let first = raw.first()?.to_ascii_lowercase();
    Some(match (raw.len(), first) {
        (4, b'd') if is(b"date", b"Date") => header::DATE,
        (4, b'e') if is(b"etag", b"ETag") => header::ETAG,
        (4, b'v') if is(b"vary", b"Vary") => header::VARY,
        (6, b's') if is(b"server", b"Server") => header::SERVER,
        (10, b'c') if is(b"connection", b"Connection") => header::CONNECTION,
        (10, b's') if is(b"set-cookie", b"Set-Cookie") => header::SET_COOKIE,
        (12, b'c') if is(b"content-type", b"Content-Type") => header::CONTENT_TYPE,
        (13, b'l') if is(b"last-modified", b"Last-Modified") => header::LAST_MODIFIED,
        (13, b'a') if is(b"accept-ranges", b"Accept-Ranges") => header::ACCEPT_RANGES,
        (13, b'c') if is(b"cache-control", b"Cache-Control") => header::CACHE_CONTROL,
        (14, b'c') if is(b"content-length", b"Content-Length") => header::CONTENT_LENGTH,
        (17, b't') if is(b"transfer-encoding", b"Transfer-Encoding") => header::TRANSFER_ENCODING,
        _ => return None,
    })
}

/// Where a finished exchange's connection goes: back to its pool, if the pool still wants it.
pub trait Home<T = Io>: Send + Sync {
    fn take_back(self: std::sync::Arc<Self>, conn: Box<Conn<T>>);
}

/// An upstream response body read by the own client. Dropped before its end, it closes the
/// connection (the rest of the body would be read as the next response).
pub struct Body<T = Io> {
    /// Boxed once per connection (not per request): it is moved between the pool and bodies.
    conn: Option<Box<Conn<T>>>,
    framing: Framing,
    keep_alive: bool,
    home: Option<std::sync::Arc<dyn Home<T>>>,
    /// Data was given since the body last waited; an error found now waits one turn.
    given: bool,
    /// The error held for that turn.
    held: Option<Error>,
}

impl<T: AsyncRead + Unpin> Body<T> {
    /// The body after `head` on `conn`; an empty one hands the connection back at once.
    pub fn new(conn: Box<Conn<T>>, head: &Head, home: std::sync::Arc<dyn Home<T>>) -> Body<T> {
        let mut body = Body {
            conn: Some(conn),
            framing: head.framing,
            keep_alive: head.keep_alive,
            home: Some(home),
            given: false,
            held: None,
        };
        if body.framing == Framing::Done {
            body.finish();
        }
        body
    }

    /// The body ended where its framing says: the connection goes home, if it can carry the
    /// next request (nothing unasked was read after the response).
    fn finish(&mut self) {
        self.framing = Framing::Done;
        let conn = self.conn.take();
        let home = self.home.take();
        if let (Some(conn), Some(home), true) = (conn, home, self.keep_alive) {
            if conn.buf.is_empty() {
                home.take_back(conn);
            }
        }
    }

    /// Ends the body with `e`, closing the connection. Data given in this same turn is
    /// flushed downstream first: the server writes what it got when the body waits, and a
    /// body failing at once would lose it (Envoy passes on what came before the break).
    fn fail(&mut self, e: Error, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.framing = Framing::Done;
        self.conn = None;
        if std::mem::take(&mut self.given) {
            self.held = Some(e);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(e)))
    }

    /// A data frame, noted as given.
    fn give(&mut self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.given = true;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    /// Up to `max` buffered bytes as a data frame (`None`: nothing buffered).
    fn take(conn: &mut Conn<T>, max: u64) -> Option<Bytes> {
        let n = (conn.buf.len() as u64).min(max) as usize;
        (n > 0).then(|| conn.buf.split_to(n).freeze())
    }
}

impl<T: AsyncRead + Unpin> http_body::Body for Body<T> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if let Some(e) = this.held.take() {
            return Poll::Ready(Some(Err(e)));
        }
        // Bounded: each turn consumes buffered bytes or reads more (which may wait).
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match this.framing {
                Framing::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    if let Some(data) = Self::take(conn, left) {
                        let left = left - data.len() as u64;
                        this.framing = Framing::Length(left);
                        if left == 0 {
                            // Handed back with the last bytes: a server that sees the body's
                            // end from its length never polls it again.
                            this.finish();
                        }
                        return this.give(data);
                    }
                }
                Framing::Eof => {
                    if let Some(data) = Self::take(conn, u64::MAX) {
                        return this.give(data);
                    }
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    if let Some(data) = Self::take(conn, left) {
                        let left = left - data.len() as u64;
                        this.framing = Framing::Chunked(if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) });
                        return this.give(data);
                    }
                }
                Framing::Chunked(Chunk::Size) => match httparse::parse_chunk_size(&conn.buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        conn.buf.advance(used);
                        this.framing = Framing::Chunked(if size == 0 { Chunk::Trailers } else { Chunk::Data(size) });
                        continue;
                    }
                    Ok(httparse::Status::Partial) if conn.buf.len() < MAX_CHUNK_LINE => {}
                    _ => return this.fail(Error::Parse("invalid chunk size"), cx),
                },
                Framing::Chunked(Chunk::DataEnd) => {
                    if conn.buf.len() >= 2 {
                        if &conn.buf[..2] != b"\r\n" {
                            return this.fail(Error::Parse("invalid chunk end"), cx);
                        }
                        conn.buf.advance(2);
                        this.framing = Framing::Chunked(Chunk::Size);
                        continue;
                    }
                }
                Framing::Chunked(Chunk::Trailers) => match trailers(conn) {
                    Ok(Some(None)) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Some(Some(map))) => {
                        this.finish();
                        return Poll::Ready(Some(Ok(Frame::trailers(map))));
                    }
                    Ok(None) if conn.buf.len() < MAX_TRAILERS => {}
                    Ok(None) => return this.fail(Error::TooLarge, cx),
                    Err(e) => return this.fail(e, cx),
                },
            }
            match conn.poll_fill(cx) {
                Poll::Pending => {
                    this.given = false;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) if this.framing == Framing::Eof => {
                    // The end of a body framed by the connection's: never kept.
                    this.keep_alive = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => return this.fail(Error::Incomplete, cx),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(Error::Io(e), cx),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // A held error is not an end: the server must poll again to see the break.
        self.framing == Framing::Done && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done if self.held.is_none() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// The trailer section after the last chunk, consumed: `Some(None)` when empty,
/// `Some(Some(map))` with fields, `None` while incomplete.
fn trailers<T>(conn: &mut Conn<T>) -> Result<Option<Option<HeaderMap>>, Error> {
    if conn.buf.starts_with(b"\r\n") {
        conn.buf.advance(2);
        return Ok(Some(None));
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (used, map) = match httparse::parse_headers(&conn.buf, &mut slots) {
        Ok(httparse::Status::Complete((used, fields))) => {
            let mut map = HeaderMap::with_capacity(fields.len());
            for f in fields.iter() {
                let name =
                    HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| Error::Parse("invalid trailer name"))?;
                let value = HeaderValue::from_bytes(f.value).map_err(|_| Error::Parse("invalid trailer value"))?;
                map.append(name, value);
            }
            (used, map)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Error::Parse("invalid trailers")),
    };
    conn.buf.advance(used);
    Ok(Some(Some(map)))
}

/// The response of an exchange whose head was read, with its body.
pub fn response<T: AsyncRead + Unpin>(
    head: Head,
    conn: Box<Conn<T>>,
    home: std::sync::Arc<dyn Home<T>>,
) -> http::Response<Body<T>> {
    let body = Body::new(conn, &head, home);
    head.response.map(|()| body)
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    #[test]
    fn known_names_are_the_names_from_bytes_parses() {
        let names = [
            "date",
            "Date",
            "DATE",
            "dAte",
            "etag",
            "ETag",
            "Etag",
            "vary",
            "Vary",
            "server",
            "Server",
            "SERVER",
            "connection",
            "Connection",
            "set-cookie",
            "Set-Cookie",
            "content-type",
            "Content-Type",
            "CONTENT-TYPE",
            "last-modified",
            "Last-Modified",
            "accept-ranges",
            "Accept-Ranges",
            "cache-control",
            "Cache-Control",
            "content-length",
            "Content-Length",
            "content-LENGTH",
            "transfer-encoding",
            "Transfer-Encoding",
        ];
        for n in names {
            let fast = known_name(n.as_bytes()).unwrap_or_else(|| panic!("{n} not known"));
            assert_eq!(fast, HeaderName::from_bytes(n.as_bytes()).unwrap(), "{n}");
            assert_eq!(fast.as_str(), n.to_ascii_lowercase());
        }
        // Same length and first letter, another name: left to `from_bytes`.
        for n in ["dat3", "dates", "content-lengtx", "servers", "x-date", "", "c", "set_cookie", "connectio\u{e9}"] {
            assert!(known_name(n.as_bytes()).is_none(), "{n}");
        }
    }

    fn value(b: &[u8]) -> HeaderValue {
        HeaderValue::from_bytes(b).unwrap()
    }

    /// What the connection header's tokens were found to be before the one-pass reading.
    fn tokens_by_str(v: &HeaderValue) -> (bool, bool) {
        let has = |token: &str| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)));
        (has("close"), has("keep-alive"))
    }

    #[test]
    fn connection_tokens_are_read_as_str_splitting_reads_them() {
        let values: [&[u8]; 14] = [
            b"close",
            b"Close",
            b"keep-alive",
            b"Keep-Alive",
            b" keep-alive , close ",
            b"upgrade, close",
            b"closed",
            b"keep-alive2",
            b"",
            b",,",
            b"\tclose\t",
            b"x-close, keep-alive",
            b"close\xff",
            b"te,\tKEEP-ALIVE",
        ];
        for v in values {
            let v = value(v);
            assert_eq!(connection_tokens(&v), tokens_by_str(&v), "{v:?}");
        }
        assert_eq!(connection_tokens(&value(b"keep-alive, close")), (true, true));
        assert_eq!(connection_tokens(&value(b"close\xff")), (false, false));
    }

    #[test]
    fn lengths_read_fast_are_the_general_paths() {
        let lists: [&[&str]; 10] = [
            &["128"],
            &["0"],
            &["128", "128"],
            &["128", "129"],
            &["9999999999999999999"],
            &["99999999999999999999"],
            &["18446744073709551615"],
            &["12, 12"],
            &["+1"],
            &["5", "5, 5", "6"],
        ];
        for list in lists {
            let (mut fast, mut general) = (Lengths::default(), Lengths::default());
            for v in list {
                fast.add(&value(v.as_bytes()));
                general.seen_length = true;
                general.add_items(&value(v.as_bytes()));
            }
            let got = (fast.seen_length, fast.length, fast.invalid);
            assert_eq!(got, (general.seen_length, general.length, general.invalid), "{list:?}");
        }
        let mut one = Lengths::default();
        one.add(&value(b"128"));
        assert_eq!((one.length, one.invalid), (Some(128), false));
    }
}
