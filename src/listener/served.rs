//! The hyper server of one downstream connection: HTTP/1.1 alone when the first bytes rule h2
//! out, hyper-util's version-detecting server otherwise.
//!
//! The detecting server reads through a rewind buffer for the connection's whole life, and
//! every read of every request pays for that layer; a connection whose first bytes are not
//! the h2 preface (or whose codec is HTTP/1 only) can never become h2, so it skips it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::rt::{Read, Write};
use hyper::service::{HttpService, Service};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;

/// The h2 connection preface's first line, as the listener checks it.
pub(super) const H2_PREFACE_LINE: &[u8] = b"PRI * HTTP/2.0";

/// May a connection whose first bytes are `first` still turn out to be h2 (with `AUTO`)?
pub(super) fn maybe_h2(first: &[u8]) -> bool {
    let n = first.len().min(H2_PREFACE_LINE.len());
    H2_PREFACE_LINE.starts_with(&first[..n])
}

pin_project_lite::pin_project! {
    /// A connection being served, with or without version detection.
    #[project = ServedProj]
    pub(super) enum Served<'a, I, S>
    where
        S: HttpService<Incoming>,
    {
        Http1 { #[pin] conn: hyper::server::conn::http1::UpgradeableConnection<I, S> },
        Detecting { #[pin] conn: auto::UpgradeableConnection<'a, I, S, TokioExecutor> },
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, S, B> Served<'_, I, S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    I: Read + Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    TokioExecutor: auto::HttpServerConnExec<S::Future, B>,
{
    /// Stops taking requests; the one in progress finishes (h2: a GOAWAY).
    pub fn graceful_shutdown(self: Pin<&mut Self>) {
        match self.project() {
            ServedProj::Http1 { conn } => conn.graceful_shutdown(),
            ServedProj::Detecting { conn } => conn.graceful_shutdown(),
        }
    }
}

impl<I, S, B> Future for Served<'_, I, S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: 'static,
    S::Error: Into<BoxError>,
    I: Read + Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    TokioExecutor: auto::HttpServerConnExec<S::Future, B>,
{
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ServedProj::Http1 { conn } => conn.poll(cx).map_err(Into::into),
            ServedProj::Detecting { conn } => conn.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::maybe_h2;

    #[test]
    fn only_a_prefix_of_the_preface_may_still_be_h2() {
        assert!(maybe_h2(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(maybe_h2(b"PRI"));
        assert!(maybe_h2(b""));
        assert!(!maybe_h2(b"GET / HTTP/1.1\r\n"));
        assert!(!maybe_h2(b"PRIX"));
        assert!(!maybe_h2(b"POST / HTTP/1.1\r\n"));
    }
}
