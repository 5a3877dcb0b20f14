//! `outlier_detection`: Envoy's defaults, every field read, and its refusals with their paths.

use std::time::Duration;

use super::{load_text, messages, v3, A_SVC, ROUTE_A};
use crate::config::model::*;

const OD: &str = "static_resources.clusters[0].outlier_detection";

fn load(od: &str) -> Result<OutlierDetection, Vec<String>> {
    let text = v3(ROUTE_A, &format!("{A_SVC}    outlier_detection: {od}\n"));
    let b = load_text("c.yaml", &text).map_err(|e| messages(&e))?;
    Ok(b.clusters[0].outlier_detection.clone().unwrap_or_else(|| panic!("no outlier_detection")))
}

#[test]
fn envoys_defaults() {
    let d = load("{}").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(d, OutlierDetection::default());
    assert_eq!(
        (d.success_rate_minimum_hosts, d.success_rate_request_volume, d.success_rate_stdev_factor),
        (5, 100, 1900)
    );
    assert_eq!((d.failure_percentage_threshold, d.failure_percentage_minimum_hosts), (85, 5));
    assert_eq!((d.failure_percentage_request_volume, d.enforcing_failure_percentage), (50, 0));
    assert_eq!((d.enforcing_success_rate, d.enforcing_local_origin_success_rate), (100, 100));
    assert_eq!((d.consecutive_local_origin_failure, d.enforcing_consecutive_local_origin_failure), (5, 100));
    assert!(d.successful_active_health_check_uneject_host && !d.split_external_local_origin_errors);
    assert_eq!(d.max_ejection_time, Duration::from_secs(300));
    // Without max_ejection_time, a base time over 300 s is the maximum too.
    let d = load("{base_ejection_time: 400s}").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(d.max_ejection_time, Duration::from_secs(400));
}

#[test]
fn every_field_is_read() {
    let d = load(
        "{success_rate_minimum_hosts: 3, success_rate_request_volume: 10, success_rate_stdev_factor: 1000, \
         enforcing_success_rate: 50, failure_percentage_threshold: 70, failure_percentage_minimum_hosts: 2, \
         failure_percentage_request_volume: 20, enforcing_failure_percentage: 30, \
         enforcing_failure_percentage_local_origin: 40, split_external_local_origin_errors: true, \
         consecutive_local_origin_failure: 7, enforcing_consecutive_local_origin_failure: 60, \
         enforcing_local_origin_success_rate: 80, max_ejection_time_jitter: 2s, \
         successful_active_health_check_uneject_host: false, always_eject_one_host: true}",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let want = OutlierDetection {
        success_rate_minimum_hosts: 3,
        success_rate_request_volume: 10,
        success_rate_stdev_factor: 1000,
        enforcing_success_rate: 50,
        failure_percentage_threshold: 70,
        failure_percentage_minimum_hosts: 2,
        failure_percentage_request_volume: 20,
        enforcing_failure_percentage: 30,
        enforcing_failure_percentage_local_origin: 40,
        split_external_local_origin_errors: true,
        consecutive_local_origin_failure: 7,
        enforcing_consecutive_local_origin_failure: 60,
        enforcing_local_origin_success_rate: 80,
        max_ejection_time_jitter: Duration::from_secs(2),
        successful_active_health_check_uneject_host: false,
        always_eject_one_host: true,
        ..OutlierDetection::default()
    };
    assert_eq!(d, want);
}

#[test]
fn out_of_range_values_name_their_field() {
    for field in [
        "failure_percentage_threshold",
        "enforcing_success_rate",
        "enforcing_failure_percentage",
        "enforcing_failure_percentage_local_origin",
        "enforcing_consecutive_local_origin_failure",
        "enforcing_local_origin_success_rate",
        "max_ejection_percent",
    ] {
        let e = load(&format!("{{{field}: 101}}")).err().unwrap_or_default();
        assert!(e.contains(&format!("{OD}.{field}: value 101 out of range (max 100)")), "{e:?}");
    }
    let e = load("{base_ejection_time: 60s, max_ejection_time: 30s}").err().unwrap_or_default();
    let want = format!(
        "{OD}.max_ejection_time: outlier detector's max_ejection_time cannot be smaller than base_ejection_time"
    );
    assert!(e.contains(&want), "{e:?}");
    let e = load("{interval: 0s}").err().unwrap_or_default();
    assert!(e.contains(&format!("{OD}.interval: must be greater than 0s")), "{e:?}");
    let e = load("{split_external_local_origin_errors: maybe}").err().unwrap_or_default();
    assert!(e.contains(&format!("{OD}.split_external_local_origin_errors: expected a boolean")), "{e:?}");
    let e = load("{monitors: [{name: m}]}").err().unwrap_or_default();
    assert!(e.contains(&format!("{OD}.monitors: not implemented by legate")), "{e:?}");
}
