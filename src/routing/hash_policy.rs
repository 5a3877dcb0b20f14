//! A route's `hash_policy` compiled for the request path: the key a RING_HASH or MAGLEV
//! cluster places a request by, computed as Envoy 1.40 computes it (`Http::HashPolicyImpl`),
//! so that a client pinned to a host by Envoy stays on it behind legate:
//! - `header`: xxHash64 of the header's values, sorted and concatenated (after
//!   `regex_rewrite`); `:authority` (or `host`), `:path` and `:method` name the request's own.
//! - `cookie`: xxHash64 of the cookie's value; when the request has none and `ttl` is set,
//!   the value is generated (hex of xxHash64 of the client's then the listener's
//!   `address:port`) and set on the response.
//! - `connection_properties.source_ip`: xxHash64 of the client's IP.
//! - `query_parameter`: xxHash64 of the parameter's first value, as written.
//! - `filter_state`: the `Hashable` hash of the stream's object of that key (as a
//!   `set_filter_state` filter left it); none when there is no object or it is not hashable.
//!
//! Policies combine in order: `hash = rotate_left(hash, 1) ^ next`; a `terminal` policy that
//! produced a key ends the list. Evaluated only when the chosen cluster hashes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE};

use crate::config::model::{HashPolicy, HashPolicyKind};
use crate::upstream::xxh64::xxh64;

pub struct HashPolicyRt {
    methods: Box<[Method]>,
}

struct Method {
    kind: Kind,
    terminal: bool,
}

enum Kind {
    Header { name: HeaderRef, rewrite: Option<(regex::Regex, String)> },
    Cookie { name: String, ttl: Option<Duration>, path: String, attributes: Vec<(String, String)> },
    SourceIp,
    Query(String),
    FilterState(String),
}

enum HeaderRef {
    Authority,
    Path,
    Method,
    Named(HeaderName),
}

/// What a request's key is computed from.
pub struct HashInput<'a> {
    pub headers: &'a HeaderMap,
    /// Path and query as received.
    pub path: &'a str,
    pub authority: &'a str,
    pub method: &'a str,
    /// The client as the connection manager trusts it (`x-forwarded-for` may name it).
    pub remote: IpAddr,
    /// The connection's peer and local addresses (the generated cookie's source).
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// What the filters set; `None` before they run.
    pub filter_state: Option<&'a crate::filters::FilterState>,
}

/// A request's key, and the `Set-Cookie` its answer carries when the key is a new cookie.
#[derive(Debug, Default, PartialEq)]
pub struct LbKey {
    pub hash: Option<u64>,
    pub set_cookie: Option<HeaderValue>,
}

impl HashPolicyRt {
    /// `None` for an empty list (no key: Envoy's random host).
    pub fn build(policies: &[HashPolicy]) -> Result<Option<Box<HashPolicyRt>>, String> {
        if policies.is_empty() {
            return Ok(None);
        }
        let mut methods = Vec::with_capacity(policies.len());
        for p in policies {
            let kind = match &p.kind {
                HashPolicyKind::Header { name, regex_rewrite } => {
                    let name = match name.as_str() {
                        // Envoy keeps the host as `:authority` and finds it by either name.
                        ":authority" | "host" => HeaderRef::Authority,
                        ":path" => HeaderRef::Path,
                        ":method" => HeaderRef::Method,
                        n => HeaderRef::Named(
                            HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("invalid header name {n:?}"))?,
                        ),
                    };
                    let rewrite =
                        regex_rewrite.as_ref().map(|r| (r.pattern.clone(), super::re2_substitution(&r.substitution)));
                    Kind::Header { name, rewrite }
                }
                HashPolicyKind::Cookie { name, ttl, path, attributes } => {
                    Kind::Cookie { name: name.clone(), ttl: *ttl, path: path.clone(), attributes: attributes.clone() }
                }
                HashPolicyKind::SourceIp => Kind::SourceIp,
                HashPolicyKind::QueryParameter(n) => Kind::Query(n.clone()),
                HashPolicyKind::FilterState(key) => Kind::FilterState(key.clone()),
            };
            methods.push(Method { kind, terminal: p.terminal });
        }
        Ok(Some(Box::new(HashPolicyRt { methods: methods.into() })))
    }

    pub fn key(&self, input: &HashInput<'_>) -> LbKey {
        let mut out = LbKey::default();
        for m in self.methods.iter() {
            let next = match &m.kind {
                Kind::Header { name, rewrite } => header_hash(input, name, rewrite.as_ref()),
                Kind::Cookie { name, ttl, path, attributes } => match cookie(input.headers, name) {
                    Some(v) if !v.is_empty() => Some(xxh64(v, 0)),
                    _ => ttl.map(|ttl| {
                        let value = format!("{:016x}", xxh64(format!("{}{}", input.peer, input.local).as_bytes(), 0));
                        out.set_cookie = set_cookie(name, &value, path, ttl, attributes);
                        xxh64(value.as_bytes(), 0)
                    }),
                },
                Kind::SourceIp => Some(xxh64(input.remote.to_string().as_bytes(), 0)),
                Kind::Query(name) => query_value(input.path, name).map(|v| xxh64(v.as_bytes(), 0)),
                Kind::FilterState(key) => input.filter_state.and_then(|s| s.hash(key)),
            };
            if let Some(n) = next {
                out.hash = Some(out.hash.map_or(0, |h| h.rotate_left(1)) ^ n);
            }
            if m.terminal && out.hash.is_some() {
                break;
            }
        }
        out
    }
}

