//! The access-log format parser (Envoy's `%OPERATOR(ARG):N%` grammar) and rendering: a format
//! that compiles renders, as text and as a `json_format` value, for a request whose header
//! values come from the input too; a JSON line is always one valid JSON object.
//!
//! Input: the format, then optionally `\n--headers--\n` and header values, one per line, set
//! as `x-a`, `x-b`, ... and `user-agent`.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Version};
use legate::access_log::context::LogContext;
use legate::access_log::LineFormat;
use legate::config::model::AccessLogFormat;
use libfuzzer_sys::fuzz_target;

const HEADERS: &str = "\n--headers--\n";
const NAMES: [&str; 4] = ["x-a", "x-b", "user-agent", "x-request-id"];

fn context<'a>(request: &'a HeaderMap, response: &'a HeaderMap) -> LogContext<'a> {
    LogContext {
        start: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123),
        request_headers: request,
        method: "GET",
        path: "/p?q=1",
        authority: "example.com",
        scheme: "http",
        protocol: Some(Version::HTTP_11),
        response_code: Some(200),
        response_code_details: Some("via_upstream"),
        response_headers: Some(response),
        response_trailers: Some(response),
        response_flags: "UF,URX",
        bytes_received: 3,
        bytes_sent: 12,
        tls: None,
        duration: Some(Duration::from_micros(3_900)),
        request_duration: Some(Duration::from_millis(1)),
        response_duration: None,
        upstream_host: Some("127.0.0.1:8080".parse().expect("addr")),
        upstream_cluster: Some("cluster_a"),
        upstream_local_address: None,
        upstream_transport_failure_reason: Some("connection refused"),
        upstream_request_attempt_count: 2,
        downstream_remote: "[::1]:54321".parse().expect("addr"),
        downstream_local: "127.0.0.1:10000".parse().expect("addr"),
        route_name: Some("r"),
        dynamic_metadata: None,
        local_reply_body: Some("no healthy upstream"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (spec, values) = text.split_once(HEADERS).unwrap_or((text, ""));
    let mut headers = HeaderMap::new();
    for (name, value) in NAMES.iter().zip(values.lines()) {
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    let ctx = context(&headers, &headers);
    let text_format = LineFormat::build(&AccessLogFormat::Text(spec.to_string()));
    let json_format = LineFormat::build(&AccessLogFormat::Json(vec![
        ("value".to_string(), spec.to_string()),
        ("code".to_string(), "%RESPONSE_CODE%".to_string()),
    ]));
    assert_eq!(text_format.is_ok(), json_format.is_ok(), "text and JSON disagree on {spec:?}");
    if let Ok(f) = text_format {
        let mut names = Vec::new();
        f.response_headers(&mut names);
        let mut out = String::new();
        f.render(&ctx, &mut out);
    }
    if let Ok(f) = json_format {
        let mut out = String::new();
        f.render(&ctx, &mut out);
        let line = out.strip_suffix('\n').unwrap_or_else(|| panic!("no newline: {out:?}"));
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?} from {spec:?}"));
        assert!(v.is_object(), "{line}");
    }
});
