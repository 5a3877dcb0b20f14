//! Route tables compiled from a `RouteConfig` when a snapshot is built: virtual hosts indexed by
//! domain, routes indexed by path, clusters resolved to their `Arc`, header operations parsed.
//! The request path only looks things up.

pub mod header_ops;
pub mod index;
pub mod matcher;
pub mod vhost;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::StatusCode;

use crate::config::model::{self, ClusterSpecifier, HostRewrite, RedirectAction, RetryPolicy, RouteAction, RouteMatch};
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
}

pub struct VirtualHostRt {
    pub name: String,
    pub matchers: Vec<RouteMatch>,
    pub routes: Vec<RouteRt>,
    index: PathIndex,
    pub headers: HeaderOpsRt,
    pub include_request_attempt_count: bool,
    pub include_attempt_count_in_response: bool,
}

pub struct RouteRt {
    pub name: Option<String>,
    pub action: ActionRt,
    pub headers: HeaderOpsRt,
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
        entries: Vec<(ClusterRef, u64, HeaderOpsRt)>,
        total: u64,
    },
    Header(HeaderName),
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
        let mut vhosts = Vec::with_capacity(config.virtual_hosts.len());
        for vh in &config.virtual_hosts {
            vhosts.push(build_vhost(vh, clusters).map_err(|e| format!("virtual host {:?}: {e}", vh.name))?);
        }
        let domains = DomainIndex::build(config.virtual_hosts.iter().map(|v| v.domains.as_slice()));
        Ok(RouteTable { name: config.name.clone(), vhosts, domains, headers: HeaderOpsRt::build(&config.headers)? })
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
                Target::Weighted { entries, .. } => entries.iter().all(|(c, _, _)| same(c)),
                Target::Header(_) => true,
            },
            _ => true,
        })
    }

    pub fn find(&self, req: &RequestView<'_>) -> Result<(&VirtualHostRt, &RouteRt), NoRoute> {
        let vi = self.domains.find(req.authority).ok_or(NoRoute::NoVirtualHost)?;
        let vh = &self.vhosts[vi];
        let ri = vh.index.find(&vh.matchers, req).ok_or(NoRoute::NoRouteMatch)?;
        Ok((vh, &vh.routes[ri]))
    }
}

fn build_vhost(vh: &model::VirtualHost, clusters: &HashMap<String, Arc<Cluster>>) -> Result<VirtualHostRt, String> {
    let mut routes = Vec::with_capacity(vh.routes.len());
    for r in &vh.routes {
        routes.push(build_route(r, vh, clusters)?);
    }
    let matchers: Vec<RouteMatch> = vh.routes.iter().map(|r| r.matcher.clone()).collect();
    let index = PathIndex::build(matchers.iter());
    Ok(VirtualHostRt {
        name: vh.name.clone(),
        matchers,
        routes,
        index,
        headers: HeaderOpsRt::build(&vh.headers)?,
        include_request_attempt_count: vh.include_request_attempt_count,
        include_attempt_count_in_response: vh.include_attempt_count_in_response,
    })
}

fn cluster_ref(name: &str, clusters: &HashMap<String, Arc<Cluster>>) -> ClusterRef {
    ClusterRef { name: name.to_string(), cluster: clusters.get(name).cloned() }
}

fn build_route(
    r: &model::Route,
    vh: &model::VirtualHost,
    clusters: &HashMap<String, Arc<Cluster>>,
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
                        entries.push((cluster_ref(&w.name, clusters), total, HeaderOpsRt::build(&w.headers)?));
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
            }))
        }
        RouteAction::Redirect(rd) => ActionRt::Redirect(rd.clone()),
        RouteAction::DirectResponse(d) => ActionRt::Direct {
            status: StatusCode::from_u16(d.status).map_err(|_| format!("invalid status {}", d.status))?,
            body: d.body.clone(),
        },
    };
    Ok(RouteRt { name: r.name.clone(), action, headers: HeaderOpsRt::build(&r.headers)? })
}

impl Target {
    /// The cluster for this request: weighted choice, or the one a header names.
    pub fn pick<'a>(
        &'a self,
        headers: &http::HeaderMap,
        clusters: &'a HashMap<String, Arc<Cluster>>,
    ) -> (Option<&'a Arc<Cluster>>, Option<&'a HeaderOpsRt>) {
        match self {
            Target::Cluster(c) => (c.cluster.as_ref(), None),
            Target::Weighted { entries, total } => {
                if *total == 0 {
                    return (None, None);
                }
                let r = rand::Rng::gen_range(&mut rand::thread_rng(), 0..*total);
                let i = entries.partition_point(|(_, cum, _)| *cum <= r);
                match entries.get(i) {
                    Some((c, _, h)) => (c.cluster.as_ref(), Some(h)),
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
mod tests {
    use super::re2_substitution;

    #[test]
    fn converts_re2_substitutions() {
        assert_eq!(re2_substitution("\\2/instance/\\1"), "${2}/instance/${1}");
        assert_eq!(re2_substitution("0"), "0");
        assert_eq!(re2_substitution("a$b"), "a$$b");
    }
}
