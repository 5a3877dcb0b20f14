//! Upstream clusters: their hosts, load balancing, connection pools and DNS discovery.
//!
//! A [`Cluster`] keeps its identity across reloads that do not change it: the same `Arc`,
//! with its pools, balancer position and stats. Its host set is an `ArcSwap` replaced whole
//! by its one writer, the membership task ([`membership`]), when EDS (through the reloader's
//! commit) or DNS changes it; hosts whose address stays keep their pool, counters and so
//! their connections.
//!
//! A cluster built by a reload is *staged* until the reload commits: its host set may change
//! (adopted hosts, EDS endpoints, the first DNS answer) without any effect outside it, so a
//! build that fails later leaves the running clusters, their connections and their stats as
//! they were. [`Cluster::go_live`] then publishes its membership stats and closes the idle
//! connections of the hosts it did not keep.
//!
//! Requests choose from [`Cluster::lb`], rebuilt from the host set and each host's health
//! flags ([`health`]) whenever either changes ([`lb_state`]: priorities, degraded hosts,
//! panic). Health is written off the request path by the active checker ([`checker`],
//! [`hc`]) and by outlier detection ([`outlier`], charged on the request path with atomics);
//! it belongs to the host's identity and survives reloads with it.

pub mod balancer;
pub mod breakers;
mod checker;
mod conn_life;
pub mod connect;
pub mod dns;
mod dns_schedule;
pub mod eds_rest;
mod envoy_zeros;
mod error;
#[cfg(test)]
pub mod fake;
pub mod h1;
mod hc;
mod hc_events;
mod hc_grpc;
mod hc_http1;
pub mod health;
pub mod lb_state;
pub mod maglev;
pub mod membership;
mod outlier;
pub mod pool;
pub mod response;
pub mod ring_hash;
pub mod slow_start;
pub mod xxh64;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arc_swap::ArcSwap;

use crate::config::model::{self, EdsHealth, EndpointAddress};
use crate::stats::{CodeCounters, Counter, Gauge, Histogram, Store};
use balancer::Balancer;
use checker::ClusterHealth;
use health::HostHealth;
use lb_state::LbState;
pub use outlier::Local;
pub use pool::{Pool, UpstreamError};

/// Per-cluster stats, Envoy's `cluster.<name>.*`.
pub struct ClusterStats {
    pub upstream_rq_total: Counter,
    pub upstream_rq_completed: Counter,
    pub upstream_rq_active: Gauge,
    pub upstream_rq_timeout: Counter,
    pub upstream_rq_per_try_timeout: Counter,
    pub upstream_rq_per_try_idle_timeout: Counter,
    pub upstream_rq_retry: Counter,
    pub upstream_rq_retry_success: Counter,
    pub upstream_rq_retry_limit_exceeded: Counter,
    /// Requests no longer retried because their body outgrew the retry buffer.
    pub retry_or_shadow_abandoned: Counter,
    /// Internal redirects followed / refused (the 3xx then passed on) for the route's cluster.
    pub upstream_internal_redirect_succeeded_total: Counter,
    pub upstream_internal_redirect_failed_total: Counter,
    pub upstream_rq_retry_backoff_exponential: Counter,
    /// Always 0: legate has no rate-limited back-off (`rate_limited_retry_back_off` is refused).
    pub upstream_rq_retry_backoff_ratelimited: Counter,
    pub upstream_rq_rx_reset: Counter,
    pub upstream_rq_tx_reset: Counter,
    pub upstream_rq_time: Histogram,
    pub upstream_cx_none_healthy: Counter,
    /// `tcp_proxy` connections that failed `max_connect_attempts` times in a row.
    pub upstream_cx_connect_attempts_exceeded: Counter,
    /// Requests balanced over all hosts of a priority whose healthy share is under the panic
    /// threshold (or that found no host at all).
    pub lb_healthy_panic: Counter,
    /// An HTTP/1.1 connection closed by the upstream, or by us on a timeout, mid-request.
    pub upstream_cx_destroy_with_active_rq: Counter,
    pub upstream_cx_destroy_remote_with_active_rq: Counter,
    pub upstream_cx_destroy_local_with_active_rq: Counter,
    pub membership_total: Gauge,
    pub membership_healthy: Gauge,
    pub membership_change: Counter,
    pub membership_degraded: Gauge,
    pub membership_excluded: Gauge,
    /// `health_check.*`, made when the cluster has health checks.
    pub hc: Option<hc::HcStats>,
    /// `outlier_detection.*`, made when the cluster has outlier detection.
    pub outlier: Option<outlier::OutlierStats>,
    codes: CodeCounters,
    /// Answers that were retried (`retry.upstream_rq_*`), and answers passed on by whether
    /// the request was internal (`internal.` / `external.upstream_rq_*`); made on first use.
    retried: OnceLock<CodeSet>,
    internal: OnceLock<CodeSet>,
    external: OnceLock<CodeSet>,
    store: Arc<Store>,
    name: String,
    pub conn: pool::ConnStats,
    _envoy_zeros: envoy_zeros::EnvoyZeros,
}

