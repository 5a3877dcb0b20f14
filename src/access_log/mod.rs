//! Access logging: Envoy's formats compiled at config time, lines written off the request path.
//!
//! ```text
//! config::model::AccessLog --LineFormat::build--> LineFormat (text | JSON)     (config time)
//!                          --spawn_writer(Sink)--> AccessLogWriter --> writer task per sink
//! request done --> LogContext (borrowed, only if a logger is configured)
//!   --> LineFormat::render into a String --> AccessLogWriter::send (try_send; a full queue drops)
//!   (queue bounded in lines and bytes; drops and writes counted in the stats store)
//!   --> writer task: batches what is queued into one write; reopen() on /reopen_logs, SIGUSR1
//! LogWriters (registry): one writer per sink, kept across reloads; snapshots hold handles
//! ```

pub mod context;
pub mod format;
pub mod json;
mod operator;
mod registry;
mod start_time;
pub mod writer;

pub use context::LogContext;
pub use format::{Format, DEFAULT_FORMAT};
pub use json::JsonFormat;
pub use registry::LogWriters;
pub use writer::{
    spawn_writer, spawn_writer_with, AccessLogWriter, Sink, WriterStats, QUEUE_CAPACITY, QUEUE_MAX_BYTES,
};

use crate::config::model::AccessLogFormat;

/// A compiled access-log format of either kind.
#[derive(Debug, Clone)]
pub enum LineFormat {
    Text(Format),
    Json(JsonFormat),
}

impl LineFormat {
    /// Compiles a configured format; the error names the bad operator (callers add the path).
    pub fn build(config: &AccessLogFormat) -> Result<Self, String> {
        Ok(match config {
            AccessLogFormat::Default => LineFormat::Text(Format::envoy_default()),
            AccessLogFormat::Text(spec) => LineFormat::Text(Format::parse(spec)?),
            AccessLogFormat::Json(fields) => LineFormat::Json(JsonFormat::parse(fields)?),
        })
    }

    /// Adds the response headers the format reads (`%RESP(...)%`) to `names`, so that the
    /// request path keeps only those once the response is sent.
    pub fn response_headers(&self, names: &mut Vec<http::HeaderName>) {
        match self {
            LineFormat::Text(format) => format.response_headers(names),
            LineFormat::Json(format) => format.response_headers(names),
        }
    }

    /// Appends one rendered line to `out` (text exactly as configured, JSON with a `\n`).
    pub fn render(&self, ctx: &LogContext<'_>, out: &mut String) {
        match self {
            LineFormat::Text(format) => format.render(ctx, out),
            LineFormat::Json(format) => format.render(ctx, out),
        }
    }
}
