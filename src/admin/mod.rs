//! The admin listener: Envoy's admin paths and formats, reading the same snapshot and stats
//! store as the request path.

mod absent;
mod access_log;
mod certs;
mod clusters;
pub mod config_dump;
pub mod drain;
mod home;
pub mod logging;
pub mod memory;
pub mod server_info;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::server::Server;
use crate::stats::render;

const TEXT: &str = "text/plain; charset=UTF-8";
const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=UTF-8";

/// One admin path, for routing, `/help` and the home page.
pub struct Endpoint {
    pub path: &'static str,
    pub help: &'static str,
    pub post_only: bool,
    /// (name, help) of the query parameters `/help` documents.
    pub params: &'static [(&'static str, &'static str)],
}

const fn get(path: &'static str, help: &'static str) -> Endpoint {
    Endpoint { path, help, post_only: false, params: &[] }
}

const fn post(path: &'static str, help: &'static str) -> Endpoint {
    Endpoint { path, help, post_only: true, params: &[] }
}

/// Every path, sorted as Envoy's `/help` lists them.
const ENDPOINTS: &[Endpoint] = &[
    get("/", "Admin home page"),
    Endpoint {
        params: &[("enable", "enable/disable the allocation profiler; One of (y, n)")],
        ..post("/allocprofiler", "enable/disable the allocation profiler (if supported)")
    },
    get("/certs", "print certs on machine"),
    get("/clusters", "upstream cluster status"),
    get("/config_dump", "dump current Envoy configs"),
    Endpoint {
        params: &[("enable", "enables the CPU profiler; One of (y, n)")],
        ..post("/cpuprofiler", "enable/disable the CPU profiler")
    },
    Endpoint {
        params: &[
            ("graceful", "When draining listeners, enter a graceful drain period prior to closing listeners"),
            ("skip_exit", "When draining listeners, drain the connections but never stop the listeners"),
            ("inboundonly", "Drains all inbound listeners (traffic_direction INBOUND)"),
        ],
        ..post("/drain_listeners", "drain listeners")
    },
    post("/healthcheck/fail", "cause the server to fail health checks"),
    post("/healthcheck/ok", "cause the server to pass health checks"),
    get("/heap_dump", "dump current Envoy heap (if supported)"),
    Endpoint {
        params: &[("enable", "enable/disable the heap profiler; One of (y, n)")],
        ..post("/heapprofiler", "enable/disable the heap profiler")
    },
    get("/help", "print out list of admin commands"),
    get("/hot_restart_version", "print the hot restart compatibility version"),
    get("/listeners", "print listener info"),
    Endpoint {
        params: &[
            ("paths", "Change multiple logging levels by setting to <logger_name1>:<desired_level1>,<logger_name2>:<desired_level2>"),
            ("group", "Change given logger group to desired level, set to <logger_group_name>:<desired_level>"),
            ("level", "desired logging level, this will change all loggers's level; One of (, trace, debug, info, warning, error, critical, off)"),
        ],
        ..post("/logging", "query/change logging levels")
    },
    get("/memory", "print current allocation/heap usage"),
    post("/quitquitquit", "exit the server"),
    get("/ready", "print server state, return 200 if LIVE, otherwise return 503"),
    get("/reloads", "the last 50 configuration reload attempts (legate)"),
    post("/reopen_logs", "reopen access logs"),
    post("/reset_counters", "reset all counters to zero"),
    get("/runtime", "print runtime values"),
    post("/runtime_modify", "Adds or modifies runtime values as passed in query parameters. To delete a previously added key, use an empty string as the value. Note that deletion only applies to overrides added via this endpoint; values loaded from disk can be modified via override but not deleted. E.g. ?key1=value1&key2=value2..."),
    get("/server_info", "print server version/status information"),
    get("/stats", "print server stats"),
    get("/stats/prometheus", "print server stats in prometheus format"),
];

fn help_text() -> String {
    let mut s = String::from("admin commands are:\n");
    for e in ENDPOINTS {
        let post = if e.post_only { " (POST)" } else { "" };
        s.push_str(&format!("  {}{post}: {}\n", e.path, e.help));
        for (name, help) in e.params {
            s.push_str(&format!("      {name}: {help}\n"));
        }
    }
    s
}

