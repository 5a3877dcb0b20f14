//! The compressing response body: each data frame the inner body yields is compressed as it
//! passes and flushed at its end (as Envoy flushes once per frame: a flush per step would
//! cost CPU and bytes), at most `chunk_size` input bytes per step so one large frame never
//! holds the runtime for long, the stream finished at the end (before trailers, which pass
//! through). Nothing is buffered beyond what the compressor holds between flushes.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::config::compressor::CompressorLibrary;
use crate::proxy::body::{BodyError, ResBody};
use crate::stats::Counter;

/// One compression stream of the configured library, writing into a `Vec` it hands out after
/// every step.
pub enum Encoder {
    Gzip(flate2::write::ZlibEncoder<Vec<u8>>),
    Brotli(Option<Box<brotli::CompressorWriter<Vec<u8>>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    pub fn new(lib: &CompressorLibrary) -> std::io::Result<Encoder> {
        Ok(match *lib {
            CompressorLibrary::Gzip { level, window_bits, .. } => {
                // `new_gzip` makes zlib write the gzip header and trailer itself.
                let c = flate2::Compress::new_gzip(flate2::Compression::new(level), window_bits);
                Encoder::Gzip(flate2::write::ZlibEncoder::new_with_compress(Vec::new(), c))
            }
            CompressorLibrary::Brotli {
                quality,
                window_bits,
                input_block_bits,
                mode,
                disable_literal_context_modeling,
                chunk_size,
            } => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: quality as i32,
                    lgwin: window_bits as i32,
                    lgblock: input_block_bits as i32,
                    mode: match mode {
                        1 => brotli::enc::backward_references::BrotliEncoderMode::BROTLI_MODE_TEXT,
                        2 => brotli::enc::backward_references::BrotliEncoderMode::BROTLI_MODE_FONT,
                        _ => brotli::enc::backward_references::BrotliEncoderMode::BROTLI_MODE_GENERIC,
                    },
                    disable_literal_context_modeling: i32::from(disable_literal_context_modeling),
                    ..Default::default()
                };
                Encoder::Brotli(Some(Box::new(brotli::CompressorWriter::with_params(Vec::new(), chunk_size, &params))))
            }
            CompressorLibrary::Zstd { level, checksum, strategy, .. } => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), level)?;
                e.include_checksum(checksum)?;
                if let Some(s) = zstd_strategy(strategy) {
                    e.set_parameter(zstd::stream::raw::CParameter::Strategy(s))?;
                }
                Encoder::Zstd(e)
            }
        })
    }

    fn out(&mut self) -> Bytes {
        let v = match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Brotli(Some(e)) => e.get_mut(),
            Encoder::Brotli(None) => return Bytes::new(),
            Encoder::Zstd(e) => e.get_mut(),
        };
        Bytes::from(std::mem::take(v))
    }

    /// Compresses `data`, and with `flush` flushes, so the client can decode what it has so
    /// far; returns what the compressor wrote (possibly nothing without `flush`).
    pub fn write(&mut self, data: &[u8], flush: bool) -> std::io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => e.write_all(data).and_then(|()| if flush { e.flush() } else { Ok(()) }),
            Encoder::Brotli(Some(e)) => e.write_all(data).and_then(|()| if flush { e.flush() } else { Ok(()) }),
            Encoder::Brotli(None) => Ok(()),
            Encoder::Zstd(e) => e.write_all(data).and_then(|()| if flush { e.flush() } else { Ok(()) }),
        }?;
        Ok(self.out())
    }

    /// Ends the stream (gzip trailer, brotli last block, zstd epilogue).
    pub fn finish(&mut self) -> std::io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => e.try_finish(),
            Encoder::Brotli(e) => {
                // Its `into_inner` writes the last block.
                return Ok(e.take().map(|w| Bytes::from(w.into_inner())).unwrap_or_default());
            }
            Encoder::Zstd(e) => e.do_finish(),
        }?;
        Ok(self.out())
    }
}

fn zstd_strategy(s: u32) -> Option<zstd::zstd_safe::Strategy> {
    use zstd::zstd_safe::Strategy::*;
    Some(match s {
        1 => ZSTD_fast,
        2 => ZSTD_dfast,
        3 => ZSTD_greedy,
        4 => ZSTD_lazy,
        5 => ZSTD_lazy2,
        6 => ZSTD_btlazy2,
        7 => ZSTD_btopt,
        8 => ZSTD_btultra,
        9 => ZSTD_btultra2,
        _ => return None,
    })
}

/// `total_uncompressed_bytes` and `total_compressed_bytes` of the filter's response stats.
#[derive(Clone)]
pub struct ByteStats {
    pub uncompressed: Counter,
    pub compressed: Counter,
}

/// How many inner frames one poll may take before it yields (frames of empty data).
const FRAMES_PER_POLL: usize = 16;

/// A body (a response's, or a request's for the request direction) compressed on the fly.
pub struct Compressing<B = ResBody> {
    inner: B,
    encoder: Encoder,
    /// The rest of the frame being compressed.
    pending: Bytes,
    /// Input bytes compressed per step.
    step: usize,
    trailers: Option<HeaderMap>,
    /// The encoder was finished (only trailers, then the end, remain).
    finished: bool,
    stats: ByteStats,
}

