//! `least_request_lb_config` and `round_robin_lb_config`: Envoy's defaults, the values read,
//! and what is refused.

use std::time::Duration;

use super::{load_text, messages, v3, A_SVC, ROUTE_A};
use crate::config::model::*;

const CLUSTER: &str = "static_resources.clusters[0]";

fn tuning(extra: &str) -> Result<LbTuning, Vec<String>> {
    load_text("c.yaml", &v3(ROUTE_A, &format!("{A_SVC}{extra}")))
        .map(|b| b.clusters[0].lb_tuning.clone())
        .map_err(|e| messages(&e))
}

#[test]
fn defaults_and_values() {
    assert_eq!(tuning("    lb_policy: LEAST_REQUEST\n"), Ok(LbTuning::default()));
    let t = tuning(
        "    lb_policy: LEAST_REQUEST\n    least_request_lb_config:\n      choice_count: 5\n      \
         active_request_bias: {default_value: 0.5, runtime_key: lb.bias}\n      \
         slow_start_config: {slow_start_window: 30s, aggression: {default_value: 2, runtime_key: a}, min_weight_percent: {value: 25}}\n",
    );
    assert_eq!(
        t,
        Ok(LbTuning {
            choice_count: 5,
            active_request_bias: 0.5,
            active_request_bias_key: Some("lb.bias".into()),
            slow_start: Some(SlowStart { window: Duration::from_secs(30), aggression: 2.0, min_weight: 0.25 }),
            aggression_key: Some("a".into()),
        })
    );
    let rr = tuning("    round_robin_lb_config: {slow_start_config: {slow_start_window: 1s}}\n");
    assert_eq!(
        rr.map(|t| t.slow_start),
        Ok(Some(SlowStart { window: Duration::from_secs(1), aggression: 1.0, min_weight: 0.1 }))
    );
    // No window, no slow start (as in Envoy).
    assert_eq!(tuning("    round_robin_lb_config: {slow_start_config: {}}\n").map(|t| t.slow_start), Ok(None));
}

#[test]
fn refusals_name_the_field() {
    let has = |r: Result<LbTuning, Vec<String>>, want: &str| match r {
        Err(e) => assert!(e.iter().any(|m| m == want), "missing {want:?} in {e:#?}"),
        Ok(t) => panic!("accepted: {t:?}"),
    };
    has(
        tuning("    lb_policy: LEAST_REQUEST\n    least_request_lb_config: {choice_count: 1}\n"),
        &format!("{CLUSTER}.least_request_lb_config.choice_count: value must be greater than or equal to 2"),
    );
    has(
        tuning("    least_request_lb_config: {choice_count: 3}\n"),
        &format!("{CLUSTER}.least_request_lb_config: least_request_lb_config needs lb_policy LEAST_REQUEST"),
    );
    has(
        tuning("    lb_policy: RANDOM\n    round_robin_lb_config: {}\n"),
        &format!("{CLUSTER}.round_robin_lb_config: round_robin_lb_config needs lb_policy ROUND_ROBIN"),
    );
    has(
        tuning(
            "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: {active_request_bias: {default_value: -1, runtime_key: k}}\n",
        ),
        &format!("{CLUSTER}.least_request_lb_config.active_request_bias: must be a number >= 0, got -1"),
    );
    has(
        tuning(
            "    round_robin_lb_config: {slow_start_config: {slow_start_window: 5s, aggression: {default_value: 0, runtime_key: k}}}\n",
        ),
        &format!(
            "{CLUSTER}.round_robin_lb_config.slow_start_config.aggression: slow start aggression must be greater than 0.0, got 0"
        ),
    );
    has(
        tuning("    round_robin_lb_config: {slow_start_config: {slow_start_window: 5s, min_weight_percent: {value: 101}}}\n"),
        &format!(
            "{CLUSTER}.round_robin_lb_config.slow_start_config.min_weight_percent.value: expected a percentage in [0, 100]"
        ),
    );
}
