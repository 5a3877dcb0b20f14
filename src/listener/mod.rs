//! Listeners: bind sockets, accept connections and serve them with hyper (HTTP/1.1 and h2c by
//! prior knowledge on one port for `codec_type: AUTO`), until told to drain.
//!
//! A new connection runs the listener filters, then is given one filter chain
//! (`chain_match`) for its life: each request finds that chain's current version in the
//! snapshot (so route and cluster changes reach it), or its last version once a reload
//! changed or removed the chain (the connection then drains).

mod accept;
pub mod chain_match;
mod codec_reply;
pub mod downstream;
mod gated;
pub mod head_scan;
mod http_conn;
pub mod idle;
pub mod inspect;
pub mod manager;
mod prefixed;
mod served;
mod tcp_conn;
pub mod tls_hello;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::admin::drain::ListenerDrain;
use crate::server::ProcessState;
use crate::snapshot::ListenerRt;

/// Binds a listener socket (SO_REUSEADDR, as Envoy).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Signals shared by every listener: `shutdown` flips to true when the process drains; each
/// connection holds a clone of `alive` so the server can wait for the last one to close.
#[derive(Clone)]
pub struct Drain {
    pub shutdown: watch::Receiver<bool>,
    pub alive: mpsc::Sender<()>,
    /// What the admin asks (`/drain_listeners`, `/healthcheck/fail`).
    pub admin: watch::Receiver<ListenerDrain>,
}

/// Whether the admin's `/drain_listeners` request stops this listener, and when.
enum AdminStop {
    Keep,
    Now,
    AfterDrainTime,
}

fn admin_stop(d: &ListenerDrain, inbound: bool) -> AdminStop {
    match d.drain_listeners {
        Some(r) if r.skip_exit || (r.inbound_only && !inbound) => AdminStop::Keep,
        Some(r) if r.graceful => AdminStop::AfterDrainTime,
        Some(_) => AdminStop::Now,
        None => AdminStop::Keep,
    }
}

/// Accepts connections until `stop` or the process-wide drain says otherwise.
pub fn spawn_listener(
    socket: TcpListener,
    listener: Arc<ListenerRt>,
    shared: Arc<ProcessState>,
    drain: Drain,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let name: Arc<str> = Arc::from(listener.config.name.as_str());
        let inbound = listener.config.inbound;
        // Weak: the snapshot (or, while it drains, the listener manager) keeps it alive; an
        // accept loop must not pin old route tables, nor the clusters they name.
        let first = listener;
        let mut listener: Weak<ListenerRt> = Arc::downgrade(&first);
        // Shadowing would not drop it: the task would pin the first version for good.
        drop(first);
        let mut shutdown = drain.shutdown.clone();
        let mut admin = drain.admin.clone();
        let mut admin_open = true;
        // Set by a graceful `/drain_listeners`: accepting ends when the drain time is over.
        let stop_at = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
        tokio::pin!(stop_at);
        let mut stopping = false;
        if let AdminStop::Now = admin_stop(&admin.borrow_and_update(), inbound) {
            return;
        }
        loop {
            let accepted = tokio::select! {
                r = socket.accept() => r,
                _ = shutdown.changed() => break,
                _ = stop.changed() => break,
                () = &mut stop_at, if stopping => break,
                changed = admin.changed(), if admin_open && !stopping => {
                    if changed.is_err() {
                        admin_open = false;
                        continue;
                    }
                    match admin_stop(&admin.borrow_and_update(), inbound) {
                        AdminStop::Keep => continue,
                        AdminStop::Now => break,
                        AdminStop::AfterDrainTime => {
                            stopping = true;
                            stop_at.as_mut().reset(tokio::time::Instant::now() + shared.drain_time);
                            continue;
                        }
                    }
                }
            };
            match accepted {
                Ok((stream, remote)) => {
                    // The snapshot's version of this listener: a reload may have changed its
                    // connection manager while the socket stayed.
                    let current = {
                        let snap = shared.snapshot.load();
                        snap.listeners.iter().find(|l| *l.config.name == *name).cloned()
                    };
                    let Some(current) = current.or_else(|| listener.upgrade()) else {
                        // Removed and drained: nothing can serve this connection.
                        continue;
                    };
                    listener = Arc::downgrade(&current);
                    let (drain, stop, shared, name) =
                        (drain.clone(), stop.clone(), Arc::clone(&shared), Arc::clone(&name));
                    tokio::spawn(accept::accept_connection(stream, remote, current, shared, name, drain, stop));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(listener.name = %name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        tracing::info!(listener.name = %name, "listener stopped accepting");
        // Close the socket now: new connections must be refused, not queued unanswered.
        drop(socket);
    })
}
