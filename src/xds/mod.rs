//! The typed resource layer between configuration sources and the reloader.
//!
//! ```text
//! file source (discovery files)  --\
//! REST EDS poller                ---+--> Delivery { [Update], reply } --> reloader (per-type maps
//! (later) gRPC xDS client        --/        by name, the only writer of the running snapshot)
//!                                           <-- Response::Ack | Response::Nack(errors)
//! ```
//!
//! An [`Update`] is xDS's unit: for one resource type, a version, the resources it adds or
//! replaces by name and the names it removes. A source sends the updates that belong together
//! in one [`Delivery`] (the reloader applies them all or none) and learns the outcome on its
//! reply channel: an ACK, or a NACK carrying every error found (file or origin, field path,
//! reason). A NACKed delivery changes nothing that runs.
//!
//! Nothing here knows about files: paths, roles, settle-and-retry and cross-file retries are
//! the file source's (`reload::files`).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::config::model::{Cluster, Listener, LocalityEndpoints, RouteConfig};
use crate::config::ConfigErrors;

/// The resource types legate's reloader keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeUrl {
    Listener,
    Cluster,
    RouteConfiguration,
    ClusterLoadAssignment,
}

impl TypeUrl {
    /// Envoy's v3 type URL.
    pub fn as_str(self) -> &'static str {
        match self {
            TypeUrl::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            TypeUrl::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            TypeUrl::RouteConfiguration => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            TypeUrl::ClusterLoadAssignment => "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
        }
    }
}

impl std::fmt::Display for TypeUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One resource, parsed and validated on its own by its source. Route configurations and
/// endpoint lists are `Arc`s: a source that keeps the `Arc` of unchanged content lets the
/// reloader skip comparing 10,000 routes.
// Resources are made once per update, off the request path: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Listener(Listener),
    Cluster(Cluster),
    RouteConfiguration(Arc<RouteConfig>),
    /// The endpoints of a `ClusterLoadAssignment`, named by its `cluster_name` (the EDS
    /// service name).
    ClusterLoadAssignment(Arc<Vec<LocalityEndpoints>>),
}

impl Resource {
    pub fn type_url(&self) -> TypeUrl {
        match self {
            Resource::Listener(_) => TypeUrl::Listener,
            Resource::Cluster(_) => TypeUrl::Cluster,
            Resource::RouteConfiguration(_) => TypeUrl::RouteConfiguration,
            Resource::ClusterLoadAssignment(_) => TypeUrl::ClusterLoadAssignment,
        }
    }
}

/// What a source says changed for one resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub type_url: TypeUrl,
    pub version: String,
    /// Where the resources come from (a file, a management server): the `file` of the errors a
    /// NACK names about them.
    pub origin: PathBuf,
    /// Resources added or replaced, by name, in the source's order.
    pub upserted: Vec<(String, Resource)>,
    pub removed: Vec<String>,
}

impl Update {
    pub fn new(type_url: TypeUrl, version: impl Into<String>, origin: impl Into<PathBuf>) -> Self {
        Update { type_url, version: version.into(), origin: origin.into(), upserted: Vec::new(), removed: Vec::new() }
    }

    pub fn upsert(mut self, name: impl Into<String>, r: Resource) -> Self {
        self.upserted.push((name.into(), r));
        self
    }

    pub fn remove(mut self, name: impl Into<String>) -> Self {
        self.removed.push(name.into());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.upserted.is_empty() && self.removed.is_empty()
    }
}

/// The reloader's answer to a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Applied (or nothing to apply): the running configuration holds every update.
    Ack,
    /// Refused whole, with every error found; nothing that runs changed.
    Nack(ConfigErrors),
}

impl Response {
    pub fn is_ack(&self) -> bool {
        matches!(self, Response::Ack)
    }
}

/// Updates applied together, and where the reloader answers.
#[derive(Debug)]
pub struct Delivery {
    pub updates: Vec<Update>,
    pub reply: oneshot::Sender<Response>,
}

/// A source's end of the reloader's channel.
#[derive(Debug, Clone)]
pub struct SourceHandle {
    tx: mpsc::Sender<Delivery>,
}

/// How many deliveries may wait for the reloader: a source waits for its answer, so a few.
const QUEUE: usize = 64;

/// The channel sources deliver on, and the reloader's end of it.
pub fn channel() -> (SourceHandle, mpsc::Receiver<Delivery>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (SourceHandle { tx }, rx)
}

impl SourceHandle {
    /// Delivers `updates` and waits for the answer; `None` when the reloader is gone.
    pub async fn deliver(&self, updates: Vec<Update>) -> Option<Response> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Delivery { updates, reply }).await.ok()?;
        rx.await.ok()
    }
}
