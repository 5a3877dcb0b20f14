//! The stats store: Envoy-named counters and gauges, registered off the request path.
//!
//! A handle ([`Counter`], [`Gauge`]) is an `Arc` around an atomic; the request path only does
//! `inc()`/`add()`/`dec()` on handles resolved when a snapshot was built. Registration takes a
//! lock and happens at build time (or once per lazily-created status-code counter). Rendering
//! (`/stats`, `/stats/prometheus`) lives in [`render`].

pub mod histogram;
pub mod io;
pub mod paired;
pub mod render;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub use histogram::Histogram;

/// A monotonically increasing count.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn value(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Increments and returns the new value.
    #[inline]
    pub fn inc_get(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
    /// Decrements and returns the new value.
    #[inline]
    pub fn dec_get(&self) -> i64 {
        self.0.fetch_sub(1, Ordering::Relaxed) - 1
    }
    /// Adds `n` (negative to subtract).
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn value(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge that decrements when dropped: tracks "active" things across `.await`s and panics.
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    pub fn new(g: &Gauge) -> Self {
        g.inc();
        GaugeGuard(g.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A text stat (Envoy's text readouts, e.g. `version_text`).
#[derive(Clone, Debug, Default)]
pub struct TextReadout(Arc<Mutex<String>>);

impl TextReadout {
    pub fn set(&self, v: &str) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.clear();
        s.push_str(v);
    }
    pub fn value(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Metric {
    Counter(Counter),
    Gauge(Gauge),
    Text(TextReadout),
    Histogram(Histogram),
}

/// Every stat by its Envoy dotted name.
#[derive(Debug, Default)]
pub struct Store {
    metrics: Mutex<BTreeMap<String, Metric>>,
}

impl Store {
    pub fn new() -> Arc<Store> {
        Arc::new(Store::default())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Metric>> {
        // A panic while holding this lock leaves the map consistent (inserts are atomic).
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counter with this name, created at zero if new.
    pub fn counter(&self, name: &str) -> Counter {
        let mut m = self.lock();
        if let Some(Metric::Counter(c)) = m.get(name) {
            return c.clone();
        }
        let c = Counter::default();
        m.insert(name.to_string(), Metric::Counter(c.clone()));
        c
    }

    /// The gauge with this name, created at zero if new.
    pub fn gauge(&self, name: &str) -> Gauge {
        let mut m = self.lock();
        if let Some(Metric::Gauge(g)) = m.get(name) {
            return g.clone();
        }
        let g = Gauge::default();
        m.insert(name.to_string(), Metric::Gauge(g.clone()));
        g
    }

    /// The text readout with this name, created empty if new.
    pub fn text(&self, name: &str) -> TextReadout {
        let mut m = self.lock();
        if let Some(Metric::Text(t)) = m.get(name) {
            return t.clone();
        }
        let t = TextReadout::default();
        m.insert(name.to_string(), Metric::Text(t.clone()));
        t
    }

    /// The histogram with this name, created empty if new.
    pub fn histogram(&self, name: &str) -> Histogram {
        let mut m = self.lock();
        if let Some(Metric::Histogram(h)) = m.get(name) {
            return h.clone();
        }
        let h = Histogram::default();
        m.insert(name.to_string(), Metric::Histogram(h.clone()));
        h
    }

    /// Every histogram, sorted by name.
    pub fn histograms(&self) -> Vec<(String, Histogram)> {
        self.lock()
            .iter()
            .filter_map(|(k, m)| match m {
                Metric::Histogram(h) => Some((k.clone(), h.clone())),
                _ => None,
            })
            .collect()
    }

    /// Ends a flush period for every histogram (their interval quantiles).
    pub fn flush_histograms(&self) {
        for (_, h) in self.histograms() {
            h.flush();
        }
    }

    /// Current value of a numeric stat, for tests and the admin.
    pub fn value(&self, name: &str) -> Option<i64> {
        match self.lock().get(name)? {
            Metric::Counter(c) => Some(c.value() as i64),
            Metric::Gauge(g) => Some(g.value()),
            Metric::Text(_) | Metric::Histogram(_) => None,
        }
    }

    /// A sorted copy of every numeric stat: (name, value, is_counter).
    pub fn entries(&self) -> Vec<(String, i64, bool)> {
        self.lock()
            .iter()
            .filter_map(|(k, m)| match m {
                Metric::Counter(c) => Some((k.clone(), c.value() as i64, true)),
                Metric::Gauge(g) => Some((k.clone(), g.value(), false)),
                Metric::Text(_) | Metric::Histogram(_) => None,
            })
            .collect()
    }

    /// A sorted copy of every text readout.
    pub fn texts(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .filter_map(|(k, m)| match m {
                Metric::Text(t) => Some((k.clone(), t.value())),
                _ => None,
            })
            .collect()
    }

    /// Drops stats under `prefix` that nothing but the store holds any more (a cluster or
    /// listener removed by a reload), so thousands of reloads do not grow the store.
    pub fn retain_live(&self, prefix: &str) {
        self.lock().retain(|k, m| {
            !k.starts_with(prefix)
                || match m {
                    Metric::Counter(c) => Arc::strong_count(&c.0) > 1,
                    Metric::Gauge(g) => Arc::strong_count(&g.0) > 1,
                    Metric::Text(t) => Arc::strong_count(&t.0) > 1,
                    Metric::Histogram(h) => !h.orphaned(),
                }
        });
    }

    /// Sets every counter back to zero (the admin's `/reset_counters`); gauges and text
    /// readouts keep their values, as in Envoy.
    pub fn reset_counters(&self) {
        for m in self.lock().values() {
            if let Metric::Counter(c) = m {
                c.0.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Status-code counters (`<prefix>_200`, `<prefix>_2xx`) created on first use, so the store
/// holds only codes seen, while the request path pays a lock only the first time.
pub struct CodeCounters {
    store: Arc<Store>,
    prefix: String,
    classes: [OnceLock<Counter>; 5],
    codes: Box<[OnceLock<Counter>]>,
}

impl CodeCounters {
    /// `prefix` like `cluster.a.upstream_rq`. With `eager_classes` the `_1xx`..`_5xx` counters
    /// exist from the start (Envoy shows `downstream_rq_2xx: 0` before any request).
    pub fn new(store: &Arc<Store>, prefix: &str, eager_classes: bool) -> Self {
        let classes: [OnceLock<Counter>; 5] = Default::default();
        if eager_classes {
            for (i, cell) in classes.iter().enumerate() {
                let _ = cell.set(store.counter(&format!("{prefix}_{}xx", i + 1)));
            }
        }
        CodeCounters {
            store: store.clone(),
            prefix: prefix.to_string(),
            classes,
            codes: (0..500).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts one response with this status; codes outside 100..=599 count nowhere.
    pub fn record(&self, status: u16) {
        if !(100..600).contains(&status) {
            return;
        }
        let idx = usize::from(status - 100);
        self.codes[idx].get_or_init(|| self.store.counter(&format!("{}_{}", self.prefix, status))).inc();
        let class = idx / 100;
        self.classes[class].get_or_init(|| self.store.counter(&format!("{}_{}xx", self.prefix, class + 1))).inc();
    }
}
