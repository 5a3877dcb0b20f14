//! An HTTP/1.1 health check on a codec of its own: the request head written in one write, the
//! answer's head parsed with `httparse` and its body skipped by its framing, on the kept
//! connection. hyper's client costs a connection task, a request channel and two header maps
//! per check, about half of the checker's CPU at 1,000 checks a second; a check needs only
//! the status and a connection left ready for the next one.

use bytes::{Buf, BytesMut};
use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connect::UpstreamIo;

/// The longest answer head accepted (hyper's default limit is larger; a health answer's head
/// is a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;
/// Body bytes skipped to keep the connection; a longer body closes it instead.
const MAX_BODY: u64 = 1 << 20;
/// Headers an answer may have (hyper's default).
const MAX_HEADERS: usize = 100;
/// Informational (1xx) answers skipped before the final one.
const MAX_INFORMATIONAL: usize = 4;

/// A check connection and the bytes read from it that no answer consumed yet.
pub struct Conn {
    io: UpstreamIo,
    buf: BytesMut,
}

impl Conn {
    pub fn new(io: UpstreamIo) -> Conn {
        Conn { io, buf: BytesMut::new() }
    }

    /// Reads more bytes; `None` at the end of the stream or on an error.
    async fn read_more(&mut self) -> Option<()> {
        self.buf.reserve(4096);
        match self.io.read_buf(&mut self.buf).await {
            Ok(n) if n > 0 => Some(()),
            _ => None,
        }
    }
}

/// The request head hyper would have written for `req` (a GET without a body).
pub fn encode(req: &http::Request<Empty<bytes::Bytes>>) -> Vec<u8> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut out = Vec::with_capacity(64 + target.len() + req.headers().len() * 32);
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (k, v) in req.headers() {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the connection closes: never kept.
    ToEof,
}

/// Writes `request` and reads the answer: its status and, when the connection can carry the
/// next check, the connection. `None`: the exchange failed (a network failure).
pub async fn exchange(mut c: Conn, request: &[u8]) -> Option<(u16, Option<Conn>)> {
    // Bytes left from an earlier answer would be read as this one's: never kept with any.
    c.buf.clear();
    c.io.write_all(request).await.ok()?;
    for _ in 0..=MAX_INFORMATIONAL {
        let (status, framing, close) = read_head(&mut c).await?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        // A switch of protocols leaves no HTTP/1 connection to keep.
        let kept = status != 101 && skip_body(&mut c, framing).await && !close && c.buf.is_empty();
        return Some((status, kept.then_some(c)));
    }
    None
}

/// Reads and consumes one answer head: status, framing, and whether the server closes.
async fn read_head(c: &mut Conn) -> Option<(u16, Framing, bool)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&c.buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code?;
                let (framing, close) = framing(status, resp.version, resp.headers)?;
                c.buf.advance(len);
                return Some((status, framing, close));
            }
            Ok(httparse::Status::Partial) if c.buf.len() < MAX_HEAD => c.read_more().await?,
            _ => return None,
        }
    }
}