/// Serves the admin on an already-bound socket until the process drains.
pub fn spawn_admin(socket: TcpListener, server: Arc<Server>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = server.shutdown_signal();
        let log = access_log::AdminLog::open(&server).map(Arc::new);
        loop {
            let accepted = tokio::select! {
                r = socket.accept() => r,
                _ = shutdown.changed() => break,
            };
            let Ok((stream, remote)) = accepted else { continue };
            let local = stream.local_addr().unwrap_or(remote);
            let server = Arc::clone(&server);
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let server = Arc::clone(&server);
                    let log = log.clone();
                    async move {
                        let logged = log.as_ref().map(|_| access_log::AdminRequest::new(&req));
                        let (parts, body) = req.into_parts();
                        let form = runtime_form(&parts, body).await;
                        let resp = handle(&server, &parts, form.as_deref());
                        if let (Some(log), Some(logged)) = (log.as_deref(), logged) {
                            let sent = http_body::Body::size_hint(resp.body()).exact().unwrap_or(0);
                            logged.log(log, resp.status().as_u16(), sent, remote, local);
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

fn resp(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache, max-age=0"));
    r
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// Every `key=value` of a query, both percent-decoded (a bare `key` has an empty value).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// JSON as Envoy's admin prints it: one-space indents, a final newline.
fn pretty_json<T: serde::Serialize>(value: &T) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, serde_json::ser::PrettyFormatter::with_indent(b" "));
    if value.serialize(&mut ser).is_err() {
        return "{}\n".into();
    }
    buf.push(b'\n');
    String::from_utf8_lossy(&buf).into_owned()
}

/// A query-string value: `+` is a space and every escape is decoded.
fn percent_decode(s: &str) -> String {
    crate::percent::decode_with(s, |_| true, |b| if b == b'+' { b' ' } else { b })
}

/// Bytes of a `/runtime_modify` form body read at most, and how long it may take.
const FORM_LIMIT: usize = 64 * 1024;
const FORM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A `POST /runtime_modify` body sent as `application/x-www-form-urlencoded` (Envoy reads its
/// parameters there when the query has none); `None` for every other request.
async fn runtime_form(parts: &http::request::Parts, body: Incoming) -> Option<String> {
    use http_body_util::BodyExt;
    let form = parts.headers.get(http::header::CONTENT_TYPE).is_some_and(|t| {
        t.to_str().is_ok_and(|t| t.trim().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
    });
    if parts.uri.path() != "/runtime_modify" || parts.method != Method::POST || !form {
        return None;
    }
    let read = http_body_util::Limited::new(body, FORM_LIMIT).collect();
    let bytes = tokio::time::timeout(FORM_WAIT, read).await.ok()?.ok()?.to_bytes();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn handle(server: &Server, req: &http::request::Parts, form_body: Option<&str>) -> Response<Full<Bytes>> {
    let path = req.uri.path();
    let query = req.uri.query().unwrap_or("");
    tracing::debug!(http.method = %req.method, http.path = path, "admin request");
    let Some(endpoint) = ENDPOINTS.iter().find(|e| e.path == path) else {
        let body = format!("invalid path. {}", help_text());
        return resp(StatusCode::NOT_FOUND, TEXT, body);
    };
    if endpoint.post_only && req.method != Method::POST {
        return resp(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            format!("Method {} not allowed, POST required.", req.method),
        );
    }
    match path {
        "/" => resp(StatusCode::OK, HTML, home::html(ENDPOINTS)),
        "/help" => resp(StatusCode::OK, TEXT, help_text()),
        "/ready" => {
            if server.is_live() {
                resp(StatusCode::OK, TEXT, "LIVE\n")
            } else {
                resp(StatusCode::SERVICE_UNAVAILABLE, TEXT, "DRAINING\n")
            }
        }
        "/healthcheck/fail" => {
            server.set_health_check_failed(true);
            resp(StatusCode::OK, TEXT, "OK\n")
        }
        "/healthcheck/ok" => {
            server.set_health_check_failed(false);
            resp(StatusCode::OK, TEXT, "OK\n")
        }
        "/drain_listeners" => {
            server.drain_listeners(drain::DrainListeners::parse_query(query));
            resp(StatusCode::OK, TEXT, "OK\n")
        }
        "/logging" => {
            let (status, body) = server.loggers.handle(&query_pairs(query));
            resp(status, TEXT, body)
        }
        "/reset_counters" => {
            server.shared.stats.reset_counters();
            resp(StatusCode::OK, TEXT, "OK\n")
        }
        "/cpuprofiler" => absent_feature(absent::cpu_profiler(&query_pairs(query))),
        "/heapprofiler" => absent_feature(absent::heap_profiler()),
        "/allocprofiler" => absent_feature(absent::alloc_profiler(&query_pairs(query))),
        "/heap_dump" => absent_feature(absent::heap_dump()),
        "/runtime_modify" => {
            let form = req.headers.get(http::header::CONTENT_LENGTH).is_some_and(|l| l.as_bytes() != b"0")
                || req.headers.contains_key(http::header::TRANSFER_ENCODING);
            let mut pairs = query_pairs(query);
            if pairs.is_empty() {
                pairs = form_body.map(query_pairs).unwrap_or_default();
            }
            if !server.shared.runtime.has_admin_layer() {
                absent_feature(absent::runtime_modify(&pairs, form))
            } else if pairs.is_empty() {
                // Envoy's usage: nothing to set in the query nor in a form body.
                absent_feature(absent::runtime_modify(&[], false))
            } else {
                server.shared.runtime.modify(&pairs);
                resp(StatusCode::OK, TEXT, "OK\n")
            }
        }
        "/memory" => resp(StatusCode::OK, JSON, pretty_json(&memory::read())),
        "/runtime" => resp(StatusCode::OK, JSON, pretty_json(&server.shared.runtime.admin_json())),
        "/certs" => resp(StatusCode::OK, JSON, pretty_json(&certs::json(&server.shared.snapshot.load()))),
        "/hot_restart_version" => resp(StatusCode::OK, TEXT, "disabled"),
        "/reopen_logs" => {
            server.log_writers.reopen();
            resp(StatusCode::OK, TEXT, "OK\n")
        }
        "/quitquitquit" => {
            server.request_shutdown();
            resp(StatusCode::OK, TEXT, "OK\n")
        }
        "/server_info" => resp(StatusCode::OK, JSON, server_info::server_info(server).to_string()),
        "/listeners" => {
            let bound = server.bound_listeners();
            if query_param(query, "format") == Some("json") {
                let statuses: Vec<serde_json::Value> = bound
                    .iter()
                    .map(|(name, addr)| serde_json::json!({"name": name, "local_address": socket_json(*addr)}))
                    .collect();
                resp(StatusCode::OK, JSON, serde_json::json!({"listener_statuses": statuses}).to_string())
            } else {
                let mut out = String::new();
                for (name, addr) in bound {
                    out.push_str(&format!("{name}::{addr}\n"));
                }
                resp(StatusCode::OK, TEXT, out)
            }
        }
        "/clusters" => {
            let snap = server.shared.snapshot.load();
            if query_param(query, "format") == Some("json") {
                resp(StatusCode::OK, JSON, clusters::json(&snap, &server.sources()))
            } else {
                resp(StatusCode::OK, TEXT, clusters::text(&snap, &server.sources()))
            }
        }
        "/config_dump" => {
            let name_regex = match query_param(query, "name_regex").map(percent_decode) {
                Some(f) if !f.is_empty() => match regex::Regex::new(&f) {
                    Ok(r) => Some(r),
                    Err(e) => return resp(StatusCode::BAD_REQUEST, TEXT, format!("Invalid re2 regex: {e}")),
                },
                _ => None,
            };
            let q = config_dump::DumpQuery {
                resource: query_param(query, "resource").filter(|r| !r.is_empty()).map(percent_decode),
                mask: query_param(query, "mask")
                    .map(percent_decode)
                    .filter(|m| !m.is_empty())
                    .map(|m| config_dump::parse_mask(&m)),
                include_eds: query.split('&').any(|kv| kv == "include_eds" || kv.starts_with("include_eds=")),
                name_regex,
            };
            match server.config_dump(&q) {
                Ok(v) => resp(StatusCode::OK, JSON, config_dump::pretty(&v)),
                Err(config_dump::DumpError::NotFound(t)) => resp(StatusCode::NOT_FOUND, TEXT, t),
                Err(config_dump::DumpError::BadRequest(t)) => resp(StatusCode::BAD_REQUEST, TEXT, t),
            }
        }
        "/reloads" => resp(StatusCode::OK, JSON, server.history.json().to_string()),
        "/stats" | "/stats/prometheus" => {
            let regex = match query_param(query, "filter").map(percent_decode) {
                Some(f) if !f.is_empty() => match regex::Regex::new(&f) {
                    Ok(r) => Some(r),
                    Err(e) => return resp(StatusCode::BAD_REQUEST, TEXT, format!("Invalid re2 regex: {e}")),
                },
                _ => None,
            };
            let filter = render::Filter { regex, used_only: query.split('&').any(|kv| kv == "usedonly") };
            server.refresh_stats();
            let stats = &server.shared.stats;
            if path == "/stats/prometheus" || query_param(query, "format") == Some("prometheus") {
                resp(StatusCode::OK, "text/plain; charset=UTF-8", render::prometheus(stats, &filter))
            } else if query_param(query, "format") == Some("json") {
                resp(StatusCode::OK, JSON, render::json(stats, &filter))
            } else {
                resp(StatusCode::OK, TEXT, render::text(stats, &filter))
            }
        }
        _ => resp(StatusCode::NOT_FOUND, TEXT, format!("invalid path. {}", help_text())),
    }
}

fn absent_feature((status, body): (StatusCode, &'static str)) -> Response<Full<Bytes>> {
    resp(status, TEXT, body)
}

pub fn socket_json(addr: SocketAddr) -> serde_json::Value {
    serde_json::json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}
