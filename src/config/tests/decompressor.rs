//! `envoy.filters.http.decompressor`: the libraries with Envoy's defaults and ranges, both
//! directions, and the fields legate refuses, by name.

use super::{load_text, messages, v3, A_SVC, ROUTE_A};
use crate::config::compressor::*;
use crate::config::filters::HttpFilterKind;
use crate::config::model::Bootstrap;
use crate::runtime::FlagKey;

const ROUTER: &str = "          - name: envoy.filters.http.router\n";
const P: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config";

fn with(ty: &str, lib_fields: &str, filter: &str) -> String {
    let f = format!(
        "          - name: envoy.filters.http.decompressor\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor\n              decompressor_library:\n                name: lib\n                typed_config:\n                  \"@type\": type.googleapis.com/envoy.extensions.compression.{ty}\n{lib_fields}{filter}"
    );
    v3(ROUTE_A, A_SVC).replace(ROUTER, &format!("{f}{ROUTER}"))
}

fn load(text: &str) -> Result<Bootstrap, Vec<String>> {
    load_text("d.yaml", text).map_err(|e| messages(&e))
}

fn decompressor(text: &str) -> DecompressorConfig {
    let b = load(text).unwrap_or_else(|e| panic!("{e:?}"));
    let hcm = b.listeners[0].hcms().next().unwrap_or_else(|| panic!("no hcm"));
    match &hcm.http_filters[0].kind {
        HttpFilterKind::Decompressor(c) => (**c).clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn libraries_and_directions_with_envoy_defaults() {
    let on = DecompressDirection { enabled: FlagKey::fixed(true), ignore_no_transform_header: false };
    let c = decompressor(&with("gzip.decompressor.v3.Gzip", "", ""));
    assert_eq!(c.library, DecompressorLibrary::Gzip { window_bits: 15, chunk_size: 4096, max_inflate_ratio: 100 });
    assert_eq!((c.request, c.response, c.advertise_accept_encoding), (on.clone(), on, true));
    let c = decompressor(&with(
        "gzip.decompressor.v3.Gzip",
        "                  window_bits: 10\n                  chunk_size: 8192\n                  max_inflate_ratio: 5\n",
        "              request_direction_config: {common_config: {ignore_no_transform_header: true}, advertise_accept_encoding: false}\n              response_direction_config: {common_config: {enabled: {default_value: false, runtime_key: k}}}\n",
    ));
    assert_eq!(c.library, DecompressorLibrary::Gzip { window_bits: 10, chunk_size: 8192, max_inflate_ratio: 5 });
    assert_eq!(c.request, DecompressDirection { enabled: FlagKey::fixed(true), ignore_no_transform_header: true });
    assert_eq!(
        (c.response.enabled, c.advertise_accept_encoding),
        (FlagKey { default_value: false, runtime_key: Some("k".into()) }, false)
    );
    let c = decompressor(&with("brotli.decompressor.v3.Brotli", "                  chunk_size: 65536\n", ""));
    assert_eq!(c.library, DecompressorLibrary::Brotli { chunk_size: 65536 });
    let c = decompressor(&with("zstd.decompressor.v3.Zstd", "", ""));
    assert_eq!(c.library, DecompressorLibrary::Zstd { chunk_size: 4096 });
}

#[test]
fn out_of_range_and_unsupported_fields_are_refused_by_name() {
    let lib = format!("{P}.decompressor_library.typed_config");
    let e =
        load(&with("gzip.decompressor.v3.Gzip", "                  window_bits: 16\n", "")).err().unwrap_or_default();
    assert_eq!(e, [format!("{lib}.window_bits: value 16 must be between 9 and 15")]);
    let e = load(&with("gzip.decompressor.v3.Gzip", "                  max_inflate_ratio: 2000\n", ""))
        .err()
        .unwrap_or_default();
    assert_eq!(e, [format!("{lib}.max_inflate_ratio: value 2000 must be between 1 and 1032")]);
    let e = load(&with("zstd.decompressor.v3.Zstd", "                  dictionaries: [{inline_string: x}]\n", ""))
        .err()
        .unwrap_or_default();
    assert!(e.len() == 1 && e[0].starts_with(&format!("{lib}.dictionaries: ")), "{e:?}");
    let e =
        load(&with("brotli.decompressor.v3.Brotli", "                  disable_ring_buffer_reallocation: true\n", ""))
            .err()
            .unwrap_or_default();
    assert!(e.len() == 1 && e[0].starts_with(&format!("{lib}.disable_ring_buffer_reallocation: ")), "{e:?}");
}
