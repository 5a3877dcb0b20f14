//! Shared integration-test fixtures for legate.
//!
//! Every test drives the real binary (`CARGO_BIN_EXE_legate`) over real sockets on
//! 127.0.0.x, against real upstream servers built here:
//!
//! - [`upstream`]: hyper echo servers (`upstream::http1().name("a").spawn().await`).
//! - [`dns`]: a UDP DNS server answering A queries from a mutable table.
//! - [`legate`]: launches the binary on port 0 and learns its ports from the admin.
//! - [`config`]: builds Envoy v3 bootstrap YAML from small JSON pieces.
//! - [`client`]: an HTTP/1.1 + h2c client and a raw-socket exchange for malformed requests.
//!
//! Waiting is always bounded: [`assert_eventually!`] polls until [`EVENTUALLY`] runs out.
#![allow(dead_code, unused_macros, unused_imports)]

pub mod client;
pub mod config;
pub mod dns;
pub mod legate;
pub mod sha256;
pub mod tls;
pub mod upstream;

use std::time::Duration;

/// Upper bound for every wait in the tests.
pub const EVENTUALLY: Duration = Duration::from_secs(10);

/// Polls `$cond` (which may contain `.await`) until it holds, panicking with the message
/// once [`EVENTUALLY`] has passed. The polling interval is not a condition wait.
macro_rules! assert_eventually {
    ($cond:expr, $($msg:tt)+) => {{
        let deadline = ::std::time::Instant::now() + $crate::common::EVENTUALLY;
        loop {
            if $cond {
                break;
            }
            if ::std::time::Instant::now() >= deadline {
                panic!("not true within {:?}: {}", $crate::common::EVENTUALLY, format!($($msg)+));
            }
            ::tokio::time::sleep(::std::time::Duration::from_millis(25)).await;
        }
    }};
}
pub(crate) use assert_eventually;

/// Runs `fut` with the [`EVENTUALLY`] bound, panicking with `what` if it does not finish.
pub async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(EVENTUALLY, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not finish within {EVENTUALLY:?}"),
    }
}

/// `n` distinct free ports on 127.0.0.1 for a config that names its own ports. All are held
/// until every one is chosen: a port released at once may be handed out again by the next
/// bind, and two listeners of one config on the same port fail to start.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("local_addr").port()).collect()
}

/// A port on 127.0.0.1 where nothing listens (bound then released).
pub fn dead_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local_addr")
}
