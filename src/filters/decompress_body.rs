//! The decompressing body (request or response): each data frame is inflated as it passes, in
//! steps of at most [`STEP_OUTPUT`] bytes so a large or highly compressed frame never holds the
//! runtime for long, and never more than `max_inflate_ratio` (100 unless gzip's says otherwise)
//! times the frame's size, Envoy's compression-bomb bound: past it the library's error counter
//! goes up and the rest of the body is dropped. At the end, Envoy's
//! `x-envoy-decompressor-<name>-{compressed,uncompressed}-bytes` trailers are added (an HTTP/1
//! peer never sees them: it is sent only trailers its `Trailer` header declares).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::config::compressor::DecompressorLibrary;
use crate::proxy::body::BodyError;
use crate::stats::Counter;

/// The most decoded bytes one poll hands out.
const STEP_OUTPUT: usize = 64 * 1024;

/// How many inner frames one poll may take before it yields (frames that decode to nothing).
const FRAMES_PER_POLL: usize = 16;

type BrotliState =
    brotli::BrotliState<brotli::HeapAlloc<u8>, brotli::HeapAlloc<u32>, brotli::HeapAlloc<brotli::HuffmanCode>>;

/// One decompression stream of the configured library.
pub enum Decoder {
    Gzip(flate2::Decompress),
    Brotli(Box<BrotliState>),
    Zstd(zstd::stream::raw::Decoder<'static>),
}

/// What one decoding step did.
struct Step {
    consumed: usize,
    produced: usize,
    /// The compressed stream ended: what follows is ignored, as Envoy's libraries do.
    end: bool,
}

impl Decoder {
    pub fn new(lib: &DecompressorLibrary) -> std::io::Result<Decoder> {
        Ok(match *lib {
            DecompressorLibrary::Gzip { window_bits, .. } => {
                // Envoy inflates gzip only (zlib's window bits + 16), never a raw zlib stream.
                Decoder::Gzip(flate2::Decompress::new_gzip(window_bits))
            }
            DecompressorLibrary::Brotli { .. } => Decoder::Brotli(Box::new(BrotliState::new_strict(
                brotli::HeapAlloc::new(0),
                brotli::HeapAlloc::new(0),
                brotli::HeapAlloc::new(brotli::HuffmanCode::default()),
            ))),
            DecompressorLibrary::Zstd { .. } => Decoder::Zstd(zstd::stream::raw::Decoder::new()?),
        })
    }

    /// Decodes from `input` into `out`; `Err` is a corrupt stream.
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<Step, ()> {
        match self {
            Decoder::Gzip(d) => {
                let (in0, out0) = (d.total_in(), d.total_out());
                let status = d.decompress(input, out, flate2::FlushDecompress::None).map_err(|_| ())?;
                Ok(Step {
                    consumed: (d.total_in() - in0) as usize,
                    produced: (d.total_out() - out0) as usize,
                    end: status == flate2::Status::StreamEnd,
                })
            }
            Decoder::Brotli(s) => {
                let (mut avail_in, mut in_off) = (input.len(), 0usize);
                let (mut avail_out, mut out_off, mut total) = (out.len(), 0usize, 0usize);
                let r = brotli::BrotliDecompressStream(
                    &mut avail_in,
                    &mut in_off,
                    input,
                    &mut avail_out,
                    &mut out_off,
                    out,
                    &mut total,
                    s,
                );
                match r {
                    brotli::BrotliResult::ResultFailure => Err(()),
                    r => Ok(Step {
                        consumed: in_off,
                        produced: out_off,
                        end: matches!(r, brotli::BrotliResult::ResultSuccess),
                    }),
                }
            }
            Decoder::Zstd(d) => {
                use zstd::stream::raw::Operation;
                let s = d.run_on_buffers(input, out).map_err(|_| ())?;
                // zstd's hint is 0 when a frame is complete; more frames may follow, as Envoy allows.
                Ok(Step { consumed: s.bytes_read, produced: s.bytes_written, end: false })
            }
        }
    }
}

/// A direction's byte counters and its library's error counter.
#[derive(Clone)]
pub struct DecodeStats {
    pub compressed: Counter,
    pub uncompressed: Counter,
    /// `zlib_data_error`, `brotli_error` or `zstd_generic_error`.
    pub error: Counter,
}

/// `x-envoy-decompressor-<name>-compressed-bytes` and `-uncompressed-bytes`.
pub type TrailerNames = Arc<(HeaderName, HeaderName)>;

/// A body decompressed on the fly.
pub struct Decompressing<B> {
    inner: B,
    decoder: Decoder,
    /// The rest of the frame being decoded.
    pending: Bytes,
    /// What the current frame may still decode to.
    budget: u64,
    ratio: u64,
    chunk: usize,
    /// The last step filled its whole buffer: the library may hold more output even with
    /// no input left.
    draining: bool,
    /// The stream ended or broke: the rest of the body is dropped.
    stopped: bool,
    ended: bool,
    names: Option<TrailerNames>,
    totals: (u64, u64),
    stats: DecodeStats,
}

impl<B> Decompressing<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    pub fn new(
        inner: B,
        lib: &DecompressorLibrary,
        decoder: Decoder,
        stats: DecodeStats,
        names: Option<TrailerNames>,
    ) -> Self {
        let ratio = match *lib {
            DecompressorLibrary::Gzip { max_inflate_ratio, .. } => u64::from(max_inflate_ratio),
            _ => 100,
        };
        Decompressing {
            inner,
            decoder,
            pending: Bytes::new(),
            budget: 0,
            ratio,
            chunk: lib.chunk_size(),
            draining: false,
            stopped: false,
            ended: false,
            names,
            totals: (0, 0),
            stats,
        }
    }

