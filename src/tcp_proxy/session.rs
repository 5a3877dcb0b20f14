//! The relay between a downstream connection and its upstream: bytes both ways, half-close
//! passed on as Envoy passes it (a FIN from one side shuts the other side's write half; the
//! relay ends when both sides have finished, or at once on an error), and the `idle_timeout`
//! that any byte in either direction restarts.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::stats::Counter;

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed their write halves.
    Closed,
    /// A read or write failed (a reset): both connections are closed.
    Error,
    /// Nothing moved for the idle timeout.
    IdleTimeout,
    /// `stop` fired (the listener or the chain drained, or the process stops).
    Stopped,
}

/// The bytes a relay moved: `rx` from downstream, `tx` to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    pub rx: u64,
    pub tx: u64,
    pub end: End,
}

/// One read's worth per direction.
const CHUNK: usize = 16 * 1024;

/// Relays until both sides are done, an error, `idle` without a byte, or `stop`; each byte
/// read from downstream is counted in `rx`, each byte written to it in `tx`.
pub async fn relay<D, U>(
    down: D,
    up: U,
    idle: Option<Duration>,
    (rx, tx): (&Counter, &Counter),
    stop: impl Future<Output = ()>,
) -> Relayed
where
    D: AsyncRead + AsyncWrite,
    U: AsyncRead + AsyncWrite,
{
    let (mut dr, mut dw) = tokio::io::split(down);
    let (mut ur, mut uw) = tokio::io::split(up);
    let (mut dbuf, mut ubuf) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut down_open, mut up_open) = (true, true);
    let mut out = Relayed { rx: 0, tx: 0, end: End::Closed };
    // Far enough to never fire when there is no idle timeout.
    let period = idle.unwrap_or(Duration::from_secs(u64::MAX / 4));
    let idle_at = tokio::time::sleep(period);
    tokio::pin!(idle_at, stop);
    // Each turn reads once in one direction (or ends): bounded by the peers and the timers.
    while down_open || up_open {
        tokio::select! {
            r = dr.read(&mut dbuf), if down_open => match r {
                Ok(0) => {
                    down_open = false;
                    let _ = uw.shutdown().await;
                }
                Ok(n) => {
                    rx.add(n as u64);
                    out.rx += n as u64;
                    if uw.write_all(&dbuf[..n]).await.is_err() {
                        out.end = End::Error;
                        break;
                    }
                    idle_at.as_mut().reset(Instant::now() + period);
                }
                Err(_) => {
                    out.end = End::Error;
                    break;
                }
            },
            r = ur.read(&mut ubuf), if up_open => match r {
                Ok(0) => {
                    up_open = false;
                    let _ = dw.shutdown().await;
                }
                Ok(n) => {
                    if dw.write_all(&ubuf[..n]).await.is_err() {
                        out.end = End::Error;
                        break;
                    }
                    tx.add(n as u64);
                    out.tx += n as u64;
                    idle_at.as_mut().reset(Instant::now() + period);
                }
                Err(_) => {
                    out.end = End::Error;
                    break;
                }
            },
            () = &mut idle_at, if idle.is_some() => {
                out.end = End::IdleTimeout;
                break;
            }
            () = &mut stop => {
                out.end = End::Stopped;
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters() -> (Counter, Counter) {
        (Counter::default(), Counter::default())
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_ends_a_quiet_relay_and_bytes_restart_it() {
        let (mut client, down) = tokio::io::duplex(1024);
        let (up, mut server) = tokio::io::duplex(1024);
        let (rx, tx) = counters();
        let start = Instant::now();
        let relay = tokio::spawn({
            let (rx, tx) = (rx.clone(), tx.clone());
            async move { relay(down, up, Some(Duration::from_secs(60)), (&rx, &tx), std::future::pending()).await }
        });
        tokio::time::sleep(Duration::from_secs(50)).await;
        client.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.expect("relayed");
        server.write_all(b"pong").await.expect("write back");
        client.read_exact(&mut got).await.expect("relayed back");
        let done = relay.await.expect("relay task");
        // The bytes at 50 s restarted the 60 s timer.
        assert_eq!(done, Relayed { rx: 4, tx: 4, end: End::IdleTimeout });
        assert_eq!(start.elapsed(), Duration::from_secs(110));
        assert_eq!((rx.value(), tx.value()), (4, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn half_close_passes_through_until_both_sides_finish() {
        let (mut client, down) = tokio::io::duplex(1024);
        let (up, mut server) = tokio::io::duplex(1024);
        let (rx, tx) = counters();
        let relay = tokio::spawn(async move { relay(down, up, None, (&rx, &tx), std::future::pending()).await });
        client.write_all(b"request").await.expect("write");
        client.shutdown().await.expect("client FIN");
        let mut req = Vec::new();
        server.read_to_end(&mut req).await.expect("FIN passed upstream");
        assert_eq!(req, b"request");
        // The upstream still answers after the downstream's FIN.
        server.write_all(b"answer").await.expect("write");
        server.shutdown().await.expect("server FIN");
        let mut resp = Vec::new();
        client.read_to_end(&mut resp).await.expect("FIN passed downstream");
        assert_eq!(resp, b"answer");
        let done = relay.await.expect("relay task");
        assert_eq!(done, Relayed { rx: 7, tx: 6, end: End::Closed });
    }

    #[tokio::test(start_paused = true)]
    async fn no_idle_timeout_waits_for_stop() {
        let (_client, down) = tokio::io::duplex(64);
        let (up, _server) = tokio::io::duplex(64);
        let (rx, tx) = counters();
        let stop = tokio::time::sleep(Duration::from_secs(7200));
        let done = relay(down, up, None, (&rx, &tx), stop).await;
        assert_eq!(done.end, End::Stopped);
    }
}
