//! Issue 16's route fields, each compared with Envoy 1.40 on the same config: header
//! `range_match` and `treat_missing_header_as_empty`, a redirect's `regex_rewrite`, a virtual
//! host's `require_tls` and a route's `tls_context`, and a direct response's `body_format`.

use serde_json::{json, Value};

use crate::common::client::raw;
use crate::common::config::{bootstrap, direct, hcm, route_config, vhost};
use crate::common::legate::Legate;
use crate::common::tls::{connect, get_h1, Ca, ClientOpts};

/// A raw HTTP/1.1 GET (so a header can be repeated): status, body and `location`.
async fn get(legate: &Legate, host: &str, path: &str, headers: &[&str]) -> (u16, String, Option<String>) {
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let r = raw(legate.listener("main"), req.as_bytes()).await.expect("a response");
    (r.status, String::from_utf8_lossy(&r.body).into_owned(), r.header("location"))
}

/// `range_match` reads the value as absl's `SimpleAtoi` does (spaces and `+` allowed, no
/// hex, no trailing text), half open; a repeated header matches when any one value does
/// (`15` and `26` is in [10, 20)); `invert_match` flips a present header only. With
/// `treat_missing_header_as_empty` a missing header is the empty value, which an inverted
/// matcher then takes, and which `present_match` counts as present. Envoy 1.40 answered
/// each of these the same.
#[tokio::test]
async fn header_ranges_and_missing_headers_match_as_envoy() {
    let hm = |prefix: &str, m: Value, body: &str| direct(json!({"prefix": prefix, "headers": [m]}), body);
    let routes = json!([
        hm("/range", json!({"name": "x-n", "range_match": {"start": 10, "end": "20"}}), "range"),
        hm("/inv", json!({"name": "x-n", "range_match": {"start": 10, "end": 20}, "invert_match": true}), "inv"),
        hm(
            "/empty",
            json!({"name": "x-e", "string_match": {"exact": ""}, "treat_missing_header_as_empty": true}),
            "empty"
        ),
        hm(
            "/einv",
            json!({"name": "x-e", "string_match": {"exact": "x"}, "invert_match": true,
                   "treat_missing_header_as_empty": true}),
            "einv"
        ),
        hm("/sinv", json!({"name": "x-e", "string_match": {"exact": "x"}, "invert_match": true}), "sinv"),
        hm("/pm", json!({"name": "x-e", "present_match": false, "treat_missing_header_as_empty": true}), "pm"),
        hm("/pt", json!({"name": "x-e", "present_match": true, "treat_missing_header_as_empty": true}), "pt"),
        hm("/ab", json!({"name": "x-e", "string_match": {"exact": "a,b"}}), "ab"),
        direct(json!({"prefix": "/"}), "none"),
    ]);
    let legate = Legate::start(bootstrap().routes(routes).yaml()).await;
    let body = |r: (u16, String, Option<String>)| r.1;
    for (headers, range, inv) in [
        (&[][..], "none", "none"),
        (&["x-n: 15"][..], "range", "none"),
        (&["x-n: 10"][..], "range", "none"),
        (&["x-n: 20"][..], "none", "inv"),
        (&["x-n: +15"][..], "range", "none"),
        (&["x-n:   15  "][..], "range", "none"),
        (&["x-n: 15_"][..], "none", "inv"),
        (&["x-n: -5"][..], "none", "inv"),
        (&["x-n: 0x10"][..], "none", "inv"),
        (&["x-n: 1.5"][..], "none", "inv"),
        (&["x-n:"][..], "none", "inv"),
        (&["x-n: 15,x"][..], "none", "inv"),
        (&["x-n: 25", "x-n: 16"][..], "range", "none"),
        (&["x-n: 15", "x-n: 26"][..], "range", "none"),
        (&["x-n: 25", "x-n: 26"][..], "none", "inv"),
    ] {
        assert_eq!(body(get(&legate, "a", "/range", headers).await), range, "range {headers:?}");
        assert_eq!(body(get(&legate, "a", "/inv", headers).await), inv, "inv {headers:?}");
    }
    // Path, then (missing, empty, "x", "y").
    for (path, want) in [
        ("/empty", ["empty", "empty", "none", "none"]),
        ("/einv", ["einv", "einv", "none", "einv"]),
        ("/sinv", ["none", "sinv", "none", "sinv"]),
        ("/pm", ["none", "none", "none", "none"]),
        ("/pt", ["pt", "pt", "pt", "pt"]),
    ] {
        for (headers, want) in
            [(&[][..], want[0]), (&["x-e:"][..], want[1]), (&["x-e: x"][..], want[2]), (&["x-e: y"][..], want[3])]
        {
            assert_eq!(body(get(&legate, "a", path, headers).await), want, "{path} {headers:?}");
        }
    }
    // Each value on its own: `x` twice is an exact `x` (so not inverted), `a` and `b` are
    // not `a,b`.
    assert_eq!(body(get(&legate, "a", "/sinv", &["x-e: x", "x-e: x"]).await), "none");
    assert_eq!(body(get(&legate, "a", "/ab", &["x-e: a", "x-e: b"]).await), "none");
    assert_eq!(body(get(&legate, "a", "/ab", &["x-e: a,b"]).await), "ab");
}

