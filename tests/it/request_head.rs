//! Request heads as Envoy's HTTP/1 codec and connection manager take them (the differential
//! fuzzer's findings): which headers go upstream, and the heads refused before routing with
//! Envoy's status, body, response flag and details, nothing sent upstream.

use serde_json::{json, Value};

use crate::access_log::{file_log, lines, log_dir};
use crate::common::client::raw;
use crate::common::config::{bootstrap, hcm, route_config, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

async fn start(up: &Upstream, log: &std::path::Path) -> Legate {
    let routes = json!([to_cluster(json!({"prefix": "/"}), "service1")]);
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    let format = "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n";
    manager["access_log"] = json!([file_log(log, Some(json!({ "text_format": format })))]);
    Legate::start(bootstrap().listener_hcm("main", manager).cluster(static_cluster("service1", &[up.addr()])).yaml())
        .await
}

/// The upstream's view of one raw request that legate forwarded.
async fn forwarded(legate: &Legate, head: &str) -> Value {
    let r = raw(legate.listener("main"), head.as_bytes()).await.expect("an answer");
    assert_eq!(r.status, 200, "{head:?}: {}", r.head);
    serde_json::from_slice::<Value>(&r.body).expect("the echo's JSON")["headers"].clone()
}

#[tokio::test]
async fn headers_forwarded_as_envoy_forwards_them() {
    let up = upstream::http1().spawn().await;
    let (_dir, log) = log_dir();
    let legate = start(&up, &log).await;
    let get = |extra: &str| format!("GET / HTTP/1.1\r\nhost: example.com\r\n{extra}\r\n");

    // Not an edge request (no use_remote_address): only Envoy's list of x-envoy-* goes.
    let h = forwarded(
        &legate,
        &get("x-envoy-original-path: /orig\r\nx-envoy-decorator-operation: op\r\nx-envoy-retry-on: 5xx\r\n\
              x-envoy-max-retries: 3\r\nx-envoy-foo: bar\r\nx-envoy-internal: true\r\n"),
    )
    .await;
    assert_eq!(h["x-envoy-original-path"], "/orig");
    assert_eq!(h["x-envoy-decorator-operation"], "op");
    assert_eq!(h["x-envoy-foo"], "bar");
    assert!(h.get("x-envoy-retry-on").is_none() && h.get("x-envoy-max-retries").is_none(), "{h}");
    assert!(h.get("x-envoy-internal").is_none(), "{h}");

    let h = forwarded(&legate, &get("expect: foo\r\n")).await;
    assert_eq!(h["expect"], "foo");
    let h = forwarded(&legate, &get("te: gzip\r\nte: trailers\r\n")).await;
    assert_eq!(h["te"], "trailers");
    let h =
        forwarded(&legate, &get("connection: Upgrade\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAA\r\n")).await;
    assert!(h.get("http2-settings").is_none() && h.get("upgrade").is_none(), "{h}");
    // Upgrade that Connection does not name is no upgrade: stripped and proxied.
    let h = forwarded(&legate, &get("upgrade: websocket\r\n")).await;
    assert!(h.get("upgrade").is_none(), "{h}");

    for method in ["POST", "PUT", "PATCH", "OPTIONS"] {
        let h = forwarded(&legate, &format!("{method} / HTTP/1.1\r\nhost: example.com\r\n\r\n")).await;
        assert_eq!(h["content-length"], "0", "{method}");
    }
    for method in ["GET", "DELETE"] {
        let h = forwarded(&legate, &format!("{method} / HTTP/1.1\r\nhost: example.com\r\n\r\n")).await;
        assert!(h.get("content-length").is_none(), "{method}: {h}");
    }
}

#[tokio::test]
async fn malformed_heads_get_envoys_answers_and_never_reach_the_upstream() {
    let up = upstream::http1().spawn().await;
    let (_dir, log) = log_dir();
    let legate = start(&up, &log).await;
    let cases: &[(&str, u16, &str, &str)] = &[
        ("CONNECT / HTTP/1.1\r\nhost: example.com\r\n\r\n", 400, "Bad Request", "400 DPE http1.invalid_url"),
        ("CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n", 404, "", "404 NR route_not_found"),
        (
            "POST / HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
            "Not Implemented",
            "501 DPE http1.invalid_transfer_encoding",
        ),
        (
            "POST / HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            501,
            "Not Implemented",
            "501 DPE http1.invalid_transfer_encoding",
        ),
        ("GET / HTTP/1.1\r\nhost: e{ample.com\r\n\r\n", 400, "Bad Request", "400 DPE http.invalid_authority"),
        ("GET / HTTP/1.1\r\nhost: a.com, b.com\r\n\r\n", 400, "Bad Request", "400 DPE http.invalid_authority"),
        ("GET $ HTTP/1.1\r\nhost: example.com\r\n\r\n", 400, "Bad Request", "400 DPE http1.codec_error"),
        ("GET * HTTP/1.1\r\nhost: example.com\r\n\r\n", 400, "Bad Request", "400 DPE http1.invalid_url"),
        ("OPTIONS * HTTP/1.1\r\nhost: example.com\r\n\r\n", 404, "", "404 - absolute_path_rejected"),
    ];
    for (head, status, body, _) in cases {
        let r = raw(legate.listener("main"), head.as_bytes()).await.expect("an answer");
        assert_eq!(r.status, *status, "{head:?}: {}", r.head);
        assert_eq!(String::from_utf8_lossy(&r.body), *body, "{head:?}");
        if *status != 404 || head.starts_with("CONNECT") {
            assert_eq!(r.header("connection").as_deref(), Some("close"), "{head:?}: {}", r.head);
        }
    }
    let want: Vec<&str> = cases.iter().map(|c| c.3).collect();
    assert_eq!(lines(&log, want.len()).await, want);
    assert_eq!(up.requests(), 0, "nothing reached the upstream");

    // A malformed version is the codec's 400, a well-formed other one 426.
    let r = raw(legate.listener("main"), b"GET / HTTP/1.01\r\nhost: example.com\r\n\r\n").await.expect("an answer");
    assert_eq!(r.status, 400, "{}", r.head);
    let r = raw(legate.listener("main"), b"GET / HTTP/1.2\r\nhost: example.com\r\n\r\n").await.expect("an answer");
    assert_eq!(r.status, 426, "{}", r.head);
}

/// Heads Envoy's codec judges whole before it answers (the differential fuzzer's leftovers):
/// hyper refuses some transfer-codings and versions at once, or passes repeated lengths; legate
/// answers and logs each as Envoy 1.40 does (checked against it), the codec's refusals with no
/// method, path or request id, the connection manager's fragment with the target as received.
#[tokio::test]
async fn heads_get_envoys_answer_in_envoys_order_and_its_log_line() {
    let up = upstream::http1().spawn().await;
    let (_dir, log) = log_dir();
    let routes = json!([to_cluster(json!({"prefix": "/"}), "service1")]);
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    let format = "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% \
                  %RESPONSE_CODE_DETAILS% %REQ(X-REQUEST-ID)% %REQ(:AUTHORITY)%\n";
    manager["access_log"] = json!([file_log(&log, Some(json!({ "text_format": format })))]);
    let legate = Legate::start(
        bootstrap().listener_hcm("main", manager).cluster(static_cluster("service1", &[up.addr()])).yaml(),
    )
    .await;
    let te = "- - HTTP/1.1 501 DPE http1.invalid_transfer_encoding - -";
    let codec = "- - HTTP/1.1 400 DPE http1.codec_error - -";
    let version = "- - HTTP/1.1 426 DPE low_version - -";
    let cases: &[(&str, u16, &str, &str)] = &[
        ("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: identity\r\n\r\nhello", 501, "Not Implemented", te),
        ("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 501, "Not Implemented", te),
        ("GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n", 400, "Bad Request", codec),
        // The framing headers before the version, the head's syntax before both.
        ("GET / HTTP/1.0\r\nhost: a\r\ntransfer-encoding: identity\r\n\r\n", 501, "Not Implemented", te),
        ("GET / HTTP/1.0\r\nho st: a\r\n\r\n", 400, "Bad Request", codec),
        ("GET / HTTP/9.9\r\nho st: a\r\n\r\n", 400, "Bad Request", codec),
        ("GET / HTTP/9.9\r\nhost: a\r\n\r\n", 426, "Upgrade Required", version),
        // A request line longer than the bytes hyper reads first to tell h2 from HTTP/1.
        ("GET /a/b?x=1&y=2&z=3 HTTP/2.0\r\nhost: a\r\n\r\n", 426, "Upgrade Required", version),
        ("GET / HTTP/1.0\r\nhost: a\r\n\r\n", 426, "Upgrade Required", version),
        (
            "POST /p HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            "Bad Request",
            "- - HTTP/1.1 400 DPE http1.content_length_and_chunked_not_allowed - -",
        ),
        (
            "GET /a?b#frag HTTP/1.1\r\nhost: a\r\n\r\n",
            400,
            "",
            "GET /a?b#frag HTTP/1.1 400 - path_normalization_failed - a",
        ),
    ];
    for (i, (head, status, body, logged)) in cases.iter().enumerate() {
        let r = raw(legate.listener("main"), head.as_bytes()).await.expect("an answer");
        assert!(r.head.starts_with(&format!("HTTP/1.1 {status} ")), "{head:?}: {}", r.head);
        assert_eq!(String::from_utf8_lossy(&r.body), *body, "{head:?}");
        assert_eq!(r.header("connection").as_deref(), Some("close"), "{head:?}: {}", r.head);
        let got = lines(&log, i + 1).await;
        assert_eq!(got.last().map(String::as_str), Some(*logged), "{head:?}");
    }
    assert_eq!(up.requests(), 0, "nothing reached the upstream");
}
