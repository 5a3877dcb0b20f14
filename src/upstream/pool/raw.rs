//! A connection to the pool's host handed over whole, for a network filter that relays bytes
//! (`tcp_proxy`): made under the cluster's `max_connections` (no waiting: over it, the
//! connection fails as an overflow, as Envoy's TCP pool does), counted in the cluster's and the
//! host's `upstream_cx_*`, and never pooled. Its [`RawConnection`] guard counts the close.

use std::time::Instant;

use super::{ConnectionSlot, Pool, UpstreamError};
use crate::stats::io::CountedIo;
use crate::stats::{Counter, GaugeGuard, Histogram};
use crate::upstream::connect::UpstreamIo;

/// What a relayed connection holds while it is open; dropping it counts the close
/// (`upstream_cx_destroy`, `upstream_cx_length_ms`, the active gauges).
pub struct RawConnection {
    _slot: ConnectionSlot,
    _active: GaugeGuard,
    _host_active: GaugeGuard,
    destroy: Counter,
    length: Histogram,
    opened: Instant,
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        self.length.record_duration(self.opened.elapsed());
        self.destroy.inc();
    }
}

impl Pool {
    /// A new connection to the host, its bytes counted in `upstream_cx_rx_bytes_total` /
    /// `upstream_cx_tx_bytes_total`.
    pub async fn connect_raw(&self) -> Result<(CountedIo<UpstreamIo>, RawConnection), UpstreamError> {
        let host_has_none = self.stats.host_cx_active.value() == 0;
        let Some(slot) = self.breakers.connection(host_has_none, true) else {
            return Err(UpstreamError::PendingOverflow { addr: self.addr });
        };
        let io = self.connect_tcp(&slot).await?.into_inner();
        let conn = RawConnection {
            _slot: slot,
            _active: GaugeGuard::new(&self.stats.cx_active),
            _host_active: GaugeGuard::new(&self.stats.host_cx_active),
            destroy: self.stats.cx_destroy.clone(),
            length: self.stats.cx_length_ms.clone(),
            opened: Instant::now(),
        };
        Ok((io, conn))
    }
}