/// `<prefix>_<code>`, `<prefix>_<class>xx` and `<prefix>_completed`.
struct CodeSet {
    codes: CodeCounters,
    completed: Counter,
}

impl CodeSet {
    fn new(store: &Arc<Store>, prefix: &str) -> Self {
        CodeSet {
            codes: CodeCounters::new(store, prefix, false),
            completed: store.counter(&format!("{prefix}_completed")),
        }
    }

    fn charge(&self, status: u16) {
        self.codes.record(status);
        self.completed.inc();
    }
}

impl ClusterStats {
    /// Charges the answer passed on (a local one too): Envoy's `upstream_rq_<code>`,
    /// `upstream_rq_completed`, and their `internal.` or `external.` copies by the request's
    /// `x-envoy-internal`.
    pub fn charge(&self, status: u16, internal: bool) {
        self.codes.record(status);
        self.upstream_rq_completed.inc();
        let (set, kind) = if internal { (&self.internal, "internal") } else { (&self.external, "external") };
        set.get_or_init(|| CodeSet::new(&self.store, &format!("cluster.{}.{kind}.upstream_rq", self.name)))
            .charge(status);
    }

    /// The store these stats live in (for stats made later under the cluster's name).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Charges an answer that was retried: `retry.upstream_rq_<code>` and `_completed` only.
    pub fn charge_retried(&self, status: u16) {
        self.retried
            .get_or_init(|| CodeSet::new(&self.store, &format!("cluster.{}.retry.upstream_rq", self.name)))
            .charge(status);
    }

