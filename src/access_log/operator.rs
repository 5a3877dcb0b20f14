//! Envoy's command operators: built from `NAME(ARG):N` once, evaluated per line to a [`Value`].
//!
//! A value stays typed (number, address, text, missing) until a format decides how to print it:
//! text formats print a missing value as `-`, typed JSON prints it as `null` and numbers bare.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use http::HeaderName;

use super::context::LogContext;
use super::start_time::TimeFormat;

/// One compiled command operator.
#[derive(Debug, Clone)]
pub(crate) enum Operator {
    StartTime(TimeFormat),
    Request(HeaderLookup),
    Response(HeaderLookup),
    Trailer(HeaderLookup),
    Protocol,
    ResponseCode,
    ResponseCodeDetails,
    ResponseFlags,
    BytesReceived,
    BytesSent,
    Duration,
    RequestDuration,
    ResponseDuration,
    UpstreamHost,
    UpstreamHostWithoutPort,
    UpstreamCluster,
    UpstreamLocalAddress,
    UpstreamTransportFailureReason,
    UpstreamRequestAttemptCount,
    DownstreamRemoteAddress,
    DownstreamRemoteAddressWithoutPort,
    DownstreamLocalAddress,
    DownstreamLocalAddressWithoutPort,
    RouteName,
    Hostname,
    DownstreamTlsVersion,
    DownstreamTlsCipher,
    RequestedServerName,
    DownstreamPeerSubject,
    DownstreamPeerUriSan,
    DownstreamPeerSerial,
    DownstreamPeerFingerprint256,
    /// `LOCAL_REPLY_BODY`: a direct response's body under its `body_format`.
    LocalReplyBody,
    /// `DYNAMIC_METADATA(NAMESPACE[:KEY]):Z`
    DynamicMetadata {
        namespace: String,
        key: Option<String>,
        max_len: Option<usize>,
    },
}

/// `X?Y` of `REQ`/`RESP`/`TRAILER`: a header, an optional fallback, an optional max length.
#[derive(Debug, Clone)]
pub(crate) struct HeaderLookup {
    main: HeaderRef,
    fallback: Option<HeaderRef>,
    max_len: Option<usize>,
}

/// Which header map a lookup reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
    Trailer,
}

/// A header name, or a pseudo-header answered from the context.
#[derive(Debug, Clone)]
enum HeaderRef {
    Named(HeaderName),
    Method,
    Path,
    Authority,
    Scheme,
    Status,
    /// A pseudo-header we never have; always missing (Envoy accepts it too).
    OtherPseudo,
}

/// An operator's result for one line.
#[derive(Debug)]
pub(crate) enum Value<'a> {
    Missing,
    Text(Cow<'a, str>),
    Number(u64),
    Addr(SocketAddr),
    Ip(IpAddr),
    Time(&'a TimeFormat, std::time::SystemTime),
}

impl Value<'_> {
    /// Appends the text form; a missing value is `-`.
    pub(crate) fn write_text(&self, out: &mut String) {
        match self {
            Value::Missing => out.push('-'),
            Value::Text(text) => out.push_str(text),
            Value::Number(n) => push_u64(*n, out),
            // IPv4 by hand: the formatter machinery is most of a line's cost otherwise.
            Value::Addr(SocketAddr::V4(addr)) => {
                push_ipv4(*addr.ip(), out);
                out.push(':');
                push_u64(u64::from(addr.port()), out);
            }
            Value::Ip(IpAddr::V4(ip)) => push_ipv4(*ip, out),
            Value::Addr(addr) => {
                let _ = write!(out, "{addr}");
            }
            Value::Ip(ip) => {
                let _ = write!(out, "{ip}");
            }
            Value::Time(format, time) => format.render(*time, out),
        }
    }
}

