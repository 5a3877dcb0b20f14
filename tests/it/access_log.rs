//! Access logs as files on disk: Envoy's default line for each way a request ends (through
//! the upstream, no route, no healthy host, connect failure, route timeout), custom text and
//! JSON formats, reopening after logrotate (admin and SIGUSR1), and the sink stats.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::assert_eventually;
use crate::common::client::{Client, Resp};
use crate::common::config::{bootstrap, hcm, route_config, static_cluster, static_cluster_with, to_cluster, vhost};
use crate::common::dead_addr;
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

/// `%START_TIME%` in Envoy's default form.
const START: &str = r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\]";
/// A request id legate generated (UUID version 4).
const UUID: &str = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";

/// An `envoy.access_loggers.file` entry; `format` is its `log_format` (`None`: the default).
fn file_log(path: &Path, format: Option<Value>) -> Value {
    let mut typed = json!({
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": path.to_str().expect("utf-8 path"),
    });
    if let Some(format) = format {
        typed["log_format"] = format;
    }
    json!({ "name": "envoy.access_loggers.file", "typed_config": typed })
}

/// Listener `main` logging through `logs`, routing `/ok` to the upstream, `/empty` to a
/// cluster without endpoints, `/dead` to a port where nothing listens and `/slow` to the
/// upstream with a 200 ms route timeout.
async fn start(up: &Upstream, dead: SocketAddr, logs: Vec<Value>) -> Legate {
    let routes = json!([
        to_cluster(json!({"prefix": "/ok"}), "service1"),
        to_cluster(json!({"prefix": "/empty"}), "empty"),
        to_cluster(json!({"prefix": "/dead"}), "dead"),
        {"match": {"prefix": "/slow"}, "route": {"cluster": "service1", "timeout": "0.2s"}},
    ]);
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    manager["access_log"] = json!(logs);
    Legate::start(
        bootstrap()
            .listener_hcm("main", manager)
            .cluster(static_cluster("service1", &[up.addr()]))
            .cluster(static_cluster_with("empty", vec![]))
            .cluster(static_cluster("dead", &[dead]))
            .yaml(),
    )
    .await
}

/// A tempdir for log files, and the path of `access.log` in it.
fn log_dir() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    (dir, path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The file's lines once it has at least `n` of them (lines are written after the response).
async fn lines(path: &Path, n: usize) -> Vec<String> {
    assert_eventually!(read(path).lines().count() >= n, "{n} lines in {}:\n{}", path.display(), read(path));
    read(path).lines().map(str::to_string).collect()
}

/// A regex for one line in Envoy's default format; `None` fields are `-`, patterns are
/// regexes (`\d+` for durations).
struct Line<'a> {
    request: &'a str,
    code: u16,
    flags: &'a str,
    received: usize,
    sent: usize,
    service_time: &'a str,
    xff: &'a str,
    user_agent: &'a str,
    request_id: &'a str,
    authority: String,
    upstream: String,
}

impl Line<'_> {
    fn regex(&self) -> Regex {
        let pattern = format!(
            r#"^{START} "{}" {} {} {} {} \d+ {} "{}" "{}" "{}" "{}" "{}"\n"#,
            regex::escape(self.request),
            self.code,
            self.flags,
            self.received,
            self.sent,
            self.service_time,
            self.xff,
            self.user_agent,
            self.request_id,
            regex::escape(&self.authority),
            regex::escape(&self.upstream),
        );
        Regex::new(&pattern).expect("line regex")
    }
}

/// Asserts the whole file content (each line with its `\n`) line by line.
fn assert_lines(text: &str, expected: &[Line<'_>]) {
    let got: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(got.len(), expected.len(), "line count in:\n{text}");
    for (line, want) in got.iter().zip(expected) {
        let re = want.regex();
        assert!(re.is_match(line), "line\n  {line:?}\ndoes not match\n  {}", re.as_str());
    }
}

#[tokio::test]
async fn default_format_for_each_way_a_request_ends() {
    let up = upstream::http1().spawn().await;
    let dead = dead_addr();
    let (_dir, path) = log_dir();
    let legate = start(&up, dead, vec![file_log(&path, None)]).await;
    let c = Client::h1();
    let authority = legate.listener("main").to_string();
    let get = |path: &str| {
        let url = legate.url("main", path);
        let c = c.clone();
        async move { c.get_with(&url, &[("user-agent", "access-test/1")]).await }
    };

    let ok: Resp = c
        .get_with(
            &legate.url("main", "/ok/a?q=1"),
            &[("user-agent", "access-test/1"), ("x-request-id", "req-1"), ("x-forwarded-for", "10.0.0.1")],
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.echo()["headers"]["x-request-id"], "req-1", "a client's request id is kept");
    let generated = get("/ok/b").await;
    assert_eq!(generated.status, 200);
    let sent_id = generated.echo()["headers"]["x-request-id"].as_str().expect("x-request-id upstream").to_string();
    let posted = c.post(&legate.url("main", "/ok/post"), "hello").await;
    assert_eq!(posted.status, 200);
    let no_route = get("/nowhere").await;
    assert_eq!(no_route.status, 404);
    let no_host = get("/empty").await;
    assert_eq!(no_host.status, 503);
    let refused = get("/dead").await;
    assert_eq!(refused.status, 503);
    let timeout = get("/slow/delay/5000ms").await;
    assert_eq!(timeout.status, 504);

    lines(&path, 7).await;
    let upstream = up.addr().to_string();
    let base = |request, code, flags, sent: &Resp, upstream: &str| Line {
        request,
        code,
        flags,
        received: 0,
        sent: sent.body.len(),
        service_time: "-",
        xff: "-",
        user_agent: "access-test/1",
        request_id: UUID,
        authority: authority.clone(),
        upstream: upstream.to_string(),
    };
    assert_lines(
        &read(&path),
        &[
            Line {
                service_time: r"\d+",
                xff: r"10\.0\.0\.1",
                request_id: "req-1",
                ..base("GET /ok/a?q=1 HTTP/1.1", 200, "-", &ok, &upstream)
            },
            Line {
                service_time: r"\d+",
                request_id: &sent_id,
                ..base("GET /ok/b HTTP/1.1", 200, "-", &generated, &upstream)
            },
            Line {
                received: 5,
                service_time: r"\d+",
                user_agent: "-",
                ..base("POST /ok/post HTTP/1.1", 200, "-", &posted, &upstream)
            },
            base("GET /nowhere HTTP/1.1", 404, "NR", &no_route, "-"),
            base("GET /empty HTTP/1.1", 503, "UH", &no_host, "-"),
            base("GET /dead HTTP/1.1", 503, "UF", &refused, &dead.to_string()),
            base("GET /slow/delay/5000ms HTTP/1.1", 504, "UT", &timeout, &upstream),
        ],
    );
}
