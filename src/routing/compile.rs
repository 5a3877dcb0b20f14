//! Compiling one virtual host and its routes into their runtime form: clusters resolved to
//! their `Arc`, per-filter configuration resolved to slots, rewrites and header operations
//! parsed, and (on a rebuild) the routes the last table compiled taken over when nothing they
//! depend on changed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;

use super::header_ops::HeaderOpsRt;
use super::index::PathIndex;
use super::{
    ActionRt, ClusterRef, ForwardRt, Matching, MirrorRt, MirrorTarget, PrefixOf, RouteRt, Target, VirtualHostRt,
    WeightedRt,
};
use crate::config::model::{self, ClusterSpecifier, Kept, RouteAction, RouteMatch};
use crate::filters::Chain;
use crate::upstream::Cluster;

/// `vh` compiled; `old` is the same virtual host in the last table, with the names of the
/// clusters that changed since.
pub(super) fn build_vhost(
    vh: &model::VirtualHost,
    rc_per_filter: &[model::PerFilterConfig],
    rc_mirrors: &[model::MirrorPolicy],
    clusters: &HashMap<String, Arc<Cluster>>,
    chain: &Chain,
    old: Option<(&VirtualHostRt, &HashSet<&str>)>,
) -> Result<VirtualHostRt, String> {
    // A route compiles from itself, the virtual host's retry and hedge policies, the per-filter configs
    // and mirror policies above it and its clusters.
    let old = old.filter(|(o, _)| {
        o.retry_policy == vh.retry_policy
            && o.hedge_policy == vh.hedge_policy
            && o.per_filter.0 == vh.per_filter
            && o.per_filter.1 == rc_per_filter
            && o.mirrors.0 == vh.mirrors
            && o.mirrors.1 == rc_mirrors
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
            None => Arc::new(build_route(r, vh, (rc_per_filter, rc_mirrors), clusters, chain)?),
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
        hedge_policy: vh.hedge_policy,
        per_filter: (vh.per_filter.clone(), rc_per_filter.to_vec()),
        mirrors: (vh.mirrors.clone(), rc_mirrors.to_vec()),
        ssl_redirect: (vh.require_tls != model::RequireTls::None).then(|| (vh.require_tls, Box::new(ssl_redirect()))),
    })
}

/// The route `require_tls` answers with: 301 to `https://` with the request's host and path
/// (query included), nothing else changed, no header operations of its own.
fn ssl_redirect() -> RouteRt {
    RouteRt {
        name: None,
        action: ActionRt::Redirect(model::RedirectAction {
            scheme: Some("https".to_string()),
            host: None,
            port: None,
            path: None,
            prefix_rewrite: None,
            regex_rewrite: None,
            strip_query: false,
            status: 301,
        }),
        headers: HeaderOpsRt::default(),
        filters: None,
    }
}

