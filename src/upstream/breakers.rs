//! Envoy's circuit breakers for one cluster: its limits on connections, pending requests,
//! active requests and retries in progress, the `circuit_breakers.<priority>.*` gauges and the
//! overflow counters.
//!
//! Like Envoy, a limit is checked against a count shared by every host of the cluster, and a
//! request over a limit fails at once (503, `UO`), except a new connection over
//! `max_connections`: that request waits for a connection to come free. The counts are plain
//! atomics read and updated without a lock; a request that waits for a connection parks on a
//! `Notify` that is only touched while someone waits.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::model::Thresholds;
use crate::stats::{Counter, Gauge, Store};

/// One cluster's limits (its DEFAULT priority) and the counts they are checked against.
pub struct Breakers {
    limits: Thresholds,
    /// Connections open or being opened, over all the cluster's hosts.
    connections: AtomicI64,
    /// Retries waiting out their back-off.
    retries: AtomicI64,
    /// Requests parked until a connection comes free.
    waiting: AtomicUsize,
    released: Notify,
    stats: BreakerStats,
}

/// `cluster.<name>.circuit_breakers.*` and the overflow counters.
struct BreakerStats {
    cx_open: Gauge,
    rq_pending_open: Gauge,
    rq_open: Gauge,
    rq_retry_open: Gauge,
    remaining_cx: Option<Gauge>,
    remaining_pending: Option<Gauge>,
    remaining_rq: Option<Gauge>,
    remaining_retries: Option<Gauge>,
    cx_overflow: Counter,
    rq_pending_overflow: Counter,
    rq_active_overflow: Counter,
    rq_retry_overflow: Counter,
    /// Gauges Envoy shows that never move here (connection pools are not limited; no route
    /// has HIGH priority); held so that the store keeps them.
    _fixed: Vec<Gauge>,
}

impl Breakers {
    /// The breakers of cluster `name` with the DEFAULT-priority `limits`.
    pub fn new(store: &Arc<Store>, name: &str, limits: Thresholds, high: Thresholds) -> Arc<Breakers> {
        let g = |s: &str| store.gauge(&format!("cluster.{name}.circuit_breakers.{s}"));
        let c = |s: &str| store.counter(&format!("cluster.{name}.{s}"));
        let remaining = |t: &Thresholds, prio: &str, s: &str, max: u32| {
            t.track_remaining.then(|| {
                let gauge = g(&format!("{prio}.{s}"));
                gauge.set(i64::from(max));
                gauge
            })
        };
        let mut fixed = vec![g("default.cx_pool_open")];
        for s in ["cx_open", "cx_pool_open", "rq_open", "rq_pending_open", "rq_retry_open"] {
            fixed.push(g(&format!("high.{s}")));
        }
        for (s, max) in [
            ("remaining_cx", high.max_connections),
            ("remaining_pending", high.max_pending_requests),
            ("remaining_rq", high.max_requests),
            ("remaining_retries", high.max_retries),
        ] {
            fixed.extend(remaining(&high, "high", s, max));
        }
        let stats = BreakerStats {
            cx_open: g("default.cx_open"),
            rq_pending_open: g("default.rq_pending_open"),
            rq_open: g("default.rq_open"),
            rq_retry_open: g("default.rq_retry_open"),
            remaining_cx: remaining(&limits, "default", "remaining_cx", limits.max_connections),
            remaining_pending: remaining(&limits, "default", "remaining_pending", limits.max_pending_requests),
            remaining_rq: remaining(&limits, "default", "remaining_rq", limits.max_requests),
            remaining_retries: remaining(&limits, "default", "remaining_retries", limits.max_retries),
            cx_overflow: c("upstream_cx_overflow"),
            rq_pending_overflow: c("upstream_rq_pending_overflow"),
            rq_active_overflow: c("upstream_rq_active_overflow"),
            rq_retry_overflow: c("upstream_rq_retry_overflow"),
            _fixed: fixed,
        };
        Arc::new(Breakers {
            limits,
            connections: AtomicI64::new(0),
            retries: AtomicI64::new(0),
            waiting: AtomicUsize::new(0),
            released: Notify::new(),
            stats,
        })
    }

    pub fn limits(&self) -> &Thresholds {
        &self.limits
    }

    /// Admits one more active request, counted in `active` (the cluster's
    /// `upstream_rq_active`), or counts an overflow and refuses it.
    pub fn request<'a>(&'a self, active: &'a Gauge) -> Option<CountSlot<'a>> {
        let s = &self.stats;
        CountSlot::admit(active, self.limits.max_requests, &s.rq_active_overflow, &s.rq_open, s.remaining_rq.as_ref())
    }

