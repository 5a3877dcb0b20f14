//! Building blocks shared by the validators: socket addresses, `typed_config` with its `@type`
//! check, config sources (file or REST), data sources, and regexes.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde_yaml::Value;

use crate::config::model::{EdsConfigSource, FileSource};
use crate::config::reader::{Ctx, FieldPath, Obj};

static NULL: Value = Value::Null;

/// The `typed_config` of an extension, its `@type` checked against `expected` (and consumed).
/// An absent `typed_config` reads as an empty message.
pub(crate) fn typed_config<'v>(ctx: &mut Ctx, parent: &mut Obj<'v>, expected: &str) -> Option<Obj<'v>> {
    let (v, path) = parent.get("typed_config").unwrap_or((&NULL, parent.at("typed_config")));
    let mut o = Obj::new(ctx, v, path)?;
    if v.is_null() {
        return Some(o);
    }
    match o.str(ctx, "@type") {
        Some(t) if t == expected => Some(o),
        Some(t) => {
            ctx.err(o.at("@type"), format!("wrong @type \"{t}\": expected \"{expected}\""));
            None
        }
        None => {
            ctx.err(&o.path, format!("missing @type (expected \"{expected}\")"));
            None
        }
    }
}

/// Which extension the `typed_config` of `o` is, by its `@type` as Envoy chooses it: the
/// name of the one of `known` (`(type URL, name)`) its type is; `Some("")` for a type legate
/// does not implement; `None` without a `typed_config` or with a type Envoy does not know
/// either (then the caller goes by `name` and `typed_config` reports the type).
pub(crate) fn extension_by_type(o: &Obj<'_>, known: &[(&str, &'static str)]) -> Option<&'static str> {
    let url = o.type_url("typed_config")?;
    match known.iter().find(|(u, _)| *u == url) {
        Some((_, name)) => Some(name),
        None if crate::config::schema::message(url).is_some() => Some(""),
        None => None,
    }
}

/// `Address` -> host and port, host as written.
pub(crate) fn address(ctx: &mut Ctx, v: &Value, path: &FieldPath) -> Option<(String, u16)> {
    let mut o = Obj::new(ctx, v, path.clone())?;
    let sa = o.obj(ctx, "socket_address");
    o.finish(ctx, &[]);
    let Some(mut sa) = sa else {
        ctx.err(path, "missing socket_address");
        return None;
    };
    let host = sa.str(ctx, "address");
    let port = sa.uint(ctx, "port_value", 65535);
    let _ = sa.enumv(ctx, "protocol", &[("TCP", Some(())), ("UDP", None)]);
    sa.ignore(&["ipv4_compat"]);
    let (host, port) = match (host, port) {
        (Some(h), Some(p)) => (h, p),
        (None, _) => {
            ctx.err(sa.at("address"), "missing address");
            (String::new(), 0)
        }
        (_, None) => {
            // A port given another way (`named_port`) is refused by the support table.
            if !sa.has("port_value") && !sa.has_unread() {
                ctx.err(sa.at("port_value"), "missing port_value");
            }
            (String::new(), 0)
        }
    };
    sa.finish(ctx, &[]);
    if host.is_empty() {
        return None;
    }
    Some((host, u16::try_from(port).unwrap_or(0)))
}

/// An `IpAddr` literal, also in brackets (`[::1]`).
pub(crate) fn parse_ip(host: &str) -> Option<IpAddr> {
    let h = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    h.parse().ok()
}

/// An `Address` that must be an IP literal (listeners, admin, STATIC/EDS endpoints).
pub(crate) fn ip_address(ctx: &mut Ctx, v: &Value, path: &FieldPath) -> Option<SocketAddr> {
    let (host, port) = address(ctx, v, path)?;
    match parse_ip(&host) {
        Some(ip) => Some(SocketAddr::new(ip, port)),
        None => {
            ctx.err(format!("{path}.socket_address.address"), format!("expected an IP address, got \"{host}\""));
            None
        }
    }
}

/// A `ConfigSource`: a file (`path`, `path_config_source`) or, when `allow_rest`, a v2 REST
/// `api_config_source`. Reads and finishes the object.
pub(crate) fn config_source(ctx: &mut Ctx, mut o: Obj<'_>, allow_rest: bool) -> Option<EdsConfigSource> {
    let before = ctx.error_count();
    let _ = o.enumv(ctx, "resource_api_version", &[("V3", Some(())), ("AUTO", Some(())), ("V2", None)]);
    o.ignore(&["initial_fetch_timeout", "authorities"]);
    let mut found: Option<EdsConfigSource> = None;
    if let Some(p) = o.str(ctx, "path") {
        found = Some(EdsConfigSource::File(FileSource { path: PathBuf::from(p), watched_directory: None }));
    }
    if let Some(mut pcs) = o.obj(ctx, "path_config_source") {
        let path = pcs.str(ctx, "path");
        let watched = pcs.obj(ctx, "watched_directory").and_then(|mut w| {
            let p = w.str(ctx, "path");
            if p.is_none() {
                ctx.err(w.at("path"), "missing path");
            }
            w.finish(ctx, &[]);
            p.map(PathBuf::from)
        });
        match path {
            Some(p) => {
                found = Some(EdsConfigSource::File(FileSource { path: PathBuf::from(p), watched_directory: watched }))
            }
            None => ctx.err(pcs.at("path"), "missing path"),
        }
        pcs.finish(ctx, &[]);
    }
    if allow_rest {
        if let Some(api) = o.obj(ctx, "api_config_source") {
            found = rest_source(ctx, api);
        }
    }
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if found.is_none() && ctx.error_count() == before {
        ctx.err(&path, "missing path_config_source (the only supported config source)");
    }
    found
}

