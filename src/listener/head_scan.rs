//! A read-side follower of HTTP/1 request framing that finds what hyper hides from the service:
//! a request with both `content-length` and `transfer-encoding` (hyper keeps one and drops the
//! other when it comes after `transfer-encoding`), and a `#fragment` in the request target (the
//! `http` crate drops it). Envoy answers both with 400 and closes the connection.
//!
//! [`HeadScan`] sees every byte hyper reads, in order. It walks heads line by line (bounded by
//! the header limit), skips `content-length` bodies in bulk, and follows chunked bodies (size
//! line, data, CRLF, last chunk, trailers). It counts the heads it completes; the first flawed
//! one is reported with its index, and the service, which counts the HTTP/1 requests hyper hands
//! it, rejects the request with that index. On anything it does not understand the scanner
//! stops for good and leaves the judgement to hyper: it never wedges nor flags a valid request.
//! [`ScanIo`] runs it on the connection's reads; it is only used for HTTP/1 connections.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::proxy::ConnCtx;

/// What is wrong with a request head that hyper lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadFlaw {
    /// Both `content-length` and `transfer-encoding`.
    ContentLengthAndChunked,
    /// A `#` in the request target.
    Fragment,
}

/// The first flawed request of a connection: its index among the connection's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flagged {
    pub request: u64,
    pub flaw: HeadFlaw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    RequestLine,
    Headers,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    /// Lost track or done: everything else is hyper's to judge.
    Off,
}

/// The facts of the head being read.
#[derive(Debug, Default)]
struct Head {
    fragment: bool,
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_last: bool,
    upgrade: bool,
}

pub struct HeadScan {
    state: State,
    /// The most bytes a head (or a chunk's trailers) may take.
    limit: usize,
    /// Bytes of the current head (or trailers) so far.
    used: usize,
    /// Heads completed.
    requests: u64,
    /// A line split across reads; its allocation is reused.
    line: Vec<u8>,
    head: Head,
}

