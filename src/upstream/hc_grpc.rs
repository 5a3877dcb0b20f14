//! gRPC health checks (`grpc_health_check`): one `grpc.health.v1.Health/Check` call over the
//! check's HTTP/2 connection, as Envoy makes it (`content-type: application/grpc`,
//! `te: trailers`, `grpc-timeout` from the check's timeout, `user-agent: Envoy/HC`). The host is
//! healthy when the call ends with `grpc-status: 0` and its one message says `SERVING`; a
//! non-200 answer, another gRPC status, a missing or malformed message or a second one fail it
//! (Envoy's `ACTIVE` failures: at once, not after `unhealthy_threshold`).
//!
//! The two messages are tiny and encoded by hand: the request is `HealthCheckRequest { string
//! service = 1 }`, the answer `HealthCheckResponse { ServingStatus status = 1 }` (`SERVING` = 1).

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;

use super::hc::Outcome;
use crate::config::model::GrpcCheck;

const PATH: &str = "/grpc.health.v1.Health/Check";
const SERVING: u64 = 1;
/// Larger answers are not a `HealthCheckResponse`.
const MAX_ANSWER: usize = 16 * 1024;

/// One check on `sender`; the sender back when the connection can carry the next one.
pub async fn check(
    grpc: &GrpcCheck,
    authority: &str,
    mut sender: http2::SendRequest<Full<Bytes>>,
    timeout_ms: u128,
) -> (Outcome, Option<http2::SendRequest<Full<Bytes>>>) {
    if sender.ready().await.is_err() {
        return (Outcome::Network, None);
    }
    let req = http::Request::post(format!("http://{authority}{PATH}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, "Envoy/HC")
        .header("grpc-timeout", format!("{timeout_ms}m"))
        .body(Full::new(Bytes::from(request_frame(&grpc.service_name))));
    let Ok(req) = req else { return (Outcome::Active { retriable: false, status: 0 }, None) };
    let Ok(resp) = sender.send_request(req).await else { return (Outcome::Network, None) };
    let failed = (Outcome::Active { retriable: false, status: 0 }, Some(sender.clone()));
    if resp.status() != http::StatusCode::OK {
        let _ = resp.into_body().collect().await;
        return failed;
    }
    // A trailers-only answer (grpc-go's UNIMPLEMENTED) carries its status in the headers.
    let head_status = grpc_status(resp.headers());
    let Ok(collected) = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER).collect().await else {
        return (Outcome::Network, None);
    };
    let status = collected.trailers().and_then(grpc_status).or(head_status);
    let serving = decode_answer(collected.to_bytes()) == Some(SERVING);
    if status == Some(0) && serving {
        (Outcome::Healthy, Some(sender))
    } else {
        failed
    }
}

fn grpc_status(h: &http::HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()
}

/// The gRPC frame of a `HealthCheckRequest` (`service` left out when empty, as protobuf does).
fn request_frame(service: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(service.len() + 8);
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(msg.len() + 5);
    frame.push(0); // not compressed
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    frame
}

/// The `status` of the one `HealthCheckResponse` frame in `body` (0 when the field is absent,
/// protobuf's default); `None` when `body` is not exactly one well-formed frame.
fn decode_answer(mut body: Bytes) -> Option<u64> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    body.advance(1);
    let len = body.get_u32() as usize;
    if body.len() != len {
        return None;
    }
    let mut status = 0;
    while body.has_remaining() {
        let key = varint(&mut body)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(&mut body)?,
            (_, 0) => {
                varint(&mut body)?;
            }
            (_, 1) if body.remaining() >= 8 => body.advance(8),
            (_, 2) => {
                let n = usize::try_from(varint(&mut body)?).ok()?;
                if body.remaining() < n {
                    return None;
                }
                body.advance(n);
            }
            (_, 5) if body.remaining() >= 4 => body.advance(4),
            _ => return None,
        }
    }
    Some(status)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(b: &mut Bytes) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if !b.has_remaining() {
            return None;
        }
        let byte = b.get_u8();
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_protobuf_frames() {
        assert_eq!(request_frame(""), [0, 0, 0, 0, 0]);
        assert_eq!(request_frame("svc"), [0, 0, 0, 0, 5, 0x0a, 3, b's', b'v', b'c']);
        let long = "x".repeat(200);
        assert_eq!(&request_frame(&long)[5..8], [0x0a, 0xc8, 0x01], "a two-byte length");
    }

    #[test]
    fn answers_decode_their_status() {
        let frame = |msg: &[u8]| {
            let mut f = vec![0];
            f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
            f.extend_from_slice(msg);
            Bytes::from(f)
        };
        assert_eq!(decode_answer(frame(&[0x08, 1])), Some(SERVING));
        assert_eq!(decode_answer(frame(&[0x08, 2])), Some(2), "NOT_SERVING");
        assert_eq!(decode_answer(frame(&[])), Some(0), "UNKNOWN, the default");
        assert_eq!(decode_answer(frame(&[0x12, 1, b'x', 0x08, 1])), Some(SERVING), "unknown fields skipped");
        assert_eq!(decode_answer(frame(&[0x08])), None, "truncated");
        assert_eq!(decode_answer(Bytes::from_static(&[0, 0, 0, 0, 9, 0x08])), None, "short frame");
        assert_eq!(decode_answer(Bytes::new()), None, "no message");
    }
}
