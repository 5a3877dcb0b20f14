//! A connection to the pool's host handed over whole, for a network filter that relays bytes
//! (`tcp_proxy`): made under the cluster's `max_connections` (no waiting: over it, the
//! connection fails as an overflow, as Envoy's TCP pool does), counted in the cluster's and the
//! host's `upstream_cx_*`, and never pooled. The stream carries its [`ConnLife`]
//! (`upstream::conn_life`), which counts the close when the relay drops it.

use super::{Pool, UpstreamError};
use crate::stats::io::CountedIo;
use crate::upstream::conn_life::Lived;
use crate::upstream::connect::UpstreamIo;

/// A relayed connection: its bytes counted in `upstream_cx_rx_bytes_total` /
/// `upstream_cx_tx_bytes_total`, its life (active gauges, slot, destroy and length) held by
/// the stream itself.
pub type RawConnection = Lived<CountedIo<UpstreamIo>>;

impl Pool {
    /// A new connection to the host, never pooled.
    pub async fn connect_raw(&self) -> Result<RawConnection, UpstreamError> {
        let host_has_none = self.stats.host_cx_active.value() == 0;
        let Some(slot) = self.breakers.connection(host_has_none, true) else {
            return Err(UpstreamError::PendingOverflow { addr: self.addr });
        };
        Ok(self.connect_tcp(slot).await?.0)
    }
}
