//! Envoy's runtime (`layered_runtime`) steering a filter while legate runs: a disk layer's
//! symlink replaced, `POST /runtime_modify` on the admin layer, `GET /runtime` and the
//! `runtime.*` stats, as Envoy 1.40 answers them.

use serde_json::json;
use tempfile::TempDir;

use crate::common::assert_eventually;
use crate::common::client;
use crate::common::config::{bootstrap, direct, hcm, route_config, router_filter, vhost};
use crate::common::legate::Legate;

fn write(dir: &std::path::Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A fault filter whose abort percentage is read at `my.abort` (`abort_percent_runtime`),
/// with a static, a disk and an admin layer.
fn config(root: &std::path::Path) -> String {
    let mut manager =
        hcm(route_config(json!([vhost("default", &["*"], json!([direct(json!({"prefix": "/"}), "ok")]))])));
    manager["http_filters"] = json!([
        { "name": "f", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "abort": { "http_status": 503, "percentage": { "numerator": 0, "denominator": "TEN_THOUSAND" } },
            "abort_percent_runtime": "my.abort",
        }},
        router_filter(),
    ]);
    let mut b = bootstrap().listener_hcm("main", manager).value();
    b["layered_runtime"] = json!({ "layers": [
        { "name": "static0", "static_layer": { "my": { "abort": 0 }, "other": "x" } },
        { "name": "disk0", "disk_layer": { "symlink_root": root.join("current"), "subdirectory": "envoy" } },
        { "name": "admin0", "admin_layer": {} },
    ]});
    serde_yaml::to_string(&b).expect("yaml")
}

/// The disk layer's new version aborts every request (an integer key is a percentage over
/// 100, whatever the configured denominator); the admin layer overrides it, and removing
/// the override gives the disk's value back.
#[tokio::test]
async fn disk_and_admin_layers_steer_the_fault_filter() {
    let dir = TempDir::new().expect("tempdir");
    write(dir.path(), "v1/envoy/unrelated", "1\n");
    write(dir.path(), "v2/envoy/my/abort", "100\n");
    std::os::unix::fs::symlink(dir.path().join("v1"), dir.path().join("current")).expect("symlink");
    let l = Legate::start(config(dir.path())).await;
    let url = l.url("main", "/");
    assert_eq!(client::get(&url).await.status, 200);
    let r = l.admin_get("/runtime").await;
    let j = r.json();
    assert_eq!(j["layers"], json!(["static0", "disk0", "admin0"]));
    assert_eq!(j["entries"]["my.abort"], json!({"final_value": "0", "layer_values": ["0", "", ""]}));
    assert_eq!(j["entries"]["unrelated"]["layer_values"], json!(["", "1", ""]));
    assert_eq!(l.stat("runtime.load_success").await, 2);
    assert_eq!(l.stat("runtime.num_layers").await, 3);
    assert_eq!(l.stat("runtime.num_keys").await, 3);

    // A new version moved onto the symlink, as Envoy's docs do it.
    std::os::unix::fs::symlink(dir.path().join("v2"), dir.path().join("new")).expect("symlink");
    std::fs::rename(dir.path().join("new"), dir.path().join("current")).expect("rename");
    assert_eventually!(client::get(&url).await.status == 503, "the disk layer's my.abort=100 aborts");
    assert_eq!(client::get(&url).await.text(), "fault filter abort");

    let r = l.admin_post("/runtime_modify?my.abort=0").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "OK\n"));
    assert_eq!(client::get(&url).await.status, 200, "the admin layer wins");
    let j = l.admin_get("/runtime").await.json();
    assert_eq!(j["entries"]["my.abort"], json!({"final_value": "0", "layer_values": ["0", "100", "0"]}));
    assert_eq!(l.stat("runtime.admin_overrides_active").await, 1);

    assert_eq!(l.admin_post("/runtime_modify?my.abort=").await.status, 200);
    assert_eq!(client::get(&url).await.status, 503, "the override removed: the disk's value again");
    assert_eq!(l.stat("runtime.admin_overrides_active").await, 0);
    assert!(l.stat("runtime.load_success").await >= 5, "start twice, the disk reload, two modifications");
    assert_eq!(l.stat("runtime.load_error").await, 0);
}

/// `/runtime_modify` takes its parameters from a form body too, and wants some.
#[tokio::test]
async fn runtime_modify_reads_a_form_body() {
    let dir = TempDir::new().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("v1/envoy")).expect("mkdir");
    std::os::unix::fs::symlink(dir.path().join("v1"), dir.path().join("current")).expect("symlink");
    let l = Legate::start(config(dir.path())).await;
    let r = l.admin_post("/runtime_modify").await;
    assert_eq!(r.status, 400, "no parameters: the usage");
    let r = reqwest_like_form(&l, "my.abort=100&other=y").await;
    assert_eq!(r, 200);
    assert_eq!(client::get(&l.url("main", "/")).await.status, 503);
    let j = l.admin_get("/runtime").await.json();
    assert_eq!(j["entries"]["other"], json!({"final_value": "y", "layer_values": ["x", "", "y"]}));
}

/// A form-encoded `POST` on the admin, over a plain socket (the status code).
async fn reqwest_like_form(l: &Legate, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(l.admin()).await.expect("connect");
    let req = format!(
        "POST /runtime_modify HTTP/1.1\r\nhost: a\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(crate::common::EVENTUALLY, s.read_to_end(&mut out)).await.expect("in time").expect("read");
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}
