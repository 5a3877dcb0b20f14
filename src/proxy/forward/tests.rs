//! Forwarding, retries and timeouts against a scripted fake upstream, in tokio's paused time:
//! the real pool and forwarder, with connects, answers, resets and delays from a script.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::config::model::RetryOn;
use crate::stats::Store;
use crate::upstream::fake::{self, FakeUpstream, Step};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn answer(status: u16) -> Step {
    Step::Answer { status, after: Duration::ZERO }
}

fn five_xx() -> RetryOn {
    RetryOn { five_xx: true, ..Default::default() }
}

fn policy(retry_on: RetryOn, num_retries: u32, per_try_timeout: Option<Duration>) -> RetryPolicy {
    RetryPolicy { retry_on, num_retries, per_try_timeout, ..RetryPolicy::default() }
}

pub(super) fn prepared() -> AttemptTemplate {
    AttemptTemplate {
        method: Method::POST,
        path: "/p".into(),
        target: None,
        authority: HeaderValue::from_static("example.com"),
        headers: HeaderMap::new(),
        set_attempt_count: true,
        auto_host_rewrite: false,
        append_xfh: false,
        internal: false,
        lb_hash: None,
        headers_read_after: false,
    }
}

/// Forwards a buffered request (so that it can be retried) to `cluster`.
async fn run(
    cluster: &Arc<Cluster>,
    policy: Option<&RetryPolicy>,
    timeout: Option<Duration>,
) -> Result<Outcome, Failure> {
    let body = BodySource::Replayable(Some(Bytes::from_static(b"hello")));
    forward(cluster, &mut prepared(), body, timeout, policy, None, &[]).await
}

fn ok(r: Result<Outcome, Failure>) -> Outcome {
    match r {
        Ok(o) => o,
        Err(f) => panic!("failed with {:?} after {} attempts", f.reason, f.attempts),
    }
}

fn failed(r: Result<Outcome, Failure>) -> Failure {
    match r {
        Ok(o) => panic!("answered {} after {} attempts", o.response.status(), o.attempts),
        Err(f) => f,
    }
}

fn stat(store: &Store, name: &str) -> i64 {
    store.value(&format!("cluster.c.{name}")).unwrap_or(0)
}

fn attempt_counts(up: &FakeUpstream) -> Vec<String> {
    let header = |s: &fake::Seen| s.headers.get("x-envoy-attempt-count").map(|v| v.to_str().unwrap_or("?").to_string());
    up.seen().iter().map(|s| header(s).unwrap_or_default()).collect()
}

