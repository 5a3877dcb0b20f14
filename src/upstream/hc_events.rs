//! A health check's `event_log_path`: one JSON line per event, as Envoy 1.40 writes its
//! `envoy.data.core.v3.HealthCheckEvent` (fields in the proto's order, primitive fields
//! always printed):
//! - `add_healthy_event` when a host becomes healthy (`first_check` for its first result);
//! - `eject_unhealthy_event` when it becomes unhealthy;
//! - `health_check_failure_event` for a failed check that is the host's first, or for every
//!   failed check with `always_log_health_check_failures`.
//!
//! The file is opened once (append) per path and written off the request path, by the checks.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::Value;

use crate::config::model::Locality;

/// Envoy's `HealthCheckFailureType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureType {
    Active,
    Network,
    NetworkTimeout,
}

impl FailureType {
    fn name(self) -> &'static str {
        match self {
            FailureType::Active => "ACTIVE",
            FailureType::Network => "NETWORK",
            FailureType::NetworkTimeout => "NETWORK_TIMEOUT",
        }
    }
}

/// One event of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    AddHealthy { first_check: bool },
    EjectUnhealthy { failure: FailureType, status: u16 },
    Failure { failure: FailureType, first_check: bool, status: u16 },
}

/// What an event says about its host.
pub struct Subject<'a> {
    /// `HTTP`, `TCP` or `GRPC`.
    pub checker: &'static str,
    pub addr: SocketAddr,
    pub cluster: &'a str,
    pub locality: &'a Locality,
}

/// An open event log.
pub struct EventLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl EventLog {
    /// The log at `path`: `current` when it is that file already, else the file opened anew.
    /// `None` (with a warning) when it cannot be opened.
    pub fn at(path: &Path, current: Option<Arc<EventLog>>) -> Option<Arc<EventLog>> {
        if let Some(c) = current.filter(|c| c.path == path) {
            return Some(c);
        }
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => Some(Arc::new(EventLog { path: path.to_path_buf(), file: Mutex::new(file) })),
            Err(e) => {
                tracing::warn!("health check event log {}: {e}", path.display());
                None
            }
        }
    }

    pub fn write(&self, subject: &Subject<'_>, event: Event) {
        let mut line = line(subject, event, SystemTime::now());
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::warn!("health check event log {}: {e}", self.path.display());
        }
    }
}

/// The event's JSON line, in Envoy's field order (written by hand: a JSON map sorts its keys).
fn line(s: &Subject<'_>, event: Event, at: SystemTime) -> String {
    let q = |v: &str| Value::from(v).to_string();
    let mut out = format!(
        "{{\"health_checker_type\":{},\"host\":{{\"socket_address\":{{\"protocol\":\"TCP\",\"address\":{},\
         \"port_value\":{},\"resolver_name\":\"\",\"ipv4_compat\":false,\"network_namespace_filepath\":\"\"}}}},\
         \"cluster_name\":{}",
        q(s.checker),
        q(&s.addr.ip().to_string()),
        s.addr.port(),
        q(s.cluster)
    );
    match event {
        Event::EjectUnhealthy { failure, status } => out.push_str(&format!(
            ",\"eject_unhealthy_event\":{{\"failure_type\":\"{}\",\"http_status_code\":{status}}}",
            failure.name()
        )),
        Event::AddHealthy { first_check } => {
            out.push_str(&format!(",\"add_healthy_event\":{{\"first_check\":{first_check}}}"))
        }
        Event::Failure { .. } => {}
    }
    let ts = chrono::DateTime::<chrono::Utc>::from(at).format("%Y-%m-%dT%H:%M:%S%.3fZ");
    out.push_str(&format!(",\"timestamp\":\"{ts}\""));
    if let Event::Failure { failure, first_check, status } = event {
        out.push_str(&format!(
            ",\"health_check_failure_event\":{{\"failure_type\":\"{}\",\"first_check\":{first_check},\
             \"http_status_code\":{status}}}",
            failure.name()
        ));
    }
    let l = s.locality;
    out.push_str(&format!(
        ",\"locality\":{{\"region\":{},\"zone\":{},\"sub_zone\":{}}}}}",
        q(&l.region),
        q(&l.zone),
        q(&l.sub_zone)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_are_envoys() {
        let loc = Locality { region: "r1".into(), zone: "z1".into(), sub_zone: String::new() };
        let s = Subject { checker: "HTTP", addr: ([127, 0, 0, 1], 18082).into(), cluster: "backend", locality: &loc };
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_591_171_824);
        let failure = Event::Failure { failure: FailureType::Active, first_check: true, status: 503 };
        // What Envoy 1.40 wrote for the same event.
        assert_eq!(
            line(&s, failure, at),
            r#"{"health_checker_type":"HTTP","host":{"socket_address":{"protocol":"TCP","address":"127.0.0.1","port_value":18082,"resolver_name":"","ipv4_compat":false,"network_namespace_filepath":""}},"cluster_name":"backend","timestamp":"2026-12-06T21:06:11.824Z","health_check_failure_event":{"failure_type":"ACTIVE","first_check":true,"http_status_code":503},"locality":{"region":"r1","zone":"z1","sub_zone":""}}"#
        );
        let eject = Event::EjectUnhealthy { failure: FailureType::Network, status: 0 };
        let v = line(&s, eject, at);
        assert!(
            v.contains(r#""cluster_name":"backend","eject_unhealthy_event":{"failure_type":"NETWORK","http_status_code":0},"timestamp""#),
            "{v}"
        );
        let add = line(&s, Event::AddHealthy { first_check: false }, at);
        assert!(add.contains(r#""add_healthy_event":{"first_check":false},"timestamp""#), "{add}");
    }
}
