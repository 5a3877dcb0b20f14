//! Histograms of whole milliseconds, as Envoy keeps them: every value lands in a bin of two
//! significant digits (Envoy's circllhist resolution: 1 -> [1, 1.1), 153 -> [150, 160)), from
//! which `/stats` computes Envoy's quantiles and `/stats/prometheus` its default buckets.
//!
//! Recording is three relaxed atomic adds; the bins are allocated on the first value, so a
//! histogram nothing records into costs a few words. The interval quantiles cover the last
//! completed flush period ([`Histogram::flush`], called by the server every
//! `stats_flush_interval`), as in Envoy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Envoy's default histogram bucket bounds (ms), the `le` labels of `/stats/prometheus`.
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 300000.0,
    600000.0, 1800000.0, 3600000.0,
];

/// [`BUCKETS`] as Prometheus `le` label values.
pub const BUCKET_LABELS: [&str; 19] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000", "60000",
    "300000", "600000", "1800000", "3600000",
];

/// The quantiles `/stats` prints (Envoy's `supported_quantiles`), in percent.
pub const QUANTILES: [f64; 10] = [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 100.0];

/// Exact bins for 0..100 (width 0.1 below 10, 1 from 10), then 90 two-digit mantissas per
/// decade for 10^2 .. 10^11 ms; larger values share the last bin.
const EXACT: usize = 100;
const DECADES: usize = 9;
const BINS: usize = EXACT + DECADES * 90;

fn bin_of(v: u64) -> usize {
    if v < EXACT as u64 {
        return v as usize;
    }
    let mut mantissa = v;
    let mut decade = 0usize;
    while mantissa >= 100 {
        mantissa /= 10;
        decade += 1;
    }
    if decade > DECADES {
        return BINS - 1;
    }
    EXACT + (decade - 1) * 90 + (mantissa as usize - 10)
}

/// (lower bound, width) of every bin, and the first of [`BUCKETS`] each bin counts in.
struct Tables {
    bounds: Vec<(f64, f64)>,
    bucket: Vec<usize>,
}

static TABLES: std::sync::LazyLock<Tables> = std::sync::LazyLock::new(|| {
    let bounds: Vec<(f64, f64)> = (0..BINS).map(compute_bounds).collect();
    let bucket = bounds.iter().map(|(low, _)| BUCKETS.iter().position(|b| low <= b).unwrap_or(BUCKETS.len())).collect();
    Tables { bounds, bucket }
});

fn bin_bounds(i: usize) -> (f64, f64) {
    TABLES.bounds[i]
}

