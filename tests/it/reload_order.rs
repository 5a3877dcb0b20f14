//! The result of a reload does not depend on the order in which related files land, nor on
//! how they are written: once the files are quiet, the running configuration is what a
//! fresh start on the same files serves. An LDS file naming a cluster whose CDS file lands
//! a moment later is rejected alone, then applied with the CDS file.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::assert_eventually;
use crate::common::config::static_cluster;
use crate::common::legate::{self, parse_listeners, Legate};
use crate::common::upstream;
use crate::reload::{cds, cla, cluster_listener, discovery, rds_listener, rds_to, Rig, Write};

/// What a running legate serves: its listeners, each cluster's hosts, and who answers `/`.
async fn served(l: &Legate) -> (BTreeSet<String>, BTreeSet<String>, String) {
    let listeners = parse_listeners(&l.admin_get("/listeners").await.text());
    let names = listeners.keys().cloned().collect();
    let hosts = (l.admin_get("/clusters").await.text().lines())
        .filter(|line| line.contains("::cx_active::"))
        .filter_map(|line| line.rsplit_once("::cx_active::").map(|(h, _)| h.to_string()))
        .collect();
    let main = match listeners.get("main") {
        Some(addr) => {
            let r = crate::common::client::get(&format!("http://{addr}/")).await;
            format!("{} {}", r.status.as_u16(), r.header("x-upstream-instance").unwrap_or("-"))
        }
        None => "no main".to_string(),
    };
    (names, hosts, main)
}

/// A small xorshift generator: the seed is printed, so a failing order can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const STYLES: [Write; 4] = [Write::Rename, Write::InPlace, Write::Vim, Write::DeleteRecreate];

#[tokio::test]
async fn any_write_order_ends_where_a_fresh_start_begins() {
    let rig = Rig::dynamic(|s| vec![rds_listener(s, "main")]).await;
    let s = &rig.setup;
    let c = upstream::http1().name("c").spawn().await;
    let state0: Vec<(&str, String)> = vec![
        ("cds.yaml", std::fs::read_to_string(rig.path("cds.yaml")).expect("cds")),
        ("lds.yaml", std::fs::read_to_string(rig.path("lds.yaml")).expect("lds")),
        ("rds.yaml", std::fs::read_to_string(rig.path("rds.yaml")).expect("rds")),
        ("eds.yaml", std::fs::read_to_string(rig.path("eds.yaml")).expect("eds")),
    ];
    // Each file of state 1 needs another one: `extra` and `/` route to c_svc, which only
    // cds.yaml adds; going back, cds.yaml drops c_svc, which lds.yaml v1 no longer uses.
    let state1: Vec<(&str, String)> = vec![
        ("cds.yaml", cds(s, "v2", vec![static_cluster("c_svc", &[c.addr()])])),
        ("lds.yaml", discovery("v2", vec![rds_listener(s, "main"), cluster_listener("extra", "c_svc")])),
        ("rds.yaml", rds_to("v2", "c_svc")),
        ("eds.yaml", cla("v2", "e_svc", &[s.b.addr()])),
    ];
    let boot = std::fs::read_to_string(rig.legate.config_path()).expect("bootstrap");
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    eprintln!("write-order seed: {seed}");
    let mut rng = Rng(seed);
    for round in 0..8 {
        let target = if round % 2 == 0 { &state1 } else { &state0 };
        let mut order: Vec<usize> = (0..target.len()).collect();
        if round == 0 {
            // The case a coalescing window loses: the listener first, its cluster 5 ms later.
            order = vec![1, 0, 2, 3];
        } else {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
        for &i in &order {
            let (name, content) = &target[i];
            let style = if round == 0 { Write::Rename } else { STYLES[rng.below(STYLES.len())] };
            style.apply(&rig.path(name), content);
            let gap = [0, 100, 1_000, 5_000][if round == 0 { 3 } else { rng.below(4) }];
            std::thread::sleep(Duration::from_micros(gap));
        }
        let fresh = legate::config(boot.clone()).spawn().await;
        let expected = served(&fresh).await;
        assert!(expected.0.contains("main"), "round {round}: the fresh start serves {expected:?}");
        assert_eventually!(
            served(&rig.legate).await == expected,
            "round {round} (seed {seed}, order {order:?}): the running configuration equals a fresh start's {expected:?}"
        );
    }
}
