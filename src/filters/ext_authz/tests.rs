use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use prost::Message;

use super::decision::{apply_response, Action, Allowed, Decision, ResponseOp};
use super::{bounded, grpc, http as http_service, proto};
use crate::config::ext_authz::HttpService;
use crate::config::model::{StringMatch, StringMatcher};

fn exact(s: &str) -> StringMatcher {
    StringMatcher { kind: StringMatch::Exact(s.to_string()), ignore_case: false }
}

fn headers(list: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in list {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn pairs(list: &[(HeaderName, HeaderValue)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string())).collect()
}

fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn service() -> HttpService {
    HttpService {
        allowed_upstream_headers: vec![exact("x-current-user")],
        allowed_upstream_headers_to_append: vec![exact("x-append")],
        allowed_client_headers_on_success: vec![exact("x-client-ok")],
        ..HttpService::default()
    }
}

#[test]
fn an_http_200_allows_with_the_listed_headers_only() {
    let answer = headers(&[
        ("x-current-user", "user1"),
        ("x-append", "a1"),
        ("x-client-ok", "c"),
        ("x-other", "o"),
        ("x-envoy-auth-headers-to-remove", "x-remove-me, Host ,x-remove-too"),
    ]);
    let Decision::Allow(a) = http_service::decide(&service(), StatusCode::OK, answer, Bytes::new()) else {
        panic!("not allowed")
    };
    assert_eq!(pairs(&a.set), owned(&[("x-current-user", "user1")]));
    assert_eq!(pairs(&a.add), owned(&[("x-append", "a1")]));
    assert_eq!(a.remove, ["x-remove-me", "x-remove-too"], "never host");
    assert_eq!(a.response.len(), 1);
    assert_eq!(a.response[0].action, Action::Add);
}

#[test]
fn only_200_allows_and_5xx_is_an_error() {
    let answer = || headers(&[("x-other", "o"), ("host", "h"), ("www-authenticate", "Basic"), ("date", "d")]);
    let Decision::Deny(d) = http_service::decide(&service(), StatusCode::CREATED, answer(), Bytes::from("no")) else {
        panic!("a 201 is a denial in Envoy")
    };
    assert_eq!(d.status, StatusCode::CREATED);
    assert_eq!(pairs(&d.headers), owned(&[("x-other", "o"), ("www-authenticate", "Basic")]), "all but host");
    assert_eq!(d.body, "no");
    let listed = HttpService { allowed_client_headers: vec![exact("x-none")], ..service() };
    let Decision::Deny(d) = http_service::decide(&listed, StatusCode::FORBIDDEN, answer(), Bytes::new()) else {
        panic!("denied")
    };
    assert_eq!(pairs(&d.headers), owned(&[("www-authenticate", "Basic")]), "the listed ones and Envoy's defaults");
    assert!(matches!(
        http_service::decide(&service(), StatusCode::SERVICE_UNAVAILABLE, answer(), Bytes::new()),
        Decision::Error
    ));
}

#[test]
fn allowed_changes_set_add_append_and_remove() {
    let mut h = headers(&[("x-set", "orig"), ("x-add", "orig"), ("x-join", "orig"), ("x-gone", "1")]);
    let hv = |k: &'static str, v: &'static str| (HeaderName::from_static(k), HeaderValue::from_static(v));
    let a = Allowed {
        set: vec![hv("x-set", "s1"), hv("x-set", "s2")],
        add: vec![hv("x-add", "a1")],
        append: vec![hv("x-join", "j1"), hv("x-absent", "j2")],
        remove: vec![HeaderName::from_static("x-gone")],
        response: Vec::new(),
    };
    a.apply(&mut h);
    let all = |n: &str| h.get_all(n).iter().map(|v| v.to_str().unwrap_or_default().to_string()).collect::<Vec<_>>();
    assert_eq!(all("x-set"), ["s1", "s2"]);
    assert_eq!(all("x-add"), ["orig", "a1"]);
    assert_eq!(all("x-join"), ["orig,j1"]);
    assert!(h.get("x-absent").is_none(), "append only joins an existing header");
    assert!(h.get("x-gone").is_none());
}

#[test]
fn response_headers_follow_their_action() {
    let op = |n: &'static str, v: &'static str, action| ResponseOp {
        name: HeaderName::from_static(n),
        value: HeaderValue::from_static(v),
        action,
    };
    let mut h = headers(&[("x-set", "old"), ("x-if-absent", "old"), ("x-overwrite", "old")]);
    apply_response(
        &[
            op("x-add", "a", Action::Add),
            op("x-set", "s", Action::Set),
            op("x-if-absent", "n", Action::AddIfAbsent),
            op("x-new", "n", Action::AddIfAbsent),
            op("x-overwrite", "o", Action::OverwriteIfExists),
            op("x-missing", "o", Action::OverwriteIfExists),
        ],
        &mut h,
    );
    assert_eq!(h["x-add"], "a");
    assert_eq!(h["x-set"], "s");
    assert_eq!(h["x-if-absent"], "old");
    assert_eq!(h["x-new"], "n");
    assert_eq!(h["x-overwrite"], "o");
    assert!(h.get("x-missing").is_none());
}

fn option(k: &str, v: &str, append: Option<bool>, action: i32) -> proto::HeaderValueOption {
    proto::HeaderValueOption {
        header: Some(proto::HeaderValue { key: k.into(), value: v.into(), raw_value: Vec::new() }),
        append: append.map(|value| proto::BoolValue { value }),
        append_action: action,
    }
}

#[test]
fn grpc_ok_answers_set_unless_appending() {
    let answer = proto::CheckResponse {
        status: Some(proto::RpcStatus { code: 0 }),
        denied_response: None,
        ok_response: Some(proto::OkHttpResponse {
            headers: vec![
                option("x-default", "d", None, 0),
                option("x-if-absent", "n", None, 1),
                option("x-append", "a", Some(true), 0),
                option("host", "evil", None, 0),
            ],
            headers_to_remove: vec!["x-gone".into(), ":path".into(), "host".into()],
            response_headers_to_add: vec![
                option("x-r0", "0", None, 0),
                option("x-r1", "1", None, 1),
                option("x-r2", "2", None, 2),
                option("x-r3", "3", None, 3),
                option("x-rf", "f", Some(false), 0),
                option("x-rt", "t", Some(true), 2),
            ],
        }),
    };
    let Decision::Allow(a) = grpc::decide(answer) else { panic!("not allowed") };
    assert_eq!(pairs(&a.set), owned(&[("x-default", "d"), ("x-if-absent", "n")]), "Envoy sets them all");
    assert_eq!(pairs(&a.append), owned(&[("x-append", "a")]));
    assert_eq!(a.remove, ["x-gone"]);
    let actions: Vec<Action> = a.response.iter().map(|o| o.action).collect();
    use Action::*;
    assert_eq!(actions, [Add, AddIfAbsent, Set, OverwriteIfExists, Set, Add]);
}

#[test]
fn grpc_denials_carry_their_response_or_a_bare_403() {
    let bare = proto::CheckResponse { status: Some(proto::RpcStatus { code: 7 }), ..Default::default() };
    let Decision::Deny(d) = grpc::decide(bare) else { panic!("denied") };
    assert_eq!((d.status, d.headers.len(), d.body.len()), (StatusCode::FORBIDDEN, 0, 0));
    let full = proto::CheckResponse {
        status: Some(proto::RpcStatus { code: 16 }),
        denied_response: Some(proto::DeniedHttpResponse {
            status: Some(proto::HttpStatus { code: 401 }),
            headers: vec![option("x-why", "bad", None, 0)],
            body: "go away".into(),
        }),
        ok_response: None,
    };
    let Decision::Deny(d) = grpc::decide(full) else { panic!("denied") };
    assert_eq!(d.status, StatusCode::UNAUTHORIZED);
    assert_eq!(pairs(&d.headers), owned(&[("x-why", "bad")]));
    assert_eq!(d.body, "go away");
}

#[test]
fn check_requests_decode_with_envoys_field_numbers() {
    // The same message as a generic reader sees it: field 1 attributes, 4 request, 2 http.
    let msg = proto::CheckRequest {
        attributes: Some(proto::AttributeContext {
            request: Some(proto::Request {
                time: None,
                http: Some(proto::HttpRequest { method: "GET".into(), path: "/x".into(), ..Default::default() }),
            }),
            ..Default::default()
        }),
    };
    let bytes = msg.encode_to_vec();
    // attributes(1, len) { request(4, len) { http(2, len) { method(2) "GET", path(4) "/x" } } }
    assert_eq!(bytes, [0x0a, 13, 0x22, 11, 0x12, 9, 0x12, 3, b'G', b'E', b'T', 0x22, 2, b'/', b'x']);
    assert_eq!(proto::CheckRequest::decode(&bytes[..]).ok(), Some(msg));
}

#[tokio::test(start_paused = true)]
async fn a_check_that_outlives_its_timeout_is_an_error() {
    let started = tokio::time::Instant::now();
    let slow = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Decision::Allow(Allowed::default())
    };
    assert!(matches!(bounded(Duration::from_millis(250), slow).await, Decision::Error));
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    let quick = async { Decision::Allow(Allowed::default()) };
    assert!(matches!(bounded(Duration::from_millis(250), quick).await, Decision::Allow(_)));
}

