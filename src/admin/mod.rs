//! The admin listener: Envoy's admin paths and formats, reading the same snapshot and stats
//! store as the request path.

mod clusters;
pub mod config_dump;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::server::Server;
use crate::stats::render;

const TEXT: &str = "text/plain; charset=UTF-8";
const JSON: &str = "application/json";

/// (path, help, POST only)
const ENDPOINTS: &[(&str, &str, bool)] = &[
    ("/clusters", "upstream cluster status", false),
    ("/config_dump", "dump current Envoy configs", false),
    ("/healthcheck/fail", "cause the server to fail health checks", true),
    ("/healthcheck/ok", "cause the server to pass health checks", true),
    ("/help", "print out list of admin commands", false),
    ("/listeners", "print listener info", false),
    ("/quitquitquit", "exit the server", true),
    ("/reopen_logs", "reopen access logs", true),
    ("/reloads", "the last 50 configuration reload attempts (legate)", false),
    ("/ready", "print server state, return 200 if LIVE, otherwise return 503", false),
    ("/server_info", "print server version/status information", false),
    ("/stats", "print server stats", false),
    ("/stats/prometheus", "print server stats in prometheus format", false),
];

fn help_text() -> String {
    let mut s = String::from("admin commands are:\n");
    for (path, help, _) in ENDPOINTS {
        s.push_str(&format!("  {path}: {help}\n"));
    }
    s
}

/// Serves the admin on an already-bound socket until the process drains.
pub fn spawn_admin(socket: TcpListener, server: Arc<Server>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = server.shutdown_signal();
        loop {
            let accepted = tokio::select! {
                r = socket.accept() => r,
                _ = shutdown.changed() => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let server = Arc::clone(&server);
                    async move { Ok::<_, Infallible>(handle(&server, req)) }
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

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle(server: &Server, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let Some((_, _, post_only)) = ENDPOINTS.iter().find(|(p, _, _)| *p == path) else {
        let body = format!("invalid path. {}", help_text());
        return resp(StatusCode::NOT_FOUND, TEXT, body);
    };
    if *post_only && req.method() != Method::POST {
        return resp(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            format!("Method {} not allowed, POST required.", req.method()),
        );
    }
    match path {
        "/help" => resp(StatusCode::OK, TEXT, help_text()),
        "/ready" => {
            if server.shared.health_failing.load(Ordering::Relaxed) || server.is_draining() {
                resp(StatusCode::SERVICE_UNAVAILABLE, TEXT, "DRAINING\n")
            } else {
                resp(StatusCode::OK, TEXT, "LIVE\n")
            }
        }
        "/healthcheck/fail" => {
            server.shared.health_failing.store(true, Ordering::Relaxed);
            resp(StatusCode::OK, TEXT, "OK\n")
        }
        "/healthcheck/ok" => {
            server.shared.health_failing.store(false, Ordering::Relaxed);
            resp(StatusCode::OK, TEXT, "OK\n")
        }
        "/reopen_logs" => {
            server.log_writers.reopen();
            resp(StatusCode::OK, TEXT, "OK\n")
        }
        "/quitquitquit" => {
            server.request_shutdown();
            resp(StatusCode::OK, TEXT, "OK\n")
        }
        "/server_info" => resp(StatusCode::OK, JSON, server.server_info().to_string()),
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
                include_eds: query.split('&').any(|kv| kv == "include_eds" || kv.starts_with("include_eds=")),
                name_regex,
            };
            resp(StatusCode::OK, JSON, server.config_dump(&q).to_string())
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

pub fn socket_json(addr: SocketAddr) -> serde_json::Value {
    serde_json::json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}
