//! HTTP/1.1 message framing errors on either side, answered as Envoy 1.40 answers them (each
//! case compared with Envoy on the same config): a request body whose chunked framing breaks
//! is Envoy's codec 400 and never a complete request upstream; an upstream response with both
//! `content-length` and `transfer-encoding` is 502 `UPE`; an upstream closing mid-body is
//! logged `UPE`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::access_log::{file_log, lines, log_dir};
use crate::common::assert_eventually;
use crate::common::client::{raw, Client};
use crate::common::config::{bootstrap, hcm, route_config, static_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::upstream;

const FORMAT: &str = "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_HOST%\n";

/// Listener `main` logging to `log` in [`FORMAT`]; `/` goes to `c` (at `addr`), `/retry/`
/// to `c` with a `5xx` retry policy (the body is then kept for a retry).
async fn start(addr: SocketAddr, log: &Path) -> Legate {
    let routes = json!([
        {"match": {"prefix": "/retry/"}, "route": {"cluster": "c", "retry_policy": {"retry_on": "5xx", "num_retries": 1}}},
        {"match": {"prefix": "/"}, "route": {"cluster": "c"}},
    ]);
    let mut h = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    h["access_log"] = json!([file_log(log, Some(json!({"text_format_source": {"inline_string": FORMAT}})))]);
    Legate::start(bootstrap().listener_hcm("main", h).cluster(static_cluster("c", &[addr])).yaml()).await
}

/// Chunked bodies Envoy's codec rejects: the data of a chunk not followed by CRLF, a chunk
/// size past 64 bits, a chunk size that is not hex.
const MALFORMED: [&str; 3] =
    ["5\r\nhelloXX0\r\n\r\n", "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", "zz\r\nhello\r\n0\r\n\r\n"];

async fn post_chunked(legate: &Legate, path: &str, body: &str) -> crate::common::client::RawResp {
    let req = format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
    raw(legate.listener("main"), req.as_bytes()).await.expect("an answer")
}

#[tokio::test]
async fn malformed_chunked_request_is_400_and_never_complete_upstream() {
    let up = upstream::http1().name("up").spawn().await;
    let (_dir, log) = log_dir();
    let legate = start(up.addr(), &log).await;
    let mut logged = 0;
    // Each body on a new upstream connection (the first), on a pooled one (warmed by a good
    // request first), and on the retry path that keeps the body for a second attempt.
    for (round, warm) in [(0, false), (1, true)] {
        for body in MALFORMED {
            for path in ["/m", "/retry/m"] {
                if warm {
                    let r = Client::h1().get(&legate.url("main", "/warm")).await;
                    assert_eq!(r.status, 200);
                    logged += 1;
                }
                let before = up.completed();
                let r = post_chunked(&legate, path, body).await;
                logged += 1;
                assert_eq!((r.status, r.body.as_slice()), (400, &b"Bad Request"[..]), "{path} {body:?} round {round}");
                assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
                assert_eq!(r.header("server").as_deref(), Some("envoy"));
                assert_eq!(r.header("connection").as_deref(), Some("close"));
                let lines = lines(&log, logged).await;
                let last = &lines[logged - 1];
                assert!(last.starts_with(&format!("{path} 400 DPE http1.codec_error ")), "{path} {body:?}: {last}");
                assert_eq!(
                    up.completed(),
                    before,
                    "{path} {body:?} round {round}: the upstream got a complete request"
                );
            }
        }
    }
    // The counter counts: a good chunked request after all that is complete upstream.
    let before = up.completed();
    let r = post_chunked(&legate, "/good", "5\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert_eq!(up.completed(), before + 1);
    assert_eq!(legate.stat("cluster.c.upstream_rq_400").await, 0, "the client's error is not the upstream's");
}

/// A raw HTTP/1.1 upstream answering every request with `answer(path)` and then closing if
/// `close` says so. Counts the connections it accepted.
async fn raw_upstream(answer: fn(&str) -> (&'static [u8], bool)) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&conns);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Requests without bodies: each ends at its blank line.
                for _ in 0..64 {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (bytes, close) = answer(&path);
                    if s.write_all(bytes).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, conns)
}

fn misframed(path: &str) -> (&'static [u8], bool) {
    match path {
        "/both" => (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
            false,
        ),
        "/cut-length" => (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello", true),
        "/cut-chunked" => (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", true),
        _ => (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false),
    }
}

#[tokio::test]
async fn upstream_response_with_length_and_chunked_is_502_upe() {
    let (addr, conns) = raw_upstream(misframed).await;
    let (_dir, log) = log_dir();
    let legate = start(addr, &log).await;
    let c = Client::h1();
    let r = c.get(&legate.url("main", "/both")).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "upstream connect error or disconnect/reset before headers. reset reason: protocol error");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let lines = lines(&log, 1).await;
    assert_eq!(lines[0], format!("/both 502 UPE upstream_reset_before_response_started{{protocol_error}} {addr}"));
    assert_eq!(legate.stat("cluster.c.upstream_cx_protocol_error").await, 1);
    // The connection that carried it is not reused.
    let r = c.get(&legate.url("main", "/ok")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok"));
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

/// What a client reads until the proxy closes: the head and whatever body came.
async fn read_to_close(addr: SocketAddr, path: &str) -> String {
    crate::common::bounded("read to close", async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
}

#[tokio::test]
async fn upstream_closing_mid_body_is_cut_downstream_and_logged_upe() {
    let (addr, _) = raw_upstream(misframed).await;
    let (_dir, log) = log_dir();
    let legate = start(addr, &log).await;
    // Envoy passes on the head and what body came, then closes: the client sees a body
    // shorter than its content-length, or chunked without its last chunk.
    let got = read_to_close(legate.listener("main"), "/cut-length").await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("content-length: 100\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nhello"), "{got}");
    let got = read_to_close(legate.listener("main"), "/cut-chunked").await;
    assert!(got.contains("transfer-encoding: chunked\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\n5\r\nhello\r\n"), "no last chunk: {got}");
    assert_eq!(
        lines(&log, 2).await,
        [
            format!("/cut-length 200 UPE upstream_reset_after_response_started{{protocol_error}} {addr}"),
            format!("/cut-chunked 200 UPE upstream_reset_after_response_started{{protocol_error}} {addr}"),
        ]
    );
}

#[tokio::test]
async fn client_leaving_mid_body_is_logged_dc_and_never_complete_upstream() {
    let up = upstream::http1().name("up").spawn().await;
    let (_dir, log) = log_dir();
    let legate = start(up.addr(), &log).await;
    let cut = [
        "POST /cut HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        "POST /cut HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    ];
    for (i, req) in cut.iter().enumerate() {
        let mut s = tokio::net::TcpStream::connect(legate.listener("main")).await.expect("connect");
        s.write_all(req.as_bytes()).await.expect("write");
        // The request is on its way upstream once the upstream has its head.
        assert_eventually!(up.requests() == i + 1, "request {i} upstream");
        drop(s);
        let lines = lines(&log, i + 1).await;
        // Envoy: no response code, DC, downstream_remote_disconnect.
        assert_eq!(lines[i], format!("/cut 0 DC downstream_remote_disconnect {}", up.addr()), "{req:?}");
    }
    assert_eq!(up.completed(), 0);
    assert_eq!(legate.stat("http.ingress_http.downstream_rq_4xx").await, 0);
}

/// Everything a client reads, after sending `bytes`, until the proxy closes.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    crate::common::bounded("exchange", async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // The proxy may answer and close before reading everything.
        let _ = s.write_all(bytes).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
}

/// The response's head lines without `date`, and its body.
fn without_date(resp: &str) -> (Vec<&str>, &str) {
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp, ""));
    (head.split("\r\n").filter(|l| !l.starts_with("date: ")).collect(), body)
}

#[tokio::test]
async fn length_with_chunked_or_a_fragment_is_envoys_400_and_never_upstream() {
    let up = upstream::http1().name("up").spawn().await;
    let (_dir, log) = log_dir();
    let legate = start(up.addr(), &log).await;
    let codec = [
        "HTTP/1.1 400 Bad Request",
        "content-length: 11",
        "content-type: text/plain",
        "server: envoy",
        "connection: close",
    ];
    let path = ["HTTP/1.1 400 Bad Request", "server: envoy", "connection: close", "content-length: 0"];
    let cases: [(&str, &[&str], &str, &str); 5] = [
        // hyper would pass both headers to the service.
        (
            "POST /clte HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &codec,
            "Bad Request",
            "400 DPE http1.content_length_and_chunked_not_allowed -",
        ),
        // hyper would drop the content-length.
        (
            "POST /tecl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &codec,
            "Bad Request",
            "400 DPE http1.content_length_and_chunked_not_allowed -",
        ),
        // The `http` crate would drop the fragment.
        ("GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", &path, "", "400 - path_normalization_failed -"),
        ("GET /a?# HTTP/1.1\r\nHost: x\r\n\r\n", &path, "", "400 - path_normalization_failed -"),
        // Behind a good request on the same connection, split by a good chunked body.
        (
            "POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\n#ab\r\n0\r\nx-t: /#\r\n\r\nGET /b#x HTTP/1.1\r\nHost: x\r\n\r\n",
            &path,
            "",
            "400 - path_normalization_failed -",
        ),
    ];
    for (i, (req, head, body, logged)) in cases.iter().enumerate() {
        let got = exchange(legate.listener("main"), req.as_bytes()).await;
        let last = got.rfind("HTTP/1.1 ").unwrap_or(0);
        assert_eq!(without_date(&got[last..]), (head.to_vec(), *body), "{req:?}: {got}");
        let lines = lines(&log, i + 1 + usize::from(i == 4)).await;
        assert!(lines.last().is_some_and(|l| l.ends_with(logged)), "{req:?}: {lines:?}");
    }
    // Only the good request of the last case reached the upstream.
    assert_eq!((up.requests(), up.completed()), (1, 1));
}

#[tokio::test]
async fn pipelined_chunked_post_and_get_still_work() {
    let up = upstream::http1().name("up").spawn().await;
    let (_dir, log) = log_dir();
    let legate = start(up.addr(), &log).await;
    let req = "POST /1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;name=\"v\"\r\n#a#b\r\n0\r\nx-t: GET /#\r\n\r\n\
               GET /2?q HTTP/1.1\r\nHost: x\r\n\r\n\
               GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let got = exchange(legate.listener("main"), req.as_bytes()).await;
    assert_eq!(got.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{got}");
    assert_eq!(up.completed(), 3);
}
