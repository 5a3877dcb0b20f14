//! Path and host rewrites of forwarded requests and the `location` of redirects, as Envoy
//! builds them.

use http::header::{HeaderMap, HeaderValue};

use crate::config::model::{HostRewrite, PathMatch, RedirectAction, RouteMatch};
use crate::routing::{ForwardRt, PrefixOf, RouteRt, VirtualHostRt};

fn split_query(full: &str) -> (&str, &str) {
    match full.find('?') {
        Some(i) => (&full[..i], &full[i..]),
        None => (full, ""),
    }
}

/// The upstream path after `prefix_rewrite` or `regex_rewrite`, or `None` when unchanged.
pub fn rewrite_path(fwd: &ForwardRt, full_path: &str) -> Option<String> {
    if let Some((of, to)) = &fwd.prefix_rewrite {
        let (path, query) = split_query(full_path);
        return Some(match of {
            // The prefix matched against the full path, so it may reach into the query.
            PrefixOf::Prefix(len) => format!("{to}{}", full_path.get(*len..).unwrap_or("")),
            PrefixOf::WholePath | PrefixOf::Regex => {
                let _ = path;
                format!("{to}{query}")
            }
        });
    }
    if let Some((re, sub)) = &fwd.regex_rewrite {
        let (path, query) = split_query(full_path);
        let new = re.replace_all(path, sub.as_str());
        return Some(format!("{new}{query}"));
    }
    None
}

/// The upstream host after `host_rewrite_literal`, `host_rewrite_header` (the header's first
/// value, when not empty) or `host_rewrite_path_regex` (on the path as received, without its
/// query); `None` when unchanged (`auto_host_rewrite` is resolved per upstream host).
pub fn rewritten_host(fwd: &ForwardRt, headers: &HeaderMap, full_path: &str) -> Option<HeaderValue> {
    match &fwd.host_rewrite {
        HostRewrite::None | HostRewrite::Auto => None,
        HostRewrite::Literal(h) => HeaderValue::from_str(h).ok(),
        HostRewrite::Header(name) => headers.get(name.as_str()).filter(|v| !v.is_empty()).cloned(),
        HostRewrite::PathRegex(_) => {
            let (re, sub) = fwd.host_regex.as_ref()?;
            let (path, _) = split_query(full_path);
            HeaderValue::from_str(&re.replace_all(path, sub.as_str())).ok()
        }
    }
}

/// The `location` of a redirect route.
pub fn redirect_location(
    rd: &RedirectAction,
    route: &RouteRt,
    matchers: &[RouteMatch],
    vh: &VirtualHostRt,
    authority: &str,
    full_path: &str,
) -> String {
    let scheme = rd.scheme.as_deref().unwrap_or("http");
    let (orig_host, orig_port) = split_host_port(authority);
    let host = rd.host.as_deref().unwrap_or(orig_host);
    let port = match rd.port {
        Some(p) => Some(p.to_string()),
        None => orig_port.map(str::to_string),
    };
    let (path, query) = split_query(full_path);
    let mut new_path = match (&rd.path, &rd.prefix_rewrite) {
        (Some(p), _) => p.clone(),
        (None, Some(to)) => {
            let idx = vh.routes.iter().position(|r| std::ptr::eq(&**r, route));
            match idx.and_then(|i| matchers.get(i)).map(|m| &m.path) {
                Some(PathMatch::Prefix(pfx)) | Some(PathMatch::PathSeparatedPrefix(pfx)) => {
                    format!("{to}{}", path.get(pfx.len()..).unwrap_or(""))
                }
                _ => to.clone(),
            }
        }
        (None, None) => match &rd.regex_rewrite {
            // The path without its query, as Envoy rewrites it; the query follows unless
            // `strip_query`. The substitution is in the `regex` crate's syntax (compiled).
            Some(r) => r.pattern.replace_all(path, r.substitution.as_str()).into_owned(),
            None => path.to_string(),
        },
    };
    if !rd.strip_query && !new_path.contains('?') {
        new_path.push_str(query);
    }
    match port {
        Some(p) => format!("{scheme}://{host}:{p}{new_path}"),
        None => format!("{scheme}://{host}{new_path}"),
    }
}

fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            let rest = &authority[end + 1..];
            return (&authority[..=end], rest.strip_prefix(':'));
        }
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => (h, Some(p)),
        _ => (authority, None),
    }
}
