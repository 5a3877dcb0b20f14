//! The gRPC-Web filter's stats, as Envoy 1.40 charges them: for a gRPC-Web request routed to a
//! cluster whose `:path` is `/<service>/<method>` (the query cut off, empty segments skipped),
//! each `grpc-status` of the response (in its headers, a trailers-only answer, or in its
//! trailers) counts `cluster.<stat name>.grpc-web.<service>.<method>.<grpc-status>`, `.success`
//! (status `0`) or `.failure`, and `.total`. An answer with no `grpc-status` (a local reply, a
//! response that is not gRPC) counts nothing. Every name is made on first use, as Envoy's
//! dynamic stat names are.
//!
//! Service and method names come from clients, so the counters are found without a lock: a
//! map per filter, read through an `ArcSwap` and copied on the rare miss. It holds at most
//! [`MAX_CACHED`] paths; past that a new path still counts, through the store's lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::stats::{Counter, Store};

/// Paths whose counters a filter keeps at hand.
const MAX_CACHED: usize = 4096;

/// The counters of one service and method in one cluster.
pub struct MethodStats {
    store: Arc<Store>,
    /// `cluster.<stat name>.grpc-web.<service>.<method>`
    prefix: Box<str>,
    total: OnceLock<Counter>,
    success: OnceLock<Counter>,
    failure: OnceLock<Counter>,
    /// The well-known statuses `0`..=`16`; any other value counts under its own text.
    statuses: [OnceLock<Counter>; 17],
}

impl MethodStats {
    fn counter(&self, cell: &OnceLock<Counter>, name: &str) -> Counter {
        cell.get_or_init(|| self.store.counter(&format!("{}.{name}", self.prefix))).clone()
    }

    /// One response's `grpc-status`.
    pub fn charge(&self, status: &HeaderValue) {
        let Ok(text) = status.to_str() else { return };
        let known = text.parse::<usize>().ok().filter(|n| *n <= 16 && n.to_string() == text);
        match known {
            Some(n) => self.counter(&self.statuses[n], text).inc(),
            None => self.store.counter(&format!("{}.{text}", self.prefix)).inc(),
        }
        if text == "0" {
            self.counter(&self.success, "success").inc();
        } else {
            self.counter(&self.failure, "failure").inc();
        }
        self.counter(&self.total, "total").inc();
    }
}

/// `/<service>/<method>` of a `:path`, as Envoy's `resolveServiceAndMethod` reads it.
pub fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let path = path.split('?').next().unwrap_or("");
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let (service, method) = (parts.next()?, parts.next()?);
    parts.next().is_none().then_some((service, method))
}

type Cache = HashMap<Box<str>, HashMap<Box<str>, Arc<MethodStats>>>;

/// One gRPC-Web filter's counters, by cluster stat name and path.
pub struct WebStats {
    store: Arc<Store>,
    cache: ArcSwap<Cache>,
    /// Serialises misses, so a copy of the map never loses another's insert.
    writer: Mutex<usize>,
}

impl WebStats {
    pub fn new(store: &Arc<Store>) -> Self {
        WebStats { store: Arc::clone(store), cache: ArcSwap::default(), writer: Mutex::new(0) }
    }

    /// The counters of a request to `cluster` (its stat name) at `path`; `None` when the path
    /// names no service and method.
    pub fn method(&self, cluster: &str, path: &str) -> Option<Arc<MethodStats>> {
        let path = path.split('?').next().unwrap_or("");
        if let Some(m) = self.cache.load().get(cluster).and_then(|paths| paths.get(path)) {
            return Some(Arc::clone(m));
        }
        let (service, method) = service_and_method(path)?;
        let mut cached = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = self.cache.load().get(cluster).and_then(|paths| paths.get(path)) {
            return Some(Arc::clone(m));
        }
        let stats = Arc::new(MethodStats {
            store: Arc::clone(&self.store),
            prefix: format!("cluster.{cluster}.grpc-web.{service}.{method}").into(),
            total: OnceLock::new(),
            success: OnceLock::new(),
            failure: OnceLock::new(),
            statuses: Default::default(),
        });
        if *cached < MAX_CACHED {
            let mut next = Cache::clone(&self.cache.load());
            next.entry(cluster.into()).or_default().insert(path.into(), Arc::clone(&stats));
            self.cache.store(Arc::new(next));
            *cached += 1;
        }
        Some(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_and_method_as_envoy_splits_the_path() {
        assert_eq!(service_and_method("/pkg.Svc/Get"), Some(("pkg.Svc", "Get")));
        assert_eq!(service_and_method("/q.S/M?x=1"), Some(("q.S", "M")));
        assert_eq!(service_and_method("/x.Y//Z"), Some(("x.Y", "Z")));
        assert_eq!(service_and_method("/q.S/M/"), Some(("q.S", "M")));
        assert_eq!(service_and_method("/foo"), None);
        assert_eq!(service_and_method("/a/b/c"), None);
        assert_eq!(service_and_method("/?a/b"), None);
    }

    #[test]
    fn statuses_count_by_name_with_success_failure_and_total() {
        let store = Store::new();
        let stats = WebStats::new(&store);
        let get = stats.method("c", "/pkg.Svc/Get?x").unwrap_or_else(|| panic!("a method"));
        get.charge(&HeaderValue::from_static("0"));
        let again = stats.method("c", "/pkg.Svc/Get").unwrap_or_else(|| panic!("a method"));
        assert!(Arc::ptr_eq(&get, &again), "one entry per path without its query");
        again.charge(&HeaderValue::from_static("5"));
        again.charge(&HeaderValue::from_static("abc"));
        again.charge(&HeaderValue::from_static("05"));
        let v = |n: &str| store.value(&format!("cluster.c.grpc-web.pkg.Svc.Get.{n}"));
        assert_eq!((v("0"), v("5"), v("abc"), v("05")), (Some(1), Some(1), Some(1), Some(1)));
        assert_eq!((v("success"), v("failure"), v("total")), (Some(1), Some(3), Some(4)));
        assert!(stats.method("c", "/nope").is_none());
        assert_eq!(store.entries().len(), 7, "nothing made before it counts");
    }
}
