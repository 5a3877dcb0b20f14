//! A host's connections split by request name, for a TLS cluster whose SNI or SAN check
//! comes from each request (`auto_sni`, `auto_san_validation`): Envoy keys its connection
//! pools by the transport socket options a request carries, so a connection opened (and
//! verified) for `a.example` is never reused for `b.example`. Each name gets a pool of its
//! own, sharing the host's stats and the cluster's circuit breakers with the host's pool
//! (which keeps the requests that name nothing: no host, or an IP literal with `auto_sni`
//! alone). The names come from clients, so the map is bounded: at [`MAX_NAMES`], names
//! without a connection are forgotten, and if all have one a request gets a pool of its own
//! that is not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{lock, Pool};
use crate::tls::auto_sni::Target;
use crate::tls::connect::UpstreamTls;
use crate::upstream::connect::Connector;

/// Names kept per host.
const MAX_NAMES: usize = 1024;

pub(super) struct Named {
    tls: Arc<UpstreamTls>,
    pools: Mutex<HashMap<Box<str>, Arc<Pool>>>,
}

impl Named {
    pub(super) fn new(tls: Arc<UpstreamTls>) -> Self {
        Named { tls, pools: Mutex::new(HashMap::new()) }
    }

    /// The pool for `req`'s name; `None`: the host's own pool.
    pub(super) fn pool_for<B>(&self, host: &Pool, req: &http::Request<B>) -> Option<Arc<Pool>> {
        let name = self.tls.tls.auto_sni.name_of(req)?;
        let mut pools = lock(&self.pools);
        if let Some(p) = pools.get(name) {
            return Some(Arc::clone(p));
        }
        let target = Arc::new(Target::new(name));
        let pool = Arc::new(host.for_name(Connector::TlsTo(Arc::clone(&self.tls), target)));
        if pools.len() >= MAX_NAMES {
            pools.retain(|_, p| Arc::strong_count(p) > 1 || p.has_connections());
        }
        if pools.len() < MAX_NAMES {
            pools.insert(name.into(), Arc::clone(&pool));
        }
        Some(pool)
    }

    pub(super) fn close_idle(&self) {
        for p in lock(&self.pools).values() {
            p.close_idle();
        }
    }

    pub(super) fn release_idle_buffers(&self) {
        for p in lock(&self.pools).values() {
            p.release_idle_buffers();
        }
    }
}
