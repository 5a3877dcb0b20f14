//! `envoy.filters.http.decompressor`: decompresses request and response bodies whose
//! `Content-Encoding` starts with the library's encoding (gzip, br, zstd), as Envoy 1.40 does:
//! each direction `enabled` on its own, `Cache-Control: no-transform` respected unless
//! `ignore_no_transform_header`, `Content-Length` dropped and the encoding taken off the
//! header, the library's encoding advertised in the request's `Accept-Encoding` when responses
//! are decompressed, and Envoy's stats (`http.<prefix>.decompressor.<name>.<library>.
//! {request,response}.*` and the library's `decompressor_library.*`). Bodies stream through
//! `decompress_body`, bounded against compression bombs.

use std::sync::{Arc, OnceLock};

use http::header::{HeaderName, HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH};
use http::HeaderMap;
use http_body::Body as _;

use super::chain::RequestBody;
use super::decompress_body::{DecodeStats, Decoder, Decompressing, TrailerNames};
use super::request_codec::RequestCodec;
use crate::config::compressor::{DecompressDirection, DecompressorConfig, DecompressorLibrary};
use crate::proxy::body::ResBody;
use crate::runtime::Runtime;
use crate::stats::{Counter, Store};

struct DirStats {
    decompressed: Counter,
    not_decompressed: Counter,
    compressed: Counter,
    uncompressed: Counter,
}

impl DirStats {
    fn new(store: &Store, prefix: &str) -> Self {
        let c = |n: &str| store.counter(&format!("{prefix}{n}"));
        DirStats {
            decompressed: c("decompressed"),
            not_decompressed: c("not_decompressed"),
            compressed: c("total_compressed_bytes"),
            uncompressed: c("total_uncompressed_bytes"),
        }
    }
}

/// One decompressor filter of the chain.
pub struct Decompress {
    config: Box<DecompressorConfig>,
    request: DirStats,
    response: DirStats,
    store: Arc<Store>,
    /// `...decompressor_library.`: its counters appear when a first body is decoded, as in Envoy.
    library_prefix: String,
    library_error: OnceLock<Counter>,
    trailers: Option<TrailerNames>,
}

/// Whether a comma-separated header has `token` (trimmed, any case).
fn has_token(h: &HeaderMap, name: HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Envoy's `addEncodingToAcceptEncoding`: `encoding` once, last, with no q-value; the others
/// as they were, joined by a bare comma.
fn advertise(h: &mut HeaderMap, encoding: &str) {
    let existing: Vec<&str> = h.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).collect();
    let mut out: Vec<&str> = Vec::new();
    for value in existing {
        for token in value.split(',') {
            let name = token.split(';').next().unwrap_or("").trim();
            if !token.is_empty() && !name.eq_ignore_ascii_case(encoding) {
                out.push(token.trim());
            }
        }
    }
    out.push(encoding);
    if let Ok(v) = HeaderValue::from_str(&out.join(",")) {
        h.insert(ACCEPT_ENCODING, v);
    }
}

/// The first `Content-Encoding` token is the library's (any case, any spacing).
fn encoding_matches(h: &HeaderMap, encoding: &str) -> bool {
    let Some(v) = h.get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()) else { return false };
    v.split(',').next().unwrap_or("").trim().eq_ignore_ascii_case(encoding)
}

/// Takes the first coding off `Content-Encoding` (the header goes when none remains).
fn strip_encoding(h: &mut HeaderMap) {
    let rest = h
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(',').map(|(_, rest)| rest.trim().to_string()));
    match rest.and_then(|r| HeaderValue::from_str(&r).ok()) {
        Some(v) => {
            h.insert(CONTENT_ENCODING, v);
        }
        None => {
            h.remove(CONTENT_ENCODING);
        }
    }
}

impl Decompress {
    pub fn new(config: &DecompressorConfig, store: &Arc<Store>, hcm_prefix: &str) -> Self {
        let prefix = format!("http.{hcm_prefix}.decompressor.{}.{}.", config.library_name, config.library.stats_name());
        let trailer = |kind: &str| {
            let name = format!("x-envoy-decompressor-{}-{kind}-bytes", config.library_name).to_ascii_lowercase();
            HeaderName::from_bytes(name.as_bytes()).ok()
        };
        let trailers = trailer("compressed").zip(trailer("uncompressed")).map(Arc::new);
        Decompress {
            config: Box::new(config.clone()),
            request: DirStats::new(store, &format!("{prefix}request.")),
            response: DirStats::new(store, &format!("{prefix}response.")),
            store: Arc::clone(store),
            library_prefix: format!("{prefix}decompressor_library."),
            library_error: OnceLock::new(),
            trailers,
        }
    }

