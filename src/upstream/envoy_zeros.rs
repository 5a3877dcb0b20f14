//! The cluster stats Envoy shows for every cluster (a STATIC one included) that legate never
//! moves: the discovery counters of a cluster without discovery (`update_*`, `assignment_*`),
//! and those of features legate does not have (zone and subset load balancing, HTTP/3, flow
//! control). They exist at 0 so that `/stats` and `/stats/prometheus`
//! list the names Envoy 1.40 lists for the same cluster; DNS and EDS clusters count their
//! `update_*` in the same counters (the store hands out one counter per name).

use std::sync::Arc;

use crate::stats::{Counter, Gauge, Histogram, Store};

const COUNTERS: &[&str] = &[
    "assignment_stale",
    "assignment_timeout_received",
    "assignment_use_cached",
    "bind_errors",
    "lb_local_cluster_not_ok",
    "lb_recalculate_zone_structures",
    "lb_subsets_created",
    "lb_subsets_fallback",
    "lb_subsets_fallback_panic",
    "lb_subsets_removed",
    "lb_subsets_selected",
    "lb_zone_cluster_too_small",
    "lb_zone_no_capacity_left",
    "lb_zone_routing_all_directly",
    "lb_zone_routing_cross_zone",
    "lb_zone_routing_sampled",
    "original_dst_host_invalid",
    "update_attempt",
    "update_empty",
    "update_failure",
    "update_no_rebuild",
    "update_success",
    "upstream_cx_close_notify",
    "upstream_cx_connect_with_0_rtt",
    "upstream_cx_destroy_local",
    "upstream_cx_destroy_remote",
    "upstream_cx_http3_total",
    "upstream_cx_max_duration_reached",
    "upstream_cx_max_requests",
    "upstream_cx_pool_overflow",
    "upstream_cx_preconnect_skipped",
    "upstream_flow_control_backed_up_total",
    "upstream_flow_control_drained_total",
    "upstream_flow_control_paused_reading_total",
    "upstream_flow_control_resumed_reading_total",
    "upstream_http3_broken",
    "upstream_rq_0rtt",
    "upstream_rq_cancelled",
    "upstream_rq_maintenance_mode",
    "upstream_rq_max_duration_reached",
    "upstream_rq_rx_reset_no_error",
];

const GAUGES: &[&str] = &[
    "lb_subsets_active",
    "max_host_weight",
    "upstream_cx_rx_bytes_buffered",
    "upstream_cx_tx_bytes_buffered",
    "upstream_queue_overloaded",
    "version",
    "warming_state",
];

const HISTOGRAMS: &[&str] = &["upstream_rq_per_cx"];

/// The handles keep the stats alive as long as the cluster (`Store::retain_live`).
pub(crate) struct EnvoyZeros {
    _counters: Vec<Counter>,
    _gauges: Vec<Gauge>,
    _histograms: Vec<Histogram>,
}

impl EnvoyZeros {
    pub(crate) fn new(store: &Arc<Store>, name: &str) -> Self {
        let full = |s: &str| format!("cluster.{name}.{s}");
        EnvoyZeros {
            _counters: COUNTERS.iter().map(|s| store.counter(&full(s))).collect(),
            _gauges: GAUGES.iter().map(|s| store.gauge(&full(s))).collect(),
            _histograms: HISTOGRAMS.iter().map(|s| store.histogram(&full(s))).collect(),
        }
    }
}
