//! Active health checks: one check of one host (HTTP or TCP) and what its outcome does to the
//! host's flags, Envoy's rules:
//! - a host's first result decides at once; after that `healthy_threshold` successes in a row
//!   make it healthy, `unhealthy_threshold` network failures (or retriable statuses) in a row
//!   make it unhealthy, and a non-retriable bad status makes it unhealthy at once;
//! - the next check comes after `interval` (`unhealthy_interval` while unhealthy, the edge
//!   intervals right after a change, `no_traffic_interval` until the cluster has connected
//!   once), plus jitter;
//! - the check connection is kept between checks (`reuse_connection`, default true) and is
//!   counted in the cluster's `upstream_cx_total`, as Envoy's is.
//!
//! Stats `cluster.<name>.health_check.{attempt,success,failure,network_failure,
//! passive_failure,verify_cluster,healthy}`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::checker::ClusterHealth;
use super::connect::UpstreamIo;
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
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
    Tcp(UpstreamIo),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Healthy,
    /// A bad answer (status, payload); `retriable` for `retriable_statuses`.
    Active {
        retriable: bool,
    },
    Network,
    Timeout,
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
pub async fn check_host(shared: Arc<ClusterHealth>, running: Running, hc: Arc<HealthCheck>, cluster_name: String) {
    let host = Arc::clone(&running.0);
    let Some(cluster) = shared.current() else { return };
    let stats = cluster
        .stats
        .hc
        .as_ref()
        .map(|s| (s.attempt.clone(), s.success.clone(), s.failure.clone(), s.network_failure.clone()));
    let cx_total = cluster.stats.conn.cx_total.clone();
    drop(cluster);
    if let Some((attempt, ..)) = &stats {
        attempt.inc();
    }
    let conn = host.health.check().conn.take();
    let fut = run_check(&host, &hc, &cluster_name, conn, &cx_total);
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
    let changed = {
        let mut st = host.health.check();
        if hc.reuse_connection {
            st.conn = conn;
        }
        let changed = apply(&mut st, &host, &hc, outcome);
        let traffic = cx_total.value() > 0;
        st.next = Some(Instant::now() + next_interval(&hc, &host, changed, traffic));
        changed
    };
    drop(running);
    if changed {
        shared.changed();
    }
}

/// Applies one outcome to the host's flags; true when it became healthy or unhealthy.
fn apply(st: &mut HostCheck, host: &Host, hc: &HealthCheck, outcome: Outcome) -> bool {
    let h = &host.health;
    let failed = h.flags() & FAILED_ACTIVE_HC != 0;
    let first = !st.checked;
    st.checked = true;
    h.set(ACTIVE_HC_TIMEOUT, outcome == Outcome::Timeout);
    let was_pending = h.set(PENDING_ACTIVE_HC, false);
    let changed = match outcome {
        Outcome::Healthy => {
            st.unhealthy_in_row = 0;
            st.healthy_in_row += 1;
            if failed && (first || st.healthy_in_row >= hc.healthy_threshold) {
                h.set(FAILED_ACTIVE_HC, false)
            } else {
                false
            }
        }
        _ if !failed => {
            st.healthy_in_row = 0;
            st.unhealthy_in_row += 1;
            // A bad status that is not retriable fails the host at once.
            let at_once = outcome == Outcome::Active { retriable: false };
            (at_once || st.unhealthy_in_row >= hc.unhealthy_threshold) && h.set(FAILED_ACTIVE_HC, true)
        }
        _ => {
            st.healthy_in_row = 0;
            st.unhealthy_in_row += 1;
            false
        }
    };
    changed || was_pending
}

fn next_interval(hc: &HealthCheck, host: &Host, changed: bool, traffic: bool) -> Duration {
    let unhealthy = host.health.flags() & FAILED_ACTIVE_HC != 0;
    let base = match (traffic, unhealthy, changed) {
        (false, ..) => hc.no_traffic_interval,
        (true, true, true) => hc.unhealthy_edge_interval,
        (true, true, false) => hc.unhealthy_interval,
        (true, false, true) => hc.healthy_edge_interval,
        (true, false, false) => hc.interval,
    };
    let mut d = base;
    if hc.interval_jitter_percent > 0 {
        d += jitter(base * hc.interval_jitter_percent / 100);
    }
    d + jitter(hc.interval_jitter)
}

async fn run_check(
    host: &Host,
    hc: &HealthCheck,
    cluster_name: &str,
    conn: Option<Conn>,
    cx_total: &Counter,
) -> (Outcome, Option<Conn>) {
    let connect = || async {
        cx_total.inc();
        host.pool.connector().connect(host.addr).await
    };
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
            http_check(http, cluster_name, hc.reuse_connection, conn).await
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
    let io = TokioIo::new(io);
    if h2 {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new()).handshake(io).await.ok()?;
        tokio::spawn(conn);
        Some(Conn::H2(sender))
    } else {
        let (sender, conn) = http1::handshake(io).await.ok()?;
        tokio::spawn(conn);
        Some(Conn::H1(sender))
    }
}

fn request(http: &HttpCheck, cluster_name: &str, reuse: bool, h2: bool) -> http::Request<Empty<Bytes>> {
    let host = http.host.as_deref().unwrap_or(cluster_name);
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

async fn http_check(http: &HttpCheck, cluster_name: &str, reuse: bool, conn: Conn) -> (Outcome, Option<Conn>) {
    let result = match conn {
        Conn::H1(mut s) => {
            if s.ready().await.is_err() {
                return (Outcome::Network, None);
            }
            let r = s.send_request(request(http, cluster_name, reuse, false)).await;
            (r, Some(Conn::H1(s)))
        }
        Conn::H2(mut s) => {
            if s.ready().await.is_err() {
                return (Outcome::Network, None);
            }
            let r = s.send_request(request(http, cluster_name, reuse, true)).await;
            (r, Some(Conn::H2(s)))
        }
        Conn::Tcp(_) => return (Outcome::Network, None),
    };
    let (resp, conn) = result;
    let Ok(resp) = resp else { return (Outcome::Network, None) };
    let status = resp.status().as_u16();
    // The answer's body is read so that the connection can carry the next check.
    let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
    let within = |ranges: &[(u16, u16)]| ranges.iter().any(|&(a, b)| (a..b).contains(&status));
    let outcome =
        if within(&http.expected) { Outcome::Healthy } else { Outcome::Active { retriable: within(&http.retriable) } };
    (outcome, conn.filter(|_| reuse))
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
            return (Outcome::Active { retriable: false }, None);
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
