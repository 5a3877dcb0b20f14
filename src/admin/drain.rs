//! What the admin asks of the listeners: `/drain_listeners` and `/healthcheck/fail`.
//!
//! The admin does not own the accept loops (the reloader's listener manager does), so it
//! publishes a [`ListenerDrain`] on a `watch` channel held by [`crate::server::Server`]; the
//! listener code subscribes with `Server::listener_drain()` and acts on it:
//!
//! - `health_check_failed` (reversible, `/healthcheck/ok` clears it): Envoy's drain-close,
//!   connections close after their current request, listeners keep accepting.
//! - `drain_listeners` (sticky until restart): stop accepting; with `graceful`, first a
//!   drain period (`--drain-time-s`) with drain-close, then stop; with `skip_exit`, drain the
//!   connections but never stop the listeners; with `inbound_only`, only listeners whose
//!   `traffic_direction` is `INBOUND`.

/// One `/drain_listeners` request (its query flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainListeners {
    pub graceful: bool,
    pub inbound_only: bool,
    pub skip_exit: bool,
}

impl DrainListeners {
    /// Reads Envoy's flags (`?graceful&inboundonly&skip_exit`, with or without a value).
    pub fn parse_query(query: &str) -> DrainListeners {
        let has = |key: &str| query.split('&').any(|kv| kv.split_once('=').map_or(kv, |(k, _)| k) == key);
        DrainListeners { graceful: has("graceful"), inbound_only: has("inboundonly"), skip_exit: has("skip_exit") }
    }
}

/// The listeners' drain state as the admin last set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerDrain {
    /// The last `/drain_listeners` request, if any.
    pub drain_listeners: Option<DrainListeners>,
    /// `/healthcheck/fail` is in force.
    pub health_check_failed: bool,
}

impl ListenerDrain {
    /// Whether connections should close after their current request (Envoy's drain-close).
    pub fn drain_close(&self) -> bool {
        self.health_check_failed || self.drain_listeners.is_some()
    }

    /// Whether the admin has asked the listeners to drain (`/drain_listeners`).
    pub fn listeners_draining(&self) -> bool {
        self.drain_listeners.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_with_and_without_values() {
        assert_eq!(DrainListeners::parse_query(""), DrainListeners::default());
        let all = DrainListeners::parse_query("graceful&inboundonly=true&skip_exit=");
        assert_eq!(all, DrainListeners { graceful: true, inbound_only: true, skip_exit: true });
        assert!(!DrainListeners::parse_query("gracefully").graceful);
    }
}
