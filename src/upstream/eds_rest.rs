//! EDS over REST (`api_config_source: {api_type: REST}`): a source like the file source. It
//! polls the management cluster with `POST /v3/discovery:endpoints` (v3 type URL) or, for
//! `transport_api_version: V2`, `/v2/discovery:endpoints` every `refresh_delay`, and delivers
//! what it returns to the reloader as an update of the `ClusterLoadAssignment` named by the
//! service; the reloader applies it (or NACKs it) like any other update. A failed or empty
//! poll keeps the endpoints the cluster has; an answer with the endpoints the cluster already
//! has is not delivered again.
//!
//! Envoy's stats: every poll is a request on the management cluster (`upstream_rq_total`,
//! `upstream_rq_<code>`, `upstream_rq_completed`, `upstream_rq_timeout`) and an update attempt
//! of the EDS cluster (`cluster.<name>.update_attempt`, `update_success`, `update_failure`,
//! `update_rejected`, `update_empty`, `update_no_rebuild`, `version_text`).
//!
//! The poller follows both clusters by name in the running configuration, not the objects
//! it started with: a reload that modifies the management cluster replaces its object, and
//! polling goes on through the new one. It ends when its own cluster is replaced (the new
//! one has its own poller) or removed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;

use super::{Cluster, HostSpec};
use crate::body::ReqBody;
use crate::config::model::{EndpointAddress, LocalityEndpoints, Node};
use crate::reload::stats::{Outcome, SubscriptionStats};
use crate::stats::Counter;
use crate::xds::{Resource, Response, SourceHandle, TypeUrl, Update};

/// Largest discovery response read.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// The host specs an EDS assignment names (only IP endpoints: EDS has no DNS names).
pub fn specs_from_assignment(endpoints: &[LocalityEndpoints]) -> Vec<HostSpec> {
    let mut specs = Vec::new();
    for loc in endpoints {
        for ep in &loc.endpoints {
            if let EndpointAddress::Ip(addr) = ep.address {
                specs.push(HostSpec {
                    addr,
                    hostname: ep.hostname.clone(),
                    weight: ep.weight,
                    priority: loc.priority,
                    health: ep.health,
                    hc: ep.hc.clone(),
                    locality: Arc::clone(&loc.locality),
                    locality_weight: loc.weight,
                    hash_key: ep.hash_key.clone(),
                });
            }
        }
    }
    specs
}

/// The running clusters, by name: what the poller looks its clusters up in each round.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Arc<Cluster>> + Send + Sync>;

/// What one REST EDS poller asks for, and how.
#[derive(Debug, Clone)]
pub struct RestEds {
    /// The management cluster's name.
    pub management: String,
    pub service_name: String,
    pub refresh_delay: Duration,
    pub request_timeout: Duration,
    /// `transport_api_version: V3` (else the v2 API).
    pub transport_v3: bool,
    pub node: Node,
}

impl RestEds {
    /// The discovery path and the type URL asked for, by transport version.
    pub fn path_and_type(&self) -> (&'static str, &'static str) {
        if self.transport_v3 {
            ("/v3/discovery:endpoints", TypeUrl::ClusterLoadAssignment.as_str())
        } else {
            ("/v2/discovery:endpoints", "type.googleapis.com/envoy.api.v2.ClusterLoadAssignment")
        }
    }
}

/// The EDS cluster's update stats (Envoy's `cluster.<name>.update_*`).
struct UpdateStats {
    sub: SubscriptionStats,
    no_rebuild: Counter,
}