    fn new(store: &Arc<Store>, name: &str, config: &model::Cluster) -> Self {
        let c = |s: &str| store.counter(&format!("cluster.{name}.{s}"));
        let g = |s: &str| store.gauge(&format!("cluster.{name}.{s}"));
        let h = |s: &str| store.histogram(&format!("cluster.{name}.{s}"));
        ClusterStats {
            upstream_rq_total: c("upstream_rq_total"),
            upstream_rq_completed: c("upstream_rq_completed"),
            upstream_rq_active: g("upstream_rq_active"),
            upstream_rq_timeout: c("upstream_rq_timeout"),
            upstream_rq_per_try_timeout: c("upstream_rq_per_try_timeout"),
            upstream_rq_per_try_idle_timeout: c("upstream_rq_per_try_idle_timeout"),
            upstream_rq_retry: c("upstream_rq_retry"),
            upstream_rq_retry_success: c("upstream_rq_retry_success"),
            upstream_rq_retry_limit_exceeded: c("upstream_rq_retry_limit_exceeded"),
            retry_or_shadow_abandoned: c("retry_or_shadow_abandoned"),
            upstream_internal_redirect_succeeded_total: c("upstream_internal_redirect_succeeded_total"),
            upstream_internal_redirect_failed_total: c("upstream_internal_redirect_failed_total"),
            upstream_rq_retry_backoff_exponential: c("upstream_rq_retry_backoff_exponential"),
            upstream_rq_retry_backoff_ratelimited: c("upstream_rq_retry_backoff_ratelimited"),
            upstream_rq_rx_reset: c("upstream_rq_rx_reset"),
            upstream_rq_tx_reset: c("upstream_rq_tx_reset"),
            upstream_rq_time: h("upstream_rq_time"),
            upstream_cx_none_healthy: c("upstream_cx_none_healthy"),
            upstream_cx_connect_attempts_exceeded: c("upstream_cx_connect_attempts_exceeded"),
            lb_healthy_panic: c("lb_healthy_panic"),
            upstream_cx_destroy_with_active_rq: c("upstream_cx_destroy_with_active_rq"),
            upstream_cx_destroy_remote_with_active_rq: c("upstream_cx_destroy_remote_with_active_rq"),
            upstream_cx_destroy_local_with_active_rq: c("upstream_cx_destroy_local_with_active_rq"),
            membership_total: g("membership_total"),
            membership_healthy: g("membership_healthy"),
            membership_change: c("membership_change"),
            membership_degraded: g("membership_degraded"),
            membership_excluded: g("membership_excluded"),
            hc: (!config.health_checks.is_empty()).then(|| hc::HcStats::new(store, name)),
            outlier: config.outlier_detection.as_ref().map(|_| outlier::OutlierStats::new(store, name)),
            codes: CodeCounters::new(store, &format!("cluster.{name}.upstream_rq"), false),
            retried: OnceLock::new(),
            internal: OnceLock::new(),
            external: OnceLock::new(),
            store: Arc::clone(store),
            name: name.to_string(),
            conn: pool::ConnStats {
                cx_total: c("upstream_cx_total"),
                cx_http1_total: c("upstream_cx_http1_total"),
                cx_http2_total: c("upstream_cx_http2_total"),
                cx_active: g("upstream_cx_active"),
                cx_connect_fail: c("upstream_cx_connect_fail"),
                cx_connect_timeout: c("upstream_cx_connect_timeout"),
                cx_destroy: c("upstream_cx_destroy"),
                cx_idle_timeout: c("upstream_cx_idle_timeout"),
                cx_rx_bytes_total: c("upstream_cx_rx_bytes_total"),
                cx_tx_bytes_total: c("upstream_cx_tx_bytes_total"),
                cx_connect_ms: h("upstream_cx_connect_ms"),
                cx_length_ms: h("upstream_cx_length_ms"),
                rq_pending_total: c("upstream_rq_pending_total"),
                rq_pending_active: g("upstream_rq_pending_active"),
                rq_pending_failure_eject: c("upstream_rq_pending_failure_eject"),
                cx_protocol_error: c("upstream_cx_protocol_error"),
                host_cx_total: Counter::default(),
                host_cx_active: Gauge::default(),
                host_cx_connect_fail: Counter::default(),
            },
            _envoy_zeros: envoy_zeros::EnvoyZeros::new(store, name),
        }
    }
}

/// Per-host counters shown by `/clusters` (clones share the counters).
#[derive(Default, Clone)]
pub struct HostStats {
    pub rq_total: Counter,
    pub rq_success: Counter,
    pub rq_error: Counter,
    pub rq_timeout: Counter,
    pub rq_active: Gauge,
}