/// A redirect's `regex_rewrite` rewrites the path without its query, every match
/// (`GlobalReplace`), with `\1` groups; the query follows unless `strip_query`.
#[tokio::test]
async fn redirect_regex_rewrite_rewrites_the_path_as_envoy() {
    let routes = json!([
        {"match": {"prefix": "/re/"},
         "redirect": {"regex_rewrite": {"pattern": {"regex": "^/re/(\\w+)"}, "substitution": "/new/\\1"}}},
        {"match": {"prefix": "/rs/"},
         "redirect": {"regex_rewrite": {"pattern": {"regex": "o"}, "substitution": "0"},
                      "strip_query": true, "host_redirect": "h.example", "response_code": "FOUND"}},
    ]);
    let legate = Legate::start(bootstrap().routes(routes).yaml()).await;
    for (path, status, location) in [
        ("/re/abc/def?q=1", 301, "http://a/new/abc/def?q=1"),
        ("/re/abc", 301, "http://a/new/abc"),
        ("/re/", 301, "http://a/re/"),
        ("/rs/foo/boo?x=o", 302, "http://h.example/rs/f00/b00"),
    ] {
        let (s, _, loc) = get(&legate, "a", path, &[]).await;
        assert_eq!((s, loc.as_deref()), (status, Some(location)), "{path}");
    }
}

/// `require_tls`: `ALL` and `EXTERNAL_ONLY` answer a plaintext request with 301 to
/// `https://` on the same host and path (query kept, empty body), unless the request says
/// `x-forwarded-proto: https` (kept when `use_remote_address` is off) or, for
/// `EXTERNAL_ONLY`, comes from an internal address (`x-envoy-internal` from an external
/// client is removed first, so it does not help). A TLS connection is served.
#[tokio::test]
async fn require_tls_redirects_plaintext_as_envoy() {
    let ca = Ca::new("require tls ca");
    let server = ca.server(&["localhost"], crate::common::tls::Alg::Ecdsa);
    let vhosts = json!([
        {"name": "t", "domains": ["t"], "require_tls": "ALL", "routes": [direct(json!({"prefix": "/"}), "t")],
         "response_headers_to_add": [{"header": {"key": "x-vh", "value": "1"}}]},
        {"name": "x", "domains": ["x"], "require_tls": "EXTERNAL_ONLY", "routes": [direct(json!({"prefix": "/"}), "x")]},
        vhost("n", &["n"], json!([direct(json!({"prefix": "/"}), "n")])),
    ]);
    let plain = hcm(route_config(vhosts.clone()));
    let mut edge = hcm(route_config(vhosts.clone()));
    edge["use_remote_address"] = json!(true);
    edge["internal_address_config"] = json!({"cidr_ranges": [{"address_prefix": "127.0.0.0", "prefix_len": 8}]});
    let mut boot = bootstrap().listener_hcm("main", plain).listener_hcm("internal", edge).value();
    boot["static_resources"]["listeners"].as_array_mut().expect("listeners").push(json!({
        "name": "tls",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "filters": [{ "name": "hcm", "typed_config": hcm(route_config(vhosts)) }],
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": { "tls_certificates": [{
                    "certificate_chain": { "inline_string": server.cert },
                    "private_key": { "inline_string": server.key },
                }] },
            } },
        }],
    }));
    let legate = Legate::start(serde_yaml::to_string(&boot).expect("yaml")).await;
    for host in ["t", "x"] {
        let (s, body, loc) = get(&legate, host, "/p?q=1", &[]).await;
        assert_eq!((s, body.as_str(), loc), (301, "", Some(format!("https://{host}/p?q=1"))), "{host}");
        let (s, body, _) = get(&legate, host, "/p", &["x-forwarded-proto: https"]).await;
        assert_eq!((s, body.as_str()), (200, host), "{host} behind a TLS proxy");
        let (s, _, loc) = get(&legate, host, "/p", &["x-envoy-internal: true"]).await;
        assert_eq!((s, loc), (301, Some(format!("https://{host}/p"))), "{host}: x-envoy-internal from outside");
        let (s, _, loc) = get(&legate, &format!("{host}:8080"), "/", &[]).await;
        assert_eq!((s, loc), (404, None), "{host}:8080 is not the virtual host's domain");
    }
    assert_eq!(get(&legate, "n", "/p", &[]).await.0, 200, "require_tls unset");
    // Envoy's redirect carries none of the virtual host's header operations.
    let r = raw(legate.listener("main"), b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").await;
    assert_eq!(r.expect("a response").header("x-vh"), None);
    let r = raw(
        legate.listener("main"),
        b"GET / HTTP/1.1\r\nhost: t\r\nx-forwarded-proto: https\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(r.await.expect("a response").header("x-vh").as_deref(), Some("1"), "served: the vhost's headers");

    // An internal client: EXTERNAL_ONLY serves it, ALL still redirects.
    let internal = |host: &'static str| {
        let req = format!("GET /p HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        let addr = legate.listener("internal");
        async move { raw(addr, req.as_bytes()).await.expect("a response") }
    };
    assert_eq!(internal("x").await.status, 200, "EXTERNAL_ONLY, internal client");
    let r = internal("t").await;
    assert_eq!((r.status, r.header("location")), (301, Some("https://t/p".to_string())), "ALL, internal client");

    for host in ["t", "x"] {
        let mut s = connect(legate.listener("tls"), &ca.cert, &ClientOpts::default()).await.expect("handshake");
        let (status, body) = get_h1(&mut s, host, "/p").await.expect("response");
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", host), "{host} over TLS");
    }
}

/// `tls_context`: `presented` and `validated` against the connection; a plaintext
/// connection presented nothing (Envoy serves `presented: false` there and not
/// `validated: true`).
#[tokio::test]
async fn tls_context_matches_the_client_certificate() {
    let ca = Ca::new("tls context ca");
    let server = ca.server(&["localhost"], crate::common::tls::Alg::Ecdsa);
    let client = ca.client("a client", None);
    let routes = json!([
        direct(json!({"prefix": "/", "tls_context": {"presented": true, "validated": true}}), "validated"),
        direct(json!({"prefix": "/", "tls_context": {"presented": false}}), "no cert"),
        direct(json!({"prefix": "/"}), "other"),
    ]);
    let mut boot = bootstrap().listener("main", route_config(json!([vhost("v", &["*"], routes.clone())]))).value();
    boot["static_resources"]["listeners"].as_array_mut().expect("listeners").push(json!({
        "name": "tls",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "filters": [{ "name": "hcm", "typed_config": hcm(route_config(json!([vhost("v", &["*"], routes)]))) }],
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "tls_certificates": [{
                        "certificate_chain": { "inline_string": server.cert },
                        "private_key": { "inline_string": server.key },
                    }],
                    "validation_context": { "trusted_ca": { "inline_string": ca.cert } },
                },
            } },
        }],
    }));
    let legate = Legate::start(serde_yaml::to_string(&boot).expect("yaml")).await;
    assert_eq!(get(&legate, "a", "/", &[]).await.1, "no cert", "plaintext");
    for (opts, want) in [
        (ClientOpts { client_cert: Some(client.clone()), ..Default::default() }, "validated"),
        (ClientOpts::default(), "no cert"),
    ] {
        let mut s = connect(legate.listener("tls"), &ca.cert, &opts).await.expect("handshake");
        let (status, body) = get_h1(&mut s, "a", "/").await.expect("response");
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", want));
    }
}

