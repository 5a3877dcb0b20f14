//! Request bodies transformed by filters on their way upstream: a decompressor's decoding, a
//! compressor's request direction. A filter records its codec on the request
//! ([`super::RequestBody::Coded`]); the router (or a buffer filter reading the body whole)
//! applies the codecs in chain order when it streams the body, so nothing is read early.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::compress_body::{ByteStats, Compressing, Encoder};
use super::decompress_body::{DecodeStats, Decoder, Decompressing, TrailerNames};
use crate::config::compressor::DecompressorLibrary;
use crate::proxy::body::{BodyError, ReqBody};

/// What one filter does to the request body.
pub enum RequestCodec {
    Decompress {
        library: DecompressorLibrary,
        decoder: Decoder,
        stats: DecodeStats,
        trailers: Option<TrailerNames>,
    },
    Compress {
        encoder: Encoder,
        step: usize,
        stats: ByteStats,
    },
    /// gRPC-Web's text body, base64-decoded; its failure told through the probe.
    GrpcWebText(super::grpc_web::TextProbe),
}

/// A request body transformed by filters of the chain, as the upstream reads it.
pub enum FilteredBody {
    Decompress(Decompressing<ReqBody>),
    Compress(Compressing<ReqBody>),
    GrpcWebText(super::grpc_web::TextDecoding),
}

impl Body for FilteredBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            FilteredBody::Decompress(d) => d.poll_frame(cx),
            FilteredBody::Compress(c) => c.poll_frame(cx),
            FilteredBody::GrpcWebText(t) => Pin::new(t).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            FilteredBody::Decompress(d) => d.is_end_stream(),
            FilteredBody::Compress(c) => c.is_end_stream(),
            FilteredBody::GrpcWebText(t) => t.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            FilteredBody::Decompress(d) => d.size_hint(),
            FilteredBody::Compress(c) => c.size_hint(),
            FilteredBody::GrpcWebText(t) => t.size_hint(),
        }
    }
}

/// The client's body as the upstream gets it: `body` wrapped by each filter's codec, in
/// chain order.
pub fn wrap_request(mut body: ReqBody, codecs: Vec<RequestCodec>) -> ReqBody {
    for c in codecs {
        let f = match c {
            RequestCodec::Decompress { library, decoder, stats, trailers } => {
                FilteredBody::Decompress(Decompressing::new(body, &library, decoder, stats, trailers))
            }
            RequestCodec::Compress { encoder, step, stats } => {
                FilteredBody::Compress(Compressing::new(body, encoder, step, stats))
            }
            RequestCodec::GrpcWebText(probe) => {
                FilteredBody::GrpcWebText(super::grpc_web::TextDecoding::new(body, probe))
            }
        };
        body = ReqBody::Filtered(Box::new(f));
    }
    body
}
