//! Envoy's runtime (`layered_runtime`): values by key that override what the code reading a
//! runtime key would otherwise use (the fault filter's `fault.http.*`, the `runtime_key` of a
//! `RuntimeFractionalPercent`, `RuntimeFeatureFlag` or `RuntimeDouble`). Layers apply in order,
//! a later one overriding an earlier one:
//!
//! - `static_layer`: the bootstrap's struct, nested keys joined with `.` ([`load::flatten`]);
//! - `disk_layer`: every file under `symlink_root/subdirectory[/<service cluster>]`, its key the
//!   path below there with `/` as `.`, its value its lines less `#` comments ([`load::disk`]);
//! - `admin_layer`: what the admin's `POST /runtime_modify` set.
//!
//! A disk layer is read again when its `symlink_root` is replaced: Envoy watches for a new
//! symlink moved onto it (`ln -s v2 new && mv -Tf new current`), and a file changed in place is
//! not seen until then. legate polls the root's identity (device, inode, change time) every
//! [`POLL`]. Each load builds a new [`Snapshot`] (values parsed once, [`Entry`]) swapped in
//! whole; a request reads it with one atomic load and no lock. The `runtime.*` stats are
//! Envoy's (counters `load_success`, `load_error`, `override_dir_exists`,
//! `override_dir_not_exists`, `deprecated_feature_use`; gauges `num_keys`, `num_layers`,
//! `admin_overrides_active`, `deprecated_feature_seen_since_process_start`).

mod entry;
mod load;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::filters::Fraction;
use crate::stats::{Counter, Gauge, Store};

pub use entry::Entry;
pub use load::flatten;

/// How often a disk layer's root is looked at.
pub const POLL: Duration = Duration::from_millis(250);

/// One `layered_runtime.layers` entry, as the bootstrap gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeLayer {
    /// `static_layer`, flattened.
    Static(Vec<(String, String)>),
    /// `disk_layer`
    Disk { symlink_root: PathBuf, subdirectory: String, append_service_cluster: bool },
    /// `admin_layer`
    Admin,
}

/// The values of one load: each layer's, and the result.
#[derive(Default)]
pub struct Snapshot {
    entries: HashMap<String, Entry>,
    layers: Vec<Arc<HashMap<String, String>>>,
}

impl Snapshot {
    fn new(layers: Vec<Arc<HashMap<String, String>>>) -> Snapshot {
        let mut entries = HashMap::new();
        for layer in &layers {
            for (k, v) in layer.iter() {
                entries.insert(k.clone(), Entry::parse(v));
            }
        }
        Snapshot { entries, layers }
    }

    fn get(&self, key: &str) -> Option<&Entry> {
        if key.is_empty() {
            return None;
        }
        self.entries.get(key)
    }
}

/// `runtime.*`
struct RuntimeStats {
    load_success: Counter,
    override_dir_exists: Counter,
    override_dir_not_exists: Counter,
    num_keys: Gauge,
    num_layers: Gauge,
    admin_overrides_active: Gauge,
}

impl RuntimeStats {
    fn new(store: &Store) -> RuntimeStats {
        // Registered as Envoy does; legate never counts a failed load or a deprecated field.
        let _ = store.counter("runtime.load_error");
        let _ = store.counter("runtime.deprecated_feature_use");
        let _ = store.gauge("runtime.deprecated_feature_seen_since_process_start");
        RuntimeStats {
            load_success: store.counter("runtime.load_success"),
            override_dir_exists: store.counter("runtime.override_dir_exists"),
            override_dir_not_exists: store.counter("runtime.override_dir_not_exists"),
            num_keys: store.gauge("runtime.num_keys"),
            num_layers: store.gauge("runtime.num_layers"),
            admin_overrides_active: store.gauge("runtime.admin_overrides_active"),
        }
    }
}

/// The running values and where they come from.
#[derive(Default)]
pub struct Runtime {
    layers: Vec<(String, RuntimeLayer)>,
    service_cluster: String,
    snapshot: ArcSwap<Snapshot>,
    /// One load at a time (the disk watcher and `/runtime_modify`); never taken by a request.
    loading: Mutex<()>,
    stats: Option<RuntimeStats>,
}

impl Runtime {
    /// No layer: every key has its default.
    pub fn empty() -> Arc<Runtime> {
        Arc::new(Runtime::default())
    }

    /// The layers read once, without stats; [`Runtime::watch`] keeps disk layers current.
    pub fn new(layers: &[(String, RuntimeLayer)], service_cluster: &str) -> Arc<Runtime> {
        Arc::new(Runtime::build(layers, service_cluster, None))
    }