/// Starts polling for `cluster` through the management cluster, both looked up in `lookup`
/// each round, delivering answers to `reloader`; ends when `lookup` no longer gives `cluster`
/// itself.
pub fn spawn_rest_eds(cluster: &Arc<Cluster>, lookup: Lookup, reloader: SourceHandle, eds: RestEds) {
    let target: Weak<Cluster> = Arc::downgrade(cluster);
    let prefix = format!("cluster.{}", cluster.config.stat_name());
    let store = cluster.stats.store();
    let stats = UpdateStats {
        sub: SubscriptionStats::new(store, &prefix),
        no_rebuild: store.counter(&format!("{prefix}.update_no_rebuild")),
    };
    let delay = eds.refresh_delay.max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut version = String::new();
        // The endpoints last delivered and applied: an unchanged answer is not a reload.
        let mut applied: Option<Arc<Vec<LocalityEndpoints>>> = None;
        loop {
            let Some(target) = target.upgrade() else { return };
            if !lookup(target.name()).is_some_and(|running| Arc::ptr_eq(&running, &target)) {
                return;
            }
            let Some(mgmt) = lookup(&eds.management) else {
                tracing::warn!(cluster.name = %target.name(), eds.cluster = %eds.management, "EDS management cluster not found");
                drop(target);
                tokio::time::sleep(delay).await;
                continue;
            };
            let polled = poll_once(&mgmt, &eds, &version).await;
            drop(mgmt);
            match polled {
                Ok(Some((v, endpoints))) if applied.as_deref() == Some(&endpoints) => {
                    stats.sub.record(Outcome::Success { changed: false }, &v);
                    stats.no_rebuild.inc();
                    version = v;
                }
                Ok(Some((v, endpoints))) => {
                    // Envoy counts an answer that leaves the host set as it was (the first,
                    // empty, answer to a cluster that starts empty) as no rebuild too.
                    let rebuilds_nothing =
                        endpoints.iter().all(|l| l.endpoints.is_empty()) && target.hosts.load().all.is_empty();
                    let endpoints = Arc::new(endpoints);
                    let update =
                        Update::new(TypeUrl::ClusterLoadAssignment, v.clone(), format!("rest-eds:{}", eds.management))
                            .upsert(eds.service_name.clone(), Resource::ClusterLoadAssignment(Arc::clone(&endpoints)));
                    drop(target);
                    match reloader.deliver(vec![update]).await {
                        Some(Response::Ack) => {
                            stats.sub.record(Outcome::Success { changed: !rebuilds_nothing }, &v);
                            if rebuilds_nothing {
                                stats.no_rebuild.inc();
                            }
                            version = v;
                            applied = Some(endpoints);
                        }
                        Some(Response::Nack(e)) => {
                            stats.sub.record(Outcome::Rejected, &v);
                            tracing::warn!(eds.service = %eds.service_name, error = %e, "REST EDS update rejected")
                        }
                        None => return,
                    }
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Ok(None) => stats.sub.record(Outcome::Empty, &version),
                Err(e) => {
                    stats.sub.record(Outcome::Failure, &version);
                    tracing::warn!(cluster.name = %target.name(), eds.service = %eds.service_name, error = %e, "REST EDS poll failed")
                }
            }
            drop(target);
            tokio::time::sleep(delay).await;
        }
    });
}

/// The poll's request body: Envoy's DiscoveryRequest in JSON.
fn request_body(eds: &RestEds, version: &str) -> String {
    serde_json::json!({
        "version_info": version,
        "node": {"id": eds.node.id, "cluster": eds.node.cluster},
        "resource_names": [eds.service_name],
        "type_url": eds.path_and_type().1,
    })
    .to_string()
}

async fn poll_once(
    mgmt: &Cluster,
    eds: &RestEds,
    version: &str,
) -> Result<Option<(String, Vec<LocalityEndpoints>)>, String> {
    let stats = &mgmt.stats;
    let Some(host) = mgmt.choose() else {
        // Envoy's router answers its own request 503 (`no healthy upstream`).
        stats.upstream_cx_none_healthy.inc();
        stats.charge(503, true);
        return Err(format!("management cluster {} has no hosts", mgmt.name()));
    };
    let (path, _) = eds.path_and_type();
    let mut req = Request::new(ReqBody::Full(Some(Bytes::from(request_body(eds, version)))));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = http::Uri::from_static(path);
    let headers = req.headers_mut();
    headers.insert(http::header::HOST, http::HeaderValue::from_str(&host.addr.to_string()).map_err(|e| e.to_string())?);
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    let started = tokio::time::Instant::now();
    let send = async {
        let sent = host.pool.send(req).await;
        // Envoy counts a request once it is on a connection.
        if !matches!(&sent, Err(e) if e.before_connection()) {
            stats.upstream_rq_total.inc();
            host.stats.rq_total.inc();
        }
        let resp = sent.map_err(|e| (503, e.to_string()))?;
        let status = resp.status();
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| (503, e.to_string()))?
            .to_bytes();
        Ok::<_, (u16, String)>((status, bytes))
    };
    let fetched = match tokio::time::timeout(eds.request_timeout, send).await {
        Ok(r) => r,
        Err(_) => {
            stats.upstream_rq_timeout.inc();
            Err((504, "timed out".to_string()))
        }
    };
    // The management server's requests are the proxy's own: internal, as in Envoy.
    match &fetched {
        Ok((status, _)) => {
            stats.charge(status.as_u16(), true);
            stats.upstream_rq_time.record(started.elapsed().as_millis() as u64);
        }
        Err((code, _)) => stats.charge(*code, true),
    }
    let (status, bytes) = fetched.map_err(|(_, e)| e)?;
    if status != http::StatusCode::OK {
        // Envoy takes only a 200 (a 304 too is a failed fetch): the endpoints stay.
        return Err(format!("management server answered {status}"));
    }
    parse_response(&bytes, &eds.service_name)
}

