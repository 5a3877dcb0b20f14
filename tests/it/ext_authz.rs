//! `envoy.filters.http.ext_authz` on loopback against authorization servers written here, as
//! Envoy 1.40 answers (checked side by side): Envoy's ext_authz sandbox with its HTTP and its
//! gRPC service (`tests/fixtures/examples/ext_authz-*.yaml`: "Bearer token1" is allowed and
//! the upstream learns `x-current-user`), the check request's shape, denials with the
//! service's status, headers and body, errors and `failure_mode_allow`, `with_request_body`,
//! per-route settings, the stats and the `UAEX` flag.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::access_log::file_log;
use crate::common::client::{request, Client};
use crate::common::config::{bootstrap, hcm, route_config, router_filter, static_cluster, to_cluster, vhost, with_h2};
use crate::common::legate::{validate, Legate};
use crate::common::{assert_eventually, dead_addr, upstream};

const EXT_AUTHZ: &str = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const PER_ROUTE: &str = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";

/// A check request as an authorization server received it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    /// The gRPC service's decoded `CheckRequest`.
    check: Option<CheckRequest>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An authorization server: its address, what it was asked, and its task.
struct AuthzServer {
    addr: SocketAddr,
    seen: Log,
    task: tokio::task::JoinHandle<()>,
}

impl AuthzServer {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for AuthzServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn serve<F, Fut>(h2: bool, handler: F) -> AuthzServer
where
    F: Fn(Seen) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Log = Arc::default();
    let log = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let (log, handler) = (Arc::clone(&log), handler.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                let (log, handler) = (Arc::clone(&log), handler.clone());
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let check = h2.then(|| decode_check(&body)).flatten();
                    let seen = Seen {
                        method: parts.method.to_string(),
                        path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                        headers: parts.headers,
                        body,
                        check,
                    };
                    log.lock().expect("lock").push(seen.clone());
                    Ok::<_, Infallible>(handler(seen).await)
                }
            });
            let io = TokioIo::new(stream);
            conns.spawn(async move {
                let _ = if h2 {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, svc).await
                } else {
                    hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await
                };
            });
        }
    });
    AuthzServer { addr, seen, task }
}

fn auth(seen: &Seen) -> String {
    match &seen.check {
        Some(c) => c.http().and_then(|h| h.headers.get("authorization").cloned()).unwrap_or_default(),
        None => seen.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
    }
}

/// The HTTP service of the sandbox: "Bearer token1" is user1; "Bearer slow" answers after
/// 2 s, "Bearer boom" with a 503; anyone else gets a 403 with a header and a body.
async fn http_authz() -> AuthzServer {
    serve(false, |seen: Seen| async move {
        let who = auth(&seen);
        let builder = Response::builder();
        let (status, builder, body) = match who.as_str() {
            "Bearer token1" => (
                200,
                builder
                    .header("x-current-user", "user1")
                    .header("x-not-listed", "no")
                    .header("x-envoy-auth-headers-to-remove", "x-secret"),
                "",
            ),
            "Bearer slow" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                (200, builder, "")
            }
            "Bearer boom" => (503, builder.header("x-client", "cl"), "down"),
            _ => (403, builder.header("x-client", "cl").header("content-type", "text/x-denial"), "denied"),
        };
        builder.status(status).body(Full::new(Bytes::from(body)).boxed()).expect("response")
    })
    .await
}

/// The gRPC service of the sandbox: "Bearer token1" is allowed as user1; anyone else is
/// UNAUTHENTICATED with a 401, a header and a body.
async fn grpc_authz() -> AuthzServer {
    serve(true, |seen: Seen| async move {
        let answer = if auth(&seen) == "Bearer token1" {
            CheckResponse {
                status: Some(RpcStatus { code: 0 }),
                denied_response: None,
                ok_response: Some(OkHttpResponse { headers: vec![header("x-current-user", "user1")] }),
            }
        } else {
            CheckResponse {
                status: Some(RpcStatus { code: 16 }),
                denied_response: Some(DeniedHttpResponse {
                    status: Some(HttpStatus { code: 401 }),
                    headers: vec![header("x-why", "bad token")],
                    body: "go away".into(),
                }),
                ok_response: None,
            }
        };
        let msg = answer.encode_to_vec();
        let mut frame = BytesMut::with_capacity(msg.len() + 5);
        frame.extend_from_slice(&[0]);
        frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        frame.extend_from_slice(&msg);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().expect("value"));
        let body = Full::new(frame.freeze()).with_trailers(async move { Some(Ok(trailers)) }).boxed();
        Response::builder().header("content-type", "application/grpc").body(body).expect("response")
    })
    .await
}

