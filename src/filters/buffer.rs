//! `envoy.filters.http.buffer`: reads the whole request body before the router sees the
//! request, so the upstream gets it at once with a `content-length`; over `max_request_bytes`
//! the client gets Envoy's `413 Payload Too Large`.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use http_body_util::BodyExt;

use super::chain::RequestBody;
use crate::config::filters::BufferConfig;
use crate::proxy::body::{self, ReqBody};
use crate::proxy::local_reply::LocalReason;

#[derive(Clone, Copy, Debug)]
pub struct Buffer {
    max_request_bytes: u64,
}

impl Buffer {
    pub fn new(c: &BufferConfig) -> Self {
        Buffer { max_request_bytes: u64::from(c.max_request_bytes) }
    }

    /// Reads the body whole; it then travels as [`RequestBody::Buffered`].
    pub async fn decode(
        &self,
        parts: &mut http::request::Parts,
        body: &mut RequestBody,
        stream: &super::Stream,
    ) -> Result<(), LocalReason> {
        if body.is_end_stream() || body.is_buffered() {
            return Ok(());
        }
        // The client's body, or what a decompressor before this filter makes of it.
        let taken = std::mem::replace(body, RequestBody::Buffered(Bytes::new()));
        let mut stream_body: ReqBody = taken.into_stream(stream.rx_bytes.clone(), stream.progress.clone());
        let mut buf = BytesMut::new();
        // Bounded by the limit: every frame read adds its bytes, and over the limit ends it.
        while let Some(frame) = stream_body.frame().await {
            let frame = frame.map_err(|e| {
                LocalReason::from_client_body(
                    body::client_body_failure(&*e).unwrap_or(body::ClientBodyFailure::Malformed),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
                if buf.len() as u64 > self.max_request_bytes {
                    return Err(LocalReason::PayloadTooLarge);
                }
            }
        }
        let bytes = buf.freeze();
        // Envoy adds the length of what it buffered when the client sent none (chunked).
        if !parts.headers.contains_key(CONTENT_LENGTH) {
            parts.headers.remove(TRANSFER_ENCODING);
            parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        }
        *body = RequestBody::Buffered(bytes);
        Ok(())
    }
}
