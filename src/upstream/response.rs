//! The body of an upstream response as the proxy reads it: hyper's (HTTP/2, and the HTTP/1.1
//! requests hyper's client sends) or the own HTTP/1.1 client's ([`super::h1`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::h1;
use crate::body::BodyError;

/// An upstream response's body.
pub enum UpstreamBody {
    Hyper(Incoming),
    Own(h1::Body),
}

/// An upstream response.
pub type UpstreamResponse = http::Response<UpstreamBody>;

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            UpstreamBody::Own(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Hyper(b) => b.is_end_stream(),
            UpstreamBody::Own(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Hyper(b) => b.size_hint(),
            UpstreamBody::Own(b) => b.size_hint(),
        }
    }
}
