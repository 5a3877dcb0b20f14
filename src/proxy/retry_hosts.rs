//! Which host each attempt of a request goes to, under the route's retry policy: the
//! `previous_hosts` retry host predicate (reselect, up to `host_selection_retry_max_attempts`
//! times, a host already tried) and the `previous_priorities` retry priority (every
//! `update_frequency` attempts, the priorities of the hosts tried so far are excluded from the
//! priority load, as Envoy's `PreviousPrioritiesRetryPriority` does; when that would leave no
//! host, the original load is used and the exclusions start over).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::model::RetryPolicy;
use crate::upstream::lb_state::LbState;
use crate::upstream::{Cluster, Host};

pub struct RetryHosts {
    /// `previous_hosts`: the reselections allowed.
    avoid: Option<u32>,
    /// `previous_priorities`' `update_frequency`.
    every: Option<u32>,
    tried: Vec<SocketAddr>,
    /// The priority of each attempt's host, in order.
    priorities: Vec<u32>,
    /// The load with the excluded priorities out, once computed.
    state: Option<LbState>,
}

impl RetryHosts {
    pub fn new(policy: Option<&RetryPolicy>) -> Self {
        RetryHosts {
            avoid: policy.filter(|p| p.previous_hosts).map(|p| p.host_selection_max_attempts),
            every: policy.and_then(|p| p.previous_priorities),
            tried: Vec::new(),
            priorities: Vec::new(),
            state: None,
        }
    }

    /// The host for the next attempt (the first when nothing was tried yet).
    pub fn choose(&mut self, cluster: &Cluster, hash: Option<u64>) -> Option<Arc<Host>> {
        if let Some(every) = self.every {
            let n = self.priorities.len();
            if n > 0 && n % every as usize == 0 {
                let mut excluded = self.priorities.clone();
                excluded.sort_unstable();
                excluded.dedup();
                self.state = cluster.state_without_priorities(&excluded);
                if self.state.is_none() {
                    // Every priority tried: start over from the original load.
                    self.priorities.clear();
                }
            }
        }
        match self.avoid {
            Some(reattempts) if !self.tried.is_empty() => {
                cluster.choose_avoiding(hash, &self.tried, reattempts, self.state.as_ref())
            }
            _ => match &self.state {
                Some(state) => cluster.choose_avoiding(hash, &[], 0, Some(state)),
                None => cluster.choose_for(hash),
            },
        }
    }

    /// `host` is the one this attempt goes to.
    pub fn attempted(&mut self, host: &Host) {
        if self.avoid.is_some() {
            self.tried.push(host.addr);
        }
        if self.every.is_some() {
            self.priorities.push(host.priority);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::fake::{self, FakeUpstream};
    use crate::upstream::membership::carried_over;
    use crate::upstream::HostSet;

    /// A cluster of four hosts in priorities 0, 0, 1 and 2.
    fn cluster() -> Arc<Cluster> {
        let up = FakeUpstream::new([]);
        let (c, _) = fake::cluster("", 4, &up);
        let hosts = c
            .hosts
            .load()
            .all
            .iter()
            .zip([0, 0, 1, 2])
            .map(|(h, p)| {
                let mut spec = h.spec();
                spec.priority = p;
                Arc::new(carried_over(h, spec))
            })
            .collect();
        c.hosts.store(Arc::new(HostSet::new(hosts)));
        c.refresh_lb();
        c
    }

    fn priorities(every: u32, attempts: usize) -> Vec<u32> {
        let c = cluster();
        let policy = RetryPolicy { previous_priorities: Some(every), ..RetryPolicy::default() };
        let mut hosts = RetryHosts::new(Some(&policy));
        (0..attempts)
            .map(|_| {
                let h = hosts.choose(&c, None).unwrap_or_else(|| panic!("no host"));
                hosts.attempted(&h);
                h.priority
            })
            .collect()
    }

    #[test]
    fn each_retry_leaves_the_priorities_tried_until_none_is_left() {
        // Priority 0 takes all the load while healthy; then 1, then 2, then everything was
        // tried and the original load applies again.
        assert_eq!(priorities(1, 5), [0, 1, 2, 0, 1]);
    }

    #[test]
    fn update_frequency_recomputes_every_n_attempts() {
        assert_eq!(priorities(2, 5), [0, 0, 1, 1, 2]);
    }

    #[test]
    fn without_a_retry_priority_retries_stay_where_the_load_is() {
        let c = cluster();
        let mut hosts = RetryHosts::new(Some(&RetryPolicy::default()));
        for _ in 0..4 {
            let h = hosts.choose(&c, None).unwrap_or_else(|| panic!("no host"));
            hosts.attempted(&h);
            assert_eq!(h.priority, 0);
        }
    }
}
