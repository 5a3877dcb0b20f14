//! `envoy.filters.http.fault`: delays and aborts requests, by configuration or by the
//! `x-envoy-fault-*` request headers, with Envoy's stats (`http.<prefix>.fault.*`, and
//! `fault.<downstream cluster>.*` when the client names its cluster), `max_active_faults`, and
//! the access-log flags `DI` and `FI`. Delays run on tokio's clock.
//!
//! Envoy's runtime keys override the configuration as in Envoy 1.40 (the fault-injection
//! sandbox's disk layer), each renamed by its `*_runtime` field: `fault.http.abort.abort_percent`
//! and `fault.http.delay.fixed_delay_percent` (an integer is a percentage over 100, whatever
//! the configured denominator, as Envoy's `featureEnabled`; a YAML map a fraction),
//! `fault.http.abort.http_status`, `fault.http.abort.grpc_status`,
//! `fault.http.delay.fixed_duration_ms` (0: no delay), `fault.http.max_active_faults`; with
//! `x-envoy-downstream-service-cluster`, `fault.http.<cluster>.{abort,delay}.*` too.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, StatusCode};

use crate::config::filters::{AbortKind, DelayKind, FaultConfig, Fraction};
use crate::config::model::HeaderMatcher;
use crate::proxy::local_reply::LocalReason;
use crate::routing::matcher::{header_matches, RequestView};
use crate::runtime::{hit, Runtime};
use crate::stats::{Counter, Gauge, Store};

static ABORT_REQUEST: HeaderName = HeaderName::from_static("x-envoy-fault-abort-request");
static ABORT_GRPC_REQUEST: HeaderName = HeaderName::from_static("x-envoy-fault-abort-grpc-request");
static ABORT_PERCENTAGE: HeaderName = HeaderName::from_static("x-envoy-fault-abort-request-percentage");
static DELAY_REQUEST: HeaderName = HeaderName::from_static("x-envoy-fault-delay-request");
static DELAY_PERCENTAGE: HeaderName = HeaderName::from_static("x-envoy-fault-delay-request-percentage");
static DOWNSTREAM_NODE: HeaderName = HeaderName::from_static("x-envoy-downstream-service-node");
static DOWNSTREAM_CLUSTER: HeaderName = HeaderName::from_static("x-envoy-downstream-service-cluster");

/// A fault configuration (the filter's own or a route's), compiled.
#[derive(Debug)]
pub struct FaultSettings {
    config: FaultConfig,
}

impl FaultSettings {
    pub fn new(config: &FaultConfig) -> Self {
        FaultSettings { config: config.clone() }
    }
}

/// `http.<prefix>.fault.*`
#[derive(Clone)]
struct FaultStats {
    aborts_injected: Counter,
    delays_injected: Counter,
    active_faults: Gauge,
    faults_overflow: Counter,
}

pub struct Fault {
    settings: Arc<FaultSettings>,
    stats: FaultStats,
    store: Arc<Store>,
    /// `http.<prefix>.fault.`
    prefix: String,
}

/// One active fault: counted in `active_faults` until the request is done with it.
pub struct ActiveFault(Gauge);

impl Drop for ActiveFault {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What the fault filter needs to know of a request.
pub struct FaultRequest<'a> {
    pub headers: &'a HeaderMap,
    pub view: RequestView<'a>,
    /// The cluster the route chose, if any.
    pub cluster: Option<&'a str>,
    /// The process's runtime values.
    pub runtime: Option<&'a Runtime>,
}

/// The runtime as one request reads it: only when some key is set.
struct Rt<'a> {
    rt: &'a Runtime,
    /// `x-envoy-downstream-service-cluster`: its own keys, `fault.http.<cluster>.*`.
    cluster: Option<&'a str>,
}

