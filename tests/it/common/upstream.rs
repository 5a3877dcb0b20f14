//! Echo upstreams: small hyper servers answering every request with a JSON description of
//! what they received, with knobs borrowed from the conformance harness.
//!
//! ```ignore
//! let a = upstream::http1().name("a").bind("127.0.0.21:0").spawn().await;
//! let g = upstream::h2().name("grpc").spawn().await; // h2c prior knowledge
//! ```
//!
//! The JSON body: `{instance, method, path, query, authority, headers: {name: "v1,v2"},
//! body_len, body_sha256, proto, conn_seq, req_on_conn}`.
//!
//! Knobs (path or request header):
//! Knobs match anywhere in the path, so a route prefix in front of them does not matter.
//! - `/status/NNN` or `x-echo-status: NNN`: answer with that status.
//! - `/delay/NNNms` or `x-echo-delay-ms: NNN`: wait before answering.
//! - `/bytes/N`: `N` bytes of [`super::sha256::pattern`] instead of JSON.
//! - `/echo-body`: the request body is sent back.
//! - `/reset`: the connection (h1) or stream (h2) is dropped without an answer.
//! - `/grpc` or `content-type: application/grpc`: a gRPC frame holding the JSON, followed by
//!   trailers `grpc-status: 0`.
//! - `x-echo-close: 1`: `connection: close` on the answer.
//! - `x-echo-fail-times: N` + `x-echo-fail-key: K`: the first `N` requests with key `K` (per
//!   instance) get `x-echo-fail-status` (default 503).
//! - `x-echo-response-header: name: value` (repeatable): added to the answer.
//! - `/healthcheck/fail` and `/healthcheck/ok` (or [`Upstream::set_healthy`]): while failing,
//!   a path starting with `/healthz` gets 503 and a gRPC `grpc.health.v1.Health/Check` gets
//!   `NOT_SERVING`, as an upstream Envoy's `/healthcheck/fail` makes its checks fail.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::sha256;

/// Wire protocol an upstream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http1,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
}

/// Starts an HTTP/1.1 echo upstream builder.
pub fn http1() -> UpstreamBuilder {
    UpstreamBuilder::new(Proto::Http1)
}

/// Starts an h2c (prior knowledge) echo upstream builder.
pub fn h2() -> UpstreamBuilder {
    UpstreamBuilder::new(Proto::H2c)
}

/// Builder of an [`Upstream`].
#[derive(Clone, Debug)]
pub struct UpstreamBuilder {
    name: String,
    bind: String,
    proto: Proto,
    status: Option<u16>,
}

impl UpstreamBuilder {
    fn new(proto: Proto) -> Self {
        UpstreamBuilder { name: "upstream".into(), bind: "127.0.0.1:0".into(), proto, status: None }
    }

    /// The `instance` reported in every answer.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Address to listen on (default `127.0.0.1:0`).
    pub fn bind(mut self, addr: &str) -> Self {
        self.bind = addr.into();
        self
    }

    /// Answers every request with this status unless a knob says otherwise.
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Binds and starts serving; panics if the address cannot be bound.
    pub async fn spawn(self) -> Upstream {
        let addr = self.bind.clone();
        self.try_spawn().await.unwrap_or_else(|e| panic!("upstream bind {addr}: {e}"))
    }

    /// Binds and starts serving.
    pub async fn try_spawn(self) -> std::io::Result<Upstream> {
        let listener = TcpListener::bind(&self.bind).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            name: self.name.clone(),
            status: self.status,
            proto: self.proto,
            requests: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            fail_counters: Mutex::new(HashMap::new()),
            failing: AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Upstream { name: self.name, addr, state, task })
    }
}

/// Spawns one upstream per `(name, ip)`, all listening on the same port (as a STRICT_DNS
/// cluster with several A records needs). Retries with another port on collisions.
pub async fn spawn_same_port(proto: Proto, hosts: &[(&str, &str)]) -> Vec<Upstream> {
    for _ in 0..50 {
        let (first_name, first_ip) = hosts[0];
        let first = UpstreamBuilder::new(proto).name(first_name).bind(&format!("{first_ip}:0")).spawn().await;
        let port = first.port();
        let mut all = vec![first];
        for (name, ip) in &hosts[1..] {
            match UpstreamBuilder::new(proto).name(name).bind(&format!("{ip}:{port}")).try_spawn().await {
                Ok(u) => all.push(u),
                Err(_) => break,
            }
        }
        if all.len() == hosts.len() {
            return all;
        }
    }
    panic!("could not find a port free on all of {hosts:?}");
}

