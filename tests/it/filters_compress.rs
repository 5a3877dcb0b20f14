//! `envoy.filters.http.compressor` on loopback with a real upstream, as Envoy 1.40 answers:
//! the gzip example's filter (compressed JSON that decodes to the upstream's answer, `Vary`,
//! no `Content-Length`, stats), brotli and zstd chosen by the client's q-values among several
//! compressors, a streamed 1 MB body, trailers passing through, and `CompressorPerRoute`.

use std::io::Read;

use serde_json::{json, Value};

use crate::common::client::Client;
use crate::common::config::{bootstrap, hcm, route_config, router_filter, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::sha256;
use crate::common::upstream::{self, Upstream};

const T: &str = "type.googleapis.com/envoy.extensions.";

fn compressor(library: &str, lib: Value, extra: Value) -> Value {
    let (name, ty) = match library {
        "gzip" => ("text_optimized", "compression.gzip.compressor.v3.Gzip"),
        "brotli" => ("brotli_lib", "compression.brotli.compressor.v3.Brotli"),
        _ => ("zstd_lib", "compression.zstd.compressor.v3.Zstd"),
    };
    let mut typed = json!({ "@type": format!("{T}{ty}") });
    if let (Some(t), Value::Object(l)) = (typed.as_object_mut(), lib) {
        t.extend(l);
    }
    let mut c = json!({
        "@type": format!("{T}filters.http.compressor.v3.Compressor"),
        "compressor_library": { "name": name, "typed_config": typed },
    });
    if let (Some(c), Value::Object(e)) = (c.as_object_mut(), extra) {
        c.extend(e);
    }
    json!({ "name": "envoy.filters.http.compressor", "typed_config": c })
}

/// The gzip example's compressor: JSON of 100 bytes or more, no ETag.
fn gzip_example() -> Value {
    compressor(
        "gzip",
        json!({ "memory_level": 3, "window_bits": 10 }),
        json!({ "response_direction_config": {
            "common_config": { "min_content_length": 100, "content_type": ["application/json"] },
            "disable_on_etag_header": true,
        }}),
    )
}

fn start_with(up: &Upstream, filters: Vec<Value>, routes: Vec<Value>) -> String {
    let mut routes = routes;
    routes.push(to_cluster(json!({"prefix": "/"}), "service1"));
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], json!(routes))])));
    let mut chain = filters;
    chain.push(router_filter());
    manager["http_filters"] = json!(chain);
    bootstrap().listener_hcm("main", manager).cluster(static_cluster("service1", &[up.addr()])).yaml()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).unwrap_or_else(|e| panic!("not gzip: {e}"));
    out
}

