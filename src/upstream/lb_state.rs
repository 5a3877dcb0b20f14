//! What the balancer chooses from, rebuilt whenever membership or some host's health changes
//! (never per request): Envoy's priority load computation with the overprovisioning factor
//! (1.4), degraded hosts used only when healthy ones are short, and panic mode
//! (`healthy_panic_threshold`, default 50%: a priority whose healthy share is below it is
//! balanced over all its hosts).
//!
//! With `locality_weighted_lb_config`, a priority's healthy (or degraded) load is split
//! between its localities by Envoy's effective weight: the locality's `load_balancing_weight`
//! times its share of eligible hosts with the overprovisioning factor (at most 1); a priority
//! in panic, or whose localities all weigh 0, is balanced over its hosts as without it.
//!
//! A request draws a number under the total load and takes the source (a priority's healthy,
//! degraded or, in panic, all hosts; or one locality's of them) whose cumulative load covers
//! it; with one source no draw is made.

use std::sync::Arc;

use rand::Rng;

use super::balancer::Schedule;
use super::health::{self, Coarse};
use super::Host;
use crate::config::model::SlowStart;

/// Envoy's default `overprovisioning_factor`, 140 (1.4).
const OVERPROVISIONING: u64 = 140;

/// Loads are in millionths: a percent of a priority's load split between its localities.
const PER_PERCENT: u64 = 10_000;

/// Hosts one request may be balanced over.
pub struct Source {
    pub hosts: Vec<Arc<Host>>,
    pub schedule: Schedule,
    /// Chosen because its priority is in panic (`lb_healthy_panic`).
    pub panic: bool,
    /// Cumulative load up to and including this source (out of 100 × [`PER_PERCENT`]).
    upto: u64,
}

/// The sources of a cluster at one moment.
#[derive(Default)]
pub struct LbState {
    pub sources: Vec<Source>,
    /// Hosts that count as healthy (`membership_healthy`).
    pub healthy: usize,
    pub degraded: usize,
    by_locality: bool,
    /// `slow_start_config`: schedules weigh hosts by their slow-start ramp.
    slow: Option<SlowStart>,
    /// RING_HASH / MAGLEV: one table per source, in order (set by the cluster after `new`).
    pub hashed: Vec<super::balancer::HashTable>,
}

struct Priority {
    all: Vec<Arc<Host>>,
    healthy: Vec<Arc<Host>>,
    degraded: Vec<Arc<Host>>,
    /// Hosts less the excluded ones (draining, pending their first check).
    counted: usize,
}

impl LbState {
    /// `panic_threshold` in percent (Envoy's `healthy_panic_threshold`); `by_locality` for
    /// `locality_weighted_lb_config`.
    pub fn new(all: &[Arc<Host>], panic_threshold: f64, by_locality: bool) -> LbState {
        Self::with_slow_start(all, panic_threshold, by_locality, None)
    }

