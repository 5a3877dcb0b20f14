//! `envoy.filters.http.local_ratelimit`: token buckets per filter, per route
//! (`typed_per_filter_config`) or per downstream connection, with `descriptors` matched against
//! the route's `rate_limits`; `filter_enabled` / `filter_enforced` (their runtime keys
//! over their default values), the 429 `local_rate_limited` (`RL`), `response_headers_to_add` on
//! it, `request_headers_to_add_when_not_enforced`, the `x-ratelimit-*` headers, and the stats
//! `<stat_prefix>.http_local_rate_limit.*`.

mod bucket;
mod descriptors;

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

pub use bucket::{Bucket, Snapshot};
pub use descriptors::{populate, Descriptor, DescriptorInput, RouteRateLimits};

use crate::config::model::{HeaderOps, LocalRateLimitConfig};
use crate::proxy::local_reply::LocalReason;
use crate::routing::header_ops::{apply_adds, HeaderAdd, HeaderOpsRt, Target};
use crate::routing::matcher::RequestView;
use crate::stats::{Counter, Store};

static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// `<stat_prefix>.http_local_rate_limit.*`
struct Stats {
    enabled: Counter,
    enforced: Counter,
    rate_limited: Counter,
    ok: Counter,
}

/// The buckets of one configuration: the default one and one per descriptor (the process's,
/// or one connection's with `local_rate_limit_per_downstream_connection`).
pub struct Buckets {
    default: Option<Bucket>,
    descriptors: Vec<Bucket>,
}

/// Which bucket decided a request (`None`: the default one).
type Decider = Option<usize>;

impl Buckets {
    fn new(c: &LocalRateLimitConfig) -> Self {
        Buckets {
            default: c.token_bucket.as_ref().map(Bucket::new),
            descriptors: c.descriptors.iter().map(|d| Bucket::new(&d.token_bucket)).collect(),
        }
    }

    fn bucket(&self, d: Decider) -> Option<&Bucket> {
        match d {
            None => self.default.as_ref(),
            Some(i) => self.descriptors.get(i),
        }
    }
}

/// A compiled `LocalRateLimit` (the filter's or a route's) with its buckets.
pub struct Settings {
    config: LocalRateLimitConfig,
    status: StatusCode,
    stats: Stats,
    buckets: Arc<Buckets>,
    response_add: Vec<HeaderAdd>,
    request_add: Vec<HeaderAdd>,
}

impl Settings {
    pub fn new(c: &LocalRateLimitConfig, store: &Store) -> Self {
        let prefix = format!("{}.http_local_rate_limit.", c.stat_prefix);
        let counter = |s: &str| store.counter(&format!("{prefix}{s}"));
        let stats = Stats {
            enabled: counter("enabled"),
            enforced: counter("enforced"),
            rate_limited: counter("rate_limited"),
            ok: counter("ok"),
        };
        // Envoy creates it with the others; legate has no shadow mode to count.
        let _ = counter("shadow_mode");
        let adds = |list| {
            HeaderOpsRt::build(&HeaderOps { response_headers_to_add: list, ..Default::default() })
                .map(|o| o.response_add)
                .unwrap_or_default()
        };
        Settings {
            status: StatusCode::from_u16(c.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            stats,
            buckets: Arc::new(Buckets::new(c)),
            response_add: adds(c.response_headers_to_add.clone()),
            request_add: adds(c.request_headers_to_add_when_not_enforced.clone()),
            config: c.clone(),
        }
    }

    /// The configuration it was built from (a route's equal configuration reuses it).
    pub fn config(&self) -> &LocalRateLimitConfig {
        &self.config
    }
}

/// The connection's own buckets, per configuration
/// (`local_rate_limit_per_downstream_connection`); read without a lock.
#[derive(Default)]
pub struct ConnBuckets {
    list: ArcSwap<Vec<(Weak<Settings>, Arc<Buckets>)>>,
}

impl ConnBuckets {
    fn get(&self, settings: &Arc<Settings>) -> Arc<Buckets> {
        let found = |list: &[(Weak<Settings>, Arc<Buckets>)]| {
            list.iter().find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(settings))).map(|(_, b)| Arc::clone(b))
        };
        if let Some(b) = found(&self.list.load()) {
            return b;
        }
        let fresh = Arc::new(Buckets::new(&settings.config));
        self.list.rcu(|list| {
            let mut next: Vec<_> = list.iter().filter(|(w, _)| w.strong_count() > 0).cloned().collect();
            if found(&next).is_none() {
                next.push((Arc::downgrade(settings), Arc::clone(&fresh)));
            }
            next
        });
        found(&self.list.load()).unwrap_or(fresh)
    }
}

