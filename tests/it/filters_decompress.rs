//! `envoy.filters.http.decompressor` on loopback with a real upstream, as Envoy 1.40 answers:
//! gzip, brotli and zstd request bodies decoded on their way upstream (and the encoding
//! advertised in `Accept-Encoding`), encoded responses decoded on their way back,
//! `Cache-Control: no-transform`, disabled directions, Envoy's stats, the byte-count
//! trailers an HTTP/2 client sees, and a compression bomb bounded to Envoy's inflate ratio.

use std::io::Write;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use serde_json::{json, Value};

use crate::common::client::{request, Client};
use crate::common::config::{bootstrap, hcm, route_config, router_filter, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::sha256;
use crate::common::upstream::{self, Upstream};

const T: &str = "type.googleapis.com/envoy.extensions.";

fn decompressor(library: &str, extra: Value) -> Value {
    let (name, ty) = match library {
        "gzip" => ("basic", "compression.gzip.decompressor.v3.Gzip"),
        "brotli" => ("br_lib", "compression.brotli.decompressor.v3.Brotli"),
        _ => ("zstd_lib", "compression.zstd.decompressor.v3.Zstd"),
    };
    let mut c = json!({
        "@type": format!("{T}filters.http.decompressor.v3.Decompressor"),
        "decompressor_library": { "name": name, "typed_config": { "@type": format!("{T}{ty}") } },
    });
    if let (Some(c), Value::Object(e)) = (c.as_object_mut(), extra) {
        c.extend(e);
    }
    json!({ "name": "envoy.filters.http.decompressor", "typed_config": c })
}

fn start_with(up: &Upstream, filters: Vec<Value>) -> String {
    let routes = vec![to_cluster(json!({"prefix": "/"}), "service1")];
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], json!(routes))])));
    let mut chain = filters;
    chain.push(router_filter());
    manager["http_filters"] = json!(chain);
    bootstrap().listener_hcm("main", manager).cluster(static_cluster("service1", &[up.addr()])).yaml()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    e.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    }
    out
}

/// `n` bytes that compress about 2:1, far from the 100:1 that counts as a bomb (the pattern
/// of `sha256::pattern` compresses past it).
fn text(n: usize) -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            b"abcdefghijklmnop"[(x >> 16) as usize % 16]
        })
        .collect()
}

fn post(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> hyper::Request<Full<Bytes>> {
    let mut b = request(Method::POST, url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body))).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn gzip_requests_and_responses_are_decoded_as_envoy() {
    let up = upstream::http1().spawn().await;
    let legate = Legate::start(start_with(&up, vec![decompressor("gzip", json!({}))])).await;
    let c = Client::h1();
    let data = text(300_000);

    // The request: decoded on its way, its first coding taken off, no content-length.
    let req = post(
        &legate.url("main", "/json"),
        gzip(&data),
        &[("content-encoding", "GZIP, identity"), ("accept-encoding", "br;q=0.3, gzip;q=0.5")],
    );
    let echo = c.send(req).await.echo();
    assert_eq!(echo["body_len"], 300_000);
    assert_eq!(echo["body_sha256"], sha256::hex(&data));
    assert_eq!(echo["headers"]["content-encoding"], "identity");
    // Never the encoded length (legate may frame a body it read whole while connecting).
    assert!(echo["headers"].get("content-length").is_none_or(|l| l == "300000"), "{echo}");
    // Responses are decoded, so the encoding is advertised (Envoy's spelling).
    assert_eq!(echo["headers"]["accept-encoding"], "br;q=0.3,gzip");
    let plain = c.get(&legate.url("main", "/json")).await.echo();
    assert_eq!(plain["headers"]["accept-encoding"], "gzip");

    // The response: the upstream echoes gzip bytes as `content-encoding: gzip`.
    let encoded = gzip(&data);
    let r = c
        .send(post(
            &legate.url("main", "/echo-body"),
            encoded.clone(),
            &[("x-echo-response-header", "content-encoding: gzip")],
        ))
        .await;
    assert_eq!((r.header("content-encoding"), r.header("content-length")), (None, None));
    assert!(r.body == data, "the response decodes to the upstream's bytes");

    // `no-transform` keeps it as it is.
    let r = c
        .send(post(
            &legate.url("main", "/echo-body"),
            encoded.clone(),
            &[
                ("x-echo-response-header", "content-encoding: gzip"),
                ("x-echo-response-header", "cache-control: no-transform"),
            ],
        ))
        .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.body == encoded);

    let p = "http.ingress_http.decompressor.basic.gzip.";
    let stats = legate.stats().await;
    let stat = |n: &str| stats.get(&format!("{p}{n}")).copied().unwrap_or(u64::MAX);
    // Bodiless requests count in neither request stat, as in Envoy.
    assert_eq!((stat("request.decompressed"), stat("request.not_decompressed")), (1, 2));
    assert_eq!((stat("response.decompressed"), stat("response.not_decompressed")), (1, 3));
    assert_eq!(stat("request.total_uncompressed_bytes"), 300_000);
    assert_eq!(stat("request.total_compressed_bytes"), encoded.len() as u64);
    assert_eq!(stat("response.total_compressed_bytes"), encoded.len() as u64);
    assert_eq!(stat("decompressor_library.zlib_data_error"), 0);
}

