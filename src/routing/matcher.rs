//! Evaluates Envoy's route matchers against one request: path, headers (`range_match`,
//! `treat_missing_header_as_empty`), query parameters, `grpc`, `tls_context`.

use http::HeaderMap;

use crate::config::model::{
    HeaderMatchKind, HeaderMatcher, PathMatch, QueryParameterMatcher, RouteMatch, StringMatch, StringMatcher,
    TlsContextMatch,
};

/// What a matcher looks at, extracted once per request.
pub struct RequestView<'a> {
    /// `:path` with its query.
    pub full_path: &'a str,
    /// `:path` without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
    pub headers: &'a HeaderMap,
    /// The downstream connection, for `tls_context` and `require_tls`.
    pub downstream: Downstream,
    /// The runtime and the request's random value, for `runtime_fraction` (without them a
    /// route's fraction is drawn on its default).
    pub runtime: Option<(&'a crate::runtime::Runtime, u64)>,
}

/// What routing needs to know of the downstream connection and of the headers the
/// connection manager sets before routing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Downstream {
    /// The client presented a certificate (`tls_context.presented`).
    pub cert_presented: bool,
    /// The client's certificate was validated (`tls_context.validated`).
    pub cert_validated: bool,
    /// `x-forwarded-proto` is `https` (`require_tls`).
    pub https: bool,
    /// `x-envoy-internal: true` (`require_tls: EXTERNAL_ONLY`).
    pub internal: bool,
}

impl<'a> RequestView<'a> {
    pub fn new(
        full_path: &'a str,
        method: &'a str,
        authority: &'a str,
        scheme: &'a str,
        headers: &'a HeaderMap,
    ) -> Self {
        let (path, query) = match full_path.find('?') {
            Some(i) => (&full_path[..i], Some(&full_path[i + 1..])),
            None => (full_path, None),
        };
        RequestView {
            full_path,
            path,
            query,
            method,
            authority,
            scheme,
            headers,
            downstream: Downstream::default(),
            runtime: None,
        }
    }
}

pub fn route_matches(m: &RouteMatch, req: &RequestView<'_>) -> bool {
    path_matches(&m.path, m.case_sensitive, req)
        && (!m.grpc || crate::proxy::local_reply::is_grpc_request(req.headers))
        && m.headers.iter().all(|h| header_matches(h, req))
        && m.query_parameters.iter().all(|q| query_matches(q, req))
        && m.tls_context.is_none_or(|t| tls_matches(&t, &req.downstream))
        && m.runtime_fraction.as_ref().is_none_or(|f| match req.runtime {
            Some((rt, random)) => f.enabled_with(rt, random),
            None => crate::runtime::hit(f.default_value),
        })
}

/// `tls_context`: each option set must equal the connection's (a plaintext connection
/// presented no certificate and had none validated).
pub fn tls_matches(t: &TlsContextMatch, d: &Downstream) -> bool {
    t.presented.is_none_or(|p| p == d.cert_presented) && t.validated.is_none_or(|v| v == d.cert_validated)
}

pub fn path_matches(pm: &PathMatch, case_sensitive: bool, req: &RequestView<'_>) -> bool {
    match pm {
        PathMatch::Prefix(p) => starts_with(req.full_path, p, case_sensitive),
        PathMatch::Path(p) => {
            if case_sensitive {
                req.path == p
            } else {
                req.path.eq_ignore_ascii_case(p)
            }
        }
        PathMatch::Regex(r) => r.is_match(req.path),
        PathMatch::PathSeparatedPrefix(p) => {
            starts_with(req.path, p, case_sensitive)
                && (req.path.len() == p.len() || req.path.as_bytes().get(p.len()) == Some(&b'/'))
        }
    }
}

fn starts_with(s: &str, prefix: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        s.starts_with(prefix)
    } else {
        s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    }
}