#[test]
fn the_grpc_check_request_carries_the_request() {
    let (mut parts, ()) = http::Request::post("/a?q=1").body(()).expect("request").into_parts();
    parts.headers = headers(&[("host", "h.example"), ("x-dup", "1"), ("x-dup", "2"), ("content-length", "5")]);
    let buckets = crate::filters::local_ratelimit::ConnBuckets::default();
    let clusters = std::collections::HashMap::new();
    let info = crate::filters::RequestInfo {
        full_path: "/a?q=1",
        method: "POST",
        authority: "h.example",
        cluster: None,
        remote: [127, 0, 0, 9].into(),
        direct_remote: ([127, 0, 0, 9], 4000).into(),
        local: ([127, 0, 0, 1], 10000).into(),
        tls: None,
        rate_limits: None,
        conn_buckets: &buckets,
        clusters: &clusters,
        route_name: None,
    };
    let settings = crate::config::ext_authz::CheckSettings {
        context_extensions: vec![("k".into(), "v".into())],
        disable_request_body_buffering: false,
    };
    let req = super::CheckRequest {
        parts: &parts,
        info,
        body: Some((Bytes::from_static(b"hello"), true)),
        settings: Some(&settings),
        local_ip: None,
    };
    let c = grpc::check_request(&req, false);
    let a = c.attributes.as_ref().expect("attributes");
    let h = a.request.as_ref().and_then(|r| r.http.as_ref()).expect("http");
    assert_eq!((h.method.as_str(), h.path.as_str(), h.host.as_str()), ("POST", "/a?q=1", "h.example"));
    assert_eq!((h.body.as_slice(), h.raw_body.len(), h.size), (&b"hello"[..], 0, 5));
    assert_eq!(h.headers["x-dup"], "1,2");
    assert_eq!(h.headers[":authority"], "h.example");
    assert_eq!(h.headers["x-envoy-auth-partial-body"], "false");
    assert!(!h.headers.contains_key("host"), "the authority is :authority");
    assert_eq!(a.context_extensions["k"], "v");
    let source = a.source.as_ref().and_then(|p| p.address.as_ref()).and_then(|a| a.socket_address.as_ref());
    assert_eq!(source.map(|s| (s.address.as_str(), s.port_value)), Some(("127.0.0.9", 4000)));
    let packed = grpc::check_request(&req, true);
    let h = packed.attributes.and_then(|a| a.request).and_then(|r| r.http).expect("http");
    assert_eq!((h.body.len(), h.raw_body.as_slice()), (0, &b"hello"[..]));
}

