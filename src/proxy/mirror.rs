//! `request_mirror_policies` (Envoy's shadowing): a copy of the forwarded request, body
//! included, sent to each mirror cluster the policies choose, fire and forget. The copy is
//! what Envoy's async client sends: the upstream request's headers, `Host` with a `-shadow`
//! suffix on its name (unless `disable_shadow_host_suffix_append`), `x-envoy-internal: true`
//! and this machine's address appended to `x-forwarded-for`. Its answer is read and thrown
//! away; whatever happens to it is counted on the mirror cluster only.
//!
//! Bounded: a copy lives at most the route timeout (Envoy's shadow timeout; [`UNTIMED`] when
//! the route has none), counts against the mirror cluster's circuit breakers like any
//! request (so at most `max_requests` copies are in flight per mirror cluster), and holds at
//! most the listener's buffer limit of body: a longer streamed body is not mirrored, the
//! retry buffer having given it up (`retry_or_shadow_abandoned`). A streamed body is sent
//! once the client has sent it whole, when the main upstream has answered, framed as the
//! original was (Envoy streams the copy): its `content-length` if it had one, else chunked
//! over HTTP/1.1, and its trailers after it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::BodyExt;

use super::forward::{self, AttemptTemplate, BodySource};
use super::headers;
use crate::body::ReqBody;
use crate::routing::{MirrorRt, MirrorTarget};
use crate::upstream::Cluster;

/// How long a copy may live when its route has no timeout (`timeout: 0s`).
pub const UNTIMED: Duration = Duration::from_secs(300);

/// The mirrors chosen for one request.
pub(super) struct Shadows {
    list: Vec<Shadow>,
    local_ip: Option<IpAddr>,
}

struct Shadow {
    cluster: Arc<Cluster>,
    keep_host: bool,
    /// `host_rewrite_literal`
    host: Option<HeaderValue>,
}

impl Shadows {
    /// The mirror clusters this request goes to: each policy's fraction rolled, a
    /// `cluster_header` looked up (a missing header or unknown cluster mirrors nothing, as
    /// in Envoy). `None` when there are none.
    pub fn choose(
        mirrors: &[MirrorRt],
        headers: &HeaderMap,
        clusters: &HashMap<String, Arc<Cluster>>,
        local_ip: Option<IpAddr>,
        rt: &crate::runtime::Runtime,
    ) -> Option<Self> {
        let list: Vec<Shadow> = mirrors
            .iter()
            .filter(|m| m.fraction.enabled(rt))
            .filter_map(|m| {
                let cluster = match &m.target {
                    MirrorTarget::Cluster(c) => c.cluster.clone(),
                    MirrorTarget::Header(h) => {
                        headers.get(h).and_then(|v| v.to_str().ok()).and_then(|n| clusters.get(n)).cloned()
                    }
                }?;
                Some(Shadow { cluster, keep_host: m.keep_host, host: m.host_rewrite.clone() })
            })
            .collect();
        (!list.is_empty()).then_some(Shadows { list, local_ip })
    }

    /// Sends the copies of `main` (the upstream request) with this body; returns at once.
    pub fn spawn(self, main: &AttemptTemplate, body: MirrorBody, timeout: Option<Duration>) {
        let timeout = timeout.unwrap_or(UNTIMED);
        for shadow in self.list {
            let mut template = copy(main, shadow.keep_host, self.local_ip);
            if let Some(host) = shadow.host {
                // Envoy sets the literal as is: no `-shadow` suffix.
                template.authority = host;
            }
            let body = body.clone();
            tokio::spawn(async move {
                let cluster = shadow.cluster;
                // The attempt's own timer ends it first; this bounds reading the answer.
                let _ = tokio::time::timeout(timeout, send(&cluster, &mut template, body, timeout)).await;
            });
        }
    }
}

/// The body a copy carries.
#[derive(Clone)]
pub(super) enum MirrorBody {
    /// Whole before the request was forwarded: sent as the main request's was, its length known.
    Whole(Option<Bytes>),
    /// Recorded as it streamed to the main upstream: its data and trailers, its length not
    /// announced by the body (the headers' `content-length`, if any, frames it).
    Streamed(Bytes, Option<HeaderMap>),
}

impl MirrorBody {
    fn source(self) -> BodySource {
        match self {
            MirrorBody::Whole(b) => BodySource::Replayable(b.filter(|b| !b.is_empty())),
            MirrorBody::Streamed(data, trailers) => {
                let frames: std::collections::VecDeque<Frame<Bytes>> = (!data.is_empty())
                    .then(|| Frame::data(data))
                    .into_iter()
                    .chain(trailers.map(Frame::trailers))
                    .collect();
                BodySource::Stream(Some(ReqBody::Frames(Box::new(frames))))
            }
        }
    }
}