impl Operator {
    /// Builds the operator `name(arg):max_len`; errors name the operator.
    pub(crate) fn build(name: &str, arg: Option<&str>, max_len: Option<usize>) -> Result<Self, String> {
        if name == "DYNAMIC_METADATA" {
            let arg = arg.filter(|a| !a.is_empty()).ok_or("DYNAMIC_METADATA requires a namespace")?;
            let (namespace, key) = match arg.split_once(':') {
                Some((_, k)) if k.contains(':') => {
                    return Err(format!("DYNAMIC_METADATA({arg}): nested keys are not supported"))
                }
                Some((n, k)) => (n.to_string(), Some(k.to_string())),
                None => (arg.to_string(), None),
            };
            return Ok(Operator::DynamicMetadata { namespace, key, max_len });
        }
        let needs_arg = matches!(name, "REQ" | "RESP" | "TRAILER");
        if arg.is_some() && !needs_arg && name != "START_TIME" {
            return Err(format!("command operator {name} takes no argument"));
        }
        if needs_arg {
            let lookup = HeaderLookup::parse(name, arg.unwrap_or_default(), max_len)?;
            return Ok(match name {
                "REQ" => Operator::Request(lookup),
                "RESP" => Operator::Response(lookup),
                _ => Operator::Trailer(lookup),
            });
        }
        Ok(match name {
            "START_TIME" => match arg {
                Some(spec) => Operator::StartTime(TimeFormat::parse(spec)?),
                None => Operator::StartTime(TimeFormat::envoy_default()),
            },
            "PROTOCOL" => Operator::Protocol,
            "RESPONSE_CODE" => Operator::ResponseCode,
            "RESPONSE_CODE_DETAILS" => Operator::ResponseCodeDetails,
            "LOCAL_REPLY_BODY" => Operator::LocalReplyBody,
            "RESPONSE_FLAGS" => Operator::ResponseFlags,
            "BYTES_RECEIVED" => Operator::BytesReceived,
            "BYTES_SENT" => Operator::BytesSent,
            "DURATION" => Operator::Duration,
            "REQUEST_DURATION" => Operator::RequestDuration,
            "RESPONSE_DURATION" => Operator::ResponseDuration,
            // Envoy's `UPSTREAM_REMOTE_ADDRESS` is the host's address, as `UPSTREAM_HOST` here.
            "UPSTREAM_HOST" | "UPSTREAM_REMOTE_ADDRESS" => Operator::UpstreamHost,
            "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Operator::UpstreamHostWithoutPort,
            "UPSTREAM_CLUSTER" => Operator::UpstreamCluster,
            "UPSTREAM_LOCAL_ADDRESS" => Operator::UpstreamLocalAddress,
            "UPSTREAM_TRANSPORT_FAILURE_REASON" => Operator::UpstreamTransportFailureReason,
            "UPSTREAM_REQUEST_ATTEMPT_COUNT" => Operator::UpstreamRequestAttemptCount,
            "DOWNSTREAM_REMOTE_ADDRESS" => Operator::DownstreamRemoteAddress,
            "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Operator::DownstreamRemoteAddressWithoutPort,
            "DOWNSTREAM_LOCAL_ADDRESS" => Operator::DownstreamLocalAddress,
            "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => Operator::DownstreamLocalAddressWithoutPort,
            "DOWNSTREAM_TLS_VERSION" => Operator::DownstreamTlsVersion,
            "DOWNSTREAM_TLS_CIPHER" => Operator::DownstreamTlsCipher,
            "REQUESTED_SERVER_NAME" => Operator::RequestedServerName,
            "DOWNSTREAM_PEER_SUBJECT" => Operator::DownstreamPeerSubject,
            "DOWNSTREAM_PEER_URI_SAN" => Operator::DownstreamPeerUriSan,
            "DOWNSTREAM_PEER_SERIAL" => Operator::DownstreamPeerSerial,
            "DOWNSTREAM_PEER_FINGERPRINT_256" => Operator::DownstreamPeerFingerprint256,
            "ROUTE_NAME" => Operator::RouteName,
            "HOSTNAME" => Operator::Hostname,
            _ => return Err(format!("unknown command operator {name}")),
        })
    }

