//! Envoy's command line, as far as legate implements it. Unknown flags are an error.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::server::Options;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Load the configuration and serve.
    Serve,
    /// Load and validate the configuration, print the result, exit.
    Validate,
}

#[derive(Debug, Parser)]
#[command(
    name = "legate",
    about = "An Envoy-compatible L7 proxy whose configuration lives in files",
    disable_version_flag = true
)]
pub struct Cli {
    /// Path to the bootstrap configuration (YAML by extension .yaml/.yml, else JSON).
    #[arg(short = 'c', long = "config-path")]
    pub config_path: Option<PathBuf>,
    /// YAML merged over the bootstrap file (Envoy's proto merge: scalars replace, lists append).
    #[arg(long = "config-yaml")]
    pub config_yaml: Option<String>,
    #[arg(long, value_enum, default_value = "serve")]
    pub mode: Mode,
    /// Worker threads (default: the number of CPUs).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// trace, debug, info, warning (warn), error, critical, off.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    pub log_level: String,
    /// Fine-grained levels, Envoy style `upstream:debug,admin:info` (mapped to legate's modules).
    #[arg(long = "component-log-level")]
    pub component_log_level: Option<String>,
    #[arg(long = "service-cluster")]
    pub service_cluster: Option<String>,
    #[arg(long = "service-node")]
    pub service_node: Option<String>,
    /// Seconds connections may take to finish when shutting down.
    #[arg(long = "drain-time-s", default_value_t = 600)]
    pub drain_time_s: u64,
    /// Write the admin's bound address here once it listens.
    #[arg(long = "admin-address-path")]
    pub admin_address_path: Option<PathBuf>,
    /// Accepted for compatibility; legate has no hot restart.
    #[arg(long = "disable-hot-restart")]
    pub disable_hot_restart: bool,
    /// Accepted for compatibility; legate has no hot restart.
    #[arg(long = "base-id")]
    pub base_id: Option<u32>,
    /// Accepted for compatibility: Envoy's upper bound on how long access-log lines wait in
    /// memory. legate writes them within 10 ms anyway, which meets any value given.
    #[arg(long = "file-flush-interval-msec")]
    pub file_flush_interval_msec: Option<u64>,
    /// How long file changes that are complete (rename, close, symlink swap) are coalesced
    /// before a reload, in milliseconds; 0 applies what was received at once.
    #[arg(long = "watch-coalesce-ms", default_value_t = 0)]
    pub watch_coalesce_ms: u64,
    /// How long a file modified but not closed must stay quiet before it is read, in ms.
    #[arg(long = "watch-quiet-ms", default_value_t = 100)]
    pub watch_quiet_ms: u64,
    /// The process log's format: `json` writes one JSON object per line. Envoy takes an
    /// spdlog pattern here; legate does not format by pattern and says so at start.
    #[arg(long = "log-format")]
    pub log_format: Option<String>,
    /// Print, as markdown, which fields of Envoy's API legate implements, and exit.
    #[arg(long = "print-support-matrix")]
    pub print_support_matrix: bool,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

impl Cli {
    pub fn options(&self) -> Options {
        Options {
            config_path: self.config_path.clone(),
            config_yaml: self.config_yaml.clone(),
            concurrency: self
                .concurrency
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
                .max(1),
            drain_time: Duration::from_secs(self.drain_time_s),
            admin_address_path: self.admin_address_path.clone(),
            service_cluster: self.service_cluster.clone(),
            service_node: self.service_node.clone(),
            log_level: self.log_level.clone(),
            watch: crate::discovery::WatchOptions {
                coalesce: Duration::from_millis(self.watch_coalesce_ms),
                quiet: Duration::from_millis(self.watch_quiet_ms),
                ..Default::default()
            },
        }
    }

    /// The tracing filter for `-l` (Envoy's level names).
    pub fn log_filter(&self) -> String {
        let level = match self.log_level.to_ascii_lowercase().as_str() {
            "warning" => "warn".to_string(),
            "critical" => "error".to_string(),
            other => other.to_string(),
        };
        format!("legate={level},{}", if level == "off" { "off" } else { "warn" })
    }
}
