//! The token bucket: refilled continuously at `tokens_per_fill / fill_interval` up to
//! `max_tokens`, as Envoy 1.40's atomic bucket (no fill timer). Its whole state is one atomic,
//! the instant at which the bucket was (or would have been) empty; a request takes a token
//! with a compare-and-swap, never a lock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::model::TokenBucketConfig;

pub struct Bucket {
    max_tokens: u32,
    /// Nanoseconds per token.
    ns_per_token: f64,
    origin: Instant,
    /// Nanoseconds after `origin` at which the bucket is empty; earlier means tokens.
    empty_at: AtomicI64,
}

/// What the `x-ratelimit-*` headers say of a bucket after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until a token is available (0 while one is).
    pub reset: u64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(c: &TokenBucketConfig) -> Self {
        let interval = c.fill_interval.as_nanos() as f64;
        let ns_per_token = interval / f64::from(c.tokens_per_fill.max(1));
        let full = ns_per_token * f64::from(c.max_tokens);
        Bucket {
            max_tokens: c.max_tokens,
            ns_per_token,
            origin: Instant::now(),
            empty_at: AtomicI64::new(-(full as i64)),
        }
    }

    fn now_ns(&self) -> i64 {
        i64::try_from(Instant::now().saturating_duration_since(self.origin).as_nanos()).unwrap_or(i64::MAX)
    }

    fn tokens_at(&self, now: i64, empty_at: i64) -> f64 {
        let t = (now.saturating_sub(empty_at)) as f64 / self.ns_per_token;
        t.min(f64::from(self.max_tokens))
    }

    /// Takes a token if there is one.
    pub fn consume(&self) -> bool {
        let now = self.now_ns();
        let mut empty_at = self.empty_at.load(Ordering::Relaxed);
        loop {
            let tokens = self.tokens_at(now, empty_at);
            if tokens < 1.0 {
                return false;
            }
            let next = now - ((tokens - 1.0) * self.ns_per_token) as i64;
            match self.empty_at.compare_exchange_weak(empty_at, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => empty_at = seen,
            }
        }
    }

    /// Tokens per second, to try the strictest of several matching descriptors first.
    pub fn fill_rate(&self) -> f64 {
        1e9 / self.ns_per_token
    }

    pub fn snapshot(&self) -> Snapshot {
        let now = self.now_ns();
        let tokens = self.tokens_at(now, self.empty_at.load(Ordering::Relaxed));
        let reset = if tokens >= 1.0 {
            0
        } else {
            Duration::from_nanos(((1.0 - tokens) * self.ns_per_token) as u64).as_secs_f64().ceil() as u64
        };
        Snapshot { limit: self.max_tokens, remaining: tokens.max(0.0) as u32, reset }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(max: u32, per_fill: u32, secs: u64) -> Bucket {
        Bucket::new(&TokenBucketConfig {
            max_tokens: max,
            tokens_per_fill: per_fill,
            fill_interval: Duration::from_secs(secs),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn starts_full_and_empties() {
        let b = bucket(3, 1, 60);
        assert_eq!(b.snapshot(), Snapshot { limit: 3, remaining: 3, reset: 0 });
        assert!(b.consume() && b.consume() && b.consume());
        assert!(!b.consume());
        assert_eq!(b.snapshot(), Snapshot { limit: 3, remaining: 0, reset: 60 });
    }

    #[tokio::test(start_paused = true)]
    async fn refills_at_its_rate_up_to_max() {
        let b = bucket(2, 2, 10);
        assert!(b.consume() && b.consume() && !b.consume());
        tokio::time::advance(Duration::from_millis(4_900)).await;
        assert!(!b.consume(), "a token takes 5 s");
        assert_eq!(b.snapshot().reset, 1);
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(b.consume());
        assert!(!b.consume());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(b.snapshot().remaining, 2, "never more than max_tokens");
        assert!(b.consume() && b.consume() && !b.consume());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_takers_get_exactly_max_tokens() {
        let b = std::sync::Arc::new(bucket(1000, 1, 3600));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..400).filter(|_| b.consume()).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(taken, 1000);
    }
}
