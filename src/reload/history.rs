//! The last reload attempts, for `/reloads`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

const KEEP: usize = 50;

#[derive(Default)]
pub struct History(Mutex<VecDeque<serde_json::Value>>);

pub struct Attempt {
    pub files: Vec<String>,
    pub outcome: &'static str,
    pub error: Option<String>,
    pub duration: std::time::Duration,
    pub changes: serde_json::Value,
}

impl History {
    pub fn record(&self, a: Attempt) {
        let entry = serde_json::json!({
            "time": httpdate::fmt_http_date(SystemTime::now()),
            "time_unix_ms": SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            "files": a.files,
            "outcome": a.outcome,
            "error": a.error,
            "duration_ms": a.duration.as_secs_f64() * 1000.0,
            "changes": a.changes,
        });
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() == KEEP {
            h.pop_front();
        }
        h.push_back(entry);
    }

    /// Newest first.
    pub fn json(&self) -> serde_json::Value {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({"reloads": h.iter().rev().cloned().collect::<Vec<_>>()})
    }
}
