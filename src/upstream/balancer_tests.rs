//! LEAST_REQUEST's `choice_count` and `active_request_bias`, and slow start's ramp in round
//! robin's schedule (paused time).

use std::sync::Arc;
use std::time::Duration;

use crate::upstream::fake::{self, FakeUpstream};
use crate::upstream::membership::carried_over;
use crate::upstream::{Cluster, Host, HostSet};

/// `cluster`'s hosts given `weights`, with their `active` requests.
fn reweigh(c: &Cluster, weights: &[u32], active: &[i64]) -> Vec<Arc<Host>> {
    let hosts: Vec<Arc<Host>> = c
        .hosts
        .load()
        .all
        .iter()
        .zip(weights)
        .map(|(h, &w)| {
            let mut spec = h.spec();
            spec.weight = w;
            Arc::new(carried_over(h, spec))
        })
        .collect();
    for (h, &a) in hosts.iter().zip(active) {
        h.stats.rq_active.set(a);
    }
    c.hosts.store(Arc::new(HostSet::new(hosts.clone())));
    c.refresh_lb();
    hosts
}

/// How many of `n` picks went to each host.
fn picks(c: &Cluster, hosts: &[Arc<Host>], n: usize) -> Vec<usize> {
    let mut counts = vec![0; hosts.len()];
    for _ in 0..n {
        let h = c.choose().unwrap_or_else(|| panic!("no host"));
        let i = hosts.iter().position(|x| x.addr == h.addr).unwrap_or_else(|| panic!("unknown host"));
        counts[i] += 1;
    }
    counts
}

#[test]
fn choice_count_samples_more_hosts_for_the_least_loaded() {
    let up = FakeUpstream::new([]);
    // One idle host among eight busy ones: two choices find it 1 - (7/8)^2 = 23% of the time,
    // eight choices 1 - (7/8)^8 = 66%.
    let share = |yaml: &str| {
        let (c, _) = fake::cluster(yaml, 8, &up);
        let hosts = reweigh(&c, &[1; 8], &[0, 5, 5, 5, 5, 5, 5, 5]);
        picks(&c, &hosts, 4000)[0]
    };
    let two = share("lb_policy: LEAST_REQUEST");
    let eight = share("lb_policy: LEAST_REQUEST, least_request_lb_config: {choice_count: 8}");
    assert!((700..=1200).contains(&two), "{two} of 4000 with 2 choices");
    assert!((2400..=2900).contains(&eight), "{eight} of 4000 with 8 choices");
}

#[test]
fn active_request_bias_divides_weights_by_load() {
    let up = FakeUpstream::new([]);
    // Weights 2 and 1; the heavy host has 3 requests in flight. With bias 1 it weighs
    // 2 / 4 = 0.5 against 1 / 1: a third of the picks. With bias 0 load is ignored: two thirds.
    let heavy_share = |yaml: &str| {
        let (c, _) = fake::cluster(yaml, 2, &up);
        let hosts = reweigh(&c, &[2, 1], &[3, 0]);
        picks(&c, &hosts, 6000)[0]
    };
    let biased = heavy_share("lb_policy: LEAST_REQUEST");
    let unbiased = heavy_share(
        "lb_policy: LEAST_REQUEST, least_request_lb_config: {active_request_bias: {default_value: 0, runtime_key: k}}",
    );
    assert!((1750..=2250).contains(&biased), "{biased} of 6000 with bias 1");
    assert!((3750..=4250).contains(&unbiased), "{unbiased} of 6000 with bias 0");
}

#[tokio::test(start_paused = true)]
async fn slow_start_ramps_a_new_host_up_in_round_robin() {
    let up = FakeUpstream::new([]);
    let yaml = "lb_policy: ROUND_ROBIN, round_robin_lb_config: {slow_start_config: \
                {slow_start_window: 20s, min_weight_percent: {value: 10}}}";
    let (c, _) = fake::cluster(yaml, 2, &up);
    let hosts = c.hosts.load().all.clone();
    // Both hosts joined together: equal ramps, equal shares.
    assert_eq!(picks(&c, &hosts, 1000), [500, 500]);
    tokio::time::sleep(Duration::from_secs(21)).await;
    assert!(!c.lb.load().slow_starting(), "the window has passed and the ticker rebuilt the state");
    // The second host comes back from a failed active check: it starts over at 10%.
    hosts[1].health.set(crate::upstream::health::FAILED_ACTIVE_HC, true);
    hosts[1].health.set(crate::upstream::health::FAILED_ACTIVE_HC, false);
    c.refresh_lb();
    assert!(c.lb.load().slow_starting());
    let early = picks(&c, &hosts, 1100);
    assert!((80..=120).contains(&early[1]), "{early:?}: about 1 in 11 at 10%");
    // Halfway through its window the ticker has raised it to half weight: 1 in 3.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let half = picks(&c, &hosts, 1500);
    assert!((450..=550).contains(&half[1]), "{half:?}: about 1 in 3 at 50%");
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(picks(&c, &hosts, 1000), [500, 500], "full weight after the window");
    assert!(!c.lb.load().slow_starting());
}