    /// As [`Runtime::new`], counting in `runtime.*`.
    pub fn with_stats(layers: &[(String, RuntimeLayer)], service_cluster: &str, store: &Store) -> Arc<Runtime> {
        let rt = Runtime::build(layers, service_cluster, Some(RuntimeStats::new(store)));
        // Envoy loads its runtime twice at start (when created, and again once the cluster
        // manager is up): its `load_success` starts at 2.
        rt.publish(Snapshot::new(rt.snapshot.load().layers.clone()));
        Arc::new(rt)
    }

    fn build(layers: &[(String, RuntimeLayer)], service_cluster: &str, stats: Option<RuntimeStats>) -> Runtime {
        let rt = Runtime {
            layers: layers.to_vec(),
            service_cluster: service_cluster.to_string(),
            stats,
            ..Runtime::default()
        };
        let read: Vec<_> = rt.layers.iter().map(|(_, l)| Arc::new(rt.read_layer(l))).collect();
        rt.publish(Snapshot::new(read));
        rt
    }

    /// Whether any key is set (a request skips the look-ups otherwise).
    pub fn is_empty(&self) -> bool {
        self.snapshot.load().entries.is_empty()
    }

    /// The current values, for several look-ups of one request (one atomic load).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// `key` as an unsigned integer, or `default` (Envoy's `getInteger`).
    pub fn integer(&self, key: &str, default: u64) -> u64 {
        self.snapshot.load().get(key).and_then(|e| e.uint).unwrap_or(default)
    }

    /// `key` as a double, or `default` (Envoy's `getDouble`).
    pub fn double(&self, key: &str, default: f64) -> f64 {
        self.snapshot.load().get(key).and_then(|e| e.double).unwrap_or(default)
    }

    /// `key` as a boolean, or `default` (Envoy's `getBoolean`: a `RuntimeFeatureFlag`).
    pub fn boolean(&self, key: &str, default: bool) -> bool {
        self.snapshot.load().get(key).and_then(|e| e.boolean).unwrap_or(default)
    }

    /// The fraction `key` sets, or `default` (Envoy's `featureEnabled` with a
    /// `FractionalPercent` default: an integer value is a percentage, a map a fraction).
    pub fn percent(&self, key: &str, default: Fraction) -> Fraction {
        self.snapshot.load().get(key).and_then(Entry::percent).unwrap_or(default)
    }

    /// One draw of [`Runtime::percent`] (a `RuntimeFractionalPercent`).
    pub fn enabled(&self, key: &str, default: Fraction) -> bool {
        hit(self.percent(key, default))
    }

    /// [`Runtime::percent`] decided by `random` (Envoy's `featureEnabled` with a random
    /// value: `random % denominator < numerator`).
    pub fn enabled_with(&self, key: &str, default: Fraction, random: u64) -> bool {
        let p = self.percent(key, default);
        p.denominator > 0 && random % u64::from(p.denominator) < u64::from(p.numerator)
    }

    fn read_layer(&self, layer: &RuntimeLayer) -> HashMap<String, String> {
        match layer {
            RuntimeLayer::Static(pairs) => pairs.iter().cloned().collect(),
            RuntimeLayer::Admin => HashMap::new(),
            RuntimeLayer::Disk { symlink_root, subdirectory, append_service_cluster } => {
                let mut dir = symlink_root.join(subdirectory);
                if *append_service_cluster {
                    dir.push(&self.service_cluster);
                }
                load::disk(&dir)
            }
        }
    }

    /// Swaps `snapshot` in and counts the load.
    fn publish(&self, snapshot: Snapshot) {
        if let Some(s) = &self.stats {
            s.load_success.inc();
            // Envoy counts an "override directory" when more than one disk layer exists.
            let disks = self.layers.iter().filter(|(_, l)| matches!(l, RuntimeLayer::Disk { .. })).count();
            if disks > 1 { &s.override_dir_exists } else { &s.override_dir_not_exists }.inc();
            s.num_keys.set(i64::try_from(snapshot.entries.len()).unwrap_or(i64::MAX));
            s.num_layers.set(i64::try_from(self.layers.len()).unwrap_or(i64::MAX));
            let admin =
                self.layers.iter().zip(&snapshot.layers).any(|((_, l), v)| l == &RuntimeLayer::Admin && !v.is_empty());
            s.admin_overrides_active.set(i64::from(admin));
        }
        self.snapshot.store(Arc::new(snapshot));
    }

    /// Whether the bootstrap has an `admin_layer` (`/runtime_modify` answers 503 otherwise).
    pub fn has_admin_layer(&self) -> bool {
        self.layers.iter().any(|(_, l)| l == &RuntimeLayer::Admin)
    }

