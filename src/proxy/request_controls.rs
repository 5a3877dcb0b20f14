//! The `x-envoy-*` request headers through which a trusted client sets the router's timeout
//! and retries for its own request (`x-envoy-upstream-rq-timeout-ms`, `x-envoy-retry-on`,
//! `x-envoy-max-retries`, ...), read and removed as Envoy's router does. Only a trusted
//! client's headers get this far: the connection manager removes them from an external
//! client's request (`headers::EXTERNAL_STRIPPED`). A request without any `x-envoy-*` header
//! costs one scan of its header names.

use std::borrow::Cow;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::model::{HeaderMatchKind, HeaderMatcher, RetryOn, RetryPolicy};

static TIMEOUT_MS: HeaderName = HeaderName::from_static("x-envoy-upstream-rq-timeout-ms");
static PER_TRY_TIMEOUT_MS: HeaderName = HeaderName::from_static("x-envoy-upstream-rq-per-try-timeout-ms");
static TIMEOUT_ALT_RESPONSE: HeaderName = HeaderName::from_static("x-envoy-upstream-rq-timeout-alt-response");
static RETRY_ON: HeaderName = HeaderName::from_static("x-envoy-retry-on");
static RETRY_GRPC_ON: HeaderName = HeaderName::from_static("x-envoy-retry-grpc-on");
static MAX_RETRIES: HeaderName = HeaderName::from_static("x-envoy-max-retries");
static RETRIABLE_STATUS_CODES: HeaderName = HeaderName::from_static("x-envoy-retriable-status-codes");
static RETRIABLE_HEADER_NAMES: HeaderName = HeaderName::from_static("x-envoy-retriable-header-names");
static HEDGE_ON_PER_TRY_TIMEOUT: HeaderName = HeaderName::from_static("x-envoy-hedge-on-per-try-timeout");

/// What the request's control headers asked for. Values Envoy cannot parse are dropped as
/// Envoy drops them (the header is still removed).
#[derive(Debug, Default, PartialEq)]
pub struct Controls {
    /// `x-envoy-upstream-rq-timeout-ms`; `Some(None)` for 0, no timeout.
    pub timeout: Option<Option<Duration>>,
    /// `x-envoy-upstream-rq-per-try-timeout-ms`.
    pub per_try: Option<Duration>,
    /// `x-envoy-retry-on` and `x-envoy-retry-grpc-on`, added to the route's conditions.
    pub retry_on: RetryOn,
    /// `x-envoy-max-retries`, in place of the policy's `num_retries`.
    pub max_retries: Option<u32>,
    /// `x-envoy-retriable-status-codes`, added to the policy's.
    pub status_codes: Vec<u16>,
    /// `x-envoy-retriable-header-names`: an answer carrying one of them is retriable.
    pub header_names: Vec<String>,
    /// `x-envoy-upstream-rq-timeout-alt-response`: a route timeout answers 204, not 504.
    pub alt_response: bool,
    /// `x-envoy-hedge-on-per-try-timeout`: `true` or `false` over the route's hedge policy
    /// (another value is ignored).
    pub hedge: Option<bool>,
}

