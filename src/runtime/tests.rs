use super::*;

fn layers(dir: &std::path::Path) -> Vec<(String, RuntimeLayer)> {
    vec![
        ("static0".into(), RuntimeLayer::Static(vec![("a.two".into(), "static".into()), ("s".into(), "7".into())])),
        (
            "disk0".into(),
            RuntimeLayer::Disk {
                symlink_root: dir.join("v1"),
                subdirectory: "envoy".into(),
                append_service_cluster: false,
            },
        ),
        ("admin0".into(), RuntimeLayer::Admin),
    ]
}

fn disk_fixture(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("legate-runtime-{name}-{}", std::process::id()));
    let base = dir.join("v1/envoy");
    std::fs::create_dir_all(base.join("fault/http/abort")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(base.join("a")).unwrap_or_else(|e| panic!("{e}"));
    let write = |p: &str, text: &str| std::fs::write(base.join(p), text).unwrap_or_else(|e| panic!("{e}"));
    write("fault/http/abort/abort_percent", "100\n");
    write("a/commented", "# comment\nfoo  \n");
    write("a/two", "x\ny\n");
    write("flag", "true\n");
    write("frac", "numerator: 5\ndenominator: MILLION\n");
    dir
}

#[test]
fn a_disk_layer_reads_files_as_envoy_does() {
    let dir = disk_fixture("disk");
    let rt = Runtime::new(&layers(&dir), "");
    assert_eq!(rt.integer("fault.http.abort.abort_percent", 0), 100);
    let snap = rt.snapshot();
    assert_eq!(snap.get("a.commented").map(|e| e.raw.as_str()), Some("foo"));
    assert_eq!(snap.get("a.two").map(|e| e.raw.as_str()), Some("x\ny"), "the later layer wins");
    assert_eq!(rt.integer("s", 0), 7);
    assert_eq!(rt.integer("missing", 3), 3);
    assert!(rt.boolean("flag", false));
    assert!(!rt.boolean("missing", false));
    assert_eq!(rt.double("s", 0.5), 7.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fractional_key_is_a_percentage_or_a_fraction() {
    let dir = disk_fixture("percent");
    let rt = Runtime::new(&layers(&dir), "");
    let d = Fraction { numerator: 0, denominator: 1_000_000 };
    // An integer is over 100 whatever the default's denominator (Envoy 1.40: a value of 100
    // with a default over TEN_THOUSAND aborts every request).
    assert_eq!(rt.percent("fault.http.abort.abort_percent", d), Fraction { numerator: 100, denominator: 100 });
    assert_eq!(rt.percent("frac", d), Fraction { numerator: 5, denominator: 1_000_000 });
    assert_eq!(rt.percent("a.commented", d), d, "not a number: the default");
    assert_eq!(rt.percent("", d), d, "no key: the default");
    assert!(rt.enabled("fault.http.abort.abort_percent", d));
    let k = FractionKey {
        default_value: Fraction { numerator: 100, denominator: 100 },
        runtime_key: Some(Arc::from("zero")),
    };
    assert!(k.enabled(&rt));
    assert!(rt.modify(&[("zero".into(), "0".into())]));
    assert!(!k.enabled(&rt));
    let f = FlagKey { default_value: true, runtime_key: Some(Arc::from("off")) };
    assert!(f.enabled(&rt));
    assert!(rt.modify(&[("off".into(), "false".into())]));
    assert!(!f.enabled(&rt));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_admin_layer_overrides_and_removes_and_counts() {
    let dir = disk_fixture("admin");
    let store = Store::new();
    let rt = Runtime::with_stats(&layers(&dir), "", &store);
    let stat = |n: &str| store.counter(&format!("runtime.{n}")).value();
    let gauge = |n: &str| store.gauge(&format!("runtime.{n}")).value();
    assert_eq!((stat("load_success"), stat("override_dir_not_exists"), stat("load_error")), (2, 2, 0));
    assert_eq!((gauge("num_keys"), gauge("num_layers"), gauge("admin_overrides_active")), (6, 3, 0));
    assert!(rt.modify(&[("s".into(), "over".into()), ("x.y".into(), "3".into())]));
    let j = rt.admin_json();
    assert_eq!(j["layers"], serde_json::json!(["static0", "disk0", "admin0"]));
    assert_eq!(j["entries"]["s"], serde_json::json!({"final_value": "over", "layer_values": ["7", "", "over"]}));
    assert_eq!(j["entries"]["x.y"]["layer_values"], serde_json::json!(["", "", "3"]));
    assert_eq!((stat("load_success"), gauge("num_keys"), gauge("admin_overrides_active")), (3, 7, 1));
    assert!(rt.modify(&[("x.y".into(), String::new()), ("s".into(), String::new())]));
    assert_eq!(rt.integer("s", 0), 7, "the static value is back");
    assert!(rt.admin_json()["entries"].get("x.y").is_none());
    assert_eq!((gauge("num_keys"), gauge("admin_overrides_active")), (6, 0));
    let none = Runtime::new(&[], "");
    assert!(!none.modify(&[("a".into(), "1".into())]), "no admin layer");
    assert_eq!(none.admin_json(), serde_json::json!({"entries": {}, "layers": []}));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_replaced_symlink_root_is_read_again() {
    let dir = disk_fixture("watch");
    std::fs::create_dir_all(dir.join("v2/envoy")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("v2/envoy/k"), "2").unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(dir.join("v1"), dir.join("current")).unwrap_or_else(|e| panic!("{e}"));
    let l = vec![(
        "d".to_string(),
        RuntimeLayer::Disk {
            symlink_root: dir.join("current"),
            subdirectory: "envoy".into(),
            append_service_cluster: false,
        },
    )];
    let rt = Runtime::new(&l, "");
    rt.watch();
    assert_eq!(rt.integer("k", 0), 0);
    std::os::unix::fs::symlink(dir.join("v2"), dir.join("new")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(dir.join("new"), dir.join("current")).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = 0;
    for _ in 0..100 {
        seen = rt.integer("k", 0);
        if seen == 2 {
            break;
        }
        tokio::time::sleep(POLL / 5).await;
    }
    assert_eq!(seen, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_route_runtime_fraction_is_decided_by_the_request_random_value() {
    use crate::config::model::{PathMatch, RouteMatch};
    use crate::routing::matcher::{route_matches, RequestView};
    let m = RouteMatch {
        path: PathMatch::Prefix("/".into()),
        case_sensitive: true,
        headers: Vec::new(),
        query_parameters: Vec::new(),
        grpc: false,
        tls_context: None,
        runtime_fraction: Some(FractionKey {
            default_value: Fraction { numerator: 20, denominator: 100 },
            runtime_key: Some(Arc::from("r.k")),
        }),
    };
    let h = http::HeaderMap::new();
    let with = |rt: &Runtime, random: u64| {
        let mut v = RequestView::new("/x", "GET", "h", "http", &h);
        v.runtime = Some((rt, random));
        route_matches(&m, &v)
    };
    let none = Runtime::new(&[], "");
    // The default, 20%: random % 100 < 20.
    assert!(with(&none, 119));
    assert!(!with(&none, 120));
    let rt = Runtime::new(&[("s".into(), RuntimeLayer::Static(vec![("r.k".into(), "50".into())]))], "");
    assert!(with(&rt, 149), "the runtime's 50%");
    assert!(!with(&rt, 150));
    let rt = Runtime::new(&[("s".into(), RuntimeLayer::Static(vec![("r.k".into(), "0".into())]))], "");
    assert!(!with(&rt, 0), "0% never matches");
}
