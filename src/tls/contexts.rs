//! The TLS contexts of a snapshot that read files, downstream (a filter chain's
//! [`ServerTls`]) and upstream (a cluster's [`ClientTls`]), seen the same way by
//! [`super::rotation`]: what each read, how to build it again, and how to swap the result in.

use std::sync::Arc;

use super::client::{ClientMaterial, ClientTls};
use super::secrets::Reads;
use super::server::{Material, ServerTls};
use crate::config::ConfigErrors;
use crate::snapshot::Snapshot;

/// A running context.
#[derive(Clone)]
pub enum Context {
    Server(Arc<ServerTls>),
    Client(Arc<ClientTls>),
}

/// A context built again.
pub enum Built {
    Server(Material),
    Client(ClientMaterial),
}

/// A running context whose certificates come from files, and where it serves.
pub struct Tracked {
    pub tls: Context,
    /// `listener` or `cluster`.
    pub kind: &'static str,
    /// The listener's or cluster's stat name.
    pub name: String,
}

impl Tracked {
    /// The scope of its socket factory's stats, as Envoy names it:
    /// `listener.<name>.server_ssl_socket_factory` or `cluster.<name>.client_ssl_socket_factory`.
    pub fn factory(&self) -> String {
        match self.tls {
            Context::Server(_) => format!("listener.{}.server_ssl_socket_factory", self.name),
            Context::Client(_) => format!("cluster.{}.client_ssl_socket_factory", self.name),
        }
    }
}