fn header(k: &str, v: &str) -> HeaderValueOption {
    HeaderValueOption { header: Some(HeaderValue { key: k.into(), value: v.into() }) }
}

fn decode_check(body: &Bytes) -> Option<CheckRequest> {
    let mut b = body.clone();
    if b.len() < 5 || b.get_u8() != 0 {
        return None;
    }
    let len = b.get_u32() as usize;
    CheckRequest::decode(b.get(..len)?).ok()
}

/// The sandbox's config with its two services filled in.
async fn sandbox(fixture: &str, up: &upstream::Upstream, authz: &AuthzServer) -> Legate {
    let yaml = fixture
        .replace("${UPSTREAM_ADDR}", &up.ip())
        .replace("${UPSTREAM_PORT}", &up.port().to_string())
        .replace("${AUTHZ_ADDR}", &authz.addr.ip().to_string())
        .replace("${AUTHZ_PORT}", &authz.addr.port().to_string());
    Legate::start(yaml).await
}

fn url(legate: &Legate, path: &str) -> String {
    let addr = *legate.listeners().values().next().expect("a listener");
    format!("http://{addr}{path}")
}

/// Envoy's ext_authz sandbox with its HTTP service.
#[tokio::test]
async fn the_http_service_sandbox_allows_token1_as_user1() {
    let up = upstream::http1().spawn().await;
    let authz = http_authz().await;
    let legate = sandbox(include_str!("../fixtures/examples/ext_authz-http-service.yaml"), &up, &authz).await;
    let c = Client::h1();

    let denied = c.get(&url(&legate, "/service")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.text(), "denied");
    assert_eq!(denied.header("x-client"), Some("cl"), "every header of the denial but Host");
    assert_eq!(denied.header("content-type"), Some("text/x-denial"));
    assert_eq!(up.requests(), 0);

    let headers = [("authorization", "Bearer token1"), ("cookie", "c=1"), ("x-secret", "s")];
    let allowed = c.get_with(&url(&legate, "/service?q=1"), &headers).await;
    assert_eq!(allowed.status, StatusCode::OK);
    let echo = allowed.echo();
    assert_eq!(echo["headers"]["x-current-user"], "user1", "allowed_upstream_headers");
    assert!(echo["headers"].get("x-not-listed").is_none());
    assert!(echo["headers"].get("x-secret").is_none(), "x-envoy-auth-headers-to-remove");
    assert_eq!(echo["headers"]["cookie"], "c=1");

    // Envoy's check: the client's method and path, its authority, Authorization, no body.
    let checks = authz.seen();
    let check = checks.last().expect("a check");
    assert_eq!((check.method.as_str(), check.path.as_str()), ("GET", "/service?q=1"));
    let h = &check.headers;
    assert_eq!(h["host"], url(&legate, "").trim_start_matches("http://"));
    assert_eq!(h["authorization"], "Bearer token1");
    assert_eq!(h["content-length"], "0");
    assert_eq!(h["x-envoy-internal"], "true");
    assert_eq!(h["x-envoy-expected-rq-timeout-ms"], "250");
    assert!(h.get("cookie").is_none() && h.get("x-secret").is_none(), "only the allowed headers: {h:?}");

    let other = c.get_with(&url(&legate, "/service"), &[("authorization", "Bearer token2")]).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(legate.stat("http.ingress_http.ext_authz.ok").await, 1);
    assert_eq!(legate.stat("http.ingress_http.ext_authz.denied").await, 2);
    assert_eq!(legate.stat("cluster.upstream-service.ext_authz.denied").await, 2);
    assert_eq!(legate.stat("cluster.ext_authz-http-service.internal.upstream_rq_403").await, 2);
}

