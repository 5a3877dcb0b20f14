//! A read-side follower of HTTP/1 request framing that finds what hyper hides from the service
//! or judges differently from Envoy's codec: a request with both `content-length` and
//! `transfer-encoding` (hyper keeps one and drops the other), repeated `content-length` lines
//! (hyper keeps one of identical lines), a transfer-coding other than a single `chunked` (hyper
//! refuses some with its own 400, forwards others), an HTTP version Envoy answers with 426 (hyper
//! refuses all but 1.0 and 1.1 with 400), and a `#fragment` in the request target (the `http`
//! crate drops it). Envoy's order is kept: a head its parser refuses is a 400 whatever else is
//! wrong with it, then the framing headers, then the version, then the fragment.
//!
//! [`HeadScan`] sees every byte hyper reads, in order. It walks heads line by line (bounded by
//! the header limit), skips `content-length` bodies in bulk, and follows chunked bodies (size
//! line, data, CRLF, last chunk, trailers). It counts the heads it completes; the first flawed
//! one is reported with its index. The service, which counts the HTTP/1 requests hyper hands
//! it, rejects the request with that index; when hyper refuses that head itself, the
//! connection's codec-reply writer answers Envoy's way instead. On anything it does not
//! understand (a byte hyper would refuse included) the scanner stops for good and leaves the
//! judgement to hyper: it never wedges nor flags a valid request.
//! [`ScanIo`] runs it on the connection's reads; it is only used for HTTP/1 connections.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::proxy::request_head::{self, HeadRejection};
use crate::proxy::ConnCtx;

/// What is wrong with a request head, in Envoy's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadFlaw {
    /// Both `content-length` and `transfer-encoding`.
    ContentLengthAndChunked,
    /// More than one `content-length` line, even with one value.
    RepeatedContentLength,
    /// A transfer-coding other than a single `chunked`.
    TransferCoding,
    /// HTTP/1.0 (unless accepted), HTTP/0.9 or another `HTTP/x.y`.
    Version,
    /// A `#` in the request target.
    Fragment,
}

impl HeadFlaw {
    /// Envoy's answer, or `None` for a fragment (its connection manager's path check, which
    /// the request path answers).
    pub fn rejection(self) -> Option<HeadRejection> {
        match self {
            HeadFlaw::ContentLengthAndChunked => Some(request_head::CL_AND_CHUNKED),
            HeadFlaw::RepeatedContentLength => Some(request_head::CODEC_ERROR),
            HeadFlaw::TransferCoding => Some(request_head::INVALID_TE),
            HeadFlaw::Version => Some(request_head::LOW_VERSION),
            HeadFlaw::Fragment => None,
        }
    }
}

/// The first flawed request of a connection: its index among the connection's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flagged {
    pub request: u64,
    pub flaw: HeadFlaw,
    /// The request target as received, for a fragment (Envoy logs it whole).
    pub target: Option<Box<str>>,
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
    /// The target, when it holds a `#`.
    fragment: Option<Box<str>>,
    content_length: Option<u64>,
    content_length_lines: u8,
    transfer_encoding_lines: u8,
    /// The one `transfer-encoding` line says exactly `chunked`.
    chunked_only: bool,
    chunked_last: bool,
    upgrade: bool,
    bad_version: bool,
    /// A `content-length` hyper refuses (unless a transfer-encoding makes it ours to refuse).
    bad_length: bool,
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
    accept_http_10: bool,
}

