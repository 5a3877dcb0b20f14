//! `envoy.filters.http.compressor`: compresses responses the client accepts in an encoding of
//! one of the chain's compressor filters (gzip, brotli, zstd), with Envoy's rules: the
//! `Accept-Encoding` decision shared by the chain's compressors (`compress_accept`), the
//! minimum content length, content types, `Cache-Control: no-transform`, existing
//! `Content-Encoding`, ETags (`disable_on_etag_header`, strong ones dropped), `Vary:
//! Accept-Encoding`, `remove_accept_encoding_header`, `CompressorPerRoute`, and Envoy's stats
//! (`http.<prefix>.compressor.<name>.<library>.*`). The body is compressed as it streams
//! (`compress_body`). With `request_direction_config`, request bodies of an allowed type and
//! length that are not already encoded are compressed on their way upstream too.

use std::sync::Arc;

use http::header::{
    HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    TRANSFER_ENCODING, UPGRADE, VARY,
};
use http::HeaderMap;
use http_body::Body as _;

use super::chain::RequestBody;
use super::compress_accept::{self, Candidate, Decision};
use super::compress_body::{ByteStats, Compressing, Encoder};
use super::request_codec::RequestCodec;
use crate::config::compressor::{CompressorConfig, CompressorLibrary, CompressorPerRoute};
use crate::proxy::body::ResBody;
use crate::runtime::Runtime;
use crate::stats::{Counter, Store};

/// Envoy's content types when `content_type` is empty.
const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "text/html",
    "text/plain",
    "text/css",
    "application/javascript",
    "application/x-javascript",
    "text/javascript",
    "text/x-javascript",
    "text/ecmascript",
    "text/js",
    "text/jscript",
    "text/x-js",
    "application/ecmascript",
    "application/x-json",
    "application/xml",
    "application/json",
    "image/svg+xml",
    "text/xml",
    "application/xhtml+xml",
    "application/grpc-web",
    "application/grpc-web+proto",
];

/// What the compressors remember of a request: its `Accept-Encoding` (a shared copy of the
/// header's bytes) and which compressor removed the header, so later ones see none, as in
/// Envoy. Lives in the chain's `Stream`; untouched when the chain has no compressor.
#[derive(Default)]
pub struct CompressRequest {
    accept_encoding: Option<HeaderValue>,
    /// The chain index of the compressor that removed the header.
    removed_by: Option<usize>,
    head: bool,
}

struct Stats {
    compressed: Counter,
    not_compressed: Counter,
    content_length_too_small: Counter,
    bytes: ByteStats,
    no_accept_header: Counter,
    header_identity: Counter,
    header_compressor_used: Counter,
    header_compressor_overshadowed: Counter,
    header_wildcard: Counter,
    header_not_valid: Counter,
    not_compressed_etag: Counter,
    request_not_compressed: Counter,
    request_compressed: Counter,
    request_content_length_too_small: Counter,
    request_bytes: ByteStats,
}

impl Stats {
    fn new(store: &Store, prefix: &str, response: &str) -> Stats {
        let c = |name: &str| store.counter(&format!("{prefix}{name}"));
        let r = |name: &str| store.counter(&format!("{prefix}{response}{name}"));
        // Envoy creates the request direction's stats whether or not it is configured.
        Stats {
            request_compressed: c("request.compressed"),
            request_content_length_too_small: c("request.content_length_too_small"),
            request_bytes: ByteStats {
                uncompressed: c("request.total_uncompressed_bytes"),
                compressed: c("request.total_compressed_bytes"),
            },
            compressed: r("compressed"),
            not_compressed: r("not_compressed"),
            content_length_too_small: r("content_length_too_small"),
            bytes: ByteStats { uncompressed: r("total_uncompressed_bytes"), compressed: r("total_compressed_bytes") },
            no_accept_header: c("no_accept_header"),
            header_identity: c("header_identity"),
            header_compressor_used: c("header_compressor_used"),
            header_compressor_overshadowed: c("header_compressor_overshadowed"),
            header_wildcard: c("header_wildcard"),
            header_not_valid: c("header_not_valid"),
            not_compressed_etag: c("not_compressed_etag"),
            request_not_compressed: c("request.not_compressed"),
        }
    }
}

