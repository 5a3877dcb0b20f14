//! The gRPC translating filters on loopback against a gRPC service written here (h2c, a
//! key-value store as in Envoy's grpc-bridge sandbox), answers checked against Envoy 1.40:
//! `grpc_http1_bridge` (trailers turned into HTTP/1.1 headers and statuses, protobuf
//! upgrade, query dropped, the sandbox's two proxies) and `grpc_web` (binary and text, the
//! trailer frame, a non-gRPC answer turned into `grpc-status`).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;

use crate::common::client::{request, Client, Resp};
use crate::common::config::{bootstrap, direct, hcm, route_config, router_filter, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;

const BRIDGE: &str = "type.googleapis.com/envoy.extensions.filters.http.grpc_http1_bridge.v3.Config";
const WEB: &str = "type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb";

/// A response body of frames given up front.
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(Ok))
    }
    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

fn frame(msg: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8];
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    f
}

fn trailers(status: u32, message: &str) -> Frame<Bytes> {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from(status));
    t.insert("grpc-message", HeaderValue::from_str(message).unwrap_or(HeaderValue::from_static("")));
    Frame::trailers(t)
}

/// The key-value service: `/kv.KV/Set` (`key=value`), `/kv.KV/Get` (`key`; NOT_FOUND in
/// trailers), `/kv.KV/List` (three messages), `/kv.KV/Deny` (trailers-only PERMISSION_DENIED).
/// Every answer carries `x-seen` with the path, `content-type` and `te` it got.
async fn kv_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let store: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let store = Arc::clone(&store);
                    async move { Ok::<_, Infallible>(answer(req, &store).await) }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn answer(req: Request<hyper::body::Incoming>, store: &Mutex<HashMap<Vec<u8>, Vec<u8>>>) -> Response<Frames> {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let seen = format!("{target} {} {}", h("content-type"), h("te"));
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let msg = body.get(5..).unwrap_or_default().to_vec();
    let mut frames = VecDeque::new();
    let mut head = Response::builder().header("content-type", "application/grpc").header("x-seen", seen);
    match path.as_str() {
        "/kv.KV/Set" => {
            let text = String::from_utf8_lossy(&msg).into_owned();
            let (k, v) = text.split_once('=').unwrap_or((&text, ""));
            store.lock().unwrap_or_else(|e| e.into_inner()).insert(k.into(), v.into());
            frames.push_back(Frame::data(Bytes::from(frame(b""))));
            frames.push_back(trailers(0, ""));
        }
        "/kv.KV/Get" => match store.lock().unwrap_or_else(|e| e.into_inner()).get(&msg) {
            Some(v) => {
                frames.push_back(Frame::data(Bytes::from(frame(v))));
                frames.push_back(trailers(0, ""));
            }
            None => frames.push_back(trailers(5, "key not found: 100%")),
        },
        "/kv.KV/List" => {
            for part in [&b"a"[..], b"bb", b"ccc"] {
                frames.push_back(Frame::data(Bytes::from(frame(part))));
            }
            frames.push_back(trailers(0, ""));
        }
        _ => head = head.header("grpc-status", "7").header("grpc-message", "denied"),
    }
    head.body(Frames(frames)).unwrap_or_else(|_| Response::new(Frames(VecDeque::new())))
}

fn filter(name: &str, typed: serde_json::Value) -> serde_json::Value {
    json!({ "name": name, "typed_config": typed })
}

fn proxy(filter: serde_json::Value, service: SocketAddr) -> String {
    let mut manager =
        hcm(route_config(json!([vhost("v", &["*"], json!([to_cluster(json!({"prefix": "/"}), "grpc")]))])));
    manager["http_filters"] = json!([filter, router_filter()]);
    let mut cluster = static_cluster("grpc", &[service]);
    cluster["typed_extension_protocol_options"] = json!({ "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": { "http2_protocol_options": {} } } });
    bootstrap().listener_hcm("main", manager).cluster(cluster).yaml()
}

