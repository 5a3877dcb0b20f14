//! A cluster's health across reloads, and the one background task that keeps it.
//!
//! [`ClusterHealth`] is shared by a cluster and every cluster of the same name that replaces
//! it (as its circuit breakers are): it keeps each host identity's [`HostHealth`] (by
//! address, while some `Host` of it lives), points at the live cluster, and runs the task
//! that schedules active health checks and sweeps outlier ejections. A reload that changes
//! the cluster's timeout or adds an endpoint therefore keeps every unchanged host's flags,
//! check schedule and ejection; the task reads the live cluster's config on each turn.
//!
//! The task is off the request path, bounded (checks run in a `JoinSet` it owns, at most one
//! per host; it ends when no live cluster of the name needs it) and wakes when the next
//! check or sweep is due, or when membership changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::health::{HostHealth, ACTIVE_HC_TIMEOUT, FAILED_ACTIVE_HC, PENDING_ACTIVE_HC};
use super::{hc, hc_events, outlier, Cluster};
use crate::config::model::EdsHealth;

#[derive(Default)]
pub struct ClusterHealth {
    hosts: Mutex<HashMap<SocketAddr, Weak<HostHealth>>>,
    current: Mutex<Weak<Cluster>>,
    task: AtomicBool,
    /// Membership changed: new hosts may need their first check.
    wake: Notify,
    /// The health check's `event_log_path`, open.
    events: Mutex<Option<Arc<hc_events::EventLog>>>,
    /// The outlier detector's cluster-wide state.
    pub(super) outlier: outlier::ClusterOutlier,
}

/// Longest the task sleeps without looking (a safety net: it is woken when work appears).
const MAX_NAP: Duration = Duration::from_secs(5);

impl ClusterHealth {
    /// The health of the host at `addr`: the live one of that identity, or a new one
    /// (failed and pending its first check when the cluster has health checks, as Envoy).
    pub(super) fn host(&self, addr: SocketAddr, eds: EdsHealth, checked: bool) -> Arc<HostHealth> {
        let mut hosts = lock(&self.hosts);
        if let Some(h) = hosts.get(&addr).and_then(Weak::upgrade) {
            h.set_eds(eds);
            return h;
        }
        if hosts.len() > 64 && hosts.len().is_power_of_two() {
            // Removed hosts leave dead entries: dropped now and then, in amortised O(1).
            hosts.retain(|_, w| w.strong_count() > 0);
        }
        let initial = if checked { FAILED_ACTIVE_HC | PENDING_ACTIVE_HC } else { 0 };
        let h = Arc::new(HostHealth::new(eds, initial));
        hosts.insert(addr, Arc::downgrade(&h));
        h
    }

    pub(super) fn current(&self) -> Option<Arc<Cluster>> {
        lock(&self.current).upgrade()
    }

    /// Some host's health changed: the live cluster rebuilds what requests choose from.
    pub(super) fn changed(&self) {
        if let Some(c) = self.current() {
            c.refresh_lb();
        }
    }

    /// The event log at `path` (opened on first use, reopened when the path changes).
    pub(super) fn event_log(&self, path: &std::path::Path) -> Option<Arc<hc_events::EventLog>> {
        let mut events = lock(&self.events);
        let log = hc_events::EventLog::at(path, events.take());
        *events = log.clone();
        log
    }

    pub(super) fn membership_changed(&self) {
        self.wake.notify_one();
    }

    /// `cluster` is now the live one of its name: flags of features it no longer has are
    /// cleared, and the task starts if it needs one.
    pub(super) fn go_live(self: &Arc<Self>, cluster: &Arc<Cluster>) {
        *lock(&self.current) = Arc::downgrade(cluster);
        for h in cluster.hosts.load().all.iter() {
            if cluster.config.health_checks.is_empty() || h.hc.disabled {
                h.health.set(FAILED_ACTIVE_HC | PENDING_ACTIVE_HC | ACTIVE_HC_TIMEOUT, false);
            }
            if cluster.config.outlier_detection.is_none() {
                h.health.set(super::health::FAILED_OUTLIER_CHECK, false);
            }
        }
        // `--mode validate` builds clusters outside any runtime: nothing is checked there.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            if needs_task(cluster) && !self.task.swap(true, Ordering::AcqRel) {
                rt.spawn(run(Arc::clone(self)));
            }
        }
        self.wake.notify_one();
    }
}

impl Cluster {
    /// How long this cluster's first round of active health checks may still take, or `None`
    /// once every checked host has had its first result (Envoy's cluster initialization: at
    /// startup listeners wait for it). The bound is the first check's `initial_jitter` plus
    /// its `timeout` and a margin for the check task to be scheduled.
    pub fn first_health_round(&self) -> Option<Duration> {
        let check = self.config.health_checks.first()?;
        let set = self.hosts.load();
        let pending = set.all.iter().any(|h| !h.hc.disabled && h.health.flags() & PENDING_ACTIVE_HC != 0);
        pending.then(|| check.initial_jitter + check.timeout + FIRST_ROUND_MARGIN)
    }
}

/// Added to a first check's own bound: the task's scheduling and a connect that fails slowly.
const FIRST_ROUND_MARGIN: Duration = Duration::from_secs(1);

fn needs_task(c: &Cluster) -> bool {
    !c.config.health_checks.is_empty() || c.config.outlier_detection.is_some()
}

async fn run(shared: Arc<ClusterHealth>) {
    let mut checks = JoinSet::new();
    let mut next_sweep: Option<Instant> = None;
    loop {
        let Some(c) = shared.current().filter(|c| needs_task(c)) else {
            shared.task.store(false, Ordering::Release);
            // A cluster that went live meanwhile saw the task running: look once more.
            match shared.current() {
                Some(c) if needs_task(&c) && !shared.task.swap(true, Ordering::AcqRel) => continue,
                _ => return,
            }
        };
        let now = Instant::now();
        let mut wake = now + MAX_NAP;
        if let Some(check) = c.config.health_checks.first() {
            let check = Arc::new(check.clone());
            for h in c.hosts.load().all.iter() {
                if h.hc.disabled {
                    // Never checked, counted healthy (a reload may have just disabled it).
                    if h.health.set(FAILED_ACTIVE_HC | PENDING_ACTIVE_HC | ACTIVE_HC_TIMEOUT, false) {
                        shared.changed();
                    }
                    continue;
                }
                let due = {
                    let mut st = h.health.check();
                    if st.running {
                        continue;
                    }
                    let due = *st.next.get_or_insert_with(|| now + hc::jitter(check.initial_jitter));
                    if due <= now {
                        st.running = true;
                    }
                    due
                };
                if due <= now {
                    let running = hc::Running(Arc::clone(h));
                    checks.spawn(hc::check_host(
                        Arc::clone(&shared),
                        running,
                        Arc::clone(&check),
                        c.name().to_string(),
                    ));
                } else {
                    wake = wake.min(due);
                }
            }
        }
        if let Some(od) = &c.config.outlier_detection {
            let at = *next_sweep.get_or_insert(now + od.interval);
            if at <= now {
                outlier::sweep(&c, od, now);
                next_sweep = Some(now + od.interval);
            }
            wake = wake.min(next_sweep.unwrap_or(wake));
        }
        let wake_up = shared.wake.notified();
        drop(c);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            Some(_) = checks.join_next(), if !checks.is_empty() => {}
            _ = wake_up => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