impl RouteRt {
    /// Whether the route resolved any of `names` to a cluster (or to none).
    fn names_any(&self, names: &HashSet<&str>) -> bool {
        if names.is_empty() {
            return false;
        }
        match &self.action {
            ActionRt::Forward(f) => {
                let target = match &f.target {
                    Target::Cluster(c) => names.contains(c.name.as_str()),
                    Target::Weighted { entries, .. } => {
                        entries.iter().any(|w| w.header.is_none() && names.contains(w.cluster.name.as_str()))
                    }
                    Target::Header(_) => false,
                };
                target || f.mirror_clusters().any(|c| names.contains(c.name.as_str()))
            }
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
    (rc_per_filter, rc_mirrors): (&[model::PerFilterConfig], &[model::MirrorPolicy]),
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
                        let header = match &w.cluster_header {
                            Some(h) => Some(
                                HeaderName::from_bytes(h.as_bytes())
                                    .map_err(|_| format!("invalid weighted cluster_header {h:?}"))?,
                            ),
                            None => None,
                        };
                        let host_rewrite = match &w.host_rewrite {
                            Some(h) => Some(
                                HeaderValue::from_str(h).map_err(|_| format!("invalid host_rewrite_literal {h:?}"))?,
                            ),
                            None => None,
                        };
                        entries.push(WeightedRt {
                            cluster: cluster_ref(&w.name, clusters),
                            header,
                            host_rewrite,
                            cumulative: total,
                            headers: HeaderOpsRt::build(&w.headers)?,
                            filters: chain.slots(&[&w.per_filter, &r.per_filter, &vh.per_filter, rc_per_filter]),
                        });
                    }
                    let pick_header = match &f.weighted_pick {
                        model::WeightedPick::Header(h) => Some(
                            HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("invalid header_name {h:?}"))?,
                        ),
                        _ => None,
                    };
                    Target::Weighted { entries, total, pick: f.weighted_pick.clone(), pick_header }
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
            // The route's hedge policy wins over its virtual host's, whole, as in Envoy.
            let hedge = f.hedge_policy.or(vh.hedge_policy).is_some_and(|h| h.hedge_on_per_try_timeout);
            let retry_policy = f.retry_policy.clone().or_else(|| vh.retry_policy.clone()).map(|mut p| {
                p.hedge_on_per_try_timeout = hedge;
                p
            });
            // A hedged attempt is not ended by its per-try timeout: the upstream is told the
            // route timeout.
            let per_try = retry_policy.as_ref().filter(|_| !hedge).and_then(|p| p.per_try_timeout);
            // Envoy's "new timeouts": with `max_stream_duration` set, the route's `timeout`
            // and the legacy gRPC fields are not read (only a header timeout applies).
            let timeout = if f.max_stream_duration.is_some() { None } else { f.timeout };
            let timeout_header = crate::proxy::request_controls::expected_timeout(timeout, per_try);
            ActionRt::Forward(Box::new(ForwardRt {
                target,
                cluster_not_found_status: StatusCode::from_u16(f.cluster_not_found_status)
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                prefix_rewrite,
                regex_rewrite: f.regex_rewrite.as_ref().map(|r| (r.pattern.clone(), re2_substitution(&r.substitution))),
                host_rewrite: f.host_rewrite.clone(),
                host_regex: match &f.host_rewrite {
                    model::HostRewrite::PathRegex(r) => Some((r.pattern.clone(), re2_substitution(&r.substitution))),
                    _ => None,
                },
                hash_policy: super::hash_policy::HashPolicyRt::build(&f.hash_policy)?,
                timeout,
                timeout_header,
                retry_policy,
                upgrades: f.upgrades.clone().into(),
                rate_limits: (!f.rate_limits.is_empty() || !vh.rate_limits.is_empty()).then(|| {
                    Box::new(crate::filters::local_ratelimit::RouteRateLimits {
                        route: f.rate_limits.clone(),
                        vh: vh.rate_limits.clone(),
                        include_vh: f.include_vh_rate_limits,
                    })
                }),
                // The most specific non-empty list: the route's, its virtual host's, the
                // route configuration's (Envoy does not merge them).
                mirrors: [f.mirrors.as_slice(), vh.mirrors.as_slice(), rc_mirrors]
                    .into_iter()
                    .find(|l| !l.is_empty())
                    .unwrap_or_default()
                    .iter()
                    .map(|m| mirror(m, clusters))
                    .collect::<Result<_, _>>()?,
                append_xfh: f.append_x_forwarded_host,
                stream_duration: f.max_stream_duration,
                legacy_grpc: f.legacy_grpc.filter(|_| f.max_stream_duration.is_none()),
                internal_redirect: f.internal_redirect.clone().map(Box::new),
                idle_timeout: f.idle_timeout,
            }))
        }
        RouteAction::Redirect(rd) => {
            let mut rd = rd.clone();
            if let Some(r) = &mut rd.regex_rewrite {
                r.substitution = re2_substitution(&r.substitution);
            }
            ActionRt::Redirect(rd)
        }
        RouteAction::DirectResponse(d) => ActionRt::Direct {
            status: StatusCode::from_u16(d.status).map_err(|_| format!("invalid status {}", d.status))?,
            body: d.body.clone(),
            format: match &d.body_format {
                Some(f) => {
                    let line = crate::access_log::LineFormat::build(&f.format)?;
                    let default = match f.format {
                        model::AccessLogFormat::Json(_) => "application/json",
                        _ => "text/plain",
                    };
                    let ct = f.content_type.as_deref().unwrap_or(default);
                    let ct = HeaderValue::from_str(ct).map_err(|_| format!("invalid content_type {ct:?}"))?;
                    Some(Box::new((line, ct)))
                }
                None => None,
            },
        },
    };
    Ok(RouteRt {
        name: r.name.clone(),
        action,
        headers: HeaderOpsRt::build(&r.headers)?,
        filters: chain.slots(&[&r.per_filter, &vh.per_filter, rc_per_filter]),
    })
}

fn mirror(m: &model::MirrorPolicy, clusters: &HashMap<String, Arc<Cluster>>) -> Result<MirrorRt, String> {
    let target = match &m.cluster {
        model::MirrorCluster::Named(name) => MirrorTarget::Cluster(cluster_ref(name, clusters)),
        model::MirrorCluster::Header(h) => MirrorTarget::Header(
            HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("invalid mirror cluster_header {h:?}"))?,
        ),
    };
    let host_rewrite = match &m.host_rewrite {
        Some(h) => Some(HeaderValue::from_str(h).map_err(|_| format!("invalid mirror host_rewrite_literal {h:?}"))?),
        None => None,
    };
    Ok(MirrorRt { target, fraction: m.fraction.clone(), keep_host: m.keep_host, host_rewrite })
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
