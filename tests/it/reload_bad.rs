//! Bad updates are rejected whole: the old configuration keeps serving, the subscription's
//! `update_failure` (unreadable) or `update_rejected` (invalid) counts once, the error shows in
//! `/reloads`, `/config_dump` and the log, and the next good write applies.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::common::assert_eventually;
use crate::common::config::{static_cluster, to_cluster, vhost};
use crate::reload::{
    cds, cds_of, cla, cluster_listener, discovery, rds_listener, rds_to, route_config_to, typed, Rig, Write, CLUSTER_T,
    RDS, ROUTE_T,
};

const YAML_SYNTAX_ERROR: &str = "resources: [ {{{ this is: not: yaml\n";

/// A fully dynamic rig: `lds.yaml` holds `main` (routes from `rds.yaml`, `/` to a_svc).
pub async fn rig() -> Rig {
    Rig::dynamic(|s| vec![rds_listener(s, "main")]).await
}

/// Writes `bad` over `file`, then checks: `stat` grew by one and no other outcome counter of
/// `subscription` moved, `/` still answers from a, `/reloads` has a rejected entry whose error
/// contains `needle`, `/config_dump` carries that error, the log names it. Then writes `good`
/// over `file` and waits until `/` answers from b.
pub async fn rejected(rig: &Rig, file: &str, bad: &str, subscription: &str, stat: &str, needle: &str, good: &str) {
    assert_eq!(rig.hit("/").await, "a");
    let path: PathBuf = rig.path(file);
    let counters = ["update_success", "update_rejected", "update_failure"];
    let mut before = Vec::new();
    for c in counters {
        before.push(rig.stat(&format!("{subscription}.{c}")).await);
    }
    let reloads = rig.reloads().await.len();
    Write::Rename.apply(&path, bad);
    let target = format!("{subscription}.{stat}");
    let i = counters.iter().position(|c| *c == stat).expect("known counter");
    assert_eventually!(rig.stat(&target).await == before[i] + 1, "{target} counts the bad {file}");
    for (j, c) in counters.iter().enumerate() {
        if j != i {
            assert_eq!(rig.stat(&format!("{subscription}.{c}")).await, before[j], "{subscription}.{c} moved");
        }
    }
    assert_eq!(rig.hit("/").await, "a", "the old configuration keeps serving");

    let now = rig.reloads().await;
    assert_eq!(now.len(), reloads + 1, "one new reload entry: {now:#?}");
    assert_eq!(now[0]["outcome"], "rejected", "{:#?}", now[0]);
    let error = now[0]["error"].as_str().unwrap_or_else(|| panic!("no error text: {:#?}", now[0])).to_string();
    assert!(error.contains(needle), "error lacks {needle:?}: {error}");
    let dump = rig.legate.admin_get("/config_dump").await;
    assert_eq!(dump.status, 200);
    assert!(
        strings(&dump.json()).iter().any(|s| s.contains(&error)),
        "/config_dump lacks the error {error:?}:\n{}",
        dump.text()
    );
    assert_eventually!(rig.legate.output().contains(needle), "the log names {needle:?}");

    Write::Rename.apply(&path, good);
    assert_eventually!(rig.hit("/").await == "b", "the good {file} after the bad one applies");
    // The source records the reload once the core acknowledged it, after the commit.
    assert_eventually!(rig.reloads().await[0]["outcome"] == "applied", "the good {file} is recorded");
}

/// Every string inside `v`.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(o) => o.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

async fn rds_rejected(bad: String, stat: &str, needle: &str) {
    let rig = rig().await;
    rejected(&rig, "rds.yaml", &bad, RDS, stat, needle, &rds_to("v9", "b_svc")).await;
}

#[tokio::test]
async fn rds_yaml_syntax_error_is_an_update_failure() {
    rds_rejected(YAML_SYNTAX_ERROR.into(), "update_failure", "rds.yaml").await;
}

#[tokio::test]
async fn rds_unknown_field() {
    let mut rc = route_config_to("local_route", "b_svc");
    rc["bogus_field"] = json!(1);
    rds_rejected(discovery("v2", vec![rc]), "update_rejected", "bogus_field").await;
}

/// Startup releases Envoy's schema once the first configuration is applied: a reload decodes
/// it again, and an unknown field deep in a route is still refused at its path.
#[tokio::test]
async fn rds_unknown_nested_field_after_startup_names_its_path() {
    let mut rc = route_config_to("local_route", "b_svc");
    rc["virtual_hosts"][0]["routes"][1]["route"]["zzz_no_such"] = json!(1);
    rds_rejected(discovery("v2", vec![rc]), "update_rejected", "virtual_hosts[0].routes[1].route.zzz_no_such").await;
}