/// A direct response's `body_format`, as Envoy 1.40 renders it: the configured body as
/// `%LOCAL_REPLY_BODY%`, the request's headers, `%RESPONSE_CODE%` still 0; JSON keys sorted,
/// numbers typed, a newline after; `content-type` text/plain, application/json or the
/// format's `content_type`.
#[tokio::test]
async fn direct_response_body_format_renders_as_envoy() {
    let routes = json!([
        { "match": { "prefix": "/bf1" }, "direct_response": { "status": 201, "body": { "inline_string": "hi" },
          "body_format": { "text_format": "[%LOCAL_REPLY_BODY%] %REQ(x-a)% %RESPONSE_CODE% %PROTOCOL%\n" } } },
        { "match": { "prefix": "/bf2" }, "direct_response": { "status": 200, "body": { "inline_string": "hi" },
          "body_format": { "json_format": { "b": "%LOCAL_REPLY_BODY%", "a": "%REQ(x-a)%", "c": "%RESPONSE_CODE%" } } } },
        { "match": { "prefix": "/bf3" }, "direct_response": { "status": 404,
          "body_format": { "text_format": "x%LOCAL_REPLY_BODY%y", "content_type": "text/html" } } },
    ]);
    let legate = Legate::start(bootstrap().routes(routes).yaml()).await;
    for (path, status, body, content_type) in [
        ("/bf1", 201, "[hi] AA 0 HTTP/1.1\n", "text/plain"),
        ("/bf2", 200, "{\"a\":\"AA\",\"b\":\"hi\",\"c\":0}\n", "application/json"),
        ("/bf3", 404, "xy", "text/html"),
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nhost: a\r\nx-a: AA\r\nconnection: close\r\n\r\n");
        let r = raw(legate.listener("main"), req.as_bytes()).await.expect("a response");
        assert_eq!((r.status, String::from_utf8_lossy(&r.body).as_ref()), (status, body), "{path}");
        assert_eq!(r.header("content-type").as_deref(), Some(content_type), "{path}");
        assert_eq!(r.header("content-length"), Some(body.len().to_string()), "{path}");
    }
}