/// One upstream endpoint.
pub struct Host {
    pub addr: SocketAddr,
    /// (cx_total, cx_active, cx_connect_fail) of this host's connections.
    conn: (Counter, Gauge, Counter),
    /// `endpoint.hostname`, or the DNS name it was resolved from: what `auto_host_rewrite` uses.
    pub hostname: Option<String>,
    pub weight: u32,
    pub priority: u32,
    pub pool: Arc<Pool>,
    pub stats: HostStats,
    /// The `health_status` discovery gave it.
    pub eds: EdsHealth,
    /// Shared by every `Host` of this identity (see [`health`]).
    pub health: Arc<HostHealth>,
    /// `health_check_config`: where and how the checker reaches it.
    pub hc: model::EndpointHc,
    /// Its locality and the locality's `load_balancing_weight`.
    pub locality: Arc<model::Locality>,
    pub locality_weight: u32,
    /// The endpoint's `envoy.lb` `hash_key`: its key on a hashing table.
    pub hash_key: Option<String>,
}

impl Host {
    pub fn spec(&self) -> HostSpec {
        HostSpec {
            addr: self.addr,
            hostname: self.hostname.clone(),
            weight: self.weight,
            priority: self.priority,
            health: self.eds,
            hc: self.hc.clone(),
            locality: Arc::clone(&self.locality),
            locality_weight: self.locality_weight,
            hash_key: self.hash_key.clone(),
        }
    }

    /// (cx_total, cx_active, cx_connect_fail) for `/clusters`.
    pub fn pool_stats(&self) -> (u64, i64, u64) {
        (self.conn.0.value(), self.conn.1.value(), self.conn.2.value())
    }
}

/// The hosts of a cluster at one moment (what the balancer chooses from is [`LbState`],
/// rebuilt from them and their health).
pub struct HostSet {
    pub all: Vec<Arc<Host>>,
}

impl HostSet {
    pub(crate) fn new(all: Vec<Arc<Host>>) -> Self {
        HostSet { all }
    }
}

/// A desired endpoint before it becomes a [`Host`].
#[derive(Clone, Debug, PartialEq)]
pub struct HostSpec {
    pub addr: SocketAddr,
    pub hostname: Option<String>,
    pub weight: u32,
    pub priority: u32,
    /// `health_status`.
    pub health: EdsHealth,
    /// `health_check_config`.
    pub hc: model::EndpointHc,
    pub locality: Arc<model::Locality>,
    /// The locality's `load_balancing_weight`.
    pub locality_weight: u32,
    /// `envoy.lb` `hash_key`.
    pub hash_key: Option<String>,
}

pub struct Cluster {
    pub config: model::Cluster,
    pub hosts: ArcSwap<HostSet>,
    /// What requests choose from: priorities, loads and panic from `hosts` and their health.
    pub lb: ArcSwap<LbState>,
    /// Serialises rebuilding `lb` (membership and health change from different tasks).
    lb_lock: Mutex<()>,
    /// Health shared with the clusters this one replaces and is replaced by.
    health: Arc<ClusterHealth>,
    pub stats: ClusterStats,
    pub breakers: Arc<breakers::Breakers>,
    pub balancer: Balancer,
    /// Bumped whenever `hosts` changes, so pollers can wait on membership in tests/admin.
    pub generation: AtomicU64,
    /// Whether the cluster is live (committed); held while the host set changes, so a
    /// discovery task's update and the commit's [`Cluster::go_live`] do not interleave.
    live: Mutex<bool>,
    /// The membership task, the one writer of `hosts` once live (started on first use).
    membership: OnceLock<membership::Writer>,
    /// `transport_socket` `UpstreamTlsContext`: every connection of the cluster is TLS.
    pub tls: Option<Arc<crate::tls::connect::UpstreamTls>>,
    /// The process's runtime, for the balancer's runtime keys (`active_request_bias`, slow
    /// start's `aggression`); unset in unit tests, where the configured values apply.
    runtime: OnceLock<Arc<crate::runtime::Runtime>>,
    /// A runtime value for those keys could not apply (logged once per cluster: slow start
    /// rebuilds the host choice several times a second).
    runtime_rejected: std::sync::atomic::AtomicBool,
}

impl Cluster {
    /// Builds a live cluster; STATIC hosts are set at once, DNS hosts after resolution.
    pub fn build(config: model::Cluster, store: &Arc<Store>) -> Arc<Cluster> {
        let c = Self::build_adopting(config, store, None);
        c.go_live(None);
        c
    }

