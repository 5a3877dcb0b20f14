//! EDS over REST (the v2-era `api_config_source: {api_type: REST}`): poll the management
//! cluster with `POST /v2/discovery:endpoints` every `refresh_delay` and apply the endpoints
//! it returns. A failed or empty poll keeps the endpoints the cluster has.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;

use super::{Cluster, HostSpec};
use crate::config::model::{EndpointAddress, LocalityEndpoints, Node};
use crate::proxy::body::ReqBody;

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

/// Starts polling for `cluster` through `management`; ends when either cluster is gone.
pub fn spawn_rest_eds(
    cluster: &Arc<Cluster>,
    management: &Arc<Cluster>,
    service_name: String,
    refresh_delay: Duration,
    request_timeout: Duration,
    node: Node,
) {
    let target: Weak<Cluster> = Arc::downgrade(cluster);
    let mgmt: Weak<Cluster> = Arc::downgrade(management);
    tokio::spawn(async move {
        let mut version = String::new();
        loop {
            let (Some(target), Some(mgmt)) = (target.upgrade(), mgmt.upgrade()) else { return };
            match poll_once(&mgmt, &service_name, &version, &node, request_timeout).await {
                Ok(Some((v, endpoints))) => {
                    version = v;
                    target.set_hosts(specs_from_assignment(&endpoints));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(cluster.name = %target.name(), eds.service = %service_name, error = %e, "REST EDS poll failed")
                }
            }
            drop((target, mgmt));
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

/// Starts REST EDS for every cluster that asks for it.
pub fn spawn_all(clusters: &HashMap<String, Arc<Cluster>>, node: &Node) {
    for cluster in clusters.values() {
        if let crate::config::model::DiscoveryType::Eds {
            service_name,
            source: crate::config::model::EdsSource::Rest { cluster: mgmt, refresh_delay, request_timeout },
        } = &cluster.config.discovery
        {
            match clusters.get(mgmt) {
                Some(m) => {
                    spawn_rest_eds(cluster, m, service_name.clone(), *refresh_delay, *request_timeout, node.clone())
                }
                None => {
                    tracing::error!(cluster.name = %cluster.name(), eds.cluster = %mgmt, "EDS management cluster not found")
                }
            }
        }
    }
}
