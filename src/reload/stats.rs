//! Envoy's per-subscription update stats: `listener_manager.lds.*`, `cluster_manager.cds.*`,
//! `http.<prefix>.rds.<route_config>.*` and `cluster.<name>.*` for EDS.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::SystemTime;

use crate::stats::{Counter, Gauge, Store, TextReadout};

pub struct SubscriptionStats {
    pub update_attempt: Counter,
    pub update_success: Counter,
    pub update_rejected: Counter,
    pub update_failure: Counter,
    pub update_empty: Counter,
    pub config_reload: Counter,
    pub version: Gauge,
    pub version_text: TextReadout,
    pub update_time: Gauge,
}

/// How an update attempt ended, in Envoy's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; `changed` when the resources differ from what was running.
    Success { changed: bool },
    /// Valid syntax, invalid config (or the batch it came with was).
    Rejected,
    /// Unreadable or not parseable.
    Failure,
    /// An EDS file with no resources: the previous endpoints stay.
    Empty,
}

impl SubscriptionStats {
    pub fn new(store: &Arc<Store>, prefix: &str) -> Self {
        let c = |s: &str| store.counter(&format!("{prefix}.{s}"));
        SubscriptionStats {
            update_attempt: c("update_attempt"),
            update_success: c("update_success"),
            update_rejected: c("update_rejected"),
            update_failure: c("update_failure"),
            update_empty: c("update_empty"),
            config_reload: c("config_reload"),
            version: store.gauge(&format!("{prefix}.version")),
            version_text: store.text(&format!("{prefix}.version_text")),
            update_time: store.gauge(&format!("{prefix}.update_time")),
        }
    }

    pub fn record(&self, outcome: Outcome, version_info: &str) {
        self.update_attempt.inc();
        match outcome {
            Outcome::Success { changed } => {
                self.update_success.inc();
                if changed {
                    self.config_reload.inc();
                }
                self.version_text.set(version_info);
                let mut h = std::collections::hash_map::DefaultHasher::new();
                version_info.hash(&mut h);
                // Envoy's `version` is a hash of version_info; keep it positive for Prometheus.
                self.version.set((h.finish() >> 1) as i64);
                let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
                self.update_time.set(ms as i64);
            }
            Outcome::Rejected => self.update_rejected.inc(),
            Outcome::Failure => self.update_failure.inc(),
            Outcome::Empty => {
                self.update_success.inc();
                self.update_empty.inc();
            }
        }
    }
}
