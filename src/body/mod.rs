//! Request bodies on their way upstream, shared by the proxy (which makes them) and the
//! upstream pool (which sends them): the body enum, how far the client has sent it
//! ([`progress`]), and its recording for retries ([`replay`]).

pub mod progress;
pub mod replay;
mod request;

pub use request::{client_body_failure, BodyError, ClientBodyFailure, DownstreamBodyError, ReadAhead, ReqBody};