#[tokio::test]
async fn brotli_and_zstd_decode_and_an_h2_client_sees_the_byte_trailers() {
    let up = upstream::http1().spawn().await;
    let filters = vec![decompressor("brotli", json!({})), decompressor("zstd", json!({}))];
    let legate = Legate::start(start_with(&up, filters)).await;
    let c = Client::h2c();
    let data = text(100_000);

    let echo = c.send(post(&legate.url("main", "/json"), brotli(&data), &[("content-encoding", "br")])).await.echo();
    assert_eq!(echo["body_sha256"], sha256::hex(&data));
    assert_eq!(echo["headers"]["accept-encoding"], "br,zstd");
    let zst = zstd::encode_all(&data[..], 3).unwrap_or_default();
    let echo = c.send(post(&legate.url("main", "/json"), zst.clone(), &[("content-encoding", "zstd")])).await.echo();
    assert_eq!(echo["body_sha256"], sha256::hex(&data));

    let r = c
        .send(post(
            &legate.url("main", "/echo-body"),
            zst.clone(),
            &[("x-echo-response-header", "content-encoding: zstd")],
        ))
        .await;
    assert!(r.body == data);
    let trailers = r.trailers.unwrap_or_default();
    let t = |n: &str| trailers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(t("x-envoy-decompressor-zstd_lib-compressed-bytes"), Some(zst.len().to_string()));
    assert_eq!(t("x-envoy-decompressor-zstd_lib-uncompressed-bytes"), Some("100000".to_string()));

    // A corrupt body: the library's error counter, and what decoded (nothing) goes on.
    let echo =
        c.send(post(&legate.url("main", "/json"), b"not brotli at all".to_vec(), &[("content-encoding", "br")])).await;
    assert_eq!(echo.echo()["body_len"], 0);
    let stats = legate.stats().await;
    assert_eq!(stats.get("http.ingress_http.decompressor.br_lib.brotli.decompressor_library.brotli_error"), Some(&1));
    assert_eq!(stats.get("http.ingress_http.decompressor.zstd_lib.zstd.response.decompressed"), Some(&1));
    assert_eq!(stats.get("http.ingress_http.decompressor.zstd_lib.zstd.request.decompressed"), Some(&1));
}

#[tokio::test]
async fn disabled_directions_pass_bodies_and_headers_through() {
    let up = upstream::http1().spawn().await;
    let off = json!({ "enabled": { "default_value": false, "runtime_key": "off" } });
    let filters = vec![decompressor(
        "gzip",
        json!({
            "request_direction_config": { "common_config": off, "advertise_accept_encoding": true },
            "response_direction_config": { "common_config": off },
        }),
    )];
    let legate = Legate::start(start_with(&up, filters)).await;
    let c = Client::h1();
    let encoded = gzip(b"hello");
    let echo =
        c.send(post(&legate.url("main", "/json"), encoded.clone(), &[("content-encoding", "gzip")])).await.echo();
    assert_eq!(
        (echo["body_len"].as_u64(), echo["headers"]["content-encoding"].as_str()),
        (Some(encoded.len() as u64), Some("gzip"))
    );
    // Responses are not decoded: nothing is advertised.
    assert_eq!(echo["headers"].get("accept-encoding"), None);
    let stats = legate.stats().await;
    assert_eq!(stats.get("http.ingress_http.decompressor.basic.gzip.request.not_decompressed"), Some(&1));
}

