//! A route's limits on how long a stream may last, as Envoy computes them: the route's
//! `max_stream_duration` (Envoy's "new timeouts": counted from the stream's start, the route's
//! `timeout` then unused), which a `grpc-timeout` request header replaces when
//! `grpc_timeout_header_max` is set; and the deprecated `max_grpc_timeout` /
//! `grpc_timeout_offset`, under which a gRPC request's `grpc-timeout` sets the route timeout.
//! In both the header's timeout is capped by the maximum (0: uncapped) and shortened by the
//! offset, and a gRPC upstream gets the `grpc-timeout` the proxy works under. [`within`] is
//! the wait; its expiry is Envoy's `downstream_rq_max_duration_reached`.

use std::future::Future;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::request_controls::{self, Effective};
use crate::config::model::{LegacyGrpcTimeout, StreamDuration};
use crate::routing::ForwardRt;

pub static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Envoy's largest `grpc-timeout` value: eight digits.
const MAX_VALUE: u64 = 99_999_999;

/// The request's `grpc-timeout` (`<at most 8 digits><H|M|S|m|u|n>`), rounded up to whole
/// milliseconds as Envoy reads it; `None` when absent or malformed.
pub fn header_timeout(h: &HeaderMap) -> Option<Duration> {
    let v = std::str::from_utf8(h.get(&GRPC_TIMEOUT)?.as_bytes()).ok()?;
    let unit = *v.as_bytes().last()?;
    let n: u64 = v[..v.len() - 1].trim().parse().ok()?;
    if n > MAX_VALUE {
        return None;
    }
    let d = match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_millis(n.div_ceil(1_000)),
        b'n' => Duration::from_millis(n.div_ceil(1_000_000)),
        _ => return None,
    };
    Some(d)
}

/// Envoy's `grpc-timeout` for a timeout: milliseconds, or a larger unit past eight digits.
pub fn header_value(d: Duration) -> HeaderValue {
    let mut n = d.as_millis().min(u128::from(u64::MAX)) as u64;
    let mut unit = "m";
    if n > MAX_VALUE {
        n /= 1000;
        unit = "S";
        // Bounded: seconds, minutes, hours.
        for next in ["M", "H"] {
            if n <= MAX_VALUE {
                break;
            }
            n /= 60;
            unit = next;
        }
        n = n.min(MAX_VALUE);
    }
    HeaderValue::from_str(&format!("{n}{unit}")).unwrap_or_else(|_| HeaderValue::from_static("0m"))
}

/// How long the stream may last under `max_stream_duration`: the header's timeout when
/// `grpc_timeout_header_max` is set (capped by it unless 0, less the offset, down to 0),
/// else the configured maximum; `None`: no limit.
pub fn stream_limit(sd: &StreamDuration, header: Option<Duration>) -> Option<Duration> {
    let (Some(mut t), Some(max)) = (header, sd.header_max) else {
        return sd.max;
    };
    if !max.is_zero() && t > max {
        t = max;
    }
    if let (false, Some(offset)) = (t.is_zero(), sd.header_offset) {
        t = t.saturating_sub(offset);
    }
    Some(t)
}

/// The route timeout of a gRPC request under `max_grpc_timeout`: the header's timeout less
/// the offset (when that leaves some), capped by the maximum unless it is 0; no header is
/// an infinite timeout, as is a 0 result (`None`).
pub fn legacy_timeout(l: &LegacyGrpcTimeout, header: Option<Duration>) -> Option<Duration> {
    let mut t = header.unwrap_or(Duration::ZERO);
    if let Some(offset) = l.offset.filter(|o| *o < t) {
        t -= offset;
    }
    if !l.max.is_zero() && (t.is_zero() || t > l.max) {
        t = l.max;
    }
    (!t.is_zero()).then_some(t)
}

/// The route's timeout and retry policy for one request, as Envoy's router and connection
/// manager settle them: the gRPC timeouts, then the request's control headers (which are
/// removed); `x-envoy-expected-rq-timeout-ms` and a gRPC request's `grpc-timeout` are set for
/// the upstream. `started`: when the stream started.
pub(super) fn route_limits<'a>(
    fwd: &'a ForwardRt,
    headers: &mut HeaderMap,
    started: Option<tokio::time::Instant>,
) -> Effective<'a> {
    // Only the gRPC timeouts ask; most routes have neither, and the lookup is per request.
    let grpc =
        (fwd.legacy_grpc.is_some() || fwd.stream_duration.is_some()) && super::local_reply::is_grpc_request(headers);
    // Under `max_grpc_timeout` a gRPC request's `grpc-timeout` is its route timeout.
    let legacy = fwd.legacy_grpc.filter(|_| grpc).map(|l| legacy_timeout(&l, header_timeout(headers)));
    let policy = fwd.retry_policy.as_ref();
    let mut limits = match (request_controls::take(headers), legacy) {
        (Some(c), _) => request_controls::apply(c, legacy.unwrap_or(fwd.timeout), policy),
        (None, Some(t)) => request_controls::apply(request_controls::Controls::default(), t, policy),
        (None, None) => Effective::route(fwd.timeout, policy),
    };
    let expected = match &limits.expected_timeout {
        Some(computed) => computed.as_ref(),
        None => fwd.timeout_header.as_ref(),
    };
    if let Some(t) = expected {
        headers.insert(super::headers::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS.clone(), t.clone());
    }
    if legacy.is_some() {
        // The upstream learns the timeout it is under (a shorter per-try one too).
        let per_try = limits.policy.as_ref().filter(|p| !p.hedge_on_per_try_timeout).and_then(|p| p.per_try_timeout);
        if let Some(ms) = request_controls::expected_ms(limits.timeout, per_try) {
            headers.insert(GRPC_TIMEOUT.clone(), header_value(Duration::from_millis(ms)));
        }
    }
    if let Some(d) = fwd.stream_duration.as_ref().and_then(|sd| stream_limit(sd, header_timeout(headers))) {
        if grpc {
            headers.insert(GRPC_TIMEOUT.clone(), header_value(d));
        }
        limits.stream_deadline = Some(started.unwrap_or_else(tokio::time::Instant::now) + d);
    }
    limits
}

