//! `envoy.filters.http.grpc_web`, as Envoy 1.40 does it. A request whose `content-type` is
//! `application/grpc-web[-text][+proto]` goes upstream as gRPC: `content-type:
//! application/grpc`, no `content-length`, `te: trailers`, `grpc-accept-encoding: identity`
//! unless the client sent one, a `-text` body base64-decoded as it streams. The response comes
//! back as `application/grpc-web+proto` (`grpc-web-text+proto` when the client's `accept` asked
//! for text) with its trailers in a last `0x80` frame ([`super::grpc_web_body`]). A response
//! that is not gRPC (another status or content type; a local reply) becomes a trailers-only
//! one: its body (up to 16 KiB) percent-encoded in `grpc-message`, its status mapped to
//! `grpc-status`, no body. CORS is the CORS filter's business, as in Envoy.
//!
//! A `-text` body that is not base64 ends the request with Envoy's 400 `Bad gRPC-web request,
//! invalid base64 data.` (turned into `grpc-status: 13` like any answer that is not gRPC). The
//! stats are [`super::grpc_web_stats`]'.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, TE};
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};

use super::chain::RequestBody;
use super::grpc_codec::{self, Collected};
use super::grpc_web_body::{GrpcResBody, WebBody};
use super::grpc_web_stats::WebStats;
use super::request_codec::RequestCodec;
use crate::proxy::body::{BodyError, ReqBody, ResBody};

/// How much of a non-gRPC response body becomes `grpc-message` (Envoy's
/// `MAX_BUFFERED_PLAINTEXT_LENGTH`).
const MAX_MESSAGE: usize = 16384;

static GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

pub struct GrpcWeb {
    stats: WebStats,
}

fn is_text(v: &[u8]) -> bool {
    v == b"application/grpc-web-text" || v == b"application/grpc-web-text+proto"
}

/// `grpc-web` or `grpc-web+proto`, ignoring parameters and case (Envoy's
/// `hasProtoEncodedGrpcWebContentType`).
fn is_proto_grpc_web(h: &http::HeaderMap) -> bool {
    h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        let t = v.split(';').next().unwrap_or("").trim_end();
        t.eq_ignore_ascii_case("application/grpc-web") || t.eq_ignore_ascii_case("application/grpc-web+proto")
    })
}

impl GrpcWeb {
    pub fn new(store: &Arc<crate::stats::Store>) -> Self {
        GrpcWeb { stats: WebStats::new(store) }
    }

    pub fn decode(
        &self,
        parts: &mut http::request::Parts,
        body: &mut RequestBody,
        info: super::RequestInfo<'_>,
        stream: &mut super::Stream,
    ) {
        let text_request = match parts.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()) {
            Some(b"application/grpc-web" | b"application/grpc-web+proto") => false,
            Some(v) if is_text(v) => true,
            _ => return,
        };
        parts.headers.remove(CONTENT_LENGTH);
        parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        let text_response = parts.headers.get(ACCEPT).is_some_and(|v| is_text(v.as_bytes()));
        parts.headers.insert(TE, HeaderValue::from_static("trailers"));
        if !parts.headers.contains_key(&GRPC_ACCEPT_ENCODING) {
            parts.headers.insert(GRPC_ACCEPT_ENCODING.clone(), HeaderValue::from_static("identity"));
        }
        stream.grpc.web = Some(text_response);
        // Counted for the route's cluster (none for a direct response), as Envoy's filter does.
        let cluster = info.cluster.and_then(|c| info.clusters.get(c));
        stream.grpc.web_stats = cluster.and_then(|c| self.stats.method(c.config.stat_name(), info.full_path));
        if text_request && !body.is_end_stream() {
            body.push_codec(RequestCodec::GrpcWebText(TextProbe::default()));
        }
    }

    /// The response of a gRPC-Web request: converted as it streams, or (not gRPC) read up to
    /// 16 KiB into `grpc-message`.
    pub async fn encode(stream: &mut super::Stream, resp: &mut http::Response<ResBody>) {
        let Some(text) = stream.grpc.web else { return };
        // The upstream's own `grpc-status` (a trailers-only answer), before any conversion.
        let stats = stream.grpc.web_stats.take();
        if let (Some(s), Some(status)) = (&stats, resp.headers().get(&GRPC_STATUS)) {
            s.charge(status);
        }
        let end = resp.body().is_end_stream();
        let grpc = if end {
            resp.headers().contains_key(&GRPC_STATUS)
        } else {
            resp.status() == StatusCode::OK && crate::proxy::local_reply::is_grpc_request(resp.headers())
        };
        let grpc_web = resp.status() == StatusCode::OK && is_proto_grpc_web(resp.headers());
        let transform = !(grpc || grpc_web);
        let content_type = if text { "application/grpc-web-text+proto" } else { "application/grpc-web+proto" };
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if end {
            return;
        }
        let taken = std::mem::replace(resp.body_mut(), ResBody::empty());
        if !transform {
            // Frames are added (the trailers') or re-encoded: the upstream's length is wrong.
            resp.headers_mut().remove(CONTENT_LENGTH);
            *resp.body_mut() = ResBody::Grpc(Box::new(GrpcResBody::Web(WebBody::new(taken, text, stats))));
            return;
        }
        match grpc_codec::collect(taken, MAX_MESSAGE, true).await {
            Collected::Whole { data, .. } => {
                let h = resp.headers_mut();
                if let Ok(v) = HeaderValue::from_str(&grpc_codec::percent_encode(&data)) {
                    h.insert(GRPC_MESSAGE.clone(), v);
                }
                let status = grpc_codec::http_to_grpc_status(resp.status().as_u16());
                resp.headers_mut().insert(GRPC_STATUS.clone(), HeaderValue::from(status));
                resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            }
            Collected::Failed(e) => *resp.body_mut() = grpc_codec::failed_body(e),
            Collected::TooLarge => {}
        }
    }
}