fn rest_source(ctx: &mut Ctx, mut api: Obj<'_>) -> Option<EdsConfigSource> {
    let unsupported = Some(false);
    let rest = api.enumv(
        ctx,
        "api_type",
        &[
            ("REST", Some(true)),
            ("GRPC", unsupported),
            ("DELTA_GRPC", unsupported),
            ("AGGREGATED_GRPC", unsupported),
            ("AGGREGATED_DELTA_GRPC", unsupported),
            ("REST_LEGACY", unsupported),
        ],
    );
    let names = api.strs(ctx, "cluster_names");
    let refresh_delay = api.duration(ctx, "refresh_delay");
    let request_timeout = api.duration(ctx, "request_timeout").unwrap_or(Duration::from_secs(1));
    // AUTO and absent are v3 as in Envoy 1.40; a v2-spelled document says V2 (`v2.rs`).
    let transport_v3 =
        api.enumv(ctx, "transport_api_version", &[("V3", Some(true)), ("V2", Some(false)), ("AUTO", Some(true))]);
    api.ignore(&["set_node_on_first_message_only"]);
    if rest.is_none() && !api.has("api_type") {
        ctx.err(api.at("api_type"), "missing api_type");
    }
    if names.len() != 1 {
        ctx.err(api.at("cluster_names"), format!("expected exactly one cluster name, found {}", names.len()));
    }
    if refresh_delay.is_none() && !api.has("refresh_delay") {
        ctx.err(api.at("refresh_delay"), "refresh_delay is required for a REST config source");
    }
    api.finish(ctx, &[]);
    match (rest, names.as_slice(), refresh_delay) {
        (Some(true), [cluster], Some(refresh_delay)) => Some(EdsConfigSource::Rest {
            cluster: cluster.clone(),
            refresh_delay,
            request_timeout,
            transport_v3: transport_v3.unwrap_or(true),
        }),
        _ => None,
    }
}

/// A `DataSource`: `inline_string`, `inline_bytes` (base64) or `filename` (read now).
pub(crate) fn data_source(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<bytes::Bytes> {
    let mut out = None;
    let mut count = 0;
    if let Some(s) = o.str(ctx, "inline_string") {
        count += 1;
        out = Some(bytes::Bytes::from(s));
    }
    if let Some((v, path)) = o.get("inline_bytes") {
        count += 1;
        match v.as_str().map(base64_decode) {
            Some(Some(b)) => out = Some(bytes::Bytes::from(b)),
            _ => ctx.err(&path, "invalid base64"),
        }
    }
    if let Some(f) = o.str(ctx, "filename") {
        count += 1;
        ctx.file_reads += 1;
        match std::fs::read(&f) {
            Ok(b) => out = Some(bytes::Bytes::from(b)),
            Err(e) => ctx.err(o.at("filename"), format!("cannot read \"{f}\": {e}")),
        }
    }
    if count > 1 {
        ctx.err(&o.path, "only one of inline_string, inline_bytes, filename may be set");
    }
    o.finish(ctx, &[]);
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// Compiles `pattern` anchored as a full match (route and header matchers).
pub(crate) fn anchored_regex(ctx: &mut Ctx, pattern: &str, path: &FieldPath) -> Option<Regex> {
    match Regex::new(&format!("^(?:{pattern})$")) {
        Ok(r) => Some(r),
        Err(e) => {
            ctx.err(path, format!("invalid regex \"{pattern}\": {}", one_line(&e.to_string())));
            None
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A `RegexMatcher` (`{google_re2: {}, regex}`), compiled anchored or not.
pub(crate) fn regex_matcher(ctx: &mut Ctx, mut o: Obj<'_>, anchored: bool) -> Option<Regex> {
    o.ignore(&["google_re2"]);
    let pattern = o.str(ctx, "regex");
    let path = o.at("regex");
    o.finish(ctx, &[]);
    let Some(pattern) = pattern else {
        ctx.err(&path, "missing regex");
        return None;
    };
    if anchored {
        anchored_regex(ctx, &pattern, &path)
    } else {
        match Regex::new(&pattern) {
            Ok(r) => Some(r),
            Err(e) => {
                ctx.err(&path, format!("invalid regex \"{pattern}\": {}", one_line(&e.to_string())));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ=").as_deref(), Some(&b"hello world"[..]));
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("!"), None);
    }

    #[test]
    fn ip_literals() {
        assert!(parse_ip("::").is_some());
        assert!(parse_ip("[::1]").is_some());
        assert!(parse_ip("127.0.0.1").is_some());
        assert!(parse_ip("localhost").is_none());
    }
}
