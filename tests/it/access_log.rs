//! Access logs as files on disk: Envoy's default line for each way a request ends (through
//! the upstream, no route, no healthy host, connect failure, route timeout), custom text and
//! JSON formats, reopening after logrotate (admin and SIGUSR1), and the sink stats.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use regex::Regex;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::client::{Client, Resp};
use crate::common::config::{bootstrap, hcm, route_config, static_cluster, static_cluster_with, to_cluster, vhost};
use crate::common::dead_addr;
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};
use crate::common::{assert_eventually, EVENTUALLY};

/// `%START_TIME%` in Envoy's default form.
const START: &str = r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\]";
/// A request id legate generated (UUID version 4).
const UUID: &str = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";

/// An `envoy.access_loggers.file` entry; `format` is its `log_format` (`None`: the default).
pub(crate) fn file_log(path: &Path, format: Option<Value>) -> Value {
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
/// upstream with a 200 ms route timeout; `/rw` goes to the upstream as `/ok/x` for host
/// `rewritten.example`.
async fn start(up: &Upstream, dead: SocketAddr, logs: Vec<Value>) -> Legate {
    Legate::start(yaml(up, dead, logs)).await
}

/// The config [`start`] runs.
fn yaml(up: &Upstream, dead: SocketAddr, logs: Vec<Value>) -> String {
    let routes = json!([
        to_cluster(json!({"prefix": "/ok"}), "service1"),
        to_cluster(json!({"prefix": "/empty"}), "empty"),
        to_cluster(json!({"prefix": "/dead"}), "dead"),
        {"match": {"prefix": "/slow"}, "route": {"cluster": "service1", "timeout": "0.2s"}},
        {"match": {"prefix": "/rw"}, "route": {
            "cluster": "service1", "prefix_rewrite": "/ok/x", "host_rewrite_literal": "rewritten.example",
        }},
    ]);
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    manager["access_log"] = json!(logs);
    bootstrap()
        .listener_hcm("main", manager)
        .cluster(static_cluster("service1", &[up.addr()]))
        .cluster(static_cluster_with("empty", vec![]))
        .cluster(static_cluster("dead", &[dead]))
        .yaml()
}

/// A tempdir for log files, and the path of `access.log` in it.
pub(crate) fn log_dir() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    (dir, path)
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The file's lines once it has at least `n` of them (lines are written after the response).
pub(crate) async fn lines(path: &Path, n: usize) -> Vec<String> {
    assert_eventually!(read(path).lines().count() >= n, "{n} lines in {}:\n{}", path.display(), read(path));
    read(path).lines().map(str::to_string).collect()
}

/// One line in Envoy's default format, as a regex: the `&str` fields are regexes (`-` for a
/// missing value, `\d+` for a duration), `request` and the addresses are literal.
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

#[tokio::test]
async fn text_and_json_formats() {
    let up = upstream::http1().spawn().await;
    let (dir, text_path) = log_dir();
    let json_path = dir.path().join("access.json");
    let text_format = "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% %REQ(:METHOD)% %REQ(:AUTHORITY)% \
                       %REQ(:PATH)% %REQ(X-ENVOY-ORIGINAL-PATH)% %REQ(X-NOPE)% %BYTES_RECEIVED% \
                       %RESPONSE_CODE_DETAILS% %REQ(USER-AGENT):5% 100%%\n";
    let json_format = json!({
        "code": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%", "up": "%UPSTREAM_HOST%", "mix": "x %RESPONSE_CODE% y",
        "missing": "%REQ(X-NOPE)%", "cl": "%UPSTREAM_CLUSTER%", "dur": "%DURATION%", "proto": "%PROTOCOL%",
    });
    let legate = start(
        &up,
        dead_addr(),
        vec![
            file_log(&text_path, Some(json!({ "text_format": text_format }))),
            file_log(&json_path, Some(json!({ "json_format": json_format }))),
        ],
    )
    .await;
    let c = Client::h1();
    let ua = [("user-agent", "access-test/1")];
    assert_eq!(c.get_with(&legate.url("main", "/ok"), &ua).await.status, 200);
    let rewritten = c.get_with(&legate.url("main", "/rw/abc?z=1"), &ua).await;
    assert_eq!(rewritten.echo()["path"], "/ok/x/abc", "{}", rewritten.text());
    // Envoy counts no body bytes for a request it answers before reading the body.
    assert_eq!(c.post(&legate.url("main", "/nowhere"), "hello").await.status, 404);
    assert_eq!(c.get_with(&legate.url("main", "/empty"), &ua).await.status, 503);

    let auth = legate.listener("main").to_string();
    lines(&text_path, 4).await;
    assert_eq!(
        read(&text_path),
        format!(
            "200 - service1 GET {auth} /ok - - 0 via_upstream acces 100%\n\
             200 - service1 GET rewritten.example /ok/x/abc?z=1 /rw/abc?z=1 - 0 via_upstream acces 100%\n\
             404 NR - POST {auth} /nowhere - - 0 route_not_found - 100%\n\
             503 UH empty GET {auth} /empty - - 0 no_healthy_upstream acces 100%\n"
        )
    );

    let up = up.addr();
    let json_lines = lines(&json_path, 4).await;
    // Keys sorted, numbers bare, a lone missing value null, a missing value in text `-`.
    let dur = Regex::new(r#""dur":\d+,"#).expect("regex");
    let got: Vec<String> = json_lines.iter().map(|l| dur.replace(l, r#""dur":0,"#).into_owned()).collect();
    assert_eq!(
        got,
        [
            format!(r#"{{"cl":"service1","code":200,"dur":0,"flags":"-","missing":null,"mix":"x 200 y","proto":"HTTP/1.1","up":"{up}"}}"#),
            format!(r#"{{"cl":"service1","code":200,"dur":0,"flags":"-","missing":null,"mix":"x 200 y","proto":"HTTP/1.1","up":"{up}"}}"#),
            r#"{"cl":null,"code":404,"dur":0,"flags":"NR","missing":null,"mix":"x 404 y","proto":"HTTP/1.1","up":null}"#.to_string(),
            r#"{"cl":"empty","code":503,"dur":0,"flags":"UH","missing":null,"mix":"x 503 y","proto":"HTTP/1.1","up":null}"#.to_string(),
        ]
    );
}

/// Logs one request to `path`, then renames the file away as logrotate does; returns the
/// rotated file's path.
async fn log_then_rotate(legate: &Legate, path: &Path) -> PathBuf {
    assert_eq!(Client::h1().get(&legate.url("main", "/ok/before")).await.status, 200);
    lines(path, 1).await;
    let rotated = path.with_extension("log.1");
    std::fs::rename(path, &rotated).expect("rotate");
    rotated
}

/// After a reopen was asked for: sends requests, one at a time and each logged before the
/// next, until one is logged in a new file at `path`. Checks that no line was lost or written
/// twice and that each file holds only its side of the reopen; returns how many it sent.
async fn requests_after_reopen(legate: &Legate, path: &Path, rotated: &Path) -> usize {
    let c = Client::h1();
    let both = || read(rotated).lines().count() + read(path).lines().count();
    let deadline = Instant::now() + EVENTUALLY;
    let mut sent = 0;
    while !read(path).contains(" /ok/after/") {
        assert!(Instant::now() < deadline, "no line in a new {} within {EVENTUALLY:?}", path.display());
        sent += 1;
        assert_eq!(c.get(&legate.url("main", &format!("/ok/after/{sent}"))).await.status, 200);
        assert_eventually!(both() == 1 + sent, "{} lines:\n{}\n--\n{}", 1 + sent, read(rotated), read(path));
    }
    let request_of = |line: &str| line.split('"').nth(1).unwrap_or_default().to_string();
    let all: Vec<String> = read(rotated).lines().chain(read(path).lines()).map(request_of).collect();
    let expected: Vec<String> = std::iter::once("GET /ok/before HTTP/1.1".to_string())
        .chain((1..=sent).map(|i| format!("GET /ok/after/{i} HTTP/1.1")))
        .collect();
    assert_eq!(all, expected, "every line once, in order, across the rotation");
    assert_eq!(read(path).lines().count(), 1, "only the last line in the new file");
    sent
}

#[tokio::test]
async fn reopen_logs_admin_writes_a_fresh_file() {
    let up = upstream::http1().spawn().await;
    let (_dir, path) = log_dir();
    let legate = start(&up, dead_addr(), vec![file_log(&path, None)]).await;
    let rotated = log_then_rotate(&legate, &path).await;
    let r = legate.admin_post("/reopen_logs").await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "OK\n".to_string()));
    // The admin answers once the reopen is asked for: the very next line goes to a new file.
    assert_eq!(requests_after_reopen(&legate, &path, &rotated).await, 1);
    assert_eq!(legate.stat("filesystem.reopen_failed").await, 0);
}

#[tokio::test]
async fn sigusr1_writes_a_fresh_file() {
    let up = upstream::http1().spawn().await;
    let (_dir, path) = log_dir();
    let mut legate = start(&up, dead_addr(), vec![file_log(&path, None)]).await;
    let rotated = log_then_rotate(&legate, &path).await;
    legate.signal("USR1");
    // The signal is handled some time after `kill` returns, so lines may still reach the
    // rotated file for a while; none is lost.
    requests_after_reopen(&legate, &path, &rotated).await;
    assert!(legate.running(), "SIGUSR1 does not stop legate");
}

/// `/stats` names for a file sink (see `Sink::stat_name`).
fn dropped_stat(path: &Path) -> String {
    let name: String =
        path.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("access_log.{}.dropped", name.trim_start_matches('_'))
}

const FILESYSTEM: [&str; 5] = [
    "filesystem.reopen_failed",
    "filesystem.write_buffered",
    "filesystem.write_completed",
    "filesystem.write_failed",
    "filesystem.write_total_buffered",
];

#[tokio::test]
async fn sink_stats_start_at_zero_and_count_writes() {
    let up = upstream::http1().spawn().await;
    let (_dir, path) = log_dir();
    let legate = start(&up, dead_addr(), vec![file_log(&path, None)]).await;
    let stats = legate.stats().await;
    let dropped = dropped_stat(&path);
    assert_eq!(stats.get(&dropped), Some(&0), "{dropped} in /stats: {stats:?}");
    for name in FILESYSTEM {
        assert_eq!(stats.get(name), Some(&0), "{name} in /stats");
    }
    let prometheus = legate.admin_get("/stats/prometheus").await.text();
    let metric = format!("envoy_{}", dropped.replace('.', "_"));
    assert!(prometheus.contains(&format!("\n{metric} 0\n")), "{metric} in:\n{prometheus}");

    let c = Client::h1();
    for _ in 0..3 {
        assert_eq!(c.get(&legate.url("main", "/ok")).await.status, 200);
    }
    lines(&path, 3).await;
    assert_eventually!(legate.stat("filesystem.write_buffered").await == 3, "3 lines buffered");
    let stats = legate.stats().await;
    let completed = stats.get("filesystem.write_completed").copied().unwrap_or(0);
    assert!((1..=3).contains(&completed), "1 to 3 writes for 3 lines: {completed}");
    assert_eq!(stats.get("filesystem.write_total_buffered"), Some(&0));
    assert_eq!(stats.get("filesystem.write_failed"), Some(&0));
    assert_eq!(stats.get(&dropped), Some(&0));
}

#[tokio::test]
async fn filesystem_stats_exist_without_access_logs() {
    let up = upstream::http1().spawn().await;
    let legate = start(&up, dead_addr(), vec![]).await;
    let stats = legate.stats().await;
    for name in FILESYSTEM {
        assert_eq!(stats.get(name), Some(&0), "{name} in /stats, as in Envoy");
    }
    assert!(!stats.keys().any(|k| k.starts_with("access_log.")), "{stats:?}");
}

#[tokio::test]
async fn failed_writes_are_counted_and_requests_go_on() {
    let up = upstream::http1().spawn().await;
    // Every write to /dev/full fails (ENOSPC).
    let legate = start(&up, dead_addr(), vec![file_log(Path::new("/dev/full"), None)]).await;
    assert_eq!(legate.stats().await.get("access_log.dev_full.dropped"), Some(&0));
    let c = Client::h1();
    for i in 1..=3 {
        assert_eq!(c.get(&legate.url("main", "/ok")).await.status, 200);
        // Each line is written (and fails) before the next is sent: three separate writes.
        assert_eventually!(legate.stat("filesystem.write_failed").await == i, "{i} failed writes");
    }
    assert_eq!(legate.stat("filesystem.write_buffered").await, 3);
    assert_eq!(legate.stat("filesystem.write_completed").await, 0);
    assert_eq!(legate.stat("filesystem.write_total_buffered").await, 0, "failed lines are not kept");
    let warnings = legate.output().matches("access log write failed").count();
    assert_eq!(warnings, 1, "one warning for a run of failures:\n{}", legate.output());
}

#[tokio::test]
async fn failed_reopen_is_counted_and_the_old_file_stays_in_use() {
    let up = upstream::http1().spawn().await;
    let (_dir, path) = log_dir();
    let legate = start(&up, dead_addr(), vec![file_log(&path, None)]).await;
    let rotated = log_then_rotate(&legate, &path).await;
    // A directory where the file was: it cannot be opened for writing.
    std::fs::create_dir(&path).expect("mkdir");
    assert_eq!(legate.admin_post("/reopen_logs").await.status, 200);
    assert_eventually!(legate.stat("filesystem.reopen_failed").await == 1, "a failed reopen");
    assert_eq!(Client::h1().get(&legate.url("main", "/ok/after")).await.status, 200);
    let rotated_lines = lines(&rotated, 2).await;
    assert!(rotated_lines[1].contains(" /ok/after "), "{rotated_lines:?}");
}

/// A FIFO at `path` with its read end open (so that legate can open it for writing) and
/// never read unless the test does: a sink that stops taking lines once the pipe is full.
fn stuck_fifo(path: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let made = std::process::Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).expect("open the read end")
}

/// Reads what is in the FIFO now, without waiting.
fn read_available(fifo: &mut std::fs::File, into: &mut Vec<u8>) {
    use std::io::Read;
    let mut chunk = vec![0u8; 1 << 16];
    // A pipe holds a bounded amount; each read takes up to 64 KiB of it.
    for _ in 0..1024 {
        match fifo.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => into.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("read the FIFO: {e}"),
        }
    }
}

/// Logged requests with a 30 KB user-agent, so that a few hundred fill the 8 MiB queue.
fn big_user_agent() -> String {
    "u".repeat(30 * 1024)
}

#[tokio::test]
async fn a_stuck_sink_drops_lines_and_counts_them_while_requests_go_on() {
    let up = upstream::http1().spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.fifo");
    let mut fifo = stuck_fifo(&path);
    let legate = start(&up, dead_addr(), vec![file_log(&path, None)]).await;
    let dropped = dropped_stat(&path);
    assert_eq!(legate.stats().await.get(&dropped), Some(&0));

    let c = Client::h1();
    let ua = big_user_agent();
    let mut sent = 0u64;
    // 8 MiB of queue in 30 KB lines is under 300 requests; 2,000 is the bound.
    while legate.stat(&dropped).await == 0 {
        assert!(sent < 2000, "no line dropped after {sent} requests");
        for _ in 0..20 {
            let r = c.get_with(&legate.url("main", "/ok"), &[("user-agent", &ua)]).await;
            assert_eq!(r.status, 200, "requests are answered while the sink is stuck");
            sent += 1;
        }
    }
    let buffered = legate.stat("filesystem.write_total_buffered").await;
    assert!(buffered >= 7 * 1024 * 1024, "the byte bound was reached: {buffered} bytes buffered");

    // Unstick the sink: every line sent is either read here or counted as dropped.
    let mut got = Vec::new();
    assert_eventually!(
        {
            read_available(&mut fifo, &mut got);
            got.iter().filter(|b| **b == b'\n').count() as u64 + legate.stat(&dropped).await == sent
        },
        "{sent} lines read or dropped; read {}, dropped {}",
        got.iter().filter(|b| **b == b'\n').count(),
        legate.stat(&dropped).await
    );
    assert_eventually!(legate.stat("filesystem.write_total_buffered").await == 0, "nothing left buffered");
    // The sink works again.
    assert_eq!(c.get(&legate.url("main", "/ok/again")).await.status, 200);
    assert_eventually!(
        {
            read_available(&mut fifo, &mut got);
            String::from_utf8_lossy(&got).contains("\"GET /ok/again HTTP/1.1\"")
        },
        "the next line reaches the sink"
    );
}

#[tokio::test]
async fn sigterm_exits_with_a_stuck_sink() {
    let up = upstream::http1().spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.fifo");
    let _fifo = stuck_fifo(&path);
    let mut legate = crate::common::legate::config(yaml(&up, dead_addr(), vec![file_log(&path, None)]))
        .arg("--drain-time-s")
        .arg("1")
        .spawn()
        .await;
    let ua = big_user_agent();
    // 150 KB of lines: more than a pipe holds, so the write blocks for good.
    for _ in 0..5 {
        let r = Client::h1().get_with(&legate.url("main", "/ok"), &[("user-agent", &ua)]).await;
        assert_eq!(r.status, 200);
    }
    let status = legate.stop_with_sigterm().await;
    assert_eq!(status.code(), Some(0), "{}", legate.output());
}

/// A server that reads what a connection sends and closes it without answering (UC).
async fn closing_upstream() -> SocketAddr {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("local_addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(EVENTUALLY, s.read(&mut buf)).await;
        }
    });
    addr
}