/// RFC 9112's message body length for an answer to a GET, and whether the connection closes
/// after it. `None`: conflicting lengths, a malformed answer.
fn framing(status: u16, version: Option<u8>, headers: &[httparse::Header<'_>]) -> Option<(Framing, bool)> {
    // HTTP/1.0 closes unless it says keep-alive.
    let mut close = version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in headers {
        let value = std::str::from_utf8(h.value).ok()?;
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value.trim().parse::<u64>().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.rsplit(',').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && version == Some(0) {
                    close = false;
                }
            }
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else {
        length.map_or(Framing::ToEof, Framing::Length)
    };
    Some((framing, close))
}

/// Skips the body; true when it ended where its framing says, so the connection is reusable.
async fn skip_body(c: &mut Conn, framing: Framing) -> bool {
    match framing {
        Framing::Empty => true,
        Framing::Length(n) => n <= MAX_BODY && skip(c, n).await,
        Framing::ToEof => false,
        Framing::Chunked => skip_chunks(c).await,
    }
}

/// Consumes `n` bytes, reading as needed.
async fn skip(c: &mut Conn, mut n: u64) -> bool {
    loop {
        let take = (c.buf.len() as u64).min(n);
        c.buf.advance(take as usize);
        n -= take;
        if n == 0 {
            return true;
        }
        if c.read_more().await.is_none() {
            return false;
        }
    }
}

async fn skip_chunks(c: &mut Conn) -> bool {
    let mut total = 0u64;
    loop {
        match httparse::parse_chunk_size(&c.buf) {
            Ok(httparse::Status::Complete((used, 0))) => {
                c.buf.advance(used);
                return skip_trailers(c).await;
            }
            Ok(httparse::Status::Complete((used, size))) => {
                total = total.saturating_add(size);
                if total > MAX_BODY {
                    return false;
                }
                c.buf.advance(used);
                // The data and its CRLF.
                if !skip(c, size + 2).await {
                    return false;
                }
            }
            Ok(httparse::Status::Partial) if c.buf.len() < 1024 => {
                if c.read_more().await.is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Consumes the trailer section up to its empty line.
async fn skip_trailers(c: &mut Conn) -> bool {
    loop {
        match c.buf.windows(2).position(|w| w == b"\r\n") {
            Some(0) => {
                c.buf.advance(2);
                return true;
            }
            Some(i) => c.buf.advance(i + 2),
            None if c.buf.len() < MAX_HEAD => {
                if c.read_more().await.is_none() {
                    return false;
                }
            }
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers each request on `io` with `answers`, one per request, and returns what came.
    async fn serve(answers: Vec<&'static [u8]>) -> (Conn, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for a in answers {
                let mut got = Vec::new();
                let mut b = [0u8; 1024];
                while !got.ends_with(b"\r\n\r\n") {
                    match server.read(&mut b).await {
                        Ok(0) | Err(_) => return seen,
                        Ok(n) => got.extend_from_slice(&b[..n]),
                    }
                }
                seen.push(got);
                if server.write_all(a).await.is_err() {
                    return seen;
                }
            }
            seen
        });
        (Conn::new(UpstreamIo::Memory(client)), task)
    }

    fn req() -> Vec<u8> {
        let r = http::Request::get("/healthz?x=1")
            .header("host", "svc")
            .header("user-agent", "Envoy/HC")
            .body(Empty::new())
            .unwrap_or_default();
        encode(&r)
    }

    #[test]
    fn the_request_head_is_what_hyper_writes() {
        assert_eq!(req(), b"GET /healthz?x=1 HTTP/1.1\r\nhost: svc\r\nuser-agent: Envoy/HC\r\n\r\n");
    }

    #[tokio::test]
    async fn length_and_chunked_bodies_are_skipped_and_the_connection_kept() {
        let (c, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Unavailable\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ])
        .await;
        let (status, c) = exchange(c, &req()).await.unwrap_or_else(|| panic!("first"));
        assert_eq!(status, 200);
        let (status, c) = exchange(c.unwrap_or_else(|| panic!("kept")), &req()).await.unwrap_or_else(|| panic!("2nd"));
        assert_eq!(status, 503, "the informational answer is skipped");
        let (status, c) = exchange(c.unwrap_or_else(|| panic!("kept")), &req()).await.unwrap_or_else(|| panic!("3rd"));
        assert_eq!(status, 204);
        assert!(c.is_some());
        let seen = server.await.unwrap_or_default();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0], req());
    }

    #[tokio::test]
    async fn close_unknown_length_and_huge_bodies_are_not_kept() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\nbody until the end",
            b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999\r\n\r\n",
        ] {
            let (c, _server) = serve(vec![answer]).await;
            let (status, c) = exchange(c, &req()).await.unwrap_or_else(|| panic!("{answer:?}"));
            assert_eq!(status, 200);
            assert!(c.is_none(), "{:?}", String::from_utf8_lossy(answer));
        }
    }

    #[tokio::test]
    async fn a_malformed_or_missing_answer_is_a_network_failure() {
        for answer in [&b"NOT HTTP\r\n\r\n"[..], b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"] {
            let (c, _server) = serve(vec![answer]).await;
            assert!(exchange(c, &req()).await.is_none(), "{answer:?}");
        }
        let (c, _server) = serve(vec![]).await;
        assert!(exchange(c, &req()).await.is_none(), "closed before answering");
    }
}