    /// [`LbState::new`] with hosts weighed by their slow-start ramp at this moment.
    pub fn with_slow_start(
        all: &[Arc<Host>],
        panic_threshold: f64,
        by_locality: bool,
        slow: Option<SlowStart>,
    ) -> LbState {
        let mut prios: Vec<(u32, Priority)> = Vec::new();
        for h in all {
            let i = match prios.binary_search_by_key(&h.priority, |(p, _)| *p) {
                Ok(i) => i,
                Err(i) => {
                    let p = Priority { all: Vec::new(), healthy: Vec::new(), degraded: Vec::new(), counted: 0 };
                    prios.insert(i, (h.priority, p));
                    i
                }
            };
            let p = &mut prios[i].1;
            let flags = h.health.flags();
            p.all.push(Arc::clone(h));
            if !health::excluded(flags) {
                p.counted += 1;
            }
            match health::coarse(flags) {
                Coarse::Healthy => p.healthy.push(Arc::clone(h)),
                Coarse::Degraded => p.degraded.push(Arc::clone(h)),
                Coarse::Unhealthy => {}
            }
        }
        let prios: Vec<Priority> = prios.into_iter().map(|(_, p)| p).collect();
        let healthy = prios.iter().map(|p| p.healthy.len()).sum();
        let degraded = prios.iter().map(|p| p.degraded.len()).sum();
        let share = |n: usize, p: &Priority| {
            if p.counted == 0 {
                0
            } else {
                (OVERPROVISIONING * n as u64 / p.counted as u64).min(100) as u32
            }
        };
        let health: Vec<u32> = prios.iter().map(|p| share(p.healthy.len(), p)).collect();
        let degr: Vec<u32> = prios.iter().map(|p| share(p.degraded.len(), p)).collect();
        let total = (health.iter().sum::<u32>() + degr.iter().sum::<u32>()).min(100);
        let panic: Vec<bool> = prios
            .iter()
            .map(|p| {
                if total == 100 {
                    return false;
                }
                let pct = if p.counted == 0 {
                    0.0
                } else {
                    100.0 * (p.healthy.len() + p.degraded.len()) as f64 / p.counted as f64
                };
                pct < panic_threshold
            })
            .collect();
        let mut out = LbState { sources: Vec::new(), healthy, degraded, by_locality, slow, hashed: Vec::new() };
        if prios.is_empty() {
            return out;
        }
        if panic.iter().all(|&p| p) {
            // Envoy's total panic: each priority by its share of all hosts, over all its hosts.
            let n: usize = prios.iter().map(|p| p.all.len()).sum();
            let mut loads: Vec<u32> = prios.iter().map(|p| (p.all.len() * 100 / n) as u32).collect();
            fix_rounding(&mut loads);
            for (p, load) in prios.iter().zip(loads) {
                out.push(&p.all, load, true);
            }
            return out;
        }
        if total == 0 {
            // Nothing healthy and panic disabled (threshold 0): no host.
            return out;
        }
        let mut left = 100u32;
        let mut loads = Vec::with_capacity(prios.len() * 2);
        for h in &health {
            let l = (h * 100 / total).min(left);
            left -= l;
            loads.push(l);
        }
        for d in &degr {
            let l = (d * 100 / total).min(left);
            left -= l;
            loads.push(l);
        }
        fix_rounding(&mut loads);
        let n = prios.len();
        for (i, load) in loads.into_iter().enumerate() {
            let p = &prios[i % n];
            if panic[i % n] {
                // The priority's whole load (healthy and degraded) goes to all its hosts.
                out.push(&p.all, load, true);
            } else if i < n {
                out.push_eligible(p, &p.healthy, load);
            } else {
                out.push_eligible(p, &p.degraded, load);
            }
        }
        out
    }

    fn push(&mut self, hosts: &[Arc<Host>], load: u32, panic: bool) {
        self.push_parts(hosts, u64::from(load) * PER_PERCENT, panic);
    }

    fn push_parts(&mut self, hosts: &[Arc<Host>], parts: u64, panic: bool) {
        if parts == 0 || hosts.is_empty() {
            return;
        }
        let upto = self.sources.last().map_or(0, |s| s.upto) + parts;
        self.sources.push(Source {
            hosts: hosts.to_vec(),
            schedule: Schedule::new(hosts, self.slow.as_ref()),
            panic,
            upto,
        });
    }

    /// A priority's healthy or degraded `eligible` hosts with their load: split between their
    /// localities by effective weight when balancing by locality.
    fn push_eligible(&mut self, p: &Priority, eligible: &[Arc<Host>], load: u32) {
        if !self.by_locality || load == 0 || eligible.is_empty() {
            return self.push(eligible, load, false);
        }
        let groups = localities(&p.all, eligible);
        let total: f64 = groups.iter().map(|g| g.effective).sum();
        if total <= 0.0 {
            // Envoy then chooses among the priority's hosts without localities.
            return self.push(eligible, load, false);
        }
        let parts = u64::from(load) * PER_PERCENT;
        let mut left = parts;
        let last = groups.iter().rposition(|g| g.effective > 0.0);
        for (i, g) in groups.iter().enumerate() {
            let share = if Some(i) == last { left } else { (parts as f64 * g.effective / total) as u64 };
            let share = share.min(left);
            left -= share;
            self.push_parts(&g.eligible, share, false);
        }
    }

    /// The source of the next request; `None` when the cluster has no host to use.
    #[inline]
    pub fn pick(&self) -> Option<&Source> {
        match self.sources.len() {
            0 => None,
            1 => self.sources.first(),
            _ => {
                let total = self.sources.last().map_or(100 * PER_PERCENT, |s| s.upto);
                let r = rand::thread_rng().gen_range(0..total);
                self.sources.iter().find(|s| r < s.upto)
            }
        }
    }
}