impl HeadScan {
    pub fn new(limit: usize) -> Self {
        HeadScan { state: State::RequestLine, limit, used: 0, requests: 0, line: Vec::new(), head: Head::default() }
    }

    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// Follows `buf`, the next bytes read from the client. Reports the first flawed head, after
    /// which the scanner is off.
    pub fn feed(&mut self, mut buf: &[u8]) -> Option<Flagged> {
        // Bounded: every turn consumes at least one byte or returns.
        while !buf.is_empty() {
            match self.state {
                State::Off => return None,
                State::Body(n) | State::ChunkData(n) => {
                    let take = n.min(buf.len() as u64);
                    buf = &buf[take as usize..];
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::RequestLine,
                        (State::Body(_), _) => State::Body(left),
                        (_, 0) => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                }
                _ => {
                    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                        if self.used + self.line.len() + buf.len() > self.limit {
                            self.state = State::Off;
                            return None;
                        }
                        self.line.extend_from_slice(buf);
                        return None;
                    };
                    let (piece, rest) = buf.split_at(nl + 1);
                    buf = rest;
                    let found = if self.line.is_empty() {
                        self.on_line(piece)
                    } else {
                        let mut line = std::mem::take(&mut self.line);
                        line.extend_from_slice(piece);
                        let found = self.on_line(&line);
                        line.clear();
                        self.line = line;
                        found
                    };
                    if found.is_some() {
                        return found;
                    }
                }
            }
        }
        None
    }

    /// One whole line, with its `\n`.
    fn on_line(&mut self, raw: &[u8]) -> Option<Flagged> {
        if matches!(self.state, State::ChunkSize | State::ChunkEnd) {
            // Each of a body's lines is bounded on its own.
            self.used = 0;
        }
        self.used += raw.len();
        if self.used > self.limit {
            self.state = State::Off;
            return None;
        }
        let line = raw[..raw.len() - 1].strip_suffix(b"\r").unwrap_or(&raw[..raw.len() - 1]);
        self.state = match self.state {
            // Empty lines before a request line are skipped, as hyper does.
            State::RequestLine if line.is_empty() => {
                self.used = 0;
                State::RequestLine
            }
            State::RequestLine => self.request_line(line),
            State::Headers if line.is_empty() => return self.end_of_head(),
            State::Headers => self.header(line),
            State::ChunkSize => chunk_size(line),
            State::ChunkEnd if line.is_empty() => State::ChunkSize,
            State::Trailers if line.is_empty() => {
                self.used = 0;
                State::RequestLine
            }
            State::Trailers => State::Trailers,
            _ => State::Off,
        };
        None
    }

    fn request_line(&mut self, line: &[u8]) -> State {
        let mut parts = line.split(|&b| b == b' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return State::Off;
        };
        if method.is_empty() || target.is_empty() || !matches!(version, b"HTTP/1.1" | b"HTTP/1.0") {
            return State::Off;
        }
        self.head = Head { fragment: target.contains(&b'#'), upgrade: method == b"CONNECT", ..Head::default() };
        State::Headers
    }

    fn header(&mut self, line: &[u8]) -> State {
        let Some(colon) = line.iter().position(|&b| b == b':') else { return State::Off };
        if colon == 0 || matches!(line[0], b' ' | b'\t') {
            return State::Off;
        }
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            // Only plain digits: lists and odd spellings are hyper's to judge.
            let Some(n) = parse_decimal(value) else { return State::Off };
            if self.head.content_length.is_some_and(|m| m != n) {
                return State::Off;
            }
            self.head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.head.transfer_encoding = true;
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
            self.head.chunked_last = last.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.head.upgrade = true;
        }
        State::Headers
    }

    fn end_of_head(&mut self) -> Option<Flagged> {
        let request = self.requests;
        self.requests += 1;
        self.used = 0;
        let head = std::mem::take(&mut self.head);
        // Envoy's codec refuses the framing before its connection manager looks at the path.
        let flaw = if head.content_length.is_some() && head.transfer_encoding {
            Some(HeadFlaw::ContentLengthAndChunked)
        } else if head.fragment {
            Some(HeadFlaw::Fragment)
        } else {
            None
        };
        if let Some(flaw) = flaw {
            self.state = State::Off;
            return Some(Flagged { request, flaw });
        }
        self.state = if head.upgrade {
            // What follows an upgrade is not HTTP/1.
            State::Off
        } else if head.transfer_encoding {
            if head.chunked_last {
                State::ChunkSize
            } else {
                State::Off
            }
        } else {
            match head.content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::RequestLine,
            }
        };
        None
    }
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// A chunk-size line: hex digits, then optional whitespace and `;extensions`.
fn chunk_size(line: &[u8]) -> State {
    let end = line.iter().position(|&b| !b.is_ascii_hexdigit()).unwrap_or(line.len());
    let (digits, rest) = line.split_at(end);
    if digits.is_empty() || digits.len() > 15 || !matches!(rest.trim_ascii_start().first(), None | Some(b';')) {
        return State::Off;
    }
    let size = digits.iter().fold(0u64, |n, &d| n * 16 + u64::from((d as char).to_digit(16).unwrap_or(0)));
    if size == 0 {
        State::Trailers
    } else {
        State::ChunkData(size)
    }
}

/// The connection's reads, followed by a [`HeadScan`] until it reports or stops; a report goes
/// to the connection's context, where the service looks for it.
pub struct ScanIo<T> {
    inner: T,
    scan: Option<HeadScan>,
    ctx: Arc<ConnCtx>,
}