    /// Builds a staged cluster that replaces `old`: hosts of `old` that the new config keeps
    /// (same address, name, weight, priority, protocol, connect timeout and circuit breakers)
    /// keep their connections, and the breakers that count them. Nothing outside the new
    /// cluster changes until [`Cluster::go_live`].
    pub fn build_adopting(config: model::Cluster, store: &Arc<Store>, old: Option<&Cluster>) -> Arc<Cluster> {
        let adopt = old.filter(|o| {
            o.config.protocol == config.protocol
                && o.config.connect_timeout == config.connect_timeout
                && o.config.circuit_breakers == config.circuit_breakers
                && o.config.stat_name() == config.stat_name()
                // A pool's connections are of one transport: TLS or not, one context.
                && o.config.tls == config.tls
                && o.config.auto_config == config.auto_config
        });
        let breakers = match adopt {
            Some(o) => Arc::clone(&o.breakers),
            None => {
                let cb = &config.circuit_breakers;
                breakers::Breakers::new(store, config.stat_name(), cb.default, cb.high)
            }
        };
        // Health belongs to the host's identity: kept even when the pools are not.
        let health = old.map_or_else(|| Arc::new(ClusterHealth::default()), |o| Arc::clone(&o.health));
        // Adopted pools keep connecting through the old cluster's TLS context: it stays the
        // one (equal to the new) that the snapshot lists, so that a certificate rotation
        // reaches the pools.
        let mut config = config;
        let kept_tls = adopt.and_then(|o| o.tls.clone());
        if let Some(o) = adopt {
            config.tls.clone_from(&o.config.tls);
        }
        let adopt = adopt.map(|o| o.hosts.load_full());
        let stats = ClusterStats::new(store, config.stat_name(), &config);
        let balancer = Balancer::new(config.lb_policy, &config.lb_tuning);
        let tls = kept_tls.or_else(|| {
            config
                .tls
                .as_ref()
                .map(|t| Arc::new(crate::tls::connect::UpstreamTls::new(Arc::clone(t), store, config.stat_name())))
        });
        let cluster = Arc::new(Cluster {
            config,
            hosts: ArcSwap::from_pointee(HostSet::new(Vec::new())),
            lb: ArcSwap::from_pointee(LbState::default()),
            lb_lock: Mutex::new(()),
            health,
            stats,
            breakers,
            balancer,
            generation: AtomicU64::new(0),
            live: Mutex::new(false),
            membership: OnceLock::new(),
            tls,
            runtime: OnceLock::new(),
            runtime_rejected: Default::default(),
        });
        if let Some(hosts) = adopt {
            // Seed with the old set so that set_hosts below keeps the hosts that stayed.
            cluster.hosts.store(hosts);
        }
        let mut specs = static_specs(&cluster.config);
        if specs.is_empty() && !matches!(cluster.config.discovery, model::DiscoveryType::Static) {
            // DNS and EDS clusters keep the adopted hosts until their own discovery answers.
            specs = cluster.hosts.load().all.iter().map(|h| h.spec()).collect();
        }
        cluster.set_hosts(specs);
        // set_hosts stages nothing when the adopted hosts are the cluster's already.
        cluster.stage_lb();
        cluster
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The commit of a staged cluster: from now on host changes have their effects, the
    /// membership stats (shared by name with `replaced`) show this cluster's hosts, and the
    /// idle connections of `replaced`'s hosts that this cluster did not keep are closed.
    pub fn go_live(self: &Arc<Self>, replaced: Option<&Cluster>) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if std::mem::replace(&mut *live, true) {
            return;
        }
        let set = self.hosts.load();
        let old = replaced.map(|r| r.hosts.load_full());
        let old_hosts = old.as_ref().map_or(&[][..], |o| &o.all[..]);
        for h in old_hosts {
            // A host carried over under new attributes is a new `Host` with the same pool.
            if !set.all.iter().any(|n| Arc::ptr_eq(&n.pool, &h.pool)) {
                h.pool.close_idle();
            }
        }
        let changed =
            old_hosts.len() != set.all.len() || old_hosts.iter().zip(&set.all).any(|(a, b)| !Arc::ptr_eq(a, b));
        self.health.go_live(self);
        self.publish_membership(changed);
        drop(live);
        if let Some(slow) = &self.config.lb_tuning.slow_start {
            self.spawn_slow_start_ticker(slow.window);
        }
    }

