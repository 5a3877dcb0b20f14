//! `envoy.filters.http.compressor`: the filter's `Compressor`, its compression library
//! (gzip, brotli, zstd) with Envoy's ranges and defaults, both directions, and
//! `CompressorPerRoute`. Fields legate does not read (`content_type_matcher`,
//! `status_header_enabled`, `weaken_etag_on_compress`, a per-route `compressor_library`, zstd's
//! `dictionary`) are refused by the schema pass, naming the field.

use crate::config::compressor::{CompressorConfig, CompressorLibrary, CompressorPerRoute, RequestCompression};
use crate::config::reader::{Ctx, Obj};
use crate::config::type_urls as t;
use crate::runtime::FlagKey;

/// A wrapped unsigned field within Envoy's bounds, or its default when unset.
pub(super) fn bounded(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str, lo: u32, hi: u32, default: u32) -> u32 {
    match o.u32(ctx, name) {
        None => default,
        Some(v) if (lo..=hi).contains(&v) => v,
        Some(v) => {
            ctx.err(o.at(name), format!("value {v} must be between {lo} and {hi}"));
            default
        }
    }
}

/// `chunk_size`: 4096 to 65536, 4096 by default (all three libraries, both filters).
pub(super) fn chunk_size(ctx: &mut Ctx, o: &mut Obj<'_>) -> usize {
    bounded(ctx, o, "chunk_size", 4096, 65536, 4096) as usize
}

fn gzip(ctx: &mut Ctx, mut o: Obj<'_>) -> CompressorLibrary {
    let memory_level = bounded(ctx, &mut o, "memory_level", 1, 9, 5) as u8;
    let window_bits = bounded(ctx, &mut o, "window_bits", 9, 15, 12) as u8;
    let chunk_size = chunk_size(ctx, &mut o);
    let levels: &[(&str, Option<u32>)] = &[
        ("DEFAULT_COMPRESSION", Some(6)),
        ("BEST_SPEED", Some(1)),
        ("COMPRESSION_LEVEL_1", Some(1)),
        ("COMPRESSION_LEVEL_2", Some(2)),
        ("COMPRESSION_LEVEL_3", Some(3)),
        ("COMPRESSION_LEVEL_4", Some(4)),
        ("COMPRESSION_LEVEL_5", Some(5)),
        ("COMPRESSION_LEVEL_6", Some(6)),
        ("COMPRESSION_LEVEL_7", Some(7)),
        ("COMPRESSION_LEVEL_8", Some(8)),
        ("COMPRESSION_LEVEL_9", Some(9)),
        ("BEST_COMPRESSION", Some(9)),
    ];
    let level = o.enumv(ctx, "compression_level", levels).unwrap_or(6);
    // flate2 does not expose zlib's strategies: only the default is accepted.
    let strategies: &[(&str, Option<()>)] =
        &[("DEFAULT_STRATEGY", Some(())), ("FILTERED", None), ("HUFFMAN_ONLY", None), ("RLE", None), ("FIXED", None)];
    o.enumv(ctx, "compression_strategy", strategies);
    o.finish(ctx, &[]);
    CompressorLibrary::Gzip { level, window_bits, memory_level, chunk_size }
}

fn brotli(ctx: &mut Ctx, mut o: Obj<'_>) -> CompressorLibrary {
    let quality = bounded(ctx, &mut o, "quality", 0, 11, 3);
    let window_bits = bounded(ctx, &mut o, "window_bits", 10, 24, 18);
    let input_block_bits = bounded(ctx, &mut o, "input_block_bits", 16, 24, 24);
    let chunk_size = chunk_size(ctx, &mut o);
    let modes: &[(&str, Option<u8>)] =
        &[("DEFAULT", Some(0)), ("GENERIC", Some(0)), ("TEXT", Some(1)), ("FONT", Some(2))];
    let mode = o.enumv(ctx, "encoder_mode", modes).unwrap_or(0);
    let disable_literal_context_modeling = o.bool(ctx, "disable_literal_context_modeling").unwrap_or(false);
    o.finish(ctx, &[]);
    CompressorLibrary::Brotli {
        quality,
        window_bits,
        input_block_bits,
        mode,
        disable_literal_context_modeling,
        chunk_size,
    }
}

