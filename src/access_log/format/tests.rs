//! Text and JSON formats rendered from one sample request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Version};

use super::super::{JsonFormat, LineFormat, LogContext};
use super::{Format, DEFAULT_FORMAT};
use crate::config::model::AccessLogFormat;

/// 2026-11-22T03:41:29.102Z
fn start() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_795_318_889, 102_345_678)
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs.iter().map(|(name, value)| (http::HeaderName::from_static(name), HeaderValue::from_static(value))).collect()
}

/// A request through `cluster_a` that got a 200, and the maps it borrows from.
struct Sample {
    request: HeaderMap,
    response: HeaderMap,
}

impl Sample {
    fn new() -> Self {
        Sample {
            request: headers(&[("user-agent", "curl/8"), ("x-request-id", "abc"), ("x-long", "0123456789")]),
            response: headers(&[("x-envoy-upstream-service-time", "2"), ("content-type", "text/plain")]),
        }
    }

    fn ctx(&self) -> LogContext<'_> {
        LogContext {
            start: start(),
            request_headers: &self.request,
            method: "GET",
            path: "/x",
            authority: "example.com",
            scheme: "http",
            protocol: Some(Version::HTTP_11),
            response_code: Some(200),
            response_code_details: Some("via_upstream"),
            response_headers: Some(&self.response),
            response_trailers: None,
            response_flags: "",
            bytes_received: 0,
            bytes_sent: 12,
            duration: Some(Duration::from_micros(3_900)),
            request_duration: Some(Duration::from_millis(1)),
            response_duration: None,
            upstream_host: Some("127.0.0.1:8080".parse().expect("addr")),
            upstream_cluster: Some("cluster_a"),
            upstream_local_address: None,
            upstream_transport_failure_reason: None,
            upstream_request_attempt_count: 1,
            downstream_remote: "[::1]:54321".parse().expect("addr"),
            downstream_local: "10.0.0.5:10000".parse().expect("addr"),
            route_name: None,
            tls: None,
            dynamic_metadata: None,
            local_reply_body: None,
        }
    }
}

fn render(spec: &str, ctx: &LogContext<'_>) -> String {
    let mut out = String::new();
    Format::parse(spec).expect("valid format").render(ctx, &mut out);
    out
}

#[test]
fn default_format_is_envoys_line() {
    let sample = Sample::new();
    let mut out = String::new();
    Format::envoy_default().render(&sample.ctx(), &mut out);
    assert_eq!(
        out,
        "[2026-11-22T03:41:29.102Z] \"GET /x HTTP/1.1\" 200 - 0 12 3 2 \"-\" \"curl/8\" \"abc\" \"example.com\" \
         \"127.0.0.1:8080\"\n"
    );
    assert!(DEFAULT_FORMAT.ends_with("\"%UPSTREAM_HOST%\"\n"));
}

#[test]
fn default_format_with_nothing_known() {
    let request = HeaderMap::new();
    let sample = Sample::new();
    let ctx = LogContext {
        response_code: None,
        response_headers: None,
        duration: None,
        upstream_host: None,
        request_headers: &request,
        protocol: Some(Version::HTTP_2),
        response_flags: "NR",
        ..sample.ctx()
    };
    let mut out = String::new();
    LineFormat::build(&AccessLogFormat::Default).expect("default").render(&ctx, &mut out);
    assert_eq!(
        out,
        "[2026-11-22T03:41:29.102Z] \"GET /x HTTP/2\" 0 NR 0 12 - - \"-\" \"-\" \"-\" \"example.com\" \"-\"\n"
    );
}