    /// The library's counters, made with its first decoder; the one a corrupt stream (or a
    /// bomb) counts in.
    fn library_error(&self) -> Counter {
        self.library_error
            .get_or_init(|| {
                let (names, error): (&[&str], &str) = match self.config.library {
                    DecompressorLibrary::Gzip { .. } => (
                        &[
                            "zlib_errno",
                            "zlib_stream_error",
                            "zlib_data_error",
                            "zlib_mem_error",
                            "zlib_buf_error",
                            "zlib_version_error",
                        ],
                        "zlib_data_error",
                    ),
                    DecompressorLibrary::Brotli { .. } => {
                        (&["brotli_error", "brotli_output_overflow", "brotli_redundant_input"], "brotli_error")
                    }
                    DecompressorLibrary::Zstd { .. } => (
                        &[
                            "zstd_generic_error",
                            "zstd_dictionary_error",
                            "zstd_checksum_wrong_error",
                            "zstd_memory_error",
                        ],
                        "zstd_generic_error",
                    ),
                };
                for n in names {
                    self.store.counter(&format!("{}{n}", self.library_prefix));
                }
                self.store.counter(&format!("{}{error}", self.library_prefix))
            })
            .clone()
    }

    /// Envoy's `maybeInitDecompress`: whether this direction decodes a body with these headers
    /// (and, if so, the headers made to say so).
    fn init(
        &self,
        dir: &DecompressDirection,
        stats: &DirStats,
        h: &mut HeaderMap,
        rt: &Runtime,
    ) -> Option<(Decoder, DecodeStats)> {
        let go = dir.enabled.enabled(rt)
            && (dir.ignore_no_transform_header || !has_token(h, CACHE_CONTROL, "no-transform"))
            && encoding_matches(h, self.config.library.encoding());
        let decoder = if go { Decoder::new(&self.config.library).ok() } else { None };
        let Some(decoder) = decoder else {
            stats.not_decompressed.inc();
            return None;
        };
        stats.decompressed.inc();
        h.remove(CONTENT_LENGTH);
        strip_encoding(h);
        let s = DecodeStats {
            compressed: stats.compressed.clone(),
            uncompressed: stats.uncompressed.clone(),
            error: self.library_error(),
        };
        Some((decoder, s))
    }

    /// Request headers: advertises the encoding, and decodes the body when it is encoded.
    pub fn decode(&self, parts: &mut http::request::Parts, body: &mut RequestBody, rt: &Runtime) {
        if self.config.response.enabled.enabled(rt) && self.config.advertise_accept_encoding {
            advertise(&mut parts.headers, self.config.library.encoding());
        }
        if body.is_end_stream() {
            return;
        }
        let Some((decoder, stats)) = self.init(&self.config.request, &self.request, &mut parts.headers, rt) else {
            return;
        };
        let codec =
            RequestCodec::Decompress { library: self.config.library, decoder, stats, trailers: self.trailers.clone() };
        body.push_codec(codec);
    }

    /// Response headers: decodes the body when it is encoded.
    pub fn encode(&self, resp: &mut http::Response<ResBody>, rt: &Runtime) {
        if resp.body().is_end_stream() {
            return;
        }
        let Some((decoder, stats)) = self.init(&self.config.response, &self.response, resp.headers_mut(), rt) else {
            return;
        };
        let inner = std::mem::replace(resp.body_mut(), ResBody::empty());
        let d = Decompressing::new(inner, &self.config.library, decoder, stats, self.trailers.clone());
        *resp.body_mut() = ResBody::Decompressed(Box::new(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")));
        }
        h
    }

    /// Envoy 1.40's `Accept-Encoding` after a gzip decompressor.
    #[test]
    fn advertised_as_envoy() {
        for (before, after) in [
            (None, "gzip"),
            (Some("br;q=0.3, gzip;q=0.5"), "br;q=0.3,gzip"),
            (Some("identity"), "identity,gzip"),
            (Some("GZIP"), "gzip"),
        ] {
            let mut h = match before {
                Some(b) => headers(&[("accept-encoding", b)]),
                None => HeaderMap::new(),
            };
            advertise(&mut h, "gzip");
            assert_eq!(h.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()), Some(after), "{before:?}");
        }
    }

    #[test]
    fn only_the_first_coding_matches_and_is_taken_off() {
        let mut h = headers(&[("content-encoding", " GZIP , br")]);
        assert!(encoding_matches(&h, "gzip"));
        strip_encoding(&mut h);
        assert_eq!(h.get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()), Some("br"));
        assert!(!encoding_matches(&headers(&[("content-encoding", "br, gzip")]), "gzip"));
        let mut h = headers(&[("content-encoding", "gzip")]);
        strip_encoding(&mut h);
        assert!(h.get(CONTENT_ENCODING).is_none());
    }
}