fn zstd(ctx: &mut Ctx, mut o: Obj<'_>) -> CompressorLibrary {
    // Envoy passes the level to ZSTD_c_compressionLevel, which clamps it to the library's range.
    let level = o.u32(ctx, "compression_level").map_or(3, |l| l.min(22) as i32);
    let checksum = o.bool(ctx, "enable_checksum").unwrap_or(false);
    let strategies: &[(&str, Option<u32>)] = &[
        ("DEFAULT", Some(0)),
        ("FAST", Some(1)),
        ("DFAST", Some(2)),
        ("GREEDY", Some(3)),
        ("LAZY", Some(4)),
        ("LAZY2", Some(5)),
        ("BTLAZY2", Some(6)),
        ("BTOPT", Some(7)),
        ("BTULTRA", Some(8)),
        ("BTULTRA2", Some(9)),
    ];
    let strategy = o.enumv(ctx, "strategy", strategies).unwrap_or(0);
    let chunk_size = chunk_size(ctx, &mut o);
    o.finish(ctx, &[]);
    CompressorLibrary::Zstd { level, checksum, strategy, chunk_size }
}

/// `compressor_library`: a `TypedExtensionConfig` naming one of the three libraries.
fn library(ctx: &mut Ctx, o: &mut Obj<'_>) -> Option<(String, CompressorLibrary)> {
    let Some(mut lib) = o.obj(ctx, "compressor_library") else {
        ctx.err(o.at("compressor_library"), "missing compressor_library");
        return None;
    };
    let name = lib.str(ctx, "name").unwrap_or_default();
    let path = lib.path.clone();
    let typed = lib.obj(ctx, "typed_config");
    lib.finish(ctx, &[]);
    let mut c = match typed {
        Some(c) => c,
        None => {
            ctx.err(format!("{path}.typed_config"), "missing typed_config");
            return None;
        }
    };
    let ty = c.str(ctx, "@type");
    let cpath = c.path.clone();
    match ty.as_deref() {
        Some(t::GZIP_COMPRESSOR) => Some((name, gzip(ctx, c))),
        Some(t::BROTLI_COMPRESSOR) => Some((name, brotli(ctx, c))),
        Some(t::ZSTD_COMPRESSOR) => Some((name, zstd(ctx, c))),
        Some(other) => {
            ctx.err(&cpath, format!("unsupported compressor library {other}"));
            None
        }
        None => {
            ctx.err(&cpath, "missing @type");
            None
        }
    }
}

/// `envoy.config.core.v3.RuntimeFeatureFlag`: its `runtime_key` over its `default_value`
/// (both required, as Envoy's validation says); unset is always on.
pub(super) fn feature_flag(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str) -> FlagKey {
    let Some(mut f) = o.obj(ctx, name) else { return FlagKey::fixed(true) };
    let value = f.bool(ctx, "default_value");
    let key = f.str(ctx, "runtime_key");
    let path = f.path.clone();
    f.finish(ctx, &[]);
    if key.as_ref().is_none_or(|k| k.is_empty()) {
        ctx.err(format!("{path}.runtime_key"), "missing runtime_key");
    }
    let default_value = value.unwrap_or_else(|| {
        ctx.err(format!("{path}.default_value"), "missing default_value");
        true
    });
    FlagKey { default_value, runtime_key: key.filter(|k| !k.is_empty()).map(std::sync::Arc::from) }
}

/// `enabled`, `min_content_length` and `content_type` of a direction (or the deprecated
/// top-level spellings).
struct Common {
    enabled: FlagKey,
    min_content_length: u64,
    content_types: Vec<String>,
}

fn common(ctx: &mut Ctx, o: &mut Obj<'_>, enabled: &'static str, min: &'static str) -> Common {
    let enabled = feature_flag(ctx, o, enabled);
    // Envoy reads 0 as unset: the default 30.
    let min_content_length = o.u32(ctx, min).filter(|&n| n > 0).map_or(30, u64::from);
    let content_types = o.strs(ctx, "content_type").into_iter().map(|c| c.trim().to_ascii_lowercase()).collect();
    Common { enabled, min_content_length, content_types }
}

