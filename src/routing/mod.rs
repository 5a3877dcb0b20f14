//! Route tables compiled from a `RouteConfig` when a snapshot is built: virtual hosts indexed by
//! domain, routes indexed by path, clusters resolved to their `Arc`, header operations parsed.
//! The request path only looks things up.
//!
//! A table rebuilt after a reload ([`RouteTable::rebuild`]) takes over what the last one
//! compiled for the routes both configurations share (the same `Kept<Route>`, which the
//! config layer keeps for routes a file change did not touch), and the path index when no
//! matcher changed: one changed route of 10,000 compiles one route, and freeing the old
//! table frees one route.

pub mod header_ops;
pub mod index;
pub mod matcher;
pub mod vhost;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::StatusCode;

use crate::config::model::{
    self, ClusterSpecifier, HostRewrite, Kept, RedirectAction, RetryPolicy, RouteAction, RouteMatch,
};
use crate::filters::{Chain, Slots};
use crate::upstream::Cluster;
use header_ops::HeaderOpsRt;
use index::PathIndex;
use matcher::RequestView;
use vhost::DomainIndex;

pub struct RouteTable {
    pub name: String,
    pub vhosts: Vec<VirtualHostRt>,
    domains: DomainIndex,
    pub headers: HeaderOpsRt,
    /// Removed from the requests of external clients before routing.
    pub internal_only_headers: Box<[http::HeaderName]>,
    /// `ignore_port_in_host_matching`: virtual hosts are chosen by the host without its port.
    ignore_port: bool,
}

pub struct VirtualHostRt {
    pub name: String,
    pub routes: Vec<Arc<RouteRt>>,
    matching: Arc<Matching>,
    pub headers: HeaderOpsRt,
    pub include_request_attempt_count: bool,
    pub include_attempt_count_in_response: bool,
    /// What the routes were compiled from, for the next table to reuse them.
    sources: Vec<Kept<model::Route>>,
    retry_policy: Option<RetryPolicy>,
    /// The virtual host's and the route configuration's `typed_per_filter_config`, which
    /// the routes' filter slots were resolved with.
    per_filter: (Vec<model::PerFilterConfig>, Vec<model::PerFilterConfig>),
}

/// The routes' matchers and the index over them.
struct Matching {
    matchers: Vec<RouteMatch>,
    index: PathIndex,
}

impl VirtualHostRt {
    /// The routes' matchers, in route order.
    pub fn matchers(&self) -> &[RouteMatch] {
        &self.matching.matchers
    }
}

pub struct RouteRt {
    pub name: Option<String>,
    pub action: ActionRt,
    pub headers: HeaderOpsRt,
    /// The HTTP filters' per-route configuration, one slot per filter of the chain.
    pub filters: Slots,
}

pub enum ActionRt {
    Forward(Box<ForwardRt>),
    Redirect(RedirectAction),
    Direct { status: StatusCode, body: Option<Bytes> },
}

pub struct ClusterRef {
    pub name: String,
    /// `None` when no cluster has this name (only with `validate_clusters: false`).
    pub cluster: Option<Arc<Cluster>>,
}

pub enum Target {
    Cluster(ClusterRef),
    /// Clusters with cumulative weights.
    Weighted {
        entries: Vec<WeightedRt>,
        total: u64,
    },
    Header(HeaderName),
}

/// A cluster of `weighted_clusters`.
pub struct WeightedRt {
    pub cluster: ClusterRef,
    /// The sum of the weights up to and including this one.
    cumulative: u64,
    pub headers: HeaderOpsRt,
    /// Its `typed_per_filter_config` over the route's: one slot per filter of the chain.
    pub filters: Slots,
}

pub struct ForwardRt {
    pub target: Target,
    pub cluster_not_found_status: StatusCode,
    /// The matched prefix (or path) and what replaces it.
    pub prefix_rewrite: Option<(PrefixOf, String)>,
    /// Pattern and substitution in the `regex` crate's `${1}` syntax.
    pub regex_rewrite: Option<(regex::Regex, String)>,
    pub host_rewrite: HostRewrite,
    pub timeout: Option<Duration>,
    /// `x-envoy-expected-rq-timeout-ms` value, precomputed.
    pub timeout_header: Option<HeaderValue>,
    pub retry_policy: Option<RetryPolicy>,
    /// The route's `upgrade_configs`.
    pub upgrades: Box<[crate::config::model::UpgradeConfig]>,
}