impl Context {
    pub fn same(&self, other: &Context) -> bool {
        match (self, other) {
            (Context::Server(a), Context::Server(b)) => Arc::ptr_eq(a, b),
            (Context::Client(a), Context::Client(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// What the running version read.
    pub fn reads(&self) -> Reads {
        match self {
            Context::Server(t) => t.material().config.reads.clone(),
            Context::Client(t) => t.material().config.reads.clone(),
        }
    }

    /// The context's field path in its file.
    pub fn path(&self) -> String {
        match self {
            Context::Server(t) => t.material().config.path.clone(),
            Context::Client(t) => t.material().config.path.clone(),
        }
    }

    /// A job that builds the context again from its files (blocking: it reads them); `None`
    /// for a context that reads no file.
    pub fn rebuild(&self) -> Option<Box<dyn FnOnce() -> Result<Built, ConfigErrors> + Send>> {
        match self {
            Context::Server(t) => {
                let origin = t.origin.clone()?;
                Some(Box::new(move || crate::config::rebuild_tls(&origin).map(Built::Server)))
            }
            Context::Client(t) => {
                let origin = t.origin.clone()?;
                Some(Box::new(move || crate::config::rebuild_client_tls(&origin).map(Built::Client)))
            }
        }
    }

    /// Whether `built` is what runs now (a write that changed nothing).
    pub fn unchanged(&self, built: &Built) -> bool {
        match (self, built) {
            (Context::Server(t), Built::Server(m)) => t.material().config == m.config,
            (Context::Client(t), Built::Client(m)) => t.material().config == m.config,
            _ => false,
        }
    }

    /// Serves `built` from the next handshake on.
    pub fn swap(&self, built: Built) {
        match (self, built) {
            (Context::Server(t), Built::Server(m)) => t.swap(m),
            (Context::Client(t), Built::Client(m)) => t.swap(m),
            _ => {}
        }
    }
}

impl Built {
    pub fn reads(&self) -> &Reads {
        match self {
            Built::Server(m) => &m.config.reads,
            Built::Client(m) => &m.config.reads,
        }
    }

    /// The serial numbers of its leaf certificates.
    pub fn serials(&self) -> Vec<String> {
        match self {
            Built::Server(m) => m.certs.iter().filter_map(|c| c.first()).map(|c| c.serial_number.clone()).collect(),
            Built::Client(m) => m.certs.first().map(|c| c.serial_number.clone()).into_iter().collect(),
        }
    }
}

/// Every context of `snap` that reads files, once each: the listeners', then the clusters'.
pub fn contexts(snap: &Snapshot) -> Vec<Tracked> {
    let mut out: Vec<Tracked> = Vec::new();
    for l in &snap.listeners {
        for chain in l.config.chains() {
            let Some(tls) = chain.tls.as_ref().filter(|t| t.origin.is_some()) else { continue };
            let tls = Context::Server(Arc::clone(tls));
            if !out.iter().any(|t| t.tls.same(&tls)) {
                out.push(Tracked { tls, kind: "listener", name: l.config.stat_name() });
            }
        }
    }
    let mut clusters: Vec<_> = snap.clusters.values().collect();
    clusters.sort_by(|a, b| a.name().cmp(b.name()));
    for c in clusters {
        let Some(tls) = c.config.tls.as_ref().filter(|t| t.origin.is_some()) else { continue };
        out.push(Tracked {
            tls: Context::Client(Arc::clone(tls)),
            kind: "cluster",
            name: c.config.stat_name().to_string(),
        });
    }
    out
}

/// `server.days_until_first_cert_expiring`: the fewest whole days until a running
/// certificate (served, presented upstream, or trusted) expires; `None` without TLS.
pub fn days_until_first_cert_expiring(snap: &Snapshot, now: i64) -> Option<u64> {
    let mut days: Vec<u64> = Vec::new();
    for l in &snap.listeners {
        for chain in l.config.chains() {
            let Some(tls) = &chain.tls else { continue };
            let m = tls.material();
            let certs = m.certs.iter().filter_map(|c| c.first()).chain(m.ca.iter());
            days.extend(certs.map(|c| c.days_until_expiration(now)));
        }
    }
    for c in snap.clusters.values() {
        let Some(tls) = &c.config.tls else { continue };
        let m = tls.material();
        days.extend(m.certs.first().into_iter().chain(m.ca.iter()).map(|c| c.days_until_expiration(now)));
    }
    days.into_iter().min()
}

/// Envoy's `<scope>.ssl.certificate.<name>.expiration_unix_time_seconds` of every running
/// context, `<scope>` `listener.<name>` or `cluster.<name>`: each certificate's leaf, and the
/// trusted CA (its first certificate to expire), by the names of [`super::config::unnamed`]
/// or of their SDS secrets.
pub fn expiration_gauges(snap: &Snapshot) -> Vec<(String, i64)> {
    let gauge = |scope: &str, name: &str| format!("{scope}.ssl.certificate.{name}.expiration_unix_time_seconds");
    let mut out = Vec::new();
    let ca = |out: &mut Vec<(String, i64)>,
              scope: &str,
              v: Option<&super::config::ValidationConfig>,
              certs: &[super::certs::CertInfo]| {
        let Some(v) = v.filter(|v| !v.ca_name.is_empty()) else { return };
        if let Some(t) = certs.iter().map(|c| c.not_after).min() {
            out.push((gauge(scope, &v.ca_name), t));
        }
    };
    for l in &snap.listeners {
        let scope = format!("listener.{}", l.config.stat_name());
        for chain in l.config.chains() {
            let Some(tls) = &chain.tls else { continue };
            let m = tls.material();
            for (source, chain) in m.config.certificates.iter().zip(&m.certs) {
                if let Some(leaf) = chain.first() {
                    out.push((gauge(&scope, &source.name), leaf.not_after));
                }
            }
            ca(&mut out, &scope, m.config.validation.as_ref(), &m.ca);
        }
    }
    for c in snap.clusters.values() {
        let Some(tls) = &c.config.tls else { continue };
        let scope = format!("cluster.{}", c.config.stat_name());
        let m = tls.material();
        if let (Some(source), Some(leaf)) = (&m.config.certificate, m.certs.first()) {
            out.push((gauge(&scope, &source.name), leaf.not_after));
        }
        ca(&mut out, &scope, m.config.validation.as_ref(), &m.ca);
    }
    out
}