/// One locality of a priority.
struct Group {
    locality: Arc<crate::config::model::Locality>,
    eligible: Vec<Arc<Host>>,
    effective: f64,
}

/// The localities of a priority's hosts `all`, in order of first appearance, with their
/// `eligible` hosts and Envoy's effective weight: `load_balancing_weight` ×
/// min(1, 1.4 × eligible / hosts not excluded), 0 for a locality without such hosts.
fn localities(all: &[Arc<Host>], eligible: &[Arc<Host>]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut counts: Vec<(u32, usize)> = Vec::new();
    let index = |groups: &mut Vec<Group>, counts: &mut Vec<(u32, usize)>, h: &Host| match groups
        .iter()
        .position(|g| *g.locality == *h.locality)
    {
        Some(i) => i,
        None => {
            groups.push(Group { locality: Arc::clone(&h.locality), eligible: Vec::new(), effective: 0.0 });
            counts.push((h.locality_weight, 0));
            groups.len() - 1
        }
    };
    for h in all {
        let i = index(&mut groups, &mut counts, h);
        if !health::excluded(h.health.flags()) {
            counts[i].1 += 1;
        }
    }
    for h in eligible {
        let i = index(&mut groups, &mut counts, h);
        groups[i].eligible.push(Arc::clone(h));
    }
    for (g, (weight, hosts)) in groups.iter_mut().zip(counts) {
        if hosts > 0 {
            let available = OVERPROVISIONING as f64 / 100.0 * g.eligible.len() as f64 / hosts as f64;
            g.effective = f64::from(weight) * available.min(1.0);
        }
    }
    groups
}

impl LbState {
    /// Some host's weight is still ramping up (the cluster rebuilds this state until none is).
    pub fn slow_starting(&self) -> bool {
        self.sources.iter().any(|s| s.schedule.slow_starting)
    }

    /// The source (and its index) a hashing balancer's key falls in: Envoy's
    /// `choosePriority`, `hash % 100` against the cumulative loads.
    #[inline]
    pub fn pick_hashed(&self, hash: u64) -> Option<(usize, &Source)> {
        let percent = (self.sources.last()?.upto / PER_PERCENT).max(1);
        let r = (hash % percent) * PER_PERCENT;
        self.sources.iter().enumerate().find(|(_, s)| r < s.upto)
    }
}

