//! The interval's statistics, pure (Envoy's `processSuccessRateEjections`): from each host's
//! (requests, successes) of the interval, which success rates are shown, the cluster's mean
//! and ejection threshold, and which hosts are success-rate or failure-percentage outliers.

/// The settings of one origin's sweep.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub sr_minimum_hosts: u64,
    pub sr_request_volume: u64,
    /// `success_rate_stdev_factor` / 1000.
    pub sr_stdev_factor: f64,
    pub fp_minimum_hosts: u64,
    pub fp_request_volume: u64,
    pub fp_threshold: f64,
}

/// What one origin's sweep found.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    /// (host index, success rate) of the hosts with the volume of either detection: the
    /// rates `/clusters` shows (the others show -1).
    pub shown: Vec<(usize, f64)>,
    /// (mean, ejection threshold) when enough hosts had the success-rate volume.
    pub numbers: Option<(f64, f64)>,
    /// Hosts under the threshold, in host order.
    pub sr_outliers: Vec<usize>,
    /// Hosts whose failure percentage reached `failure_percentage_threshold`.
    pub fp_outliers: Vec<usize>,
}

/// `samples[i]`: host i's (requests, successes) of the interval, `None` for an ejected
/// host (not judged). `hosts`: all the cluster's hosts, ejected ones included.
pub fn judge(samples: &[Option<(u64, u64)>], hosts: usize, l: &Limits) -> Verdict {
    let mut v = Verdict::default();
    let hosts = hosts as u64;
    if hosts < l.sr_minimum_hosts && hosts < l.fp_minimum_hosts {
        return v;
    }
    let mut sr_hosts = Vec::new();
    let mut fp_hosts = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let Some((total, successes)) = *s else { continue };
        if total == 0 {
            continue;
        }
        let rate = successes as f64 * 100.0 / total as f64;
        if total >= l.sr_request_volume.min(l.fp_request_volume) {
            v.shown.push((i, rate));
        }
        if total >= l.sr_request_volume {
            sr_hosts.push((i, rate));
        }
        if total >= l.fp_request_volume {
            fp_hosts.push((i, rate));
        }
    }
    if !sr_hosts.is_empty() && sr_hosts.len() as u64 >= l.sr_minimum_hosts {
        let rates: Vec<f64> = sr_hosts.iter().map(|&(_, r)| r).collect();
        let (mean, threshold) = threshold(&rates, l.sr_stdev_factor);
        v.numbers = Some((mean, threshold));
        v.sr_outliers = sr_hosts.iter().filter(|&&(_, r)| r < threshold).map(|&(i, _)| i).collect();
    }
    if !fp_hosts.is_empty() && fp_hosts.len() as u64 >= l.fp_minimum_hosts {
        v.fp_outliers = fp_hosts.iter().filter(|&&(_, r)| 100.0 - r >= l.fp_threshold).map(|&(i, _)| i).collect();
    }
    v
}

/// (mean, mean - factor * standard deviation) of `rates` (the population deviation).
pub fn threshold(rates: &[f64], factor: f64) -> (f64, f64) {
    let n = rates.len().max(1) as f64;
    let mean = rates.iter().sum::<f64>() / n;
    let variance = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    (mean, mean - factor * variance.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Limits = Limits {
        sr_minimum_hosts: 5,
        sr_request_volume: 100,
        sr_stdev_factor: 1.9,
        fp_minimum_hosts: 5,
        fp_request_volume: 50,
        fp_threshold: 85.0,
    };

    #[test]
    fn envoy_s_worked_example() {
        // Envoy's comment: {50, 100, 100, 100, 100}: mean 90, stdev 20, threshold 52 at 1.9.
        let (mean, t) = threshold(&[50.0, 100.0, 100.0, 100.0, 100.0], 1.9);
        assert_eq!(mean, 90.0);
        assert!((t - 52.0).abs() < 1e-9, "{t}");
    }

    #[test]
    fn a_host_under_the_threshold_is_an_outlier() {
        let s = [Some((100, 50)), Some((100, 100)), Some((100, 100)), Some((100, 100)), Some((100, 100))];
        let v = judge(&s, 5, &DEFAULTS);
        assert_eq!(v.sr_outliers, [0]);
        assert_eq!(v.fp_outliers, Vec::<usize>::new(), "50% failures is under 85%");
        assert_eq!(v.shown.len(), 5);
        assert_eq!(v.numbers.map(|n| n.0), Some(90.0));
    }

    #[test]
    fn volume_and_host_minimums_gate_each_detection() {
        // Four hosts with the success-rate volume: too few for it; five with 50 for the
        // failure percentage.
        let s = [Some((100, 100)), Some((100, 100)), Some((100, 100)), Some((100, 100)), Some((60, 0))];
        let v = judge(&s, 5, &DEFAULTS);
        assert_eq!(v.numbers, None);
        assert!(v.sr_outliers.is_empty());
        assert_eq!(v.fp_outliers, [4], "100% failures");
        assert_eq!(v.shown, [(0, 100.0), (1, 100.0), (2, 100.0), (3, 100.0), (4, 0.0)]);
        // A host under both volumes shows no rate; ejected hosts are not judged.
        let s = [Some((10, 0)), None, Some((100, 100)), Some((100, 100)), Some((100, 100))];
        let v = judge(&s, 5, &DEFAULTS);
        assert_eq!(v.shown.len(), 3);
        assert!(v.fp_outliers.is_empty(), "three hosts of five");
    }

    #[test]
    fn too_few_hosts_compute_nothing() {
        let s = [Some((1000, 0)), Some((1000, 1000))];
        assert_eq!(judge(&s, 2, &DEFAULTS), Verdict::default());
        let two = Limits { sr_minimum_hosts: 2, ..DEFAULTS };
        let v = judge(&s, 2, &two);
        // mean 50, stdev 50: threshold 50 - 95 < 0 catches nobody.
        assert_eq!(v.numbers, Some((50.0, -45.0)));
        assert!(v.sr_outliers.is_empty());
    }

    #[test]
    fn equal_rates_have_no_outlier() {
        let s = vec![Some((200, 150)); 6];
        let v = judge(&s, 6, &DEFAULTS);
        assert_eq!(v.numbers, Some((75.0, 75.0)));
        assert!(v.sr_outliers.is_empty(), "strictly under the threshold");
    }
}
