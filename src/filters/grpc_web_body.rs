//! The gRPC-Web response body, converted as it streams: the upstream's trailers become a
//! last frame with the `0x80` flag holding `name:value\r\n` lines; for `grpc-web-text`
//! clients each whole gRPC frame (and that trailer frame) is base64-encoded on its own, as
//! Envoy encodes them. Nothing is held beyond one incomplete frame.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::grpc_codec::{base64_encode, frame_header, FRAME_HEADER};
use super::grpc_web_stats::MethodStats;
use crate::proxy::body::{BodyError, ResBody};

/// The flag of gRPC-Web's trailer frame.
const TRAILER_FLAG: u8 = 0x80;

/// How many inner frames one poll may take before it yields.
const FRAMES_PER_POLL: usize = 16;

/// A response body the gRPC filters made.
pub enum GrpcResBody {
    Web(WebBody<ResBody>),
    /// The upstream's body failed while a filter read it: the error, once.
    Failed(Option<BodyError>),
}

impl GrpcResBody {
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self {
            GrpcResBody::Web(w) => w.poll_frame(cx),
            GrpcResBody::Failed(e) => Poll::Ready(e.take().map(Err)),
        }
    }

    pub fn is_end_stream(&self) -> bool {
        match self {
            GrpcResBody::Web(w) => w.done,
            GrpcResBody::Failed(e) => e.is_none(),
        }
    }

    pub fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

pub struct WebBody<B> {
    inner: B,
    /// `grpc-web-text`: frames go out base64-encoded.
    text: bool,
    /// Text mode: the bytes of a frame not yet whole.
    partial: BytesMut,
    done: bool,
    /// Charged with the trailers' `grpc-status`.
    stats: Option<std::sync::Arc<MethodStats>>,
}

impl<B> WebBody<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    pub fn new(inner: B, text: bool, stats: Option<std::sync::Arc<MethodStats>>) -> Self {
        WebBody { inner, text, partial: BytesMut::new(), done: false, stats }
    }

    /// Whole frames of `partial`, each base64-encoded; the rest stays.
    fn encode_frames(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        // Bounded: each round takes one whole frame off `partial`.
        while self.partial.len() >= FRAME_HEADER {
            let len = u32::from_be_bytes([self.partial[1], self.partial[2], self.partial[3], self.partial[4]]) as usize;
            if self.partial.len() < FRAME_HEADER + len {
                break;
            }
            let frame = self.partial.split_to(FRAME_HEADER + len);
            base64_encode(&frame, &mut out);
        }
        out.freeze()
    }

    fn trailer_frame(&self, trailers: &HeaderMap) -> Bytes {
        let mut lines = Vec::new();
        for (name, value) in trailers {
            lines.extend_from_slice(name.as_str().as_bytes());
            lines.push(b':');
            lines.extend_from_slice(value.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        let mut frame = BytesMut::with_capacity(FRAME_HEADER + lines.len());
        frame.extend_from_slice(&frame_header(TRAILER_FLAG, lines.len()));
        frame.extend_from_slice(&lines);
        if self.text {
            let mut out = BytesMut::new();
            base64_encode(&frame, &mut out);
            out.freeze()
        } else {
            frame.freeze()
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        for _ in 0..FRAMES_PER_POLL {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !self.text => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(data) => {
                        self.partial.extend_from_slice(&data);
                        let out = self.encode_frames();
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            // The trailers travel in the body: none go out as trailers.
                            self.done = true;
                            if let (Some(s), Some(status)) = (self.stats.take(), t.get("grpc-status")) {
                                s.charge(status);
                            }
                            return Poll::Ready(Some(Ok(Frame::data(self.trailer_frame(&t)))));
                        }
                    }
                },
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// A body of the given frames.
    struct Frames(std::collections::VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = BodyError;
        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(Ok))
        }
    }

    async fn run(frames: Vec<Frame<Bytes>>, text: bool) -> Vec<Bytes> {
        let mut body = WebBody::new(Frames(frames.into()), text, None);
        let mut out = Vec::new();
        while let Some(f) = std::future::poll_fn(|cx| body.poll_frame(cx)).await {
            let f = f.unwrap_or_else(|e| panic!("{e}"));
            assert!(f.is_data(), "trailers must not go out as trailers");
            out.push(f.into_data().unwrap_or_default());
        }
        out
    }

    fn trailers() -> HeaderMap {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        t.insert("grpc-message", HeaderValue::from_static(""));
        t
    }

    #[tokio::test]
    async fn binary_trailers_become_the_last_frame() {
        let msg = Bytes::from_static(b"\0\0\0\0\x08echo:abc");
        let out = run(vec![Frame::data(msg.clone()), Frame::trailers(trailers())], false).await;
        assert_eq!(out[0], msg);
        assert_eq!(&out[1][..], b"\x80\0\0\0\x1egrpc-status:0\r\ngrpc-message:\r\n");
    }

    #[tokio::test]
    async fn text_frames_are_encoded_one_by_one_across_chunks() {
        // Three frames split at odd places, as Envoy 1.40 answered `/svc/Stream`.
        let all = b"\0\0\0\0\x05part0\0\0\0\0\x05part1\0\0\0\0\x05part2";
        let chunks = vec![
            Frame::data(Bytes::copy_from_slice(&all[..3])),
            Frame::data(Bytes::copy_from_slice(&all[3..14])),
            Frame::data(Bytes::copy_from_slice(&all[14..])),
            Frame::trailers(trailers()),
        ];
        let out = run(chunks, true).await.concat();
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "AAAAAAVwYXJ0MA==AAAAAAVwYXJ0MQ==AAAAAAVwYXJ0Mg==gAAAAB5ncnBjLXN0YXR1czowDQpncnBjLW1lc3NhZ2U6DQo="
        );
    }
}