/// A STRICT_DNS cluster of one endpoint with a `hostname` (what `auto_host_rewrite` uses).
fn named_cluster(name: &str, hostname: &str, addr: SocketAddr) -> serde_json::Value {
    json!({
        "name": name, "type": "STRICT_DNS", "connect_timeout": "1s", "dns_lookup_family": "V4_ONLY",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "hostname": hostname,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": addr.port()}},
        }}]}]},
    })
}

/// What Envoy 1.40 logs when the upstream fails (checked against it with the same format and
/// requests): the body bytes it had read on a failed connect, the transport error in
/// `%RESPONSE_CODE_DETAILS%` and `%UPSTREAM_TRANSPORT_FAILURE_REASON%`, and the rewritten
/// authority: a literal always, a host's name only once a connection to it was made.
#[tokio::test]
async fn upstream_failures_log_envoys_details_and_bytes() {
    let up = upstream::http1().spawn().await;
    let closer = closing_upstream().await;
    let (_dir, path) = log_dir();
    let format = "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %RESPONSE_CODE_DETAILS% %REQ(:AUTHORITY)% \
                  %UPSTREAM_TRANSPORT_FAILURE_REASON%\n";
    let routes = json!([
        to_cluster(json!({"prefix": "/dead"}), "dead"),
        to_cluster(json!({"prefix": "/closer"}), "closer"),
        {"match": {"prefix": "/autodead"}, "route": {"cluster": "named_dead", "auto_host_rewrite": true}},
        {"match": {"prefix": "/auto"}, "route": {"cluster": "named", "auto_host_rewrite": true}},
        {"match": {"prefix": "/litdead"}, "route": {"cluster": "dead", "host_rewrite_literal": "lit.example"}},
        {"match": {"prefix": "/lit"}, "route": {"cluster": "up", "host_rewrite_literal": "lit.example"}},
    ]);
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    manager["access_log"] = json!([file_log(&path, Some(json!({ "text_format": format })))]);
    let legate = Legate::start(
        bootstrap()
            .listener_hcm("main", manager)
            .cluster(static_cluster("dead", &[dead_addr()]))
            .cluster(static_cluster("closer", &[closer]))
            .cluster(static_cluster("up", &[up.addr()]))
            .cluster(named_cluster("named", "up.example", up.addr()))
            .cluster(named_cluster("named_dead", "dead.example", dead_addr()))
            .yaml(),
    )
    .await;
    let addr = legate.listener("main");
    // Headers and body in one write, as curl -d sends them.
    let post = |path: &str, host: &str, body: &str| {
        format!("POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n\r\n{body}", body.len())
    };
    for (path, host, body) in [
        ("/dead", "a.example", "hello"),
        ("/closer", "a.example", "hello world"),
        ("/autodead", "orig.example", "hello"),
        ("/litdead", "orig.example", ""),
    ] {
        let r = crate::common::client::raw(addr, post(path, host, body).as_bytes()).await.expect("an answer");
        assert_eq!(r.status, 503, "{path}");
    }
    let c = Client::h1();
    for path in ["/auto", "/lit"] {
        assert_eq!(c.get_with(&legate.url("main", path), &[("host", "orig.example")]).await.status, 200, "{path}");
    }
    let refused =
        "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}";
    let got = lines(&path, 6).await;
    assert_eq!(
        got,
        [
            format!("503 UF 5 {refused} a.example delayed_connect_error:_Connection_refused"),
            "503 UC 11 upstream_reset_before_response_started{connection_termination} a.example -".to_string(),
            format!("503 UF 5 {refused} orig.example delayed_connect_error:_Connection_refused"),
            format!("503 UF 0 {refused} lit.example delayed_connect_error:_Connection_refused"),
            "200 - 0 via_upstream up.example -".to_string(),
            "200 - 0 via_upstream lit.example -".to_string(),
        ]
    );
}

