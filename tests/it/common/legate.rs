//! Launches the real `legate` binary and talks to its admin.
//!
//! [`Legate::start`] writes the config into a tempdir, runs
//! `legate -c FILE --admin-address-path FILE`, waits (bounded) for the admin address file and
//! `GET /ready`, then reads `GET /listeners` (`NAME::IP:PORT` lines) to learn the listener
//! ports. stdout and stderr go to files, printed when a test panics. The child is killed on
//! drop; only this child is ever signalled.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::client::{Client, Resp};
use super::EVENTUALLY;

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_legate")
}

/// A builder for a [`Legate`] run.
pub struct LegateBuilder {
    config: String,
    file_name: String,
    args: Vec<String>,
}

/// Starts a builder for a run with `config` as its `.yaml` file.
pub fn config(config: impl Into<String>) -> LegateBuilder {
    LegateBuilder { config: config.into(), file_name: "legate.yaml".into(), args: Vec::new() }
}

impl LegateBuilder {
    /// Names the config file (its extension decides YAML vs JSON).
    pub fn file_name(mut self, name: &str) -> Self {
        self.file_name = name.into();
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    pub async fn spawn(self) -> Legate {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join(&self.file_name);
        std::fs::write(&config_path, &self.config).expect("write config");
        let admin_path = dir.path().join("admin.address");
        let out_path = dir.path().join("output.log");
        let out = File::create(&out_path).expect("log file");
        let child = Command::new(bin())
            .arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("spawn legate");
        let mut legate =
            Legate { child, dir, config_path, out_path, admin: None, listeners: HashMap::new(), client: Client::h1() };
        legate.wait_ready(&admin_path).await;
        legate
    }
}

/// A running legate child process.
pub struct Legate {
    child: Child,
    dir: TempDir,
    config_path: PathBuf,
    out_path: PathBuf,
    admin: Option<SocketAddr>,
    listeners: HashMap<String, SocketAddr>,
    client: Client,
}

impl Legate {
    /// Starts legate with this YAML config and default arguments.
    pub async fn start(yaml: impl Into<String>) -> Legate {
        config(yaml).spawn().await
    }

    async fn wait_ready(&mut self, admin_path: &Path) {
        let deadline = Instant::now() + EVENTUALLY;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("legate exited with {status} before becoming ready:\n{}", self.output());
            }
            if self.admin.is_none() {
                self.admin = std::fs::read_to_string(admin_path).ok().and_then(|s| s.trim().parse().ok());
            }
            if let Some(admin) = self.admin {
                let ready = tokio::time::timeout(
                    Duration::from_secs(2),
                    self.client.try_send(get_req(&format!("http://{admin}/ready"))),
                )
                .await;
                if let Ok(Ok(r)) = ready {
                    if r.status == 200 {
                        break;
                    }
                }
            }
            if Instant::now() >= deadline {
                panic!("legate not ready within {EVENTUALLY:?} (admin {:?}):\n{}", self.admin, self.output());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let listeners = self.admin_get("/listeners").await;
        assert_eq!(listeners.status, 200, "GET /listeners");
        self.listeners = parse_listeners(&listeners.text());
    }

    /// The admin's address.
    pub fn admin(&self) -> SocketAddr {
        self.admin.expect("admin address")
    }

    /// Bound address of listener `name`, from `GET /listeners`.
    pub fn listener(&self, name: &str) -> SocketAddr {
        *self
            .listeners
            .get(name)
            .unwrap_or_else(|| panic!("no listener {name:?} in /listeners: {:?}\n{}", self.listeners, self.output()))
    }

    /// Every listener from `GET /listeners`.
    pub fn listeners(&self) -> &HashMap<String, SocketAddr> {
        &self.listeners
    }

    /// `http://ADDR/path` for listener `name`.
    pub fn url(&self, name: &str, path: &str) -> String {
        format!("http://{}{}", self.listener(name), path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin(), path)
    }

    pub async fn admin_get(&self, path: &str) -> Resp {
        self.client.get(&self.admin_url(path)).await
    }

    pub async fn admin_post(&self, path: &str) -> Resp {
        self.client.post(&self.admin_url(path), "").await
    }

    /// `GET /stats` as a map; lines whose value is not an integer are skipped.
    pub async fn stats(&self) -> HashMap<String, u64> {
        let r = self.admin_get("/stats").await;
        assert_eq!(r.status, 200, "GET /stats");
        r.text()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(": ")?;
                Some((k.trim().to_string(), v.trim().parse().ok()?))
            })
            .collect()
    }

    /// One counter or gauge; 0 when absent.
    pub async fn stat(&self, name: &str) -> u64 {
        self.stats().await.get(name).copied().unwrap_or(0)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends SIGTERM to this child (`kill -TERM PID`).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends signal `name` (`USR1`, `TERM`, ...) to this child (`kill -NAME PID`).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().expect("run kill");
        assert!(ok.success(), "kill -{name} {}", self.pid());
    }

    /// SIGTERM, then wait (bounded) for the exit.
    pub async fn stop_with_sigterm(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit().await
    }

    /// Waits (bounded) for the child to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EVENTUALLY;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                panic!("legate did not exit within {EVENTUALLY:?}:\n{}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Everything the child wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out_path).unwrap_or_default()
    }
}

impl Drop for Legate {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- legate output ----\n{}", self.output());
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn get_req(url: &str) -> hyper::Request<http_body_util::Full<bytes::Bytes>> {
    hyper::Request::get(url).body(http_body_util::Full::default()).unwrap()
}

/// Parses Envoy's `/listeners` text: `NAME::IP:PORT` per line.
pub fn parse_listeners(text: &str) -> HashMap<String, SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let (name, addr) = l.trim().split_once("::")?;
            Some((name.to_string(), addr.parse().ok()?))
        })
        .collect()
}

/// Result of a run that is expected to exit by itself.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    /// stdout followed by stderr.
    pub output: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `legate ARGS` and waits (bounded) for it to exit; kills it if it does not.
pub async fn run(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("stdout.log");
    let err_path = dir.path().join("stderr.log");
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("log"))
        .stderr(File::create(&err_path).expect("log"))
        .spawn()
        .expect("spawn legate");
    let deadline = Instant::now() + EVENTUALLY;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "legate {args:?} did not exit within {EVENTUALLY:?}:\n{}{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    Run {
        status,
        output: std::fs::read_to_string(&out_path).unwrap_or_default()
            + &std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A config file written into its own tempdir (kept alive with it).
pub struct ConfigFile {
    _dir: TempDir,
    pub path: PathBuf,
}

impl ConfigFile {
    pub fn new(file_name: &str, text: &str) -> ConfigFile {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file_name);
        std::fs::write(&path, text).expect("write config");
        ConfigFile { _dir: dir, path }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }
}

/// `legate -c FILE --mode validate` for a config text written to `file_name`.
pub async fn validate(file_name: &str, text: &str) -> (ConfigFile, Run) {
    let file = ConfigFile::new(file_name, text);
    let run = run(&["-c", file.path_str(), "--mode", "validate"]).await;
    (file, run)
}
