//! Envoy's command line, as far as legate implements it, in the argv forms Envoy's parser
//! (TCLAP) takes. Unknown flags are an error.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use clap::{CommandFactory, Parser, ValueEnum};

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
    after_help = "A flag and its value may also come as one argument (`--config-path /etc/envoy/envoy.yaml`), \
                  as Envoy takes them from Kubernetes `args:` lists.",
    disable_version_flag = true
)]
pub struct Cli {
    /// Path to the bootstrap configuration (YAML by extension .yaml/.yml, else JSON).
    #[arg(short = 'c', long = "config-path")]
    pub config_path: Option<PathBuf>,
    /// YAML merged over the bootstrap file (Envoy's proto merge: scalars replace, lists append).
    #[arg(long = "config-yaml")]
    pub config_yaml: Option<String>,
    /// `serve` runs the proxy; `validate` loads the configuration, prints whether it is valid
    /// and exits (0 valid, 1 not).
    #[arg(long, value_enum, default_value = "serve")]
    pub mode: Mode,
    /// Worker threads (default: the number of CPUs).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// The process log's level (Envoy's names; an unknown one is refused).
    #[arg(short = 'l', long = "log-level", default_value = "info",
          value_parser = PossibleValuesParser::new(LOG_LEVELS))]
    pub log_level: String,
    /// Fine-grained levels, Envoy style `upstream:debug,admin:info` (mapped to legate's modules).
    #[arg(long = "component-log-level")]
    pub component_log_level: Option<String>,
    /// The local node's cluster: replaces the bootstrap's `node.cluster` (`/server_info`,
    /// discovery requests).
    #[arg(long = "service-cluster")]
    pub service_cluster: Option<String>,
    /// The local node's id: replaces the bootstrap's `node.id`.
    #[arg(long = "service-node")]
    pub service_node: Option<String>,
    /// The local node's zone: replaces the bootstrap's `node.locality.zone`.
    #[arg(long = "service-zone")]
    pub service_zone: Option<String>,
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
    /// Print, as markdown, the extensions and fields of Envoy's API legate refuses, and exit.
    #[arg(long = "print-not-supported")]
    pub print_not_supported: bool,
    /// Print the version (with the git commit it was built from) and exit.
    #[arg(long)]
    pub version: bool,
}

/// The build, as Envoy writes its own (`<commit>/<version>/<build type>`): `--version`, and
/// `version` in `/server_info`. The commit comes from `build.rs`.
pub const BUILD_VERSION: &str =
    concat!(env!("LEGATE_GIT_SHA"), "/", env!("CARGO_PKG_VERSION"), "/", env!("LEGATE_BUILD_TYPE"));

/// Envoy's `-l` levels.
const LOG_LEVELS: [&str; 8] = ["trace", "debug", "info", "warning", "warn", "error", "critical", "off"];

/// Splits an argument that holds a flag and its value (`--config-path /etc/envoy/x.yaml`, one
/// element of a Kubernetes `args:` list) in two, as Envoy's TCLAP does: at the first space,
/// only for a flag that takes a value, and only where a flag is expected (a flag's value is
/// taken whole, spaces and all). Anything else is passed on for clap to accept or refuse.
pub fn envoy_argv(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let command = Cli::command();
    let takes_value = |flag: &str| {
        command.get_arguments().any(|a| {
            a.get_action().takes_values()
                && (flag.strip_prefix("--").is_some_and(|l| a.get_long() == Some(l))
                    || flag.strip_prefix('-').is_some_and(|s| {
                        let mut c = s.chars();
                        c.next().is_some_and(|c| a.get_short() == Some(c)) && c.next().is_none()
                    }))
        })
    };
    let mut out = Vec::new();
    let mut args = args.into_iter();
    // The program name.
    out.extend(args.next());
    let mut value_next = false;
    while let Some(arg) = args.next() {
        if value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(args.by_ref());
            break;
        }
        match text.split_once(' ') {
            Some((flag, value)) if flag.starts_with('-') && takes_value(flag) => {
                out.push(flag.into());
                out.push(value.into());
            }
            _ => {
                value_next = text.starts_with('-') && takes_value(text);
                out.push(arg);
            }
        }
    }
    out
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
            service_zone: self.service_zone.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        let args = std::iter::once("legate").chain(args.iter().copied()).map(OsString::from);
        envoy_argv(args).into_iter().skip(1).map(|a| a.into_string().unwrap_or_default()).collect()
    }

    #[test]
    fn a_flag_and_its_value_in_one_argument_are_split_at_the_first_space() {
        assert_eq!(argv(&["--config-path /etc/envoy/x.yaml"]), ["--config-path", "/etc/envoy/x.yaml"]);
        assert_eq!(argv(&["-c /etc/envoy/x.yaml", "-l debug"]), ["-c", "/etc/envoy/x.yaml", "-l", "debug"]);
        assert_eq!(argv(&["--service-node my node"]), ["--service-node", "my node"]);
    }

    #[test]
    fn values_switches_and_unknown_flags_are_left_whole() {
        // A value is never split, even one that looks like a flag.
        assert_eq!(argv(&["--service-node", "-c x"]), ["--service-node", "-c x"]);
        assert_eq!(argv(&["--config-yaml", "admin: {x: 1}"]), ["--config-yaml", "admin: {x: 1}"]);
        // Envoy refuses a switch with a value and an unknown flag; so does clap, given them whole.
        assert_eq!(argv(&["--disable-hot-restart x"]), ["--disable-hot-restart x"]);
        assert_eq!(argv(&["--no-such-flag x"]), ["--no-such-flag x"]);
        assert_eq!(argv(&["--", "-c x"]), ["--", "-c x"]);
    }

    #[test]
    fn split_arguments_parse_as_separate_ones() {
        let args = ["legate", "--config-path /etc/envoy/x.yaml", "--drain-time-s 30", "--mode validate"];
        let cli = Cli::try_parse_from(envoy_argv(args.map(OsString::from))).map_err(|e| e.to_string());
        let cli = cli.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.config_path, Some(PathBuf::from("/etc/envoy/x.yaml")));
        assert_eq!(cli.drain_time_s, 30);
        assert_eq!(cli.mode, Mode::Validate);
    }

    #[test]
    fn an_unknown_log_level_is_refused_naming_the_valid_ones() {
        let e = Cli::try_parse_from(["legate", "-l", "bogus"]).map(|_| ()).map_err(|e| e.to_string());
        let e = e.expect_err("-l bogus must be refused");
        assert!(e.contains("bogus") && e.contains("warning") && e.contains("critical"), "{e}");
        // Envoy's names are case-sensitive.
        assert!(Cli::try_parse_from(["legate", "-l", "INFO"]).is_err());
        assert!(Cli::try_parse_from(["legate", "-l", "warn"]).is_ok());
    }
}
