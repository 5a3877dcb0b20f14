//! REST EDS against a real HTTP discovery server: `transport_api_version: V3` polls
//! `/v3/discovery:endpoints` with v3 type URLs and takes v3 answers, a document in v2
//! spellings keeps `/v2/discovery:endpoints`; each poll is a request on the management
//! cluster and an update attempt of the EDS cluster, counted as Envoy counts them; the
//! endpoints delivered show in `/config_dump?include_eds`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::config::{bootstrap, static_cluster, to_cluster};
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

const V3_PATH: &str = "/v3/discovery:endpoints";
const V3_TYPE: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const V2_TYPE: &str = "type.googleapis.com/envoy.api.v2.ClusterLoadAssignment";

#[derive(Default)]
struct State {
    /// The endpoints served, and the status to answer with instead (for failures).
    endpoints: Vec<SocketAddr>,
    status: Option<u16>,
    /// `(path, type_url asked for, resource_names)` of every poll.
    polls: Vec<(String, String, Value)>,
}

/// A REST discovery server answering each known path with a DiscoveryResponse typed for the
/// path's API version (404 for any other path).
struct Discovery {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Discovery {
    async fn spawn() -> Discovery {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let shared = Arc::clone(&shared);
                        async move {
                            let path = req.uri().path().to_string();
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let asked: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let mut s = shared.lock().expect("state");
                            let type_url = asked["type_url"].as_str().unwrap_or("").to_string();
                            s.polls.push((path.clone(), type_url.clone(), asked["resource_names"].clone()));
                            let typed = match path.as_str() {
                                V3_PATH => V3_TYPE,
                                "/v2/discovery:endpoints" => V2_TYPE,
                                _ => return Ok::<_, Infallible>(status(404, "")),
                            };
                            if let Some(code) = s.status {
                                return Ok(status(code, "failing"));
                            }
                            let eps: Vec<Value> = s
                                .endpoints
                                .iter()
                                .map(|a| {
                                    json!({"endpoint": {"address": {"socket_address": {
                                    "address": a.ip().to_string(), "port_value": a.port()}}}})
                                })
                                .collect();
                            let resources: Vec<Value> = asked["resource_names"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|n| json!({"@type": typed, "cluster_name": n, "endpoints": [{"lb_endpoints": eps}]}))
                                .collect();
                            let answer =
                                json!({"version_info": format!("v{}", s.endpoints.len()), "resources": resources});
                            Ok(Response::new(Full::new(Bytes::from(answer.to_string()))))
                        }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Discovery { addr, state, task }
    }

    fn serve(&self, endpoints: &[SocketAddr]) {
        self.state.lock().expect("state").endpoints = endpoints.to_vec();
    }

    fn fail_with(&self, status: Option<u16>) {
        self.state.lock().expect("state").status = status;
    }

