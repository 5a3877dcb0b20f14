//! A connection served by its chain's `tcp_proxy`: counted on the listener, its TLS
//! terminated first when the chain has a `transport_socket` (the relay then carries the
//! decrypted bytes, as Envoy's), relayed by [`crate::tcp_proxy`], and ended as Envoy ends a listener's connections: at once when the
//! process stops, after the drain time when the listener leaves the configuration or a reload
//! changes or removes the connection's chain (which the connection keeps until then).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::downstream::Downstream;
use super::prefixed::PrefixedIo;
use super::Drain;
use crate::server::ProcessState;
use crate::snapshot::ListenerStats;
use crate::stats::GaugeGuard;
use crate::tcp_proxy::TcpProxyRt;

/// The connection's listener-side state, handed over by the accept path.
pub(super) struct TcpConn {
    pub stream: TcpStream,
    /// What the listener filters read, replayed first.
    pub first: Vec<u8>,
    pub proxy: Arc<TcpProxyRt>,
    pub shared: Arc<ProcessState>,
    pub lstats: ListenerStats,
    pub addrs: (SocketAddr, SocketAddr),
    pub retire: watch::Receiver<bool>,
    /// The chain's TLS context, the listener's `ssl.*` stats and the SNI the listener
    /// filters found.
    pub tls: Option<(Arc<crate::tls::ServerTls>, Arc<crate::tls::stats::SslStats>, Option<String>)>,
}

pub(super) async fn serve_tcp(c: TcpConn, drain: Drain, mut stop: watch::Receiver<bool>) {
    let TcpConn { stream, first, proxy, shared, lstats, addrs, mut retire, tls } = c;
    let _alive = drain.alive;
    let mut shutdown = drain.shutdown;
    let opened = std::time::Instant::now();
    lstats.downstream_cx_total.inc();
    let _l_active = GaugeGuard::new(&lstats.downstream_cx_active);
    let _total = crate::idle_release::OpenConnection::new(&shared);
    let drain_time = shared.drain_time;
    let ends = async move {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = stop.changed() => {}
            gone = async { retire.wait_for(|retired| *retired).await.is_err() } => {
                if gone {
                    // Every version of the chain is gone: only at exit, which `shutdown` says.
                    std::future::pending::<()>().await;
                }
            }
        }
        tokio::time::sleep(drain_time).await;
    };
    let _ = stream.set_nodelay(true);
    let down = match tls {
        None => PrefixedIo::new(Bytes::from(first), Downstream::Plain(stream)),
        Some((tls, ssl, requested)) => {
            let io = PrefixedIo::new(Bytes::from(first), stream);
            match crate::tls::accept::handshake(io, &tls, &ssl, requested).await {
                Ok((s, _)) => PrefixedIo::new(Bytes::new(), Downstream::Tls(Box::new(s))),
                Err(e) => {
                    tracing::debug!(client.addr = %addrs.0, error = %e, "TLS handshake failed; closing");
                    lstats.downstream_cx_destroy.inc();
                    lstats.downstream_cx_length_ms.record_duration(opened.elapsed());
                    return;
                }
            }
        }
    };
    let snapshot = shared.snapshot.load_full();
    crate::tcp_proxy::serve(down, proxy, snapshot, addrs, ends).await;
    lstats.downstream_cx_destroy.inc();
    lstats.downstream_cx_length_ms.record_duration(opened.elapsed());
}