    /// While some host's weight ramps up (slow start), rebuilds what requests choose from a
    /// few times a second, so round robin's schedule follows the ramp. Ends with the cluster.
    fn spawn_slow_start_ticker(self: &Arc<Self>, window: std::time::Duration) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let tick = (window / 20).clamp(std::time::Duration::from_millis(100), std::time::Duration::from_secs(1));
        let cluster = Arc::downgrade(self);
        rt.spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                let Some(c) = cluster.upgrade() else { return };
                if c.lb.load().slow_starting() {
                    c.refresh_lb();
                }
            }
        });
    }

    fn publish_membership(&self, changed: bool) {
        let n = self.hosts.load().all.len() as i64;
        self.stats.membership_total.set(n);
        self.refresh_lb();
        if changed {
            self.stats.membership_change.inc();
        }
    }

    /// Gives the cluster the process's runtime, whose values for the balancer's runtime keys
    /// apply from then on, read at each rebuild of the host choice as Envoy reads them (on
    /// host-set updates, and while hosts are in slow start).
    pub fn use_runtime(&self, runtime: &Arc<crate::runtime::Runtime>) {
        let t = &self.config.lb_tuning;
        if (t.active_request_bias_key.is_some() || t.aggression_key.is_some())
            && self.runtime.set(Arc::clone(runtime)).is_ok()
        {
            self.refresh_lb();
        }
    }

    /// The tuning values the runtime overrides, as of now (Envoy falls back to 1.0 on a value
    /// that cannot apply, with a log line).
    fn runtime_tuning(&self) -> (f64, Option<model::SlowStart>) {
        let t = &self.config.lb_tuning;
        let Some(rt) = self.runtime.get() else { return (t.active_request_bias, t.slow_start) };
        let mut bias = t.active_request_bias;
        if let Some(key) = &t.active_request_bias_key {
            bias = rt.double(key, bias);
            if bias < 0.0 || bias.is_nan() {
                self.runtime_rejected_once(key, "invalid active request bias supplied, using 1.0");
                bias = 1.0;
            }
        }
        let mut slow = t.slow_start;
        if let (Some(s), Some(key)) = (slow.as_mut(), &t.aggression_key) {
            s.aggression = rt.double(key, s.aggression);
            if s.aggression <= 0.0 || s.aggression.is_nan() {
                self.runtime_rejected_once(key, "invalid aggression (it must be greater than 0.0), using 1.0");
                s.aggression = 1.0;
            }
        }
        (bias, slow)
    }

    fn runtime_rejected_once(&self, key: &str, what: &str) {
        if !self.runtime_rejected.swap(true, Ordering::Relaxed) {
            tracing::warn!(cluster = %self.config.name, "upstream: runtime key {key}: {what}");
        }
    }

    /// What requests choose from over `hosts`, by their health (no stats).
    fn lb_state(&self, hosts: &[Arc<Host>]) -> LbState {
        let c = &self.config;
        let (bias, slow_start) = self.runtime_tuning();
        self.balancer.set_active_request_bias(bias);
        let mut lb = LbState::with_slow_start(hosts, c.panic_threshold, c.locality_weighted_lb, slow_start);
        if self.config.lb_policy.is_hashing() {
            let (policy, hashing) = (&self.config.lb_policy, &self.config.consistent_hashing);
            let tables = lb.sources.iter().filter_map(|s| balancer::HashTable::build(policy, hashing, &s.hosts));
            lb.hashed = tables.collect();
        }
        lb
    }

    /// A staged cluster's hosts to choose from: requests reach it as soon as the snapshot
    /// holding it is stored, before it goes live (which also publishes its stats).
    pub(crate) fn stage_lb(&self) {
        let _one = self.lb_lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.lb.store(Arc::new(self.lb_state(&self.hosts.load().all)));
    }

    /// Rebuilds what requests choose from, after membership or some host's health changed.
    pub fn refresh_lb(&self) {
        let _one = self.lb_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let set = self.hosts.load();
        let lb = self.lb_state(&set.all);
        self.stats.membership_healthy.set(lb.healthy as i64);
        self.stats.membership_degraded.set(lb.degraded as i64);
        let excluded = set.all.iter().filter(|h| health::excluded(h.health.flags())).count();
        self.stats.membership_excluded.set(excluded as i64);
        if let Some(hc) = &self.stats.hc {
            // As Envoy's, the gauge counts the hosts the checker checks.
            let up =
                set.all.iter().filter(|h| !h.hc.disabled && h.health.flags() & health::FAILED_ACTIVE_HC == 0).count();
            hc.healthy.set(up as i64);
        }
        self.lb.store(Arc::new(lb));
    }

    /// Picks a host for a request, or `None` when the cluster has no host to use.
    #[inline]
    pub fn choose(&self) -> Option<Arc<Host>> {
        self.choose_for(None)
    }

    /// [`Cluster::choose`] for a request with the key of its route's `hash_policy`: under
    /// RING_HASH and MAGLEV the key chooses the priority (`hash % 100`, as Envoy) and the
    /// host; a request without one gets a random key, as in Envoy.
    #[inline]
    pub fn choose_for(&self, hash: Option<u64>) -> Option<Arc<Host>> {
        self.choose_attempt(&self.lb.load(), &mut { hash }, 0)
    }

    /// A host for a retry that should avoid the hosts `tried` (the `previous_hosts` retry
    /// host predicate): up to `1 + reattempts` selections, the last one kept whatever it is,
    /// as Envoy's load balancers do. `state` replaces what requests choose from (a retry
    /// priority's [`Cluster::state_without_priorities`]).
    pub fn choose_avoiding(
        &self,
        hash: Option<u64>,
        tried: &[SocketAddr],
        reattempts: u32,
        state: Option<&LbState>,
    ) -> Option<Arc<Host>> {
        let current = self.lb.load();
        let lb = state.unwrap_or(&current);
        let mut h = hash;
        let mut host = self.choose_attempt(lb, &mut h, 0)?;
        for attempt in 1..=reattempts {
            if !tried.contains(&host.addr) {
                break;
            }
            match self.choose_attempt(lb, &mut h, attempt) {
                Some(next) => host = next,
                None => break,
            }
        }
        Some(host)
    }

    /// What a retry chooses from under the `previous_priorities` retry priority: the loads
    /// computed as if the hosts of the priorities in `excluded` were unhealthy (Envoy's
    /// recomputed priority load), or `None` when that leaves no healthy or degraded host
    /// (Envoy then goes back to the original load).
    pub fn state_without_priorities(&self, excluded: &[u32]) -> Option<LbState> {
        let set = self.hosts.load();
        let kept: Vec<Arc<Host>> = set.all.iter().filter(|h| !excluded.contains(&h.priority)).cloned().collect();
        let lb = self.lb_state(&kept);
        (lb.healthy + lb.degraded > 0).then_some(lb)
    }

    /// Selection attempt `attempt` (0 first) from `lb` with hash `h`: the route's hash
    /// policy's key, else one random number drawn for the first attempt that needs it and
    /// kept for the request's other attempts, as in Envoy.
    fn choose_attempt(&self, lb: &LbState, h: &mut Option<u64>, attempt: u32) -> Option<Arc<Host>> {
        if !lb.hashed.is_empty() {
            let h = *h.get_or_insert_with(rand::random);
            let (i, source) = lb.pick_hashed(h)?;
            if source.panic {
                self.stats.lb_healthy_panic.inc();
            }
            let host = lb.hashed.get(i)?.choose(h, attempt, &source.hosts, self.stats.upstream_rq_active.value())?;
            return source.hosts.get(host).cloned();
        }
        let source = lb.pick()?;
        if source.panic {
            self.stats.lb_healthy_panic.inc();
        }
        self.balancer.choose(&source.hosts, &source.schedule).cloned()
    }

    /// Gives back the buffers of its hosts' idle connections ([`crate::idle_release`]).
    pub fn release_idle_buffers(&self) {
        for h in self.hosts.load().all.iter() {
            h.pool.release_idle_buffers();
        }
    }

    /// Closes every idle upstream connection (the cluster left the configuration).
    pub fn shutdown(&self) {
        for h in self.hosts.load().all.iter() {
            h.pool.close_idle();
        }
    }
}