#[tokio::test]
async fn gzip_example_compresses_json_for_clients_that_accept_it() {
    let up = upstream::http1().spawn().await;
    let legate = Legate::start(start_with(&up, vec![gzip_example()], vec![])).await;
    let c = Client::h1();
    let r = c.get_with(&legate.url("main", "/json"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("content-length"), None);
    let echo: Value = serde_json::from_slice(&gunzip(&r.body)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(echo["path"], "/json");
    // The header reaches the upstream (remove_accept_encoding_header is false).
    assert_eq!(echo["headers"]["accept-encoding"], "gzip");

    // No Accept-Encoding, or only an encoding no filter has: identity, still `Vary`.
    let plain = c.get(&legate.url("main", "/json")).await;
    assert_eq!((plain.header("content-encoding"), plain.header("vary")), (None, Some("Accept-Encoding")));
    assert_eq!(plain.echo()["path"], "/json");
    let br = c.get_with(&legate.url("main", "/json"), &[("accept-encoding", "br")]).await;
    assert_eq!(br.header("content-encoding"), None);
    // Another content type: untouched, no `Vary`.
    let bytes = c.get_with(&legate.url("main", "/bytes/5000"), &[("accept-encoding", "gzip")]).await;
    assert_eq!((bytes.header("content-encoding"), bytes.header("vary")), (None, None));
    assert_eq!(bytes.header("content-length"), Some("5000"));
    // A strong ETag disables compression (disable_on_etag_header).
    let etag = c
        .get_with(
            &legate.url("main", "/json"),
            &[("accept-encoding", "gzip"), ("x-echo-response-header", "etag: \"v1\"")],
        )
        .await;
    assert_eq!((etag.header("content-encoding"), etag.header("etag")), (None, Some("\"v1\"")));

    let p = "http.ingress_http.compressor.text_optimized.gzip.";
    let stats = legate.stats().await;
    let stat = |n: &str| stats.get(&format!("{p}{n}")).copied().unwrap_or(u64::MAX);
    assert_eq!(stat("response.compressed"), 1);
    assert_eq!(stat("response.not_compressed"), 4);
    assert_eq!(stat("header_compressor_used"), 2);
    assert_eq!(stat("no_accept_header"), 1);
    // The octet-stream answer: no compressor of the chain takes its type, so nothing is valid.
    assert_eq!(stat("header_not_valid"), 2);
    assert_eq!(stat("not_compressed_etag"), 1);
    assert_eq!(stat("request.not_compressed"), 5);
    assert!(stat("response.total_uncompressed_bytes") > stat("response.total_compressed_bytes"));
    assert_eq!(stat("response.total_compressed_bytes"), r.body.len() as u64);
}

#[tokio::test]
async fn the_client_q_values_choose_among_compressors_and_a_large_body_streams() {
    let up = upstream::http1().spawn().await;
    let octets =
        json!({ "response_direction_config": { "common_config": { "content_type": ["application/octet-stream"] } } });
    let filters = vec![
        compressor("gzip", json!({}), octets.clone()),
        compressor("brotli", json!({ "quality": 5 }), octets.clone()),
        compressor("zstd", json!({ "compression_level": 10, "enable_checksum": true }), octets),
    ];
    let legate = Legate::start(start_with(&up, filters, vec![])).await;
    let c = Client::h1();
    let url = legate.url("main", "/bytes/1000000");
    let want = sha256::pattern(1_000_000);

    let r = c.get_with(&url, &[("accept-encoding", "gzip;q=0.5, br;q=0.9, zstd;q=0.1")]).await;
    assert_eq!(r.header("content-encoding"), Some("br"));
    let mut out = Vec::new();
    brotli::Decompressor::new(&r.body[..], 4096).read_to_end(&mut out).unwrap_or_else(|e| panic!("{e}"));
    assert!(out == want, "brotli body differs");

    let r = c.get_with(&url, &[("accept-encoding", "zstd, gzip;q=0.5")]).await;
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    assert!(zstd::decode_all(&r.body[..]).ok() == Some(want.clone()), "zstd body differs");

    let r = c.get_with(&url, &[("accept-encoding", "*")]).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(gunzip(&r.body) == want, "gzip body differs");

    let stats = legate.stats().await;
    assert_eq!(stats.get("http.ingress_http.compressor.brotli_lib.brotli.response.compressed"), Some(&1));
    assert_eq!(stats.get("http.ingress_http.compressor.text_optimized.gzip.header_compressor_overshadowed"), Some(&2));
    assert_eq!(stats.get("http.ingress_http.compressor.text_optimized.gzip.header_wildcard"), Some(&1));
    assert_eq!(
        stats.get("http.ingress_http.compressor.zstd_lib.zstd.response.total_uncompressed_bytes"),
        Some(&1_000_000)
    );
}

#[tokio::test]
async fn compressor_per_route_disables_or_overrides() {
    let up = upstream::http1().spawn().await;
    let per_route = |cfg: Value| {
        let mut c = json!({ "@type": format!("{T}filters.http.compressor.v3.CompressorPerRoute") });
        if let (Some(c), Value::Object(e)) = (c.as_object_mut(), cfg) {
            c.extend(e);
        }
        json!({ "envoy.filters.http.compressor": c })
    };
    let routes = vec![
        json!({ "match": { "prefix": "/off" }, "route": { "cluster": "service1" },
                "typed_per_filter_config": per_route(json!({ "disabled": true })) }),
        json!({ "match": { "prefix": "/strip" }, "route": { "cluster": "service1" },
                "typed_per_filter_config": per_route(json!({ "overrides": { "response_direction_config": {
                    "remove_accept_encoding_header": true } } })) }),
    ];
    let legate = Legate::start(start_with(&up, vec![gzip_example()], routes)).await;
    let c = Client::h1();
    let off = c.get_with(&legate.url("main", "/off"), &[("accept-encoding", "gzip")]).await;
    assert_eq!((off.header("content-encoding"), off.header("vary")), (None, None));
    assert_eq!(off.echo()["headers"]["accept-encoding"], "gzip");
    let strip = c.get_with(&legate.url("main", "/strip"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(strip.header("content-encoding"), Some("gzip"));
    let echo: Value = serde_json::from_slice(&gunzip(&strip.body)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(echo["headers"].get("accept-encoding"), None, "removed before the upstream");
}