impl Rt<'_> {
    /// `key`, then `fault.http.<cluster>.<tail>` over it.
    fn integer(&self, key: &str, tail: &str, default: u64) -> u64 {
        let v = self.rt.integer(key, default);
        match self.cluster {
            Some(c) => self.rt.integer(&format!("fault.http.{c}.{tail}"), v),
            None => v,
        }
    }

    /// Envoy's `featureEnabled` of the global key, or of the cluster's (each drawn).
    fn enabled(&self, key: &str, tail: &str, p: Fraction) -> bool {
        hit(self.rt.percent(key, p))
            || self.cluster.is_some_and(|c| hit(self.rt.percent(&format!("fault.http.{c}.{tail}"), p)))
    }
}

impl Fault {
    pub fn new(config: &FaultConfig, store: &Arc<Store>, hcm_prefix: &str) -> Self {
        let prefix = format!("http.{hcm_prefix}.fault.");
        let c = |s: &str| store.counter(&format!("{prefix}{s}"));
        let stats = FaultStats {
            aborts_injected: c("aborts_injected"),
            delays_injected: c("delays_injected"),
            active_faults: store.gauge(&format!("{prefix}active_faults")),
            faults_overflow: c("faults_overflow"),
        };
        // Envoy creates it with the others; legate has no response rate limit to count.
        let _ = c("response_rl_injected");
        Fault { settings: Arc::new(FaultSettings::new(config)), stats, store: Arc::clone(store), prefix }
    }

    /// The filter's own settings (a route without a per-route `HTTPFault` uses them).
    pub fn settings(&self) -> &Arc<FaultSettings> {
        &self.settings
    }

    /// Delays and/or aborts the request as `settings` say. On success, the active fault (if
    /// one was injected) must live as long as the request.
    pub async fn decode(
        &self,
        settings: &FaultSettings,
        req: FaultRequest<'_>,
        stream: &mut super::Stream,
    ) -> Result<(), LocalReason> {
        let c = &settings.config;
        if c.abort.is_none() && c.delay.is_none() {
            return Ok(());
        }
        if c.upstream_cluster.as_deref().is_some_and(|u| req.cluster != Some(u)) {
            return Ok(());
        }
        if !c.downstream_nodes.is_empty() {
            let node = req.headers.get(&DOWNSTREAM_NODE).and_then(|v| v.to_str().ok());
            if !node.is_some_and(|n| c.downstream_nodes.iter().any(|d| d == n)) {
                return Ok(());
            }
        }
        if !c.headers.iter().all(|h: &HeaderMatcher| header_matches(h, &req.view)) {
            return Ok(());
        }
        let downstream_cluster = req
            .headers
            .get(&DOWNSTREAM_CLUSTER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && !c.disable_downstream_cluster_stats);
        let cluster_keys = req.headers.get(&DOWNSTREAM_CLUSTER).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
        let rt = req.runtime.filter(|r| !r.is_empty()).map(|rt| Rt { rt, cluster: cluster_keys });
        let rt = rt.as_ref();
        if let Some(delay) = delay_of(c, req.headers, rt) {
            if self.try_activate(c, stream, rt) {
                self.stats.delays_injected.inc();
                if let Some(dc) = downstream_cluster {
                    self.store.counter(&format!("{}{dc}.delays_injected", self.prefix)).inc();
                }
                stream.delay_injected = true;
                tokio::time::sleep(delay).await;
            }
        }
        if let Some((status, grpc)) = abort_of(c, req.headers, rt) {
            if self.try_activate(c, stream, rt) {
                self.stats.aborts_injected.inc();
                if let Some(dc) = downstream_cluster {
                    self.store.counter(&format!("{}{dc}.aborts_injected", self.prefix)).inc();
                }
                return Err(LocalReason::FaultAbort { status, grpc });
            }
        }
        Ok(())
    }

    /// Counts the request in `active_faults` unless `max_active_faults` is reached (then
    /// `faults_overflow`); a request counts once however many faults it gets.
    fn try_activate(&self, c: &FaultConfig, stream: &mut super::Stream, rt: Option<&Rt<'_>>) -> bool {
        if stream.active_fault.is_some() {
            return true;
        }
        let g = &self.stats.active_faults;
        let max = match rt {
            Some(rt) => Some(rt.rt.integer(&c.keys.max_active_faults, c.max_active_faults.map_or(u64::MAX, u64::from))),
            None => c.max_active_faults.map(u64::from),
        };
        if max.is_some_and(|max| u64::try_from(g.value()).unwrap_or(0) >= max) {
            self.stats.faults_overflow.inc();
            return false;
        }
        g.inc();
        stream.active_fault = Some(ActiveFault(g.clone()));
        true
    }
}

