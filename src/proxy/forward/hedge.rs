//! Envoy's `hedge_on_per_try_timeout`: an attempt's per-try timeout sends a retry (when the
//! retry policy has one left) without ending the attempt it timed, and the attempts race. The
//! first acceptable answer wins and the others are reset. An answer the policy would retry
//! but may not (the attempt was already hedged, or the retries are used up) is dropped while
//! another attempt is still out or a retry is waiting for its back-off, as Envoy waits for
//! those; so is a failed attempt. The route timeout still bounds the whole request.
//!
//! As checked against Envoy 1.40: a soft per-try timeout counts nothing
//! (`upstream_rq_per_try_timeout` stays; only outlier detection hears of it); the response's
//! `x-envoy-attempt-count` is the number of attempts sent, whichever answered; the access log
//! names the winner's host; a route timeout counts `upstream_rq_timeout` and a 504 for every
//! attempt still out and logs the latest attempt's host.

use std::sync::Arc;
use std::time::Duration;

use crate::upstream::response::UpstreamResponse;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::{
    attempt_timeout, backoff, build_request, request_end, reset_interval, retry_on_answer, retry_on_error,
    AttemptTemplate, BodySource, Expiry, Failure, Outcome, RetryStop,
};
use crate::body::progress::Progress;
use crate::config::model::RetryPolicy;
use crate::proxy::local_reply::LocalReason;
use crate::proxy::retry_hosts::RetryHosts;
use crate::stats::GaugeGuard;
use crate::upstream::{Cluster, Host, Local, UpstreamError};

/// An attempt still out.
struct Running {
    n: u32,
    host: Arc<Host>,
    sent: Instant,
    /// Its per-try timeout fired and a retry was sent for it.
    retried: bool,
    /// Its per-try timeout fired (outlier detection heard of it).
    timed_out: bool,
}

type Sent<'a> = BoxFuture<'a, (u32, Result<UpstreamResponse, UpstreamError>)>;

/// What the policy said to one more attempt.
enum Decision<'a> {
    Retry(crate::upstream::breakers::RetrySlot<'a>),
    /// Wanted but refused by the retry limit or the `max_retries` breaker (Envoy's
    /// "could not retry": the answer waits for the other attempts).
    Refused,
    No,
}

struct Race<'a> {
    cluster: &'a Arc<Cluster>,
    prepared: &'a AttemptTemplate,
    body: BodySource,
    policy: &'a RetryPolicy,
    timeout: Option<Duration>,
    progress: Option<&'a Progress>,
    start: Instant,
    max_attempts: u32,
    hosts: RetryHosts,
    /// Attempts sent (or tried: one that found no host counts too, as in the loop).
    attempt: u32,
    running: Vec<Running>,
    sends: FuturesUnordered<Sent<'a>>,
    timers: FuturesUnordered<BoxFuture<'a, (u32, Expiry)>>,
    /// Retries waiting out their back-off, each holding its `max_retries` slot.
    backoffs: FuturesUnordered<BoxFuture<'a, ()>>,
    connected: Option<Arc<Host>>,
    retry_stop: Option<RetryStop>,
    /// The host of the latest attempt, for a timeout's log line.
    last_host: Option<Arc<Host>>,
    /// Codes an internal redirect may follow: charged by the caller if passed on.
    deferred_codes: &'a [u16],
}

