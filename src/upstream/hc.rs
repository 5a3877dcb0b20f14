//! Active health checks: one check of one host (HTTP or TCP) and what its outcome does to the
//! host's flags, Envoy's rules:
//! - a host's first result decides at once; after that `healthy_threshold` successes in a row
//!   make it healthy, `unhealthy_threshold` network failures (or retriable statuses) in a row
//!   make it unhealthy, and a non-retriable bad status makes it unhealthy at once;
//! - the next check comes after `interval` (`unhealthy_interval` after a failure, the edge
//!   intervals while a result against the host's state has not reached its threshold yet,
//!   `no_traffic_interval` / `no_traffic_healthy_interval` until the cluster has made a
//!   connection of its own), plus jitter;
//! - the check connection is kept between checks (`reuse_connection`, default true); as in
//!   Envoy it is not counted in the cluster's `upstream_cx_*`;
//! - an endpoint's `health_check_config` moves its checks (`address`, `port_value`), names
//!   their Host (`hostname`) or turns them off (`disable_active_health_check`);
//! - transitions and failures go to the `event_log_path` ([`super::hc_events`]);
//! - a passing check brings a host ejected by outlier detection back
//!   (`successful_active_health_check_uneject_host`, [`super::outlier`]).
//!
//! Stats `cluster.<name>.health_check.{attempt,success,failure,network_failure,
//! passive_failure,verify_cluster,healthy}`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Empty, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::checker::ClusterHealth;
use super::connect::UpstreamIo;
use super::hc_events::{Event, FailureType, Subject};
use super::health::{ACTIVE_HC_TIMEOUT, FAILED_ACTIVE_HC, PENDING_ACTIVE_HC};
use super::Host;
use crate::config::model::{CheckKind, HealthCheck, HttpCheck, TcpCheck};
use crate::stats::{Counter, Gauge, Store};

pub struct HcStats {
    pub attempt: Counter,
    pub success: Counter,
    pub failure: Counter,
    pub network_failure: Counter,
    pub passive_failure: Counter,
    pub verify_cluster: Counter,
    pub healthy: Gauge,
}

impl HcStats {
    pub fn new(store: &Arc<Store>, name: &str) -> Self {
        let c = |s: &str| store.counter(&format!("cluster.{name}.health_check.{s}"));
        HcStats {
            attempt: c("attempt"),
            success: c("success"),
            failure: c("failure"),
            network_failure: c("network_failure"),
            passive_failure: c("passive_failure"),
            verify_cluster: c("verify_cluster"),
            healthy: store.gauge(&format!("cluster.{name}.health_check.healthy")),
        }
    }
}

/// The checker's state of one host identity.
#[derive(Default)]
pub struct HostCheck {
    /// When the next check is due (`None`: never scheduled yet).
    pub next: Option<Instant>,
    /// A check of this host is under way.
    pub running: bool,
    /// At least one result came (the first one decides at once).
    checked: bool,
    healthy_in_row: u32,
    unhealthy_in_row: u32,
    /// The kept check connection.
    conn: Option<Conn>,
}

enum Conn {
    H1(super::hc_http1::Conn),
    H2(http2::SendRequest<Empty<Bytes>>),
    Tcp(UpstreamIo),
    Grpc(http2::SendRequest<Full<Bytes>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Healthy,
    /// A bad answer (`status`, or a payload: 0); `retriable` for `retriable_statuses`.
    Active {
        retriable: bool,
        status: u16,
    },
    Network,
    Timeout,
}

/// What one result did to the host, Envoy's `HealthTransition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    /// Healthy or unhealthy now, or its first result (its pending mark went).
    Changed,
    /// A result against the host's state that did not reach its threshold yet.
    ChangePending,
}

pub fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::thread_rng().gen_range(0..max.as_millis().max(1) as u64))
}

/// Clears a host's `running` mark however the check ends (the task may be dropped before
/// it starts): made where the mark is set.
pub struct Running(pub Arc<Host>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.health.check().running = false;
    }
}

