//! A scripted in-memory upstream for unit tests: what the pool's [`Connector`] reaches in
//! place of TCP. Each connection is a real HTTP/1.1 server (hyper) on an in-memory pipe, so the
//! pool, forwarding, retries and timeouts run unchanged; the script says what each connect
//! and each request meets, in order. Its delays are tokio timers: in paused time a test runs
//! in no real time and can assert exact instants.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::connect::Connector;
use super::{Cluster, Host, HostSet, HostStats, Pool};
use crate::config::model;
use crate::stats::{Counter, Gauge, Store};

/// What the next connect or request meets.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// The connect is refused.
    Refuse,
    /// The connect never completes (the pool's connect timeout ends it).
    ConnectHang,
    /// The request is answered with `status` after `after`.
    Answer { status: u16, after: Duration },
    /// The request is answered at once with `status` and one header.
    AnswerWith { status: u16, header: (&'static str, &'static str) },
    /// The connection is closed after `after`, with the request unanswered.
    Reset { after: Duration },
    /// The request is never answered.
    Hang,
}

/// A request the fake upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Which connection (counted from 0) carried it.
    pub connection: usize,
}

#[derive(Default)]
pub struct FakeUpstream {
    script: Mutex<VecDeque<Step>>,
    seen: Mutex<Vec<Seen>>,
    connections: Mutex<usize>,
}

/// A request met when the script is used up: answered 200 at once.
const UNSCRIPTED: Step = Step::Answer { status: 200, after: Duration::ZERO };

impl FakeUpstream {
    pub fn new(script: impl IntoIterator<Item = Step>) -> Arc<Self> {
        Arc::new(FakeUpstream { script: Mutex::new(script.into_iter().collect()), ..Default::default() })
    }

    /// Adds `step` to the end of the script.
    pub fn push(&self, step: Step) {
        lock(&self.script).push_back(step);
    }

    /// The requests received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *lock(&self.connections)
    }

    pub(super) async fn connect(self: &Arc<Self>) -> std::io::Result<tokio::io::DuplexStream> {
        let step = {
            let mut script = lock(&self.script);
            match script.front() {
                Some(Step::Refuse | Step::ConnectHang) => script.pop_front(),
                _ => None,
            }
        };
        match step {
            Some(Step::Refuse) => return Err(std::io::ErrorKind::ConnectionRefused.into()),
            Some(_) => std::future::pending::<()>().await,
            None => {}
        }
        let connection = {
            let mut n = lock(&self.connections);
            *n += 1;
            *n - 1
        };
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let fake = Arc::clone(self);
        let service = hyper::service::service_fn(move |req| Arc::clone(&fake).serve(req, connection));
        tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(theirs), service));
        Ok(ours)
    }

    async fn serve(self: Arc<Self>, req: Request<Incoming>, connection: usize) -> Result<Response<Full<Bytes>>, Reset> {
        let at = Instant::now();
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        lock(&self.seen).push(Seen { at, headers: parts.headers, body, connection });
        let step = lock(&self.script).pop_front().unwrap_or(UNSCRIPTED);
        match step {
            Step::Answer { status, after } => {
                tokio::time::sleep(after).await;
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::IM_A_TEAPOT);
                Ok(resp)
            }
            Step::AnswerWith { status, header: (name, value) } => {
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::IM_A_TEAPOT);
                resp.headers_mut().insert(name, http::HeaderValue::from_static(value));
                Ok(resp)
            }
            // hyper closes the connection when its service fails.
            Step::Reset { after } => {
                tokio::time::sleep(after).await;
                Err(Reset)
            }
            Step::Hang | Step::Refuse | Step::ConnectHang => std::future::pending().await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("scripted reset")]
pub struct Reset;

/// A live cluster whose `hosts` hosts (127.0.0.1:1, :2, ...) all reach `upstream`. `yaml`: the
/// cluster's fields after its name, as in a CDS file.
pub fn cluster(yaml: &str, hosts: u16, upstream: &Arc<FakeUpstream>) -> (Arc<Cluster>, Arc<Store>) {
    let store = Store::new();
    let cds = format!(
        "resources:\n- {{\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c{}{yaml}}}\n",
        if yaml.is_empty() { "" } else { ", " }
    );
    let config = crate::config::parse_clusters(std::path::Path::new("cds.yaml"), cds.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"))
        .resources
        .remove(0);
    let cluster = Cluster::build(config, &store);
    let hosts = (1..=hosts).map(|port| fake_host(&cluster, port, upstream)).collect();
    cluster.hosts.store(Arc::new(HostSet::new(hosts)));
    cluster.refresh_lb();
    cluster.health.membership_changed();
    (cluster, store)
}

fn fake_host(cluster: &Cluster, port: u16, upstream: &Arc<FakeUpstream>) -> Arc<Host> {
    let addr = ([127, 0, 0, 1], port).into();
    let c: &model::Cluster = &cluster.config;
    let mut conn = cluster.stats.conn.clone();
    conn.host_cx_total = Counter::default();
    conn.host_cx_active = Gauge::default();
    conn.host_cx_connect_fail = Counter::default();
    let host_conn = (conn.host_cx_total.clone(), conn.host_cx_active.clone(), conn.host_cx_connect_fail.clone());
    let pool = Pool::new(
        addr,
        c.protocol,
        c.http2,
        c.per_connection_buffer_limit_bytes,
        c.connect_timeout,
        c.idle_timeout,
        conn,
        Arc::clone(&cluster.breakers),
    )
    .with_connector(Connector::Fake(Arc::clone(upstream)));
    Arc::new(Host {
        addr,
        conn: host_conn,
        hostname: Some(format!("host{port}")),
        weight: 1,
        priority: 0,
        pool: Arc::new(pool),
        stats: HostStats::default(),
        eds: Default::default(),
        health: Arc::new(super::health::HostHealth::default()),
        hc: Default::default(),
        locality: Default::default(),
        locality_weight: 1,
        hash_key: None,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