#[test]
fn headers_to_add_are_formats_rendered_against_the_client_request() {
    let (mut parts, ()) = http::Request::post("/a?q=1").body(()).expect("request").into_parts();
    parts.headers = headers(&[("host", "h.example"), ("x-client", "abc"), ("content-length", "5")]);
    let buckets = crate::filters::local_ratelimit::ConnBuckets::default();
    let clusters = std::collections::HashMap::new();
    let info = crate::filters::RequestInfo {
        full_path: "/a?q=1",
        method: "POST",
        authority: "h.example",
        cluster: Some("up"),
        remote: [127, 0, 0, 9].into(),
        direct_remote: ([127, 0, 0, 9], 4000).into(),
        local: ([127, 0, 0, 1], 10000).into(),
        tls: None,
        rate_limits: None,
        conn_buckets: &buckets,
        clusters: &clusters,
        route_name: Some("r1"),
    };
    let req = super::CheckRequest { parts: &parts, info, body: None, settings: None, local_ip: None };
    let adds: Vec<(HeaderName, crate::routing::header_ops::HeaderText)> = [
        ("x-client", "%REQ(x-client)%"),
        ("x-peer", "%DOWNSTREAM_REMOTE_ADDRESS%"),
        ("x-where", "%ROUTE_NAME%/%UPSTREAM_CLUSTER%/%REQ(:path)%"),
        ("x-literal", "a%%b"),
        ("x-empty", "%REQ(x-none)%"),
        ("x-length", "%REQ(content-length)%"),
    ]
    .into_iter()
    .map(|(k, v)| {
        let text = crate::routing::header_ops::header_text(v).unwrap_or_else(|e| panic!("{e}"));
        (HeaderName::from_static(k), text)
    })
    .collect();
    let t = http_service::template(&HttpService::default(), &adds, &req);
    let h = |n: &str| t.headers.get(n).and_then(|v| v.to_str().ok());
    assert_eq!(h("x-client"), Some("abc"), "not an allowed header, but the format reads the client's");
    assert_eq!(h("x-peer"), Some("127.0.0.9:4000"));
    assert_eq!(h("x-where"), Some("r1/up//a?q=1"));
    assert_eq!(h("x-literal"), Some("a%b"));
    assert_eq!(h("x-empty"), None);
    assert_eq!((h("x-length"), h("content-length")), (Some("5"), Some("0")));
}
