//! Route tables compiled from a `RouteConfig` when a snapshot is built: virtual hosts indexed by
//! domain, routes indexed by path, clusters resolved to their `Arc`, header operations parsed.
//! The request path only looks things up.
//!
//! A table rebuilt after a reload ([`RouteTable::rebuild`]) takes over what the last one
//! compiled for the routes both configurations share (the same `Kept<Route>`, which the
//! config layer keeps for routes a file change did not touch), and the path index when no
//! matcher changed: one changed route of 10,000 compiles one route, and freeing the old
//! table frees one route.

mod compile;
pub mod hash_policy;
pub mod header_ops;
pub mod index;
pub mod matcher;
pub mod vhost;

pub use compile::re2_substitution;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::StatusCode;

use crate::config::model::{self, HostRewrite, Kept, RedirectAction, RequireTls, RetryPolicy, RouteMatch};
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
    /// Some virtual host has `require_tls`: routing needs the request's forwarded protocol.
    pub require_tls: bool,
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
    hedge_policy: Option<model::HedgePolicy>,
    /// The virtual host's and the route configuration's `typed_per_filter_config`, which
    /// the routes' filter slots were resolved with.
    per_filter: (Vec<model::PerFilterConfig>, Vec<model::PerFilterConfig>),
    /// `require_tls` (not `NONE`) and the route it answers with: a 301 to `https://` on the
    /// same host and path, as Envoy's SSL redirect route.
    ssl_redirect: Option<(RequireTls, Box<RouteRt>)>,
    /// The virtual host's and the route configuration's `request_mirror_policies`, which
    /// routes without their own were compiled with.
    mirrors: (Vec<model::MirrorPolicy>, Vec<model::MirrorPolicy>),
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

    /// Whether `route` is the `require_tls` redirect (which Envoy answers with no header
    /// operations of the virtual host or the route configuration).
    pub fn is_tls_redirect(&self, route: &RouteRt) -> bool {
        self.ssl_redirect.as_ref().is_some_and(|(_, r)| std::ptr::eq(&**r, route))
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
    /// Its `regex_rewrite` substitution is in the `regex` crate's syntax (`${1}`).
    Redirect(RedirectAction),
    Direct {
        status: StatusCode,
        body: Option<Bytes>,
        /// `body_format`, compiled, with its `content-type`.
        format: Option<Box<(crate::access_log::LineFormat, HeaderValue)>>,
    },
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
        /// Where the value that picks one comes from.
        pick: model::WeightedPick,
        /// `header_name`, parsed.
        pick_header: Option<HeaderName>,
    },
    Header(HeaderName),
}

/// A cluster of `weighted_clusters`.
pub struct WeightedRt {
    /// Named by `cluster_header` when `header` is set (the name is then empty).
    pub cluster: ClusterRef,
    /// `cluster_header`
    header: Option<HeaderName>,
    /// `host_rewrite_literal`
    pub host_rewrite: Option<HeaderValue>,
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
    /// `host_rewrite_path_regex` in the `regex` crate's syntax.
    pub host_regex: Option<(regex::Regex, String)>,
    /// `hash_policy`, when the route has one (evaluated for RING_HASH / MAGLEV clusters).
    pub hash_policy: Option<Box<hash_policy::HashPolicyRt>>,
    pub timeout: Option<Duration>,
    /// `x-envoy-expected-rq-timeout-ms` value, precomputed.
    pub timeout_header: Option<HeaderValue>,
    pub retry_policy: Option<RetryPolicy>,
    /// The route's `upgrade_configs`.
    pub upgrades: Box<[crate::config::model::UpgradeConfig]>,
    /// The route's and its virtual host's `rate_limits`, when either has some.
    pub rate_limits: Option<Box<crate::filters::local_ratelimit::RouteRateLimits>>,
    /// `request_mirror_policies`: empty for most routes.
    pub mirrors: Box<[MirrorRt]>,
    /// `append_x_forwarded_host`
    pub append_xfh: bool,
    /// `max_stream_duration` (then `timeout` is `None`, as Envoy ignores the route's).
    pub stream_duration: Option<model::StreamDuration>,
    /// `max_grpc_timeout` / `grpc_timeout_offset`, without `max_stream_duration`.
    pub legacy_grpc: Option<model::LegacyGrpcTimeout>,
    /// `idle_timeout`: `Some(None)` disables the stream idle timeout for the route.
    pub idle_timeout: Option<Option<Duration>>,
    /// `internal_redirect_policy`: `None` for most routes, which then pay one branch.
    pub internal_redirect: Option<Box<model::InternalRedirectPolicy>>,
}