async fn call(c: &Client, url: &str, content_type: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> Resp {
    let mut b = request(hyper::Method::POST, url).header("content-type", content_type);
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    c.send(b.body(Full::new(Bytes::from(body))).expect("request")).await
}

#[tokio::test]
async fn the_bridge_turns_trailers_into_http1_headers() {
    let service = kv_service().await;
    let typed = json!({ "@type": BRIDGE, "upgrade_protobuf_to_grpc": true, "ignore_query_parameters": true });
    let legate = Legate::start(proxy(filter("bridge", typed), service)).await;
    let c = Client::h1();
    let url = |p: &str| legate.url("main", p);
    let grpc = "application/grpc";

    let r = call(&c, &url("/kv.KV/Set?trace=1"), grpc, frame(b"foo=bar"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!((r.header("grpc-status"), r.header("grpc-message")), (Some("0"), Some("")));
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(r.header("x-seen"), Some("/kv.KV/Set application/grpc -"), "query dropped, no te added");
    assert!(r.trailers.is_none());

    let r = call(&c, &url("/kv.KV/Get"), grpc, frame(b"foo"), &[]).await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &frame(b"bar")[..]));

    // NOT_FOUND in the trailers: 503, the status and message as headers.
    let r = call(&c, &url("/kv.KV/Get"), grpc, frame(b"nope"), &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("grpc-status"), Some("5"));
    assert_eq!(r.header("grpc-message"), Some("key not found: 100%"));
    assert_eq!(r.header("content-length"), Some("0"));

    // Trailers-only: passed through as it came.
    let r = call(&c, &url("/kv.KV/Deny"), grpc, frame(b""), &[]).await;
    assert_eq!((r.status.as_u16(), r.header("grpc-status")), (200, Some("7")));

    // The whole stream read before answering.
    let r = call(&c, &url("/kv.KV/List"), grpc, frame(b""), &[]).await;
    assert_eq!(r.header("content-length"), Some("21"));
    assert_eq!(&r.body[..], &[frame(b"a"), frame(b"bb"), frame(b"ccc")].concat()[..]);

    // upgrade_protobuf_to_grpc: framed on the way up, the first frame header taken off on
    // the way back.
    let r = call(&c, &url("/kv.KV/Get"), "application/x-protobuf", b"foo".to_vec(), &[]).await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"bar"[..]));
    assert_eq!(r.header("x-seen"), Some("/kv.KV/Get application/grpc -"));

    // HTTP/2 clients are not bridged: they get the trailers as trailers.
    let r = call(&Client::h2c(), &url("/kv.KV/Get"), grpc, frame(b"nope"), &[]).await;
    assert_eq!((r.status.as_u16(), r.header("grpc-status")), (200, None));
    assert_eq!(r.trailers.as_ref().and_then(|t| t.get("grpc-status")).map(|v| v.as_bytes()), Some(&b"5"[..]));
    assert_eq!(r.header("x-seen"), Some("/kv.KV/Get application/grpc -"));
}

/// Envoy's grpc-bridge sandbox: an HTTP/1.1 client (the sandbox's Python `requests`) talks to
/// the client proxy with `Host: grpc`, which forwards over HTTP/1.1 to the server proxy,
/// which routes gRPC over h2 to the service. Sets and gets go through both proxies.
#[tokio::test]
async fn the_grpc_bridge_sandbox_sets_and_gets_through_both_proxies() {
    let service = kv_service().await;
    let ports: Vec<u16> = crate::common::free_ports(4);
    let server = include_str!("../fixtures/examples/grpc-bridge-server.yaml")
        .replace("${LISTEN_PORT}", &ports[0].to_string())
        .replace("${ADMIN_PORT}", &ports[1].to_string())
        .replace("${SERVICE_PORT}", &service.port().to_string());
    let client = include_str!("../fixtures/examples/grpc-bridge-client.yaml")
        .replace("${LISTEN_PORT}", &ports[2].to_string())
        .replace("${ADMIN_PORT}", &ports[3].to_string())
        .replace("${SERVER_PROXY_PORT}", &ports[0].to_string());
    let _server = Legate::start(server).await;
    let _client = crate::common::legate::config(client).arg("--service-cluster").arg("client").spawn().await;
    let c = Client::h1();
    let url = format!("http://127.0.0.1:{}/kv.KV/", ports[2]);
    let host = [("host", "grpc")];

    let r = call(&c, &format!("{url}Set"), "application/grpc", frame(b"foo=bar"), &host).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&c, &format!("{url}Get"), "application/grpc", frame(b"foo"), &host).await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &frame(b"bar")[..]));
    assert_eq!(r.header("content-length"), Some("8"));
    // Only the virtual host `grpc` is served.
    let r = call(&c, &format!("{url}Get"), "application/grpc", frame(b"foo"), &[]).await;
    assert_eq!(r.header("grpc-status"), Some("12"), "no route: a gRPC local reply");
}