/// Races the attempts of one request under a policy with `hedge_on_per_try_timeout` and a
/// per-try (or per-try idle) timeout; otherwise as [`super::forward`].
pub(super) async fn forward(
    cluster: &Arc<Cluster>,
    prepared: &AttemptTemplate,
    body: BodySource,
    timeout: Option<Duration>,
    policy: &RetryPolicy,
    progress: Option<&Progress>,
    deferred_codes: &[u16],
) -> Result<Outcome, Failure> {
    let max_attempts = match &body {
        BodySource::Replayable(_) | BodySource::Recorded(_) if super::request_retriable(policy, prepared) => {
            1 + policy.num_retries
        }
        _ => 1,
    };
    let start = Instant::now();
    let mut race = Race {
        cluster,
        prepared,
        body,
        policy,
        timeout,
        progress,
        start,
        max_attempts,
        hosts: RetryHosts::new(Some(policy)),
        attempt: 0,
        running: Vec::new(),
        sends: FuturesUnordered::new(),
        timers: FuturesUnordered::new(),
        backoffs: FuturesUnordered::new(),
        connected: None,
        retry_stop: None,
        last_host: None,
        deferred_codes,
    };
    race.launch()?;
    let global = attempt_timeout(timeout, (None, None), start, progress, start);
    tokio::pin!(global);
    // Bounded: every turn ends an attempt, a timer or a back-off, or the request; attempts
    // are at most `1 + num_retries`.
    loop {
        tokio::select! {
            Some((n, result)) = race.sends.next() => {
                if let Some(done) = race.answered(n, result) {
                    return done;
                }
            }
            Some((n, expiry)) = race.timers.next() => race.soft_timeout(n, expiry),
            Some(()) = race.backoffs.next() => race.launch()?,
            _ = &mut global => return Err(race.timed_out()),
        }
        if race.sends.is_empty() && race.backoffs.is_empty() {
            // Only reached when a launch found nothing to send and nothing else is out.
            return Err(race.failure(LocalReason::UpstreamReset, None));
        }
    }
}

impl<'a> Race<'a> {
    fn deadline(&self) -> Option<Instant> {
        self.timeout.and_then(|t| request_end(self.start, self.progress).map(|e| e + t))
    }

    /// Whether anything else may still answer: an attempt out or a retry to come.
    fn others(&self) -> bool {
        !self.sends.is_empty() || !self.backoffs.is_empty()
    }

    fn failure(&self, reason: LocalReason, host: Option<Arc<Host>>) -> Failure {
        Failure {
            reason,
            host,
            attempts: self.attempt.max(1),
            details: None,
            connected: self.connected.clone(),
            retry_stop: self.retry_stop,
        }
    }

    /// Sends the next attempt. A failure to send one ends the request only when nothing else
    /// is out, as when Envoy's retry finds no host or connection slot.
    fn launch(&mut self) -> Result<(), Failure> {
        let stats = &self.cluster.stats;
        self.attempt += 1;
        let alone = self.sends.is_empty();
        let Some(host) = self.hosts.choose(self.cluster, self.prepared.lb_hash) else {
            stats.upstream_cx_none_healthy.inc();
            stats.lb_healthy_panic.inc();
            return self.give_up(alone, LocalReason::NoHealthyUpstream, None);
        };
        // The first attempt streams the body (recording it); a hedge runs beside an attempt
        // still out, so it sends a copy of the whole body instead of taking the stream over.
        let req_body = if alone { self.body.take() } else { self.body.copy() };
        let Some(req_body) = req_body else {
            return self.give_up(alone, LocalReason::UpstreamReset, Some(host));
        };
        let Some(request_slot) = self.cluster.breakers.request(&stats.upstream_rq_active) else {
            return self.give_up(alone, LocalReason::Overflow, Some(host));
        };
        self.hosts.attempted(&host);
        let n = self.attempt;
        let req = build_request(self.cluster, self.prepared, self.prepared.headers.clone(), req_body, n, &host);
        if n > 1 {
            stats.upstream_rq_retry.inc();
        }
        let sent = Instant::now();
        let sending = Arc::clone(&host);
        self.sends.push(Box::pin(async move {
            let _slot = request_slot;
            let _host_active = GaugeGuard::new(&sending.stats.rq_active);
            (n, sending.pool.send(req).await)
        }));
        let per_try = (self.policy.per_try_timeout, self.policy.per_try_idle_timeout);
        let (start, progress) = (self.start, self.progress);
        self.timers.push(Box::pin(async move { (n, attempt_timeout(None, per_try, start, progress, sent).await) }));
        self.running.push(Running { n, host: Arc::clone(&host), sent, retried: false, timed_out: false });
        self.last_host = Some(host);
        Ok(())
    }

