//! legate's own HTTP/1.1 client, for the requests most traffic is made of: a request whose
//! body is already in memory (none, or a small buffered one) and that asks for no upgrade.
//! The request is written in one write and the response read in the request's own task, on
//! a connection the pool lends for one exchange; the response body hands the connection back
//! when its last byte is read.
//!
//! hyper's client runs each connection as a task of its own, reached through a channel: per
//! request that was a channel send, a second task woken for the response, a oneshot back and
//! a task spawned to wait for the connection to be reusable, about a quarter of a proxied
//! request's CPU. Requests that stream a body, expect `100-continue` or upgrade still go
//! through hyper, on the same connections ([`Conn::into_io`]).
//!
//! The framing rules are hyper's (and RFC 9112's), so an upstream sees the same bytes
//! whichever client wrote them: [`encode`] writes the head as hyper would, [`decode`] reads
//! the response as hyper would, skipping informational answers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::conn_life::Lived;
use super::connect::UpstreamIo;
use crate::stats::io::CountedIo;

pub mod decode;
pub mod encode;

pub use decode::Body;

/// An upstream connection's byte stream, with its stats and its place under
/// `max_connections`.
pub type Io = Lived<CountedIo<UpstreamIo>>;

/// Why an exchange on a connection failed after the request was (maybe partly) written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upstream closed the connection before the response was complete.
    #[error("connection closed before message completed")]
    Incomplete,
    /// The response breaks HTTP/1.1.
    #[error("invalid HTTP/1.1 response: {0}")]
    Parse(&'static str),
    /// The response head does not fit in the connection's buffer limit.
    #[error("message head is too large")]
    TooLarge,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A connection the own client speaks on, and the bytes read from it that no response
/// consumed yet (none between exchanges: a connection with leftovers is not kept).
pub struct Conn<T = Io> {
    io: T,
    buf: BytesMut,
    /// The request head is written here; kept, so that a kept connection allocates none.
    out: Vec<u8>,
}

impl<T: AsyncRead + Unpin> Conn<T> {
    pub fn new(io: T) -> Box<Conn<T>> {
        Box::new(Conn { io, buf: BytesMut::new(), out: Vec::new() })
    }

    /// The byte stream, for hyper's client (a request this client does not send). Only a
    /// connection between exchanges is handed over, so no read byte is lost.
    pub fn into_io(self) -> T {
        self.io
    }

    /// Whether an idle connection may carry a request: the upstream has not closed it nor
    /// sent anything unasked. Reads without waiting; a read that would wait costs no system
    /// call, as the runtime knows the socket has nothing.
    /// `waker` is woken when that may change (the socket becomes readable).
    pub fn is_open(&mut self, waker: &std::task::Waker) -> bool {
        let mut cx = Context::from_waker(waker);
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        matches!(Pin::new(&mut self.io).poll_read(&mut cx, &mut probe), Poll::Pending)
    }

    /// Gives back the read and request buffers of a connection between exchanges (the
    /// process went idle, [`crate::idle_release`]); the next exchange allocates them again.
    /// A read buffer still holding bytes is kept (such a connection is not pooled anyway).
    pub fn release_buffers(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        self.out = Vec::new();
    }

    /// The capacity of the read and request buffers.
    #[cfg(test)]
    pub(crate) fn buffer_capacity(&self) -> (usize, usize) {
        (self.buf.capacity(), self.out.capacity())
    }

    /// Reads more of the response into the buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_MIN {
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// A read asks for at least this much room (a response head fits in most reads).
const READ_MIN: usize = 1024;
/// What a read reserves when the buffer has less room (hyper's first read size).
const READ_SIZE: usize = 8 * 1024;

#[cfg(test)]
mod tests;

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failed {
    /// Nothing of the request was written: the connection was dead, another may take it.
    Unsent(io::Error),
    /// The request was (maybe partly) written.
    Sent(Error),
}

/// Sends `req` (as `plan` says) on `conn` and reads the final response head. `limit`: the
/// longest head accepted.
pub async fn exchange<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    req: &http::Request<crate::body::ReqBody>,
    plan: &encode::Plan<'_>,
    title_case: bool,
    limit: usize,
) -> Result<decode::Head, Failed> {
    let mut out = std::mem::take(&mut conn.out);
    encode::encode(&mut out, req, plan, title_case);
    let mut written = 0;
    // Bounded: each turn writes some bytes or fails.
    while written < out.len() {
        match conn.io.write(&out[written..]).await {
            Ok(0) => return Err(sent_or_not(written, io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) => return Err(sent_or_not(written, e)),
        }
    }
    // TLS holds records until flushed; TCP's flush does nothing.
    conn.io.flush().await.map_err(|e| Failed::Sent(Error::Io(e)))?;
    // A kept connection keeps a small buffer; a large body's is not worth holding.
    if out.capacity() <= KEPT_OUT {
        conn.out = out;
    }
    let head_request = req.method() == http::Method::HEAD;
    std::future::poll_fn(|cx| decode::poll_head(conn, cx, head_request, limit)).await.map_err(Failed::Sent)
}

fn sent_or_not(written: usize, e: io::Error) -> Failed {
    if written == 0 {
        Failed::Unsent(e)
    } else {
        Failed::Sent(Error::Io(e))
    }
}

/// The largest request buffer a connection keeps between exchanges.
const KEPT_OUT: usize = 4096;
