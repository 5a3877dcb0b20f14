//! The race of hedged attempts against the scripted fake upstream, in tokio's paused time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::super::tests::prepared;
use super::super::{forward, BodySource, Failure, Outcome, RetryStop};
use crate::config::model::{RetryOn, RetryPolicy};
use crate::proxy::local_reply::LocalReason;
use crate::stats::Store;
use crate::upstream::fake::{self, FakeUpstream, Step};
use crate::upstream::Cluster;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn answer(status: u16, after: u64) -> Step {
    Step::Answer { status, after: ms(after) }
}

/// `5xx`, `num_retries`, a 100 ms per-try timeout and hedging on it (or not).
fn policy(num_retries: u32, hedge: bool) -> RetryPolicy {
    RetryPolicy {
        retry_on: RetryOn { five_xx: true, ..Default::default() },
        num_retries,
        per_try_timeout: Some(ms(100)),
        hedge_on_per_try_timeout: hedge,
        ..RetryPolicy::default()
    }
}

async fn run(cluster: &Arc<Cluster>, policy: &RetryPolicy, timeout: Option<Duration>) -> Result<Outcome, Failure> {
    let body = BodySource::Replayable(Some(Bytes::from_static(b"hello")));
    forward(cluster, &mut prepared(), body, timeout, Some(policy), None, &[]).await
}

