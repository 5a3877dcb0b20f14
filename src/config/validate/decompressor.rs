//! `envoy.filters.http.decompressor`: the filter's `Decompressor`, its decompression library
//! (gzip, brotli, zstd) with Envoy's ranges and defaults, and both directions' settings.
//! zstd's `dictionaries` and brotli's `disable_ring_buffer_reallocation` are refused by the
//! schema pass, naming the field.

use crate::config::compressor::{DecompressDirection, DecompressorConfig, DecompressorLibrary};
use crate::config::reader::{Ctx, Obj};
use crate::config::type_urls as t;

use super::compressor::{bounded, chunk_size};

/// `decompressor_library`: a `TypedExtensionConfig` naming one of the three libraries.
fn library(ctx: &mut Ctx, o: &mut Obj<'_>) -> Option<(String, DecompressorLibrary)> {
    let Some(mut lib) = o.obj(ctx, "decompressor_library") else {
        ctx.err(o.at("decompressor_library"), "missing decompressor_library");
        return None;
    };
    let name = lib.str(ctx, "name").unwrap_or_default();
    let path = lib.path.clone();
    let typed = lib.obj(ctx, "typed_config");
    lib.finish(ctx, &[]);
    let Some(mut c) = typed else {
        ctx.err(format!("{path}.typed_config"), "missing typed_config");
        return None;
    };
    let ty = c.str(ctx, "@type");
    let cpath = c.path.clone();
    let lib = match ty.as_deref() {
        Some(t::GZIP_DECOMPRESSOR) => {
            let window_bits = bounded(ctx, &mut c, "window_bits", 9, 15, 15) as u8;
            let chunk_size = chunk_size(ctx, &mut c);
            let max_inflate_ratio = bounded(ctx, &mut c, "max_inflate_ratio", 1, 1032, 100);
            DecompressorLibrary::Gzip { window_bits, chunk_size, max_inflate_ratio }
        }
        Some(t::BROTLI_DECOMPRESSOR) => DecompressorLibrary::Brotli { chunk_size: chunk_size(ctx, &mut c) },
        Some(t::ZSTD_DECOMPRESSOR) => DecompressorLibrary::Zstd { chunk_size: chunk_size(ctx, &mut c) },
        Some(other) => {
            ctx.err(&cpath, format!("unsupported decompressor library {other}"));
            return None;
        }
        None => {
            ctx.err(&cpath, "missing @type");
            return None;
        }
    };
    c.finish(ctx, &[]);
    Some((name, lib))
}

/// `common_config` of a direction.
fn common(ctx: &mut Ctx, d: &mut Obj<'_>) -> DecompressDirection {
    let Some(mut c) = d.obj(ctx, "common_config") else {
        return DecompressDirection {
            enabled: crate::runtime::FlagKey::fixed(true),
            ignore_no_transform_header: false,
        };
    };
    let enabled = super::compressor::feature_flag(ctx, &mut c, "enabled");
    let ignore_no_transform_header = c.bool(ctx, "ignore_no_transform_header").unwrap_or(false);
    c.finish(ctx, &[]);
    DecompressDirection { enabled, ignore_no_transform_header }
}

/// `envoy.extensions.filters.http.decompressor.v3.Decompressor`
pub(crate) fn decompressor(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<Box<DecompressorConfig>> {
    let before = ctx.error_count();
    let lib = library(ctx, &mut o);
    let on = DecompressDirection { enabled: crate::runtime::FlagKey::fixed(true), ignore_no_transform_header: false };
    let (request, advertise_accept_encoding) = match o.obj(ctx, "request_direction_config") {
        Some(mut r) => {
            let common = common(ctx, &mut r);
            let advertise = r.bool(ctx, "advertise_accept_encoding").unwrap_or(true);
            r.finish(ctx, &[]);
            (common, advertise)
        }
        None => (on.clone(), true),
    };
    let response = match o.obj(ctx, "response_direction_config") {
        Some(mut r) => {
            let common = common(ctx, &mut r);
            r.finish(ctx, &[]);
            common
        }
        None => on,
    };
    o.finish(ctx, &[]);
    let (library_name, library) = lib?;
    (ctx.error_count() == before)
        .then(|| Box::new(DecompressorConfig { library_name, library, request, response, advertise_accept_encoding }))
}
