//! `envoy.filters.http.compressor`: the library settings with Envoy's defaults and ranges,
//! the response direction (and the deprecated top-level spellings), `CompressorPerRoute`, and
//! the fields legate refuses, by name.

use super::{load_text, messages, v3, A_SVC, ROUTE_A};
use crate::config::compressor::*;
use crate::config::filters::{HttpFilterKind, PerFilter};
use crate::config::model::{Bootstrap, RouteSource};
use crate::runtime::FlagKey;

const ROUTER: &str = "          - name: envoy.filters.http.router\n";

fn with(filter: &str) -> String {
    let f = format!(
        "          - name: envoy.filters.http.compressor\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor\n{filter}"
    );
    v3(ROUTE_A, A_SVC).replace(ROUTER, &format!("{f}{ROUTER}"))
}

fn lib(ty: &str, fields: &str) -> String {
    format!(
        "              compressor_library:\n                name: lib\n                typed_config:\n                  \"@type\": type.googleapis.com/envoy.extensions.compression.{ty}\n{fields}"
    )
}

fn load(text: &str) -> Result<Bootstrap, Vec<String>> {
    load_text("c.yaml", text).map_err(|e| messages(&e))
}

fn compressor(text: &str) -> CompressorConfig {
    let b = load(text).unwrap_or_else(|e| panic!("{e:?}"));
    let hcm = b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm"));
    match &hcm.http_filters[0].kind {
        HttpFilterKind::Compressor(c) => (**c).clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn libraries_read_with_envoy_defaults() {
    let c = compressor(&with(&lib("gzip.compressor.v3.Gzip", "")));
    assert_eq!(c.library, CompressorLibrary::Gzip { level: 6, window_bits: 12, memory_level: 5, chunk_size: 4096 });
    assert_eq!((&c.enabled, c.min_content_length, c.content_types.len()), (&FlagKey::fixed(true), 30, 0));
    assert!(!c.has_response_direction_config);
    let c = compressor(&with(&lib(
        "gzip.compressor.v3.Gzip",
        "                  compression_level: BEST_SPEED\n                  window_bits: 15\n                  memory_level: 9\n                  chunk_size: 8192\n",
    )));
    assert_eq!(c.library, CompressorLibrary::Gzip { level: 1, window_bits: 15, memory_level: 9, chunk_size: 8192 });
    let c = compressor(&with(&lib(
        "brotli.compressor.v3.Brotli",
        "                  quality: 11\n                  window_bits: 10\n                  input_block_bits: 16\n                  encoder_mode: TEXT\n                  disable_literal_context_modeling: true\n",
    )));
    assert_eq!(
        c.library,
        CompressorLibrary::Brotli {
            quality: 11,
            window_bits: 10,
            input_block_bits: 16,
            mode: 1,
            disable_literal_context_modeling: true,
            chunk_size: 4096
        }
    );
    let c = compressor(&with(&lib(
        "zstd.compressor.v3.Zstd",
        "                  compression_level: 10\n                  enable_checksum: true\n                  strategy: BTULTRA2\n",
    )));
    assert_eq!(c.library, CompressorLibrary::Zstd { level: 10, checksum: true, strategy: 9, chunk_size: 4096 });
}

#[test]
fn response_direction_and_deprecated_fields() {
    let rdc = "              response_direction_config:\n                common_config:\n                  min_content_length: 100\n                  content_type: [Application/JSON]\n                  enabled: {default_value: false, runtime_key: k}\n                disable_on_etag_header: true\n                remove_accept_encoding_header: true\n                uncompressible_response_codes: [206]\n              choose_first: true\n";
    let c = compressor(&with(&format!("{rdc}{}", lib("gzip.compressor.v3.Gzip", ""))));
    assert_eq!(
        (c.enabled.clone(), c.min_content_length, c.content_types.clone()),
        (FlagKey { default_value: false, runtime_key: Some("k".into()) }, 100, vec!["application/json".into()])
    );
    assert!(c.disable_on_etag_header && c.remove_accept_encoding_header && c.choose_first);
    assert!(c.has_response_direction_config);
    assert_eq!(c.uncompressible_response_codes, [206]);
    let old = "              content_length: 50\n              content_type: [text/html]\n              disable_on_etag_header: true\n";
    let c = compressor(&with(&format!("{old}{}", lib("gzip.compressor.v3.Gzip", ""))));
    assert_eq!(
        (c.min_content_length, c.content_types.clone(), c.disable_on_etag_header),
        (50, vec!["text/html".into()], true)
    );
}

#[test]
fn unsupported_knobs_are_refused_by_name() {
    let p = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config";
    let e =
        load(&with(&lib("gzip.compressor.v3.Gzip", "                  window_bits: 8\n"))).err().unwrap_or_default();
    assert_eq!(e, [format!("{p}.compressor_library.typed_config.window_bits: value 8 must be between 9 and 15")]);
    let e = load(&with(&lib("gzip.compressor.v3.Gzip", "                  compression_strategy: RLE\n")))
        .err()
        .unwrap_or_default();
    assert_eq!(e, [format!("{p}.compressor_library.typed_config.compression_strategy: unsupported value \"RLE\"")]);
    let req =
        "              request_direction_config: {common_config: {min_content_length: 10, content_type: [text/x]}}\n";
    let c = compressor(&with(&format!("{req}{}", lib("gzip.compressor.v3.Gzip", ""))));
    assert_eq!(
        c.request,
        Some(RequestCompression {
            enabled: FlagKey::fixed(true),
            min_content_length: 10,
            content_types: vec!["text/x".into()]
        })
    );
    assert_eq!(compressor(&with(&lib("gzip.compressor.v3.Gzip", ""))).request, None);
    let e =
        load(&with(&format!("{req}{}", lib("gzip.compressor.v3.Gzip", "")).replace("content_type", "content_typo")))
            .err()
            .unwrap_or_default();
    assert!(
        e.len() == 1 && e[0].starts_with(&format!("{p}.request_direction_config.common_config.content_typo")),
        "{e:?}"
    );
}

#[test]
fn per_route_disabled_and_overrides() {
    let route = |cfg: &str| {
        let routes = format!("              - match: {{prefix: \"/\"}}\n                route: {{cluster: a_svc}}\n                typed_per_filter_config:\n                  envoy.filters.http.compressor: {{\"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute, {cfg}}}\n");
        load(&v3(&routes, A_SVC))
    };
    let per = |b: Bootstrap| -> PerFilter {
        let RouteSource::Inline(rc) = &b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm")).routes else {
            panic!("not inline")
        };
        rc.virtual_hosts[0].routes[0].per_filter[0].config.clone()
    };
    let off = per(route("disabled: true").unwrap_or_else(|e| panic!("{e:?}")));
    assert_eq!(
        off,
        PerFilter::Compressor(CompressorPerRoute { enabled: Some(false), remove_accept_encoding_header: None })
    );
    let strip = per(route("overrides: {response_direction_config: {remove_accept_encoding_header: true}}")
        .unwrap_or_else(|e| panic!("{e:?}")));
    assert_eq!(
        strip,
        PerFilter::Compressor(CompressorPerRoute { enabled: Some(true), remove_accept_encoding_header: Some(true) })
    );
    let e = route("disabled: false").err().unwrap_or_default();
    assert!(e.len() == 1 && e[0].ends_with("disabled: must be true"), "{e:?}");
}
