//! Downstream protocols and the headers a proxy adds or drops: HTTP/1.1 and h2c on one port,
//! large bodies, x-forwarded-proto, x-request-id, hop-by-hop headers.

use crate::common::assert_eventually;
use crate::common::client::{self, request, Client};
use crate::common::config::{bootstrap, static_cluster, to_cluster};
use crate::common::legate::Legate;
use crate::common::sha256;
use crate::common::upstream::{self, Upstream};
use bytes::Bytes;
use hyper::{Method, Version};
use serde_json::json;

async fn start(up: &Upstream) -> Legate {
    Legate::start(
        bootstrap()
            .routes(json!([to_cluster(json!({"prefix": "/"}), "service1")]))
            .cluster(static_cluster("service1", &[up.addr()]))
            .yaml(),
    )
    .await
}

#[tokio::test]
async fn http1_and_h2c_share_the_listener() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let r1 = Client::h1().get(&legate.url("main", "/one")).await;
    assert_eq!(r1.version, Version::HTTP_11);
    assert_eq!(r1.echo()["path"], "/one");
    let r2 = Client::h2c().get(&legate.url("main", "/two")).await;
    assert_eq!(r2.version, Version::HTTP_2);
    let e = r2.echo();
    assert_eq!(e["path"], "/two");
    assert_eq!(e["proto"], "HTTP/1.1", "the cluster speaks HTTP/1.1 upstream");
}

#[tokio::test]
async fn five_megabytes_both_ways() {
    let up = upstream::http1().name("big").spawn().await;
    let legate = start(&up).await;
    let body = Bytes::from(sha256::pattern(5 * 1024 * 1024 + 7));
    let want = sha256::hex(&body);
    for c in [Client::h1(), Client::h2c()] {
        let r = c.post(&legate.url("main", "/echo-body"), body.clone()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), body.len());
        assert_eq!(sha256::hex(&r.body), want);
        let e = c.post(&legate.url("main", "/upload"), body.clone()).await.echo();
        assert_eq!(e["body_len"], body.len());
        assert_eq!(e["body_sha256"], want);
        let r = c.get(&legate.url("main", "/bytes/5242880")).await;
        assert_eq!(sha256::hex(&r.body), sha256::hex(&sha256::pattern(5_242_880)));
    }
}

#[tokio::test]
async fn headers_added_upstream() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let c = Client::h1();
    let e = c.get(&legate.url("main", "/")).await.echo();
    let h = &e["headers"];
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-envoy-expected-rq-timeout-ms"], "15000");
    let id = h["x-request-id"].as_str().expect("x-request-id generated");
    let uuid = regex::Regex::new("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$").unwrap();
    assert!(uuid.is_match(id), "x-request-id {id:?} is not a UUID");
    let other = c.get(&legate.url("main", "/")).await.echo();
    assert_ne!(other["headers"]["x-request-id"], id, "a fresh id per request");
    let kept = c.get_with(&legate.url("main", "/"), &[("x-request-id", "client-chosen-id")]).await.echo();
    assert_eq!(kept["headers"]["x-request-id"], "client-chosen-id");
}