/// One `request_mirror_policies` entry.
pub struct MirrorRt {
    pub target: MirrorTarget,
    pub fraction: crate::runtime::FractionKey,
    /// `disable_shadow_host_suffix_append`
    pub keep_host: bool,
    /// `host_rewrite_literal`: the copy's host as is.
    pub host_rewrite: Option<HeaderValue>,
}

pub enum MirrorTarget {
    Cluster(ClusterRef),
    /// `cluster_header`
    Header(HeaderName),
}

impl ForwardRt {
    /// The clusters the mirror policies name (not those named by a header).
    pub fn mirror_clusters(&self) -> impl Iterator<Item = &ClusterRef> {
        self.mirrors.iter().filter_map(|m| match &m.target {
            MirrorTarget::Cluster(c) => Some(c),
            MirrorTarget::Header(_) => None,
        })
    }
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
                compile::build_vhost(vh, &config.per_filter, &config.mirrors, clusters, chain, old)
                    .map_err(|e| format!("virtual host {:?}: {e}", vh.name))?,
            );
        }
        let domains = DomainIndex::build(config.virtual_hosts.iter().map(|v| v.domains.as_slice()));
        let internal_only_headers = config
            .internal_only_headers
            .iter()
            .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        let require_tls = vhosts.iter().any(|v| v.ssl_redirect.is_some());
        Ok(RouteTable {
            require_tls,
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
            ActionRt::Forward(f) => {
                let target = match &f.target {
                    Target::Cluster(c) => same(c),
                    Target::Weighted { entries, .. } => {
                        entries.iter().filter(|w| w.header.is_none()).all(|w| same(&w.cluster))
                    }
                    Target::Header(_) => true,
                };
                target && f.mirror_clusters().all(same)
            }
            _ => true,
        })
    }

    pub fn find(&self, req: &RequestView<'_>) -> Result<(&VirtualHostRt, &RouteRt), NoRoute> {
        let host = if self.ignore_port { without_port(req.authority) } else { req.authority };
        let vi = self.domains.find(host).ok_or(NoRoute::NoVirtualHost)?;
        let vh = &self.vhosts[vi];
        if let Some((require, redirect)) = &vh.ssl_redirect {
            // Envoy checks `x-forwarded-proto` as the connection manager set it, before any route.
            let d = &req.downstream;
            if !d.https && (*require == RequireTls::All || !d.internal) {
                return Ok((vh, redirect));
            }
        }
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

impl Target {
    /// The cluster for this request: weighted choice, or the one a header names. `hash` is
    /// the route's `hash_policy` hash, asked for by `use_hash_policy` only. A weighted entry
    /// named by `cluster_header` is served as the route itself (no entry of its own), as
    /// Envoy does.
    pub fn pick<'a>(
        &'a self,
        headers: &http::HeaderMap,
        clusters: &'a HashMap<String, Arc<Cluster>>,
        hash: impl FnOnce() -> Option<u64>,
    ) -> (Option<&'a Arc<Cluster>>, Option<&'a WeightedRt>) {
        match self {
            Target::Cluster(c) => (c.cluster.as_ref(), None),
            Target::Weighted { entries, total, pick, pick_header } => {
                if *total == 0 {
                    return (None, None);
                }
                let drawn = match (pick, pick_header) {
                    (model::WeightedPick::Header(_), Some(h)) => single_u64(headers, h),
                    (model::WeightedPick::Hash, _) => hash(),
                    _ => None,
                };
                let r = drawn.unwrap_or_else(rand::random::<u64>) % *total;
                let i = entries.partition_point(|w| w.cumulative <= r);
                match entries.get(i) {
                    Some(w) => match &w.header {
                        Some(h) => (header_cluster(headers, h, clusters), None),
                        None => (w.cluster.cluster.as_ref(), Some(w)),
                    },
                    None => (None, None),
                }
            }
            Target::Header(h) => (header_cluster(headers, h, clusters), None),
        }
    }
}

fn header_cluster<'a>(
    headers: &http::HeaderMap,
    h: &HeaderName,
    clusters: &'a HashMap<String, Arc<Cluster>>,
) -> Option<&'a Arc<Cluster>> {
    let name = headers.get(h).and_then(|v| v.to_str().ok())?;
    clusters.get(name)
}

/// `header_name`'s value: one header (Envoy ignores a repeated one), read as absl's
/// `SimpleAtoi` reads an unsigned 64-bit integer (spaces and `+` allowed).
fn single_u64(headers: &http::HeaderMap, h: &HeaderName) -> Option<u64> {
    let mut values = headers.get_all(h).iter();
    let v = values.next()?;
    if values.next().is_some() {
        return None;
    }
    v.to_str().ok()?.trim_ascii().parse().ok()
}

#[cfg(test)]
mod tests;