/// A management server's answer for `service_name`: its version and endpoints, or `None`
/// when it names none (the cluster keeps what it has).
pub fn parse_response(bytes: &[u8], service_name: &str) -> Result<Option<(String, Vec<LocalityEndpoints>)>, String> {
    let parsed = crate::config::parse_endpoints(std::path::Path::new("rest-eds-response.json"), bytes, service_name)
        .map_err(|e| e.to_string())?;
    if parsed.resources.is_empty() {
        return Ok(None);
    }
    let endpoints = parsed.resources.into_iter().flat_map(|cla| cla.endpoints).collect();
    Ok(Some((parsed.version_info, endpoints)))
}

/// The endpoints a cluster runs with (REST EDS, STATIC, STRICT_DNS), as the
/// `ClusterLoadAssignment` Envoy's `/config_dump?include_eds` shows for it: from the live host
/// set, locality, health status, weights and policy spelled out; a DNS host carries the name
/// it was resolved from and an empty `metadata`, as in Envoy 1.40.
pub fn endpoint_config(cluster: &Cluster, service_name: &str) -> serde_json::Value {
    let dns = matches!(cluster.config.discovery, crate::config::model::DiscoveryType::StrictDns);
    let hosts = cluster.hosts.load();
    let mut by_priority: std::collections::BTreeMap<u32, Vec<serde_json::Value>> = Default::default();
    for h in &hosts.all {
        let mut endpoint = serde_json::json!({
            "address": {"socket_address": {"address": h.addr.ip().to_string(), "port_value": h.addr.port()}},
            "health_check_config": {},
        });
        if let Some(name) = &h.hostname {
            endpoint["hostname"] = name.as_str().into();
        }
        let mut lb = serde_json::json!({"endpoint": endpoint, "health_status": "HEALTHY"});
        if dns {
            lb["metadata"] = serde_json::json!({});
        }
        lb["load_balancing_weight"] = h.weight.into();
        by_priority.entry(h.priority).or_default().push(lb);
    }
    let endpoints: Vec<serde_json::Value> = by_priority
        .into_iter()
        .map(|(priority, lb)| {
            let mut loc = serde_json::json!({"locality": {}, "lb_endpoints": lb, "load_balancing_weight": 0});
            if priority > 0 {
                loc["priority"] = priority.into();
            }
            loc
        })
        .collect();
    serde_json::json!({
        "@type": TypeUrl::ClusterLoadAssignment.as_str(),
        "cluster_name": service_name,
        "endpoints": endpoints,
        "policy": {"overprovisioning_factor": 140},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eds(transport_v3: bool) -> RestEds {
        RestEds {
            management: "mgmt".into(),
            service_name: "myservice".into(),
            refresh_delay: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            transport_v3,
            node: Node { id: "n".into(), cluster: "c".into() },
        }
    }

    #[test]
    fn the_transport_version_chooses_the_path_and_type_url() {
        assert_eq!(
            eds(true).path_and_type(),
            ("/v3/discovery:endpoints", "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment")
        );
        assert_eq!(
            eds(false).path_and_type(),
            ("/v2/discovery:endpoints", "type.googleapis.com/envoy.api.v2.ClusterLoadAssignment")
        );
        let body: serde_json::Value = serde_json::from_str(&request_body(&eds(true), "7")).expect("json");
        assert_eq!(body["type_url"], "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment");
        assert_eq!(body["resource_names"], serde_json::json!(["myservice"]));
        assert_eq!(body["version_info"], "7");
    }

    #[test]
    fn v3_answers_are_read() {
        let answer = serde_json::json!({"version_info": "3", "resources": [{
            "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "cluster_name": "myservice",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": 8081}}}}]}],
        }]});
        let (version, eps) = parse_response(answer.to_string().as_bytes(), "myservice").expect("parsed").expect("some");
        assert_eq!(version, "3");
        assert_eq!(specs_from_assignment(&eps).len(), 1);
    }
}