#[tokio::test]
async fn rds_wrong_type_url() {
    let mut rc = route_config_to("local_route", "b_svc");
    rc["@type"] = json!(CLUSTER_T);
    rds_rejected(discovery("v2", vec![rc]), "update_rejected", "envoy.config.cluster.v3.Cluster").await;
}

#[tokio::test]
async fn rds_route_config_name_mismatch() {
    rds_rejected(discovery("v2", vec![route_config_to("other_route", "b_svc")]), "update_rejected", "other_route")
        .await;
}

#[tokio::test]
async fn rds_bad_regex() {
    let rc = typed(
        ROUTE_T,
        json!({ "name": "local_route", "virtual_hosts": [vhost("vh", &["*"], json!([
            to_cluster(json!({"safe_regex": {"regex": "/(unclosed"}}), "b_svc"),
            to_cluster(json!({"prefix": "/"}), "b_svc"),
        ]))]}),
    );
    rds_rejected(discovery("v2", vec![rc]), "update_rejected", "(unclosed").await;
}

#[tokio::test]
async fn rds_duplicate_route_config_names() {
    let twice = vec![route_config_to("local_route", "b_svc"), route_config_to("local_route", "b_svc")];
    rds_rejected(discovery("v2", twice), "update_rejected", "RouteConfiguration").await;
}

#[tokio::test]
async fn cds_duplicate_cluster_names() {
    let rig = rig().await;
    let s = &rig.setup;
    let dup = vec![static_cluster("dup_svc", &[s.b.addr()]), static_cluster("dup_svc", &[s.b.addr()])];
    // The good write points a_svc at b.
    let good = cds_of(s, "v9", vec![static_cluster("a_svc", &[s.b.addr()]), static_cluster("b_svc", &[s.b.addr()])]);
    rejected(&rig, "cds.yaml", &cds(s, "v2", dup), "cluster_manager.cds", "update_rejected", "dup_svc", &good).await;
    assert_eq!(rig.stat("cluster_manager.cluster_added").await, 3, "only a_svc, b_svc, e_svc were ever added");
}

#[tokio::test]
async fn cds_yaml_syntax_error_is_an_update_failure() {
    let rig = rig().await;
    let s = &rig.setup;
    let good = cds_of(s, "v9", vec![static_cluster("a_svc", &[s.b.addr()]), static_cluster("b_svc", &[s.b.addr()])]);
    rejected(&rig, "cds.yaml", YAML_SYNTAX_ERROR, "cluster_manager.cds", "update_failure", "cds.yaml", &good).await;
}

#[tokio::test]
async fn lds_route_to_unknown_cluster() {
    let rig = rig().await;
    let s = &rig.setup;
    let bad = discovery("v2", vec![rds_listener(s, "main"), cluster_listener("ghost", "ghost_svc")]);
    let good = discovery("v9", vec![cluster_listener("main", "b_svc")]);
    rejected(&rig, "lds.yaml", &bad, "listener_manager.lds", "update_rejected", "ghost_svc", &good).await;
    assert!(rig.listener("ghost").await.is_none(), "the rejected listener must not exist");
}

#[tokio::test]
async fn lds_bind_failure() {
    let rig = rig().await;
    let s = &rig.setup;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut l = cluster_listener("taken", "b_svc");
    l["address"]["socket_address"]["port_value"] = json!(port);
    let bad = discovery("v2", vec![rds_listener(s, "main"), l]);
    let good = discovery("v9", vec![cluster_listener("main", "b_svc")]);
    let needle = port.to_string();
    rejected(&rig, "lds.yaml", &bad, "listener_manager.lds", "update_rejected", &needle, &good).await;
    assert!(rig.listener("taken").await.is_none());
}

#[tokio::test]
async fn lds_unknown_field() {
    let rig = rig().await;
    let s = &rig.setup;
    let mut l = rds_listener(s, "main");
    l["no_such_listener_field"] = json!(true);
    let bad = discovery("v2", vec![l]);
    let good = discovery("v9", vec![cluster_listener("main", "b_svc")]);
    rejected(&rig, "lds.yaml", &bad, "listener_manager.lds", "update_rejected", "no_such_listener_field", &good).await;
}