#[test]
fn request_header_fallback_and_truncation() {
    let sample = Sample::new();
    let ctx = sample.ctx();
    assert_eq!(render("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", &ctx), "/x");
    assert_eq!(render("%REQ(user-agent?:PATH)%", &ctx), "curl/8");
    assert_eq!(render("%REQ(X-MISSING?X-ALSO-MISSING)%", &ctx), "-");
    assert_eq!(render("%REQ(X-LONG):4%", &ctx), "0123");
    assert_eq!(render("%REQ(X-MISSING?X-LONG):3%", &ctx), "012");
    assert_eq!(render("%REQ(X-LONG):40%", &ctx), "0123456789");
    assert_eq!(render("%REQ(:METHOD)% %REQ(:SCHEME)% %REQ(:AUTHORITY):7%", &ctx), "GET http example");
    assert_eq!(render("%RESP(CONTENT-TYPE):4% %RESP(:STATUS)% %RESP(:PATH)%", &ctx), "text 200 -");
    assert_eq!(render("%TRAILER(GRPC-STATUS)%", &ctx), "-");
}

#[test]
fn truncation_keeps_whole_characters() {
    let mut request = HeaderMap::new();
    request.insert("x-utf8", HeaderValue::from_bytes("héllo".as_bytes()).expect("value"));
    let sample = Sample::new();
    let ctx = LogContext { request_headers: &request, ..sample.ctx() };
    assert_eq!(render("%REQ(X-UTF8):2%", &ctx), "h");
    assert_eq!(render("%REQ(X-UTF8):3%", &ctx), "hé");
}

#[test]
fn other_operators() {
    let trailers = headers(&[("grpc-status", "0")]);
    let sample = Sample::new();
    let ctx = LogContext {
        response_trailers: Some(&trailers),
        route_name: Some("r1"),
        upstream_local_address: Some("127.0.0.1:40000".parse().expect("addr")),
        upstream_transport_failure_reason: Some("connection refused"),
        response_duration: Some(Duration::from_millis(2)),
        protocol: Some(Version::HTTP_10),
        ..sample.ctx()
    };
    let line = "%TRAILER(GRPC-STATUS)% %PROTOCOL% %RESPONSE_CODE_DETAILS% %REQUEST_DURATION% %RESPONSE_DURATION% \
                %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_TRANSPORT_FAILURE_REASON% %ROUTE_NAME% \
                %DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS% \
                %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %BYTES_RECEIVED%";
    assert_eq!(
        render(line, &ctx),
        "0 HTTP/1.0 via_upstream 1 2 cluster_a 127.0.0.1:40000 connection refused r1 [::1]:54321 ::1 \
         10.0.0.5:10000 10.0.0.5 0"
    );
    assert!(!render("%HOSTNAME%", &ctx).is_empty());
}

#[test]
fn percent_literals_and_start_time() {
    let sample = Sample::new();
    let ctx = sample.ctx();
    assert_eq!(render("100%% %RESPONSE_CODE%%%", &ctx), "100% 200%");
    assert_eq!(render("%START_TIME(%Y/%m/%d %H:%M:%S)%", &ctx), "2026/11/22 03:41:29");
    assert_eq!(render("%START_TIME(%s.%3f)%", &ctx), "1795318889.102");
    assert_eq!(render("no operators", &ctx), "no operators");
}

#[test]
fn text_is_written_as_given_unless_a_newline_is_asked_for() {
    let sample = Sample::new();
    let ctx = sample.ctx();
    assert_eq!(render("%RESPONSE_CODE%", &ctx), "200");
    let mut out = String::new();
    for spec in ["%RESPONSE_CODE%", "code=%RESPONSE_CODE%", "%RESPONSE_CODE%\n"] {
        Format::parse(spec).expect("valid").with_trailing_newline().render(&ctx, &mut out);
    }
    assert_eq!(out, "200\ncode=200\n200\n");
}