async fn send(cluster: &Arc<Cluster>, template: &mut AttemptTemplate, body: MirrorBody, timeout: Duration) {
    let body = body.source();
    match forward::forward(cluster, template, body, Some(timeout), None, None, &[]).await {
        Ok(out) => {
            // Read to its end so that the connection can serve again; bounded by the caller.
            let mut body = out.response.into_body();
            while let Some(Ok(_)) = body.frame().await {}
            cluster.stats.upstream_rq_time.record_duration(out.sent.elapsed());
        }
        Err(f) => {
            if !f.reason.client_at_fault() {
                cluster.stats.charge(f.reason.status_and_body().0.as_u16(), template.internal);
            }
            tracing::debug!(cluster.name = %cluster.name(), "mirrored request failed");
        }
    }
}

/// The copy of the upstream request a mirror gets.
fn copy(main: &AttemptTemplate, keep_host: bool, local_ip: Option<IpAddr>) -> AttemptTemplate {
    let mut h = main.headers.clone();
    h.insert(headers::X_ENVOY_INTERNAL.clone(), HeaderValue::from_static("true"));
    if let Some(ip) = local_ip {
        headers::append_xff(&mut h, ip);
    }
    AttemptTemplate {
        method: main.method.clone(),
        path: main.path.clone(),
        target: main.target.clone(),
        authority: if keep_host { main.authority.clone() } else { shadow_host(&main.authority) },
        headers: h,
        set_attempt_count: false,
        auto_host_rewrite: false,
        append_xfh: false,
        internal: true,
        // Envoy sends the copy through its async client, whose route has no hash policy.
        lb_hash: None,
        headers_read_after: false,
    }
}

/// `host-shadow`, the port kept after it: `a.example:8080` becomes `a.example-shadow:8080`.
fn shadow_host(authority: &HeaderValue) -> HeaderValue {
    let Ok(host) = authority.to_str() else {
        return authority.clone();
    };
    let (name, port) = match host.rfind(':') {
        Some(colon) if host.rfind(']').is_none_or(|end| end < colon) => host.split_at(colon),
        _ => (host, ""),
    };
    HeaderValue::from_str(&format!("{name}-shadow{port}")).unwrap_or_else(|_| authority.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &'static str) -> String {
        shadow_host(&HeaderValue::from_static(s)).to_str().unwrap_or_default().to_string()
    }

    #[test]
    fn the_shadow_suffix_goes_on_the_name_before_the_port() {
        assert_eq!(host("foo.example:8080"), "foo.example-shadow:8080");
        assert_eq!(host("foo.example"), "foo.example-shadow");
        assert_eq!(host("127.0.0.1:10000"), "127.0.0.1-shadow:10000");
        assert_eq!(host("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(host("[::1]"), "[::1]-shadow");
    }

    #[test]
    fn fractions_follow_their_runtime_key_or_default_value() {
        use crate::config::filters::Fraction;
        use crate::runtime::{FractionKey, Runtime, RuntimeLayer};
        let rt = Runtime::new(&[("s".into(), RuntimeLayer::Static(vec![("m.pct".into(), "0".into())]))], "");
        assert!(FractionKey::ALL.enabled(&rt));
        assert!(!FractionKey::NONE.enabled(&rt));
        let keyed = FractionKey { runtime_key: Some("m.pct".into()), ..FractionKey::ALL };
        assert!(!keyed.enabled(&rt), "the runtime's 0% over the default 100%");
        let half = FractionKey::fixed(Fraction { numerator: 5_000, denominator: 10_000 });
        let hits = (0..10_000).filter(|_| half.enabled(&rt)).count();
        assert!((4_000..6_000).contains(&hits), "{hits}");
    }

    #[test]
    fn the_copy_is_internal_and_names_this_machine() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let main = AttemptTemplate {
            method: http::Method::POST,
            path: "/a".into(),
            target: None,
            authority: HeaderValue::from_static("svc:80"),
            headers: h,
            set_attempt_count: true,
            auto_host_rewrite: true,
            append_xfh: false,
            internal: false,
            lb_hash: Some(7),
            headers_read_after: false,
        };
        let c = copy(&main, false, Some([192, 0, 2, 2].into()));
        assert_eq!(c.authority, "svc-shadow:80");
        assert_eq!(c.lb_hash, None, "the mirror cluster has no hash policy");
        assert_eq!(c.headers.get("x-envoy-internal").map(|v| v.as_bytes()), Some(&b"true"[..]));
        assert_eq!(c.headers.get("x-forwarded-for").map(|v| v.as_bytes()), Some(&b"10.0.0.1,192.0.2.2"[..]));
        assert!(c.internal && !c.auto_host_rewrite && !c.set_attempt_count);
        assert_eq!(copy(&main, true, None).authority, "svc:80");
    }
}