/// `envoy.extensions.filters.http.compressor.v3.Compressor`
pub(crate) fn compressor(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<Box<CompressorConfig>> {
    let before = ctx.error_count();
    let lib = library(ctx, &mut o);
    let choose_first = o.bool(ctx, "choose_first").unwrap_or(false);
    let request = o.obj(ctx, "request_direction_config").map(|mut r| {
        let c = match r.obj(ctx, "common_config") {
            Some(mut c) => {
                let common = common(ctx, &mut c, "enabled", "min_content_length");
                c.finish(ctx, &[]);
                common
            }
            None => Common { enabled: FlagKey::fixed(true), min_content_length: 30, content_types: Vec::new() },
        };
        r.finish(ctx, &[]);
        RequestCompression {
            enabled: c.enabled,
            min_content_length: c.min_content_length,
            content_types: c.content_types,
        }
    });
    let response = o.obj(ctx, "response_direction_config");
    let has_response_direction_config = response.is_some();
    // The deprecated top-level fields, read (as Envoy does) only without a response config.
    let mut top = common(ctx, &mut o, "runtime_enabled", "content_length");
    let mut disable_on_etag_header = o.bool(ctx, "disable_on_etag_header").unwrap_or(false);
    let mut remove_accept_encoding_header = o.bool(ctx, "remove_accept_encoding_header").unwrap_or(false);
    let mut uncompressible_response_codes = Vec::new();
    if let Some(mut r) = response {
        top = match r.obj(ctx, "common_config") {
            Some(mut c) => {
                let common = common(ctx, &mut c, "enabled", "min_content_length");
                c.finish(ctx, &[]);
                common
            }
            None => Common { enabled: FlagKey::fixed(true), min_content_length: 30, content_types: Vec::new() },
        };
        disable_on_etag_header = r.bool(ctx, "disable_on_etag_header").unwrap_or(false);
        remove_accept_encoding_header = r.bool(ctx, "remove_accept_encoding_header").unwrap_or(false);
        for (v, p) in r.list(ctx, "uncompressible_response_codes") {
            match crate::config::reader::scalar_string(v).and_then(|s| s.parse::<u16>().ok()) {
                Some(c) if (200..600).contains(&c) => uncompressible_response_codes.push(c),
                _ => ctx.err(&p, "must be a status code between 200 and 599"),
            }
        }
        r.finish(ctx, &[]);
    }
    o.finish(ctx, &[]);
    let (library_name, library) = lib?;
    (ctx.error_count() == before).then(|| {
        Box::new(CompressorConfig {
            library_name,
            library,
            enabled: top.enabled,
            min_content_length: top.min_content_length,
            content_types: top.content_types,
            disable_on_etag_header,
            remove_accept_encoding_header,
            uncompressible_response_codes,
            choose_first,
            has_response_direction_config,
            request,
        })
    })
}

/// `envoy.extensions.filters.http.compressor.v3.CompressorPerRoute`: `disabled` or
/// `overrides` (one is required).
pub(crate) fn per_route(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<CompressorPerRoute> {
    let disabled = o.bool(ctx, "disabled");
    let overrides = o.obj(ctx, "overrides");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let none = CompressorPerRoute { enabled: None, remove_accept_encoding_header: None };
    match (disabled, overrides) {
        (Some(_), Some(_)) => {
            ctx.err(&path, "only one of disabled, overrides may be set");
            None
        }
        (Some(true), None) => Some(CompressorPerRoute { enabled: Some(false), ..none }),
        (Some(false), None) => {
            ctx.err(format!("{path}.disabled"), "must be true");
            None
        }
        (None, Some(mut ov)) => {
            let response = ov.obj(ctx, "response_direction_config");
            ov.finish(ctx, &[]);
            let Some(mut r) = response else { return Some(none) };
            let remove_accept_encoding_header = r.bool(ctx, "remove_accept_encoding_header");
            r.finish(ctx, &[]);
            Some(CompressorPerRoute { enabled: Some(true), remove_accept_encoding_header })
        }
        (None, None) => {
            ctx.err(&path, "one of disabled, overrides is required");
            None
        }
    }
}