    /// Decodes the pending input into at most [`STEP_OUTPUT`] bytes.
    fn decode_step(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        // Bounded: each turn consumes input, produces output (up to the step's size) or stops.
        while self.has_input() && out.len() < STEP_OUTPUT {
            let start = out.len();
            out.resize(start + self.chunk, 0);
            let r = self.decoder.step(&self.pending, &mut out[start..]);
            let step = match r {
                Ok(s) => s,
                Err(()) => {
                    out.truncate(start);
                    self.stop();
                    break;
                }
            };
            out.truncate(start + step.produced);
            let _ = self.pending.split_to(step.consumed);
            self.budget = self.budget.saturating_sub(step.produced as u64);
            self.draining = step.produced == self.chunk && !step.end;
            if step.end {
                self.pending.clear();
                self.stopped = true;
            } else if self.budget == 0 && self.has_input() {
                // Envoy's compression-bomb bound for one frame.
                self.stop();
            } else if step.consumed == 0 && step.produced == 0 {
                // The library wants more input than is pending (or will not move): next frame.
                break;
            }
        }
        self.totals.1 += out.len() as u64;
        self.stats.uncompressed.add(out.len() as u64);
        out.freeze()
    }

    /// Input is pending, or output the library still holds.
    fn has_input(&self) -> bool {
        !self.pending.is_empty() || self.draining
    }

    fn stop(&mut self) {
        self.stats.error.inc();
        self.pending.clear();
        self.draining = false;
        self.stopped = true;
    }

    /// The body's end: its trailers, with Envoy's byte counts added.
    fn end_trailers(&mut self, trailers: Option<HeaderMap>) -> Option<Result<Frame<Bytes>, BodyError>> {
        self.ended = true;
        let Some(names) = &self.names else { return trailers.map(|t| Ok(Frame::trailers(t))) };
        let mut t = trailers.unwrap_or_default();
        t.append(names.0.clone(), HeaderValue::from(self.totals.0));
        t.append(names.1.clone(), HeaderValue::from(self.totals.1));
        Some(Ok(Frame::trailers(t)))
    }

    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        for _ in 0..FRAMES_PER_POLL {
            if self.ended {
                return Poll::Ready(None);
            }
            if self.has_input() {
                let out = self.decode_step();
                if !out.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                continue;
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        self.totals.0 += data.len() as u64;
                        self.stats.compressed.add(data.len() as u64);
                        if !self.stopped {
                            self.budget = self.ratio.saturating_mul(data.len() as u64);
                            self.pending = data;
                        }
                    }
                    Err(frame) => {
                        let t = frame.into_trailers().ok();
                        return Poll::Ready(self.end_trailers(t));
                    }
                },
                Poll::Ready(None) => return Poll::Ready(self.end_trailers(None)),
            }
        }
        // Many frames that decoded to nothing: let other tasks run before the next.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    pub fn is_end_stream(&self) -> bool {
        self.ended
    }

    pub fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl<B> Body for Decompressing<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.get_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        Decompressing::is_end_stream(self)
    }

    fn size_hint(&self) -> SizeHint {
        Decompressing::size_hint(self)
    }
}