/// Reads and removes the request's control headers; `None` when it has none.
pub fn take(h: &mut HeaderMap) -> Option<Controls> {
    if !h.keys().any(|k| k.as_str().starts_with("x-envoy-")) {
        return None;
    }
    let mut c = Controls::default();
    let mut any = false;
    if let Some(v) = h.remove(&TIMEOUT_MS) {
        any = true;
        c.timeout = millis(&v).map(|ms| (ms > 0).then(|| Duration::from_millis(ms)));
    }
    if let Some(v) = h.remove(&PER_TRY_TIMEOUT_MS) {
        any = true;
        c.per_try = millis(&v).filter(|ms| *ms > 0).map(Duration::from_millis);
    }
    if h.remove(&TIMEOUT_ALT_RESPONSE).is_some() {
        any = true;
        c.alt_response = true;
    }
    if let Some(v) = h.remove(&RETRY_ON) {
        any = true;
        c.retry_on = c.retry_on.union(retry_on(&v, false));
    }
    if let Some(v) = h.remove(&RETRY_GRPC_ON) {
        any = true;
        c.retry_on = c.retry_on.union(retry_on(&v, true));
    }
    if let Some(v) = h.remove(&MAX_RETRIES) {
        any = true;
        c.max_retries = millis(&v).and_then(|n| u32::try_from(n).ok());
    }
    if let Some(v) = h.remove(&RETRIABLE_STATUS_CODES) {
        any = true;
        c.status_codes = tokens(&v).filter_map(|t| t.parse().ok()).collect();
    }
    if let Some(v) = h.remove(&RETRIABLE_HEADER_NAMES) {
        any = true;
        c.header_names = tokens(&v).map(str::to_ascii_lowercase).collect();
    }
    if let Some(v) = h.remove(&HEDGE_ON_PER_TRY_TIMEOUT) {
        any = true;
        c.hedge = match v.as_bytes() {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        };
    }
    any.then_some(c)
}

/// An unsigned decimal, as Envoy's `SimpleAtoi` reads one.
fn millis(v: &HeaderValue) -> Option<u64> {
    std::str::from_utf8(v.as_bytes()).ok()?.trim().parse().ok()
}

fn tokens(v: &HeaderValue) -> impl Iterator<Item = &str> {
    std::str::from_utf8(v.as_bytes()).unwrap_or("").split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// The conditions of an `x-envoy-retry-on` (or, `grpc`, `x-envoy-retry-grpc-on`) value;
/// unknown names are ignored, as Envoy ignores them.
fn retry_on(v: &HeaderValue, grpc: bool) -> RetryOn {
    let mut r = RetryOn::default();
    for t in tokens(v) {
        match (grpc, t) {
            (false, "5xx") => r.five_xx = true,
            (false, "gateway-error") => r.gateway_error = true,
            (false, "connect-failure") => r.connect_failure = true,
            (false, "reset") => r.reset = true,
            (false, "retriable-4xx") => r.retriable_4xx = true,
            (false, "refused-stream") => r.refused_stream = true,
            (false, "retriable-status-codes") => r.retriable_status_codes = true,
            (false, "retriable-headers") => r.retriable_headers = true,
            (false, "envoy-ratelimited") => r.envoy_ratelimited = true,
            (true, "cancelled") => r.grpc_statuses |= 1 << 1,
            (true, "deadline-exceeded") => r.grpc_statuses |= 1 << 4,
            (true, "resource-exhausted") => r.grpc_statuses |= 1 << 8,
            (true, "internal") => r.grpc_statuses |= 1 << 13,
            (true, "unavailable") => r.grpc_statuses |= 1 << 14,
            _ => {}
        }
    }
    r
}

/// The route's timeout and retry policy for one request, with its control headers applied.
pub struct Effective<'a> {
    pub timeout: Option<Duration>,
    pub policy: Option<Cow<'a, RetryPolicy>>,
    /// `x-envoy-expected-rq-timeout-ms` for the upstream, when the controls changed it.
    pub expected_timeout: Option<Option<HeaderValue>>,
    pub alt_response: bool,
    /// When the route's `max_stream_duration` ends the stream (see `super::stream_duration`).
    pub stream_deadline: Option<tokio::time::Instant>,
}

impl<'a> Effective<'a> {
    /// The route's own settings (a request without control headers).
    pub fn route(timeout: Option<Duration>, policy: Option<&'a RetryPolicy>) -> Self {
        Effective {
            timeout,
            policy: policy.map(Cow::Borrowed),
            expected_timeout: None,
            alt_response: false,
            stream_deadline: None,
        }
    }
}

