//! The headers Envoy adds, removes and trusts on the way up and down: hop-by-hop headers,
//! `x-forwarded-for`/`-proto`, `x-request-id`, internal `x-envoy-*` headers.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, TE, TRANSFER_ENCODING, UPGRADE};

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
pub static X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers, including those the `connection` header names.
/// `te: trailers` stays, as in Envoy (gRPC needs it).
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Every `connection` line counts: a token on the second line is as hop-by-hop as one on
    // the first (RFC 9110 7.6.1), and Envoy strips both.
    // Bytes, not str: a non-ASCII byte elsewhere in the line must not keep its tokens.
    let named: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
        .filter(|n| n != TE)
        .collect();
    for n in named {
        h.remove(n);
    }
    h.remove(CONNECTION);
    h.remove(&KEEP_ALIVE);
    h.remove(&PROXY_CONNECTION);
    h.remove(TRANSFER_ENCODING);
    h.remove(UPGRADE);
    if let Some(te) = h.get(TE) {
        if !te.as_bytes().eq_ignore_ascii_case(b"trailers") {
            h.remove(TE);
        }
    }
}

/// Sets forwarding headers as Envoy's connection manager does and says whether the request
/// comes from an internal address (whose `x-envoy-*` headers are trusted).
pub fn mutate_forwarding(
    h: &mut HeaderMap,
    cfg: &HttpConnectionManager,
    remote: SocketAddr,
    local_ip: Option<IpAddr>,
) -> bool {
    let internal = client_is_internal(h, cfg, remote);
    if cfg.use_remote_address {
        if !cfg.skip_xff_append {
            // Envoy appends the machine's own address for loopback clients.
            let ip = if remote.ip().is_loopback() { local_ip.unwrap_or(remote.ip()) } else { remote.ip() };
            append_xff(h, ip);
        }
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    } else if !h.contains_key(&X_FORWARDED_PROTO) {
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !internal {
        // Envoy's internal-only headers: an external client may not steer retries, timeouts
        // or routing through them.
        let envoy: Vec<HeaderName> = h.keys().filter(|k| k.as_str().starts_with("x-envoy-")).cloned().collect();
        for k in envoy {
            h.remove(k);
        }
        if cfg.use_remote_address {
            if let Ok(v) = HeaderValue::from_str(&remote.ip().to_string()) {
                h.insert(X_ENVOY_EXTERNAL_ADDRESS.clone(), v);
            }
        }
    } else if cfg.use_remote_address {
        h.insert(X_ENVOY_INTERNAL.clone(), HeaderValue::from_static("true"));
    }
    let edge = cfg.use_remote_address && !internal;
    if cfg.generate_request_id && (!h.contains_key(&X_REQUEST_ID) || (edge && !cfg.preserve_external_request_id)) {
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

fn append_xff(h: &mut HeaderMap, ip: IpAddr) {
    let ip = ip.to_string();
    let value = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => format!("{prev},{ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
}

/// The client address per `x-forwarded-for` after skipping `trusted_hops` right-most entries.
fn last_xff_address(h: &HeaderMap, trusted_hops: u32) -> Option<IpAddr> {
    let xff = h.get(&X_FORWARDED_FOR)?.to_str().ok()?;
    let entries: Vec<&str> = xff.split(',').map(str::trim).collect();
    let idx = entries.len().checked_sub(1 + trusted_hops as usize)?;
    entries.get(idx)?.parse().ok()
}

/// A random UUID (version 4), as Envoy generates for `x-request-id`.
pub fn new_request_id() -> HeaderValue {
    let mut b: [u8; 16] = rand::random();
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
    fn request_id_is_a_v4_uuid() {
        let id = new_request_id();
        let s = id.to_str().unwrap_or_default();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert_ne!(new_request_id(), id);
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
}