    /// Adds the response headers this operator reads (`%RESP(...)%`) to `names`.
    pub(crate) fn response_headers(&self, names: &mut Vec<HeaderName>) {
        let Operator::Response(lookup) = self else { return };
        for header in std::iter::once(&lookup.main).chain(&lookup.fallback) {
            if let HeaderRef::Named(name) = header {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
    }

    /// Evaluates the operator against one request.
    pub(crate) fn eval<'a>(&'a self, ctx: &LogContext<'a>) -> Value<'a> {
        match self {
            Operator::StartTime(format) => Value::Time(format, ctx.start),
            Operator::Request(lookup) => lookup.find(ctx, Side::Request),
            Operator::Response(lookup) => lookup.find(ctx, Side::Response),
            Operator::Trailer(lookup) => lookup.find(ctx, Side::Trailer),
            Operator::Protocol => text(ctx.protocol.map(protocol_name)),
            Operator::ResponseCode => Value::Number(ctx.response_code.map_or(0, u64::from)),
            Operator::ResponseCodeDetails => text(ctx.response_code_details),
            // Envoy renders an empty body as nothing, not `-`.
            Operator::LocalReplyBody => Value::Text(Cow::Borrowed(ctx.local_reply_body.unwrap_or(""))),
            Operator::ResponseFlags => match ctx.response_flags {
                "" => Value::Text(Cow::Borrowed("-")),
                flags => Value::Text(Cow::Borrowed(flags)),
            },
            Operator::BytesReceived => Value::Number(ctx.bytes_received),
            Operator::BytesSent => Value::Number(ctx.bytes_sent),
            Operator::Duration => millis(ctx.duration),
            Operator::RequestDuration => millis(ctx.request_duration),
            Operator::ResponseDuration => millis(ctx.response_duration),
            Operator::UpstreamHost => ctx.upstream_host.map_or(Value::Missing, Value::Addr),
            Operator::UpstreamHostWithoutPort => ctx.upstream_host.map_or(Value::Missing, |a| Value::Ip(a.ip())),
            Operator::UpstreamCluster => text(ctx.upstream_cluster),
            Operator::UpstreamLocalAddress => ctx.upstream_local_address.map_or(Value::Missing, Value::Addr),
            Operator::UpstreamTransportFailureReason => text(ctx.upstream_transport_failure_reason),
            Operator::UpstreamRequestAttemptCount => Value::Number(u64::from(ctx.upstream_request_attempt_count)),
            Operator::DownstreamRemoteAddress => Value::Addr(ctx.downstream_remote),
            Operator::DownstreamRemoteAddressWithoutPort => Value::Ip(ctx.downstream_remote.ip()),
            Operator::DownstreamLocalAddress => Value::Addr(ctx.downstream_local),
            Operator::DownstreamLocalAddressWithoutPort => Value::Ip(ctx.downstream_local.ip()),
            Operator::RouteName => text(ctx.route_name),
            Operator::DynamicMetadata { namespace, key, max_len } => {
                match ctx.dynamic_metadata.and_then(|m| m.render(namespace, key.as_deref())) {
                    Some(v) => Value::Text(truncate(Cow::Owned(v), *max_len)),
                    None => Value::Missing,
                }
            }
            Operator::Hostname => text(Some(hostname())),
            Operator::DownstreamTlsVersion => text(ctx.tls.map(|t| t.version)),
            Operator::DownstreamTlsCipher => text(ctx.tls.map(|t| t.cipher)),
            Operator::RequestedServerName => text(ctx.tls.and_then(|t| t.server_name.as_deref())),
            Operator::DownstreamPeerSubject => text(ctx.tls.and_then(|t| Some(t.peer.as_ref()?.info.subject.as_str()))),
            Operator::DownstreamPeerUriSan => match ctx.tls.and_then(|t| t.peer.as_ref()).map(|p| p.info.uri_sans()) {
                Some(uris) if !uris.is_empty() => Value::Text(Cow::Owned(uris.join(","))),
                _ => Value::Missing,
            },
            Operator::DownstreamPeerSerial => {
                text(ctx.tls.and_then(|t| Some(t.peer.as_ref()?.info.serial_number.as_str())))
            }
            Operator::DownstreamPeerFingerprint256 => {
                text(ctx.tls.and_then(|t| Some(t.peer.as_ref()?.sha256.as_str())))
            }
        }
    }
}

impl HeaderLookup {
    /// Parses `X` or `X?Y` (case-insensitive) for the operator `op`.
    fn parse(op: &str, arg: &str, max_len: Option<usize>) -> Result<Self, String> {
        let mut names = arg.split('?');
        let main = names.next().unwrap_or_default();
        let fallback = names.next();
        if names.next().is_some() {
            return Err(format!("{op}({arg}): more than one '?' alternative"));
        }
        let main = HeaderRef::parse(op, main)?;
        let fallback = fallback.map(|name| HeaderRef::parse(op, name)).transpose()?;
        Ok(HeaderLookup { main, fallback, max_len })
    }

    fn find<'a>(&self, ctx: &LogContext<'a>, side: Side) -> Value<'a> {
        let found = self.main.find(ctx, side);
        let found = match (found, &self.fallback) {
            (None, Some(fallback)) => fallback.find(ctx, side),
            (found, _) => found,
        };
        match found {
            None => Value::Missing,
            Some(value) => Value::Text(truncate(value, self.max_len)),
        }
    }
}