#[tokio::test(start_paused = true)]
async fn five_xx_is_retried_num_retries_times_then_the_last_answer_passes() {
    let up = FakeUpstream::new([answer(503), answer(503), answer(503), answer(200)]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let out = ok(run(&cluster, Some(&policy(five_xx(), 2, None)), None).await);
    assert_eq!(out.response.status(), 503);
    assert_eq!(out.attempts, 3);
    assert_eq!(out.retry_stop, Some(RetryStop::LimitExceeded));
    assert_eq!(attempt_counts(&up), ["1", "2", "3"]);
    assert!(up.seen().iter().all(|s| s.body == "hello"), "every attempt sends the whole body");
    assert_eq!(stat(&store, "upstream_rq_retry"), 2);
    assert_eq!(stat(&store, "upstream_rq_retry_limit_exceeded"), 1);
    assert_eq!(stat(&store, "upstream_rq_retry_success"), 0);
    assert_eq!(stat(&store, "upstream_rq_retry_backoff_exponential"), 2);
    assert_eq!(stat(&store, "upstream_rq_total"), 3);
    // Only the answer passed on is charged to the codes; the retried ones to `retry.`.
    assert_eq!(stat(&store, "upstream_rq_503"), 1);
    assert_eq!(stat(&store, "retry.upstream_rq_503"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_counts_retry_success() {
    let up = FakeUpstream::new([answer(502), answer(200)]);
    let (cluster, store) = fake::cluster("", 2, &up);
    let out = ok(run(&cluster, Some(&policy(five_xx(), 3, None)), None).await);
    assert_eq!((out.response.status().as_u16(), out.attempts, out.retry_stop), (200, 2, None));
    assert_eq!(stat(&store, "upstream_rq_retry"), 1);
    assert_eq!(stat(&store, "upstream_rq_retry_success"), 1);
    assert_eq!(stat(&store, "upstream_rq_retry_limit_exceeded"), 0);
    assert_eq!(stat(&store, "upstream_rq_200"), 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_policy_nothing_is_retried() {
    let up = FakeUpstream::new([answer(503), answer(200)]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let out = ok(run(&cluster, None, None).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (503, 1));
    assert_eq!(up.seen().len(), 1);
    assert_eq!(stat(&store, "upstream_rq_retry"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_reset_is_retried_under_reset_only() {
    let reset = RetryOn { reset: true, ..Default::default() };
    let up = FakeUpstream::new([Step::Reset { after: ms(5) }, answer(200)]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let out = ok(run(&cluster, Some(&policy(reset, 1, None)), None).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (200, 2));
    assert_eq!(stat(&store, "upstream_cx_destroy_remote_with_active_rq"), 1);

    let retriable_4xx = RetryOn { retriable_4xx: true, ..Default::default() };
    let up = FakeUpstream::new([Step::Reset { after: ms(5) }, answer(200)]);
    let (cluster, _) = fake::cluster("", 1, &up);
    let f = failed(run(&cluster, Some(&policy(retriable_4xx, 1, None)), None).await);
    assert_eq!((f.reason, f.attempts), (LocalReason::UpstreamReset, 1));
    assert!(f.connected.is_some(), "a reset request was on a connection");
}

#[tokio::test(start_paused = true)]
async fn a_refused_connect_is_retried_under_connect_failure() {
    let connect_failure = RetryOn { connect_failure: true, ..Default::default() };
    let up = FakeUpstream::new([Step::Refuse, answer(200)]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let out = ok(run(&cluster, Some(&policy(connect_failure, 1, None)), None).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (200, 2));
    assert_eq!(stat(&store, "upstream_cx_connect_fail"), 1);
    // A request that never got a connection is not counted as sent.
    assert_eq!(stat(&store, "upstream_rq_total"), 1);
    assert_eq!(stat(&store, "upstream_rq_retry"), 1);

    let up = FakeUpstream::new([Step::Refuse, answer(200)]);
    let (cluster, _) = fake::cluster("", 1, &up);
    let f = failed(run(&cluster, Some(&policy(RetryOn::default(), 1, None)), None).await);
    assert_eq!((f.reason, f.attempts), (LocalReason::ConnectFailure, 1));
    assert!(f.connected.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_hangs_ends_at_the_connect_timeout() {
    let up = FakeUpstream::new([Step::ConnectHang]);
    let (cluster, store) = fake::cluster("connect_timeout: 2s", 1, &up);
    let start = Instant::now();
    let f = failed(run(&cluster, None, None).await);
    assert_eq!(f.reason, LocalReason::ConnectTimeout);
    assert_eq!(start.elapsed(), ms(2000));
    assert_eq!(stat(&store, "upstream_cx_connect_timeout"), 1);
    assert_eq!(up.connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_per_try_timeout_is_retried_on_a_new_connection() {
    let up = FakeUpstream::new([Step::Hang, answer(200)]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let out = ok(run(&cluster, Some(&policy(five_xx(), 1, Some(ms(100)))), None).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (200, 2));
    let seen = up.seen();
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= ms(100) && gap < ms(100 + 25), "retried {gap:?} after the first try");
    assert_eq!((seen[0].connection, seen[1].connection), (0, 1), "the timed-out connection is not reused");
    assert_eq!(stat(&store, "upstream_rq_per_try_timeout"), 1);
    assert_eq!(stat(&store, "upstream_rq_timeout"), 0);
    assert_eq!(out.host.stats.rq_timeout.value(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_last_per_try_timeout_fails_as_a_per_try_timeout() {
    let up = FakeUpstream::new([Step::Hang, Step::Hang]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let start = Instant::now();
    let f = failed(run(&cluster, Some(&policy(five_xx(), 1, Some(ms(100)))), None).await);
    assert_eq!((f.reason, f.attempts, f.retry_stop), (LocalReason::PerTryTimeout, 2, Some(RetryStop::LimitExceeded)));
    let took = start.elapsed();
    assert!(took >= ms(200) && took < ms(200 + 25), "took {took:?}");
    assert_eq!(stat(&store, "upstream_rq_per_try_timeout"), 2);
}

#[tokio::test(start_paused = true)]
async fn the_route_timeout_covers_every_try() {
    let up = FakeUpstream::new([Step::Hang; 6]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let start = Instant::now();
    let f = failed(run(&cluster, Some(&policy(five_xx(), 5, Some(ms(100)))), Some(ms(250))).await);
    assert_eq!(f.reason, LocalReason::UpstreamTimeout);
    assert_eq!(start.elapsed(), ms(250), "the route timeout counts from the first try");
    // Two tries time out by 225 ms at most; a third is sent unless the random back-off
    // before it reaches the route deadline.
    let tries = up.seen().len();
    assert!(matches!(tries, 2 | 3), "{tries} tries");
    assert_eq!(stat(&store, "upstream_rq_per_try_timeout"), 2);
    assert_eq!(stat(&store, "upstream_rq_timeout"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_route_timeout_counts_from_the_end_of_the_request() {
    let up = FakeUpstream::new([Step::Hang]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let start = Instant::now();
    let progress = Arc::new(Progress::new(start));
    let ends = Arc::clone(&progress);
    tokio::spawn(async move {
        tokio::time::sleep(ms(1000)).await;
        ends.end();
    });
    let body = BodySource::Stream(Some(ReqBody::empty()));
    let f = failed(forward(&cluster, &mut prepared(), body, Some(ms(200)), None, Some(&progress), &[]).await);
    assert_eq!(f.reason, LocalReason::UpstreamTimeout);
    assert_eq!(start.elapsed(), ms(1200), "a slow upload does not eat into the route timeout");
    assert_eq!(stat(&store, "upstream_rq_timeout"), 1);
}

#[tokio::test(start_paused = true)]
async fn an_answer_within_the_route_timeout_passes_with_its_deadline() {
    let up = FakeUpstream::new([Step::Answer { status: 200, after: ms(150) }]);
    let (cluster, _) = fake::cluster("", 1, &up);
    let start = Instant::now();
    let out = ok(run(&cluster, None, Some(ms(200))).await);
    assert_eq!(out.response.status(), 200);
    assert_eq!(out.deadline, Some(start + ms(200)), "the response body must end by the route deadline");
    assert_eq!(out.service_time, ms(150));
}

#[tokio::test(start_paused = true)]
async fn retries_past_max_retries_overflow() {
    let up = FakeUpstream::new([answer(503), answer(200)]);
    let (cluster, store) = fake::cluster("circuit_breakers: {thresholds: [{max_retries: 0}]}", 1, &up);
    let out = ok(run(&cluster, Some(&policy(five_xx(), 3, None)), None).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (503, 1));
    assert_eq!(out.retry_stop, Some(RetryStop::Overflow));
    assert_eq!(stat(&store, "upstream_rq_retry_overflow"), 1);
    assert_eq!(stat(&store, "upstream_rq_retry"), 0);
}

#[test]
fn backoff_is_envoys_fully_jittered_exponential() {
    // (retry, interval): the interval doubles from 25 ms until doubling would pass half of
    // the 250 ms max, then stays at the max.
    for (retry, interval) in [(1, 25), (2, 50), (3, 100), (4, 200), (5, 250), (6, 250), (u32::MAX, 250)] {
        assert_eq!(backoff_ms(25, 250, retry, interval - 1), interval - 1, "retry {retry}");
        assert_eq!(backoff_ms(25, 250, retry, interval), 0, "retry {retry}");
        assert_eq!(backoff_ms(25, 250, retry, 3 * interval + 7), 7, "retry {retry}");
    }
}

#[tokio::test(start_paused = true)]
async fn each_retry_waits_out_its_backoff() {
    let up = FakeUpstream::new([answer(503), answer(503), answer(503), answer(503), answer(200)]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let out = ok(run(&cluster, Some(&policy(five_xx(), 4, None)), None).await);
    assert_eq!(out.attempts, 5);
    let seen = up.seen();
    for (k, pair) in seen.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let interval = ms(25 << k);
        assert!(gap < interval, "retry {} waited {gap:?}, not under {interval:?}", k + 1);
    }
    // Each wait is random below its interval; all four are 0 once in 25 million runs.
    assert!(seen[4].at - seen[0].at > Duration::ZERO, "the retries waited");
    assert_eq!(stat(&store, "upstream_rq_retry_backoff_exponential"), 4);
}

#[test]
fn retry_back_off_sets_the_base_and_the_max() {
    // base 100 ms, max 300 ms: 100, 200, then 300 (doubling would pass half the max).
    for (retry, interval) in [(1, 100), (2, 200), (3, 300), (9, 300)] {
        assert_eq!(backoff_ms(100, 300, retry, interval - 1), interval - 1, "retry {retry}");
        assert_eq!(backoff_ms(100, 300, retry, interval), 0, "retry {retry}");
    }
}

#[test]
fn a_reset_header_wait_is_jittered_up_to_half_again() {
    assert_eq!(ratelimited_backoff_ms(2000, 0), 2000);
    assert_eq!(ratelimited_backoff_ms(2000, 999), 2999);
    assert_eq!(ratelimited_backoff_ms(2000, 1000), 2000);
}

fn rate_limited(names: &[(&str, bool)], max: Duration) -> RateLimitedBackOff {
    let reset_headers = names
        .iter()
        .map(|(n, unix)| crate::config::model::ResetHeader { name: n.to_string(), unix_timestamp: *unix })
        .collect();
    RateLimitedBackOff { reset_headers, max_interval: max }
}

#[test]
fn reset_headers_are_read_in_order_and_bounded_by_the_max() {
    let r = rate_limited(&[("retry-after", false), ("x-ratelimit-reset", true)], Duration::from_secs(60));
    let mut h = HeaderMap::new();
    assert_eq!(reset_interval(&r, &h), None);
    h.insert("x-ratelimit-reset", HeaderValue::from_static("nonsense"));
    assert_eq!(reset_interval(&r, &h), None);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    h.insert("x-ratelimit-reset", HeaderValue::from(now + 30));
    let d = reset_interval(&r, &h).unwrap_or_default();
    assert!(d >= Duration::from_secs(29) && d <= Duration::from_secs(30), "{d:?}");
    // The first header that parses within the max wins; one asking too much is skipped.
    h.insert("retry-after", HeaderValue::from_static("7"));
    assert_eq!(reset_interval(&r, &h), Some(Duration::from_secs(7)));
    h.insert("retry-after", HeaderValue::from_static("61"));
    assert!(reset_interval(&r, &h).is_some_and(|d| d <= Duration::from_secs(30)));
    // A time already past is no wait.
    h.remove("retry-after");
    h.insert("x-ratelimit-reset", HeaderValue::from(now.saturating_sub(5)));
    assert_eq!(reset_interval(&r, &h), None);
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_what_the_answers_reset_header_asks() {
    let up = FakeUpstream::new([Step::AnswerWith { status: 503, header: ("retry-after", "3") }, answer(200)]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let mut p = policy(five_xx(), 1, None);
    p.rate_limited = Some(rate_limited(&[("retry-after", false)], Duration::from_secs(300)));
    let out = ok(run(&cluster, Some(&p), None).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (200, 2));
    let seen = up.seen();
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= ms(3000) && gap < ms(4500), "waited {gap:?}");
    assert_eq!(stat(&store, "upstream_rq_retry_backoff_ratelimited"), 1);
    assert_eq!(stat(&store, "upstream_rq_retry_backoff_exponential"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_answer_without_the_reset_header_backs_off_exponentially() {
    let up = FakeUpstream::new([answer(503), answer(200)]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let mut p = policy(five_xx(), 1, None);
    p.rate_limited = Some(rate_limited(&[("retry-after", false)], Duration::from_secs(300)));
    ok(run(&cluster, Some(&p), None).await);
    assert_eq!(stat(&store, "upstream_rq_retry_backoff_ratelimited"), 0);
    assert_eq!(stat(&store, "upstream_rq_retry_backoff_exponential"), 1);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_envoys_rate_limit_is_retried_under_envoy_ratelimited_only() {
    let limited = || Step::AnswerWith { status: 429, header: ("x-envoy-ratelimited", "true") };
    // 5xx does not retry it, even as a 503.
    let up = FakeUpstream::new([Step::AnswerWith { status: 503, header: ("x-envoy-ratelimited", "true") }]);
    let (cluster, _) = fake::cluster("", 1, &up);
    let out = ok(run(&cluster, Some(&policy(five_xx(), 2, None)), None).await);
    assert_eq!(out.attempts, 1);
    let up = FakeUpstream::new([limited(), answer(200)]);
    let (cluster, _) = fake::cluster("", 1, &up);
    let on = RetryOn { envoy_ratelimited: true, ..Default::default() };
    let out = ok(run(&cluster, Some(&policy(on, 2, None)), None).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (200, 2));
}

fn present(name: &str) -> crate::config::model::HeaderMatcher {
    crate::config::model::HeaderMatcher {
        name: name.into(),
        kind: crate::config::model::HeaderMatchKind::Present(true),
        invert_match: false,
        treat_missing_as_empty: false,
    }
}

#[tokio::test(start_paused = true)]
async fn retriable_headers_retry_an_answer_carrying_them() {
    let up = FakeUpstream::new([Step::AnswerWith { status: 200, header: ("x-upstream-retry", "1") }, answer(201)]);
    let (cluster, _) = fake::cluster("", 1, &up);
    let on = RetryOn { retriable_headers: true, ..Default::default() };
    let mut p = policy(on, 2, None);
    p.retriable_headers = vec![present("x-upstream-retry")];
    let out = ok(run(&cluster, Some(&p), None).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (201, 2));
}

#[tokio::test(start_paused = true)]
async fn retriable_request_headers_limit_retries_to_the_requests_matching_one() {
    let up = FakeUpstream::new([answer(503), answer(200)]);
    let (cluster, _) = fake::cluster("", 1, &up);
    let mut p = policy(five_xx(), 2, None);
    p.retriable_request_headers = vec![present("x-idempotent")];
    let out = ok(run(&cluster, Some(&p), None).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (503, 1), "the request has no x-idempotent");
    let up = FakeUpstream::new([answer(503), answer(200)]);
    let (cluster, _) = fake::cluster("", 1, &up);
    let mut req = prepared();
    req.headers.insert("x-idempotent", HeaderValue::from_static("1"));
    let body = BodySource::Replayable(Some(Bytes::from_static(b"hello")));
    let out = ok(forward(&cluster, &mut req, body, None, Some(&p), None, &[]).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (200, 2));
}

#[tokio::test(start_paused = true)]
async fn previous_hosts_moves_a_retry_to_another_host() {
    let up = FakeUpstream::new([]);
    let (cluster, _) = fake::cluster("lb_policy: RANDOM", 2, &up);
    let first: std::net::SocketAddr = ([127, 0, 0, 1], 1).into();
    // Thirty reattempts: the chance of drawing host 1 every time is 2^-31 per choice.
    for _ in 0..100 {
        let host = cluster.choose_avoiding(None, &[first], 30, None).map(|h| h.addr);
        assert_eq!(host, Some(([127, 0, 0, 1], 2).into()));
    }
    // Without reattempts the choice is the balancer's: host 1 comes up.
    let picks: Vec<_> = (0..100).filter_map(|_| cluster.choose_avoiding(None, &[first], 0, None)).collect();
    assert!(picks.iter().any(|h| h.addr == first));
}

#[tokio::test(start_paused = true)]
async fn previous_hosts_walks_a_hash_ring_for_a_keyed_request() {
    let up = FakeUpstream::new([]);
    let (cluster, _) = fake::cluster("lb_policy: RING_HASH", 2, &up);
    for key in 0..50u64 {
        let h = Some(key.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let pinned = cluster.choose_for(h).map(|h| h.addr);
        assert_eq!(cluster.choose_for(h).map(|h| h.addr), pinned, "a key keeps its host");
        let Some(pinned) = pinned else { panic!("no host") };
        let other = cluster.choose_avoiding(h, &[pinned], 64, None).map(|h| h.addr);
        assert!(other.is_some_and(|o| o != pinned), "key {key}: the retry stays on {pinned}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_per_try_idle_timeout_ends_a_silent_try_and_is_retried_as_a_per_try_timeout() {
    let up = FakeUpstream::new([Step::Hang, Step::Hang, Step::Answer { status: 200, after: ms(300) }]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let idle = RetryPolicy { per_try_idle_timeout: Some(ms(100)), ..policy(five_xx(), 1, None) };
    let start = Instant::now();
    let f = failed(run(&cluster, Some(&idle), None).await);
    assert_eq!(
        (f.reason, f.attempts, f.retry_stop),
        (LocalReason::PerTryIdleTimeout, 2, Some(RetryStop::LimitExceeded))
    );
    let took = start.elapsed();
    assert!(took >= ms(200) && took < ms(200 + 25), "took {took:?}");
    assert_eq!(stat(&store, "upstream_rq_per_try_idle_timeout"), 2);
    assert_eq!(stat(&store, "upstream_rq_per_try_timeout"), 0);
    // Shorter than the per-try timeout, it ends the try first; an answer in time passes.
    let both = RetryPolicy { per_try_idle_timeout: Some(ms(400)), ..policy(five_xx(), 0, Some(ms(1000))) };
    let out = ok(run(&cluster, Some(&both), None).await);
    assert_eq!(out.response.status().as_u16(), 200);
}

/// A template with one header, for the move-or-copy rule of its headers.
fn with_header(read_after: bool) -> AttemptTemplate {
    let mut t = prepared();
    t.headers.insert("x-kept", HeaderValue::from_static("yes"));
    t.headers_read_after = read_after;
    t
}

fn kept_headers(up: &FakeUpstream) -> Vec<bool> {
    up.seen().iter().map(|s| s.headers.get("x-kept").is_some_and(|v| v == "yes")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_single_attempt_moves_the_headers_and_every_retry_gets_a_copy() {
    let body = || BodySource::Replayable(Some(Bytes::from_static(b"hello")));
    // One attempt, nothing reads the headers after: they move into the request.
    let up = FakeUpstream::new([answer(200)]);
    let (cluster, _store) = fake::cluster("", 1, &up);
    let mut t = with_header(false);
    ok(forward(&cluster, &mut t, body(), None, None, None, &[]).await);
    assert_eq!(kept_headers(&up), [true]);
    assert!(t.headers.is_empty(), "the one attempt took the headers");
    // Read after (a logger, a mirror, a redirect): the template keeps them.
    let up = FakeUpstream::new([answer(200)]);
    let (cluster, _store) = fake::cluster("", 1, &up);
    let mut t = with_header(true);
    ok(forward(&cluster, &mut t, body(), None, None, None, &[]).await);
    assert_eq!(kept_headers(&up), [true]);
    assert_eq!(t.headers.get("x-kept").map(|v| v.as_bytes()), Some(&b"yes"[..]));
    // Retries: every attempt sends them whole.
    let up = FakeUpstream::new([answer(503), answer(503), answer(200)]);
    let (cluster, _store) = fake::cluster("", 1, &up);
    let mut t = with_header(false);
    let out = ok(forward(&cluster, &mut t, body(), None, Some(&policy(five_xx(), 2, None)), None, &[]).await);
    assert_eq!(out.attempts, 3);
    assert_eq!(kept_headers(&up), [true, true, true]);
}