/// Runs `fut` (the forwarding) while the stream is not idle for `idle` (the route's
/// `idle_timeout`): counted from when it starts or the client last sent body bytes, as
/// Envoy's stream idle timer is re-armed when the route is chosen. `None` when it expired.
pub async fn idle_within<T>(
    idle: Option<Duration>,
    progress: Option<&crate::body::progress::Progress>,
    fut: impl Future<Output = T>,
) -> Option<T> {
    let Some(idle) = idle else {
        return Some(fut.await);
    };
    let armed = tokio::time::Instant::now();
    let mut fut = std::pin::pin!(fut);
    // Bounded: each turn ends the wait or sleeps until a later deadline.
    loop {
        let deadline = progress.map_or(armed, |p| p.last_activity().max(armed)) + idle;
        if deadline <= tokio::time::Instant::now() {
            return None;
        }
        if let Ok(out) = tokio::time::timeout_at(deadline, fut.as_mut()).await {
            return Some(out);
        }
    }
}

/// Runs `fut` (the forwarding) until `deadline`; `None` when the deadline came first.
pub async fn within<T>(deadline: Option<tokio::time::Instant>, fut: impl Future<Output = T>) -> Option<T> {
    match deadline {
        None => Some(fut.await),
        Some(at) => tokio::time::timeout_at(at, fut).await.ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn grpc(v: &'static str) -> Option<Duration> {
        let mut h = HeaderMap::new();
        h.insert(&GRPC_TIMEOUT, HeaderValue::from_static(v));
        header_timeout(&h)
    }

    #[test]
    fn grpc_timeout_headers_read_as_envoy_reads_them() {
        assert_eq!(grpc("1S"), Some(MS(1000)));
        assert_eq!(grpc("2M"), Some(MS(120_000)));
        assert_eq!(grpc("1H"), Some(MS(3_600_000)));
        assert_eq!(grpc("250m"), Some(MS(250)));
        assert_eq!(grpc("1500u"), Some(MS(2)), "rounded up");
        assert_eq!(grpc("1n"), Some(MS(1)));
        assert_eq!(grpc("0S"), Some(MS(0)));
        for bad in ["", "S", "10", "1x", "123456789S", "-1S", "a1S"] {
            let mut h = HeaderMap::new();
            h.insert(&GRPC_TIMEOUT, HeaderValue::from_static(bad));
            assert_eq!(header_timeout(&h), None, "{bad:?}");
        }
        assert_eq!(header_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn grpc_timeout_values_are_written_as_envoy_writes_them() {
        assert_eq!(header_value(MS(900)), "900m");
        assert_eq!(header_value(MS(99_999_999)), "99999999m");
        assert_eq!(header_value(MS(100_000_000)), "100000S");
        assert_eq!(header_value(Duration::from_secs(100_000_000 * 60)), "1666666H");
        assert_eq!(header_value(Duration::from_secs(100_000_000)), "1666666M");
        assert_eq!(header_value(Duration::from_secs(u64::MAX / 4)), "99999999H");
    }

    #[test]
    fn the_stream_limit_follows_the_header_only_under_grpc_timeout_header_max() {
        let plain = StreamDuration { max: Some(MS(1000)), ..StreamDuration::default() };
        assert_eq!(stream_limit(&plain, Some(MS(5000))), Some(MS(1000)));
        assert_eq!(stream_limit(&StreamDuration::default(), Some(MS(5000))), None);
        // The oracle's figures: a 2 s cap, 100 ms offset.
        let capped = StreamDuration { max: None, header_max: Some(MS(2000)), header_offset: Some(MS(100)) };
        assert_eq!(stream_limit(&capped, Some(MS(1000))), Some(MS(900)));
        assert_eq!(stream_limit(&capped, Some(MS(10_000))), Some(MS(1900)));
        assert_eq!(stream_limit(&capped, None), None, "no header: max_stream_duration (unset)");
        assert_eq!(stream_limit(&capped, Some(MS(50))), Some(MS(0)), "an offset past it leaves 0");
        let uncapped = StreamDuration { max: Some(MS(10)), header_max: Some(Duration::ZERO), header_offset: None };
        assert_eq!(stream_limit(&uncapped, Some(MS(60_000))), Some(MS(60_000)));
    }

    #[test]
    fn the_legacy_grpc_timeout_caps_and_offsets_as_envoy_does() {
        let l = LegacyGrpcTimeout { max: MS(2000), offset: Some(MS(100)) };
        assert_eq!(legacy_timeout(&l, Some(MS(1000))), Some(MS(900)));
        assert_eq!(legacy_timeout(&l, Some(MS(10_000))), Some(MS(2000)));
        assert_eq!(legacy_timeout(&l, None), Some(MS(2000)));
        assert_eq!(legacy_timeout(&l, Some(MS(50))), Some(MS(50)), "no offset down to 0");
        let zero = LegacyGrpcTimeout { max: Duration::ZERO, offset: None };
        assert_eq!(legacy_timeout(&zero, Some(MS(1000))), Some(MS(1000)));
        assert_eq!(legacy_timeout(&zero, None), None, "infinite");
    }

    fn template() -> super::super::forward::AttemptTemplate {
        super::super::forward::AttemptTemplate {
            method: http::Method::GET,
            path: "/".into(),
            target: None,
            authority: HeaderValue::from_static("example.com"),
            headers: HeaderMap::new(),
            set_attempt_count: false,
            auto_host_rewrite: false,
            append_xfh: false,
            internal: false,
            lb_hash: None,
            headers_read_after: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_stream_deadline_ends_the_wait_for_a_slow_upstream_and_spares_a_quick_one() {
        use super::super::forward::{forward, BodySource};
        use crate::upstream::fake::{self, FakeUpstream, Step};
        let up = FakeUpstream::new([
            Step::Answer { status: 200, after: Duration::from_secs(3) },
            Step::Answer { status: 200, after: MS(900) },
        ]);
        let (cluster, _store) = fake::cluster("", 1, &up);
        // The deadline counts from the stream's start, not from when forwarding began.
        let start = tokio::time::Instant::now();
        tokio::time::sleep(MS(200)).await;
        let mut t = template();
        let slow = forward(&cluster, &mut t, BodySource::Replayable(None), None, None, None, &[]);
        let r = within(Some(start + Duration::from_secs(1)), slow).await;
        assert!(r.is_none());
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        let start = tokio::time::Instant::now();
        let mut t = template();
        let quick = forward(&cluster, &mut t, BodySource::Replayable(None), None, None, None, &[]);
        let r = within(Some(start + Duration::from_secs(1)), quick).await;
        assert_eq!(r.and_then(Result::ok).map(|o| o.response.status().as_u16()), Some(200));
        assert_eq!(start.elapsed(), MS(900));
        assert_eq!(up.seen().len(), 2);
        // No deadline: no limit.
        let r = within(None, async { 7 }).await;
        assert_eq!(r, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn the_route_idle_timeout_counts_from_the_last_client_bytes() {
        use super::super::forward::{forward, BodySource};
        use crate::body::progress::Progress;
        use crate::upstream::fake::{self, FakeUpstream, Step};
        let up = FakeUpstream::new([
            Step::Answer { status: 200, after: Duration::from_secs(3) },
            Step::Answer { status: 200, after: Duration::from_secs(3) },
            Step::Answer { status: 200, after: MS(900) },
        ]);
        let (cluster, _store) = fake::cluster("", 1, &up);
        let idle = Some(Duration::from_secs(1));
        let start = tokio::time::Instant::now();
        let r = idle_within(
            idle,
            None,
            forward(&cluster, &mut template(), BodySource::Replayable(None), None, None, None, &[]),
        )
        .await;
        assert!(r.is_none());
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // The client still sending pushes it back.
        let start = tokio::time::Instant::now();
        let p = std::sync::Arc::new(Progress::new(start));
        let toucher = {
            let p = std::sync::Arc::clone(&p);
            tokio::spawn(async move {
                tokio::time::sleep(MS(800)).await;
                p.touch();
            })
        };
        let mut t = template();
        let slow = forward(&cluster, &mut t, BodySource::Replayable(None), None, None, None, &[]);
        let r = idle_within(idle, Some(&p), slow).await;
        assert!(r.is_none());
        assert_eq!(start.elapsed(), MS(1800));
        toucher.await.unwrap_or_default();
        let start = tokio::time::Instant::now();
        let mut t = template();
        let quick = forward(&cluster, &mut t, BodySource::Replayable(None), None, None, None, &[]);
        let r = idle_within(idle, None, quick).await;
        assert_eq!(r.and_then(Result::ok).map(|o| o.response.status().as_u16()), Some(200));
        assert_eq!(start.elapsed(), MS(900));
        assert_eq!(idle_within(None, None, async { 7 }).await, Some(7));
    }
}
