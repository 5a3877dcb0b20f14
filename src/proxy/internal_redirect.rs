//! Envoy's internal redirects (`RouteAction.internal_redirect_policy`): an upstream's 3xx the
//! route's policy accepts is not passed on; the request is sent again, as a new stream would
//! be, to where its `Location` points, looked up in the route table afresh. Owns the
//! conditions (a whole request body, a valid absolute `Location`, the scheme, the count, the
//! predicates), the request as it is rewritten for the next pass, and what one request
//! remembers across its redirects.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, LOCATION};
use http::{HeaderMap, Method, Response, StatusCode};
use std::sync::Arc;

use super::access::{LoggedRequest, PendingLog, StreamInfo};
use super::body::ResBody;
use crate::config::model::{InternalRedirectPolicy, RedirectPredicate};

pub(super) static X_ENVOY_ORIGINAL_URL: http::HeaderName = http::HeaderName::from_static("x-envoy-original-url");

/// The answer of a route with a policy whose code is one of the policy's: what the router
/// sent, and the body as the client sent it when it arrived whole within the buffer limit.
pub struct Candidate {
    pub policy: Box<InternalRedirectPolicy>,
    /// The name of the route that holds the policy (`previous_routes` keeps its memory under it).
    pub route_name: String,
    pub cluster: Arc<crate::upstream::Cluster>,
    pub method: Method,
    pub path: String,
    pub authority: HeaderValue,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// The request carried `x-envoy-internal: true` (the passed-on answer's `internal.` stats).
    pub internal: bool,
}

/// What one downstream request remembers across its redirects (Envoy's filter state).
pub(super) struct Followed {
    pub count: u32,
    /// The request's scheme is https (from the connection, then from each `Location`).
    pub https: bool,
    /// `previous_routes`: per route holding the predicate, the routes followed from it.
    previous: Vec<(String, Vec<String>)>,
}

impl Followed {
    pub fn new(https: bool) -> Self {
        Followed { count: 0, https, previous: Vec::new() }
    }
}