impl HeadScan {
    pub fn new(limit: usize, accept_http_10: bool) -> Self {
        HeadScan {
            state: State::RequestLine,
            limit,
            used: 0,
            requests: 0,
            line: Vec::new(),
            head: Head::default(),
            accept_http_10,
        }
    }

    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// Follows `buf`, the next bytes read from the client. Reports the first flawed head, after
    /// which the scanner is off. A request line whose version Envoy answers with 426 is given
    /// to hyper as `HTTP/1.1` (rewritten in `buf`, when the line is whole in it), so that hyper
    /// parses the rest of the head as Envoy's codec does before its version check (a malformed
    /// head stays a 400) instead of refusing the version at once; the flag then refuses it.
    pub fn feed(&mut self, mut buf: &mut [u8]) -> Option<Flagged> {
        // Bounded: every turn consumes at least one byte or returns.
        while !buf.is_empty() {
            match self.state {
                State::Off => return None,
                State::Body(n) | State::ChunkData(n) => {
                    let take = n.min(buf.len() as u64);
                    buf = &mut std::mem::take(&mut buf)[take as usize..];
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::RequestLine,
                        (State::Body(_), _) => State::Body(left),
                        (_, 0) => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                }
                _ => {
                    let Some(nl) = memchr_nl(buf) else {
                        if self.used + self.line.len() + buf.len() > self.limit {
                            self.state = State::Off;
                            return self.stopped();
                        }
                        self.line.extend_from_slice(buf);
                        return None;
                    };
                    let (piece, rest) = std::mem::take(&mut buf).split_at_mut(nl + 1);
                    buf = rest;
                    let found = if self.line.is_empty() {
                        let request_line = self.state == State::RequestLine;
                        let found = self.on_line(piece);
                        if request_line && self.state == State::Headers && self.head.bad_version {
                            as_http_11(piece);
                        }
                        found
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
                    if self.state == State::Off {
                        return self.stopped();
                    }
                }
            }
        }
        None
    }

    /// The scan stopped inside a head whose version Envoy refuses: hyper, which may take what
    /// the scanner did not understand, must not serve it (a head hyper refuses was cleared of
    /// the mark: its 400 is Envoy's answer too).
    fn stopped(&mut self) -> Option<Flagged> {
        if !std::mem::take(&mut self.head.bad_version) {
            return None;
        }
        Some(Flagged { request: self.requests, flaw: HeadFlaw::Version, target: None })
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
            State::RequestLine => return self.request_line(line),
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

    fn request_line(&mut self, line: &[u8]) -> Option<Flagged> {
        let mut parts = line.split(|&b| b == b' ');
        let (Some(method), Some(target), version, None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            self.state = State::Off;
            return None;
        };
        // `PRI`: an h2 preface is hyper's to refuse.
        if method.is_empty() || target.is_empty() || method == b"PRI" || !method.iter().all(|&b| tchar(b)) {
            self.state = State::Off;
            return None;
        }
        let bad_version = match version {
            Some(b"HTTP/1.1") => false,
            Some(b"HTTP/1.0") => !self.accept_http_10,
            Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
                if major.is_ascii_digit() && minor.is_ascii_digit() =>
            {
                true
            }
            // HTTP/0.9: a request line without a version, and no headers.
            None => {
                self.head = Head { bad_version: true, ..Head::default() };
                return self.end_of_head();
            }
            // Malformed: the parsers of hyper and Envoy both answer 400.
            Some(_) => {
                self.state = State::Off;
                return None;
            }
        };
        let fragment = target.contains(&b'#').then(|| String::from_utf8_lossy(target).into());
        self.head = Head { fragment, upgrade: method == b"CONNECT", bad_version, ..Head::default() };
        self.state = State::Headers;
        None
    }

    fn header(&mut self, line: &[u8]) -> State {
        let Some(colon) = line.iter().position(|&b| b == b':') else { return self.refused_by_hyper() };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        // A byte hyper's parser refuses: the head is its 400, whatever else is wrong.
        if name.is_empty() || !name.iter().all(|&b| tchar(b)) || !value.iter().all(|&b| value_byte(b)) {
            return self.refused_by_hyper();
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            self.head.content_length_lines = self.head.content_length_lines.saturating_add(1);
            // Any length beside a transfer-encoding is Envoy's 400, whatever its value:
            // hyper would frame by the chunking and forward the request.
            let n = parse_decimal(value).filter(|n| self.head.content_length.is_none_or(|m| m == *n));
            match n {
                Some(n) => self.head.content_length = Some(n),
                None if self.head.transfer_encoding_lines > 0 => self.head.content_length = Some(0),
                // A list, an odd spelling or a second value: hyper's 400 unless a
                // transfer-encoding follows (then both are refused below).
                None => self.head.bad_length = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.head.transfer_encoding_lines = self.head.transfer_encoding_lines.saturating_add(1);
            self.head.chunked_only = value.eq_ignore_ascii_case(b"chunked");
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
            self.head.chunked_last = last.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.head.upgrade = true;
        }
        State::Headers
    }

    /// Stops at a head hyper's parser refuses with 400, as Envoy's does.
    fn refused_by_hyper(&mut self) -> State {
        self.head.bad_version = false;
        State::Off
    }

    fn end_of_head(&mut self) -> Option<Flagged> {
        let request = self.requests;
        self.requests += 1;
        self.used = 0;
        let head = std::mem::take(&mut self.head);
        let transfer_encoding = head.transfer_encoding_lines > 0;
        // Envoy's codec judges the framing headers, then the version, before its connection
        // manager looks at the path.
        if head.bad_length && !transfer_encoding {
            // hyper's 400 (Envoy's too), but hyper takes some lists: a refused version
            // handed over as HTTP/1.1 must still be refused.
            self.state = State::Off;
            return head.bad_version.then_some(Flagged { request, flaw: HeadFlaw::Version, target: None });
        }
        let flaw = if (head.content_length.is_some() || head.bad_length) && transfer_encoding {
            Some(HeadFlaw::ContentLengthAndChunked)
        } else if head.content_length_lines > 1 {
            Some(HeadFlaw::RepeatedContentLength)
        } else if transfer_encoding && (head.transfer_encoding_lines > 1 || !head.chunked_only) {
            Some(HeadFlaw::TransferCoding)
        } else if head.bad_version {
            Some(HeadFlaw::Version)
        } else if head.fragment.is_some() {
            Some(HeadFlaw::Fragment)
        } else {
            None
        };
        if let Some(flaw) = flaw {
            self.state = State::Off;
            let target = if flaw == HeadFlaw::Fragment { head.fragment } else { None };
            return Some(Flagged { request, flaw, target });
        }
        self.state = if head.upgrade {
            // What follows an upgrade is not HTTP/1.
            State::Off
        } else if transfer_encoding {
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

/// The first `\n`: the bytes of a head are mostly scanned for this.
fn memchr_nl(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Rewrites a request line's version (its last 8 bytes before the line end) to `HTTP/1.1`.
fn as_http_11(line: &mut [u8]) {
    let end = line.len() - 1 - usize::from(line.len() >= 2 && line[line.len() - 2] == b'\r');
    if let Some(version) = end.checked_sub(8).map(|start| &mut line[start..end]) {
        version.copy_from_slice(b"HTTP/1.1");
    }
}

/// RFC 9110 `tchar`, as hyper's parser checks header names and methods.
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A header value byte hyper's parser takes: visible ASCII, space, tab and obs-text.
fn value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
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
    /// `scan` is `None` for h2 connections (nothing is followed), or one already fed the
    /// connection's first bytes.
    pub fn new(inner: T, scan: Option<HeadScan>, ctx: Arc<ConnCtx>) -> Self {
        let scan = scan.filter(|s| !s.is_off());
        ScanIo { inner, scan, ctx }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ScanIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(scan)) = (&polled, &mut this.scan) {
            if let Some(flagged) = scan.feed(&mut buf.filled_mut()[before..]) {
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
        let mut s = HeadScan::new(LIMIT, false);
        let mut input = input.to_vec();
        let found = input.chunks_mut(step).filter_map(|c| s.feed(c)).collect();
        (found, s)
    }

    fn feed(s: &mut HeadScan, bytes: &[u8]) -> Option<Flagged> {
        s.feed(&mut bytes.to_vec())
    }

    fn flagged(request: u64, flaw: HeadFlaw) -> Flagged {
        Flagged { request, flaw, target: None }
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
            let want = vec![flagged(0, HeadFlaw::ContentLengthAndChunked)];
            assert_eq!(every_split(head), want);
        }
    }

    #[test]
    fn fragments_are_flagged() {
        for head in [&b"GET /a#frag HTTP/1.1\r\nhost: x\r\n\r\n"[..], b"GET /a?# HTTP/1.1\r\nhost: x\r\n\r\n"] {
            let target = std::str::from_utf8(&head[4..head.iter().position(|&b| b == b'H').unwrap_or(5) - 1]).ok();
            let want = Flagged { target: target.map(Into::into), ..flagged(0, HeadFlaw::Fragment) };
            assert_eq!(every_split(head), vec![want]);
        }
        // A `#` in a header value is no fragment.
        assert!(every_split(b"GET /a HTTP/1.1\r\nhost: x\r\nx-a: b#c\r\n\r\n").is_empty());
    }

    #[test]
    fn framing_headers_envoy_refuses_are_flagged() {
        let cases: [(&[u8], HeadFlaw); 10] = [
            (b"GET / HTTP/1.1\r\ncontent-length: 0\r\nContent-Length: 0\r\n\r\n", HeadFlaw::RepeatedContentLength),
            (b"POST / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\nhello", HeadFlaw::TransferCoding),
            (b"POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n", HeadFlaw::TransferCoding),
            (
                b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
                HeadFlaw::TransferCoding,
            ),
            (b"POST / HTTP/1.1\r\ntransfer-encoding: chunked;q=1\r\n\r\n", HeadFlaw::TransferCoding),
            // The framing headers come before the version, and CL+TE before the coding.
            (b"POST / HTTP/1.0\r\ntransfer-encoding: xchunked\r\n\r\n", HeadFlaw::TransferCoding),
            (
                b"POST / HTTP/9.9\r\ncontent-length: 1\r\ntransfer-encoding: gzip\r\n\r\n",
                HeadFlaw::ContentLengthAndChunked,
            ),
            (b"GET /#f HTTP/1.0\r\nhost: x\r\n\r\n", HeadFlaw::Version),
            // Any length beside a transfer-encoding, even one hyper would refuse alone.
            (
                b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                HeadFlaw::ContentLengthAndChunked,
            ),
            (
                b"POST / HTTP/1.1\r\ncontent-length: abc\r\ntransfer-encoding: chunked\r\n\r\n",
                HeadFlaw::ContentLengthAndChunked,
            ),
        ];
        for (head, flaw) in cases {
            assert_eq!(every_split(head), vec![flagged(0, flaw)], "{}", String::from_utf8_lossy(head));
        }
        assert!(every_split(b"POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n0\r\n\r\n").is_empty());
    }

    #[test]
    fn versions_envoy_answers_426_are_flagged_unless_the_head_is_malformed() {
        for head in [
            &b"GET / HTTP/1.0\r\nhost: x\r\n\r\n"[..],
            b"GET / HTTP/9.9\r\nhost: x\r\n\r\n",
            b"GET / HTTP/2.0\r\nhost: x\r\n\r\n",
            b"GET /\r\n",
        ] {
            assert_eq!(every_split(head), vec![flagged(0, HeadFlaw::Version)], "{}", String::from_utf8_lossy(head));
        }
        let mut s = HeadScan::new(LIMIT, true);
        assert_eq!(feed(&mut s, b"GET / HTTP/1.0\r\nhost: x\r\n\r\n"), None);
        // A byte hyper refuses, or a malformed version, is hyper's 400, as it is Envoy's.
        for head in [
            &b"GET / HTTP/1.0\r\nho st: x\r\n\r\n"[..],
            b"GET / HTTP/9.9\r\nhost: x\r\nx: a\x01b\r\n\r\n",
            b"GET / HTTP/1\r\nhost: x\r\n\r\n",
            b"GET / HTTP/1.01\r\nhost: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nx-\x7f: 1\r\ntransfer-encoding: gzip\r\n\r\n",
        ] {
            assert!(every_split(head).is_empty(), "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn a_refused_version_reaches_hyper_as_http_11_and_is_never_served() {
        let mut s = HeadScan::new(LIMIT, false);
        let mut head = b"GET / HTTP/9.9\r\nhost: x\r\n\r\n".to_vec();
        assert_eq!(s.feed(&mut head), Some(flagged(0, HeadFlaw::Version)));
        assert_eq!(head, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        // What the scanner gives up on, hyper might take: the head is still refused.
        let mut s = HeadScan::new(LIMIT, false);
        assert_eq!(
            feed(&mut s, b"GET / HTTP/1.0\r\ncontent-length: 1, 1\r\n\r\n"),
            Some(flagged(0, HeadFlaw::Version))
        );
        // A head hyper refuses is its 400.
        let mut s = HeadScan::new(LIMIT, false);
        assert_eq!(feed(&mut s, b"GET / HTTP/1.0\r\nhost x\r\n\r\n"), None);
        assert!(s.is_off());
    }

    #[test]
    fn pipelined_requests_are_counted_past_bodies() {
        let input = b"\r\nPOST /1 HTTP/1.1\r\nhost: x\r\ncontent-length: 12\r\n\r\nGET /#x HTTP\
            POST /2 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
            3;name=\"v\";x\r\n#ab\r\n10\r\nGET /#y HTTP/1.1\r\n0\r\nx-t: GET /#z\r\n\r\n\
            GET /3 HTTP/1.1\r\n\r\nGET /4?q#f HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(
            every_split(input),
            vec![Flagged { target: Some("/4?q#f".into()), ..flagged(3, HeadFlaw::Fragment) }]
        );
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
        let mut s = HeadScan::new(64, false);
        let long = [b'a'; 100];
        assert_eq!(feed(&mut s, b"GET /#a HTTP/1.1\r\nx: "), None);
        assert_eq!(feed(&mut s, &long), None);
        assert_eq!(feed(&mut s, b"\r\n\r\n"), None);
        assert!(s.is_off());
        // The carried line keeps its allocation bounded by the limit.
        assert!(s.line.len() <= 64);
    }

    #[test]
    fn large_bodies_are_skipped_in_bulk() {
        let mut s = HeadScan::new(LIMIT, false);
        assert_eq!(feed(&mut s, b"PUT /1 HTTP/1.1\r\ncontent-length: 1000000\r\n\r\n"), None);
        let body = vec![b'#'; 4096];
        for _ in 0..244 {
            assert_eq!(feed(&mut s, &body), None);
        }
        assert_eq!(s.state, State::Body(1_000_000 - 244 * 4096));
        assert_eq!(feed(&mut s, &vec![b'\n'; 576]), None);
        assert_eq!(
            feed(&mut s, b"GET /#a HTTP/1.1\r\n\r\n"),
            Some(Flagged { target: Some("/#a".into()), ..flagged(1, HeadFlaw::Fragment) })
        );
    }
}