/// Checks `host` once, applies the outcome and schedules the next check.
/// Returns the host's key in the checker's plan and when it is due again.
pub async fn check_host(
    shared: Arc<ClusterHealth>,
    running: Running,
    hc: Arc<HealthCheck>,
    cluster_name: Arc<str>,
) -> Option<(usize, Instant)> {
    let host = Arc::clone(&running.0);
    let cluster = shared.current()?;
    let stats = cluster
        .stats
        .hc
        .as_ref()
        .map(|s| (s.attempt.clone(), s.success.clone(), s.failure.clone(), s.network_failure.clone()));
    // Envoy's test of traffic: the cluster's own connections (checks' are not counted).
    let cx_total = cluster.stats.conn.cx_total.clone();
    drop(cluster);
    if let Some((attempt, ..)) = &stats {
        attempt.inc();
    }
    let conn = host.health.check().conn.take();
    let fut = run_check(&host, &hc, &cluster_name, conn);
    let (outcome, conn) = match tokio::time::timeout(hc.timeout, fut).await {
        Ok(r) => r,
        Err(_) => (Outcome::Timeout, None),
    };
    if let Some((_, success, failure, network)) = &stats {
        match outcome {
            Outcome::Healthy => success.inc(),
            Outcome::Active { .. } => failure.inc(),
            Outcome::Network | Outcome::Timeout => {
                failure.inc();
                network.inc();
            }
        }
    }
    let mut events = Vec::new();
    let (changed, next) = {
        let mut st = host.health.check();
        if hc.reuse_connection {
            st.conn = conn;
        }
        let t = apply(&mut st, &host, &hc, outcome, &mut events);
        let traffic = cx_total.value() > 0;
        let next = Instant::now() + next_interval(&hc, outcome == Outcome::Healthy, t, traffic);
        st.next = Some(next);
        (t == Transition::Changed, next)
    };
    drop(running);
    if outcome == Outcome::Healthy {
        // Envoy's detector listens to every check's result (its host-check-complete callback).
        if let Some(cluster) = shared.current() {
            super::outlier::active_check_passed(&cluster, &host);
        }
    }
    if !events.is_empty() {
        if let Some(log) = hc.event_log_path.as_deref().and_then(|p| shared.event_log(p)) {
            let subject = Subject {
                checker: checker_name(&hc.kind),
                addr: host.addr,
                cluster: &cluster_name,
                locality: &host.locality,
            };
            for e in events {
                log.write(&subject, e);
            }
        }
    }
    if changed {
        shared.changed();
    }
    Some((Arc::as_ptr(&host.health) as usize, next))
}

fn checker_name(kind: &CheckKind) -> &'static str {
    match kind {
        CheckKind::Http(_) => "HTTP",
        CheckKind::Tcp(_) => "TCP",
        CheckKind::Grpc(_) => "GRPC",
    }
}

/// Applies one outcome to the host's flags, Envoy's rules; the events it makes go to `events`.
fn apply(st: &mut HostCheck, host: &Host, hc: &HealthCheck, outcome: Outcome, events: &mut Vec<Event>) -> Transition {
    let h = &host.health;
    let failed = h.flags() & FAILED_ACTIVE_HC != 0;
    let first = !st.checked;
    st.checked = true;
    let t = match outcome {
        Outcome::Healthy => {
            st.unhealthy_in_row = 0;
            if !failed {
                Transition::Unchanged
            } else {
                st.healthy_in_row += 1;
                if first || st.healthy_in_row >= hc.healthy_threshold {
                    h.set(FAILED_ACTIVE_HC | ACTIVE_HC_TIMEOUT, false);
                    events.push(Event::AddHealthy { first_check: first });
                    Transition::Changed
                } else {
                    Transition::ChangePending
                }
            }
        }
        _ => {
            st.healthy_in_row = 0;
            let (failure, status, at_once) = match outcome {
                Outcome::Active { retriable, status } => (FailureType::Active, status, !retriable),
                Outcome::Timeout => (FailureType::NetworkTimeout, 0, false),
                _ => (FailureType::Network, 0, false),
            };
            let t = if failed {
                Transition::Unchanged
            } else {
                st.unhealthy_in_row += 1;
                // A bad status that is not retriable fails the host at once.
                if at_once || st.unhealthy_in_row >= hc.unhealthy_threshold {
                    h.set(FAILED_ACTIVE_HC, true);
                    events.push(Event::EjectUnhealthy { failure, status });
                    Transition::Changed
                } else {
                    Transition::ChangePending
                }
            };
            // Envoy marks a timeout only on a host the checker has failed.
            let now_failed = h.flags() & FAILED_ACTIVE_HC != 0;
            h.set(ACTIVE_HC_TIMEOUT, outcome == Outcome::Timeout && now_failed);
            if first || hc.always_log_failures {
                events.push(Event::Failure { failure, first_check: first, status });
            }
            t
        }
    };
    if h.set(PENDING_ACTIVE_HC, false) {
        // Its first result: the cluster recounts its excluded hosts.
        return Transition::Changed;
    }
    t
}

