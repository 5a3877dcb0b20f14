use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Version};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::decode::{self, Home};
use super::{encode, exchange, Conn, Error, Failed};
use crate::body::ReqBody;

/// Where finished connections go in these tests.
#[derive(Default)]
struct Back(Mutex<Vec<Conn<DuplexStream>>>);

impl Home<DuplexStream> for Back {
    fn take_back(self: Arc<Self>, conn: Box<Conn<DuplexStream>>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(*conn);
    }
}

impl Back {
    fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn req(method: Method, uri: &str, headers: &[(&str, &str)], body: Option<&'static str>) -> Request<ReqBody> {
    let mut r = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(ReqBody::Full(body.map(|b: &'static str| Bytes::from_static(b.as_bytes())))).unwrap()
}

/// The bytes hyper's client writes for `req`.
async fn hyper_writes(req: Request<ReqBody>, title_case: bool) -> Vec<u8> {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(title_case)
        .handshake(TokioIo::new(client))
        .await
        .unwrap();
    tokio::spawn(conn);
    tokio::spawn(async move { sender.send_request(req).await });
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // hyper writes head and a small body at once; a short wait catches a second write.
    while let Ok(Ok(n)) = tokio::time::timeout(std::time::Duration::from_millis(50), server.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    seen
}

fn own_writes(req: &Request<ReqBody>, title_case: bool) -> Vec<u8> {
    let plan = encode::plan(req).expect("the own client sends it");
    let mut out = Vec::new();
    encode::encode(&mut out, req, &plan, title_case);
    out
}

#[tokio::test]
async fn the_request_bytes_are_what_hyper_writes() {
    type Make = fn() -> Request<ReqBody>;
    let cases: Vec<(Make, bool)> = vec![
        (|| req(Method::GET, "/a/b?x=1&y", &[("host", "example.com"), ("x-one", "1"), ("x-one", "2")], None), false),
        (|| req(Method::GET, "/", &[("host", "h"), ("content-length", "0")], None), false),
        (|| req(Method::POST, "/p", &[("host", "h")], Some("hello")), false),
        (|| req(Method::PUT, "/p", &[("content-length", "5"), ("x-after", "z")], Some("hello")), false),
        (|| req(Method::POST, "/p", &[("host", "h")], Some("")), false),
        (|| req(Method::GET, "http://example.com:8080/abs?q", &[("host", "example.com")], None), false),
        (|| req(Method::DELETE, "/", &[("x-proper-case-me", "v"), ("host", "h")], Some("body")), true),
    ];
    for (make, title_case) in cases {
        let ours = own_writes(&make(), title_case);
        let theirs = hyper_writes(make(), title_case).await;
        assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
    }
}

#[test]
fn requests_the_own_client_leaves_to_hyper() {
    let hyper_only = [
        req(Method::GET, "/", &[("upgrade", "websocket"), ("connection", "upgrade")], None),
        req(Method::POST, "/", &[("expect", "100-continue")], Some("x")),
        req(Method::POST, "/", &[("transfer-encoding", "chunked")], Some("x")),
        req(Method::POST, "/", &[("content-length", "9")], Some("x")),
        req(Method::POST, "/", &[("content-length", "1"), ("content-length", "1")], Some("x")),
        req(Method::CONNECT, "example.com:443", &[], None),
    ];
    for r in &hyper_only {
        assert!(encode::plan(r).is_none(), "{:?} {:?}", r.method(), r.headers());
    }
    let mut old = req(Method::GET, "/", &[], None);
    *old.version_mut() = Version::HTTP_10;
    assert!(encode::plan(&old).is_none());
    let big = Request::new(ReqBody::Full(Some(Bytes::from(vec![b'x'; 64 * 1024 + 1]))));
    assert!(encode::plan(&big).is_none(), "a body larger than the socket buffers take whole");
    let frames = ReqBody::Frames(Box::new([http_body::Frame::data(Bytes::from_static(b"x"))].into()));
    assert!(encode::plan(&Request::new(frames)).is_none(), "a body not in one piece");
    assert!(encode::plan(&req(Method::GET, "/", &[], None)).is_some());
    assert!(encode::plan(&req(Method::POST, "/", &[("content-length", "1")], Some("x"))).is_some());
}

/// Runs one exchange of `request` against an upstream that answers `answer` (then keeps the
/// connection open, or closes it with `close`); the response and its body read whole.
async fn run(
    request: Request<ReqBody>,
    answer: &'static [u8],
    close: bool,
) -> (Result<(http::Response<()>, Result<(Vec<u8>, Option<http::HeaderMap>), String>), String>, Arc<Back>) {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let upstream = tokio::spawn(async move {
        let mut got = vec![0u8; 4096];
        let _ = server.read(&mut got).await;
        let _ = server.write_all(answer).await;
        if !close {
            // Held open until the test ends.
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
    let back = Arc::new(Back::default());
    let mut conn = Conn::new(client);
    let plan = encode::plan(&request).expect("planned");
    let head = match exchange(&mut conn, &request, &plan, false, 64 * 1024).await {
        Ok(h) => h,
        Err(Failed::Sent(e)) => return (Err(e.to_string()), back),
        Err(Failed::Unsent(e)) => return (Err(format!("unsent: {e}")), back),
    };
    let home: Arc<dyn Home<DuplexStream>> = Arc::clone(&back) as Arc<dyn Home<DuplexStream>>;
    let (parts, mut body) = decode::response(head, conn, home).into_parts();
    let mut data = Vec::new();
    let mut trailers = None;
    let read = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(f) => trailers = f.into_trailers().ok(),
            },
            Some(Err(e)) => break Err(e.to_string()),
        }
    };
    upstream.abort();
    let resp = http::Response::from_parts(parts, ());
    (Ok((resp, read.map(|()| (data, trailers)))), back)
}

fn get() -> Request<ReqBody> {
    req(Method::GET, "/", &[("host", "h")], None)
}

#[tokio::test]
async fn a_length_body_is_read_and_the_connection_handed_back() {
    let (r, back) = run(get(), b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhello", false).await;
    let (resp, body) = r.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-a"], "1");
    assert_eq!(body.unwrap().0, b"hello");
    assert_eq!(back.count(), 1);
}

#[tokio::test]
async fn a_chunked_body_with_trailers_is_read_and_the_connection_handed_back() {
    let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\ngrpc-status: 0\r\n\r\n";
    let (r, back) = run(get(), answer, false).await;
    let (_, body) = r.unwrap();
    let (data, trailers) = body.unwrap();
    assert_eq!(data, b"hello world");
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
    assert_eq!(back.count(), 1);
    let (r, back) =
        run(get(), b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false).await;
    assert_eq!(r.unwrap().1.unwrap(), (b"ok".to_vec(), None));
    assert_eq!(back.count(), 1);
}

#[tokio::test]
async fn bodies_without_length_end_at_close_and_the_connection_is_not_kept() {
    let (r, back) = run(get(), b"HTTP/1.1 200 OK\r\n\r\nuntil close", true).await;
    assert_eq!(r.unwrap().1.unwrap().0, b"until close");
    assert_eq!(back.count(), 0);
    let (r, back) = run(get(), b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nraw", true).await;
    assert_eq!(r.unwrap().1.unwrap().0, b"raw");
    assert_eq!(back.count(), 0);
}

#[tokio::test]
async fn bodiless_answers_hand_the_connection_back_at_once() {
    for answer in [
        &b"HTTP/1.1 204 No Content\r\ncontent-length: 10\r\n\r\n"[..],
        b"HTTP/1.1 304 Not Modified\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    ] {
        let (r, back) = run(get(), answer, false).await;
        let (resp, body) = r.unwrap();
        assert!(resp.status() != 100 && resp.status() != 103);
        assert_eq!(body.unwrap().0, b"");
        assert_eq!(back.count(), 1, "{}", String::from_utf8_lossy(answer));
    }
    // A HEAD's answer has no body, whatever its length says.
    let head = req(Method::HEAD, "/", &[], None);
    let (r, back) = run(head, b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n", false).await;
    let (resp, body) = r.unwrap();
    assert_eq!(resp.headers()["content-length"], "100");
    assert_eq!(body.unwrap().0, b"");
    assert_eq!(back.count(), 1);
}

#[tokio::test]
async fn keep_alive_follows_the_version_and_connection_header() {
    let cases: [(&[u8], usize); 5] = [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx", 0),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nx", 0),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\nconnection: keep-alive\r\n\r\nx", 1),
        (b"HTTP/1.1 200 OK\r\nconnection: close\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\nx", 0),
        // Bytes after the response nobody asked for: the connection cannot be trusted.
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n", 0),
    ];
    for (answer, kept) in cases {
        let (r, back) = run(get(), answer, false).await;
        assert_eq!(r.unwrap().1.unwrap().0, b"x");
        assert_eq!(back.count(), kept, "{}", String::from_utf8_lossy(answer));
    }
}

#[tokio::test]
async fn malformed_and_cut_answers_are_errors() {
    let cases: [(&[u8], &str); 7] = [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1x\r\n\r\n", "invalid content-length"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", "invalid content-length"),
        (b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", "transfer-encoding"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "invalid"),
        (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n", "101"),
        (b"HTTP/1.1 200 O", "closed before message completed"),
    ];
    for (answer, says) in cases {
        let (r, _) = run(get(), answer, true).await;
        let e = r.err().unwrap_or_else(|| panic!("{} was accepted", String::from_utf8_lossy(answer)));
        assert!(e.contains(says), "{e}");
    }
    // Cut in the body: the body fails, the connection is not kept.
    for answer in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf"[..],
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let (r, back) = run(get(), answer, true).await;
        assert!(r.unwrap().1.is_err(), "{}", String::from_utf8_lossy(answer));
        assert_eq!(back.count(), 0);
    }
}

#[tokio::test]
async fn a_head_past_the_limit_is_too_large() {
    let (client, mut server) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let mut got = [0u8; 1024];
        let _ = server.read(&mut got).await;
        let _ = server.write_all(b"HTTP/1.1 200 OK\r\n").await;
        let long = format!("x-long: {}\r\n", "a".repeat(1000));
        for _ in 0..100 {
            if server.write_all(long.as_bytes()).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    });
    let mut conn = Conn::new(client);
    let r = get();
    let plan = encode::plan(&r).unwrap();
    let e = exchange(&mut conn, &r, &plan, false, 16 * 1024).await.err();
    assert!(matches!(e, Some(Failed::Sent(Error::TooLarge))), "{e:?}");
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_the_connection() {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut got = [0u8; 1024];
        let _ = server.read(&mut got).await;
        let _ = server.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome").await;
        // The client's end closing is seen here as the end of the stream.
        let n = server.read(&mut got).await.unwrap_or(0);
        assert_eq!(n, 0);
    });
    let back = Arc::new(Back::default());
    let mut conn = Conn::new(client);
    let r = get();
    let plan = encode::plan(&r).unwrap();
    let head = exchange(&mut conn, &r, &plan, false, 65536).await.map_err(|_| ()).unwrap();
    let home: Arc<dyn Home<DuplexStream>> = Arc::clone(&back) as Arc<dyn Home<DuplexStream>>;
    let mut body = decode::response(head, conn, home).into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "some");
    drop(body);
    assert_eq!(back.count(), 0);
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_is_not_open() {
    let (client, server) = tokio::io::duplex(1024);
    let mut conn = Conn::new(client);
    assert!(conn.is_open(std::task::Waker::noop()));
    drop(server);
    assert!(!conn.is_open(std::task::Waker::noop()));
    let (client, mut server) = tokio::io::duplex(1024);
    let mut conn = Conn::new(client);
    server.write_all(b"unasked").await.unwrap();
    assert!(!conn.is_open(std::task::Waker::noop()), "bytes nobody asked for");
}

#[tokio::test]
async fn a_connection_whose_buffers_were_released_carries_the_next_exchange() {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let answer: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
    let upstream = tokio::spawn(async move {
        let mut got = vec![0u8; 4096];
        // Two exchanges, one answer each.
        for _ in 0..2 {
            if server.read(&mut got).await.unwrap_or(0) == 0 {
                return;
            }
            let _ = server.write_all(answer).await;
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    });
    let back = Arc::new(Back::default());
    let mut conn = Conn::new(client);
    for round in 0..2 {
        let request = get();
        let plan = encode::plan(&request).expect("planned");
        let head = match exchange(&mut conn, &request, &plan, false, 64 * 1024).await {
            Ok(h) => h,
            Err(_) => panic!("exchange {round} failed"),
        };
        let home: Arc<dyn Home<DuplexStream>> = Arc::clone(&back) as Arc<dyn Home<DuplexStream>>;
        let (parts, body) = decode::response(head, conn, home).into_parts();
        assert_eq!(parts.status, 200);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        let mut kept = back.0.lock().unwrap_or_else(|e| e.into_inner()).pop().expect("handed back");
        let (read, write) = kept.buffer_capacity();
        assert!(read > 0 && write > 0, "an exchange leaves its buffers: {read} {write}");
        kept.release_buffers();
        assert_eq!(kept.buffer_capacity(), (0, 0));
        conn = Box::new(kept);
    }
    upstream.abort();
}
