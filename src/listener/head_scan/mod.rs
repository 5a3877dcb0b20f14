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

mod lex;
mod scan_io;

use crate::proxy::request_head::{self, HeadRejection};
use lex::{as_http_11, chunk_size, memchr_nl, parse_decimal, tchar, value_byte};
pub use scan_io::{HeadTimeout, ScanIo};

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

    /// The heads completed so far.
    pub fn heads(&self) -> u64 {
        self.requests
    }

    /// A request head has begun and is not whole yet.
    pub fn mid_head(&self) -> bool {
        match self.state {
            State::RequestLine => !self.line.is_empty(),
            State::Headers => true,
            _ => false,
        }
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
        // The name ends at its first byte that is no `tchar`, which must be the colon: one
        // pass finds the colon and checks the name.
        let colon = match line.iter().position(|&b| !tchar(b)) {
            Some(c) if c > 0 && line[c] == b':' => c,
            // A byte hyper's parser refuses: the head is its 400, whatever else is wrong.
            _ => return self.refused_by_hyper(),
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if !value.iter().all(|&b| value_byte(b)) {
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

#[cfg(test)]
mod tests;