/// The wait before the next check, Envoy's `HealthCheckerImplBase::interval`: `success` is
/// this check's result, `traffic` whether the cluster has made a connection of its own.
fn next_interval(hc: &HealthCheck, success: bool, t: Transition, traffic: bool) -> Duration {
    let pending = t == Transition::ChangePending;
    let base = match (traffic, success, pending) {
        (false, true, false) => hc.no_traffic_healthy_interval,
        (false, ..) => hc.no_traffic_interval,
        (true, false, true) => hc.unhealthy_edge_interval,
        (true, false, false) => hc.unhealthy_interval,
        (true, true, true) => hc.healthy_edge_interval,
        (true, true, false) => hc.interval,
    };
    let mut d = base;
    if hc.interval_jitter_percent > 0 {
        d += jitter(base * hc.interval_jitter_percent / 100);
    }
    d + jitter(hc.interval_jitter)
}

async fn run_check(host: &Host, hc: &HealthCheck, cluster_name: &str, conn: Option<Conn>) -> (Outcome, Option<Conn>) {
    let connect = || async { host.pool.connector().connect(host.hc.target(host.addr)).await };
    // The endpoint's `health_check_config.hostname` wins over the check's `host`.
    let authority = host.hc.hostname.as_deref().or(match &hc.kind {
        CheckKind::Http(http) => http.host.as_deref(),
        CheckKind::Grpc(grpc) => grpc.authority.as_deref(),
        CheckKind::Tcp(_) => None,
    });
    let authority = authority.unwrap_or(cluster_name);
    match &hc.kind {
        CheckKind::Http(http) => {
            let conn = match conn {
                Some(c @ (Conn::H1(_) | Conn::H2(_))) => c,
                _ => match connect().await {
                    Ok(io) => match handshake(io, http.http2).await {
                        Some(c) => c,
                        None => return (Outcome::Network, None),
                    },
                    Err(_) => return (Outcome::Network, None),
                },
            };
            http_check(http, authority, hc.reuse_connection, conn).await
        }
        CheckKind::Grpc(grpc) => {
            let sender = match conn {
                Some(Conn::Grpc(s)) => s,
                _ => match connect().await {
                    Ok(io) => match http2::Builder::new(TokioExecutor::new()).handshake(TokioIo::new(io)).await {
                        Ok((sender, conn)) => {
                            tokio::spawn(conn);
                            sender
                        }
                        Err(_) => return (Outcome::Network, None),
                    },
                    Err(_) => return (Outcome::Network, None),
                },
            };
            let (outcome, sender) = super::hc_grpc::check(grpc, authority, sender, hc.timeout.as_millis()).await;
            (outcome, sender.map(Conn::Grpc))
        }
        CheckKind::Tcp(tcp) => {
            let io = match conn {
                Some(Conn::Tcp(io)) => io,
                _ => match connect().await {
                    Ok(io) => io,
                    Err(_) => return (Outcome::Network, None),
                },
            };
            tcp_check(tcp, io).await
        }
    }
}