impl<B> Compressing<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    pub fn new(inner: B, encoder: Encoder, step: usize, stats: ByteStats) -> Self {
        Compressing { inner, encoder, pending: Bytes::new(), step, trailers: None, finished: false, stats }
    }

    fn compress_step(&mut self) -> Result<Bytes, BodyError> {
        let n = self.pending.len().min(self.step);
        let data = self.pending.split_to(n);
        self.stats.uncompressed.add(data.len() as u64);
        // The frame's last step flushes.
        let out = self.encoder.write(&data, self.pending.is_empty())?;
        self.stats.compressed.add(out.len() as u64);
        Ok(out)
    }

    fn finish(&mut self) -> Result<Bytes, BodyError> {
        self.finished = true;
        let out = self.encoder.finish()?;
        self.stats.compressed.add(out.len() as u64);
        Ok(out)
    }

    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        for _ in 0..FRAMES_PER_POLL {
            if self.finished {
                return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            if !self.pending.is_empty() {
                match self.compress_step() {
                    // A step that produced nothing yet: the next one (bounded by the loop).
                    Ok(out) if out.is_empty() => continue,
                    out => return Poll::Ready(Some(out.map(Frame::data))),
                }
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.pending = data,
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            self.trailers = Some(t);
                            return Poll::Ready(Some(self.finish().map(Frame::data)));
                        }
                    }
                },
                Poll::Ready(None) => return Poll::Ready(Some(self.finish().map(Frame::data))),
            }
        }
        // Many empty frames or silent steps in a row: let other tasks run before the next.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    pub fn is_end_stream(&self) -> bool {
        self.finished && self.trailers.is_none()
    }

    pub fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Store;
    use std::io::Read;

    fn stats() -> ByteStats {
        let s = Store::new();
        ByteStats { uncompressed: s.counter("u"), compressed: s.counter("c") }
    }

    async fn run(lib: CompressorLibrary, input: &[u8]) -> (Vec<Bytes>, ByteStats) {
        let st = stats();
        let enc = Encoder::new(&lib).unwrap_or_else(|e| panic!("{e}"));
        let mut body = Compressing::new(ResBody::full(Bytes::copy_from_slice(input)), enc, 4096, st.clone());
        let mut frames = Vec::new();
        while let Some(f) = std::future::poll_fn(|cx| body.poll_frame(cx)).await {
            frames.push(f.unwrap_or_else(|e| panic!("{e}")).into_data().unwrap_or_default());
        }
        (frames, st)
    }

    fn input() -> Vec<u8> {
        (0..20_000u32).flat_map(|i| format!("{{\"n\":{i}}},").into_bytes()).collect()
    }

    #[tokio::test]
    async fn gzip_streams_in_bounded_steps_and_decodes() {
        let lib = CompressorLibrary::Gzip { level: 6, window_bits: 12, memory_level: 5, chunk_size: 4096 };
        let data = input();
        let (frames, st) = run(lib, &data).await;
        // Output comes out as the compressor fills, not once at the end: never held whole.
        assert!(frames.len() > 2, "{} frames", frames.len());
        let all: Vec<u8> = frames.concat();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&all[..]).read_to_end(&mut out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, data);
        assert_eq!(st.uncompressed.value(), data.len() as u64);
        assert_eq!(st.compressed.value(), all.len() as u64);
    }

    #[tokio::test]
    async fn each_input_frame_is_flushed_once_at_its_end() {
        let lib = CompressorLibrary::Gzip { level: 6, window_bits: 12, memory_level: 5, chunk_size: 4096 };
        let data = input();
        let (a, b) = data.split_at(10_000);
        let input = vec![
            Ok::<_, BodyError>(Frame::data(Bytes::copy_from_slice(a))),
            Ok(Frame::data(Bytes::copy_from_slice(b))),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(input));
        let enc = Encoder::new(&lib).unwrap_or_else(|e| panic!("{e}"));
        let mut body = Compressing::new(body, enc, 4096, stats());
        let mut frames = Vec::new();
        while let Some(f) = std::future::poll_fn(|cx| body.poll_frame(cx)).await {
            frames.push(f.unwrap_or_else(|e| panic!("{e}")).into_data().unwrap_or_default());
        }
        // The first input frame's three steps: flushed at its end, so what came out until
        // then decodes to exactly that frame (the client is never kept waiting for it).
        let mut d = flate2::write::GzDecoder::new(Vec::new());
        let mut first = 0;
        for f in &frames {
            d.write_all(f).unwrap_or_else(|e| panic!("{e}"));
            d.flush().unwrap_or_else(|e| panic!("{e}"));
            first += 1;
            if d.get_ref().len() >= a.len() {
                break;
            }
        }
        assert_eq!(d.get_ref()[..], *a, "after {first} of {} frames", frames.len());
        // One flush for it, not one per 4 KiB step: fewer frames than its steps (the gzip
        // header may come out alone first).
        assert!(first < a.len().div_ceil(4096), "{first} frames for the first input frame");
    }

    #[tokio::test]
    async fn brotli_and_zstd_decode() {
        let data = input();
        let br = CompressorLibrary::Brotli {
            quality: 3,
            window_bits: 18,
            input_block_bits: 24,
            mode: 0,
            disable_literal_context_modeling: false,
            chunk_size: 4096,
        };
        let all = run(br, &data).await.0.concat();
        let mut out = Vec::new();
        brotli::Decompressor::new(&all[..], 4096).read_to_end(&mut out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, data);
        let zs = CompressorLibrary::Zstd { level: 10, checksum: true, strategy: 4, chunk_size: 4096 };
        let all = run(zs, &data).await.0.concat();
        assert_eq!(zstd::decode_all(&all[..]).unwrap_or_default(), data);
    }
}