/// Envoy's ext_authz sandbox with its gRPC service (h2 to the cluster).
#[tokio::test]
async fn the_grpc_service_sandbox_allows_token1_as_user1() {
    let up = upstream::http1().spawn().await;
    let authz = grpc_authz().await;
    let legate = sandbox(include_str!("../fixtures/examples/ext_authz-grpc-service.yaml"), &up, &authz).await;
    let c = Client::h1();

    let denied = c.get_with(&url(&legate, "/service"), &[("authorization", "Bearer token2")]).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.text(), "go away");
    assert_eq!(denied.header("x-why"), Some("bad token"));
    assert_eq!(up.requests(), 0);

    let post = request(hyper::Method::POST, &url(&legate, "/service/x?q=1"))
        .header("authorization", "Bearer token1")
        .header("x-dup", "1")
        .header("x-dup", "2")
        .body(Full::new(Bytes::from_static(b"hello")))
        .expect("request");
    let allowed = c.send(post).await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(allowed.echo()["headers"]["x-current-user"], "user1");
    assert_eq!(allowed.echo()["body_len"], 5, "the body still goes upstream");

    let seen = authz.seen();
    let call = seen.last().expect("a call");
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/envoy.service.auth.v3.Authorization/Check"));
    assert_eq!(call.headers["content-type"], "application/grpc");
    assert_eq!(call.headers["grpc-timeout"], "250m");
    let check = call.check.as_ref().expect("a CheckRequest");
    let http = check.http().expect("attributes.request.http");
    assert_eq!(
        (http.method.as_str(), http.path.as_str(), http.protocol.as_str()),
        ("POST", "/service/x?q=1", "HTTP/1.1")
    );
    assert_eq!(http.headers["x-dup"], "1,2", "values joined");
    assert_eq!(http.headers[":method"], "POST");
    assert_eq!(http.headers[":path"], "/service/x?q=1");
    assert_eq!(http.size, 5);
    assert!(http.body.is_empty(), "no body without with_request_body");
    let source = check.attributes.as_ref().and_then(|a| a.source.as_ref()).and_then(|p| p.address.as_ref());
    assert_eq!(source.and_then(|a| a.socket_address.as_ref()).map(|s| s.address.as_str()), Some("127.0.0.1"));
    assert_eq!(legate.stat("http.ingress_http.ext_authz.ok").await, 1);
    assert_eq!(legate.stat("http.ingress_http.ext_authz.denied").await, 1);
}

fn ext_authz(config: Value) -> Value {
    let mut typed = json!({ "@type": EXT_AUTHZ });
    if let (Some(t), Value::Object(c)) = (typed.as_object_mut(), config) {
        t.extend(c);
    }
    json!({ "name": "envoy.filters.http.ext_authz", "typed_config": typed })
}

fn http_service(cluster: &str) -> Value {
    json!({ "server_uri": { "uri": "http://authz", "cluster": cluster, "timeout": "0.25s" } })
}

/// A listener `name` whose chain is `filter` then the router, with these routes.
fn listener_with(name: &str, filter: Value, routes: Value, log: Option<Value>) -> Value {
    let mut h = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    h["stat_prefix"] = json!(name);
    h["http_filters"] = json!([filter, router_filter()]);
    if let Some(log) = log {
        h["access_log"] = json!([log]);
    }
    h
}

