//! The descriptors of a request: the route's (and virtual host's) `rate_limits` entries of
//! the filter's `stage`, each action adding one `(key, value)` entry, an entry whose action
//! does not apply dropping the whole descriptor (as Envoy's `populateDescriptors`).

use std::net::IpAddr;

use crate::config::model::{RateLimitAction, RateLimitPolicy, VhRateLimits};
use crate::routing::matcher::{header_matches, RequestView};

/// A route's `rate_limits` (its action's and its virtual host's), compiled with the route.
#[derive(Debug, Default)]
pub struct RouteRateLimits {
    pub route: Vec<RateLimitPolicy>,
    pub vh: Vec<RateLimitPolicy>,
    /// The route action's `include_vh_rate_limits`.
    pub include_vh: bool,
}

/// What the actions read of a request.
pub struct DescriptorInput<'a> {
    pub view: RequestView<'a>,
    /// The trusted client address (`remote_address`).
    pub remote: IpAddr,
    /// The route's cluster (`destination_cluster`).
    pub cluster: Option<&'a str>,
}

pub type Descriptor = Vec<(String, String)>;

/// The descriptors of a request, in Envoy's order: the route's entries, then the virtual
/// host's as `vh_rate_limits` (or the route's `include_vh_rate_limits`) says.
pub fn populate(
    limits: &RouteRateLimits,
    stage: u32,
    vh_option: VhRateLimits,
    input: &DescriptorInput<'_>,
) -> Vec<Descriptor> {
    let mut out = Vec::new();
    entries(&limits.route, stage, input, &mut out);
    let option = if limits.include_vh { VhRateLimits::Include } else { vh_option };
    match option {
        VhRateLimits::Ignore => {}
        VhRateLimits::Include => entries(&limits.vh, stage, input, &mut out),
        VhRateLimits::Override => {
            if limits.route.is_empty() {
                entries(&limits.vh, stage, input, &mut out);
            }
        }
    }
    out
}

fn entries(policies: &[RateLimitPolicy], stage: u32, input: &DescriptorInput<'_>, out: &mut Vec<Descriptor>) {
    for p in policies.iter().filter(|p| p.stage == stage && !p.disabled) {
        let mut d = Vec::with_capacity(p.actions.len());
        let complete = p.actions.iter().all(|a| action(a, input, &mut d));
        if complete && !d.is_empty() {
            out.push(d);
        }
    }
}

/// Adds the action's entry; `false` drops the descriptor.
fn action(a: &RateLimitAction, input: &DescriptorInput<'_>, d: &mut Descriptor) -> bool {
    match a {
        RateLimitAction::RequestHeaders { header_name, descriptor_key, skip_if_absent } => {
            match input.view.headers.get(header_name.as_str()).and_then(|v| v.to_str().ok()) {
                Some(v) => {
                    d.push((descriptor_key.clone(), v.to_string()));
                    true
                }
                None => *skip_if_absent,
            }
        }
        RateLimitAction::RemoteAddress => {
            d.push(("remote_address".to_string(), input.remote.to_string()));
            true
        }
        RateLimitAction::GenericKey { descriptor_key, descriptor_value } => {
            d.push((descriptor_key.clone(), descriptor_value.clone()));
            true
        }
        RateLimitAction::HeaderValueMatch { descriptor_key, descriptor_value, expect_match, headers } => {
            let matched = headers.iter().all(|h| header_matches(h, &input.view));
            if matched == *expect_match {
                d.push((descriptor_key.clone(), descriptor_value.clone()));
                true
            } else {
                false
            }
        }
        RateLimitAction::DestinationCluster => match input.cluster {
            Some(c) => {
                d.push(("destination_cluster".to_string(), c.to_string()));
                true
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{HeaderMatchKind, HeaderMatcher};

    fn policy(actions: Vec<RateLimitAction>) -> RateLimitPolicy {
        RateLimitPolicy { stage: 0, disabled: false, actions }
    }

    #[test]
    fn actions_make_descriptors_and_a_missing_header_drops_one() {
        let mut h = http::HeaderMap::new();
        h.insert("x-user", http::HeaderValue::from_static("bob"));
        let view = RequestView::new("/p?q", "GET", "host", "http", &h);
        let input = DescriptorInput {
            view,
            remote: "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            cluster: Some("c"),
        };
        let limits = RouteRateLimits {
            route: vec![
                policy(vec![
                    RateLimitAction::RequestHeaders {
                        header_name: "x-user".into(),
                        descriptor_key: "user".into(),
                        skip_if_absent: false,
                    },
                    RateLimitAction::RemoteAddress,
                ]),
                policy(vec![RateLimitAction::RequestHeaders {
                    header_name: "x-absent".into(),
                    descriptor_key: "a".into(),
                    skip_if_absent: false,
                }]),
                policy(vec![
                    RateLimitAction::GenericKey { descriptor_key: "generic_key".into(), descriptor_value: "g".into() },
                    RateLimitAction::HeaderValueMatch {
                        descriptor_key: "header_match".into(),
                        descriptor_value: "no-user".into(),
                        expect_match: false,
                        headers: vec![HeaderMatcher {
                            name: "x-user".into(),
                            kind: HeaderMatchKind::Present(true),
                            invert_match: false,
                            treat_missing_as_empty: false,
                        }],
                    },
                ]),
                policy(vec![RateLimitAction::DestinationCluster]),
            ],
            vh: vec![policy(vec![RateLimitAction::GenericKey {
                descriptor_key: "vh".into(),
                descriptor_value: "v".into(),
            }])],
            include_vh: false,
        };
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        let got = populate(&limits, 0, VhRateLimits::Override, &input);
        assert_eq!(
            got,
            vec![vec![s("user", "bob"), s("remote_address", "10.0.0.1")], vec![s("destination_cluster", "c")],]
        );
        assert_eq!(populate(&limits, 0, VhRateLimits::Include, &input).last(), Some(&vec![s("vh", "v")]));
        assert!(populate(&limits, 1, VhRateLimits::Override, &input).is_empty(), "other stage");
    }
}
