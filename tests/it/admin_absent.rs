//! Envoy's admin paths for features legate lacks (profilers, heap dumps, the runtime's admin
//! layer) answer with the status and body of an Envoy built without them, not a 404.

use crate::common::config::bootstrap;
use crate::common::legate::Legate;

/// Envoy's admin paths for features an Envoy build may lack answer as such a build does.
#[tokio::test]
async fn profilers_and_runtime_modify_answer_as_envoy_without_them() {
    let l = Legate::start(bootstrap().yaml()).await;
    let cases: &[(&str, u16, &str)] = &[
        ("/cpuprofiler", 400, "?enable=<y|n>\n"),
        ("/cpuprofiler?enable=y", 500, "failure to start the profiler"),
        ("/cpuprofiler?enable=n", 200, "OK\n"),
        ("/heapprofiler?enable=y", 501, "The current build does not support heap profiler"),
        ("/allocprofiler", 400, "?enable=<y|n>\n"),
        ("/allocprofiler?enable=y", 400, "Allocation profile is not implemented in current build"),
        ("/runtime_modify?some.key=1", 503, "No admin layer specified"),
    ];
    for (path, status, body) in cases {
        let r = l.admin_post(path).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (*status, *body), "POST {path}");
    }
    let r = l.admin_post("/runtime_modify").await;
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("usage: /runtime_modify?key1=value1"), "{}", r.text());
    let r = l.admin_get("/heap_dump").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (501, "Heap profile is not implemented in current build"));
    assert_eq!(l.admin_get("/cpuprofiler?enable=y").await.status, 405);
}