#[test]
fn slow_start_factor_follows_envoys_formula() {
    use crate::config::model::SlowStart;
    let s = SlowStart { window: Duration::from_secs(10), aggression: 1.0, min_weight: 0.1 };
    assert_eq!(s.factor(Duration::ZERO), Some(0.1), "max(t, 1s) / window, at least min_weight");
    assert_eq!(s.factor(Duration::from_secs(5)), Some(0.5));
    assert_eq!(s.factor(Duration::from_secs(10)), None, "out of slow start");
    let s = SlowStart { aggression: 2.0, min_weight: 0.0, ..s };
    let f = s.factor(Duration::from_secs(4)).unwrap_or_default();
    assert!((f - 0.4f64.sqrt()).abs() < 1e-9, "{f}");
}

fn static_runtime(pairs: &[(&str, &str)]) -> Arc<crate::runtime::Runtime> {
    let layer = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    crate::runtime::Runtime::new(&[("static".into(), crate::runtime::RuntimeLayer::Static(layer))], "")
}

#[test]
fn the_runtime_key_of_active_request_bias_replaces_the_default_at_the_next_refresh() {
    let up = FakeUpstream::new([]);
    let yaml = "lb_policy: LEAST_REQUEST, least_request_lb_config: {active_request_bias: {default_value: 1, runtime_key: lb.bias}}";
    let heavy_share = |runtime: Option<Arc<crate::runtime::Runtime>>| {
        let (c, _) = fake::cluster(yaml, 2, &up);
        if let Some(rt) = &runtime {
            c.use_runtime(rt);
        }
        let hosts = reweigh(&c, &[2, 1], &[3, 0]);
        (c.balancer.active_request_bias(), picks(&c, &hosts, 6000)[0])
    };
    let (bias, share) = heavy_share(None);
    assert_eq!(bias, 1.0);
    assert!((1750..=2250).contains(&share), "{share} of 6000 with the default bias 1");
    // The runtime says 0: load no longer counts, the heavy host gets its weight's two thirds.
    let (bias, share) = heavy_share(Some(static_runtime(&[("lb.bias", "0")])));
    assert_eq!(bias, 0.0);
    assert!((3750..=4250).contains(&share), "{share} of 6000 with the runtime's bias 0");
    // A key the runtime lacks keeps the default; a value that cannot apply is 1.0 (Envoy's).
    assert_eq!(heavy_share(Some(static_runtime(&[("other", "0")]))).0, 1.0);
    assert_eq!(heavy_share(Some(static_runtime(&[("lb.bias", "-2")]))).0, 1.0);
    assert_eq!(heavy_share(Some(static_runtime(&[("lb.bias", "0.5")]))).0, 0.5);
}

#[tokio::test(start_paused = true)]
async fn the_runtime_key_of_slow_start_aggression_shapes_the_ramp() {
    let up = FakeUpstream::new([]);
    // A 100 s window, no floor; aggression 1 (linear) unless the runtime says otherwise.
    let yaml = "lb_policy: ROUND_ROBIN, round_robin_lb_config: {slow_start_config: \
                {slow_start_window: 100s, aggression: {default_value: 1, runtime_key: ss.aggr}, \
                min_weight_percent: {value: 0}}}";
    let up = &up;
    let share_at_25s = |runtime: Option<Arc<crate::runtime::Runtime>>| async move {
        let (c, _) = fake::cluster(yaml, 2, up);
        if let Some(rt) = &runtime {
            c.use_runtime(rt);
        }
        let hosts = c.hosts.load().all.clone();
        tokio::time::sleep(Duration::from_secs(30)).await;
        // The second host comes back from a failed check: its ramp starts over.
        hosts[1].health.set(crate::upstream::health::FAILED_ACTIVE_HC, true);
        hosts[1].health.set(crate::upstream::health::FAILED_ACTIVE_HC, false);
        tokio::time::sleep(Duration::from_secs(25)).await;
        c.refresh_lb();
        picks(&c, &hosts, 2000)[1]
    };
    // Both hosts joined at 0 s; at 55 s the first is 55 s into its ramp, the second 25 s.
    // Linear: weights 0.55 and 0.25, the second gets 0.25 / 0.80 of the picks (625 of 2000).
    let linear = share_at_25s(None).await;
    // Aggression 0.5 from the runtime, (t / window) ^ 2: 0.0625 / 0.365 (342 of 2000).
    let slow = share_at_25s(Some(static_runtime(&[("ss.aggr", "0.5")]))).await;
    assert!((565..=685).contains(&linear), "{linear} of 2000 on a linear ramp");
    assert!((290..=395).contains(&slow), "{slow} of 2000 with the runtime's aggression 0.5");
}