#[tokio::test]
async fn a_compression_bomb_is_bounded_by_the_inflate_ratio() {
    let up = upstream::http1().spawn().await;
    let lib = json!({ "@type": format!("{T}compression.gzip.decompressor.v3.Gzip"), "max_inflate_ratio": 10 });
    let mut f = decompressor("gzip", json!({}));
    f["typed_config"]["decompressor_library"]["typed_config"] = lib;
    let legate = Legate::start(start_with(&up, vec![f])).await;
    let c = Client::h1();
    // 64 MiB of zeros in ~64 KiB: a ratio of ~1000.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let echo = c.send(post(&legate.url("main", "/json"), bomb.clone(), &[("content-encoding", "gzip")])).await.echo();
    let got = echo["body_len"].as_u64().unwrap_or(u64::MAX);
    // Ten times each frame at most (plus one step), far short of the 64 MiB.
    assert!(got > 0 && got <= 10 * bomb.len() as u64 + 64 * 1024, "decoded {got} of a {}-byte bomb", bomb.len());
    let stats = legate.stats().await;
    assert_eq!(stats.get("http.ingress_http.decompressor.basic.gzip.decompressor_library.zlib_data_error"), Some(&1));
    // Legate is still answering.
    assert_eq!(c.get(&legate.url("main", "/json")).await.status, 200);
}

