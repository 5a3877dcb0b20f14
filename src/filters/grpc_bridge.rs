//! `envoy.filters.http.grpc_http1_bridge`, as Envoy 1.40 does it: an HTTP/1.x request with a
//! gRPC `content-type` goes upstream as it is (over h2 when the cluster speaks it), and its
//! response is read whole until the trailers, which become headers the HTTP/1.1 client can
//! see: `grpc-status` and `grpc-message` copied, the status 503 when `grpc-status` is not 0,
//! `content-length` the body's. A trailers-only answer (no body) passes untouched.
//!
//! `upgrade_protobuf_to_grpc`: an `application/x-protobuf` request becomes `application/grpc`
//! and its body (read whole) one gRPC frame; the response loses the frame header of its first
//! message. `ignore_query_parameters`: a bridged request's query is dropped from `:path`.
//!
//! The response is bounded by Envoy's default buffer limit (1 MiB): over it, the client gets
//! Envoy's gRPC local reply for a 500 (`grpc-status: 2`, `Internal Server Error`).

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, SERVER};
use http::{StatusCode, Version};
use http_body_util::BodyExt;

use super::chain::RequestBody;
use super::grpc_codec::{self, Collected, FRAME_HEADER};
use crate::config::filters::GrpcBridgeConfig;
use crate::proxy::body::{self, ResBody};
use crate::proxy::local_reply::{self, LocalReason};

/// Envoy's default `per_connection_buffer_limit_bytes`, which bounds what a filter buffers.
pub const BUFFER_LIMIT: usize = 1024 * 1024;

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// What the gRPC filters remember of one request.
#[derive(Default)]
pub struct GrpcStream {
    /// The bridge reads this request's response whole.
    pub bridging: bool,
    /// The bridge framed a protobuf request: the response loses its frame header.
    pub framing: bool,
    /// A gRPC-Web request; `Some(true)` when the client wants `grpc-web-text` back.
    pub web: Option<bool>,
    /// A filter changed `:path` (the bridge's `ignore_query_parameters`).
    pub path_changed: bool,
    /// The gRPC-Web filter's counters for this request's service and method.
    pub web_stats: Option<std::sync::Arc<super::grpc_web_stats::MethodStats>>,
}

pub struct Bridge {
    config: GrpcBridgeConfig,
}

impl Bridge {
    pub fn new(config: &GrpcBridgeConfig) -> Self {
        Bridge { config: *config }
    }

    pub async fn decode(
        &self,
        parts: &mut http::request::Parts,
        body: &mut RequestBody,
        stream: &mut super::Stream,
    ) -> Result<(), LocalReason> {
        let protobuf = parts.headers.get(CONTENT_TYPE).is_some_and(|v| v == "application/x-protobuf");
        let framing = self.config.upgrade_protobuf && protobuf;
        if framing {
            parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            parts.headers.remove(CONTENT_LENGTH);
        }
        let bridging = parts.version < Version::HTTP_2 && local_reply::is_grpc_request(&parts.headers);
        if !bridging {
            return Ok(());
        }
        stream.grpc.bridging = true;
        if self.config.ignore_query && grpc_codec::strip_query(parts).is_some() {
            stream.grpc.path_changed = true;
        }
        if framing && !body.is_end_stream() {
            stream.grpc.framing = true;
            let message = read_whole(body, stream).await?;
            let mut framed = BytesMut::with_capacity(FRAME_HEADER + message.len());
            framed.extend_from_slice(&grpc_codec::frame_header(0, message.len()));
            framed.extend_from_slice(&message);
            *body = RequestBody::Buffered(framed.freeze());
        }
        Ok(())
    }

    /// The response of a bridged request, read whole.
    pub async fn encode(stream: &mut super::Stream, resp: &mut http::Response<ResBody>) {
        if !stream.grpc.bridging || http_body::Body::is_end_stream(resp.body()) {
            return;
        }
        let taken = std::mem::replace(resp.body_mut(), ResBody::empty());
        let (mut data, trailers) = match grpc_codec::collect(taken, BUFFER_LIMIT, false).await {
            Collected::Whole { data, trailers } => (data, trailers),
            Collected::Failed(e) => {
                *resp.body_mut() = grpc_codec::failed_body(e);
                return;
            }
            Collected::TooLarge => {
                let server = resp.headers().get(SERVER).cloned().unwrap_or(HeaderValue::from_static("envoy"));
                *resp = local_reply::grpc_local_reply(LocalReason::ResponsePayloadTooLarge, &server, false);
                stream.details = Some("response_payload_too_large".into());
                return;
            }
        };
        if stream.grpc.framing {
            let _ = data.split_to(FRAME_HEADER.min(data.len()));
        }
        let h = resp.headers_mut();
        if let Some(t) = &trailers {
            if let Some(status) = t.get(&GRPC_STATUS) {
                if status.to_str().ok().and_then(|s| s.parse::<u64>().ok()) != Some(0) {
                    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                }
                resp.headers_mut().insert(GRPC_STATUS.clone(), status.clone());
            }
            if let Some(message) = t.get(&GRPC_MESSAGE) {
                resp.headers_mut().insert(GRPC_MESSAGE.clone(), message.clone());
            }
            resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(data.len()));
        } else if h.contains_key(CONTENT_LENGTH) {
            h.insert(CONTENT_LENGTH, HeaderValue::from(data.len()));
        }
        *resp.body_mut() = ResBody::full(data.freeze());
    }
}

/// The request body read whole, up to Envoy's buffer limit (413 past it).
async fn read_whole(body: &mut RequestBody, stream: &super::Stream) -> Result<Bytes, LocalReason> {
    let taken = std::mem::replace(body, RequestBody::Buffered(Bytes::new()));
    let mut reading = taken.into_stream(stream.rx_bytes.clone(), stream.progress.clone());
    let mut buf = BytesMut::new();
    // Bounded by the limit: every frame adds its bytes, and over the limit ends it.
    while let Some(frame) = reading.frame().await {
        let frame = frame.map_err(|e| {
            LocalReason::from_client_body(body::client_body_failure(&*e).unwrap_or(body::ClientBodyFailure::Malformed))
        })?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > BUFFER_LIMIT {
                return Err(LocalReason::PayloadTooLarge);
            }
        }
    }
    Ok(buf.freeze())
}
