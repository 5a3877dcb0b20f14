//! Envoy's command line as Kubernetes manifests and scripts pass it: a flag and its value in
//! one argument, `-l` levels, `--version` with the commit, `--help`, and the node flags as
//! `/server_info` shows them.

use clap::CommandFactory;
use serde_json::json;

use crate::common::config::bootstrap;
use crate::common::legate;

fn minimal() -> String {
    bootstrap().yaml()
}

#[tokio::test]
async fn a_flag_and_its_value_in_one_argument_as_a_kubernetes_args_list_passes_them() {
    let file = legate::ConfigFile::new("envoy.yaml", &minimal());
    let one = format!("--config-path {}", file.path_str());
    let run = legate::run(&[&one, "--mode validate", "-l warning", "--drain-time-s 5"]).await;
    assert_eq!(run.code(), Some(0), "{}", run.output);
    assert!(run.output.contains("OK"), "{}", run.output);
    // A switch given a value is refused, as Envoy refuses it.
    let run = legate::run(&["-c", file.path_str(), "--mode", "validate", "--disable-hot-restart x"]).await;
    assert_ne!(run.code(), Some(0), "{}", run.output);
}

#[tokio::test]
async fn an_unknown_log_level_is_refused_with_the_valid_ones() {
    let file = legate::ConfigFile::new("envoy.yaml", &minimal());
    let run = legate::run(&["-c", file.path_str(), "--mode", "validate", "-l", "verbose"]).await;
    assert_ne!(run.code(), Some(0), "{}", run.output);
    for level in ["verbose", "trace", "debug", "info", "warning", "error", "critical", "off"] {
        assert!(run.output.contains(level), "{level} missing:\n{}", run.output);
    }
}

#[tokio::test]
async fn version_names_the_commit_built() {
    let run = legate::run(&["--version"]).await;
    assert_eq!(run.code(), Some(0), "{}", run.output);
    let line = run.output.trim();
    let build = line.strip_prefix("legate version: ").unwrap_or_else(|| panic!("{line}"));
    let parts: Vec<&str> = build.split('/').collect();
    assert_eq!(parts.len(), 3, "{line}");
    assert_eq!(parts[1], env!("CARGO_PKG_VERSION"), "{line}");
    assert!(parts[2] == "RELEASE" || parts[2] == "DEBUG", "{line}");
    let manifest = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(manifest)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let checkout = git(&["rev-parse", "--show-toplevel"])
        .is_some_and(|top| std::fs::canonicalize(top).ok() == std::fs::canonicalize(manifest).ok());
    match (std::env::var("LEGATE_GIT_SHA").ok().filter(|s| !s.is_empty()), checkout) {
        (Some(sha), _) => assert_eq!(parts[0], sha.trim(), "{line}"),
        (None, true) => assert_eq!(Some(parts[0].to_string()), git(&["rev-parse", "HEAD"]), "{line}"),
        (None, false) => assert_eq!(parts[0], "unknown", "{line}"),
    }
}

#[tokio::test]
async fn help_describes_every_flag() {
    let run = legate::run(&["--help"]).await;
    assert_eq!(run.code(), Some(0), "{}", run.output);
    let command = ::legate::cli::Cli::command();
    for arg in command.get_arguments() {
        let long = arg.get_long().unwrap_or_else(|| panic!("{:?} has no long name", arg.get_id()));
        assert!(run.output.contains(&format!("--{long}")), "--{long} missing from --help:\n{}", run.output);
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(!help.trim().is_empty(), "--{long} has no description");
    }
}

#[tokio::test]
async fn server_info_shows_the_node_the_command_line_completes() {
    let mut boot = bootstrap().value();
    boot["node"] = json!({"id": "boot-id", "cluster": "boot-cluster", "metadata": {"team": "edge"},
        "locality": {"region": "r1", "zone": "boot-zone"}});
    let yaml = serde_yaml::to_string(&boot).expect("yaml");
    let l = legate::config(yaml.clone())
        .arg("--service-node cli-node")
        .arg("--service-cluster")
        .arg("cli-cluster")
        .arg("--service-zone=cli-zone")
        .spawn()
        .await;
    let info = l.admin_get("/server_info").await.json();
    let node = &info["node"];
    assert_eq!(node["id"], "cli-node", "{info:#}");
    assert_eq!(node["cluster"], "cli-cluster", "{info:#}");
    assert_eq!(node["metadata"], json!({"team": "edge"}), "{info:#}");
    assert_eq!(node["locality"], json!({"region": "r1", "zone": "cli-zone", "sub_zone": ""}), "{info:#}");
    assert_eq!(info["command_line_options"]["service_zone"], "cli-zone", "{info:#}");
    assert_eq!(info["version"].as_str(), Some(::legate::cli::BUILD_VERSION), "{info:#}");

    // Without the flags, the bootstrap's node as written.
    let l = legate::config(yaml).spawn().await;
    let node = l.admin_get("/server_info").await.json()["node"].clone();
    assert_eq!((node["id"].as_str(), node["cluster"].as_str()), (Some("boot-id"), Some("boot-cluster")));
    assert_eq!(node["locality"]["zone"], "boot-zone");
}