async fn handshake(io: UpstreamIo, h2: bool) -> Option<Conn> {
    if h2 {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new()).handshake(TokioIo::new(io)).await.ok()?;
        tokio::spawn(conn);
        Some(Conn::H2(sender))
    } else {
        Some(Conn::H1(super::hc_http1::Conn::new(io)))
    }
}

fn request(http: &HttpCheck, host: &str, reuse: bool, h2: bool) -> http::Request<Empty<Bytes>> {
    let mut b = http::Request::get(http.path.as_str());
    if h2 {
        b = b.uri(format!("http://{host}{}", http.path));
    } else {
        b = b.header(http::header::HOST, host);
        if !reuse {
            b = b.header(http::header::CONNECTION, "close");
        }
    }
    b = b.header(http::header::USER_AGENT, "Envoy/HC");
    let mut req = b.body(Empty::new()).unwrap_or_default();
    let headers = req.headers_mut();
    for h in &http.headers_to_remove {
        headers.remove(h.as_str());
    }
    for add in &http.headers_to_add {
        if let (Ok(k), Ok(v)) =
            (http::HeaderName::from_bytes(add.key.as_bytes()), http::HeaderValue::from_str(&add.value))
        {
            if add.action == crate::config::model::AppendAction::Append {
                headers.append(k, v);
            } else {
                headers.insert(k, v);
            }
        }
    }
    req
}

async fn http_check(http: &HttpCheck, authority: &str, reuse: bool, conn: Conn) -> (Outcome, Option<Conn>) {
    let result = match conn {
        Conn::H1(c) => {
            let head = super::hc_http1::encode(&request(http, authority, reuse, false));
            let Some((status, c)) = super::hc_http1::exchange(c, &head).await else {
                return (Outcome::Network, None);
            };
            return (outcome(http, status), c.map(Conn::H1).filter(|_| reuse));
        }
        Conn::H2(mut s) => {
            if s.ready().await.is_err() {
                return (Outcome::Network, None);
            }
            let r = s.send_request(request(http, authority, reuse, true)).await;
            (r, Some(Conn::H2(s)))
        }
        Conn::Tcp(_) | Conn::Grpc(_) => return (Outcome::Network, None),
    };
    let (resp, conn) = result;
    let Ok(resp) = resp else { return (Outcome::Network, None) };
    let status = resp.status().as_u16();
    // The answer's body is read so that the connection can carry the next check.
    let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
    (outcome(http, status), conn.filter(|_| reuse))
}

fn outcome(http: &HttpCheck, status: u16) -> Outcome {
    let within = |ranges: &[(u16, u16)]| ranges.iter().any(|&(a, b)| (a..b).contains(&status));
    if within(&http.expected) {
        Outcome::Healthy
    } else {
        Outcome::Active { retriable: within(&http.retriable), status }
    }
}

/// Connect only, or `send` then every `receive` payload found in order in the answer.
async fn tcp_check(tcp: &TcpCheck, mut io: UpstreamIo) -> (Outcome, Option<Conn>) {
    if !tcp.send.is_empty() && io.write_all(&tcp.send).await.is_err() {
        return (Outcome::Network, None);
    }
    if tcp.receive.is_empty() {
        return (Outcome::Healthy, Some(Conn::Tcp(io)));
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded by the check's timeout around it, and by the bytes expected.
    let want: usize = tcp.receive.iter().map(Vec::len).sum();
    loop {
        if matches_in_order(&got, &tcp.receive) {
            return (Outcome::Healthy, Some(Conn::Tcp(io)));
        }
        if got.len() > want.max(64 * 1024) {
            return (Outcome::Active { retriable: false, status: 0 }, None);
        }
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return (Outcome::Network, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn matches_in_order(got: &[u8], want: &[Vec<u8>]) -> bool {
    let mut at = 0;
    for w in want {
        match got[at..].windows(w.len().max(1)).position(|x| x == &w[..]) {
            Some(i) => at += i + w.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
#[path = "hc_tests.rs"]
mod tests;
