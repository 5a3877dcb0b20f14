//! Envoy's header value formatters in `request_headers_to_add` / `response_headers_to_add` at
//! every level, as Envoy 1.40 renders them: operators of the access log, empty values left
//! out unless `keep_empty_value`, `%%`, overwrite before append within a level, and an
//! unknown operator refused at load naming the field.

use serde_json::json;

use crate::common::client::Client;
use crate::common::config::{bootstrap, route_config, static_cluster};
use crate::common::legate::{self, Legate};
use crate::common::upstream;

fn add(key: &str, value: &str) -> serde_json::Value {
    json!({ "header": { "key": key, "value": value } })
}

#[tokio::test]
async fn values_are_formatted_at_every_level() {
    let up = upstream::http1().spawn().await;
    let mut rc = route_config(json!([{
        "name": "www", "domains": ["*"],
        "request_headers_to_add": [
            add("x-req", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %PROTOCOL% %UPSTREAM_CLUSTER% %REQ(x-in)%"),
            add("x-miss", "%REQ(x-nope)%"),
            { "header": { "key": "x-kept", "value": "%REQ(x-nope)%" }, "keep_empty_value": true },
            add("x-pct", "100%%"),
            add("x-alt", "%REQ(x-nope?x-in)%|%REQ(x-in):2%|%RESPONSE_CODE%|%RESPONSE_FLAGS%|%UPSTREAM_HOST%"),
            add("x-dup", "a"),
            { "header": { "key": "x-dup", "value": "b" }, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD" },
        ],
        "response_headers_to_add": [
            add("x-resp", "%RESP(x-up)% %RESPONSE_CODE% %REQ(x-in)% %REQ(:METHOD)% %RESPONSE_FLAGS%"),
            add("x-host", "%UPSTREAM_HOST%"),
        ],
        "routes": [
            { "match": { "prefix": "/direct" }, "direct_response": { "status": 202 } },
            { "match": { "prefix": "/" }, "name": "r1", "route": { "cluster": "service1" },
              "response_headers_to_add": [add("x-route", "%ROUTE_NAME% %DOWNSTREAM_LOCAL_ADDRESS%")] },
        ],
    }]));
    rc["response_headers_to_add"] = json!([add("x-rc", "rc-%UPSTREAM_CLUSTER%")]);
    let legate =
        Legate::start(bootstrap().listener("main", rc).cluster(static_cluster("service1", &[up.addr()])).yaml()).await;
    let c = Client::h1();
    let r = c.get_with(&legate.url("main", "/x"), &[("x-in", "hello"), ("x-echo-response-header", "x-up: u1")]).await;
    let echo = r.echo();
    let h = &echo["headers"];
    assert_eq!(h["x-req"], "127.0.0.1 HTTP/1.1 service1 hello");
    assert_eq!(h.get("x-miss"), None, "an empty value is not added");
    assert_eq!(h["x-kept"], "");
    assert_eq!(h["x-pct"], "100%");
    assert_eq!(h["x-alt"], "hello|he|0|-|", "nothing of the response is known yet");
    assert_eq!(h["x-dup"], "b,a", "a level overwrites, then appends");
    assert_eq!(r.header("x-resp"), Some("u1 200 hello GET -"));
    assert_eq!(r.header("x-host"), Some(up.addr().to_string().as_str()));
    let local = legate.listener("main").to_string();
    assert_eq!(r.header("x-route"), Some(format!("r1 {local}").as_str()));
    assert_eq!(r.header("x-rc"), Some("rc-service1"));
    // Envoy formats a direct response's headers before it knows its own answer.
    let r = c.get_with(&legate.url("main", "/direct"), &[("x-in", "hello")]).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("x-resp"), Some("0 hello GET -"));
    assert_eq!(r.header("x-rc"), Some("rc-"));
}

#[tokio::test]
async fn an_unknown_operator_is_a_config_error_naming_the_field() {
    let rc = route_config(json!([{
        "name": "www", "domains": ["*"],
        "response_headers_to_add": [add("x-a", "%NOT_AN_OPERATOR%")],
        "routes": [{ "match": { "prefix": "/" }, "direct_response": { "status": 200 } }],
    }]));
    let (_file, run) = legate::validate("bad.yaml", &bootstrap().listener("main", rc).yaml()).await;
    assert_eq!(run.code(), Some(1), "{}", run.output);
    assert!(run.output.contains("response_headers_to_add[0].header.value"), "{}", run.output);
    assert!(run.output.contains("NOT_AN_OPERATOR"), "{}", run.output);
}