fn compute_bounds(i: usize) -> (f64, f64) {
    match i {
        0 => (0.0, 0.0),
        1..10 => (i as f64, 0.1),
        10..EXACT => (i as f64, 1.0),
        _ => {
            let decade = (i - EXACT) / 90 + 1;
            let scale = 10f64.powi(decade as i32);
            (((i - EXACT) % 90 + 10) as f64 * scale, scale)
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    bins: OnceLock<Box<[AtomicU64]>>,
    count: AtomicU64,
    sum: AtomicU64,
    /// (bins at the last flush, bins recorded between the last two flushes).
    interval: Mutex<(Vec<u64>, Vec<u64>)>,
}

/// A histogram handle; clones share the values.
#[derive(Clone, Debug, Default)]
pub struct Histogram(Arc<Inner>);

impl Histogram {
    #[inline]
    pub fn record(&self, ms: u64) {
        let bins = self.0.bins.get_or_init(|| (0..BINS).map(|_| AtomicU64::new(0)).collect());
        bins[bin_of(ms)].fetch_add(1, Ordering::Relaxed);
        self.0.count.fetch_add(1, Ordering::Relaxed);
        self.0.sum.fetch_add(ms, Ordering::Relaxed);
    }

    /// Records a duration in whole milliseconds (Envoy truncates too).
    #[inline]
    pub fn record_duration(&self, d: Duration) {
        self.record(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> u64 {
        self.0.sum.load(Ordering::Relaxed)
    }

    fn cumulative_bins(&self) -> Vec<u64> {
        match self.0.bins.get() {
            Some(b) => b.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            None => Vec::new(),
        }
    }

    /// Ends a flush period: what was recorded since the previous flush becomes the interval.
    pub fn flush(&self) {
        let now = self.cumulative_bins();
        let mut guard = self.0.interval.lock().unwrap_or_else(|e| e.into_inner());
        let (last, interval) = &mut *guard;
        *interval = now.iter().enumerate().map(|(i, c)| c - last.get(i).copied().unwrap_or(0)).collect();
        *last = now;
    }

    /// Envoy's quantiles over everything recorded, or `None` with no values.
    pub fn cumulative_quantiles(&self) -> Option<[f64; 10]> {
        quantiles(&self.cumulative_bins())
    }

    /// Envoy's quantiles over the last flush period, or `None` with no values in it.
    pub fn interval_quantiles(&self) -> Option<[f64; 10]> {
        let guard = self.0.interval.lock().unwrap_or_else(|e| e.into_inner());
        quantiles(&guard.1)
    }

    /// Cumulative counts at or below each of [`BUCKETS`].
    pub fn buckets(&self) -> [u64; 19] {
        let mut out = [0u64; 20];
        if let Some(bins) = self.0.bins.get() {
            let table = &TABLES.bucket;
            for (i, c) in bins.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    out[table[i]] += n;
                }
            }
        }
        let mut cumulative = [0u64; 19];
        let mut sum = 0;
        for (slot, n) in cumulative.iter_mut().zip(out) {
            sum += n;
            *slot = sum;
        }
        cumulative
    }

    /// Nothing but the store holds it any more.
    pub(crate) fn orphaned(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

/// circllhist's quantiles: the k-th of a bin's n values sits at `low + width * k / (n + 1)`,
/// and quantile q is the value of rank `max(1, ceil(q * total))`.
fn quantiles(bins: &[u64]) -> Option<[f64; 10]> {
    let total: u64 = bins.iter().sum();
    if total == 0 {
        return None;
    }
    // The ranks grow with the quantiles: one walk over the bins serves them all.
    let ranks = QUANTILES.map(|q| ((q / 100.0 * total as f64).ceil() as u64).clamp(1, total));
    let mut out = [0.0; 10];
    let mut next = 0;
    let mut below = 0u64;
    for (i, &n) in bins.iter().enumerate() {
        if n == 0 {
            continue;
        }
        while next < ranks.len() && below + n >= ranks[next] {
            let (low, width) = bin_bounds(i);
            out[next] = low + width * (ranks[next] - below) as f64 / (n + 1) as f64;
            next += 1;
        }
        if next == ranks.len() {
            break;
        }
        below += n;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_have_two_significant_digits() {
        assert_eq!(bin_bounds(bin_of(0)), (0.0, 0.0));
        assert_eq!(bin_bounds(bin_of(7)), (7.0, 0.1));
        assert_eq!(bin_bounds(bin_of(42)), (42.0, 1.0));
        assert_eq!(bin_bounds(bin_of(153)), (150.0, 10.0));
        assert_eq!(bin_bounds(bin_of(3_600_000)), (3_600_000.0, 100_000.0));
        assert_eq!(bin_of(u64::MAX), BINS - 1);
        for v in [1u64, 9, 10, 99, 100, 999, 1000, 123_456_789] {
            let (low, width) = bin_bounds(bin_of(v));
            assert!(low <= v as f64 && (v as f64) < low + width.max(1.0), "{v}");
        }
    }

    #[test]
    fn quantiles_match_envoy() {
        // Envoy after three requests of 1 ms: P0 1.025, P50 1.05, P100 1.075.
        let h = Histogram::default();
        assert_eq!(h.cumulative_quantiles(), None);
        for _ in 0..3 {
            h.record(1);
        }
        let q = h.cumulative_quantiles().unwrap_or_default();
        assert_eq!((q[0], q[2], q[9]), (1.025, 1.05, 1.075));
        // Envoy with connection lengths 2, 3, 3 ms: P0 2.05, P50 3.0333.., P100 3.0666..
        let h = Histogram::default();
        for v in [2, 3, 3] {
            h.record(v);
        }
        let q = h.cumulative_quantiles().unwrap_or_default();
        assert_eq!(q[0], 2.05);
        assert!((q[2] - 3.0333333333333).abs() < 1e-9);
        assert!((q[9] - 3.0666666666666).abs() < 1e-9);
    }

    #[test]
    fn buckets_are_cumulative_and_interval_follows_flushes() {
        let h = Histogram::default();
        for v in [0, 1, 7, 250, 70_000] {
            h.record(v);
        }
        let b = h.buckets();
        assert_eq!(&b[..4], &[1, 2, 2, 3]);
        assert_eq!(b[7], 4);
        assert_eq!(b[18], 5);
        assert_eq!((h.count(), h.sum()), (5, 70_258));
        assert_eq!(h.interval_quantiles(), None);
        h.flush();
        assert!(h.interval_quantiles().is_some());
        h.flush();
        assert_eq!(h.interval_quantiles(), None);
    }
}