/// Applies `c` to the route's `timeout` and `policy` as Envoy's router does: the header
/// timeout replaces the route's, a per-try timeout not shorter than the route timeout is
/// dropped, the retry conditions add up, `x-envoy-max-retries` counts only when some
/// condition is set.
pub fn apply<'a>(c: Controls, timeout: Option<Duration>, policy: Option<&'a RetryPolicy>) -> Effective<'a> {
    let timeout = c.timeout.unwrap_or(timeout);
    let retry_on = policy.map_or(RetryOn::default(), |p| p.retry_on).union(c.retry_on);
    let changes_policy = c.per_try.is_some()
        || c.retry_on.any()
        || (c.max_retries.is_some() && retry_on.any())
        || !c.status_codes.is_empty()
        || !c.header_names.is_empty()
        || c.hedge.is_some_and(|h| policy.is_some_and(|p| p.hedge_on_per_try_timeout != h));
    let policy: Option<Cow<'a, RetryPolicy>> = if !changes_policy {
        policy.map(Cow::Borrowed)
    } else {
        let mut p = policy.cloned().unwrap_or_default();
        p.retry_on = retry_on;
        if let Some(t) = c.per_try {
            p.per_try_timeout = Some(t);
        }
        if let Some(hedge) = c.hedge {
            p.hedge_on_per_try_timeout = hedge;
        }
        if let Some(n) = c.max_retries.filter(|_| retry_on.any()) {
            p.num_retries = n;
        }
        p.retriable_status_codes.extend(c.status_codes);
        p.retriable_headers.extend(c.header_names.into_iter().map(|name| HeaderMatcher {
            name,
            kind: HeaderMatchKind::Present(true),
            invert_match: false,
            treat_missing_as_empty: false,
        }));
        Some(Cow::Owned(p))
    };
    // A hedged attempt is not ended by its per-try timeout: the upstream is told the route's.
    let per_try = policy.as_ref().filter(|p| !p.hedge_on_per_try_timeout).and_then(|p| p.per_try_timeout);
    Effective {
        timeout,
        expected_timeout: Some(expected_timeout(timeout, per_try)),
        policy,
        alt_response: c.alt_response,
        stream_deadline: None,
    }
}

/// Envoy's `x-envoy-expected-rq-timeout-ms`: the per-try timeout when it is shorter than the
/// route timeout, else the route timeout; none without either.
pub fn expected_timeout(timeout: Option<Duration>, per_try: Option<Duration>) -> Option<HeaderValue> {
    expected_ms(timeout, per_try).map(HeaderValue::from)
}