/// What part of the path `prefix_rewrite` replaces.
pub enum PrefixOf {
    Prefix(usize),
    /// Exact `path` match: the whole path.
    WholePath,
    /// Regex match: Envoy replaces the whole path too.
    Regex,
}

/// Why no route answered.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoute {
    NoVirtualHost,
    NoRouteMatch,
}

impl RouteTable {
    /// Compiles a route configuration against the snapshot's clusters.
    pub fn build(config: &model::RouteConfig, clusters: &HashMap<String, Arc<Cluster>>) -> Result<Self, String> {
        Self::build_from(config, clusters, &Chain::default(), None)
    }

    /// [`RouteTable::build`] for a connection manager with this HTTP filter chain: each
    /// route's per-filter configuration is resolved to one slot per filter.
    pub fn build_for(
        config: &model::RouteConfig,
        clusters: &HashMap<String, Arc<Cluster>>,
        chain: &Chain,
    ) -> Result<Self, String> {
        Self::build_from(config, clusters, chain, None)
    }

    /// [`RouteTable::build`], taking over what `prev` (compiled against `prev_clusters`)
    /// compiled for the same routes, where the clusters they name are still the same `Arc`s.
    /// `prev` must have been built for the same filter chain.
    pub fn rebuild(
        config: &model::RouteConfig,
        clusters: &HashMap<String, Arc<Cluster>>,
        chain: &Chain,
        prev: &RouteTable,
        prev_clusters: &HashMap<String, Arc<Cluster>>,
    ) -> Result<Self, String> {
        // Names whose cluster is not the same Arc as when `prev` was compiled.
        let mut changed: HashSet<&str> = HashSet::new();
        for (name, c) in clusters {
            if !prev_clusters.get(name).is_some_and(|p| Arc::ptr_eq(p, c)) {
                changed.insert(name);
            }
        }
        for name in prev_clusters.keys() {
            if !clusters.contains_key(name) {
                changed.insert(name);
            }
        }
        Self::build_from(config, clusters, chain, Some((prev, &changed)))
    }

    fn build_from(
        config: &model::RouteConfig,
        clusters: &HashMap<String, Arc<Cluster>>,
        chain: &Chain,
        prev: Option<(&RouteTable, &HashSet<&str>)>,
    ) -> Result<Self, String> {
        let mut vhosts = Vec::with_capacity(config.virtual_hosts.len());
        for (i, vh) in config.virtual_hosts.iter().enumerate() {
            let old = prev.and_then(|(t, changed)| t.vhosts.get(i).filter(|o| o.name == vh.name).map(|o| (o, changed)));
            vhosts.push(
                build_vhost(vh, &config.per_filter, clusters, chain, old)
                    .map_err(|e| format!("virtual host {:?}: {e}", vh.name))?,
            );
        }
        let domains = DomainIndex::build(config.virtual_hosts.iter().map(|v| v.domains.as_slice()));
        let internal_only_headers = config
            .internal_only_headers
            .iter()
            .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        Ok(RouteTable {
            name: config.name.clone(),
            vhosts,
            domains,
            headers: HeaderOpsRt::build(&config.headers)?,
            internal_only_headers,
            ignore_port: config.ignore_port_in_host_matching,
        })
    }

    /// Whether every cluster this table resolved is still the same `Arc` in `clusters` (so the
    /// table can be reused by the next snapshot).
    pub fn clusters_unchanged(&self, clusters: &HashMap<String, Arc<Cluster>>) -> bool {
        let same = |r: &ClusterRef| match (&r.cluster, clusters.get(&r.name)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        self.vhosts.iter().flat_map(|v| &v.routes).all(|r| match &r.action {
            ActionRt::Forward(f) => match &f.target {
                Target::Cluster(c) => same(c),
                Target::Weighted { entries, .. } => entries.iter().all(|w| same(&w.cluster)),
                Target::Header(_) => true,
            },
            _ => true,
        })
    }

    pub fn find(&self, req: &RequestView<'_>) -> Result<(&VirtualHostRt, &RouteRt), NoRoute> {
        let host = if self.ignore_port { without_port(req.authority) } else { req.authority };
        let vi = self.domains.find(host).ok_or(NoRoute::NoVirtualHost)?;
        let vh = &self.vhosts[vi];
        let ri = vh.matching.index.find(&vh.matching.matchers, req).ok_or(NoRoute::NoRouteMatch)?;
        Ok((vh, &vh.routes[ri]))
    }
}

/// The host without its `:port`, as Envoy cuts it: after the last colon, unless that colon
/// is inside an IPv6 literal's brackets.
fn without_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if host.rfind(']').is_none_or(|end| end < colon) => &host[..colon],
        _ => host,
    }
}