/// One compressor filter of the chain.
pub struct Compress {
    config: Box<CompressorConfig>,
    stats: Stats,
    /// The chain's compressors (encoding, content types, `choose_first`), in order, for the
    /// shared decision; set by [`link`].
    peers: Arc<[Peer]>,
}

/// A compressor of the chain as its peers see it.
pub struct Peer {
    encoding: &'static str,
    content_types: Vec<String>,
    choose_first: bool,
}

/// Whether a response of `content_type` may be compressed by a filter with `types` (no
/// content type: yes).
fn type_allowed(types: &[String], content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    if types.is_empty() {
        DEFAULT_CONTENT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(ct))
    } else {
        types.iter().any(|t| t.eq_ignore_ascii_case(ct))
    }
}

/// Tells every compressor of a chain about the others (Envoy's per-request registry).
pub(super) fn link(filters: &mut [super::ChainFilter]) {
    let peers: Arc<[Peer]> = filters
        .iter()
        .filter_map(|f| match &f.filter {
            super::Filter::Compress(c) => Some(Peer {
                encoding: c.config.library.encoding(),
                content_types: c.config.content_types.clone(),
                choose_first: c.config.choose_first,
            }),
            _ => None,
        })
        .collect();
    if peers.is_empty() {
        return;
    }
    for f in filters.iter_mut() {
        if let super::Filter::Compress(c) = &mut f.filter {
            c.peers = peers.clone();
        }
    }
}

/// The response's content type without parameters.
fn content_type(h: &HeaderMap) -> Option<&str> {
    let v = h.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim())
}