impl HeaderRef {
    fn parse(op: &str, name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err(format!("{op}() needs a header name"));
        }
        let lower = name.to_ascii_lowercase();
        Ok(match lower.as_str() {
            ":method" => HeaderRef::Method,
            ":path" => HeaderRef::Path,
            ":authority" => HeaderRef::Authority,
            ":scheme" => HeaderRef::Scheme,
            ":status" => HeaderRef::Status,
            pseudo if pseudo.starts_with(':') => HeaderRef::OtherPseudo,
            _ => HeaderRef::Named(
                HeaderName::from_bytes(lower.as_bytes())
                    .map_err(|_| format!("{op}({name}): invalid header name \"{name}\""))?,
            ),
        })
    }

    /// Pseudo-headers of the request come from the context; `:status` from the response code.
    fn find<'a>(&self, ctx: &LogContext<'a>, side: Side) -> Option<Cow<'a, str>> {
        let pseudo = |value: &'a str| (side == Side::Request && !value.is_empty()).then_some(Cow::Borrowed(value));
        match self {
            HeaderRef::Named(name) => {
                let headers = match side {
                    Side::Request => Some(ctx.request_headers),
                    Side::Response => ctx.response_headers,
                    Side::Trailer => ctx.response_trailers,
                };
                let bytes = headers?.get(name)?.as_bytes();
                // Valid UTF-8 is the rule; checking that first is cheaper than the lossy scan.
                Some(match std::str::from_utf8(bytes) {
                    Ok(text) => Cow::Borrowed(text),
                    Err(_) => String::from_utf8_lossy(bytes),
                })
            }
            HeaderRef::Method => pseudo(ctx.method),
            HeaderRef::Path => pseudo(ctx.path),
            HeaderRef::Authority => pseudo(ctx.authority),
            HeaderRef::Scheme => pseudo(ctx.scheme),
            HeaderRef::Status => match (side, ctx.response_headers, ctx.response_code) {
                (Side::Response, Some(_), Some(code)) => Some(Cow::Owned(code.to_string())),
                _ => None,
            },
            HeaderRef::OtherPseudo => None,
        }
    }
}

/// Appends `n` in decimal.
fn push_u64(mut n: u64, out: &mut String) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or_default());
}

fn push_ipv4(ip: std::net::Ipv4Addr, out: &mut String) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_u64(u64::from(octet), out);
    }
}

/// Envoy's spelling of the protocol.
fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn text(value: Option<&str>) -> Value<'_> {
    match value {
        Some(value) if !value.is_empty() => Value::Text(Cow::Borrowed(value)),
        _ => Value::Missing,
    }
}

fn millis(duration: Option<Duration>) -> Value<'static> {
    match duration {
        Some(d) => Value::Number(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => Value::Missing,
    }
}

/// Cuts `value` to at most `max_len` bytes, backing off to a character boundary.
fn truncate(value: Cow<'_, str>, max_len: Option<usize>) -> Cow<'_, str> {
    let Some(max) = max_len.filter(|max| *max < value.len()) else {
        return value;
    };
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    match value {
        Cow::Borrowed(text) => Cow::Borrowed(&text[..end]),
        Cow::Owned(mut text) => {
            text.truncate(end);
            Cow::Owned(text)
        }
    }
}

/// The machine's host name, read once (`%HOSTNAME%`).
fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .map(|name| name.trim().to_string())
            .find(|name| !name.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default()
    })
}