/// The configured percentage, lowered (never raised) by the request's percentage header,
/// as Envoy's header providers do.
fn percentage(configured: Fraction, header_driven: bool, h: &HeaderMap, name: &HeaderName) -> Fraction {
    if !header_driven {
        return configured;
    }
    match h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u32>().ok()) {
        Some(n) => Fraction { numerator: n.min(configured.numerator), denominator: configured.denominator },
        None => configured,
    }
}

fn delay_of(c: &FaultConfig, h: &HeaderMap, rt: Option<&Rt<'_>>) -> Option<Duration> {
    let d = c.delay.as_ref()?;
    let header = d.kind == DelayKind::Header;
    let p = percentage(d.percentage, header, h, &DELAY_PERCENTAGE);
    let enabled = match rt {
        Some(rt) => rt.enabled(&c.keys.delay_percent, "delay.fixed_delay_percent", p),
        None => hit(p),
    };
    if !enabled {
        return None;
    }
    let configured = match d.kind {
        DelayKind::Fixed(t) => t,
        DelayKind::Header => {
            let ms = h.get(&DELAY_REQUEST)?.to_str().ok()?.trim().parse::<u64>().ok()?;
            Duration::from_millis(ms)
        }
    };
    match rt {
        Some(rt) => {
            let ms = rt.integer(&c.keys.delay_duration, "delay.fixed_duration_ms", configured.as_millis() as u64);
            (ms > 0).then(|| Duration::from_millis(ms))
        }
        None => Some(configured),
    }
}

/// The abort's HTTP status and gRPC status; an HTTP status wins over a gRPC one, and a gRPC
/// abort answers 200 (Envoy's trailers-only reply for gRPC clients).
fn abort_of(c: &FaultConfig, h: &HeaderMap, rt: Option<&Rt<'_>>) -> Option<(StatusCode, Option<u32>)> {
    let a = c.abort.as_ref()?;
    let header = a.kind == AbortKind::Header;
    let p = percentage(a.percentage, header, h, &ABORT_PERCENTAGE);
    let enabled = match rt {
        Some(rt) => rt.enabled(&c.keys.abort_percent, "abort.abort_percent", p),
        None => hit(p),
    };
    if !enabled {
        return None;
    }
    let (status, grpc) = configured_abort(a.kind, h)?;
    let Some(rt) = rt else { return Some((status, grpc)) };
    // The runtime's status replaces the one the fault has, of the same kind.
    match grpc {
        None => {
            let code = rt.integer(&c.keys.abort_http_status, "abort.http_status", u64::from(status.as_u16()));
            let status = u16::try_from(code).ok().and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(status);
            Some((status, None))
        }
        Some(g) => {
            let g =
                u32::try_from(rt.integer(&c.keys.abort_grpc_status, "abort.grpc_status", u64::from(g))).unwrap_or(g);
            Some((status, Some(g)))
        }
    }
}

/// The abort's status as configured (or as the request's headers ask).
fn configured_abort(kind: AbortKind, h: &HeaderMap) -> Option<(StatusCode, Option<u32>)> {
    let num = |name: &HeaderName| h.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    match kind {
        AbortKind::Http(s) => Some((StatusCode::from_u16(s).ok()?, None)),
        AbortKind::Grpc(g) => Some((StatusCode::OK, Some(g))),
        AbortKind::Header => {
            if let Some(s) = num(&ABORT_REQUEST).filter(|s| (200..600).contains(s)) {
                return Some((StatusCode::from_u16(s as u16).ok()?, None));
            }
            let g = u32::try_from(num(&ABORT_GRPC_REQUEST)?).ok()?;
            Some((StatusCode::OK, Some(g)))
        }
    }
}

#[cfg(test)]
mod tests;
