//! File writers and a raw keep-alive connection for the `reload_*` tests: every way tools
//! write a file ([`Write`], [`ConfigMap`]) and an HTTP/1.1 connection that never silently
//! reconnects ([`Conn`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::common::client::RawResp;
use crate::common::{bounded, EVENTUALLY};

// ------------------------------------------------------------------ ways of writing a file

/// How a file gets its new content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// A temp file in the same directory, renamed over the file.
    Rename,
    /// Truncate, write, close.
    InPlace,
    /// Vim: swap file `.x.swp` and probe file `4913`, rename `x` to `x~`, write a new `x`,
    /// remove the backup and the swap file.
    Vim,
    /// Remove the file, then create it again.
    DeleteRecreate,
}

impl Write {
    pub fn apply(self, path: &Path, content: &str) {
        let dir = path.parent().expect("parent");
        let name = path.file_name().expect("file name").to_str().expect("utf-8");
        match self {
            Write::Rename => {
                let tmp = dir.join(format!(".{name}.tmp"));
                std::fs::write(&tmp, content).expect("write temp");
                std::fs::rename(&tmp, path).expect("rename over");
            }
            Write::InPlace => {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(path).expect("open");
                f.write_all(content.as_bytes()).expect("write");
                f.sync_all().expect("sync");
            }
            Write::Vim => {
                let swap = dir.join(format!(".{name}.swp"));
                let backup = dir.join(format!("{name}~"));
                let probe = dir.join("4913");
                std::fs::write(&swap, b"b0VIM 9.0").expect("swap file");
                std::fs::write(&probe, b"").expect("probe");
                std::fs::remove_file(&probe).expect("remove probe");
                std::fs::rename(path, &backup).expect("backup");
                std::fs::write(path, content).expect("write new");
                std::fs::remove_file(&backup).expect("remove backup");
                std::fs::remove_file(&swap).expect("remove swap");
            }
            Write::DeleteRecreate => {
                std::fs::remove_file(path).expect("remove");
                std::fs::write(path, content).expect("recreate");
            }
        }
    }
}

/// A Kubernetes ConfigMap volume as the kubelet writes it: `NAME -> ..data/NAME`,
/// `..data -> ..TIMESTAMP`; an update writes a new timestamped directory, points `..data_tmp`
/// at it, renames `..data_tmp` over `..data` and removes the old directory.
pub struct ConfigMap {
    dir: PathBuf,
    current: String,
    generation: u32,
}

impl ConfigMap {
    pub fn create(dir: &Path, files: &[(&str, &str)]) -> ConfigMap {
        std::fs::create_dir_all(dir).expect("configmap dir");
        let mut cm = ConfigMap { dir: dir.to_path_buf(), current: String::new(), generation: 0 };
        let ts = cm.write_generation(files);
        std::os::unix::fs::symlink(&ts, dir.join("..data")).expect("..data");
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).expect("file symlink");
        }
        cm.current = ts;
        cm
    }

    fn write_generation(&mut self, files: &[(&str, &str)]) -> String {
        self.generation += 1;
        let ts = format!("..2025_01_01_00_00_00.{:09}", self.generation);
        let d = self.dir.join(&ts);
        std::fs::create_dir(&d).expect("timestamped dir");
        for (name, content) in files {
            std::fs::write(d.join(name), content).expect("configmap file");
        }
        ts
    }

    /// Swaps in a new generation holding `files` (the same names as at creation).
    pub fn update(&mut self, files: &[(&str, &str)]) {
        let ts = self.write_generation(files);
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&ts, &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
        std::fs::remove_dir_all(self.dir.join(&self.current)).expect("remove old generation");
        self.current = ts;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rewrites one file of the current generation in place: the watcher then reports that
    /// file alone, as it does for a file that joins the watched set during a swap.
    pub fn write_in_place(&self, name: &str, content: &str) {
        std::fs::write(self.dir.join(&self.current).join(name), content).expect("in-place write");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

// ------------------------------------------------------------------ a raw keep-alive connection

/// One HTTP/1.1 connection kept open across requests, so a test knows the connection did not
/// change (hyper's pool would silently open another one).
pub struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        let stream = bounded("connect", tokio::net::TcpStream::connect(addr)).await.expect("connect");
        Conn { stream, buf: Vec::new() }
    }

    /// `GET path` on this connection; `Err` if the connection failed or closed.
    pub async fn get(&mut self, path: &str) -> Result<RawResp, String> {
        use tokio::io::AsyncWriteExt;
        let req = format!("GET {path} HTTP/1.1\r\nhost: legate.test\r\n\r\n");
        match tokio::time::timeout(EVENTUALLY, async {
            self.stream.write_all(req.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
            self.read_response().await
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(format!("GET {path}: no response within {EVENTUALLY:?}")),
        }
    }

    async fn fill(&mut self) -> Result<(), String> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk).await {
            Ok(0) => Err(format!("connection closed by peer ({} bytes unparsed)", self.buf.len())),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    async fn read_response(&mut self) -> Result<RawResp, String> {
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
        let mut r = RawResp { status, head, body: Vec::new() };
        if let Some(len) = r.header("content-length") {
            let len: usize = len.parse().map_err(|_| "bad content-length")?;
            while self.buf.len() < len {
                self.fill().await?;
            }
            r.body = self.buf.drain(..len).collect();
        } else if r.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            loop {
                let line_end = loop {
                    if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    self.fill().await?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| format!("bad chunk size {size_text:?}"))?;
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill().await?;
                }
                r.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        }
        Ok(r)
    }
}

/// The body of a raw response as text.
pub fn body_text(r: &RawResp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}
