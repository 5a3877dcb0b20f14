//! Envoy's request header limits on HTTP/2 streams: `max_request_headers_kb` and
//! `common_http_protocol_options.max_headers_count` (default 100), counted as Envoy counts
//! its header map (pseudo-headers included; bytes are names plus values). Over either, Envoy
//! resets the stream (INTERNAL_ERROR); HTTP/1 requests are bounded by the codec instead.
//!
//! Each connection that goes over them warns once, and those warnings are rate-limited
//! process-wide: one line a second at most, the next one saying how many were suppressed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::request::Parts;

/// Returned to hyper so that it resets the stream (hyper sends INTERNAL_ERROR, as Envoy).
#[derive(Debug, thiserror::Error)]
#[error("request headers over the connection manager's limits: stream reset")]
pub struct HeadersOverLimit;

/// Whether an HTTP/2 request's headers are over the limits.
pub fn over_limits(parts: &Parts, max_count: u32, max_bytes: usize) -> bool {
    let uri = &parts.uri;
    let pseudo = [
        (":method", Some(parts.method.as_str())),
        (":scheme", uri.scheme_str()),
        (":authority", uri.authority().map(|a| a.as_str())),
        (":path", uri.path_and_query().map(|p| p.as_str())),
    ];
    let present = pseudo.iter().filter_map(|(n, v)| v.map(|v| (n, v)));
    let count = parts.headers.len() + present.clone().count();
    if count > max_count as usize {
        return true;
    }
    let bytes: usize = present.map(|(n, v)| n.len() + v.len()).sum::<usize>()
        + parts.headers.iter().map(|(n, v)| n.as_str().len() + v.len()).sum::<usize>();
    bytes > max_bytes
}

/// A warning written at most once per `every`, counting the ones it held back.
pub struct RateLimitedWarning {
    every: Duration,
    origin: Instant,
    /// When the last line was written, in milliseconds since `origin` plus one (0: never).
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimitedWarning {
    pub fn new(every: Duration) -> Self {
        RateLimitedWarning { every, origin: Instant::now(), last_ms: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// `Some(suppressed since the last line)` when a line may be written now.
    pub fn admit(&self) -> Option<u64> {
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.every.as_millis() as u64;
        if due && self.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// The process-wide limiter of the over-limits warning.
pub fn warning() -> &'static RateLimitedWarning {
    static W: std::sync::OnceLock<RateLimitedWarning> = std::sync::OnceLock::new();
    W.get_or_init(|| RateLimitedWarning::new(Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(extra: usize, value: &str) -> Parts {
        let mut b = http::Request::builder().method("GET").uri("http://x/p").version(http::Version::HTTP_2);
        for i in 0..extra {
            b = b.header(format!("x-h{i}"), value);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn counts_pseudo_headers_as_envoy_does() {
        // 4 pseudo-headers + 96 = 100: at the default limit; one more is over.
        assert!(!over_limits(&parts(96, "v"), 100, 60 * 1024));
        assert!(over_limits(&parts(97, "v"), 100, 60 * 1024));
    }

    #[test]
    fn counts_bytes_of_names_and_values() {
        // ":method" GET (10) ":scheme" http (11) ":authority" x (11) ":path" /p (7) = 39,
        // plus "x-h0" and 61 bytes of value = 104.
        let p = parts(1, &"v".repeat(61));
        assert!(!over_limits(&p, 100, 104));
        assert!(over_limits(&p, 100, 103));
    }

    #[test]
    fn warnings_are_rate_limited_with_a_count() {
        let w = RateLimitedWarning::new(Duration::from_secs(3600));
        assert_eq!(w.admit(), Some(0));
        for _ in 0..5 {
            assert_eq!(w.admit(), None);
        }
        let w0 = RateLimitedWarning::new(Duration::ZERO);
        assert_eq!(w0.admit(), Some(0));
        assert_eq!(w0.admit(), Some(0));
        // Suppressed ones are reported by the next line written.
        let w = RateLimitedWarning { every: Duration::from_secs(3600), ..RateLimitedWarning::new(Duration::ZERO) };
        assert_eq!(w.admit(), Some(0));
        assert_eq!(w.admit(), None);
        assert_eq!(w.admit(), None);
        w.last_ms.store(1, Ordering::Relaxed);
        let w = RateLimitedWarning { every: Duration::ZERO, ..w };
        assert_eq!(w.admit(), Some(2));
    }
}
