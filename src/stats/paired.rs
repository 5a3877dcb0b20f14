//! Counts a connection manager charges twice: Envoy counts each response in the manager's
//! `http.<stat_prefix>.*` and again in its listener's `listener.<address>.http.<stat_prefix>.*`
//! (`downstream_rq_1xx`..`5xx`, `downstream_rq_completed`), so that two listeners sharing a
//! `stat_prefix` can still be told apart.

use std::sync::Arc;

use super::{CodeCounters, Counter, Store};

/// A counter with its per-listener twin.
pub struct PairedCounter {
    pub own: Counter,
    pub listener: Counter,
}

impl PairedCounter {
    #[inline]
    pub fn inc(&self) {
        self.own.inc();
        self.listener.inc();
    }

    pub fn value(&self) -> u64 {
        self.own.value()
    }
}

/// The manager's response codes (each code and its class) with the listener's classes.
pub struct PairedCodes {
    pub own: CodeCounters,
    /// `_1xx`..`_5xx`: the listener keeps no per-code counters, as in Envoy.
    pub listener: [Counter; 5],
}

impl PairedCodes {
    /// `http.<prefix>.downstream_rq` and `listener.<listener>.http.<prefix>.downstream_rq`.
    pub fn new(store: &Arc<Store>, prefix: &str, listener: &str) -> Self {
        let classes = std::array::from_fn(|i| {
            store.counter(&format!("listener.{listener}.http.{prefix}.downstream_rq_{}xx", i + 1))
        });
        PairedCodes { own: CodeCounters::new(store, &format!("http.{prefix}.downstream_rq"), true), listener: classes }
    }

    /// Counts one response with this status; codes outside 100..=599 count nowhere.
    #[inline]
    pub fn record(&self, status: u16) {
        self.own.record(status);
        if (100..600).contains(&status) {
            self.listener[usize::from(status / 100 - 1)].inc();
        }
    }
}