    /// Admits a request that has to wait for a connection, counted in `pending` (the
    /// cluster's `upstream_rq_pending_active`), or counts an overflow and refuses it.
    pub fn pending<'a>(&'a self, pending: &'a Gauge) -> Option<CountSlot<'a>> {
        let s = &self.stats;
        let max = self.limits.max_pending_requests;
        CountSlot::admit(pending, max, &s.rq_pending_overflow, &s.rq_pending_open, s.remaining_pending.as_ref())
    }

    /// A slot for a new connection; `None` at `max_connections` (counted as an overflow
    /// when `count_overflow`), unless `host_has_none`: as in Envoy, a host with no connection
    /// at all always gets one, so that its requests cannot wait forever on other hosts'.
    pub fn connection(self: &Arc<Self>, host_has_none: bool, count_overflow: bool) -> Option<ConnectionSlot> {
        let max = i64::from(self.limits.max_connections);
        let now = self.connections.fetch_add(1, Ordering::SeqCst) + 1;
        if now > max && !host_has_none {
            self.connections.fetch_sub(1, Ordering::SeqCst);
            if count_overflow {
                self.stats.cx_overflow.inc();
            }
            return None;
        }
        track(now, max, &self.stats.cx_open, self.stats.remaining_cx.as_ref());
        Some(ConnectionSlot(Arc::clone(self)))
    }

    /// A slot for one retry's back-off; `None` (an overflow) at `max_retries`.
    pub fn retry(&self) -> Option<RetrySlot<'_>> {
        let max = i64::from(self.limits.max_retries);
        let now = self.retries.fetch_add(1, Ordering::Relaxed) + 1;
        if now > max {
            self.retries.fetch_sub(1, Ordering::Relaxed);
            self.stats.rq_retry_overflow.inc();
            return None;
        }
        track(now, max, &self.stats.rq_retry_open, self.stats.remaining_retries.as_ref());
        Some(RetrySlot(self))
    }

    /// Registers interest in a freed connection. Call before looking for one, then await
    /// [`Waiter::wait`] if none was found: a connection freed in between still wakes it.
    pub fn waiter(&self) -> Waiter<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut notified = Box::pin(self.released.notified());
        notified.as_mut().enable();
        Waiter { breakers: self, notified }
    }

    /// A connection went back to an idle list or closed: wake the requests waiting for one.
    pub fn released(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.released.notify_waiters();
        }
    }
}

/// Sets the `*_open` gauge when a count reaches its limit and the `remaining_*` gauge.
fn track(now: i64, max: i64, open: &Gauge, remaining: Option<&Gauge>) {
    if now >= max {
        open.set(1);
    }
    if let Some(r) = remaining {
        r.set((max - now).max(0));
    }
}

/// Clears the `*_open` gauge when a count drops below its limit.
fn untrack(now: i64, max: i64, open: &Gauge, remaining: Option<&Gauge>) {
    if now == max - 1 {
        open.set(0);
    }
    if let Some(r) = remaining {
        r.set((max - now).max(0));
    }
}

/// An admitted request in a count that a gauge keeps (active or pending requests);
/// released when dropped.
pub struct CountSlot<'a> {
    count: &'a Gauge,
    max: i64,
    open: &'a Gauge,
    remaining: Option<&'a Gauge>,
}

impl<'a> CountSlot<'a> {
    fn admit(
        count: &'a Gauge,
        max: u32,
        overflow: &Counter,
        open: &'a Gauge,
        remaining: Option<&'a Gauge>,
    ) -> Option<Self> {
        let max = i64::from(max);
        let now = count.inc_get();
        if now > max {
            count.dec();
            overflow.inc();
            return None;
        }
        track(now, max, open, remaining);
        Some(CountSlot { count, max, open, remaining })
    }
}

impl Drop for CountSlot<'_> {
    fn drop(&mut self) {
        untrack(self.count.dec_get(), self.max, self.open, self.remaining);
    }
}

/// One connection's place under `max_connections`, held for the connection's life.
pub struct ConnectionSlot(Arc<Breakers>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let b = &self.0;
        let now = b.connections.fetch_sub(1, Ordering::SeqCst) - 1;
        untrack(now, i64::from(b.limits.max_connections), &b.stats.cx_open, b.stats.remaining_cx.as_ref());
        b.released();
    }
}

/// One retry's place under `max_retries`, held while it backs off.
pub struct RetrySlot<'a>(&'a Breakers);

impl Drop for RetrySlot<'_> {
    fn drop(&mut self) {
        let b = self.0;
        let now = b.retries.fetch_sub(1, Ordering::Relaxed) - 1;
        untrack(now, i64::from(b.limits.max_retries), &b.stats.rq_retry_open, b.stats.remaining_retries.as_ref());
    }
}

/// A request waiting for a connection to come free.
pub struct Waiter<'a> {
    breakers: &'a Breakers,
    notified: std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>,
}

impl Waiter<'_> {
    pub async fn wait(mut self) {
        self.notified.as_mut().await;
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.breakers.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