/// `vh` compiled; `old` is the same virtual host in the last table, with the names of the
/// clusters that changed since.
fn build_vhost(
    vh: &model::VirtualHost,
    rc_per_filter: &[model::PerFilterConfig],
    clusters: &HashMap<String, Arc<Cluster>>,
    chain: &Chain,
    old: Option<(&VirtualHostRt, &HashSet<&str>)>,
) -> Result<VirtualHostRt, String> {
    // A route compiles from itself, the virtual host's retry policy, the per-filter configs
    // above it and its clusters.
    let old = old.filter(|(o, _)| {
        o.retry_policy == vh.retry_policy && o.per_filter.0 == vh.per_filter && o.per_filter.1 == rc_per_filter
    });
    let (n, m) = (vh.routes.len(), old.map_or(0, |(o, _)| o.sources.len()));
    let same = |i: usize, j: usize| old.is_some_and(|(o, _)| Kept::ptr_eq(&vh.routes[i], &o.sources[j]));
    // The routes both have, by position from the start and from the end.
    let (head, tail) = crate::common_ends::common_ends(n, m, same);
    let mut routes = Vec::with_capacity(n);
    for (i, r) in vh.routes.iter().enumerate() {
        let j = if i < head {
            Some(i)
        } else if i >= n - tail {
            Some(m - (n - i))
        } else {
            None
        };
        let kept = match (j, old) {
            (Some(j), Some((o, changed))) if !o.routes[j].names_any(changed) => Some(Arc::clone(&o.routes[j])),
            _ => None,
        };
        routes.push(match kept {
            Some(r) => r,
            None => Arc::new(build_route(r, vh, rc_per_filter, clusters, chain)?),
        });
    }
    let matching = match old {
        Some((o, _))
            if m == n
                && vh.routes.iter().zip(&o.sources).all(|(a, b)| Kept::ptr_eq(a, b) || a.matcher == b.matcher) =>
        {
            Arc::clone(&o.matching)
        }
        _ => {
            let matchers: Vec<RouteMatch> = vh.routes.iter().map(|r| r.matcher.clone()).collect();
            let index = PathIndex::build(matchers.iter());
            Arc::new(Matching { matchers, index })
        }
    };
    Ok(VirtualHostRt {
        name: vh.name.clone(),
        routes,
        matching,
        headers: HeaderOpsRt::build(&vh.headers)?,
        include_request_attempt_count: vh.include_request_attempt_count,
        include_attempt_count_in_response: vh.include_attempt_count_in_response,
        sources: vh.routes.clone(),
        retry_policy: vh.retry_policy.clone(),
        per_filter: (vh.per_filter.clone(), rc_per_filter.to_vec()),
    })
}

impl RouteRt {
    /// Whether the route resolved any of `names` to a cluster (or to none).
    fn names_any(&self, names: &HashSet<&str>) -> bool {
        if names.is_empty() {
            return false;
        }
        match &self.action {
            ActionRt::Forward(f) => match &f.target {
                Target::Cluster(c) => names.contains(c.name.as_str()),
                Target::Weighted { entries, .. } => entries.iter().any(|w| names.contains(w.cluster.name.as_str())),
                Target::Header(_) => false,
            },
            _ => false,
        }
    }
}

fn cluster_ref(name: &str, clusters: &HashMap<String, Arc<Cluster>>) -> ClusterRef {
    ClusterRef { name: name.to_string(), cluster: clusters.get(name).cloned() }
}