fn header_hash(input: &HashInput<'_>, name: &HeaderRef, rewrite: Option<&(regex::Regex, String)>) -> Option<u64> {
    let own = |v: &str| Some(hash_values(&mut [std::borrow::Cow::Borrowed(v.as_bytes())], rewrite));
    match name {
        HeaderRef::Authority => own(input.authority),
        HeaderRef::Path => own(input.path),
        HeaderRef::Method => own(input.method),
        HeaderRef::Named(n) => {
            let mut values: Vec<std::borrow::Cow<'_, [u8]>> =
                input.headers.get_all(n).iter().map(|v| std::borrow::Cow::Borrowed(v.as_bytes())).collect();
            if values.is_empty() {
                return None;
            }
            Some(hash_values(&mut values, rewrite))
        }
    }
}

/// Envoy's: each value rewritten, sorted, and hashed as one concatenation.
fn hash_values(values: &mut [std::borrow::Cow<'_, [u8]>], rewrite: Option<&(regex::Regex, String)>) -> u64 {
    if let Some((re, with)) = rewrite {
        for v in values.iter_mut() {
            let s = String::from_utf8_lossy(v);
            *v = std::borrow::Cow::Owned(re.replace_all(&s, with.as_str()).into_owned().into_bytes());
        }
    }
    if let [one] = values {
        return xxh64(one, 0);
    }
    values.sort();
    xxh64(&values.concat(), 0)
}

/// The value of cookie `name` in the request's `Cookie` headers, as Envoy parses them: the
/// first cookie of that name, its value without surrounding double quotes.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    for h in headers.get_all(COOKIE) {
        for part in h.as_bytes().split(|&b| b == b';').filter(|p| !p.is_empty()) {
            let Some(eq) = part.iter().position(|&b| b == b'=') else { continue };
            let start = part.iter().position(|&b| b != b' ').unwrap_or(part.len()).min(eq);
            if &part[start..eq] != name.as_bytes() {
                continue;
            }
            let v = &part[eq + 1..];
            return Some(if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' { &v[1..v.len() - 1] } else { v });
        }
    }
    None
}

/// Envoy's `makeSetCookieValue` (always `HttpOnly`).
fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    ttl: Duration,
    attributes: &[(String, String)],
) -> Option<HeaderValue> {
    let mut s = format!("{name}=\"{value}\"");
    if ttl.as_secs() != 0 {
        s.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if !path.is_empty() {
        s.push_str(&format!("; Path={path}"));
    }
    for (n, v) in attributes {
        if v.is_empty() {
            s.push_str(&format!("; {n}"));
        } else {
            s.push_str(&format!("; {n}={v}"));
        }
    }
    s.push_str("; HttpOnly");
    HeaderValue::from_str(&s).ok()
}

/// The first value of query parameter `name`, undecoded.
fn query_value<'p>(path: &'p str, name: &str) -> Option<&'p str> {
    let query = &path[path.find('?')? + 1..];
    query.split('&').filter(|p| !p.is_empty()).find_map(|p| match p.split_once('=') {
        Some((n, v)) if n == name => Some(v),
        None if p == name => Some(""),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