impl<T> ScanIo<T> {
    /// `scan` is false for h2 connections: nothing is followed.
    pub fn new(inner: T, scan: bool, limit: usize, ctx: Arc<ConnCtx>) -> Self {
        ScanIo { inner, scan: scan.then(|| HeadScan::new(limit)), ctx }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ScanIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(scan)) = (&polled, &mut this.scan) {
            if let Some(flagged) = scan.feed(&buf.filled()[before..]) {
                let _ = this.ctx.head_flaw.set(flagged);
            }
            if scan.is_off() {
                this.scan = None;
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ScanIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 8192;

    /// Feeds `input` in pieces of `step` bytes; every report.
    fn scan(input: &[u8], step: usize) -> (Vec<Flagged>, HeadScan) {
        let mut s = HeadScan::new(LIMIT);
        let found = input.chunks(step).filter_map(|c| s.feed(c)).collect();
        (found, s)
    }

    fn every_split(input: &[u8]) -> Vec<Flagged> {
        let (first, _) = scan(input, input.len());
        for step in 1..input.len() {
            assert_eq!(scan(input, step).0, first, "split every {step} bytes");
        }
        first
    }

    #[test]
    fn both_framing_headers_are_flagged_in_either_order() {
        for head in [
            &b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
            b"POST /a HTTP/1.1\r\nhost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        ] {
            let want = vec![Flagged { request: 0, flaw: HeadFlaw::ContentLengthAndChunked }];
            assert_eq!(every_split(head), want);
        }
    }

    #[test]
    fn fragments_are_flagged() {
        for head in [&b"GET /a#frag HTTP/1.1\r\nhost: x\r\n\r\n"[..], b"GET /a?# HTTP/1.1\r\nhost: x\r\n\r\n"] {
            assert_eq!(every_split(head), vec![Flagged { request: 0, flaw: HeadFlaw::Fragment }]);
        }
        // A `#` in a header value is no fragment.
        assert!(every_split(b"GET /a HTTP/1.1\r\nhost: x\r\nx-a: b#c\r\n\r\n").is_empty());
    }

    #[test]
    fn pipelined_requests_are_counted_past_bodies() {
        let input = b"\r\nPOST /1 HTTP/1.1\r\nhost: x\r\ncontent-length: 12\r\n\r\nGET /#x HTTP\
            POST /2 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n\
            3;name=\"v\";x\r\n#ab\r\n10\r\nGET /#y HTTP/1.1\r\n0\r\nx-t: GET /#z\r\n\r\n\
            GET /3 HTTP/1.0\r\n\r\nGET /4?q#f HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(every_split(input), vec![Flagged { request: 3, flaw: HeadFlaw::Fragment }]);
    }

    #[test]
    fn valid_requests_pass_and_keep_scanning() {
        let input = b"POST /1 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
            GET /2 HTTP/1.1\r\nhost: x\r\n\r\n";
        let (found, s) = scan(input, input.len());
        assert!(found.is_empty());
        assert_eq!((s.requests, s.state), (2, State::RequestLine));
    }

    #[test]
    fn garbage_and_upgrades_stop_the_scan() {
        for input in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /#a HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n\r\nGET /#a HTTP/1.1\r\n\r\n",
            b"CONNECT x:1 HTTP/1.1\r\nhost: x\r\n\r\nGET /#a HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\ncontent-length: 1, 1\r\n\r\nxGET /#a HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nGET /#a HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1\r\nab\r\nGET /#a HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded\r\n\r\nGET /#a HTTP/1.1\r\n\r\n",
        ] {
            let (found, s) = scan(input, input.len());
            assert!(found.is_empty(), "{}", String::from_utf8_lossy(input));
            assert!(s.is_off(), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn heads_over_the_limit_stop_the_scan() {
        let mut s = HeadScan::new(64);
        let long = [b'a'; 100];
        assert_eq!(s.feed(b"GET /#a HTTP/1.1\r\nx: "), None);
        assert_eq!(s.feed(&long), None);
        assert_eq!(s.feed(b"\r\n\r\n"), None);
        assert!(s.is_off());
        // The carried line keeps its allocation bounded by the limit.
        assert!(s.line.len() <= 64);
    }

    #[test]
    fn large_bodies_are_skipped_in_bulk() {
        let mut s = HeadScan::new(LIMIT);
        assert_eq!(s.feed(b"PUT /1 HTTP/1.1\r\ncontent-length: 1000000\r\n\r\n"), None);
        let body = vec![b'#'; 4096];
        for _ in 0..244 {
            assert_eq!(s.feed(&body), None);
        }
        assert_eq!(s.state, State::Body(1_000_000 - 244 * 4096));
        assert_eq!(s.feed(&vec![b'\n'; 576]), None);
        assert_eq!(s.feed(b"GET /#a HTTP/1.1\r\n\r\n"), Some(Flagged { request: 1, flaw: HeadFlaw::Fragment }));
    }
}