pub fn string_matches(m: &StringMatcher, value: &str) -> bool {
    let ic = m.ignore_case;
    match &m.kind {
        StringMatch::Exact(e) => {
            if ic {
                value.eq_ignore_ascii_case(e)
            } else {
                value == e
            }
        }
        StringMatch::Prefix(p) => starts_with(value, p, !ic),
        StringMatch::Suffix(sfx) => {
            value.len() >= sfx.len() && {
                let tail = &value.as_bytes()[value.len() - sfx.len()..];
                if ic {
                    tail.eq_ignore_ascii_case(sfx.as_bytes())
                } else {
                    tail == sfx.as_bytes()
                }
            }
        }
        StringMatch::Contains(c) => {
            if ic {
                value.to_ascii_lowercase().contains(&c.to_ascii_lowercase())
            } else {
                value.contains(c.as_str())
            }
        }
        StringMatch::Regex(r) => r.is_match(value),
    }
}

pub(crate) fn header_value<'a>(name: &str, req: &RequestView<'a>) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    match name {
        ":path" => Some(Cow::Borrowed(req.full_path)),
        ":method" => Some(Cow::Borrowed(req.method)),
        ":authority" | "host" => Some(Cow::Borrowed(req.authority)),
        ":scheme" => Some(Cow::Borrowed(req.scheme)),
        _ => {
            let mut values = req.headers.get_all(name).iter();
            let first = values.next()?;
            let first = first.to_str().unwrap_or("");
            match values.next() {
                None => Some(Cow::Borrowed(first)),
                // Envoy matches a repeated header against its values joined by commas.
                Some(second) => {
                    let mut joined = format!("{first},{}", second.to_str().unwrap_or(""));
                    for v in values {
                        joined.push(',');
                        joined.push_str(v.to_str().unwrap_or(""));
                    }
                    Some(Cow::Owned(joined))
                }
            }
        }
    }
}

/// Envoy's header matcher: each value of a repeated header is matched on its own (any one
/// matching is a match, Envoy 1.40's rule), then `invert_match` applies. A missing header
/// matches only `present_match: false` (or, inverted, `true`), unless
/// `treat_missing_header_as_empty`, which matches the empty value instead.
pub fn header_matches(h: &HeaderMatcher, req: &RequestView<'_>) -> bool {
    let one = |v: &str| match &h.kind {
        HeaderMatchKind::Present(p) => *p,
        HeaderMatchKind::String(m) => string_matches(m, v),
        HeaderMatchKind::Range { start, end } => range_matches(*start, *end, v),
    };
    let found = match h.name.as_str() {
        ":path" => Some(one(req.full_path)),
        ":method" => Some(one(req.method)),
        ":authority" | "host" => Some(one(req.authority)),
        ":scheme" => Some(one(req.scheme)),
        name => {
            let mut values = req.headers.get_all(name).iter();
            values
                .next()
                .map(|first| one(first.to_str().unwrap_or("")) || values.any(|v| one(v.to_str().unwrap_or(""))))
        }
    };
    match found {
        Some(r) => r ^ h.invert_match,
        None if h.treat_missing_as_empty => one("") ^ h.invert_match,
        None => match h.kind {
            HeaderMatchKind::Present(p) => !p ^ h.invert_match,
            HeaderMatchKind::String(_) | HeaderMatchKind::Range { .. } => false,
        },
    }
}

/// `range_match`: the value as a decimal integer (surrounding spaces and a sign allowed, as
/// absl's `SimpleAtoi` reads it) in `[start, end)`.
pub fn range_matches(start: i64, end: i64, value: &str) -> bool {
    value.trim_ascii().parse::<i64>().is_ok_and(|n| n >= start && n < end)
}

pub fn query_matches(q: &QueryParameterMatcher, req: &RequestView<'_>) -> bool {
    let Some(query) = req.query else { return false };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == q.name {
            return match &q.string_match {
                None => true,
                Some(m) => string_matches(m, v),
            };
        }
    }
    false
}
