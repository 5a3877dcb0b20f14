//! legate: an Envoy-compatible L7 proxy whose whole configuration lives in files.
#![forbid(unsafe_code)]

pub mod config;