/// Whether a comma-separated header has `token` (trimmed, any case).
fn has_token(h: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

impl Compress {
    pub fn new(config: &CompressorConfig, store: &Arc<Store>, hcm_prefix: &str) -> Self {
        let prefix = format!("http.{hcm_prefix}.compressor.{}.{}.", config.library_name, config.library.stats_name());
        let response = if config.has_response_direction_config { "response." } else { "" };
        Compress { config: Box::new(config.clone()), stats: Stats::new(store, &prefix, response), peers: Arc::from([]) }
    }

    /// The route's override, or the response direction's flag (its runtime key read).
    fn enabled(&self, per_route: Option<&CompressorPerRoute>, rt: &Runtime) -> bool {
        per_route.and_then(|p| p.enabled).unwrap_or_else(|| self.config.enabled.enabled(rt))
    }

    /// Request headers: remembers `Accept-Encoding` (and removes it when configured).
    pub fn decode(
        &self,
        index: usize,
        parts: &mut http::request::Parts,
        per_route: Option<&CompressorPerRoute>,
        req: &mut CompressRequest,
        body: &mut RequestBody,
        rt: &Runtime,
    ) {
        if req.removed_by.is_none() && req.accept_encoding.is_none() {
            req.accept_encoding = parts.headers.get(ACCEPT_ENCODING).cloned();
            req.head = parts.method == http::Method::HEAD;
        }
        let remove = per_route
            .and_then(|p| p.remove_accept_encoding_header)
            .unwrap_or(self.config.remove_accept_encoding_header);
        if self.enabled(per_route, rt)
            && remove
            && req.removed_by.is_none()
            && parts.headers.contains_key(ACCEPT_ENCODING)
        {
            parts.headers.remove(ACCEPT_ENCODING);
            req.removed_by = Some(index);
        }
        self.compress_request(parts, body, rt);
    }

    /// Envoy's request direction: a body of an allowed type and length, not already encoded,
    /// is compressed on its way upstream. Without `request_direction_config` every request
    /// counts as not compressed, as in Envoy.
    fn compress_request(&self, parts: &mut http::request::Parts, body: &mut RequestBody, rt: &Runtime) {
        let h = &parts.headers;
        let compress = self.config.request.as_ref().filter(|r| {
            r.enabled.enabled(rt)
                && !body.is_end_stream()
                && !h.contains_key(UPGRADE)
                && self.request_length_ok(h, r.min_content_length)
                && type_allowed(&r.content_types, content_type(h))
                && !h.contains_key(CONTENT_ENCODING)
                && !transfer_encoded(h, self.config.library.encoding())
        });
        let encoder = compress.and_then(|_| Encoder::new(&self.config.library).ok());
        let Some(encoder) = encoder else {
            self.stats.request_not_compressed.inc();
            return;
        };
        parts.headers.remove(CONTENT_LENGTH);
        parts.headers.insert(CONTENT_ENCODING, HeaderValue::from_static(self.config.library.encoding()));
        self.stats.request_compressed.inc();
        body.push_codec(RequestCodec::Compress { encoder, step: self.step(), stats: self.stats.request_bytes.clone() });
    }

    fn request_length_ok(&self, h: &HeaderMap, min: u64) -> bool {
        let Some(v) = h.get(CONTENT_LENGTH) else { return true };
        let ok = v.to_str().ok().and_then(|s| s.parse::<u64>().ok()).is_some_and(|n| n >= min);
        if !ok {
            self.stats.request_content_length_too_small.inc();
        }
        ok
    }

    /// Input bytes compressed per step (the library's `chunk_size`).
    fn step(&self) -> usize {
        match self.config.library {
            CompressorLibrary::Gzip { chunk_size, .. }
            | CompressorLibrary::Brotli { chunk_size, .. }
            | CompressorLibrary::Zstd { chunk_size, .. } => chunk_size,
        }
    }

    fn min_length_ok(&self, h: &HeaderMap) -> bool {
        let Some(v) = h.get(CONTENT_LENGTH) else { return true };
        let ok =
            v.to_str().ok().and_then(|s| s.parse::<u64>().ok()).is_some_and(|n| n >= self.config.min_content_length);
        if !ok {
            self.stats.content_length_too_small.inc();
        }
        ok
    }

    fn etag_ok(&self, h: &HeaderMap) -> bool {
        let ok = !(self.config.disable_on_etag_header && h.contains_key(ETAG));
        if !ok {
            self.stats.not_compressed_etag.inc();
        }
        ok
    }

    /// Envoy's `isAcceptEncodingAllowed`: the shared decision, and this filter's `header_*` stat.
    fn accepted(&self, accept_encoding: Option<&HeaderValue>, h: &HeaderMap) -> bool {
        let Some(ae) = accept_encoding else {
            self.stats.no_accept_header.inc();
            return false;
        };
        let ct = content_type(h);
        let candidates: Vec<Candidate<'_>> = self
            .peers
            .iter()
            .map(|p| Candidate {
                encoding: p.encoding,
                choose_first: p.choose_first,
                allows: type_allowed(&p.content_types, ct),
            })
            .collect();
        let own = self.config.library.encoding();
        match compress_accept::choose(ae.to_str().unwrap_or(""), &candidates) {
            Decision::NotValid => {
                self.stats.header_not_valid.inc();
                false
            }
            Decision::Identity => {
                self.stats.header_identity.inc();
                false
            }
            Decision::Wildcard(e) => {
                self.stats.header_wildcard.inc();
                e == own
            }
            Decision::Compressor(e) if e == own => {
                self.stats.header_compressor_used.inc();
                true
            }
            Decision::Compressor(_) => {
                self.stats.header_compressor_overshadowed.inc();
                false
            }
        }
    }

    /// Response headers: compresses the body from here on when Envoy would.
    pub fn encode(
        &self,
        index: usize,
        req: &CompressRequest,
        per_route: Option<&CompressorPerRoute>,
        resp: &mut http::Response<ResBody>,
        rt: &Runtime,
    ) {
        let h = resp.headers();
        let big_enough = self.enabled(per_route, rt) && self.min_length_ok(h);
        let compressible = big_enough
            && !h.contains_key(UPGRADE)
            && !self.config.uncompressible_response_codes.contains(&resp.status().as_u16())
            && type_allowed(&self.config.content_types, content_type(h))
            && !has_token(h, CACHE_CONTROL, "no-transform")
            && self.etag_ok(h)
            && !h.contains_key(CONTENT_ENCODING);
        let end_stream = req.head || resp.body().is_end_stream();
        let accept_encoding = match req.removed_by {
            Some(i) if i < index => None,
            _ => req.accept_encoding.as_ref(),
        };
        let own = self.config.library.encoding();
        let compress =
            !end_stream && big_enough && self.accepted(accept_encoding, h) && compressible && !transfer_encoded(h, own);
        let encoder = if compress { Encoder::new(&self.config.library).ok() } else { None };
        let h = resp.headers_mut();
        match encoder {
            Some(encoder) => {
                // Envoy keeps weak ETags and drops strong ones, which no longer match the bytes.
                if let Some(etag) = h.get(ETAG) {
                    let v = etag.as_bytes();
                    if v.len() > 2 && !(matches!(v[0], b'w' | b'W') && v[1] == b'/') {
                        h.remove(ETAG);
                    }
                }
                h.remove(CONTENT_LENGTH);
                h.insert(CONTENT_ENCODING, HeaderValue::from_static(own));
                self.stats.compressed.inc();
                let step = self.step();
                let inner = std::mem::replace(resp.body_mut(), ResBody::empty());
                *resp.body_mut() =
                    ResBody::Compressed(Box::new(Compressing::new(inner, encoder, step, self.stats.bytes.clone())));
            }
            None => self.stats.not_compressed.inc(),
        }
        if compressible {
            insert_vary(resp.headers_mut());
        }
    }
}

/// Envoy's `isTransferEncodingAllowed`, negated: a `Transfer-Encoding` that already compresses.
fn transfer_encoded(h: &HeaderMap, own: &str) -> bool {
    ["gzip", "br", "deflate", "compress", "zstd", own].iter().any(|t| has_token(h, TRANSFER_ENCODING, t))
}

/// `Vary: Accept-Encoding`, appended to a `Vary` that lacks the token (Envoy compares it
/// case-sensitively, so `vary: accept-encoding` gets a second one, as Envoy's does).
fn insert_vary(h: &mut HeaderMap) {
    let joined: Option<String> = {
        let values: Vec<&str> = h.get_all(VARY).iter().filter_map(|v| v.to_str().ok()).collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    match joined {
        None => {
            h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        Some(v) if v.split(',').any(|t| t.trim() == "Accept-Encoding") => {}
        Some(v) => {
            if let Ok(v) = HeaderValue::try_from(format!("{v}, Accept-Encoding")) {
                h.insert(VARY, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vary(existing: &[&str]) -> Vec<String> {
        let mut h = HeaderMap::new();
        for v in existing {
            h.append(VARY, HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")));
        }
        insert_vary(&mut h);
        h.get_all(VARY).iter().map(|v| v.to_str().unwrap_or("").to_string()).collect()
    }

    /// Envoy 1.40's answers for each existing `Vary`.
    #[test]
    fn vary_is_added_or_appended_as_envoy() {
        assert_eq!(vary(&[]), ["Accept-Encoding"]);
        assert_eq!(vary(&["Origin"]), ["Origin, Accept-Encoding"]);
        assert_eq!(vary(&["accept-encoding"]), ["accept-encoding, Accept-Encoding"]);
        assert_eq!(vary(&["*"]), ["*, Accept-Encoding"]);
        assert_eq!(vary(&["Origin, Accept-Encoding"]), ["Origin, Accept-Encoding"]);
    }
}