/// A batch with one good and one bad file applies neither.
#[tokio::test]
async fn a_bad_file_rejects_its_whole_batch() {
    // A window makes the two renames one batch (without one they may be two).
    let rig = Rig::dynamic_args(|s| vec![rds_listener(s, "main")], &["--watch-coalesce-ms", "50"]).await;
    let s = &rig.setup;
    assert_eq!(rig.hit("/").await, "a");
    let rejected_before = rig.stat("listener_manager.lds.update_rejected").await;
    // Good on its own: a_svc now points at b.
    let good_cds =
        cds_of(s, "v2", vec![static_cluster("a_svc", &[s.b.addr()]), static_cluster("b_svc", &[s.b.addr()])]);
    let bad_lds = discovery("v2", vec![rds_listener(s, "main"), cluster_listener("ghost", "ghost_svc")]);
    Write::Rename.apply(&rig.path("cds.yaml"), &good_cds);
    Write::Rename.apply(&rig.path("lds.yaml"), &bad_lds);
    assert_eventually!(
        rig.stat("listener_manager.lds.update_rejected").await == rejected_before + 1,
        "the bad lds.yaml is rejected"
    );
    assert_eq!(rig.hit("/").await, "a", "the good cds.yaml of the rejected batch must not apply");
    let reloads = rig.reloads().await;
    assert!(reloads.iter().all(|r| r["changes"]["clusters"]["modified"] != json!(["a_svc"])), "{reloads:#?}");
}

#[tokio::test]
async fn eds_port_out_of_range() {
    let rig = Rig::rds().await;
    assert_eq!(rig.hit("/eds").await, "a");
    let mut bad: Value = serde_yaml::from_str(&cla("v2", "e_svc", &[rig.setup.b.addr()])).unwrap();
    bad["resources"][0]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] =
        json!(70000);
    Write::Rename.apply(&rig.path("eds.yaml"), &serde_yaml::to_string(&bad).unwrap());
    assert_eventually!(rig.stat("cluster.e_svc.update_rejected").await == 1, "the bad eds.yaml is rejected");
    assert_eq!(rig.hit("/eds").await, "a", "the old endpoint keeps serving");
    let error = rig.reloads().await[0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("70000"), "error: {error:?}");
    // Envoy shows endpoints only with `?include_eds`; the error must be there at least.
    let dump = rig.legate.admin_get("/config_dump?include_eds").await;
    assert!(
        strings(&dump.json()).iter().any(|s| s.contains(&error)),
        "/config_dump?include_eds lacks the error {error:?}:\n{}",
        dump.text()
    );
    Write::Rename.apply(&rig.path("eds.yaml"), &cla("v3", "e_svc", &[rig.setup.b.addr()]));
    assert_eventually!(rig.hit("/eds").await == "b", "the good eds.yaml applies");
}

/// Envoy accepts a dynamic cluster whose enum value it does not know, with a warning and
/// `server.dynamic_unknown_fields`, and uses the field's default: so does legate (the
/// conformance case `dynamic/cds_unknown_enum_ignored`). A value Envoy knows and legate does
/// not implement is still rejected, and so is an unknown field.
#[tokio::test]
async fn cds_unknown_enum_name_is_tolerated_like_envoy() {
    let rig = rig().await;
    let s = &rig.setup;
    assert_eq!(rig.hit("/").await, "a");
    let success = rig.stat("cluster_manager.cds.update_success").await;
    let with_lb = |policy: &str| {
        let mut a = static_cluster("a_svc", &[s.b.addr()]);
        a["lb_policy"] = json!(policy);
        cds_of(s, "v2", vec![a, static_cluster("b_svc", &[s.b.addr()])])
    };
    Write::Rename.apply(&rig.path("cds.yaml"), &with_lb("NO_SUCH_POLICY"));
    assert_eventually!(rig.hit("/").await == "b", "the cluster with the unknown lb_policy serves");
    // The stats of an update are counted just after its snapshot serves.
    assert_eventually!(
        rig.stat("cluster_manager.cds.update_success").await == success + 1,
        "the update counts as a success"
    );
    assert_eq!(rig.stat("cluster_manager.cds.update_rejected").await, 0);
    assert_eq!(rig.stat("server.dynamic_unknown_fields").await, 1);
    assert_eventually!(
        rig.legate.output().contains("NO_SUCH_POLICY") && rig.legate.output().contains("lb_policy"),
        "the log names the field and the value"
    );

    // Known to Envoy, not implemented by legate: rejected, naming the field.
    let back = cds_of(s, "v3", vec![static_cluster("a_svc", &[s.a.addr()]), static_cluster("b_svc", &[s.b.addr()])]);
    Write::Rename.apply(&rig.path("cds.yaml"), &back);
    assert_eventually!(rig.hit("/").await == "a", "a_svc points at a again");
    let good = with_lb("ROUND_ROBIN");
    rejected(
        &rig,
        "cds.yaml",
        &with_lb("CLUSTER_PROVIDED"),
        "cluster_manager.cds",
        "update_rejected",
        "lb_policy",
        &good,
    )
    .await;
    assert_eq!(rig.stat("server.dynamic_unknown_fields").await, 1, "CLUSTER_PROVIDED is not an unknown name");
}
