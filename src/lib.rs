//! legate: an Envoy-compatible L7 proxy whose whole configuration lives in files.
//!
//! ```text
//! files --config (parse, normalise v2, validate)--> model::Bootstrap
//!   --server (build clusters, compile routes, bind)--> snapshot::Snapshot --ArcSwap-->
//!   listener (accept, hyper) --> proxy (route -> cluster -> balancer -> pool) --> upstream
//!                            \--> admin (/stats, /clusters, /config_dump) reads the same snapshot
//! ```
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod body;
pub mod cli;
mod common_ends;
pub mod config;
pub mod discovery;
pub mod filters;
pub mod idle_release;
pub mod listener;
mod percent;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod snapshot;
pub mod stats;
pub mod tcp_proxy;
pub mod tls;
pub mod upstream;
pub mod xds;

use std::collections::HashMap;
use std::sync::Arc;

/// Checks what only building the runtime can check (header values, route compilation),
/// without binding or resolving anything: `--mode validate`.
pub fn validate_runtime(bootstrap: &config::model::Bootstrap) -> Result<(), String> {
    let store = stats::Store::new();
    let clusters: HashMap<String, Arc<upstream::Cluster>> =
        bootstrap.clusters.iter().map(|c| (c.name.clone(), upstream::Cluster::build(c.clone(), &store))).collect();
    for l in &bootstrap.listeners {
        let routes = l
            .chains()
            .map(|c| {
                c.hcm().map(|h| {
                    Arc::new(match &h.routes {
                        config::model::RouteSource::Inline(rc) => rc.clone(),
                        config::model::RouteSource::Rds { route_config_name, .. } => {
                            config::model::RouteConfig::empty_rds(route_config_name)
                        }
                    })
                })
            })
            .collect();
        snapshot::build_listener(l, routes, &clusters, &store, None)?;
    }
    Ok(())
}