#[tokio::test]
async fn add_user_agent_names_the_local_cluster_and_node() {
    let up = crate::common::upstream::http1().spawn().await;
    let mut manager = hcm(route_config(json!([vhost("v", &["*"], json!([to_cluster(json!({"prefix": "/"}), "c")]))])));
    manager["add_user_agent"] = json!(true);
    let yaml = bootstrap().listener_hcm("main", manager).cluster(static_cluster("c", &[up.addr()])).yaml();
    let legate = crate::common::legate::config(yaml)
        .arg("--service-cluster")
        .arg("front")
        .arg("--service-node")
        .arg("front-1")
        .spawn()
        .await;
    let c = Client::h1();
    let echo = c.get_with(&legate.url("main", "/"), &[("x-envoy-downstream-service-cluster", "forged")]).await.echo();
    assert_eq!(echo["headers"]["x-envoy-downstream-service-cluster"], "front");
    assert_eq!(echo["headers"]["x-envoy-downstream-service-node"], "front-1");
    assert_eq!(echo["headers"]["user-agent"], "front", "the client sent none");
    let echo = c.get_with(&legate.url("main", "/"), &[("user-agent", "curl")]).await.echo();
    assert_eq!(echo["headers"]["user-agent"], "curl");
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= c.len() { A[(n >> shift) as usize & 63] as char } else { '=' });
        }
    }
    out
}

