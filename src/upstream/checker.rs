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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::health::{HostHealth, ACTIVE_HC_TIMEOUT, FAILED_ACTIVE_HC, PENDING_ACTIVE_HC};
use super::{hc, hc_events, outlier, Cluster, Host};
use crate::config::model;
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
    let mut plan = Plan::default();
    loop {
        let Some(c) = shared.current().filter(|c| needs_task(c)) else {
            shared.task.store(false, Ordering::Release);
            // A cluster that went live meanwhile saw the task running: look once more.
            match shared.current() {
                Some(c) if needs_task(&c) && !shared.task.swap(true, Ordering::AcqRel) => continue,
                _ => return,
            }
        };
        while let Some(done) = checks.try_join_next() {
            plan.done(done);
        }
        let now = Instant::now();
        if plan.stale(&c, now) {
            plan.rebuild(&c, &shared, &mut checks, now);
        } else {
            plan.start_due(&shared, &mut checks, now);
        }
        let mut wake = plan.next_wake(now);
        if !checks.is_empty() {
            wake = wake.min(now + plan.slack);
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
            // With intervals this short, each end is read at once (the turn reads the rest).
            Some(done) = checks.join_next(), if !checks.is_empty() && plan.slack < MIN_SLACK => plan.done(done),
            _ = wake_up => plan.rebuild_next = true,
        }
    }
}

/// The task's schedule between turns, so that a turn costs what is due rather than a walk
/// over every host (1,000 hosts checked every second end a check every millisecond).
#[derive(Default)]
struct Plan {
    /// The live cluster the plan was made from, by address (a new one: made again).
    cluster: usize,
    check: Option<Arc<model::HealthCheck>>,
    cluster_name: Arc<str>,
    /// The checked hosts by their health's address (a host re-made under new attributes
    /// keeps its health, and so its place).
    members: HashMap<usize, Arc<Host>>,
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Membership or the config changed: walk every host again.
    rebuild_next: bool,
    /// A walk now and then in any case, a safety net as `MAX_NAP` is.
    rebuilt_at: Option<Instant>,
    /// How long a finished check may wait for the task to read when its host is due again.
    slack: Duration,
}

/// Below this slack, the task wakes for every check that ends.
const MIN_SLACK: Duration = Duration::from_millis(2);

/// Half the shortest interval a host can get: a finished check's result is read before its
/// host is due again, and the task need not wake for each check that ends (at 1,000 hosts
/// a second, that halves its turns).
fn slack(check: &model::HealthCheck) -> Duration {
    let shortest = [
        check.interval,
        check.unhealthy_interval,
        check.unhealthy_edge_interval,
        check.healthy_edge_interval,
        check.no_traffic_interval,
        check.no_traffic_healthy_interval,
    ]
    .into_iter()
    .min()
    .unwrap_or_default();
    (shortest / 2).min(MAX_NAP)
}

fn key(h: &Host) -> usize {
    Arc::as_ptr(&h.health) as usize
}

impl Plan {
    fn stale(&self, c: &Arc<Cluster>, now: Instant) -> bool {
        self.rebuild_next
            || self.cluster != Arc::as_ptr(c) as usize
            || self.rebuilt_at.is_none_or(|at| now >= at + MAX_NAP)
    }

    /// Walks every host of `c`: starts the due checks and schedules the others.
    fn rebuild(&mut self, c: &Arc<Cluster>, shared: &Arc<ClusterHealth>, checks: &mut JoinSet<Done>, now: Instant) {
        self.cluster = Arc::as_ptr(c) as usize;
        self.rebuild_next = false;
        self.rebuilt_at = Some(now);
        self.members.clear();
        self.due.clear();
        self.check = c.config.health_checks.first().map(|check| Arc::new(check.clone()));
        self.slack = self.check.as_deref().map_or(Duration::ZERO, slack);
        self.cluster_name = Arc::from(c.name());
        if self.check.is_none() {
            return;
        }
        for h in c.hosts.load().all.iter() {
            if h.hc.disabled {
                // Never checked, counted healthy (a reload may have just disabled it).
                if h.health.set(FAILED_ACTIVE_HC | PENDING_ACTIVE_HC | ACTIVE_HC_TIMEOUT, false) {
                    shared.changed();
                }
                continue;
            }
            self.members.insert(key(h), Arc::clone(h));
            self.start_or_schedule(h, shared, checks, now);
        }
    }

    /// Starts the checks whose time came.
    fn start_due(&mut self, shared: &Arc<ClusterHealth>, checks: &mut JoinSet<Done>, now: Instant) {
        while let Some(&Reverse((at, k))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            if let Some(h) = self.members.get(&k).cloned() {
                self.start_or_schedule(&h, shared, checks, now);
            }
        }
    }

    fn start_or_schedule(
        &mut self,
        h: &Arc<Host>,
        shared: &Arc<ClusterHealth>,
        checks: &mut JoinSet<Done>,
        now: Instant,
    ) {
        let Some(check) = &self.check else { return };
        let due = {
            let mut st = h.health.check();
            if st.running {
                // Its end schedules it.
                return;
            }
            let due = *st.next.get_or_insert_with(|| now + hc::jitter(check.initial_jitter));
            if due <= now {
                st.running = true;
            }
            due
        };
        if due <= now {
            let running = hc::Running(Arc::clone(h));
            // Boxed: the task then holds a pointer, and the runtime's moves of a task's stage
            // copy 8 bytes rather than the whole check's future (a measured share of its CPU).
            checks.spawn(Box::pin(hc::check_host(
                Arc::clone(shared),
                running,
                Arc::clone(check),
                Arc::clone(&self.cluster_name),
            )));
        } else {
            self.due.push(Reverse((due, key(h))));
        }
    }

    /// A check ended: its host is due again at the time it set.
    fn done(&mut self, done: Result<Option<(usize, Instant)>, tokio::task::JoinError>) {
        if let Ok(Some((k, next))) = done {
            if self.members.contains_key(&k) {
                self.due.push(Reverse((next, k)));
            }
        }
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let nap = now + MAX_NAP;
        self.due.peek().map_or(nap, |Reverse((at, _))| (*at).min(nap))
    }
}

/// What a check task returns: its host's key and when it is due again.
type Done = Option<(usize, Instant)>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
