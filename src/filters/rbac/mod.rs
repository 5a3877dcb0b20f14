//! `envoy.filters.http.rbac`: `rules` (or the matcher API's `matcher`) enforced (ALLOW, DENY
//! or LOG) and `shadow_rules` (`shadow_matcher`) only counted, per filter or per route (`RBACPerRoute`, whose missing `rbac` disables the
//! filter there); a denied request gets Envoy's 403 `RBAC: access denied` with the details
//! `rbac_access_denied_matched_policy[<policy>|none]`. Stats
//! `http.<prefix>.rbac.[<rules_stat_prefix>.]allowed|denied`, the shadow ones under
//! `shadow_rules_stat_prefix`, and `policy.<name>.*` with `track_per_rule_stats`.
//! Policies are compiled when the snapshot is built; a request matching nothing allocates
//! nothing.

mod engine;
mod matcher;

use std::sync::{Arc, OnceLock};

pub use engine::{Engine, RbacRequest};

use crate::config::model::RbacConfig;
use crate::proxy::local_reply::LocalReason;
use crate::stats::{Counter, Store};

/// A per-policy counter, made on its first use as Envoy's appear only once counted.
struct LazyCounter {
    name: Box<str>,
    counter: OnceLock<Counter>,
}

impl LazyCounter {
    fn inc(&self, store: &Store) {
        self.counter.get_or_init(|| store.counter(&self.name)).inc();
    }
}

/// Counters of one engine, and per policy (same order as its policies) with
/// `track_per_rule_stats`.
struct EngineStats {
    store: Arc<Store>,
    allowed: Counter,
    denied: Counter,
    per_policy: Box<[(LazyCounter, LazyCounter)]>,
    /// `rbac_access_denied_matched_policy[<name>]` per policy, then `[none]`.
    details: Box<[Arc<str>]>,
}

impl EngineStats {
    fn new(store: &Arc<Store>, base: &str, prefix: &str, shadow: bool, engine: &Engine, per_rule: bool) -> Self {
        let scope = if prefix.is_empty() { base.to_string() } else { format!("{base}{prefix}.") };
        let (a, d) = if shadow { ("shadow_allowed", "shadow_denied") } else { ("allowed", "denied") };
        let per_policy = if per_rule {
            engine
                .names()
                .into_iter()
                .map(|n| {
                    let c = |s: &str| LazyCounter {
                        name: format!("{scope}policy.{n}.{s}").into(),
                        counter: OnceLock::new(),
                    };
                    (c(a), c(d))
                })
                .collect()
        } else {
            Box::default()
        };
        let details = engine
            .names()
            .into_iter()
            .chain(std::iter::once("none"))
            .map(|n| Arc::from(format!("rbac_access_denied_matched_policy[{n}]")))
            .collect();
        EngineStats {
            store: Arc::clone(store),
            allowed: store.counter(&format!("{scope}{a}")),
            denied: store.counter(&format!("{scope}{d}")),
            per_policy,
            details,
        }
    }

    fn count(&self, allowed: bool, policy: Option<usize>) {
        if allowed { &self.allowed } else { &self.denied }.inc();
        if let Some((a, d)) = policy.and_then(|i| self.per_policy.get(i)) {
            if allowed { a } else { d }.inc(&self.store);
        }
    }
}

/// A compiled `RBAC` (the filter's or a route's).
pub struct RbacSettings {
    rules: Option<(Engine, EngineStats)>,
    shadow: Option<(Engine, EngineStats)>,
}

impl RbacSettings {
    /// `hcm_prefix` is the connection manager's `stat_prefix`.
    pub fn new(c: &RbacConfig, store: &Arc<Store>, hcm_prefix: &str) -> Self {
        let base = format!("http.{hcm_prefix}.rbac.");
        let build = |engine: Option<Engine>, prefix: &str, shadow: bool| {
            engine.map(|e| {
                let s = EngineStats::new(store, &base, prefix, shadow, &e, c.track_per_rule_stats);
                (e, s)
            })
        };
        // The matcher wins over the policies, as in Envoy (the validator warned).
        let rules = c.matcher.as_ref().map(Engine::from_matcher).or_else(|| c.rules.as_ref().map(Engine::new));
        let shadow =
            c.shadow_matcher.as_ref().map(Engine::from_matcher).or_else(|| c.shadow_rules.as_ref().map(Engine::new));
        RbacSettings {
            rules: build(rules, &c.rules_stat_prefix, false),
            shadow: build(shadow, &c.shadow_rules_stat_prefix, true),
        }
    }

    /// Counts the shadow decision, then enforces `rules`: `Err` is the 403, with the
    /// response details naming the policy that decided.
    pub fn decode(&self, req: &RbacRequest<'_>, details: &mut Option<Arc<str>>) -> Result<(), LocalReason> {
        if let Some((engine, stats)) = &self.shadow {
            let (allowed, policy) = engine.decide(req);
            stats.count(allowed, policy);
        }
        let Some((engine, stats)) = &self.rules else { return Ok(()) };
        let (allowed, policy) = engine.decide(req);
        stats.count(allowed, policy);
        if allowed {
            return Ok(());
        }
        let i = policy.unwrap_or(stats.details.len().saturating_sub(1));
        *details = stats.details.get(i).cloned();
        Err(LocalReason::RbacDenied)
    }
}

pub struct Rbac {
    settings: Arc<RbacSettings>,
}

impl Rbac {
    pub fn new(c: &RbacConfig, store: &Arc<Store>, hcm_prefix: &str) -> Self {
        Rbac { settings: Arc::new(RbacSettings::new(c, store, hcm_prefix)) }
    }

    pub fn settings(&self) -> &Arc<RbacSettings> {
        &self.settings
    }
}

#[cfg(test)]
mod tests;