#[tokio::test]
async fn grpc_web_requests_reach_a_grpc_service_and_come_back_as_grpc_web() {
    let service = kv_service().await;
    let legate = Legate::start(proxy(filter("web", json!({ "@type": WEB })), service)).await;
    let c = Client::h1();
    let url = |p: &str| legate.url("main", p);
    call(&c, &url("/kv.KV/Set"), "application/grpc-web", frame(b"k=v"), &[]).await;

    let r = call(&c, &url("/kv.KV/Get"), "application/grpc-web+proto", frame(b"k"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
    assert_eq!(r.header("x-seen"), Some("/kv.KV/Get application/grpc trailers"));
    let trailer = b"\x80\0\0\0\x1egrpc-status:0\r\ngrpc-message:\r\n";
    assert_eq!(&r.body[..], &[&frame(b"v")[..], trailer].concat()[..]);
    assert!(r.trailers.is_none());

    // Text both ways: each frame base64-encoded on its own, the trailer frame too.
    let r = call(
        &c,
        &url("/kv.KV/List"),
        "application/grpc-web-text",
        b64(&frame(b"")).into_bytes(),
        &[("accept", "application/grpc-web-text")],
    )
    .await;
    assert_eq!(r.header("content-type"), Some("application/grpc-web-text+proto"));
    let want = [b64(&frame(b"a")), b64(&frame(b"bb")), b64(&frame(b"ccc")), b64(trailer)].concat();
    assert_eq!(r.text(), want);

    // NOT_FOUND in the trailers: in the trailer frame, percent-encoding kept.
    let r = call(&c, &url("/kv.KV/Get"), "application/grpc-web", frame(b"x"), &[]).await;
    assert_eq!(&r.body[..], b"\x80\0\0\0\x31grpc-status:5\r\ngrpc-message:key not found: 100%\r\n");
    // Trailers-only: counted from the headers.
    let r = call(&c, &url("/kv.KV/Deny?x=1"), "application/grpc-web", frame(b""), &[]).await;
    assert_eq!(r.header("grpc-status"), Some("7"));

    // Not base64: Envoy's 400, turned into a gRPC-Web status; the connection closes (the
    // request did not end well). Over h2 the converted answer keeps its `content-length: 0`.
    let bad = "Bad gRPC-web request, invalid base64 data.";
    for client in [Client::h1(), Client::h2c()] {
        let r = call(&client, &url("/kv.KV/Get"), "application/grpc-web-text", b"AA*AAAN".to_vec(), &[]).await;
        assert_eq!((r.status.as_u16(), r.header("grpc-status")), (400, Some("13")));
        assert_eq!(r.header("grpc-message"), Some(bad));
        assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
        assert_eq!(r.header("content-length"), Some("0"));
        assert!(r.body.is_empty());
    }
    let r = call(&c, &url("/kv.KV/Get"), "application/grpc-web-text", b"AAAAAAF".to_vec(), &[]).await;
    assert_eq!((r.status.as_u16(), r.header("grpc-message")), (400, Some(bad)));
    assert_eq!(r.header("connection"), Some("close"));

    // Envoy's stats: per service and method, each grpc-status, success or failure, total;
    // nothing for the answers that carried no grpc-status of the upstream's.
    let stats = legate.stats().await;
    let mut web: Vec<(&str, u64)> =
        stats.iter().filter_map(|(k, v)| k.strip_prefix("cluster.grpc.grpc-web.").map(|k| (k, *v))).collect();
    web.sort();
    let want = [
        ("kv.KV.Deny.7", 1),
        ("kv.KV.Deny.failure", 1),
        ("kv.KV.Deny.total", 1),
        ("kv.KV.Get.0", 1),
        ("kv.KV.Get.5", 1),
        ("kv.KV.Get.failure", 1),
        ("kv.KV.Get.success", 1),
        ("kv.KV.Get.total", 2),
        ("kv.KV.List.0", 1),
        ("kv.KV.List.success", 1),
        ("kv.KV.List.total", 1),
        ("kv.KV.Set.0", 1),
        ("kv.KV.Set.success", 1),
        ("kv.KV.Set.total", 1),
    ];
    assert_eq!(web, want);
    assert_eq!(stats.get("cluster.grpc.upstream_rq_503"), None, "the client's fault is not the cluster's");
}

#[tokio::test]
async fn grpc_web_turns_an_answer_that_is_not_grpc_into_a_status() {
    let up = crate::common::upstream::http1().spawn().await;
    let routes = json!([direct(json!({"prefix": "/direct"}), "50% done"), to_cluster(json!({"prefix": "/"}), "c")]);
    let mut manager = hcm(route_config(json!([vhost("v", &["*"], routes)])));
    manager["http_filters"] = json!([filter("web", json!({ "@type": WEB })), router_filter()]);
    let yaml = bootstrap().listener_hcm("main", manager).cluster(static_cluster("c", &[up.addr()])).yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    let r = call(&c, &legate.url("main", "/status/404"), "application/grpc-web", frame(b"x"), &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
    assert_eq!(r.header("grpc-status"), Some("12"));
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.body.is_empty());
    // A local reply to a gRPC-Web request is not a gRPC one: its text becomes the message.
    let r = call(&c, &legate.url("main", "/direct"), "application/grpc-web", frame(b"x"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("grpc-status"), Some("2"), "200 without gRPC: UNKNOWN");
    assert_eq!(r.header("grpc-message"), Some("50%25 done"));
    assert!(r.body.is_empty());
    // No grpc-status came from an upstream: nothing counted.
    assert!(legate.stats().await.keys().all(|k| !k.contains("grpc-web")));
}