#[test]
fn bad_formats_name_the_operator() {
    let cases = [
        ("%FOO%", "FOO"),
        ("a %REQ(%", "%REQ(%"),
        ("%RESPONSE_CODE", "%RESPONSE_CODE"),
        ("%REQ(X)", "missing closing '%'"),
        ("%REQ%", "REQ"),
        ("%REQ(A?B?C)%", "A?B?C"),
        ("%REQ(bad header)%", "bad header"),
        ("%PROTOCOL(x)%", "PROTOCOL"),
        ("%REQ(X):%", "max length"),
        ("%START_TIME(%Q)%", "%Q"),
        ("50%", "'%'"),
        ("%lower%", "%lower%"),
    ];
    for (spec, named) in cases {
        let err = Format::parse(spec).expect_err(spec);
        assert!(err.contains(named), "{spec}: {err}");
    }
}

#[test]
fn json_values_are_typed_and_keys_sorted() {
    let sample = Sample::new();
    let ctx = sample.ctx();
    let fields: Vec<(String, String)> = [
        ("code", "%RESPONSE_CODE%"),
        ("bytes", "%BYTES_SENT%"),
        ("duration", "%DURATION%"),
        ("resp_dur", "%RESPONSE_DURATION%"),
        ("proto", "%PROTOCOL%"),
        ("start", "%START_TIME%"),
        ("xff", "%REQ(X-FORWARDED-FOR)%"),
        ("flags", "%RESPONSE_FLAGS%"),
        ("mixed", "%DURATION%ms %REQ(X-FORWARDED-FOR)%"),
        ("quote\"d", "a\"b\\c\t"),
        ("empty", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut out = String::new();
    JsonFormat::parse(&fields).expect("valid").render(&ctx, &mut out);
    assert!(out.ends_with("}\n"), "{out}");
    assert_eq!(
        out,
        "{\"bytes\":12,\"code\":200,\"duration\":3,\"empty\":\"\",\"flags\":\"-\",\"mixed\":\"3ms -\",\
         \"proto\":\"HTTP/1.1\",\"quote\\\"d\":\"a\\\"b\\\\c\\t\",\"resp_dur\":null,\
         \"start\":\"2026-11-22T03:41:29.102Z\",\"xff\":null}\n"
    );
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(parsed["code"], 200);
    assert!(parsed["resp_dur"].is_null());
}

#[test]
fn json_errors_name_the_key() {
    let fields = vec![("ok".to_string(), "%PROTOCOL%".to_string()), ("bad".to_string(), "%NOPE%".to_string())];
    let err = JsonFormat::parse(&fields).expect_err("unknown operator");
    assert!(err.starts_with("bad: ") && err.contains("NOPE"), "{err}");
}

#[test]
fn response_headers_read_are_listed_once() {
    let names = |format: &LineFormat| {
        let mut names = Vec::new();
        format.response_headers(&mut names);
        names.iter().map(|n| n.as_str().to_string()).collect::<Vec<_>>()
    };
    let default = LineFormat::build(&AccessLogFormat::Default).expect("default");
    assert_eq!(names(&default), ["x-envoy-upstream-service-time"]);
    let text = LineFormat::build(&AccessLogFormat::Text(
        "%RESP(A?B)% %RESP(:STATUS)% %REQ(C)% %TRAILER(D)% %RESP(a)%".to_string(),
    ))
    .expect("text");
    assert_eq!(names(&text), ["a", "b"]);
    let json = LineFormat::build(&AccessLogFormat::Json(vec![
        ("x".to_string(), "%RESP(X-Y)%".to_string()),
        ("code".to_string(), "%RESPONSE_CODE%".to_string()),
    ]))
    .expect("json");
    assert_eq!(names(&json), ["x-y"]);
}

#[test]
fn local_reply_body_is_the_direct_responses_body() {
    let sample = Sample::new();
    let ctx = LogContext { local_reply_body: Some("hi"), response_code: None, ..sample.ctx() };
    assert_eq!(render("[%LOCAL_REPLY_BODY%] %RESPONSE_CODE%", &ctx), "[hi] 0");
    let ctx = LogContext { local_reply_body: None, ..sample.ctx() };
    assert_eq!(render("x%LOCAL_REPLY_BODY%y", &ctx), "xy", "nothing, not -");
}
