use std::net::SocketAddr;
use std::time::SystemTime;

use http::header::{HeaderMap, HeaderValue};

use super::{apply_adds, header_text, HeaderAdd, HeaderText, Target};
use crate::access_log::LogContext;
use crate::config::model::AppendAction;

fn add(name: &str, value: &str, action: AppendAction, keep_empty: bool) -> HeaderAdd {
    HeaderAdd {
        name: name.parse().expect("test header name"),
        value: header_text(value).expect("test header value"),
        action,
        keep_empty,
    }
}

fn ctx<'a>(req: &'a HeaderMap) -> LogContext<'a> {
    let remote: SocketAddr = "127.0.0.2:4000".parse().expect("addr");
    LogContext {
        start: SystemTime::UNIX_EPOCH,
        request_headers: req,
        method: "GET",
        path: "/p?q",
        authority: "h",
        scheme: "http",
        protocol: Some(http::Version::HTTP_11),
        response_code: Some(201),
        response_code_details: None,
        response_headers: None,
        response_trailers: None,
        response_flags: "",
        bytes_received: 0,
        bytes_sent: 0,
        duration: None,
        request_duration: None,
        response_duration: None,
        upstream_host: None,
        upstream_cluster: Some("c1"),
        upstream_local_address: None,
        upstream_transport_failure_reason: None,
        upstream_request_attempt_count: 0,
        downstream_remote: remote,
        downstream_local: remote,
        route_name: None,
        tls: None,
        dynamic_metadata: None,
        local_reply_body: None,
    }
}

fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name).iter().map(|v| v.to_str().unwrap_or("?").to_string()).collect()
}

#[test]
fn a_value_without_operators_is_static_and_percent_percent_is_a_percent() {
    assert!(matches!(header_text("plain").expect("ok"), HeaderText::Static(v) if v == "plain"));
    assert!(matches!(header_text("100%%").expect("ok"), HeaderText::Static(v) if v == "100%"));
    assert!(matches!(header_text("%PROTOCOL%").expect("ok"), HeaderText::Formatted(_)));
    assert!(header_text("%NOPE%").expect_err("unknown").contains("NOPE"));
    assert!(header_text("50%").is_err());
}

#[test]
fn formatted_values_read_the_request_and_missing_ones_are_empty_and_left_out() {
    let mut req = HeaderMap::new();
    req.insert("x-in", HeaderValue::from_static("v1"));
    let adds = [
        add("x-echo", "%REQ(x-in)%-%RESPONSE_CODE%", AppendAction::Append, false),
        add(
            "x-cl",
            "%UPSTREAM_CLUSTER% %PROTOCOL% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
            AppendAction::Append,
            false,
        ),
        add("x-miss", "%REQ(x-nope)%", AppendAction::Append, false),
        add("x-kept", "%REQ(x-nope)%", AppendAction::Append, true),
        add("x-alt", "%REQ(x-nope?x-in)%|%REQ(x-in):1%|%RESPONSE_FLAGS%", AppendAction::Append, false),
    ];
    let base = ctx(&req);
    let mut target = req.clone();
    apply_adds(&mut target, &adds, Some(&base), Target::Request);
    assert_eq!(values(&target, "x-echo"), ["v1-201"]);
    assert_eq!(values(&target, "x-cl"), ["c1 HTTP/1.1 127.0.0.2"]);
    assert!(target.get("x-miss").is_none());
    assert_eq!(values(&target, "x-kept"), [""]);
    assert_eq!(values(&target, "x-alt"), ["v1|v|-"]);
}

#[test]
fn a_level_overwrites_before_it_appends_deciding_on_the_headers_it_found() {
    let mut h = HeaderMap::new();
    h.insert("x-old", HeaderValue::from_static("o"));
    let adds = [
        add("x-dup", "a", AppendAction::Append, false),
        add("x-dup", "b", AppendAction::OverwriteOrAdd, false),
        // Absent when the level started: added even though x-dup exists by now.
        add("x-new", "n", AppendAction::AddIfAbsent, false),
        add("x-old", "o2", AppendAction::AddIfAbsent, false),
        add("x-gone", "g", AppendAction::OverwriteIfExists, false),
        add("x-old", "o3", AppendAction::OverwriteIfExists, false),
        add("x-empty", "", AppendAction::Append, false),
    ];
    apply_adds(&mut h, &adds, None, Target::Request);
    assert_eq!(values(&h, "x-dup"), ["b", "a"]);
    assert_eq!(values(&h, "x-new"), ["n"]);
    assert_eq!(values(&h, "x-old"), ["o3"]);
    assert!(h.get("x-gone").is_none());
    assert!(h.get("x-empty").is_none());
}

#[test]
fn a_response_value_reads_the_response_as_the_level_found_it() {
    let req = HeaderMap::new();
    let mut resp = HeaderMap::new();
    resp.insert("x-up", HeaderValue::from_static("u1"));
    let adds = [
        add("x-up", "changed", AppendAction::OverwriteOrAdd, false),
        add("x-copy", "%RESP(x-up)%", AppendAction::Append, false),
    ];
    apply_adds(&mut resp, &adds, Some(&ctx(&req)), Target::Response);
    assert_eq!(values(&resp, "x-copy"), ["u1"]);
    assert_eq!(values(&resp, "x-up"), ["changed"]);
}
