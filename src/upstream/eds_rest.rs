//! EDS over REST (the v2-era `api_config_source: {api_type: REST}`): a source like the file
//! source. It polls the management cluster with `POST /v2/discovery:endpoints` every
//! `refresh_delay` and delivers what it returns to the reloader as an update of the
//! `ClusterLoadAssignment` named by the service; the reloader applies it (or NACKs it) like
//! any other update. A failed or empty poll keeps the endpoints the cluster has.
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
use crate::xds::{Resource, Response, SourceHandle, TypeUrl, Update};

/// Largest discovery response read.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// The host specs an EDS assignment names (only IP endpoints: EDS has no DNS names).
pub fn specs_from_assignment(endpoints: &[LocalityEndpoints]) -> Vec<HostSpec> {
    let mut specs = Vec::new();
    for loc in endpoints {
        for ep in &loc.endpoints {
            if let EndpointAddress::Ip(addr) = ep.address {
                specs.push(HostSpec { addr, hostname: ep.hostname.clone(), weight: ep.weight, priority: loc.priority });
            }
        }
    }
    specs
}

/// The running clusters, by name: what the poller looks its clusters up in each round.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Arc<Cluster>> + Send + Sync>;

/// Starts polling for `cluster` through the cluster named `management`, both looked up in
/// `lookup` each round, delivering answers to `reloader`; ends when `lookup` no longer gives
/// `cluster` itself.
#[allow(clippy::too_many_arguments)]
pub fn spawn_rest_eds(
    cluster: &Arc<Cluster>,
    lookup: Lookup,
    reloader: SourceHandle,
    management: String,
    service_name: String,
    refresh_delay: Duration,
    request_timeout: Duration,
    node: Node,
) {
    let target: Weak<Cluster> = Arc::downgrade(cluster);
    tokio::spawn(async move {
        let mut version = String::new();
        loop {
            let Some(target) = target.upgrade() else { return };
            if !lookup(target.name()).is_some_and(|running| Arc::ptr_eq(&running, &target)) {
                return;
            }
            match lookup(&management) {
                Some(mgmt) => match poll_once(&mgmt, &service_name, &version, &node, request_timeout).await {
                    Ok(Some((v, endpoints))) => {
                        let update =
                            Update::new(TypeUrl::ClusterLoadAssignment, v.clone(), format!("rest-eds:{management}"))
                                .upsert(service_name.clone(), Resource::ClusterLoadAssignment(Arc::new(endpoints)));
                        drop(target);
                        match reloader.deliver(vec![update]).await {
                            Some(Response::Ack) => version = v,
                            Some(Response::Nack(e)) => {
                                tracing::warn!(eds.service = %service_name, error = %e, "REST EDS update rejected")
                            }
                            None => return,
                        }
                        tokio::time::sleep(refresh_delay.max(Duration::from_millis(100))).await;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(cluster.name = %target.name(), eds.service = %service_name, error = %e, "REST EDS poll failed")
                    }
                },
                None => {
                    tracing::warn!(cluster.name = %target.name(), eds.cluster = %management, "EDS management cluster not found")
                }
            }
            drop(target);
            tokio::time::sleep(refresh_delay.max(Duration::from_millis(100))).await;
        }
    });
}

async fn poll_once(
    mgmt: &Cluster,
    service_name: &str,
    version: &str,
    node: &Node,
    timeout: Duration,
) -> Result<Option<(String, Vec<LocalityEndpoints>)>, String> {
    let host = mgmt.choose().ok_or_else(|| format!("management cluster {} has no hosts", mgmt.name()))?;
    let body = serde_json::json!({
        "version_info": version,
        "node": {"id": node.id, "cluster": node.cluster},
        "resource_names": [service_name],
        "type_url": "type.googleapis.com/envoy.api.v2.ClusterLoadAssignment",
    })
    .to_string();
    let mut req = Request::new(ReqBody::Full(Some(Bytes::from(body))));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = http::Uri::from_static("/v2/discovery:endpoints");
    let headers = req.headers_mut();
    headers.insert(http::header::HOST, http::HeaderValue::from_str(&host.addr.to_string()).map_err(|e| e.to_string())?);
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    let fetch = async {
        let resp = host.pool.send(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(timeout, fetch).await.map_err(|_| "timed out".to_string())??;
    if status == http::StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(format!("management server answered {status}"));
    }
    parse_response(&bytes, service_name)
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