/// Integer shares may sum under 100: the rest goes to the first non-zero one, as Envoy does.
fn fix_rounding(loads: &mut [u32]) {
    let sum: u32 = loads.iter().sum();
    if sum < 100 {
        if let Some(first) = loads.iter_mut().find(|l| **l > 0) {
            *first += 100 - sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::fake;
    use crate::upstream::health::{FAILED_ACTIVE_HC, FAILED_EDS_HEALTH};

    fn hosts(prios: &[(u32, u32)]) -> Vec<Arc<Host>> {
        // (priority, flags)
        let up = fake::FakeUpstream::new([]);
        let (c, _) = fake::cluster("", prios.len() as u16, &up);
        let all = c.hosts.load().all.clone();
        all.iter()
            .zip(prios)
            .map(|(h, &(prio, flags))| {
                let mut spec = h.spec();
                spec.priority = prio;
                let host = Arc::new(crate::upstream::membership::carried_over(h, spec));
                host.health.set(flags, true);
                host
            })
            .collect()
    }

    fn loads(s: &LbState) -> Vec<(u32, usize, bool)> {
        let mut prev = 0;
        s.sources
            .iter()
            .map(|x| {
                let l = x.upto - prev;
                prev = x.upto;
                (((l + PER_PERCENT / 2) / PER_PERCENT) as u32, x.hosts.len(), x.panic)
            })
            .collect()
    }

    /// Hosts as (priority, flags, locality zone, locality weight).
    fn located(specs: &[(u32, u32, &str, u32)]) -> Vec<Arc<Host>> {
        let plain: Vec<(u32, u32)> = specs.iter().map(|&(p, f, ..)| (p, f)).collect();
        hosts(&plain)
            .iter()
            .zip(specs)
            .map(|(h, &(.., zone, weight))| {
                let mut spec = h.spec();
                spec.locality = Arc::new(crate::config::model::Locality { zone: zone.into(), ..Default::default() });
                spec.locality_weight = weight;
                Arc::new(crate::upstream::membership::carried_over(h, spec))
            })
            .collect()
    }

    #[test]
    fn localities_share_a_priority_by_weight_and_health() {
        // P0: zone a (2 hosts, 1 healthy: 0.7 effective) and zone b (1 healthy: 1.0); P0 is
        // 2 of 3 healthy (93%), P1 takes the 7% left.
        let all = located(&[(0, 0, "a", 1), (0, FAILED_ACTIVE_HC, "a", 1), (0, 0, "b", 1), (1, 0, "c", 1)]);
        let s = LbState::new(&all, 50.0, true);
        assert_eq!(loads(&s), [(38, 1, false), (55, 1, false), (7, 1, false)]);
        // The same without locality weighting: P0's healthy hosts as one source.
        let s = LbState::new(&all, 50.0, false);
        assert_eq!(loads(&s), [(93, 2, false), (7, 1, false)]);
        // Weights: zone b weighs 3.
        let all = located(&[(0, 0, "a", 1), (0, 0, "b", 3)]);
        assert_eq!(loads(&LbState::new(&all, 50.0, true)), [(25, 1, false), (75, 1, false)]);
    }

    #[test]
    fn the_sandbox_scenario_moves_traffic_between_localities_and_priorities() {
        // locality-load-balancing: P0 local-1 (five replicas), P1 local-2 and remote-1, P2
        // remote-2.
        let down = FAILED_ACTIVE_HC;
        let sandbox = |l1: [u32; 5], l2: u32, r1: u32, r2: u32| {
            let mut v: Vec<(u32, u32, &str, u32)> = l1.iter().map(|&f| (0, f, "local-1", 1)).collect();
            v.extend([(1, l2, "local-2", 1), (1, r1, "remote-1", 1), (2, r2, "remote-2", 1)]);
            loads(&LbState::new(&located(&v), 50.0, true))
        };
        assert_eq!(sandbox([0; 5], 0, 0, 0), [(100, 5, false)]);
        // local-1 down: P1 takes everything, half to each of its localities.
        assert_eq!(sandbox([down; 5], 0, 0, 0), [(50, 1, false), (50, 1, false)]);
        // local-1 and local-2 down: P1 is half healthy (70%), all of it remote-1; P2 the rest.
        assert_eq!(sandbox([down; 5], down, 0, 0), [(70, 1, false), (30, 1, false)]);
        // One local-1 replica of five: P0 28%, P1 72% split evenly.
        assert_eq!(sandbox([0, down, down, down, down], 0, 0, 0), [(28, 1, false), (36, 1, false), (36, 1, false)]);
    }

    #[test]
    fn one_unhealthy_of_two_is_no_panic_thanks_to_overprovisioning() {
        let s = LbState::new(&hosts(&[(0, 0), (0, FAILED_EDS_HEALTH)]), 50.0, false);
        assert_eq!(loads(&s), [(100, 1, false)]);
    }

    #[test]
    fn priority_one_takes_what_priority_zero_cannot() {
        // P0: 1 healthy of 2 => 70%; P1 takes the other 30%.
        let s = LbState::new(&hosts(&[(0, 0), (0, FAILED_ACTIVE_HC), (1, 0)]), 50.0, false);
        assert_eq!(loads(&s), [(70, 1, false), (30, 1, false)]);
        // P0 all down => P1 takes everything.
        let s = LbState::new(&hosts(&[(0, FAILED_EDS_HEALTH), (1, 0)]), 50.0, false);
        assert_eq!(loads(&s), [(100, 1, false)]);
    }

    #[test]
    fn all_down_panics_over_all_hosts() {
        let s = LbState::new(&hosts(&[(0, FAILED_ACTIVE_HC), (0, FAILED_ACTIVE_HC)]), 50.0, false);
        assert_eq!(loads(&s), [(100, 2, true)]);
        let s = LbState::new(&hosts(&[(0, FAILED_ACTIVE_HC), (0, FAILED_ACTIVE_HC)]), 0.0, false);
        assert!(s.pick().is_none(), "panic disabled: no host");
        // 1 healthy of 3 (33% < 50%, 46% with overprovisioning): panic in P0.
        let s = LbState::new(&hosts(&[(0, 0), (0, FAILED_ACTIVE_HC), (0, FAILED_ACTIVE_HC)]), 50.0, false);
        assert_eq!(loads(&s), [(100, 3, true)]);
    }
}