/// A listener whose accept queue is full: connects to it are not answered (connect timeout).
/// The returned sockets keep the queue full.
async fn unanswering_upstream() -> (SocketAddr, Vec<tokio::task::JoinHandle<()>>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = socket.local_addr().expect("local_addr");
    let listener = socket.listen(0).expect("listen");
    let mut fillers = Vec::new();
    for _ in 0..3 {
        fillers.push(tokio::spawn(async move {
            let _s = tokio::time::timeout(EVENTUALLY, tokio::net::TcpStream::connect(addr)).await;
            tokio::time::sleep(EVENTUALLY).await;
        }));
    }
    // The first filler takes the one place in the queue; the others' SYNs are dropped, and
    // so will be the proxy's.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    fillers.push(tokio::spawn(async move {
        let _keep = listener;
        tokio::time::sleep(EVENTUALLY).await;
    }));
    (addr, fillers)
}

/// Envoy reads the body while it connects: a client that sends its body in pieces while the
/// connect is timing out has all of it counted (Envoy 1.40 logged 10 here, legate logged the
/// first piece only, 3, before it read ahead).
#[tokio::test]
async fn body_sent_during_a_connect_timeout_is_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (stalled, fillers) = unanswering_upstream().await;
    let (_dir, path) = log_dir();
    let format = "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %RESPONSE_CODE_DETAILS%\n";
    let routes = json!([to_cluster(json!({"prefix": "/"}), "stalled")]);
    let mut manager = hcm(route_config(json!([vhost("default", &["*"], routes)])));
    manager["access_log"] = json!([file_log(&path, Some(json!({ "text_format": format })))]);
    let legate =
        Legate::start(bootstrap().listener_hcm("main", manager).cluster(static_cluster("stalled", &[stalled])).yaml())
            .await;
    let mut s = tokio::net::TcpStream::connect(legate.listener("main")).await.expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nhost: a.example\r\ncontent-length: 10\r\n\r\nabc").await.expect("write");
    for piece in [&b"def"[..], b"ghij"] {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        s.write_all(piece).await.expect("write");
    }
    let mut head = [0u8; 12];
    tokio::time::timeout(EVENTUALLY, s.read_exact(&mut head)).await.expect("an answer in time").expect("read");
    assert_eq!(&head, b"HTTP/1.1 503");
    assert_eq!(lines(&path, 1).await, ["503 UF 10 upstream_reset_before_response_started{connection_timeout}"]);
    for f in fillers {
        f.abort();
    }
}