/// A gzip stream made with `window_bits` (the gzip example's decompressor inflates with 9).
fn gzip_window(data: &[u8], window_bits: u8) -> Vec<u8> {
    let c = flate2::Compress::new_gzip(flate2::Compression::default(), window_bits);
    let mut e = flate2::write::ZlibEncoder::new_with_compress(Vec::new(), c);
    e.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    e.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// Envoy's gzip sandbox (`tests/fixtures/examples/gzip.yaml`, its `envoy.yaml` on loopback):
/// JSON answers compressed for clients that accept gzip, admin's Prometheus text compressed
/// through the second listener, and gzip uploads decoded before the service sees them (a
/// stream made with a larger window than the filter's 9 bits breaks off with a data error, as
/// in Envoy 1.40).
#[tokio::test]
async fn the_gzip_sandbox_compresses_answers_and_decodes_uploads() {
    let up = upstream::http1().spawn().await;
    let ports: Vec<u16> = crate::common::free_ports(3);
    let yaml = include_str!("../fixtures/examples/gzip.yaml")
        .replace("${LISTEN_PORT}", &ports[0].to_string())
        .replace("${STATS_PORT}", &ports[1].to_string())
        .replace("${ADMIN_PORT}", &ports[2].to_string())
        .replace("${SERVICE_PORT}", &up.port().to_string());
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    let base = format!("http://127.0.0.1:{}", ports[0]);

    let r = c.get_with(&format!("{base}/file.json"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let plain = c.get(&format!("{base}/file.json")).await;
    assert_eq!(plain.header("content-encoding"), None);
    let octets = c.get_with(&format!("{base}/bytes/5000"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(octets.header("content-encoding"), None, "only application/json is compressed");

    let prom =
        c.get_with(&format!("http://127.0.0.1:{}/stats/prometheus", ports[1]), &[("accept-encoding", "gzip")]).await;
    assert_eq!((prom.status.as_u16(), prom.header("content-encoding")), (200, Some("gzip")));

    let upload: Vec<u8> =
        (0..400).flat_map(|i| format!("{{\"id\":{i},\"name\":\"item {i}\"}},").into_bytes()).collect();
    let echo =
        c.send(post(&format!("{base}/upload"), gzip_window(&upload, 9), &[("content-encoding", "gzip")])).await.echo();
    assert_eq!(echo["body_sha256"], sha256::hex(&upload));
    assert_eq!(echo["headers"].get("content-encoding"), None);
    // Distances beyond 512 bytes back: the 9-bit window cannot follow them.
    let wide: Vec<u8> = (0..4000u32).flat_map(|i| (i % 997).to_string().into_bytes()).collect();
    let echo = c
        .send(post(
            &format!("{base}/upload"),
            gzip_window(&[&wide[..], &wide[..]].concat(), 15),
            &[("content-encoding", "gzip")],
        ))
        .await
        .echo();
    assert!(echo["body_len"].as_u64().unwrap_or(u64::MAX) < 2 * wide.len() as u64);

    let stats = legate.stats().await;
    let stat = |n: &str| stats.get(n).copied().unwrap_or(u64::MAX);
    assert_eq!(stat("http.ingress_http.decompressor.upload.gzip.request.decompressed"), 2);
    assert_eq!(stat("http.ingress_http.decompressor.upload.gzip.decompressor_library.zlib_data_error"), 1);
    // The response direction is disabled: nothing is advertised, every answer counts as not decoded.
    assert_eq!(stat("http.ingress_http.decompressor.upload.gzip.response.not_decompressed"), 5);
    assert_eq!(stat("http.ingress_http.compressor.text_optimized.gzip.response.compressed"), 2);
}

/// The compressor's `request_direction_config`: request bodies of an allowed type and length
/// are compressed on their way upstream; encoded, short or other bodies pass as they are.
#[tokio::test]
async fn request_bodies_are_compressed_with_request_direction_config() {
    let up = upstream::http1().spawn().await;
    let compressor = json!({ "name": "envoy.filters.http.compressor", "typed_config": {
        "@type": format!("{T}filters.http.compressor.v3.Compressor"),
        "compressor_library": { "name": "up", "typed_config": { "@type": format!("{T}compression.gzip.compressor.v3.Gzip") } },
        "request_direction_config": { "common_config": { "min_content_length": 100, "content_type": ["application/json"] } },
    }});
    let legate = Legate::start(start_with(&up, vec![compressor])).await;
    let c = Client::h1();
    let data: Vec<u8> = (0..5000).flat_map(|i| format!("{{\"n\":{i}}},").into_bytes()).collect();
    let json_ct = [("content-type", "application/json")];

    // The upstream echoes what it got: gzip of the client's bytes.
    let r = c.send(post(&legate.url("main", "/echo-body"), data.clone(), &json_ct)).await;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut out)
        .unwrap_or_else(|e| panic!("not gzip: {e}"));
    assert!(out == data, "the upstream got the body compressed");
    let echo = c.send(post(&legate.url("main", "/json"), data.clone(), &json_ct)).await.echo();
    assert_eq!(echo["headers"]["content-encoding"], "gzip");
    assert_eq!(echo["headers"].get("content-length"), None);
    assert!(echo["body_len"].as_u64().unwrap_or(u64::MAX) < data.len() as u64);

    // Too short, another type, already encoded: untouched.
    let short = c.send(post(&legate.url("main", "/json"), b"{}".to_vec(), &json_ct)).await.echo();
    assert_eq!((short["body_len"].as_u64(), short["headers"].get("content-encoding")), (Some(2), None));
    let other =
        c.send(post(&legate.url("main", "/json"), data.clone(), &[("content-type", "text/plain")])).await.echo();
    assert_eq!(other["body_len"].as_u64(), Some(data.len() as u64));
    let encoded = c
        .send(post(
            &legate.url("main", "/json"),
            data.clone(),
            &[("content-type", "application/json"), ("content-encoding", "br")],
        ))
        .await
        .echo();
    assert_eq!(
        (encoded["body_len"].as_u64(), encoded["headers"]["content-encoding"].as_str()),
        (Some(data.len() as u64), Some("br"))
    );

    let p = "http.ingress_http.compressor.up.gzip.request.";
    let stats = legate.stats().await;
    let stat = |n: &str| stats.get(&format!("{p}{n}")).copied().unwrap_or(u64::MAX);
    assert_eq!((stat("compressed"), stat("not_compressed"), stat("content_length_too_small")), (2, 3, 1));
    assert_eq!(stat("total_uncompressed_bytes"), 2 * data.len() as u64);
}
