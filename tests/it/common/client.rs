//! HTTP clients for tests: [`Client`] (hyper-util, HTTP/1.1 or h2c prior knowledge, one
//! connection pool per client) and [`raw`] for bytes hyper would refuse to send.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::bounded;

/// A collected response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body text if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {} body is not JSON ({e}): {:?}", self.status, self.text()))
    }

    /// The echo upstream's view of the request: `instance`, `path`, `headers`, ...
    pub fn echo(&self) -> Value {
        assert!(self.status.is_success(), "expected an echo answer, got {} {:?}", self.status, self.text());
        self.json()
    }

    /// The echo upstream's name, from its `x-upstream-instance` header.
    pub fn instance(&self) -> String {
        self.header("x-upstream-instance")
            .unwrap_or_else(|| panic!("no x-upstream-instance: {} {:?}", self.status, self.text()))
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP client with its own connection pool.
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// HTTP/1.1 with keep-alive.
    pub fn h1() -> Self {
        Client { inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http() }
    }

    /// HTTP/2 over cleartext with prior knowledge.
    pub fn h2c() -> Self {
        Client {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).http2_only(true).build_http(),
        }
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.send(request(Method::GET, url).body(Full::default()).unwrap()).await
    }

    /// GET with extra headers (`("host", "example.com")` sets Host on HTTP/1.1).
    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Resp {
        let mut b = request(Method::GET, url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::default()).unwrap()).await
    }

    pub async fn post(&self, url: &str, body: impl Into<Bytes>) -> Resp {
        self.send(request(Method::POST, url).body(Full::new(body.into())).unwrap()).await
    }

    /// Sends and collects; panics on transport errors or after [`super::EVENTUALLY`].
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        let what = format!("{} {}", req.method(), req.uri());
        match bounded(&what, self.try_send(req)).await {
            Ok(r) => r,
            Err(e) => panic!("{what}: {e}"),
        }
    }

    /// Sends and collects, returning transport errors.
    pub async fn try_send(&self, req: Request<Full<Bytes>>) -> Result<Resp, String> {
        let resp = self.inner.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await.map_err(|e| format!("{e:?}"))?;
        let trailers = collected.trailers().cloned();
        Ok(Resp {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        })
    }
}

/// A request builder for `url`.
pub fn request(method: Method, url: &str) -> hyper::http::request::Builder {
    Request::builder().method(method).uri(url)
}

/// One GET with a fresh HTTP/1.1 client.
pub async fn get(url: &str) -> Resp {
    Client::h1().get(url).await
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    /// Status line and headers, as text.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResp {
    /// The value of a header (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Writes `bytes` to `addr` and reads one response (until its `content-length` is satisfied
/// or the peer closes), bounded by [`super::EVENTUALLY`]. `None` if the peer closed without
/// sending a status line.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<RawResp> {
    bounded("raw exchange", async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // The peer may answer and close before reading everything; ignore write errors.
        let _ = s.write_all(bytes).await;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(r) = parse_raw(&buf) {
                return Some(r);
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        parse_raw_eof(&buf)
    })
    .await
}

fn split_head(buf: &[u8]) -> Option<(String, Vec<u8>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    Some((head, buf[end + 4..].to_vec()))
}

fn status_of(head: &str) -> Option<u16> {
    head.split_whitespace().nth(1)?.parse().ok()
}

fn parse_raw(buf: &[u8]) -> Option<RawResp> {
    let (head, body) = split_head(buf)?;
    let status = status_of(&head)?;
    let r = RawResp { status, head, body };
    let len: usize = r.header("content-length")?.parse().ok()?;
    (r.body.len() >= len).then_some(r)
}

fn parse_raw_eof(buf: &[u8]) -> Option<RawResp> {
    let (head, body) = split_head(buf)?;
    Some(RawResp { status: status_of(&head)?, head, body })
}