/// The hosts a cluster's config names by IP (STATIC, EDS-with-inline, DNS clusters' literal IPs):
/// read as an EDS assignment is.
fn static_specs(config: &model::Cluster) -> Vec<HostSpec> {
    eds_rest::specs_from_assignment(&config.endpoints)
}

/// Does this cluster's config need DNS?
pub fn needs_dns(config: &model::Cluster) -> bool {
    matches!(config.discovery, model::DiscoveryType::StrictDns | model::DiscoveryType::LogicalDns)
        && config.endpoints.iter().flat_map(|l| &l.endpoints).any(|e| matches!(e.address, EndpointAddress::Dns { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(port: u16) -> HostSpec {
        HostSpec {
            addr: ([127, 0, 0, 1], port).into(),
            hostname: None,
            weight: 1,
            priority: 0,
            health: EdsHealth::Healthy,
            hc: Default::default(),
            locality: Default::default(),
            locality_weight: 1,
            hash_key: None,
        }
    }

    fn host_of(c: &Cluster, port: u16) -> Arc<Host> {
        let set = c.hosts.load();
        let h = set.all.iter().find(|h| h.addr.port() == port).unwrap_or_else(|| panic!("no host on {port}"));
        Arc::clone(h)
    }

    #[test]
    fn hosts_that_stay_keep_their_arc_wherever_they_move() {
        let store = Store::new();
        let cds = b"resources:\n- {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c}\n";
        let cfg = crate::config::parse_clusters(std::path::Path::new("cds.yaml"), cds)
            .unwrap_or_else(|e| panic!("{e}"))
            .resources
            .remove(0);
        let c = Cluster::build(cfg, &store);
        c.set_hosts(vec![spec(1), spec(2), spec(3)]);
        let (h1, h2, h3) = (host_of(&c, 1), host_of(&c, 2), host_of(&c, 3));
        let generation = c.generation.load(Ordering::Acquire);
        c.set_hosts(vec![spec(1), spec(2), spec(3)]);
        assert_eq!(c.generation.load(Ordering::Acquire), generation, "the same hosts are no change");
        let same = |a: &Arc<Host>, port| Arc::ptr_eq(a, &host_of(&c, port));
        c.set_hosts(vec![spec(9), spec(1), spec(2), spec(3)]);
        assert!(same(&h1, 1) && same(&h2, 2) && same(&h3, 3), "one added in front");
        c.set_hosts(vec![spec(9), spec(1), spec(4), spec(3)]);
        assert!(same(&h1, 1) && same(&h3, 3), "one replaced in the middle");
        let h4 = host_of(&c, 4);
        c.set_hosts(vec![spec(3), spec(4), spec(1)]);
        assert!(same(&h1, 1) && same(&h3, 3) && same(&h4, 4), "reordered");
        let ports: Vec<u16> = c.hosts.load().all.iter().map(|h| h.addr.port()).collect();
        assert_eq!(ports, [3, 4, 1]);
    }
}
