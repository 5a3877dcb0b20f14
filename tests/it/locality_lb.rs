//! Envoy's locality-load-balancing sandbox on loopback (`tests/fixtures/examples/
//! locality-load-balancing.yaml`): locality weighted load balancing over three priorities,
//! hosts made unhealthy through their health checks, traffic moving between localities and
//! priorities as the sandbox's README shows it (and as Envoy 1.40 balances the same config).

use std::collections::HashMap;

use crate::common::assert_eventually;
use crate::common::client::Client;
use crate::common::legate::Legate;
use crate::common::upstream::{self, Upstream};

/// Requests per step: with a tolerance of 10 points, a share is off by 4 standard deviations.
const N: usize = 400;

/// Each instance's share of `N` requests.
async fn shares(c: &Client, url: &str) -> HashMap<String, f64> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..N {
        let r = c.get(url).await;
        *counts.entry(r.header("x-upstream-instance").unwrap_or("-").to_string()).or_default() += 1;
    }
    counts.into_iter().map(|(k, v)| (k, v as f64 / N as f64)).collect()
}

fn assert_shares(got: &HashMap<String, f64>, want: &[(&str, f64)]) {
    let total: f64 = want.iter().map(|(_, s)| s).sum();
    assert!((total - 1.0).abs() < 1e-9, "the wanted shares sum to 1");
    for (name, share) in want {
        let g = got.get(*name).copied().unwrap_or(0.0);
        assert!((g - share).abs() < 0.1, "{name}: {g:.2} of the requests, want {share:.2} ({got:?})");
    }
    assert!(got.keys().all(|k| want.iter().any(|(n, _)| n == k)), "only {want:?} answer: {got:?}");
}

#[tokio::test]
async fn traffic_moves_between_localities_and_priorities_as_hosts_fail() {
    let mut local1: Vec<Upstream> = Vec::new();
    for _ in 0..5 {
        local1.push(upstream::http1().name("backend-local-1").spawn().await);
    }
    let local2 = upstream::http1().name("backend-local-2").spawn().await;
    let remote1 = upstream::http1().name("backend-remote-1").spawn().await;
    let remote2 = upstream::http1().name("backend-remote-2").spawn().await;
    // Port 0: the test reads the bound ports back.
    let mut yaml = include_str!("../fixtures/examples/locality-load-balancing.yaml")
        .replace("${LISTEN_PORT}", "0")
        .replace("${ADMIN_PORT}", "0")
        .replace("${LOCAL_2}", &local2.port().to_string())
        .replace("${REMOTE_1}", &remote1.port().to_string())
        .replace("${REMOTE_2}", &remote2.port().to_string());
    for (i, u) in local1.iter().enumerate() {
        yaml = yaml.replace(&format!("${{LOCAL_1_{i}}}"), &u.port().to_string());
    }
    let legate = Legate::start(yaml).await;
    let healthy = || legate.stat("cluster.backend.membership_healthy");
    let url = legate.url("backend", "/");
    let c = Client::h1();

    assert_eventually!(healthy().await == 8, "every host passes its first check");
    let clusters = legate.admin_get("/clusters").await.text();
    let host = format!("backend::127.0.0.1:{}", remote1.port());
    assert!(clusters.contains(&format!("{host}::region::remote\n{host}::zone::zone-1\n")), "{clusters}");
    assert_shares(&shares(&c, &url).await, &[("backend-local-1", 1.0)]);

    // backend-local-1 fails: priority 1 takes everything, split between its two localities.
    for u in &local1 {
        u.set_healthy(false);
    }
    assert_eventually!(healthy().await == 3, "local-1's replicas fail their checks");
    assert_shares(&shares(&c, &url).await, &[("backend-local-2", 0.5), ("backend-remote-1", 0.5)]);

    // backend-local-2 fails too: priority 1 is half healthy (70% with overprovisioning), all of
    // it remote-1's; priority 2 takes the rest.
    local2.set_healthy(false);
    assert_eventually!(healthy().await == 2, "local-2 fails its checks");
    assert_shares(&shares(&c, &url).await, &[("backend-remote-1", 0.7), ("backend-remote-2", 0.3)]);

    // One replica of local-1 of five and local-2 come back: priority 0 gets 28%, priority 1
    // the remaining 72% evenly between local-2 and remote-1.
    local1[0].set_healthy(true);
    local2.set_healthy(true);
    assert_eventually!(healthy().await == 4, "one local-1 replica and local-2 pass again");
    assert_shares(
        &shares(&c, &url).await,
        &[("backend-local-1", 0.28), ("backend-local-2", 0.36), ("backend-remote-1", 0.36)],
    );
}

#[test]
fn the_sandbox_config_validates() {
    // `--mode validate` builds the health-checked cluster without a runtime to check in.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.yaml");
    let yaml = include_str!("../fixtures/examples/locality-load-balancing.yaml");
    std::fs::write(&path, regex::Regex::new(r"\$\{[A-Z_0-9]+\}").expect("regex").replace_all(yaml, "0").as_ref())
        .expect("write");
    let out = std::process::Command::new(crate::common::legate::bin())
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .output()
        .expect("legate runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("OK"), "{text}");
}