#[tokio::test]
async fn errors_deny_with_status_on_error_or_pass_in_failure_mode() {
    let up = upstream::http1().spawn().await;
    let authz = http_authz().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let format = json!({ "text_format_source": { "inline_string": "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n" } });
    let strict = ext_authz(json!({ "http_service": http_service("authz"), "status_on_error": { "code": 502 } }));
    let lenient = ext_authz(json!({
        "http_service": http_service("authz"),
        "failure_mode_allow": true,
        "failure_mode_allow_header_add": true,
        "stat_prefix": "lenient",
    }));
    let dead = ext_authz(json!({ "http_service": http_service("dead") }));
    let routes = json!([to_cluster(json!({"prefix": "/"}), "service1")]);
    let yaml = bootstrap()
        .listener_hcm("strict", listener_with("strict", strict, routes.clone(), Some(file_log(&log, Some(format)))))
        .listener_hcm("lenient", listener_with("lenient", lenient, routes.clone(), None))
        .listener_hcm("dead", listener_with("dead", dead, routes, None))
        .cluster(static_cluster("service1", &[up.addr()]))
        .cluster(static_cluster("authz", &[authz.addr]))
        .cluster(static_cluster("dead", &[dead_addr()]))
        .yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();

    let boom = c.get_with(&legate.url("strict", "/a"), &[("authorization", "Bearer boom")]).await;
    assert_eq!((boom.status, boom.text().as_str()), (StatusCode::BAD_GATEWAY, ""), "a 5xx is an error");
    assert!(boom.header("x-client").is_none(), "an error passes nothing of the answer");
    let started = std::time::Instant::now();
    let slow = c.get_with(&legate.url("strict", "/a"), &[("authorization", "Bearer slow")]).await;
    assert_eq!(slow.status, StatusCode::BAD_GATEWAY);
    assert!(started.elapsed() < Duration::from_millis(1500), "the 250 ms timeout ended the check");
    let refused = c.get(&legate.url("dead", "/a")).await;
    assert_eq!((refused.status, refused.text().as_str()), (StatusCode::FORBIDDEN, ""), "403 by default");
    assert_eq!(up.requests(), 0);

    let passed = c.get_with(&legate.url("lenient", "/a"), &[("authorization", "Bearer boom")]).await;
    assert_eq!(passed.status, StatusCode::OK);
    assert_eq!(passed.echo()["headers"]["x-envoy-auth-failure-mode-allowed"], "true");
    assert_eq!(legate.stat("http.lenient.ext_authz.lenient.error").await, 1);
    assert_eq!(legate.stat("http.lenient.ext_authz.lenient.failure_mode_allowed").await, 1);
    assert_eq!(legate.stat("cluster.service1.ext_authz.lenient.failure_mode_allowed").await, 1);
    assert_eq!(legate.stat("http.strict.ext_authz.error").await, 2);
    assert_eq!(legate.stat("http.dead.ext_authz.error").await, 1);

    let denied = c.get(&legate.url("strict", "/a")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let expected = "502 UAEX ext_authz_error\n502 UAEX ext_authz_error\n403 UAEX ext_authz_denied\n";
    assert_eventually!(std::fs::read_to_string(&log).unwrap_or_default() == expected, "the access log lines");
}

#[tokio::test]
async fn with_request_body_sends_the_start_and_routes_configure_the_check() {
    let up = upstream::http1().spawn().await;
    let authz = http_authz().await;
    let grpc = grpc_authz().await;
    let partial = ext_authz(json!({
        "http_service": {
            "server_uri": { "uri": "http://authz", "cluster": "authz", "timeout": "0.25s" },
            "path_prefix": "/check",
            "authorization_request": {
                "allowed_headers": { "patterns": [{ "prefix": "x-b" }] },
                "headers_to_add": [
                    { "key": "x-added", "value": "yes" },
                    // Envoy format strings, as Envoy 1.40 renders them: %REQ% reads the
                    // client's request (its content-length, not the check's).
                    { "key": "x-token", "value": "%REQ(authorization)%" },
                    { "key": "x-length", "value": "%REQ(content-length)%" },
                    { "key": "x-peer", "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" },
                    { "key": "x-proto", "value": "%PROTOCOL% to %UPSTREAM_CLUSTER%" },
                    { "key": "x-literal", "value": "100%% sure" },
                    { "key": "x-missing", "value": "%REQ(x-none)%" },
                ],
            },
        },
        "with_request_body": { "max_request_bytes": 8, "allow_partial_message": true },
    }));
    let whole = ext_authz(json!({
        "grpc_service": { "envoy_grpc": { "cluster_name": "grpc" }, "timeout": "0.25s" },
        "with_request_body": { "max_request_bytes": 8, "pack_as_bytes": true },
    }));
    let mut off = to_cluster(json!({"prefix": "/off"}), "service1");
    off["typed_per_filter_config"] =
        json!({ "envoy.filters.http.ext_authz": { "@type": PER_ROUTE, "disabled": true } });
    let mut nobuf = to_cluster(json!({"prefix": "/nobuf"}), "service1");
    nobuf["typed_per_filter_config"] = json!({ "envoy.filters.http.ext_authz": { "@type": PER_ROUTE,
        "check_settings": { "disable_request_body_buffering": true, "context_extensions": { "k1": "v1" } } } });
    let routes = json!([off, nobuf, to_cluster(json!({"prefix": "/"}), "service1")]);
    let yaml = bootstrap()
        .listener_hcm("partial", listener_with("partial", partial, routes.clone(), None))
        .listener_hcm("whole", listener_with("whole", whole, routes, None))
        .cluster(static_cluster("service1", &[up.addr()]))
        .cluster(static_cluster("authz", &[authz.addr]))
        .cluster(with_h2(static_cluster("grpc", &[grpc.addr])))
        .yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    let post = |url: String, body: &'static [u8]| {
        request(hyper::Method::POST, &url)
            .header("authorization", "Bearer token1")
            .header("x-bz", "1")
            .body(Full::new(Bytes::from_static(body)))
            .expect("request")
    };

    let r = c.send(post(legate.url("partial", "/a"), b"hello body longer than 8")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.echo()["body_len"], 24, "the whole body goes upstream");
    let check = authz.seen().pop().expect("a check");
    assert_eq!(check.path, "/check/a");
    assert_eq!(check.body, "hello bo");
    assert_eq!(check.headers["content-length"], "8");
    assert_eq!(check.headers["x-envoy-auth-partial-body"], "true");
    assert_eq!(check.headers["x-bz"], "1");
    assert_eq!(check.headers["x-added"], "yes");
    assert_eq!(check.headers["x-token"], "Bearer token1");
    assert_eq!(check.headers["x-length"], "24");
    assert_eq!(check.headers["x-peer"], "127.0.0.1");
    assert_eq!(check.headers["x-proto"], "HTTP/1.1 to service1");
    assert_eq!(check.headers["x-literal"], "100% sure");
    assert!(!check.headers.contains_key("x-missing"), "an empty value is left out");

    let off = c.send(post(legate.url("partial", "/off"), b"x")).await;
    assert_eq!(off.status, StatusCode::OK);
    assert_eq!(authz.seen().len(), 1, "disabled on /off");

    let r = c.send(post(legate.url("whole", "/a"), b"short")).await;
    assert_eq!(r.status, StatusCode::OK);
    let http = grpc.seen().pop().and_then(|s| s.check).and_then(|c| c.http().cloned()).expect("a check");
    assert_eq!((http.body.as_slice(), http.raw_body.as_slice()), (&b""[..], &b"short"[..]), "pack_as_bytes");
    assert_eq!(http.headers["x-envoy-auth-partial-body"], "false");
    let too_long = c.send(post(legate.url("whole", "/a"), b"longer than 8")).await;
    assert_eq!((too_long.status, too_long.text().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"));
    assert_eq!(grpc.seen().len(), 1, "a body over the limit is not checked");

    let r = c.send(post(legate.url("whole", "/nobuf"), b"longer than 8")).await;
    assert_eq!(r.status, StatusCode::OK);
    let check = grpc.seen().pop().and_then(|s| s.check).expect("a check");
    let http = check.http().expect("http");
    assert!(http.raw_body.is_empty() && !http.headers.contains_key("x-envoy-auth-partial-body"));
    let extensions = check.attributes.as_ref().map(|a| a.context_extensions.clone()).unwrap_or_default();
    assert_eq!(extensions, HashMap::from([("k1".to_string(), "v1".to_string())]));
}

#[tokio::test]
async fn what_legate_does_not_implement_is_refused_by_name() {
    let filter = ext_authz(json!({ "http_service": http_service("authz"), "include_peer_certificate": true }));
    let routes = json!([to_cluster(json!({"prefix": "/"}), "authz")]);
    let yaml = bootstrap()
        .listener_hcm("main", listener_with("main", filter, routes, None))
        .cluster(static_cluster("authz", &[dead_addr()]))
        .yaml();
    let (_f, run) = validate("envoy.yaml", &yaml).await;
    assert_eq!(run.code(), Some(1));
    assert!(
        run.output.contains("http_filters[0].typed_config.include_peer_certificate: not implemented by legate"),
        "{}",
        run.output
    );
    for (name, fixture) in [
        ("http", include_str!("../fixtures/examples/ext_authz-http-service.yaml")),
        ("grpc", include_str!("../fixtures/examples/ext_authz-grpc-service.yaml")),
    ] {
        let yaml = fixture.replace("${UPSTREAM_ADDR}", "127.0.0.1").replace("${AUTHZ_ADDR}", "127.0.0.1");
        let yaml = yaml.replace("${UPSTREAM_PORT}", "1").replace("${AUTHZ_PORT}", "2");
        let (_f, run) = validate("envoy.yaml", &yaml).await;
        assert_eq!(run.code(), Some(0), "{name}: {}", run.output);
    }
}

// The few messages of envoy.service.auth.v3 the test servers read and write.

#[derive(Clone, PartialEq, Message)]
struct CheckRequest {
    #[prost(message, optional, tag = "1")]
    attributes: Option<AttributeContext>,
}

impl CheckRequest {
    fn http(&self) -> Option<&HttpRequest> {
        self.attributes.as_ref()?.request.as_ref()?.http.as_ref()
    }
}

#[derive(Clone, PartialEq, Message)]
struct AttributeContext {
    #[prost(message, optional, tag = "1")]
    source: Option<Peer>,
    #[prost(message, optional, tag = "4")]
    request: Option<AttrRequest>,
    #[prost(map = "string, string", tag = "10")]
    context_extensions: HashMap<String, String>,
}

#[derive(Clone, PartialEq, Message)]
struct Peer {
    #[prost(message, optional, tag = "1")]
    address: Option<Address>,
}

#[derive(Clone, PartialEq, Message)]
struct Address {
    #[prost(message, optional, tag = "1")]
    socket_address: Option<SocketAddress>,
}

#[derive(Clone, PartialEq, Message)]
struct SocketAddress {
    #[prost(string, tag = "2")]
    address: String,
    #[prost(uint32, tag = "3")]
    port_value: u32,
}

#[derive(Clone, PartialEq, Message)]
struct AttrRequest {
    #[prost(message, optional, tag = "2")]
    http: Option<HttpRequest>,
}

#[derive(Clone, PartialEq, Message)]
struct HttpRequest {
    #[prost(string, tag = "2")]
    method: String,
    #[prost(map = "string, string", tag = "3")]
    headers: HashMap<String, String>,
    #[prost(string, tag = "4")]
    path: String,
    #[prost(int64, tag = "9")]
    size: i64,
    #[prost(string, tag = "10")]
    protocol: String,
    #[prost(bytes = "vec", tag = "11")]
    body: Vec<u8>,
    #[prost(bytes = "vec", tag = "12")]
    raw_body: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct CheckResponse {
    #[prost(message, optional, tag = "1")]
    status: Option<RpcStatus>,
    #[prost(message, optional, tag = "2")]
    denied_response: Option<DeniedHttpResponse>,
    #[prost(message, optional, tag = "3")]
    ok_response: Option<OkHttpResponse>,
}

#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
}

#[derive(Clone, PartialEq, Message)]
struct DeniedHttpResponse {
    #[prost(message, optional, tag = "1")]
    status: Option<HttpStatus>,
    #[prost(message, repeated, tag = "2")]
    headers: Vec<HeaderValueOption>,
    #[prost(string, tag = "3")]
    body: String,
}

#[derive(Clone, PartialEq, Message)]
struct HttpStatus {
    #[prost(int32, tag = "1")]
    code: i32,
}

#[derive(Clone, PartialEq, Message)]
struct OkHttpResponse {
    #[prost(message, repeated, tag = "2")]
    headers: Vec<HeaderValueOption>,
}

#[derive(Clone, PartialEq, Message)]
struct HeaderValueOption {
    #[prost(message, optional, tag = "1")]
    header: Option<HeaderValue>,
}

#[derive(Clone, PartialEq, Message)]
struct HeaderValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}
