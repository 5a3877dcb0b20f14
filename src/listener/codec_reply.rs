//! Envoy's answers to requests its HTTP/1 codec cannot parse (a bad request line, bad header
//! characters, headers over `max_request_headers_kb` or `max_headers_count`).
//!
//! hyper answers those itself, before any service sees a request, with an empty
//! `400 Bad Request` or `431 Request Header Fields Too Large` and no `server` header. This
//! write-side wrapper recognises exactly that head (`connection: close`, `content-length: 0`
//! and `date`, nothing else: every response legate makes carries other headers) and sends
//! Envoy's instead: the reason phrase as a `text/plain` body, and the listener's `server`.
//! When the head scanner flagged the head hyper refused (a transfer-coding, an HTTP version),
//! the answer is the one Envoy gives to that flaw (501, 426). Each answer gets Envoy's access
//! log line (`"- - HTTP/1.1" 400 DPE`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::proxy::request_head::{HeadRejection, UNPARSED};
use crate::proxy::ConnCtx;

pub struct CodecReplies<T> {
    inner: T,
    server: HeaderValue,
    ctx: Arc<ConnCtx>,
    /// Envoy's answer still to write, and how many of hyper's bytes it stands for.
    replacing: Option<(Bytes, usize)>,
}

impl<T> CodecReplies<T> {
    pub fn new(inner: T, server: HeaderValue, ctx: Arc<ConnCtx>) -> Self {
        CodecReplies { inner, server, ctx, replacing: None }
    }

    /// Envoy's answer to the head hyper refused with `buf`, logged, when `buf` is hyper's.
    fn replacement(&self, buf: &[u8]) -> Option<Bytes> {
        let (hyper, date) = hyper_error(buf)?;
        let rejection = match hyper {
            HyperError::BadRequest => {
                // The head hyper refused is the one after the requests the service has seen.
                let index = self.ctx.h1_requests.load(std::sync::atomic::Ordering::Relaxed);
                let flagged = self.ctx.head_flaw.get().filter(|f| f.request == index);
                flagged.and_then(|f| f.flaw.rejection()).unwrap_or(UNPARSED)
            }
            HyperError::TooLarge => HEADERS_TOO_LARGE,
        };
        let reply = render(&rejection, date, &self.server);
        crate::proxy::log_codec_reply(&self.ctx, rejection, rejection.body.len() as u64);
        Some(reply)
    }
}

const HEADERS_TOO_LARGE: HeadRejection = HeadRejection {
    status: http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    body: "Request Header Fields Too Large",
    flag: "DPE",
    details: "http1.headers_too_large",
    close: true,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HyperError {
    BadRequest,
    TooLarge,
}

/// hyper's error heads, up to the `date` value.
const HYPER_HEADS: [(&[u8], HyperError); 2] = [
    (b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: ", HyperError::BadRequest),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: ",
        HyperError::TooLarge,
    ),
];

/// Which of hyper's error heads `buf` is exactly, and its date.
fn hyper_error(buf: &[u8]) -> Option<(HyperError, &[u8])> {
    if !buf.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let (prefix, error) = HYPER_HEADS.iter().find(|(p, _)| buf.starts_with(p))?;
    let date = buf[prefix.len()..].strip_suffix(b"\r\n\r\n")?;
    // An IMF-fixdate, nothing more: anything else is not hyper's error head.
    if date.len() != 29 || date.contains(&b'\r') {
        return None;
    }
    Some((*error, date))
}

/// Envoy's local reply for `r`: the body as `text/plain`, the listener's `server`, and close.
/// Envoy's local reply to a head: the reason as a `text/plain` body, `connection: close`.
pub(super) fn render(r: &HeadRejection, date: &[u8], server: &HeaderValue) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\ndate: ",
            r.status.as_u16(),
            r.status.canonical_reason().unwrap_or_default(),
            r.body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\nserver: ");
    out.extend_from_slice(server.as_bytes());
    out.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    out.extend_from_slice(r.body.as_bytes());
    Bytes::from(out)
}

impl<T: AsyncWrite + Unpin> CodecReplies<T> {
    /// Writes the replacement; done (with hyper's byte count) once all of it is written.
    fn poll_replace(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // Bounded: every turn writes at least one byte or returns.
        while let Some((rest, stands_for)) = &mut self.replacing {
            if rest.is_empty() {
                let n = *stands_for;
                self.replacing = None;
                return Poll::Ready(Ok(n));
            }
            match Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => rest.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CodecReplies<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CodecReplies<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            match this.replacement(buf) {
                // hyper retries the same bytes until they are taken.
                Some(reply) => this.replacing = Some((reply, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        this.poll_replace(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            let first = bufs.iter().find(|b| !b.is_empty());
            match first.and_then(|b| this.replacement(b)) {
                Some(reply) => this.replacing = Some((reply, first.map_or(0, |b| b.len()))),
                None => return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            }
        }
        this.poll_replace(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sun, 06 Dec 2026 05:54:27 GMT";

    fn envoy_reply(buf: &[u8], server: &HeaderValue) -> Option<Bytes> {
        let (error, date) = hyper_error(buf)?;
        Some(render(if error == HyperError::BadRequest { &UNPARSED } else { &HEADERS_TOO_LARGE }, date, server))
    }

    #[test]
    fn hyper_heads_become_envoy_replies() {
        let server = HeaderValue::from_static("envoy");
        let bad = format!("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n");
        let got = envoy_reply(bad.as_bytes(), &server).expect("replaced");
        assert_eq!(
            got,
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\ncontent-type: text/plain\r\ndate: {DATE}\r\nserver: envoy\r\nconnection: close\r\n\r\nBad Request")
        );
        let big = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"
        );
        let got = envoy_reply(big.as_bytes(), &HeaderValue::from_static("edge")).expect("replaced");
        assert!(got.ends_with(b"server: edge\r\nconnection: close\r\n\r\nRequest Header Fields Too Large"));
        let te = render(&crate::proxy::request_head::INVALID_TE, DATE.as_bytes(), &server);
        assert!(te.starts_with(b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 15\r\n"));
    }

    #[test]
    fn other_responses_pass() {
        for other in [
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nserver: envoy\r\ndate: {DATE}\r\n\r\n"),
            format!(
                "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: {DATE}\r\nx: y\r\n\r\n"
            ),
            format!("HTTP/1.1 200 OK\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"),
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: ".to_string(),
        ] {
            assert!(hyper_error(other.as_bytes()).is_none(), "{other}");
        }
    }
}