    fn give_up(&mut self, alone: bool, reason: LocalReason, host: Option<Arc<Host>>) -> Result<(), Failure> {
        if alone && self.backoffs.is_empty() {
            return Err(self.failure(reason, host));
        }
        Ok(())
    }

    /// Whether the policy's wish for another attempt is granted: the body can be sent again,
    /// time is left, the retry limit and the `max_retries` breaker allow it. `hold`: the
    /// attempt that ended was the last one out (a streamed body's reader stops for the retry).
    fn decide(&mut self, wants: bool, hold: bool) -> Decision<'a> {
        let cluster: &'a Arc<Cluster> = self.cluster;
        if !wants || self.body.abandoned() || self.deadline().is_some_and(|d| Instant::now() >= d) {
            return Decision::No;
        }
        if self.attempt >= self.max_attempts {
            cluster.stats.upstream_rq_retry_limit_exceeded.inc();
            self.retry_stop = Some(RetryStop::LimitExceeded);
            return Decision::Refused;
        }
        let Some(slot) = cluster.breakers.retry() else {
            self.retry_stop = Some(RetryStop::Overflow);
            return Decision::Refused;
        };
        if hold && !self.body.hold() {
            return Decision::No;
        }
        Decision::Retry(slot)
    }

    /// Sends a retry once its back-off is over (from the attempt count at the decision).
    fn schedule(&mut self, slot: crate::upstream::breakers::RetrySlot<'a>, asked: Option<Duration>) {
        let (cluster, policy, attempt, deadline) = (self.cluster, self.policy, self.attempt, self.deadline());
        self.backoffs.push(Box::pin(async move {
            let _slot = slot;
            backoff(cluster, Some(policy), attempt, asked, deadline).await;
        }));
    }

    fn take_running(&mut self, n: u32) -> Option<Running> {
        let i = self.running.iter().position(|r| r.n == n)?;
        Some(self.running.swap_remove(i))
    }

    /// Attempt `n`'s per-try timeout: the attempt goes on and, if the policy allows, a retry
    /// is sent beside it (Envoy retries here whatever the `retry_on` conditions, given any).
    fn soft_timeout(&mut self, n: u32, expiry: Expiry) {
        debug_assert!(expiry != Expiry::Global);
        let Some(i) = self.running.iter().position(|r| r.n == n) else {
            return;
        };
        self.running[i].timed_out = true;
        let host = Arc::clone(&self.running[i].host);
        // Told to outlier detection now, though the attempt may still answer well.
        self.cluster.outlier_local(&host, Local::ConnectSuccess);
        self.cluster.outlier_local(&host, Local::Timeout);
        if let Decision::Retry(slot) = self.decide(self.policy.retry_on.any(), false) {
            // Only a hedged attempt is exempt from the policy afterwards (Envoy's `retried`).
            self.running[i].retried = true;
            self.schedule(slot, None);
        }
    }

    /// Attempt `n` answered or failed: the winner, or dropped while others may still answer.
    fn answered(
        &mut self,
        n: u32,
        result: Result<UpstreamResponse, UpstreamError>,
    ) -> Option<Result<Outcome, Failure>> {
        let Running { host, sent, retried, .. } = self.take_running(n)?;
        let (cluster, policy) = (self.cluster, self.policy);
        let stats = &cluster.stats;
        if !matches!(&result, Err(e) if e.before_connection()) {
            stats.upstream_rq_total.inc();
            host.stats.rq_total.inc();
        }
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                cluster.outlier_local(&host, Local::ConnectSuccess);
                cluster.outlier_result(&host, status);
                let wants = retry_on_answer(policy, status, response.headers());
                let could_not_retry = if retried {
                    wants
                } else {
                    match self.decide(wants, self.sends.is_empty()) {
                        Decision::Retry(slot) => {
                            host.stats.rq_error.inc();
                            stats.charge_retried(status);
                            self.connected = Some(host);
                            let asked =
                                policy.rate_limited.as_ref().and_then(|r| reset_interval(r, response.headers()));
                            self.schedule(slot, asked);
                            return None;
                        }
                        Decision::Refused => true,
                        Decision::No => false,
                    }
                };
                if could_not_retry && self.others() {
                    host.stats.rq_error.inc();
                    self.connected = Some(host);
                    return None;
                }
                if status >= 500 {
                    host.stats.rq_error.inc();
                } else {
                    host.stats.rq_success.inc();
                }
                self.reset_others();
                if !self.deferred_codes.contains(&status) {
                    stats.charge(status, self.prepared.internal);
                }
                // Envoy counts a success when an answer it asks the policy about (not one of
                // an attempt already hedged) is not retriable, after some retry was sent.
                if self.attempt > 1 && !retried && !wants {
                    stats.upstream_rq_retry_success.inc();
                }
                let end = request_end(self.start, self.progress);
                Some(Ok(Outcome {
                    response,
                    host,
                    // Counted from the request's end, as Envoy's header, whichever attempt won.
                    service_time: end.unwrap_or(self.start).elapsed(),
                    sent: sent.into_std(),
                    attempts: self.attempt,
                    deadline: self.deadline(),
                    retry_stop: self.retry_stop,
                }))
            }
            Err(e) => {
                let reason = super::attempt_failed(cluster, &host, &e);
                if matches!(e, UpstreamError::Reset { .. }) {
                    self.connected = Some(Arc::clone(&host));
                }
                if !retried {
                    if let Decision::Retry(slot) = self.decide(retry_on_error(policy, reason), self.sends.is_empty()) {
                        self.schedule(slot, None);
                        return None;
                    }
                }
                if self.others() {
                    return None;
                }
                let details = Some(crate::proxy::local_reply::reset_details(&e));
                let host = (!matches!(e, UpstreamError::PendingOverflow { .. })).then_some(host);
                let mut f = self.failure(reason, host);
                f.details = details;
                Some(Err(f))
            }
        }
    }

    /// The attempts still out lose: dropped, which resets them (an HTTP/1.1 connection with
    /// them).
    fn reset_others(&mut self) {
        let stats = &self.cluster.stats;
        let h1 = self.cluster.config.protocol == crate::config::model::UpstreamProtocol::Http1;
        for r in &self.running {
            // Counted as on a connection: a connect still pending is not told apart here.
            stats.upstream_rq_total.inc();
            r.host.stats.rq_total.inc();
            if h1 {
                stats.upstream_cx_destroy_with_active_rq.inc();
                stats.upstream_cx_destroy_local_with_active_rq.inc();
            }
        }
        self.sends.clear();
        self.running.clear();
    }

    /// The route timeout: every attempt still out ends, each counted as Envoy counts them.
    fn timed_out(&mut self) -> Failure {
        let stats = &self.cluster.stats;
        for (i, r) in self.running.iter().enumerate() {
            stats.upstream_rq_timeout.inc();
            r.host.stats.rq_timeout.inc();
            // Envoy charges its 504 to every attempt it ends; the router charges one.
            if i > 0 {
                stats.charge(504, self.prepared.internal);
            }
            if !r.timed_out {
                self.cluster.outlier_local(&r.host, Local::ConnectSuccess);
                self.cluster.outlier_local(&r.host, Local::Timeout);
            }
        }
        if self.running.is_empty() {
            stats.upstream_rq_timeout.inc();
        }
        self.connected = self.last_host.clone().or(self.connected.take());
        self.reset_others();
        self.failure(LocalReason::UpstreamTimeout, self.last_host.clone())
    }
}

#[cfg(test)]
mod tests;
