//! legate's integration tests: the real binary, real upstream servers, real sockets on
//! 127.0.0.x. One test binary (one link) with a module per feature.

mod common;

mod access_log;
mod actions;
mod admin;
mod admin_absent;
mod admin_api;
mod circuit_breakers;
mod cli;
mod config_errors;
mod config_messages;
mod dns;
mod examples;
mod filter_chains;
mod filters;
mod fixtures;
mod framing;
mod grpc_local_replies;
mod listener_stats;
mod local_replies;
mod protocol;
mod reload;
mod reload_bad;
mod reload_commit;
mod reload_empty;
mod reload_io;
mod reload_order;
mod reload_resources;
mod reload_soak;
mod reload_styles;
mod reload_triggers;
mod request_head;
mod rest_eds;
mod retry_bodies;
mod routing;
mod seeds;
mod shutdown;
mod stats;
mod tcp_proxy;
mod timeouts;
mod tls;
mod tls_rotation;
mod upgrades;
mod upstream;
mod upstream_resets;
