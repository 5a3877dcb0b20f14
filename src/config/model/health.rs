//! A cluster's resilience settings: active health checks (`health_checks`), outlier
//! detection (`outlier_detection`) and the panic threshold (`common_lb_config`).

use std::time::Duration;

use super::HeaderValueOption;

/// One `health_checks` entry, Envoy's defaults where a field is optional.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub timeout: Duration,
    pub interval: Duration,
    /// `interval_jitter`: up to this much added to each interval.
    pub interval_jitter: Duration,
    /// `interval_jitter_percent`: up to this share of the interval added.
    pub interval_jitter_percent: u32,
    /// `initial_jitter`: the first check of a host waits up to this long.
    pub initial_jitter: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    /// `unhealthy_interval`, default `interval`.
    pub unhealthy_interval: Duration,
    /// `unhealthy_edge_interval`, default `unhealthy_interval`.
    pub unhealthy_edge_interval: Duration,
    /// `healthy_edge_interval`, default `interval`.
    pub healthy_edge_interval: Duration,
    /// `no_traffic_interval` (default 60 s): until the cluster made its first connection
    /// (checks' own connections do not count, as in Envoy).
    pub no_traffic_interval: Duration,
    /// `no_traffic_healthy_interval`, default `no_traffic_interval`: the same, after a
    /// successful check that leaves the host healthy.
    pub no_traffic_healthy_interval: Duration,
    /// `always_log_health_check_failures`: every failed check is an event, not only a host's
    /// first.
    pub always_log_failures: bool,
    /// `event_log_path`: where the JSON event lines go.
    pub event_log_path: Option<std::path::PathBuf>,
    /// `reuse_connection`, default true.
    pub reuse_connection: bool,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Grpc(GrpcCheck),
}

/// `grpc_health_check`: `grpc.health.v1.Health/Check` over HTTP/2, healthy when `SERVING`.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcCheck {
    /// `service_name`: the request's `service` (empty: the server as a whole).
    pub service_name: String,
    /// `authority`, default the cluster's name.
    pub authority: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub path: String,
    /// `host`, default the cluster's name.
    pub host: Option<String>,
    /// `expected_statuses` as [start, end) ranges, default [200, 201).
    pub expected: Vec<(u16, u16)>,
    /// `retriable_statuses`: failures that count toward `unhealthy_threshold`.
    pub retriable: Vec<(u16, u16)>,
    pub headers_to_add: Vec<HeaderValueOption>,
    pub headers_to_remove: Vec<String>,
    /// `codec_client_type: HTTP2`.
    pub http2: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TcpCheck {
    /// `send`: bytes written after connecting.
    pub send: Vec<u8>,
    /// `receive`: each must be found, in order, in what the host answers.
    pub receive: Vec<Vec<u8>>,
}

/// `outlier_detection`, Envoy's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub interval: Duration,
    pub base_ejection_time: Duration,
    /// `max_ejection_time`, default 300 s or `base_ejection_time`, the larger.
    pub max_ejection_time: Duration,
    /// `max_ejection_time_jitter`: each ejection lasts a random [0, jitter] longer.
    pub max_ejection_time_jitter: Duration,
    pub max_ejection_percent: u32,
    /// `always_eject_one_host`: one host may be ejected whatever `max_ejection_percent` says.
    pub always_eject_one_host: bool,
    pub enforcing_consecutive_5xx: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub enforcing_success_rate: u32,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    /// `success_rate_stdev_factor`, in thousandths (1900: 1.9).
    pub success_rate_stdev_factor: u32,
    pub failure_percentage_threshold: u32,
    pub enforcing_failure_percentage: u32,
    pub enforcing_failure_percentage_local_origin: u32,
    pub failure_percentage_minimum_hosts: u32,
    pub failure_percentage_request_volume: u32,
    /// `split_external_local_origin_errors`: connect failures, timeouts and resets count as
    /// local-origin errors, apart from the upstream's 5xx.
    pub split_external_local_origin_errors: bool,
    pub consecutive_local_origin_failure: u32,
    pub enforcing_consecutive_local_origin_failure: u32,
    pub enforcing_local_origin_success_rate: u32,
    /// `successful_active_health_check_uneject_host`: a passing active check brings an
    /// ejected host back.
    pub successful_active_health_check_uneject_host: bool,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_time_jitter: Duration::ZERO,
            max_ejection_percent: 10,
            always_eject_one_host: false,
            enforcing_consecutive_5xx: 100,
            enforcing_consecutive_gateway_failure: 0,
            enforcing_success_rate: 100,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            failure_percentage_threshold: 85,
            enforcing_failure_percentage: 0,
            enforcing_failure_percentage_local_origin: 0,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 50,
            split_external_local_origin_errors: false,
            consecutive_local_origin_failure: 5,
            enforcing_consecutive_local_origin_failure: 100,
            enforcing_local_origin_success_rate: 100,
            successful_active_health_check_uneject_host: true,
        }
    }
}