/// A running echo upstream; stops serving (listener and connections) when dropped.
pub struct Upstream {
    name: String,
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Upstream {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn ip(&self) -> String {
        self.addr.ip().to_string()
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// Requests received so far (counted when the head arrives).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
    /// Connections accepted so far.
    /// Requests received whole: head and the complete body its framing announced.
    pub fn completed(&self) -> usize {
        self.state.completed.load(Ordering::SeqCst)
    }
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
    /// Requests being handled right now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }
    /// Makes health checks of this upstream pass (`true`) or fail (see the module doc).
    pub fn set_healthy(&self, healthy: bool) {
        self.state.failing.store(!healthy, Ordering::SeqCst);
    }
    /// The JSON description of the last request received (see the module doc).
    pub fn last_request(&self) -> Option<Value> {
        self.state.seen.lock().unwrap().last().cloned()
    }
    /// What the last requests received whole looked like (the echo JSON, oldest first), for
    /// upstreams whose answers the test never sees (mirrors).
    pub fn seen(&self) -> Vec<Value> {
        self.state.seen.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    name: String,
    status: Option<u16>,
    proto: Proto,
    requests: AtomicUsize,
    /// Requests whose body arrived whole (as its framing says).
    completed: AtomicUsize,
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    fail_counters: Mutex<HashMap<String, usize>>,
    /// `/healthcheck/fail` was asked (and not `/healthcheck/ok` since).
    failing: AtomicBool,
    /// The JSON description of the last [`SEEN_KEPT`] requests received whole.
    seen: Mutex<Vec<Value>>,
}

/// How many requests [`Upstream::seen`] remembers.
const SEEN_KEPT: usize = 256;

type Body = BoxBody<Bytes, Infallible>;

/// Returned by the service to make hyper drop the connection/stream without answering.
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reset on request")
    }
}
impl std::error::Error for Reset {}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    // Dropping the JoinSet (when this task is aborted) aborts every connection.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let seq = state.connections.fetch_add(1, Ordering::SeqCst) + 1;
                conns.spawn(serve_conn(stream, seq, state.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_conn(stream: TcpStream, conn_seq: usize, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(stream);
    let on_conn = Arc::new(AtomicUsize::new(0));
    let proto = state.proto;
    let svc = service_fn(move |req| {
        let n = on_conn.fetch_add(1, Ordering::SeqCst) + 1;
        let state = state.clone();
        async move {
            state.requests.fetch_add(1, Ordering::SeqCst);
            state.in_flight.fetch_add(1, Ordering::SeqCst);
            let out = handle(&state, conn_seq, n, req).await;
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
            out
        }
    });
    let _ = match proto {
        Proto::Http1 => hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await,
        Proto::H2c => hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, svc).await,
    };
}

/// The `service` of a `grpc.health.v1.HealthCheckRequest` frame (one-byte length: test names
/// are short).
fn grpc_health_service(body: &[u8]) -> String {
    match body.get(5..) {
        Some([0x0a, n, rest @ ..]) => String::from_utf8_lossy(rest.get(..*n as usize).unwrap_or(rest)).into_owned(),
        _ => String::new(),
    }
}

fn first<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn capture_num(re: &str, path: &str) -> Option<u64> {
    regex::Regex::new(re).expect("regex").captures(path).and_then(|c| c[1].parse().ok())
}

async fn handle(
    state: &State,
    conn_seq: usize,
    req_on_conn: usize,
    req: Request<Incoming>,
) -> Result<Response<Body>, Reset> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let h = &parts.headers;

    let mut status = state.status.unwrap_or(200);
    let mut delay_ms = 0;
    if let Some(s) = capture_num(r"/status/(\d{3})", &path) {
        status = s as u16;
    }
    if let Some(d) = capture_num(r"/delay/(\d+)ms", &path) {
        delay_ms = d;
    }
    if let Some(s) = first(h, "x-echo-status").and_then(|s| s.parse().ok()) {
        status = s;
    }
    if let Some(d) = first(h, "x-echo-delay-ms").and_then(|s| s.parse().ok()) {
        delay_ms = d;
    }
    if let Some(times) = first(h, "x-echo-fail-times").and_then(|s| s.parse::<usize>().ok()) {
        let key = first(h, "x-echo-fail-key").unwrap_or("").to_string();
        let seen = {
            let mut counters = state.fail_counters.lock().unwrap();
            let c = counters.entry(key).or_insert(0);
            *c += 1;
            *c
        };
        if seen <= times {
            status = first(h, "x-echo-fail-status").and_then(|s| s.parse().ok()).unwrap_or(503);
        }
    }

    if path == "/healthcheck/fail" || path == "/healthcheck/ok" {
        state.failing.store(path.ends_with("fail"), Ordering::SeqCst);
    }
    let failing = state.failing.load(Ordering::SeqCst);
    if failing && path.starts_with("/healthz") {
        status = 503;
    }
    let collected = body.collect().await.map_err(|_| Reset)?;
    let trailers: Map<String, Value> = collected
        .trailers()
        .map(|t| t.iter().map(|(k, v)| (k.to_string(), Value::String(String::from_utf8_lossy(v.as_bytes()).into()))))
        .into_iter()
        .flatten()
        .collect();
    let body = collected.to_bytes();
    state.completed.fetch_add(1, Ordering::SeqCst);

    let mut headers = Map::new();
    for (name, value) in h {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(v));
            }
        }
    }
    let authority = parts
        .uri
        .authority()
        .map(|a| a.to_string())
        .or_else(|| first(h, "host").map(str::to_string))
        .unwrap_or_default();
    let doc = json!({
        "instance": state.name,
        "method": parts.method.as_str(),
        "path": path,
        "query": query,
        "authority": authority,
        "headers": headers,
        "body_len": body.len(),
        "body_sha256": sha256::hex(&body),
        "trailers": trailers,
        "proto": format!("{:?}", parts.version),
        "conn_seq": conn_seq,
        "req_on_conn": req_on_conn,
    });

    let mut doc = doc;
    let health_check = path == "/grpc.health.v1.Health/Check";
    if health_check {
        doc["grpc_service"] = Value::String(grpc_health_service(&body));
    }
    {
        let mut seen = state.seen.lock().unwrap();
        if seen.len() == SEEN_KEPT {
            seen.remove(0);
        }
        seen.push(doc.clone());
    }
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    if path.contains("/reset") {
        return Err(Reset);
    }
    let grpc = path.starts_with("/grpc") || first(h, "content-type").is_some_and(|c| c.starts_with("application/grpc"));
    let (content_type, payload, trailers) = if health_check {
        // grpc.health.v1.HealthCheckResponse { status: SERVING (1) or NOT_SERVING (2) }
        let serving = if failing { 2 } else { 1 };
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        ("application/grpc", Bytes::from(vec![0, 0, 0, 0, 2, 0x08, serving]), Some(t))
    } else if grpc {
        let json = serde_json::to_vec(&doc).expect("json");
        let mut frame = BytesMut::with_capacity(json.len() + 5);
        frame.extend_from_slice(&[0]);
        frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
        frame.extend_from_slice(&json);
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        t.insert("grpc-message", HeaderValue::from_static("OK"));
        ("application/grpc", frame.freeze(), Some(t))
    } else if let Some(n) = capture_num(r"^/bytes/(\d+)", &path) {
        ("application/octet-stream", Bytes::from(sha256::pattern(n as usize)), None)
    } else if path.starts_with("/echo-body") {
        ("application/octet-stream", body, None)
    } else {
        ("application/json", Bytes::from(serde_json::to_vec(&doc).expect("json")), None)
    };

    let mut resp = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type)
        .header("x-upstream-instance", state.name.as_str());
    if first(h, "x-echo-close") == Some("1") && state.proto == Proto::Http1 {
        resp = resp.header("connection", "close");
    }
    for v in h.get_all("x-echo-response-header") {
        if let Some((k, v)) = v.to_str().ok().and_then(|s| s.split_once(':')) {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.trim().as_bytes()), HeaderValue::from_str(v.trim())) {
                resp = resp.header(k, v);
            }
        }
    }
    let body: Body = match trailers {
        Some(t) => Full::new(payload).with_trailers(async move { Some(Ok(t)) }).boxed(),
        None => Full::new(payload).boxed(),
    };
    Ok(resp.body(body).expect("response"))
}