/// How a `grpc-web-text` request body was not base64, with Envoy's response code details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFailure {
    /// A character outside the alphabet, or misplaced padding: `grpc_base_64_decode_failed`.
    Data,
    /// The body ended inside a 4-character group: `grpc_base_64_decode_failed_bad_size`.
    Size,
}

impl TextFailure {
    pub fn details(self) -> &'static str {
        match self {
            TextFailure::Data => "grpc_base_64_decode_failed",
            TextFailure::Size => "grpc_base_64_decode_failed_bad_size",
        }
    }
}

/// Invalid base64 in a `grpc-web-text` request body.
#[derive(Debug, thiserror::Error)]
#[error("Bad gRPC-web request, invalid base64 data.")]
pub struct InvalidText(pub TextFailure);

/// Where a decoding body leaves its failure for the router: hyper's HTTP/2 client drops a
/// request body's error (it resets the upstream stream), so the error the router gets may
/// not say that the client's body was at fault.
#[derive(Clone, Default)]
pub struct TextProbe(Arc<AtomicU8>);

impl TextProbe {
    fn set(&self, f: TextFailure) {
        self.0.store(if f == TextFailure::Data { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// The body failed, and how.
    pub fn failure(&self) -> Option<TextFailure> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(TextFailure::Data),
            2 => Some(TextFailure::Size),
            _ => None,
        }
    }
}

/// A `grpc-web-text` request body, base64-decoded as it streams: whole 4-character groups
/// are decoded as they arrive, at most 3 characters wait for the next chunk.
pub struct TextDecoding {
    inner: ReqBody,
    carry: BytesMut,
    done: bool,
    probe: TextProbe,
}

impl TextDecoding {
    pub fn new(inner: ReqBody, probe: TextProbe) -> Self {
        TextDecoding { inner, carry: BytesMut::new(), done: false, probe }
    }

    fn fail(&mut self, f: TextFailure) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.done = true;
        self.probe.set(f);
        Poll::Ready(Some(Err(Box::new(InvalidText(f)))))
    }
}

impl Body for TextDecoding {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        // A chunk too short to decode is read past, a few at a time.
        for _ in 0..16 {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    if !this.carry.is_empty() {
                        return this.fail(TextFailure::Size);
                    }
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.carry.extend_from_slice(&data);
                        let whole = this.carry.len() / 4 * 4;
                        if whole == 0 {
                            continue;
                        }
                        let groups = this.carry.split_to(whole);
                        let mut out = BytesMut::with_capacity(whole / 4 * 3);
                        if grpc_codec::base64_decode(&groups, &mut out).is_none() {
                            return this.fail(TextFailure::Data);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