/// [`expected_timeout`] in milliseconds.
pub fn expected_ms(timeout: Option<Duration>, per_try: Option<Duration>) -> Option<u64> {
    let per_try = per_try.filter(|p| timeout.is_none_or(|t| *p < t));
    let ms = per_try.or(timeout)?.as_millis();
    (ms > 0).then_some(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_request_without_control_headers_keeps_the_route_settings() {
        let mut h = headers(&[("x-envoy-attempt-count", "2"), ("accept", "*/*")]);
        assert_eq!(take(&mut h), None);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn every_control_header_is_read_and_removed() {
        let mut h = headers(&[
            ("x-envoy-upstream-rq-timeout-ms", "1234"),
            ("x-envoy-upstream-rq-per-try-timeout-ms", "500"),
            ("x-envoy-upstream-rq-timeout-alt-response", "x"),
            ("x-envoy-retry-on", "5xx, bogus,retriable-status-codes"),
            ("x-envoy-retry-grpc-on", "unavailable"),
            ("x-envoy-max-retries", "3"),
            ("x-envoy-retriable-status-codes", "418,x,429"),
            ("x-envoy-retriable-header-names", "X-Retry, x-other"),
            ("x-envoy-hedge-on-per-try-timeout", "true"),
            ("x-keep", "1"),
        ]);
        let c = take(&mut h).unwrap_or_default();
        assert_eq!(h.len(), 1, "only x-keep is left: {h:?}");
        assert_eq!(c.timeout, Some(Some(Duration::from_millis(1234))));
        assert_eq!(c.per_try, Some(Duration::from_millis(500)));
        assert!(c.alt_response);
        assert!(c.retry_on.five_xx && c.retry_on.retriable_status_codes && c.retry_on.grpc_status(14));
        assert!(!c.retry_on.reset && !c.retry_on.grpc_status(1));
        assert_eq!(c.max_retries, Some(3));
        assert_eq!(c.status_codes, [418, 429]);
        assert_eq!(c.header_names, ["x-retry", "x-other"]);
    }

    #[test]
    fn a_zero_timeout_disables_it_and_a_bad_one_is_ignored() {
        let mut h = headers(&[("x-envoy-upstream-rq-timeout-ms", "0")]);
        let e = apply(take(&mut h).unwrap_or_default(), Some(Duration::from_secs(5)), None);
        assert_eq!(e.timeout, None);
        assert_eq!(e.expected_timeout, Some(None));
        let mut h = headers(&[("x-envoy-upstream-rq-timeout-ms", "abc")]);
        let e = apply(take(&mut h).unwrap_or_default(), Some(Duration::from_secs(5)), None);
        assert_eq!(e.timeout, Some(Duration::from_secs(5)));
        assert!(h.is_empty());
    }

    #[test]
    fn the_expected_timeout_is_the_shorter_per_try_one_as_in_envoy() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(expected_timeout(Some(s(5)), None), Some(HeaderValue::from(5000u64)));
        assert_eq!(expected_timeout(Some(ms(1234)), Some(ms(500))), Some(HeaderValue::from(500u64)));
        assert_eq!(expected_timeout(Some(ms(500)), Some(ms(500))), Some(HeaderValue::from(500u64)));
        assert_eq!(expected_timeout(Some(ms(400)), Some(ms(500))), Some(HeaderValue::from(400u64)));
        assert_eq!(expected_timeout(None, Some(ms(500))), Some(HeaderValue::from(500u64)));
        assert_eq!(expected_timeout(None, None), None);
    }

    #[test]
    fn max_retries_counts_only_with_a_retry_condition() {
        let c = Controls { max_retries: Some(4), ..Controls::default() };
        assert!(apply(c, None, None).policy.is_none());
        let route = RetryPolicy { retry_on: RetryOn { reset: true, ..RetryOn::default() }, ..RetryPolicy::default() };
        let c = Controls { max_retries: Some(4), ..Controls::default() };
        let p = apply(c, None, Some(&route)).policy.map(Cow::into_owned).unwrap_or_default();
        assert_eq!(p.num_retries, 4);
        let c = Controls { retry_on: RetryOn { five_xx: true, ..RetryOn::default() }, ..Controls::default() };
        let p = apply(c, None, Some(&route)).policy.map(Cow::into_owned).unwrap_or_default();
        assert!(p.retry_on.five_xx && p.retry_on.reset, "the conditions add up");
        assert_eq!(p.num_retries, 1);
    }

    #[test]
    fn the_hedge_header_turns_hedging_on_or_off_over_the_route() {
        let route = RetryPolicy { per_try_timeout: Some(Duration::from_millis(100)), ..RetryPolicy::default() };
        let mut h = headers(&[("x-envoy-hedge-on-per-try-timeout", "true")]);
        let e = apply(take(&mut h).unwrap_or_default(), Some(Duration::from_secs(5)), Some(&route));
        assert!(h.is_empty());
        assert!(e.policy.as_ref().is_some_and(|p| p.hedge_on_per_try_timeout));
        // A hedged request's upstream is told the route timeout, not the per-try one.
        assert_eq!(e.expected_timeout, Some(Some(HeaderValue::from(5000))));
        let hedged = RetryPolicy { hedge_on_per_try_timeout: true, ..route.clone() };
        let mut h = headers(&[("x-envoy-hedge-on-per-try-timeout", "false")]);
        let e = apply(take(&mut h).unwrap_or_default(), Some(Duration::from_secs(5)), Some(&hedged));
        assert!(e.policy.as_ref().is_some_and(|p| !p.hedge_on_per_try_timeout));
        assert_eq!(e.expected_timeout, Some(Some(HeaderValue::from(100))));
        let mut h = headers(&[("x-envoy-hedge-on-per-try-timeout", "yes")]);
        let e = apply(take(&mut h).unwrap_or_default(), Some(Duration::from_secs(5)), Some(&hedged));
        assert!(e.policy.as_ref().is_some_and(|p| p.hedge_on_per_try_timeout), "another value is ignored");
    }
}