    /// `POST /runtime_modify`: each pair set in the admin layer, an empty value removing the
    /// key from it. False without an admin layer.
    pub fn modify(&self, pairs: &[(String, String)]) -> bool {
        let Some(at) = self.layers.iter().position(|(_, l)| l == &RuntimeLayer::Admin) else { return false };
        let _one = self.loading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut layers = self.snapshot.load().layers.clone();
        let mut admin = (*layers[at]).clone();
        for (k, v) in pairs {
            if v.is_empty() {
                admin.remove(k);
            } else {
                admin.insert(k.clone(), v.clone());
            }
        }
        layers[at] = Arc::new(admin);
        self.publish(Snapshot::new(layers));
        true
    }

    /// Reads the disk layers again, the others kept as they are.
    fn reload_disk(&self) {
        let _one = self.loading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut layers = self.snapshot.load().layers.clone();
        for (i, (_, l)) in self.layers.iter().enumerate() {
            if matches!(l, RuntimeLayer::Disk { .. }) {
                layers[i] = Arc::new(self.read_layer(l));
            }
        }
        let snapshot = Snapshot::new(layers);
        tracing::info!(keys = snapshot.entries.len(), "runtime disk layer reloaded");
        self.publish(snapshot);
    }

    /// `GET /runtime`: the layers' names, and each key's final value and value per layer
    /// (empty where a layer does not set it), as Envoy's admin answers.
    pub fn admin_json(&self) -> serde_json::Value {
        let snap = self.snapshot.load();
        let mut entries = BTreeMap::new();
        for (key, e) in &snap.entries {
            let per_layer: Vec<&str> = snap.layers.iter().map(|l| l.get(key).map_or("", String::as_str)).collect();
            entries.insert(key.clone(), serde_json::json!({"final_value": e.raw, "layer_values": per_layer}));
        }
        let names: Vec<&str> = self.layers.iter().map(|(n, _)| n.as_str()).collect();
        serde_json::json!({"entries": entries, "layers": names})
    }

    /// Reads the disk layers again whenever one's `symlink_root` is replaced; ends with the
    /// runtime. Nothing runs without a disk layer.
    pub fn watch(self: &Arc<Self>) {
        let roots: Vec<PathBuf> = self
            .layers
            .iter()
            .filter_map(|(_, l)| match l {
                RuntimeLayer::Disk { symlink_root, .. } => Some(symlink_root.clone()),
                _ => None,
            })
            .collect();
        if roots.is_empty() {
            return;
        }
        let weak: Weak<Runtime> = Arc::downgrade(self);
        // Taken now, not when the task first runs: a replacement from then on is seen.
        let mut seen: Vec<_> = roots.iter().map(|r| load::identity(r)).collect();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            // Ends when the runtime is dropped (the server is done with it).
            loop {
                tick.tick().await;
                let Some(rt) = weak.upgrade() else { return };
                let now: Vec<_> = roots.iter().map(|r| load::identity(r)).collect();
                if now != seen {
                    seen = now;
                    let _ = tokio::task::spawn_blocking(move || rt.reload_disk()).await;
                }
            }
        });
    }
}

/// Whether a draw out of `p` hits (`numerator` at or over `denominator`: always).
pub fn hit(p: Fraction) -> bool {
    if p.numerator == 0 {
        return false;
    }
    if p.numerator >= p.denominator {
        return true;
    }
    rand::Rng::gen_range(&mut rand::thread_rng(), 0..p.denominator) < p.numerator
}

/// A `runtime_key` and the default it overrides: `RuntimeFractionalPercent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FractionKey {
    pub default_value: Fraction,
    /// `None` (or empty): the default always applies.
    pub runtime_key: Option<Arc<str>>,
}

impl FractionKey {
    pub const ALL: FractionKey = FractionKey::fixed(Fraction { numerator: 100, denominator: 100 });
    pub const NONE: FractionKey = FractionKey::fixed(Fraction::NONE);

    pub const fn fixed(default_value: Fraction) -> FractionKey {
        FractionKey { default_value, runtime_key: None }
    }

    /// One draw: the runtime's fraction for the key, or the default.
    pub fn enabled(&self, rt: &Runtime) -> bool {
        match &self.runtime_key {
            Some(k) => rt.enabled(k, self.default_value),
            None => hit(self.default_value),
        }
    }

    /// Decided by the request's `random` value (a route's `runtime_fraction`).
    pub fn enabled_with(&self, rt: &Runtime, random: u64) -> bool {
        rt.enabled_with(self.runtime_key.as_deref().unwrap_or(""), self.default_value, random)
    }
}

/// A `RuntimeFeatureFlag`: a boolean the runtime may override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagKey {
    pub default_value: bool,
    pub runtime_key: Option<Arc<str>>,
}

impl FlagKey {
    pub const fn fixed(default_value: bool) -> FlagKey {
        FlagKey { default_value, runtime_key: None }
    }

    pub fn enabled(&self, rt: &Runtime) -> bool {
        match &self.runtime_key {
            Some(k) => rt.boolean(k, self.default_value),
            None => self.default_value,
        }
    }
}

#[cfg(test)]
mod tests;
