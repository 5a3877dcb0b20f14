//! The admin's access log (`admin.access_log_path`, or v3 `admin.access_log`): one line per
//! admin request in Envoy's default format. `/dev/null` means none (the config reader drops
//! it), so nothing is rendered then.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use http::header::{HeaderValue, HOST};
use http::{HeaderMap, Method, Version};

use crate::access_log::format::Format;
use crate::access_log::writer::{AccessLogWriter, Sink};
use crate::access_log::LogContext;
use crate::server::Server;

/// Envoy's admin connection manager appends this address to `x-forwarded-for` (its admin
/// streams carry no real downstream address there), and logs it so.
const ADMIN_XFF: &str = "192.0.2.2";

pub struct AdminLog {
    writer: AccessLogWriter,
    format: Format,
}

impl AdminLog {
    /// The admin's log, when one is configured and its file opens.
    pub fn open(server: &Server) -> Option<AdminLog> {
        let path = server.bootstrap.admin.as_ref()?.access_log_path.clone()?;
        match server.log_writers.get(Sink::File(path.clone())) {
            Ok(writer) => Some(AdminLog { writer, format: Format::envoy_default() }),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "admin access log cannot be opened; not logging");
                None
            }
        }
    }
}

/// What a log line needs of an admin request, taken before the request is handled.
pub struct AdminRequest {
    start: SystemTime,
    started: Instant,
    method: Method,
    path: String,
    version: Version,
    headers: HeaderMap,
}

impl AdminRequest {
    pub fn new(req: &http::Request<hyper::body::Incoming>) -> Self {
        let mut headers = req.headers().clone();
        let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(v) => format!("{v},{ADMIN_XFF}"),
            None => ADMIN_XFF.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert("x-forwarded-for", v);
        }
        AdminRequest {
            start: SystemTime::now(),
            started: Instant::now(),
            method: req.method().clone(),
            path: req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string(),
            version: req.version(),
            headers,
        }
    }

    /// Queues the request's line.
    pub fn log(self, log: &AdminLog, status: u16, bytes_sent: u64, remote: SocketAddr, local: SocketAddr) {
        let authority = self.headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let ctx = LogContext {
            start: self.start,
            request_headers: &self.headers,
            method: self.method.as_str(),
            path: &self.path,
            authority,
            scheme: "http",
            protocol: Some(self.version),
            response_code: Some(status),
            response_code_details: Some("admin_filter_response"),
            response_headers: None,
            response_trailers: None,
            response_flags: "",
            bytes_received: 0,
            bytes_sent,
            duration: Some(self.started.elapsed()),
            request_duration: None,
            response_duration: None,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local_address: None,
            upstream_transport_failure_reason: None,
            upstream_request_attempt_count: 0,
            downstream_remote: remote,
            downstream_local: local,
            route_name: None,
            tls: None,
            dynamic_metadata: None,
            local_reply_body: None,
        };
        let mut line = String::with_capacity(256);
        log.format.render(&ctx, &mut line);
        log.writer.send(line);
    }
}