#[tokio::test]
async fn headers_added_downstream() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let r = Client::h1().get(&legate.url("main", "/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), Some("envoy"));
    let t = r.header("x-envoy-upstream-service-time").expect("x-envoy-upstream-service-time");
    assert!(t.parse::<u64>().is_ok(), "service time {t:?} is not a number");
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let r = Client::h1()
        .get_with(
            &legate.url("main", "/"),
            &[
                ("connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("x-echo-response-header", "keep-alive: timeout=9"),
                ("x-end-to-end", "kept"),
            ],
        )
        .await;
    let e = r.echo();
    let h = &e["headers"];
    for hop in ["keep-alive", "proxy-connection"] {
        assert!(h.get(hop).is_none(), "{hop} forwarded upstream: {h}");
    }
    assert_eq!(h["x-end-to-end"], "kept");
    assert_eq!(r.header("keep-alive"), None, "keep-alive forwarded downstream");
}

#[tokio::test]
async fn chunked_request_body_is_forwarded() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let r = client::raw(
        legate.listener("main"),
        b"POST /chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await
    .expect("a response");
    assert_eq!(r.status, 200);
    let e: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(e["body_len"], 11);
    assert_eq!(e["body_sha256"], sha256::hex(b"hello world"));
}

#[tokio::test]
async fn h2c_requests_are_multiplexed() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let c = Client::h2c();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        let url = legate.url("main", &format!("/delay/50ms?i={i}"));
        tasks.push(tokio::spawn(
            async move { c.send(request(Method::GET, &url).body(Default::default()).unwrap()).await },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    assert_eq!(up.requests(), 20);
}

/// The connection manager's `http2_protocol_options` reach the client: legate's SETTINGS
/// carry `max_concurrent_streams` (read back by an h2 client after one exchange).
#[tokio::test]
async fn http2_protocol_options_reach_the_client() {
    use crate::common::config::{direct, hcm, route_config, vhost};
    let mut manager = hcm(route_config(json!([vhost("all", &["*"], json!([direct(json!({"prefix": "/"}), "hi")]))])));
    manager["http2_protocol_options"] =
        json!({"max_concurrent_streams": 7, "initial_stream_window_size": 131072, "hpack_table_size": 4096});
    let legate = Legate::start(bootstrap().listener_hcm("main", manager).yaml()).await;
    let stream = tokio::net::TcpStream::connect(legate.listener("main")).await.expect("connect");
    let (sender, conn) = h2::client::handshake(stream).await.expect("h2 handshake");
    tokio::spawn(conn);
    let mut sender = sender.ready().await.expect("ready");
    let req = hyper::Request::get("http://x/").body(()).expect("request");
    let (resp, _) = sender.send_request(req, true).expect("send");
    let resp = crate::common::bounded("one exchange", resp).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(sender.current_max_send_streams(), 7);
}

/// Requests hyper's parser refuses get Envoy's answers (as Envoy 1.40 sends them): the
/// reason phrase as a `text/plain` body, the listener's `server`, `connection: close`.
#[tokio::test]
async fn unparseable_requests_get_envoys_400_and_431() {
    let up = upstream::http1().name("up").spawn().await;
    let legate = start(&up).await;
    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n", "v".repeat(70_000));
    let many: String = (0..100).map(|i| format!("x-h{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let cases: [(&[u8], u16, &str); 5] = [
        (b"GARBAGE\r\n\r\n", 400, "Bad Request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n", 400, "Bad Request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nx-a: a\x01b\r\n\r\n", 400, "Bad Request"),
        (huge.as_bytes(), 431, "Request Header Fields Too Large"),
        // 101 headers, one over max_headers_count's default.
        (many.as_bytes(), 431, "Request Header Fields Too Large"),
    ];
    for (req, status, body) in cases {
        let r = client::raw(legate.listener("main"), req).await.expect("an answer");
        let what = String::from_utf8_lossy(&req[..req.len().min(40)]).into_owned();
        assert_eq!((r.status, String::from_utf8_lossy(&r.body).as_ref()), (status, body), "{what}");
        assert_eq!(r.header("content-type").as_deref(), Some("text/plain"), "{what}");
        assert_eq!(r.header("server").as_deref(), Some("envoy"), "{what}");
        assert_eq!(r.header("connection").as_deref(), Some("close"), "{what}");
        assert!(r.header("date").is_some(), "{what}");
    }
    assert_eq!(up.requests(), 0);
}

/// `common_http_protocol_options.max_headers_count` bounds HTTP/1 requests (headers, `Host`
/// included; Envoy's count): at the limit the request passes, one over it is a 431.
#[tokio::test]
async fn max_headers_count_bounds_http1_requests() {
    use crate::common::config::{hcm, route_config, vhost};
    let up = upstream::http1().name("up").spawn().await;
    let mut manager =
        hcm(route_config(json!([vhost("all", &["*"], json!([to_cluster(json!({"prefix": "/"}), "service1")]))])));
    manager["common_http_protocol_options"] = json!({"max_headers_count": 20});
    let legate = Legate::start(
        bootstrap().listener_hcm("main", manager).cluster(static_cluster("service1", &[up.addr()])).yaml(),
    )
    .await;
    let with = |n: usize| {
        let extra: String = (0..n).map(|i| format!("x-h{i}: v\r\n")).collect();
        format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
    };
    let r = client::raw(legate.listener("main"), with(19).as_bytes()).await.expect("an answer");
    assert_eq!(r.status, 200, "{}", r.head);
    let r = client::raw(legate.listener("main"), with(20).as_bytes()).await.expect("an answer");
    assert_eq!((r.status, String::from_utf8_lossy(&r.body).as_ref()), (431, "Request Header Fields Too Large"));
    assert_eq!(up.requests(), 1);
}

/// RFC 9112 3.2.2: a request target in absolute form carries the authority; `Host` is
/// ignored (Envoy routes on, forwards and logs the target's).
#[tokio::test]
async fn absolute_form_target_gives_the_authority() {
    use crate::common::config::{route_config, vhost};
    let up = upstream::http1().name("up").spawn().await;
    let routes = |prefix: &str| json!([to_cluster(json!({"prefix": prefix}), "service1")]);
    let legate = Legate::start(
        bootstrap()
            .listener(
                "main",
                route_config(json!([
                    vhost("abs", &["abs.example.com"], routes("/")),
                    vhost("host", &["hosthdr"], routes("/only-host/")),
                ])),
            )
            .cluster(static_cluster("service1", &[up.addr()]))
            .yaml(),
    )
    .await;
    let r = client::raw(
        legate.listener("main"),
        b"GET http://abs.example.com/abs?q=1 HTTP/1.1\r\nHost: hosthdr\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("an answer");
    assert_eq!(r.status, 200, "routed by the target's authority: {}", r.head);
    let e: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(e["headers"]["host"], "abs.example.com");
    assert_eq!(e["path"], "/abs");
    assert_eq!(e["query"], "q=1");
}

/// One h2 request with `extra` headers of `value`; the status, or the reset's reason.
async fn h2_request(addr: std::net::SocketAddr, extra: usize, value: &str) -> Result<u16, Option<h2::Reason>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = h2::client::Builder::new()
        .max_header_list_size(16 << 20)
        .handshake::<_, Bytes>(stream)
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    let mut sender = sender.ready().await.expect("ready");
    let mut req = hyper::Request::get("http://x/h2");
    for i in 0..extra {
        req = req.header(format!("x-h{i}"), value);
    }
    let (resp, _) = sender.send_request(req.body(()).expect("request"), true).expect("send");
    match crate::common::bounded("h2 exchange", resp).await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(e.reason()),
    }
}

/// HTTP/2 requests obey `max_headers_count` (pseudo-headers count, as in Envoy) and
/// `max_request_headers_kb` as HTTP/1 ones do; over them Envoy resets the stream with
/// INTERNAL_ERROR. Each offending connection warns once, rate-limited with a count of the
/// lines held back.
#[tokio::test]
async fn h2_requests_obey_the_header_limits() {
    use crate::common::config::{hcm, route_config, vhost};
    let up = upstream::http1().name("up").spawn().await;
    let mut manager =
        hcm(route_config(json!([vhost("all", &["*"], json!([to_cluster(json!({"prefix": "/"}), "service1")]))])));
    manager["common_http_protocol_options"] = json!({"max_headers_count": 20});
    manager["max_request_headers_kb"] = json!(2);
    let legate = Legate::start(
        bootstrap().listener_hcm("main", manager).cluster(static_cluster("service1", &[up.addr()])).yaml(),
    )
    .await;
    let addr = legate.listener("main");
    // 4 pseudo-headers + 16 = 20.
    assert_eq!(h2_request(addr, 16, "v").await, Ok(200));
    assert_eq!(h2_request(addr, 17, "v").await, Err(Some(h2::Reason::INTERNAL_ERROR)));
    assert_eq!(h2_request(addr, 2, &"v".repeat(900)).await, Ok(200));
    assert_eq!(h2_request(addr, 3, &"v".repeat(900)).await, Err(Some(h2::Reason::INTERNAL_ERROR)));
    assert_eq!(up.requests(), 2);
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_tx_reset").await, 2);
    const WARNING: &str = "HTTP/2 request headers over max_request_headers_kb or max_headers_count";
    // Abusive connections keep coming: a line a second at most, saying how many were held back.
    assert_eventually!(
        {
            let _ = h2_request(addr, 17, "v").await;
            let out = legate.output();
            out.lines().any(|l| l.contains(WARNING) && !l.contains("suppressed=0"))
        },
        "a warning counting suppressed ones:\n{}",
        legate.output()
    );
    let out = legate.output();
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(WARNING)).collect();
    assert!(lines.len() >= 2 && lines.len() <= 12, "rate-limited: {lines:#?}");
}

/// With `codec_type: AUTO`, a connection is served as HTTP/1.1 alone once its first bytes
/// cannot start the h2 preface; a preface that arrives in pieces still gets h2.
#[tokio::test]
async fn an_h2_preface_in_pieces_is_still_h2() {
    use crate::common::config::{direct, hcm, route_config, vhost};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let manager = hcm(route_config(json!([vhost("all", &["*"], json!([direct(json!({"prefix": "/"}), "hi")]))])));
    let legate = Legate::start(bootstrap().listener_hcm("main", manager).yaml()).await;
    let mut s = tokio::net::TcpStream::connect(legate.listener("main")).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.write_all(b"PRI * HT").await.expect("first piece");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // The rest of the preface, an empty SETTINGS, then GET / (HPACK: :method GET, :scheme
    // http, :path /, :authority "x") ending the stream.
    let mut rest = b"TP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    rest.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    rest.extend_from_slice(&[0, 0, 6, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41, 1, b'x']);
    s.write_all(&rest).await.expect("rest");
    // Frames until a HEADERS frame on stream 1; bounded by the bytes read and the deadline.
    let mut got = Vec::new();
    let headers = crate::common::bounded("an h2 answer", async {
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
            let mut at = 0;
            while got.len() >= at + 9 {
                let len = usize::from(got[at]) << 16 | usize::from(got[at + 1]) << 8 | usize::from(got[at + 2]);
                let (kind, stream) =
                    (got[at + 3], u32::from_be_bytes([got[at + 5], got[at + 6], got[at + 7], got[at + 8]]));
                if got.len() < at + 9 + len {
                    break;
                }
                if kind == 1 && stream == 1 {
                    return got[at + 9..at + 9 + len].to_vec();
                }
                at += 9 + len;
            }
            assert!(got.len() < 1 << 16, "no HEADERS frame for stream 1");
        }
    })
    .await;
    assert!(!got.starts_with(b"HTTP/1"), "answered as HTTP/1: {:?}", String::from_utf8_lossy(&got));
    assert_eq!(headers.first(), Some(&0x88), ":status 200 (HPACK index 8) first: {headers:?}");
}