/// The request the next pass handles.
pub(super) struct Next {
    pub method: Method,
    pub uri: http::Uri,
    pub authority: HeaderValue,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The route the redirect was checked against and its cluster, when it names one (the
    /// log line of the stream the redirect ends shows them, as Envoy's does).
    pub route_name: Option<String>,
    pub route_cluster: Option<Arc<crate::upstream::Cluster>>,
}

/// A route found for a redirect: its name and its cluster, if it names one.
pub(super) type Target = (Option<String>, Option<Arc<crate::upstream::Cluster>>);

/// Whether `c`'s answer `resp` is followed: the next request, or `None` to pass `resp` on.
/// Counts Envoy's `upstream_internal_redirect_{succeeded,failed}_total` on the cluster, and
/// charges the passed-on answer to the cluster's codes (the router left that to here).
pub(super) fn follow(
    c: Candidate,
    resp: &Response<ResBody>,
    state: &mut Followed,
    lookup: impl FnOnce(&str, &str, &str, &HeaderMap) -> Option<Target>,
) -> Option<Next> {
    let stats = &c.cluster.stats;
    match next_request(&c, resp, state, lookup) {
        Some(next) => {
            stats.upstream_internal_redirect_succeeded_total.inc();
            Some(next)
        }
        None => {
            stats.upstream_internal_redirect_failed_total.inc();
            stats.charge(resp.status().as_u16(), c.internal);
            None
        }
    }
}

fn next_request(
    c: &Candidate,
    resp: &Response<ResBody>,
    state: &mut Followed,
    lookup: impl FnOnce(&str, &str, &str, &HeaderMap) -> Option<Target>,
) -> Option<Next> {
    // Envoy follows only a request that has ended, its body kept whole.
    let body = c.body.clone()?;
    let (target_https, authority, path) = absolute_url(resp.headers().get(LOCATION)?.as_bytes())?;
    if !c.policy.allow_cross_scheme_redirect && state.https != target_https {
        return None;
    }
    if state.count >= c.policy.max_internal_redirects {
        return None;
    }
    let mut headers = c.headers.clone();
    for name in &c.policy.response_headers_to_copy {
        headers.remove(name.as_str());
        for v in resp.headers().get_all(name.as_str()) {
            if let Ok(n) = http::HeaderName::from_bytes(name.as_bytes()) {
                headers.append(n, v.clone());
            }
        }
    }
    let (route_name, route_cluster) = lookup(&path, c.method.as_str(), &authority, &headers)?;
    let target = route_name.clone().unwrap_or_default();
    for p in &c.policy.predicates {
        let accepted = match p {
            RedirectPredicate::AllowListedRoutes(names) => names.contains(&target),
            RedirectPredicate::SafeCrossScheme => !state.https || target_https,
            RedirectPredicate::PreviousRoutes => {
                let i = match state.previous.iter().position(|(r, _)| *r == c.route_name) {
                    Some(i) => i,
                    None => {
                        state.previous.push((c.route_name.clone(), Vec::new()));
                        state.previous.len() - 1
                    }
                };
                let seen = &mut state.previous[i].1;
                if seen.contains(&target) {
                    false
                } else {
                    seen.push(target.clone());
                    true
                }
            }
        };
        if !accepted {
            return None;
        }
    }
    let mut method = c.method.clone();
    let mut body = body;
    // RFC 9110 15.4.4: a 303 is followed with GET (HEAD stays HEAD), without the body.
    if resp.status() == StatusCode::SEE_OTHER && method != Method::GET && method != Method::HEAD {
        method = Method::GET;
        headers.remove(CONTENT_LENGTH);
        body = Bytes::new();
    }
    let scheme = if state.https { "https" } else { "http" };
    let original = format!("{scheme}://{}{}", c.authority.to_str().unwrap_or_default(), c.path);
    if let Ok(v) = HeaderValue::from_str(&original) {
        headers.insert(X_ENVOY_ORIGINAL_URL.clone(), v);
    }
    let authority = HeaderValue::from_str(&authority).ok()?;
    let uri = http::Uri::builder().path_and_query(path.as_str()).build().ok()?;
    state.count += 1;
    state.https = target_https;
    Some(Next { method, uri, authority, headers, body, route_name, route_cluster })
}

/// The access-log line of the stream Envoy ends for a redirect it follows: the 3xx, details
/// `internal_redirect`, and the request as the redirect rewrote it (Envoy's new stream takes
/// over the same header map before the old one is logged).
pub(super) fn log_followed(
    hcm: &crate::snapshot::Hcm,
    ctx: &super::ConnCtx,
    version: http::Version,
    resp: &Response<ResBody>,
    next: &Next,
    trace: &StreamInfo,
) {
    let elapsed = trace.started.map_or(std::time::Duration::ZERO, |s| s.elapsed());
    let info = StreamInfo {
        started: trace.started,
        upstream_host: trace.upstream_host,
        cluster: next.route_cluster.clone().or_else(|| trace.cluster.clone()),
        route_name: next.route_name.clone(),
        response_flags: trace.response_flags,
        attempts: trace.attempts,
        details: Some("internal_redirect"),
        logging: true,
        rx_bytes: trace.rx_bytes.clone(),
        ..StreamInfo::default()
    };
    let log = PendingLog {
        loggers: Arc::clone(&hcm.access_logs),
        start: std::time::SystemTime::now().checked_sub(elapsed).unwrap_or_else(std::time::SystemTime::now),
        started: std::time::Instant::now().checked_sub(elapsed).unwrap_or_else(std::time::Instant::now),
        request: LoggedRequest {
            method: next.method.clone(),
            path: next.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
            authority: next.authority.clone(),
            headers: next.headers.clone(),
        },
        version,
        status: resp.status().as_u16(),
        response_headers: super::stream::logged_response_headers(&hcm.log_response_headers, resp.headers()),
        trailers: None,
        trace: info,
        remote: ctx.remote,
        local: ctx.local,
        bytes_sent: 0,
        tls: ctx.tls.get().cloned(),
    };
    log.write();
}

/// `Location` as Envoy's URL parser takes it: an absolute URL with a scheme and a host; its
/// scheme's being https (any scheme but http counts as not http), its `host[:port]`, and its
/// path and query without the fragment ("/" when it has no path).
fn absolute_url(location: &[u8]) -> Option<(bool, String, String)> {
    let text = std::str::from_utf8(location).ok()?;
    let (scheme, rest) = text.split_once("://")?;
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.is_empty() || authority.parse::<http::uri::Authority>().is_err() {
        return None;
    }
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    path.parse::<http::uri::PathAndQuery>().ok()?;
    Some((!scheme.eq_ignore_ascii_case("http"), authority.to_string(), path))
}

#[cfg(test)]
mod tests {
    use super::absolute_url;

    #[test]
    fn location_must_be_absolute() {
        assert_eq!(absolute_url(b"/relative"), None);
        assert_eq!(absolute_url(b"x"), None);
        assert_eq!(absolute_url(b"http:///nohost"), None);
        assert_eq!(
            absolute_url(b"http://h:81/a/b?q=1#frag"),
            Some((false, "h:81".to_string(), "/a/b?q=1".to_string()))
        );
        assert_eq!(absolute_url(b"HTTPS://h"), Some((true, "h".to_string(), "/".to_string())));
        assert_eq!(absolute_url(b"http://h?x=1"), Some((false, "h".to_string(), "/?x=1".to_string())));
    }
}
