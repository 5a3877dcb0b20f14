//! TLS with rustls and its `ring` provider. Downstream (`envoy.transport_sockets.tls` with a
//! `DownstreamTlsContext` on a filter chain): [`config`] is what the configuration says,
//! [`server`] builds the rustls context from it (certificates, `tls_params` through
//! [`params`], ALPN, the client verifier of [`verify`], session resumption of [`tickets`]),
//! [`accept`] runs a connection's handshake and [`stats`] counts it; [`xfcc`] builds the
//! `x-forwarded-client-cert` header from a connection's [`Session`]. Upstream (a cluster's
//! `UpstreamTlsContext`): [`client`] builds the client context, [`client_verify`] checks the
//! server's certificate and [`connect`] runs the handshake of a pool's connection, for the
//! name of [`auto_sni`] when the SNI and SAN come from each request. [`certs`]
//! reads certificates (x509-parser) for `/certs` and the access log. [`rotation`] watches the
//! files (and file-based SDS secrets, [`secrets`]) the contexts of [`contexts`] (a
//! listener's or a cluster's) were read from, rebuilds a context through the validator and
//! swaps it in.

pub mod accept;
pub mod auto_sni;
pub mod certs;
pub mod client;
pub mod client_verify;
pub mod config;
pub mod connect;
pub mod contexts;
pub mod names;
pub mod params;
pub mod rotation;
pub mod secrets;
pub mod server;
pub mod sigalgs;
pub mod stats;
pub mod tickets;
pub mod verify;
pub mod xfcc;

pub use accept::Session;
pub use client::ClientTls;
pub use server::ServerTls;