/// Checked against Envoy 1.40: when the retry policy wanted another attempt and the retries
/// were used up, `URX` comes before the flag of the failure that ended the request; `reset`
/// retries a failed connect too; the last per-try timeout has its own details; and the
/// attempt count is logged (0 when no upstream was tried).
#[tokio::test]
async fn retries_used_up_log_urx_and_the_attempt_count() {
    let up = upstream::http1().spawn().await;
    let dead = dead_addr();
    let (_dir, path) = log_dir();
    let format = "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% \
                  %UPSTREAM_REQUEST_ATTEMPT_COUNT%\n";
    let retry = |cluster: &str, on: &str, extra: Value| {
        let mut policy = json!({"retry_on": on, "num_retries": 1});
        policy.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
        json!({"cluster": cluster, "retry_policy": policy})
    };
    let routes = json!([
        {"match": {"prefix": "/cf"}, "route": retry("dead", "connect-failure", json!({}))},
        {"match": {"prefix": "/reset"}, "route": retry("dead", "reset", json!({}))},
        {"match": {"prefix": "/5xx"}, "route": retry("service1", "5xx", json!({}))},
        {"match": {"prefix": "/pt"}, "route": retry("service1", "5xx", json!({"per_try_timeout": "0.2s"}))},
        {"match": {"prefix": "/plain"}, "route": {"cluster": "dead"}},
    ]);
    let mut manager = hcm(route_config(json!([vhost("default", &["example.com"], routes)])));
    manager["access_log"] = json!([file_log(&path, Some(json!({ "text_format": format })))]);
    let legate = Legate::start(
        bootstrap()
            .listener_hcm("main", manager)
            .cluster(static_cluster("service1", &[up.addr()]))
            .cluster(static_cluster("dead", &[dead]))
            .yaml(),
    )
    .await;
    let c = Client::h1();
    let host = [("host", "example.com")];
    for (path, status) in
        [("/cf", 503), ("/reset", 503), ("/5xx/status/503", 503), ("/pt/delay/2000ms", 504), ("/plain", 503)]
    {
        assert_eq!(c.get_with(&legate.url("main", path), &host).await.status, status, "{path}");
    }
    assert_eq!(c.get(&legate.url("main", "/nowhere")).await.status, 404);
    let refused = "upstream_reset_before_response_started{remote_connection_failure|\
                   delayed_connect_error:_Connection_refused}";
    lines(&path, 6).await;
    assert_eq!(
        read(&path),
        format!(
            "/cf 503 URX,UF {refused} 2\n\
             /reset 503 URX,UF {refused} 2\n\
             /5xx/status/503 503 URX via_upstream 2\n\
             /pt/delay/2000ms 504 URX,UT upstream_per_try_timeout 2\n\
             /plain 503 UF {refused} 1\n\
             /nowhere 404 NR route_not_found 0\n"
        )
    );
    let stats = legate.stats().await;
    let stat = |s: &str| stats.get(&format!("cluster.{s}")).copied().unwrap_or(0);
    assert_eq!(stat("dead.upstream_rq_retry_limit_exceeded"), 2);
    assert_eq!(stat("service1.upstream_rq_retry_limit_exceeded"), 2);
    assert_eq!(stat("dead.upstream_rq_total"), 0, "no attempt got a connection");
    assert_eq!(stat("service1.upstream_rq_total"), 4);
    assert_eq!(stat("service1.upstream_rq_retry_success"), 0, "both retries failed too");
    assert_eq!(stat("service1.upstream_rq_503"), 1, "only the answer passed on is charged");
    assert_eq!(stat("dead.upstream_rq_completed"), 3, "local answers for the cluster count as completed");
}