fn ok(r: Result<Outcome, Failure>) -> Outcome {
    match r {
        Ok(o) => o,
        Err(f) => panic!("failed with {:?} after {} attempts", f.reason, f.attempts),
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
async fn a_per_try_timeout_hedges_and_the_fast_attempt_wins() {
    let up = FakeUpstream::new([answer(201, 1000), answer(200, 0)]);
    let (cluster, store) = fake::cluster("", 2, &up);
    let start = Instant::now();
    let out = ok(run(&cluster, &policy(2, true), Some(ms(2000))).await);
    let took = start.elapsed();
    assert_eq!((out.response.status().as_u16(), out.attempts, out.retry_stop), (200, 2, None));
    // The per-try timeout, then a back-off below 25 ms: long before the slow answer.
    assert!(took >= ms(100) && took < ms(125), "answered after {took:?}");
    assert_eq!(attempt_counts(&up), ["1", "2"]);
    assert!(up.seen().iter().all(|s| s.body == "hello"), "both attempts send the whole body");
    let per_host: Vec<u64> = cluster.hosts.load().all.iter().map(|h| h.stats.rq_total.value()).collect();
    assert_eq!(per_host, [1, 1], "the hedge went to the other host");
    assert_eq!(stat(&store, "upstream_rq_per_try_timeout"), 0, "a soft timeout is not counted");
    assert_eq!(stat(&store, "upstream_rq_retry"), 1);
    assert_eq!(stat(&store, "upstream_rq_retry_success"), 1);
    assert_eq!(stat(&store, "upstream_rq_total"), 2);
    assert_eq!(stat(&store, "upstream_rq_200"), 1);
    assert_eq!(stat(&store, "upstream_rq_201"), 0);
    // The slow attempt was reset with its HTTP/1.1 connection.
    assert_eq!(stat(&store, "upstream_cx_destroy_local_with_active_rq"), 1);
}

#[tokio::test(start_paused = true)]
async fn without_hedging_the_per_try_timeout_cancels_the_attempt() {
    let up = FakeUpstream::new([answer(201, 1000), answer(200, 0)]);
    let (cluster, store) = fake::cluster("", 2, &up);
    let out = ok(run(&cluster, &policy(2, false), Some(ms(2000))).await);
    assert_eq!((out.response.status().as_u16(), out.attempts), (200, 2));
    assert_eq!(stat(&store, "upstream_rq_per_try_timeout"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_first_attempt_still_wins_when_it_answers_first() {
    let up = FakeUpstream::new([answer(201, 150), answer(200, 1000)]);
    let (cluster, store) = fake::cluster("", 2, &up);
    let start = Instant::now();
    let out = ok(run(&cluster, &policy(2, true), Some(ms(2000))).await);
    assert_eq!(start.elapsed(), ms(150));
    // Both attempts were sent: the count says 2 whichever answered, as in Envoy.
    assert_eq!((out.response.status().as_u16(), out.attempts), (201, 2));
    assert_eq!(stat(&store, "upstream_rq_retry"), 1);
    assert_eq!(stat(&store, "upstream_rq_retry_success"), 0);
    assert_eq!(stat(&store, "upstream_rq_201"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_5xx_waits_for_the_attempt_still_out() {
    // The first attempt's 503 comes after its hedge was sent: retried already, it is dropped
    // and the second attempt's answer awaited. The second attempt's own per-try timeout
    // found no retry left (URX), yet its answer is passed on.
    let up = FakeUpstream::new([answer(503, 300), answer(200, 500)]);
    let (cluster, store) = fake::cluster("", 2, &up);
    let start = Instant::now();
    let out = ok(run(&cluster, &policy(1, true), Some(ms(2000))).await);
    let took = start.elapsed();
    assert_eq!(out.response.status(), 200);
    assert!(took >= ms(600) && took < ms(625), "answered after {took:?}");
    assert_eq!(out.retry_stop, Some(RetryStop::LimitExceeded));
    assert_eq!(stat(&store, "upstream_rq_retry_limit_exceeded"), 1);
    assert_eq!(stat(&store, "upstream_rq_retry_success"), 1);
    assert_eq!(stat(&store, "upstream_rq_503"), 0, "the dropped 5xx is not charged");
    assert_eq!(stat(&store, "upstream_rq_200"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_last_5xx_passes_when_nothing_else_is_out() {
    // The hedge fails fast but may not retry (limit): it waits for the first attempt, whose
    // 503 then is the answer.
    let up = FakeUpstream::new([answer(503, 300), answer(502, 50)]);
    let (cluster, store) = fake::cluster("", 2, &up);
    let start = Instant::now();
    let out = ok(run(&cluster, &policy(1, true), Some(ms(2000))).await);
    assert_eq!(start.elapsed(), ms(300));
    assert_eq!((out.response.status().as_u16(), out.attempts), (503, 2));
    assert_eq!(out.retry_stop, Some(RetryStop::LimitExceeded));
    assert_eq!(stat(&store, "upstream_rq_503"), 1);
    assert_eq!(stat(&store, "upstream_rq_502"), 0);
}

#[tokio::test(start_paused = true)]
async fn the_route_timeout_ends_every_attempt() {
    let up = FakeUpstream::new([Step::Hang, Step::Hang, Step::Hang]);
    let (cluster, store) = fake::cluster("", 2, &up);
    let start = Instant::now();
    let f = match run(&cluster, &policy(2, true), Some(ms(500))).await {
        Ok(o) => panic!("answered {}", o.response.status()),
        Err(f) => f,
    };
    assert_eq!(start.elapsed(), ms(500));
    assert_eq!((f.reason, f.attempts), (LocalReason::UpstreamTimeout, 3));
    assert_eq!(up.seen().len(), 3);
    assert_eq!(stat(&store, "upstream_rq_timeout"), 3, "one per attempt out, as Envoy");
    assert_eq!(stat(&store, "upstream_rq_per_try_timeout"), 0);
    assert_eq!(stat(&store, "upstream_rq_total"), 3);
    assert_eq!(stat(&store, "upstream_cx_destroy_local_with_active_rq"), 3);
}

#[tokio::test(start_paused = true)]
async fn without_retries_left_the_per_try_timeout_ends_nothing() {
    let up = FakeUpstream::new([answer(200, 400)]);
    let (cluster, store) = fake::cluster("", 1, &up);
    let start = Instant::now();
    let out = ok(run(&cluster, &policy(0, true), Some(ms(2000))).await);
    assert_eq!(start.elapsed(), ms(400));
    assert_eq!((out.response.status().as_u16(), out.attempts), (200, 1));
    assert_eq!(out.retry_stop, Some(RetryStop::LimitExceeded));
    assert_eq!(stat(&store, "upstream_rq_retry_limit_exceeded"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_recorded_body_is_sent_whole_by_the_hedge() {
    let up = FakeUpstream::new([answer(201, 1000), answer(200, 0)]);
    let (cluster, _store) = fake::cluster("", 2, &up);
    let source = crate::body::ReqBody::Full(Some(Bytes::from_static(b"streamed")));
    let recording = crate::body::replay::Recording::new(source, 1 << 20, crate::stats::Counter::default());
    let body = BodySource::Recorded(recording);
    let out = ok(forward(&cluster, &mut prepared(), body, Some(ms(2000)), Some(&policy(2, true)), None, &[]).await);
    assert_eq!(out.response.status(), 200);
    assert_eq!(up.seen().len(), 2);
    assert!(up.seen().iter().all(|s| s.body == "streamed"), "{:?}", up.seen());
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_is_not_hedged() {
    let up = FakeUpstream::new([answer(200, 400)]);
    let (cluster, _store) = fake::cluster("", 2, &up);
    let body = BodySource::Stream(Some(crate::body::ReqBody::Full(Some(Bytes::from_static(b"x")))));
    let start = Instant::now();
    let out = ok(forward(&cluster, &mut prepared(), body, Some(ms(2000)), Some(&policy(2, true)), None, &[]).await);
    assert_eq!(start.elapsed(), ms(400));
    assert_eq!((out.response.status().as_u16(), out.attempts), (200, 1));
    assert_eq!(up.seen().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_per_try_idle_timeout_hedges_too() {
    let up = FakeUpstream::new([answer(201, 1000), answer(200, 0)]);
    let (cluster, store) = fake::cluster("", 2, &up);
    let idle = RetryPolicy { per_try_timeout: None, per_try_idle_timeout: Some(ms(100)), ..policy(2, true) };
    let start = Instant::now();
    let out = ok(run(&cluster, &idle, Some(ms(2000))).await);
    assert!(start.elapsed() < ms(125), "answered after {:?}", start.elapsed());
    assert_eq!((out.response.status().as_u16(), out.attempts), (200, 2));
    assert_eq!(stat(&store, "upstream_rq_per_try_idle_timeout"), 0);
}