    fn polls(&self) -> Vec<(String, String, Value)> {
        self.state.lock().expect("state").polls.clone()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status(code: u16, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// Listener `main` to `target` (service `myservice`), whose endpoints come from `mgmt`.
fn v3_config(mgmt: SocketAddr, transport: Option<&str>) -> String {
    let mut api = json!({"api_type": "REST", "cluster_names": ["mgmt"], "refresh_delay": "0.1s"});
    if let Some(t) = transport {
        api["transport_api_version"] = json!(t);
    }
    bootstrap()
        .routes(json!([to_cluster(json!({"prefix": "/"}), "target")]))
        .cluster(json!({"name": "target", "type": "EDS", "connect_timeout": "1s", "eds_cluster_config": {
            "service_name": "myservice", "eds_config": {"resource_api_version": "V3", "api_config_source": api}}}))
        .cluster(static_cluster("mgmt", &[mgmt]))
        .yaml()
}

async fn hit(legate: &Legate) -> String {
    let r = Client::h1().get(&legate.url("main", "/")).await;
    if r.status == 200 {
        r.instance()
    } else {
        format!("{} {}", r.status.as_u16(), r.text())
    }
}

#[tokio::test]
async fn v3_transport_polls_the_v3_path_with_v3_type_urls() {
    let a: Upstream = upstream::http1().name("a").spawn().await;
    let disco = Discovery::spawn().await;
    let legate = Legate::start(v3_config(disco.addr, Some("V3"))).await;
    assert_eq!(hit(&legate).await, "503 no healthy upstream");
    // Answers without endpoints to a cluster that has none rebuild nothing, the first one
    // included (Envoy 1.40 against the same server: update_no_rebuild == update_success).
    assert_eventually!(
        {
            let s = legate.stats().await;
            let success = s["cluster.target.update_success"];
            success >= 2 && s["cluster.target.update_no_rebuild"] == success
        },
        "every empty answer is a no-rebuild"
    );
    disco.serve(&[a.addr()]);
    assert_eventually!(legate.stat("cluster.target.membership_total").await == 1, "the v3 answer applies");
    assert_eq!(hit(&legate).await, "a");
    let polls = disco.polls();
    assert!(!polls.is_empty());
    for (path, type_url, names) in &polls {
        assert_eq!((path.as_str(), type_url.as_str()), (V3_PATH, V3_TYPE));
        assert_eq!(names, &json!(["myservice"]));
    }
    // Unchanged answers are successful updates that rebuild nothing.
    assert_eventually!(legate.stat("cluster.target.update_no_rebuild").await >= 2, "polls go on");
    let stats = legate.stats().await;
    let attempts = stats["cluster.target.update_attempt"];
    assert!(attempts >= 3 && stats["cluster.target.update_success"] >= 3, "{stats:?}");
    assert_eq!(stats["cluster.target.update_failure"], 0);
    // Every poll is a request on the management cluster, internal as Envoy's own are.
    assert!(stats["cluster.mgmt.upstream_rq_total"] >= attempts, "{stats:?}");
    assert!(stats["cluster.mgmt.upstream_rq_200"] >= attempts);
    assert!(stats["cluster.mgmt.internal.upstream_rq_200"] >= attempts);
    assert!(stats["cluster.mgmt.upstream_rq_completed"] >= attempts);
    let version = legate.admin_get("/stats?filter=cluster.target.version_text").await.text();
    assert!(version.contains("cluster.target.version_text: \"v1\""), "{version}");
    // The REST-delivered endpoints show in the config dump (a bootstrap cluster: static).
    let dump = legate.admin_get("/config_dump?include_eds").await.json();
    let eds = dump["configs"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"))
        .cloned()
        .expect("an EndpointsConfigDump");
    let statics: Vec<&Value> =
        eds["static_endpoint_configs"].as_array().into_iter().flatten().map(|e| &e["endpoint_config"]).collect();
    let names: Vec<&Value> = statics.iter().map(|c| &c["cluster_name"]).collect();
    // The STATIC management cluster's endpoints too, by cluster name, as Envoy lists them.
    assert_eq!(names, [&json!("mgmt"), &json!("myservice")], "{eds:#}");
    let port = &statics[0]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"];
    assert_eq!(port, &json!(disco.addr.port()), "{eds:#}");
    let cla = statics[1];
    assert_eq!(cla["@type"], V3_TYPE);
    let sa = &cla["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
    assert_eq!(sa["port_value"], json!(a.addr().port()), "{eds:#}");
    assert_eq!(cla["endpoints"][0]["lb_endpoints"][0]["health_status"], "HEALTHY");
    // Without include_eds there is no endpoint dump.
    let plain = legate.admin_get("/config_dump").await.text();
    assert!(!plain.contains("EndpointsConfigDump"));
}

#[tokio::test]
async fn failed_polls_count_update_failure_and_keep_the_endpoints() {
    let a: Upstream = upstream::http1().name("a").spawn().await;
    let disco = Discovery::spawn().await;
    disco.serve(&[a.addr()]);
    // No transport_api_version in a v3 document: v3, as in Envoy 1.40.
    let legate = Legate::start(v3_config(disco.addr, None)).await;
    assert_eventually!(hit(&legate).await == "a", "the first answer applies");
    disco.fail_with(Some(503));
    assert_eventually!(legate.stat("cluster.target.update_failure").await >= 2, "failed polls are counted");
    assert!(legate.stat("cluster.mgmt.upstream_rq_503").await >= 2);
    assert_eq!(hit(&legate).await, "a", "the last endpoints stay");
    // The server goes away altogether: still the last endpoints.
    drop(disco);
    let failures = legate.stat("cluster.target.update_failure").await;
    assert_eventually!(legate.stat("cluster.target.update_failure").await > failures + 1, "polls go on failing");
    assert_eq!(hit(&legate).await, "a");
    assert_eq!(legate.stat("cluster.target.update_rejected").await, 0);
}

#[tokio::test]
async fn a_v2_spelled_document_keeps_the_v2_path() {
    let a: Upstream = upstream::http1().name("a").spawn().await;
    let disco = Discovery::spawn().await;
    disco.serve(&[a.addr()]);
    let yaml = format!(
        r#"
admin:
  access_log_path: /dev/null
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.http_connection_manager
        config:
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - {{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: "/" }}, route: {{ cluster: target }} }}] }}
          http_filters: [{{ name: envoy.router }}]
  clusters:
  - name: target
    type: EDS
    connect_timeout: 0.25s
    eds_cluster_config:
      service_name: myservice
      eds_config:
        api_config_source: {{ api_type: REST, cluster_names: [mgmt], refresh_delay: 0.1s }}
  - name: mgmt
    type: STATIC
    connect_timeout: 0.25s
    hosts: [{{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }}]
"#,
        disco.addr.port()
    );
    let legate = Legate::start(yaml).await;
    assert_eventually!(hit(&legate).await == "a", "the v2 answer applies");
    let polls = disco.polls();
    assert!(polls.iter().all(|(p, t, _)| p == "/v2/discovery:endpoints" && t == V2_TYPE), "{polls:?}");
}
