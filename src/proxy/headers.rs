//! The headers Envoy adds, removes and trusts on the way up and down: hop-by-hop headers,
//! `x-forwarded-for`/`-proto`, `x-request-id`, internal `x-envoy-*` headers, `te`, `expect`.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, EXPECT, TE, TRANSFER_ENCODING, UPGRADE};

use crate::config::model::HttpConnectionManager;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_ENVOY_EXTERNAL_ADDRESS: HeaderName = HeaderName::from_static("x-envoy-external-address");
pub static X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");
pub static X_ENVOY_EXPECTED_RQ_TIMEOUT_MS: HeaderName = HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
pub static X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");
pub static X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName = HeaderName::from_static("x-envoy-upstream-service-time");
pub static X_ENVOY_ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
pub static X_ENVOY_ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-envoy-original-host");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// The `x-envoy-*` request headers Envoy removes from an external client's request
/// (`ConnectionManagerUtility::cleanInternalHeaders`); any other `x-envoy-*` header passes.
const EXTERNAL_STRIPPED: [&str; 14] = [
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Removed as well when the request is an edge request (`use_remote_address`, external
/// client), as Envoy 1.40 does.
const EDGE_STRIPPED: [&str; 5] = [
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-original-path",
    "x-envoy-original-host",
];

/// Whether `token` is one of the comma-separated elements of any of the lines (ASCII case
/// ignored). Bytes, not str: a non-ASCII byte elsewhere in a line must not hide a token.
fn lists_token(h: &HeaderMap, name: &HeaderName, token: &[u8]) -> bool {
    h.get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether the map has `name`, by a look along its names when they are few: for the headers
/// asked about on every request, which are mostly absent, a dozen comparisons (a standard
/// name is one byte) cost less than the lookup, which hashes the name and probes the table.
pub(crate) fn has(h: &HeaderMap, name: &HeaderName) -> bool {
    if h.keys_len() > 16 {
        return h.contains_key(name);
    }
    h.keys().any(|k| k == name)
}

/// An upgrade request as Envoy sees one: an `Upgrade` header that `Connection` names. An
/// `Upgrade` header alone is hop-by-hop noise, removed and otherwise ignored.
pub fn is_upgrade_request(h: &HeaderMap) -> bool {
    has(h, &UPGRADE) && lists_token(h, &CONNECTION, b"upgrade")
}

/// Removes `Expect: 100-continue` (the continue is this hop's business); any other
/// expectation goes upstream, as Envoy forwards it.
pub fn strip_expect_continue(h: &mut HeaderMap) {
    if !has(h, &EXPECT) {
        return;
    }
    let continue_only = {
        let mut lines = h.get_all(EXPECT).iter();
        matches!((lines.next(), lines.next()), (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    };
    if continue_only {
        h.remove(EXPECT);
    }
}

/// Removes hop-by-hop headers, including those the `connection` header names.
/// `te: trailers` stays, as in Envoy (gRPC needs it).
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Most requests have none of these, and most answers only `connection`: one pass over
    // the names, then lookups for those present only (a removal hashes its name).
    // Headers that `connection` names matter only when it is there; `http2-settings` only
    // with `upgrade`.
    const C: u8 = 1;
    const T: u8 = 2;
    const TENC: u8 = 4;
    const U: u8 = 8;
    const KA: u8 = 16;
    const PC: u8 = 32;
    let present = h.keys().fold(0u8, |acc, n| {
        acc | if n == CONNECTION {
            C
        } else if n == TE {
            T
        } else if n == TRANSFER_ENCODING {
            TENC
        } else if n == UPGRADE {
            U
        } else if n == KEEP_ALIVE {
            KA
        } else if n == PROXY_CONNECTION {
            PC
        } else {
            0
        }
    });
    if present == 0 {
        return;
    }
    // An h2c upgrade's settings belong to the connection being upgraded, named in
    // `Connection` or not (Envoy's codec drops them with the upgrade).
    if present & (U | C) == U | C
        && is_upgrade_request(h)
        && h.get(UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"h2c"))
    {
        h.remove(&HTTP2_SETTINGS);
    }
    if present & C != 0 {
        // Every `connection` line counts: a token on the second line is as hop-by-hop as one
        // on the first (RFC 9110 7.6.1), and Envoy strips both.
        remove_connection_tokens(h);
        h.remove(CONNECTION);
    }
    // Those `connection` named are gone already; a second removal finds nothing.
    for (bit, name) in [(KA, &KEEP_ALIVE), (PC, &PROXY_CONNECTION)] {
        if present & bit != 0 {
            h.remove(name);
        }
    }
    if present & TENC != 0 {
        h.remove(TRANSFER_ENCODING);
    }
    if present & U != 0 {
        h.remove(UPGRADE);
    }
    if present & T == 0 {
        return;
    }
    // Envoy keeps `te: trailers` when any element of any line is exactly `trailers` (case
    // and parameters count: `Trailers` or `trailers;q=1` is not it), and nothing else of TE.
    let trailers =
        h.get_all(TE).iter().flat_map(|v| v.as_bytes().split(|b| *b == b',')).any(|t| t.trim_ascii() == b"trailers");
    h.remove(TE);
    if trailers {
        h.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Removes the headers the `connection` lines name (but `te`, whose `trailers` may stay). By
/// `&str`: a `HeaderName` built from a token that is no standard header (`keep-alive`, in
/// nearly every HTTP/1 answer) is an allocation, and so was the list of them.
fn remove_connection_tokens(h: &mut HeaderMap) {
    // Copies of the lines (a shared buffer each, no bytes copied), so that the map can change
    // while their tokens are read; a list only when there is more than one line.
    let one;
    let several: Vec<HeaderValue>;
    let lines: &[HeaderValue] = {
        let mut all = h.get_all(CONNECTION).iter();
        match (all.next(), all.next()) {
            (None, _) => return,
            (Some(v), None) => {
                one = [v.clone()];
                &one
            }
            (Some(_), Some(_)) => {
                several = h.get_all(CONNECTION).iter().cloned().collect();
                &several
            }
        }
    };
    for v in lines {
        // Bytes, not str: a non-ASCII byte elsewhere in the line must not keep its tokens.
        for t in v.as_bytes().split(|b| *b == b',') {
            let Ok(name) = std::str::from_utf8(t.trim_ascii()) else { continue };
            if name.is_empty() || name.eq_ignore_ascii_case("te") || name.eq_ignore_ascii_case("connection") {
                continue;
            }
            // A look along the names rather than a removal that hashes one: the token names a
            // header that is not there in nearly every case (`keep-alive`).
            if h.keys().any(|k| k.as_str().eq_ignore_ascii_case(name)) {
                h.remove(name);
            }
        }
    }
}

/// A request with no body, sent to an HTTP/1 upstream: Envoy's codec writes
/// `content-length: 0` unless the method's requests have no body by definition, so an
/// upstream insisting on a length (411) takes it.
pub fn length_of_empty_body(method: &http::Method, h: &mut HeaderMap) {
    use http::Method;
    let bodiless =
        [Method::GET, Method::HEAD, Method::DELETE, Method::TRACE, Method::CONNECT].iter().any(|m| m == method);
    if !bodiless && !h.contains_key(http::header::CONTENT_LENGTH) && !h.contains_key(TRANSFER_ENCODING) {
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
}

/// Sets forwarding headers as Envoy's connection manager does and says whether the request
/// comes from an internal address (whose `x-envoy-*` headers are trusted).
pub fn mutate_forwarding(
    h: &mut HeaderMap,
    cfg: &HttpConnectionManager,
    remote: SocketAddr,
    local_ip: Option<IpAddr>,
    tls: Option<&crate::tls::Session>,
) -> bool {
    let internal = client_is_internal(h, cfg, remote);
    cfg.xfcc.apply(h, tls);
    let proto = HeaderValue::from_static(if tls.is_some() { "https" } else { "http" });
    if cfg.use_remote_address {
        if !cfg.skip_xff_append {
            // Envoy appends the machine's own address for loopback clients.
            let ip = if remote.ip().is_loopback() { local_ip.unwrap_or(remote.ip()) } else { remote.ip() };
            append_xff(h, ip);
        }
        h.insert(X_FORWARDED_PROTO.clone(), proto);
    } else if !has(h, &X_FORWARDED_PROTO) {
        h.insert(X_FORWARDED_PROTO.clone(), proto);
    }
    if !internal {
        // Envoy's internal-only headers: an external client may not steer retries, timeouts
        // or tracing through them. Other `x-envoy-*` headers pass, as through Envoy.
        remove_internal_headers(h, cfg.use_remote_address);
        if cfg.use_remote_address {
            if let Ok(v) = HeaderValue::from_str(&remote.ip().to_string()) {
                h.insert(X_ENVOY_EXTERNAL_ADDRESS.clone(), v);
            }
        }
    } else if cfg.use_remote_address {
        h.insert(X_ENVOY_INTERNAL.clone(), HeaderValue::from_static("true"));
    }
    let edge = cfg.use_remote_address && !internal;
    if cfg.generate_request_id && (!has(h, &X_REQUEST_ID) || (edge && !cfg.preserve_external_request_id)) {
        h.insert(X_REQUEST_ID.clone(), new_request_id());
    }
    internal
}

/// Whether the client is internal: its address (the peer's with `use_remote_address`, else
/// the trusted one in `x-forwarded-for`) is in `internal_address_config`.
pub fn client_is_internal(h: &HeaderMap, cfg: &HttpConnectionManager, remote: SocketAddr) -> bool {
    let trusted_client =
        if cfg.use_remote_address { Some(remote.ip()) } else { last_xff_address(h, cfg.xff_num_trusted_hops) };
    trusted_client.is_some_and(|ip| cfg.internal_cidrs.iter().any(|c| c.contains(ip)))
}

/// The downstream remote address as Envoy's connection manager sets it for filters: the peer
/// with `use_remote_address`, else the trusted `x-forwarded-for` entry when there is one.
pub fn trusted_remote(h: &HeaderMap, cfg: &HttpConnectionManager, remote: SocketAddr) -> IpAddr {
    if cfg.use_remote_address {
        return remote.ip();
    }
    last_xff_address(h, cfg.xff_num_trusted_hops).unwrap_or(remote.ip())
}

/// Removes `x-envoy-internal`, the [`EXTERNAL_STRIPPED`] headers and, at the edge, the
/// [`EDGE_STRIPPED`] ones. One pass over the names the request has: most requests carry no
/// `x-envoy-*` header, and a removal by a `&str` name parses and hashes it (19 of them were
/// 14% of the instructions of a proxied request).
/// `add_user_agent`, as Envoy's connection manager: the local node's cluster in
/// `x-envoy-downstream-service-cluster` (always) and in `user-agent` when the client sent
/// none or an empty one; its id in `x-envoy-downstream-service-node` when it has one.
pub fn add_user_agent(h: &mut HeaderMap, node: &crate::config::model::Node) {
    static CLUSTER: HeaderName = HeaderName::from_static("x-envoy-downstream-service-cluster");
    static NODE: HeaderName = HeaderName::from_static("x-envoy-downstream-service-node");
    let Ok(cluster) = HeaderValue::from_str(&node.cluster) else { return };
    if h.get(http::header::USER_AGENT).is_none_or(|v| v.is_empty()) {
        h.insert(http::header::USER_AGENT, cluster.clone());
    }
    h.insert(CLUSTER.clone(), cluster);
    if !node.id.is_empty() {
        if let Ok(id) = HeaderValue::from_str(&node.id) {
            h.insert(NODE.clone(), id);
        }
    }
}

fn remove_internal_headers(h: &mut HeaderMap, edge: bool) {
    let doomed = |name: &str| {
        name.starts_with("x-envoy-")
            && (name == X_ENVOY_INTERNAL.as_str()
                || EXTERNAL_STRIPPED.contains(&name)
                || (edge && EDGE_STRIPPED.contains(&name)))
    };
    // Allocates only when there is something to remove.
    let names: Vec<HeaderName> = h.keys().filter(|n| doomed(n.as_str())).cloned().collect();
    for name in names {
        h.remove(name);
    }
}

pub(super) fn append_xff(h: &mut HeaderMap, ip: IpAddr) {
    let ip = ip.to_string();
    let value = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => format!("{prev},{ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
}

/// `append_x_forwarded_host`: the host being rewritten goes at the end of
/// `x-forwarded-host` (`a,b`, as Envoy joins them).
pub fn append_forwarded_host(h: &mut HeaderMap, original: &HeaderValue) {
    let joined = match h.get(&X_FORWARDED_HOST) {
        Some(prev) if !prev.is_empty() => {
            HeaderValue::from_bytes(&[prev.as_bytes(), b",", original.as_bytes()].concat()).ok()
        }
        _ => Some(original.clone()),
    };
    if let Some(v) = joined {
        h.insert(X_FORWARDED_HOST.clone(), v);
    }
}

/// The client address per `x-forwarded-for` after skipping `trusted_hops` right-most entries.
fn last_xff_address(h: &HeaderMap, trusted_hops: u32) -> Option<IpAddr> {
    if !has(h, &X_FORWARDED_FOR) {
        return None;
    }
    let xff = h.get(&X_FORWARDED_FOR)?.to_str().ok()?;
    // From the right, without collecting the entries: this runs for every request.
    xff.rsplit(',').nth(trusted_hops as usize)?.trim().parse().ok()
}

/// A random UUID (version 4), as Envoy generates for `x-request-id`.
pub fn new_request_id() -> HeaderValue {
    use rand::RngCore;
    // Two words from the thread's generator: an array sampled whole would draw one word per
    // byte.
    let mut rng = rand::thread_rng();
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&rng.next_u64().to_ne_bytes());
    b[8..].copy_from_slice(&rng.next_u64().to_ne_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 36];
    let mut o = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        out[o] = HEX[usize::from(byte >> 4)];
        out[o + 1] = HEX[usize::from(byte & 0xf)];
        o += 2;
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_host_is_appended_to_x_forwarded_host() {
        let mut h = HeaderMap::new();
        append_forwarded_host(&mut h, &HeaderValue::from_static("orig.example"));
        assert_eq!(h.get(&X_FORWARDED_HOST).map(|v| v.as_bytes()), Some(&b"orig.example"[..]));
        append_forwarded_host(&mut h, &HeaderValue::from_static("b:99"));
        assert_eq!(h.get(&X_FORWARDED_HOST).map(|v| v.as_bytes()), Some(&b"orig.example,b:99"[..]));
    }

    #[test]
    fn request_id_is_a_v4_uuid() {
        let id = new_request_id();
        let s = id.to_str().unwrap_or_default();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert_ne!(new_request_id(), id);
    }

    #[test]
    fn internal_headers_go_and_other_x_envoy_headers_stay() {
        let mut h = HeaderMap::new();
        for name in ["x-envoy-internal", "x-envoy-retry-on", "x-envoy-max-retries", "x-envoy-original-path"] {
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("1"));
        }
        h.append("x-envoy-retry-on", HeaderValue::from_static("5xx"));
        h.insert("x-envoy-custom", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("1"));
        let mut edge = h.clone();
        remove_internal_headers(&mut h, false);
        let names = |h: &HeaderMap| {
            let mut v: Vec<String> = h.keys().map(|n| n.as_str().to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(names(&h), ["x-envoy-custom", "x-envoy-original-path", "x-other"]);
        remove_internal_headers(&mut edge, true);
        assert_eq!(names(&edge), ["x-envoy-custom", "x-other"]);
    }

    #[test]
    fn a_request_without_hop_by_hop_headers_is_left_alone() {
        let mut h = HeaderMap::new();
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert(http::header::HOST, HeaderValue::from_static("a"));
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
        h.insert(TE, HeaderValue::from_static("gzip, trailers"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get(TE).map(HeaderValue::as_bytes), Some(&b"trailers"[..]));
    }

    #[test]
    fn hop_by_hop_and_connection_tokens_go() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, x-foo"));
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-foo").is_none() && h.get("keep-alive").is_none() && h.get(CONNECTION).is_none());
        assert_eq!(h.get(TE).map(|v| v.as_bytes()), Some(&b"trailers"[..]));
        assert!(h.get("x-keep").is_some());
    }

    #[test]
    fn tokens_of_every_connection_line_go() {
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(CONNECTION, HeaderValue::from_static("x-second, x-third"));
        // A byte to_str refuses, beside a token that must still go.
        h.append(CONNECTION, HeaderValue::from_bytes(b"x-fourth, \x89").expect("obs-text is a valid value"));
        h.insert("x-second", HeaderValue::from_static("1"));
        h.insert("x-third", HeaderValue::from_static("1"));
        h.insert("x-fourth", HeaderValue::from_static("1"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-second").is_none() && h.get("x-third").is_none() && h.get("x-fourth").is_none());
        assert!(h.get(CONNECTION).is_none() && h.get("x-keep").is_some());
    }

    #[test]
    fn connection_tokens_are_matched_without_case_and_te_stays() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("Keep-Alive, X-Foo, TE, Connection, bad name"));
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["te", "x-keep"]);
    }

    #[test]
    fn xff_entry_is_counted_from_the_right() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1, 10.0.0.2 ,10.0.0.3"));
        assert_eq!(last_xff_address(&h, 0), "10.0.0.3".parse().ok());
        assert_eq!(last_xff_address(&h, 1), "10.0.0.2".parse().ok());
        assert_eq!(last_xff_address(&h, 2), "10.0.0.1".parse().ok());
        assert_eq!(last_xff_address(&h, 3), None);
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1,junk"));
        assert_eq!(last_xff_address(&h, 0), None);
        assert_eq!(last_xff_address(&HeaderMap::new(), 0), None);
    }

    #[test]
    fn te_keeps_trailers_from_any_line_only() {
        let te = |lines: &[&'static str]| {
            let mut h = HeaderMap::new();
            for l in lines {
                h.append(TE, HeaderValue::from_static(l));
            }
            strip_hop_by_hop(&mut h);
            h.get_all(TE).iter().map(|v| v.to_str().unwrap_or("?").to_string()).collect::<Vec<_>>()
        };
        assert_eq!(te(&["gzip", "trailers"]), ["trailers"]);
        assert_eq!(te(&["trailers", "trailers"]), ["trailers"]);
        assert_eq!(te(&["gzip;q=1, trailers"]), ["trailers"]);
        assert!(te(&["Trailers"]).is_empty() && te(&["trailers;q=1"]).is_empty() && te(&["gzip"]).is_empty());
    }

    #[test]
    fn h2c_settings_go_with_an_h2c_upgrade_only() {
        let run = |connection: Option<&'static str>| {
            let mut h = HeaderMap::new();
            if let Some(c) = connection {
                h.insert(CONNECTION, HeaderValue::from_static(c));
            }
            h.insert(UPGRADE, HeaderValue::from_static("h2c"));
            h.insert(&HTTP2_SETTINGS, HeaderValue::from_static("AAMAAABkAARAAAAA"));
            strip_hop_by_hop(&mut h);
            h.contains_key(&HTTP2_SETTINGS)
        };
        assert!(!run(Some("Upgrade")));
        assert!(run(None));
    }

    #[test]
    fn only_expect_100_continue_is_removed() {
        let mut h = HeaderMap::new();
        h.insert(EXPECT, HeaderValue::from_static("100-Continue"));
        strip_expect_continue(&mut h);
        assert!(h.get(EXPECT).is_none());
        h.insert(EXPECT, HeaderValue::from_static("foo"));
        strip_expect_continue(&mut h);
        assert_eq!(h.get(EXPECT).map(|v| v.as_bytes()), Some(&b"foo"[..]));
    }

    #[test]
    fn empty_bodies_get_a_length_unless_the_method_has_none() {
        for (m, want) in [(http::Method::POST, true), (http::Method::OPTIONS, true), (http::Method::GET, false)] {
            let mut h = HeaderMap::new();
            length_of_empty_body(&m, &mut h);
            assert_eq!(h.contains_key(http::header::CONTENT_LENGTH), want, "{m}");
        }
    }
}