fn build_route(
    r: &model::Route,
    vh: &model::VirtualHost,
    rc_per_filter: &[model::PerFilterConfig],
    clusters: &HashMap<String, Arc<Cluster>>,
    chain: &Chain,
) -> Result<RouteRt, String> {
    let action = match &r.action {
        RouteAction::Forward(f) => {
            let target = match &f.cluster {
                ClusterSpecifier::Cluster(name) => Target::Cluster(cluster_ref(name, clusters)),
                ClusterSpecifier::Weighted(list) => {
                    let mut total = 0u64;
                    let mut entries = Vec::with_capacity(list.len());
                    for w in list {
                        total += u64::from(w.weight);
                        entries.push(WeightedRt {
                            cluster: cluster_ref(&w.name, clusters),
                            cumulative: total,
                            headers: HeaderOpsRt::build(&w.headers)?,
                            filters: chain.slots(&[&w.per_filter, &r.per_filter, &vh.per_filter, rc_per_filter]),
                        });
                    }
                    Target::Weighted { entries, total }
                }
                ClusterSpecifier::Header(h) => Target::Header(
                    HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("invalid cluster_header {h:?}"))?,
                ),
            };
            let prefix_rewrite = f.prefix_rewrite.as_ref().map(|to| {
                let of = match &r.matcher.path {
                    model::PathMatch::Prefix(p) | model::PathMatch::PathSeparatedPrefix(p) => PrefixOf::Prefix(p.len()),
                    model::PathMatch::Path(_) => PrefixOf::WholePath,
                    model::PathMatch::Regex(_) => PrefixOf::Regex,
                };
                (of, to.clone())
            });
            let timeout_header = f
                .retry_policy
                .as_ref()
                .or(vh.retry_policy.as_ref())
                .and_then(|p| p.per_try_timeout)
                .or(f.timeout)
                .filter(|t| !t.is_zero())
                .and_then(|t| HeaderValue::from_str(&t.as_millis().to_string()).ok());
            ActionRt::Forward(Box::new(ForwardRt {
                target,
                cluster_not_found_status: StatusCode::from_u16(f.cluster_not_found_status)
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                prefix_rewrite,
                regex_rewrite: f.regex_rewrite.as_ref().map(|r| (r.pattern.clone(), re2_substitution(&r.substitution))),
                host_rewrite: f.host_rewrite.clone(),
                timeout: f.timeout,
                timeout_header,
                retry_policy: f.retry_policy.clone().or_else(|| vh.retry_policy.clone()),
                upgrades: f.upgrades.clone().into(),
            }))
        }
        RouteAction::Redirect(rd) => ActionRt::Redirect(rd.clone()),
        RouteAction::DirectResponse(d) => ActionRt::Direct {
            status: StatusCode::from_u16(d.status).map_err(|_| format!("invalid status {}", d.status))?,
            body: d.body.clone(),
        },
    };
    Ok(RouteRt {
        name: r.name.clone(),
        action,
        headers: HeaderOpsRt::build(&r.headers)?,
        filters: chain.slots(&[&r.per_filter, &vh.per_filter, rc_per_filter]),
    })
}

impl Target {
    /// The cluster for this request: weighted choice, or the one a header names.
    pub fn pick<'a>(
        &'a self,
        headers: &http::HeaderMap,
        clusters: &'a HashMap<String, Arc<Cluster>>,
    ) -> (Option<&'a Arc<Cluster>>, Option<&'a WeightedRt>) {
        match self {
            Target::Cluster(c) => (c.cluster.as_ref(), None),
            Target::Weighted { entries, total } => {
                if *total == 0 {
                    return (None, None);
                }
                let r = rand::Rng::gen_range(&mut rand::thread_rng(), 0..*total);
                let i = entries.partition_point(|w| w.cumulative <= r);
                match entries.get(i) {
                    Some(w) => (w.cluster.cluster.as_ref(), Some(w)),
                    None => (None, None),
                }
            }
            Target::Header(h) => {
                let name = headers.get(h).and_then(|v| v.to_str().ok());
                (name.and_then(|n| clusters.get(n)), None)
            }
        }
    }
}

/// Envoy's RE2 substitution (`\1`, `\\`) in the `regex` crate's syntax (`${1}`, `$$`).
pub fn re2_substitution(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str("${");
                    out.push(d);
                    out.push('}');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
