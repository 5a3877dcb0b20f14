//! `with_request_body`: the body's first `max_request_bytes`, read before the check and sent
//! with it. What was read still goes upstream, followed by the rest of the stream; a longer
//! body without `allow_partial_message` is Envoy's 413.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt;

use super::super::chain::{RequestBody, Stream};
use crate::config::ext_authz::BufferSettings;
use crate::proxy::body::{self, ReqBody};
use crate::proxy::local_reply::LocalReason;

/// Reads up to the limit; `Some((bytes, whole))` when there is a body, `whole` false when it
/// goes on past what was read.
pub async fn read_prefix(
    body: &mut RequestBody,
    settings: BufferSettings,
    stream: &mut Stream,
) -> Result<Option<(Bytes, bool)>, LocalReason> {
    if body.is_end_stream() {
        return Ok(None);
    }
    if let RequestBody::Buffered(b) = body {
        // A buffer filter before this one read it whole.
        return over_limit(b.clone(), settings, true).map(Some);
    }
    let limit = settings.max_request_bytes as usize;
    let taken = std::mem::replace(body, RequestBody::Buffered(Bytes::new()));
    let mut rest: ReqBody = taken.into_stream(stream.rx_bytes.clone(), stream.progress.clone());
    let mut frames = VecDeque::new();
    let mut buf = BytesMut::new();
    let mut ended = false;
    // Bounded: each frame read adds its bytes, and reaching the limit stops the reading.
    while buf.len() < limit {
        let Some(frame) = rest.frame().await else {
            ended = true;
            break;
        };
        let frame: Frame<Bytes> = frame.map_err(|e| {
            LocalReason::from_client_body(body::client_body_failure(&*e).unwrap_or(body::ClientBodyFailure::Malformed))
        })?;
        if let Some(d) = frame.data_ref() {
            buf.extend_from_slice(d);
        }
        frames.push_back(frame);
    }
    if !ended && http_body::Body::is_end_stream(&rest) {
        ended = true;
    }
    *body = RequestBody::Read(Box::new(ReqBody::with_prefix(frames, rest)));
    let sent = over_limit(buf.freeze(), settings, ended);
    // Envoy's 413 closes the connection as if the body were unread.
    stream.body_read = ended && sent.is_ok();
    sent.map(Some)
}

/// The bytes the check carries: all of them, or the first `max_request_bytes` with
/// `allow_partial_message`; else a body over the limit is refused.
fn over_limit(bytes: Bytes, settings: BufferSettings, ended: bool) -> Result<(Bytes, bool), LocalReason> {
    let limit = settings.max_request_bytes as usize;
    let over = bytes.len() > limit || (bytes.len() == limit && !ended);
    match (over, settings.allow_partial_message) {
        (false, _) => Ok((bytes, true)),
        (true, true) => Ok((bytes.slice(..limit.min(bytes.len())), false)),
        (true, false) => Err(LocalReason::PayloadTooLarge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: u32, partial: bool) -> BufferSettings {
        BufferSettings { max_request_bytes: max, allow_partial_message: partial, pack_as_bytes: false }
    }

    #[test]
    fn the_limit_cuts_or_refuses() {
        let b = Bytes::from_static(b"hello body");
        assert_eq!(over_limit(b.clone(), settings(100, false), true), Ok((b.clone(), true)));
        assert_eq!(over_limit(b.clone(), settings(10, false), true), Ok((b.clone(), true)), "exactly the limit");
        assert_eq!(over_limit(b.clone(), settings(8, true), false), Ok((Bytes::from_static(b"hello bo"), false)));
        assert_eq!(over_limit(b.clone(), settings(8, false), false), Err(LocalReason::PayloadTooLarge));
        assert_eq!(
            over_limit(b.clone(), settings(10, false), false),
            Err(LocalReason::PayloadTooLarge),
            "more follows"
        );
    }
}
