//! A cluster's `least_request_lb_config` and `round_robin_lb_config` (read with its
//! `lb_policy`): LEAST_REQUEST's `choice_count` and `active_request_bias`, and either policy's
//! `slow_start_config`.

use std::sync::Arc;
use std::time::Duration;

use crate::config::model::{LbPolicy, LbTuning, SlowStart};
use crate::config::reader::{Ctx, Obj};

/// The tuning `policy` takes from its config message; a message without its policy is refused
/// (it would have no effect).
pub(crate) fn lb_tuning(ctx: &mut Ctx, o: &mut Obj<'_>, policy: LbPolicy) -> LbTuning {
    let mut tuning = LbTuning::default();
    let lr_at = o.at("least_request_lb_config");
    if let Some(mut lr) = o.obj(ctx, "least_request_lb_config") {
        if policy != LbPolicy::LeastRequest {
            ctx.err(&lr_at, "least_request_lb_config needs lb_policy LEAST_REQUEST");
        }
        let at = lr.at("choice_count");
        match lr.uint(ctx, "choice_count", u64::from(u32::MAX)) {
            Some(n) if n >= 2 => tuning.choice_count = n as u32,
            // The proto's rule (`uint32 gte: 2`), in Envoy's words.
            Some(_) => ctx.err(at, "value must be greater than or equal to 2"),
            None => {}
        }
        if let Some((bias, key)) = runtime_double(ctx, &mut lr, "active_request_bias") {
            tuning.active_request_bias_key = key;
            if bias >= 0.0 && bias.is_finite() {
                tuning.active_request_bias = bias;
            } else {
                // Envoy falls back to 1.0 with a warning; a value that cannot apply is refused.
                ctx.err(lr.at("active_request_bias"), format!("must be a number >= 0, got {bias}"));
            }
        }
        if let Some(s) = lr.obj(ctx, "slow_start_config") {
            (tuning.slow_start, tuning.aggression_key) = slow_start(ctx, s);
        }
        lr.finish(ctx, &[]);
    }
    let rr_at = o.at("round_robin_lb_config");
    if let Some(mut rr) = o.obj(ctx, "round_robin_lb_config") {
        if policy != LbPolicy::RoundRobin {
            ctx.err(&rr_at, "round_robin_lb_config needs lb_policy ROUND_ROBIN");
        }
        if let Some(s) = rr.obj(ctx, "slow_start_config") {
            (tuning.slow_start, tuning.aggression_key) = slow_start(ctx, s);
        }
        rr.finish(ctx, &[]);
    }
    tuning
}

/// `SlowStartConfig`, `None` without a window (no slow start, as in Envoy), and its
/// aggression's runtime key.
fn slow_start(ctx: &mut Ctx, mut o: Obj<'_>) -> (Option<SlowStart>, Option<Arc<str>>) {
    let window = o.duration(ctx, "slow_start_window").unwrap_or(Duration::ZERO);
    let mut aggression = 1.0;
    let mut aggression_key = None;
    if let Some((a, key)) = runtime_double(ctx, &mut o, "aggression") {
        aggression_key = key;
        if a > 0.0 && a.is_finite() {
            aggression = a;
        } else {
            ctx.err(o.at("aggression"), format!("slow start aggression must be greater than 0.0, got {a}"));
        }
    }
    let mut min_weight = 0.1;
    if let Some(mut p) = o.obj(ctx, "min_weight_percent") {
        if let Some((v, at)) = p.get("value") {
            match v.as_f64() {
                Some(x) if (0.0..=100.0).contains(&x) => min_weight = x / 100.0,
                _ => ctx.err(at, "expected a percentage in [0, 100]"),
            }
        }
        p.finish(ctx, &[]);
    }
    o.finish(ctx, &[]);
    ((window > Duration::ZERO).then_some(SlowStart { window, aggression, min_weight }), aggression_key)
}

/// `envoy.config.core.v3.RuntimeDouble`: its `default_value` and its `runtime_key`, which the
/// cluster reads when it rebuilds its host choice (`upstream::Cluster::refresh_lb`).
fn runtime_double(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str) -> Option<(f64, Option<Arc<str>>)> {
    let mut d = o.obj(ctx, name)?;
    let value = match d.get("default_value") {
        Some((v, at)) => match v.as_f64() {
            Some(x) => Some(x),
            None => {
                ctx.err(at, "expected a number");
                None
            }
        },
        None => Some(0.0),
    };
    // Envoy 1.40 takes one without a key (the default then applies).
    let key = d.str(ctx, "runtime_key").filter(|k| !k.is_empty()).map(Arc::from);
    d.finish(ctx, &[]);
    value.map(|v| (v, key))
}
