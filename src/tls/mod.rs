//! Downstream TLS (`envoy.transport_sockets.tls` with a `DownstreamTlsContext` on a filter
//! chain), with rustls and its `ring` provider: [`config`] is what the configuration says,
//! [`server`] builds the rustls context from it (certificates, `tls_params`, ALPN, the
//! client verifier of [`verify`]), [`accept`] runs a connection's handshake and [`stats`]
//! counts it. [`certs`] reads certificates (x509-parser) for `/certs` and the access log.
//!
//! Certificates are loaded here only, from the bytes the validator read, so that certificate
//! rotation and SDS can build on [`server::build`].

pub mod accept;
pub mod certs;
pub mod config;
pub mod names;
pub mod rotation;
pub mod secrets;
pub mod server;
pub mod stats;
pub mod verify;

pub use accept::Session;
pub use server::ServerTls;
