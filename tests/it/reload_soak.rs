//! A CI-sized soak: steady keep-alive load while routes and endpoints keep changing. Every
//! answer must be a 2xx, no connection may break, and the last change must win.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{assert_eventually, bounded};
use crate::reload::{cla, rds_to, Conn, Rig, Write, RDS};

const CONNECTIONS: usize = 8;
const FLIPS: usize = 200;
/// Per connection; the load also stops when the writer is done.
const MAX_REQUESTS: usize = 20_000;
/// Hard stop for the load, whatever happens.
const LOAD_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    non_2xx: Vec<String>,
    errors: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steady_load_through_200_route_and_endpoint_changes() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/").await, "a");
    let main = rig.listener("main").await.expect("main");
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let mut load = Vec::new();
    for n in 0..CONNECTIONS {
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut conn = Conn::open(main).await;
            for i in 0..MAX_REQUESTS {
                if stop.load(Ordering::SeqCst) || started.elapsed() > LOAD_DEADLINE {
                    break;
                }
                let path = if (i + n) % 2 == 0 { "/" } else { "/eds" };
                match conn.get(path).await {
                    Ok(r) if (200..300).contains(&r.status) => t.ok += 1,
                    Ok(r) => t.non_2xx.push(format!("conn {n} req {i} {path}: {}", r.head)),
                    Err(e) => {
                        t.errors.push(format!("conn {n} req {i} {path}: {e}"));
                        conn = Conn::open(main).await;
                    }
                }
            }
            t
        }));
    }

    let (a, b) = (rig.setup.a.addr(), rig.setup.b.addr());
    for i in 1..=FLIPS {
        // Odd changes go to b, even ones back to a: the last (200) lands on a.
        let (cluster, endpoint) = if i % 2 == 1 { ("b_svc", b) } else { ("a_svc", a) };
        let how = if i % 2 == 1 { Write::Rename } else { Write::InPlace };
        how.apply(&rig.path("rds.yaml"), &rds_to(&format!("v{i}"), cluster));
        how.apply(&rig.path("eds.yaml"), &cla(&format!("e{i}"), "e_svc", &[endpoint]));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let last_rds = format!("v{FLIPS}");
    let last_eds = format!("e{FLIPS}");
    assert_eventually!(
        rig.version_text(&format!("{RDS}.version_text")).await.as_deref() == Some(last_rds.as_str())
            && rig.version_text("cluster.e_svc.version_text").await.as_deref() == Some(last_eds.as_str()),
        "the last change is applied (rds {:?}, eds {:?})",
        rig.version_text(&format!("{RDS}.version_text")).await,
        rig.version_text("cluster.e_svc.version_text").await
    );
    assert_eq!(rig.hit("/").await, "a", "the last route flip's target answers");
    assert_eq!(rig.hit("/eds").await, "a", "the last endpoint change's target answers");
    stop.store(true, Ordering::SeqCst);

    let mut total = Tally::default();
    for task in load {
        let t = bounded("load task", task).await.expect("load task panicked");
        assert!(t.ok > 0, "a connection served nothing");
        total.ok += t.ok;
        total.non_2xx.extend(t.non_2xx);
        total.errors.extend(t.errors);
    }
    let first = |v: &Vec<String>| v.iter().take(5).cloned().collect::<Vec<_>>();
    assert!(total.non_2xx.is_empty(), "{} non-2xx of {}: {:#?}", total.non_2xx.len(), total.ok, first(&total.non_2xx));
    assert!(total.errors.is_empty(), "{} connection errors: {:#?}", total.errors.len(), first(&total.errors));
    for stat in [format!("{RDS}.update_rejected"), format!("{RDS}.update_failure")] {
        assert_eq!(rig.stat(&stat).await, 0, "{stat}");
    }
    for stat in ["cluster.e_svc.update_rejected", "cluster.e_svc.update_failure"] {
        assert_eq!(rig.stat(stat).await, 0, "{stat}");
    }
    rig.assert_no_rejected_reload().await;
    eprintln!("soak: {} answers over {CONNECTIONS} connections in {:?}", total.ok, started.elapsed());
}