/// What a request's response carries from the filter.
pub struct Encode {
    /// The bucket that decided, for `x-ratelimit-*` (read when the response goes out).
    headers: Option<(Arc<Buckets>, Decider)>,
    /// The request was limited: the local reply gets `response_headers_to_add`.
    limited: Option<Arc<Settings>>,
}

impl Encode {
    pub fn apply(&self, h: &mut HeaderMap) {
        if let Some(s) = &self.limited {
            apply_adds(h, &s.response_add, None, Target::Response);
        }
        if let Some(snap) = self.headers.as_ref().and_then(|(b, d)| b.bucket(*d)).map(Bucket::snapshot) {
            h.insert(X_RATELIMIT_LIMIT.clone(), HeaderValue::from(snap.limit));
            h.insert(X_RATELIMIT_REMAINING.clone(), HeaderValue::from(snap.remaining));
            h.insert(X_RATELIMIT_RESET.clone(), HeaderValue::from(snap.reset));
        }
    }
}

/// What the filter reads of a request.
pub struct RateLimitRequest<'a> {
    pub view: RequestView<'a>,
    pub remote: IpAddr,
    pub cluster: Option<&'a str>,
    pub route_limits: Option<&'a RouteRateLimits>,
    pub conn: &'a ConnBuckets,
    /// The process's runtime (`filter_enabled` / `filter_enforced` keys).
    pub runtime: &'a crate::runtime::Runtime,
}

pub struct LocalRateLimit {
    settings: Arc<Settings>,
}

impl LocalRateLimit {
    pub fn new(c: &LocalRateLimitConfig, store: &Store) -> Self {
        LocalRateLimit { settings: Arc::new(Settings::new(c, store)) }
    }

    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    /// Takes a token for the request, or answers it with the configured status.
    pub fn decode(
        settings: &Arc<Settings>,
        req: RateLimitRequest<'_>,
        headers: &mut HeaderMap,
        out: &mut Option<Encode>,
    ) -> Result<(), LocalReason> {
        let c = &settings.config;
        if !c.filter_enabled.as_ref().is_some_and(|f| f.enabled(req.runtime)) {
            return Ok(());
        }
        settings.stats.enabled.inc();
        let descriptors = match (c.descriptors.is_empty(), req.route_limits) {
            (false, Some(limits)) => {
                let input = DescriptorInput { view: req.view, remote: req.remote, cluster: req.cluster };
                populate(limits, c.stage, c.vh_rate_limits, &input)
            }
            _ => Vec::new(),
        };
        let buckets = if c.per_connection { req.conn.get(settings) } else { Arc::clone(&settings.buckets) };
        let (allowed, decider) = allowed(c, &buckets, &descriptors);
        let x_headers =
            (c.x_ratelimit_headers && buckets.bucket(decider).is_some()).then(|| (Arc::clone(&buckets), decider));
        if allowed {
            settings.stats.ok.inc();
            *out = x_headers.map(|h| Encode { headers: Some(h), limited: None });
            return Ok(());
        }
        settings.stats.rate_limited.inc();
        if !c.filter_enforced.as_ref().is_some_and(|f| f.enabled(req.runtime)) {
            apply_adds(headers, &settings.request_add, None, Target::Request);
            *out = x_headers.map(|h| Encode { headers: Some(h), limited: None });
            return Ok(());
        }
        settings.stats.enforced.inc();
        *out = Some(Encode { headers: x_headers, limited: Some(Arc::clone(settings)) });
        Err(LocalReason::RateLimited { status: settings.status })
    }
}

/// Envoy's `requestAllowed`: the matching descriptors' buckets, slowest-filling first, then
/// the default bucket unless a descriptor matched and `always_consume_default_token_bucket`
/// is false. No bucket at all lets the request through.
fn allowed(c: &LocalRateLimitConfig, b: &Buckets, request: &[Descriptor]) -> (bool, Decider) {
    let mut matched: Vec<usize> = Vec::new();
    if !request.is_empty() {
        for r in request {
            if let Some(i) = c.descriptors.iter().position(|d| &d.entries == r) {
                if !matched.contains(&i) {
                    matched.push(i);
                }
            }
        }
        matched.sort_by(|x, y| b.descriptors[*x].fill_rate().total_cmp(&b.descriptors[*y].fill_rate()));
    }
    for &i in &matched {
        if !b.descriptors[i].consume() {
            return (false, Some(i));
        }
    }
    if matched.is_empty() || c.always_consume_default {
        let Some(default) = &b.default else { return (true, matched.first().copied()) };
        if !default.consume() {
            return (false, None);
        }
    }
    (true, matched.first().copied())
}
