//! `envoy.filters.http.header_to_metadata` seen through the access log's
//! `%DYNAMIC_METADATA(...)%`, as Envoy 1.40 logs the same requests: a request header copied
//! (and removed before the upstream), a number, a fixed value when a header is missing, the
//! whole namespace as JSON, a response header, truncation.

use serde_json::json;

use crate::access_log::{file_log, lines, log_dir};
use crate::common::client::Client;
use crate::common::config::{bootstrap, hcm, route_config, router_filter, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;
use crate::common::upstream;

#[tokio::test]
async fn header_rules_set_metadata_the_access_log_reads() {
    let up = upstream::http1().name("svc").spawn().await;
    let (_dir, path) = log_dir();
    let format = json!({ "text_format_source": { "inline_string":
        "[%DYNAMIC_METADATA(envoy.lb:version)%] [%DYNAMIC_METADATA(envoy.lb)%] \
         [%DYNAMIC_METADATA(envoy.filters.http.header_to_metadata:dflt)%] [%DYNAMIC_METADATA(envoy.lb:version):3%] \
         [%DYNAMIC_METADATA(envoy.lb:rs)%] %REQ(X-VERSION)%\n" } });
    let kv = |ns: Option<&str>, key: &str, value: Option<&str>, ty: &str| {
        let mut v = json!({ "key": key, "type": ty });
        if let Some(ns) = ns {
            v["metadata_namespace"] = json!(ns);
        }
        if let Some(value) = value {
            v["value"] = json!(value);
        }
        v
    };
    let filter = json!({ "name": "h2m", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config",
        "request_rules": [
            { "header": "x-version", "remove": true,
              "on_header_present": kv(Some("envoy.lb"), "version", None, "STRING"),
              "on_header_missing": kv(Some("envoy.lb"), "version", Some("none"), "STRING") },
            { "header": "x-n", "on_header_present": kv(Some("envoy.lb"), "nn", None, "NUMBER") },
            { "header": "x-d", "on_header_present": kv(None, "dflt", Some("fixed"), "STRING") },
        ],
        "response_rules": [{ "header": "x-upstream-instance", "on_header_present": kv(Some("envoy.lb"), "rs", None, "STRING") }],
    } });
    let mut manager = hcm(route_config(json!([vhost("v", &["*"], json!([to_cluster(json!({"prefix": "/"}), "c")]))])));
    manager["http_filters"] = json!([filter, router_filter()]);
    manager["access_log"] = json!([file_log(&path, Some(format))]);
    let yaml = bootstrap().listener_hcm("main", manager).cluster(static_cluster("c", &[up.addr()])).yaml();
    let legate = Legate::start(yaml).await;
    let c = Client::h1();
    let url = legate.url("main", "/");
    let echo = c.get_with(&url, &[("x-version", "v1.2"), ("x-n", "42"), ("x-d", "q")]).await.echo();
    assert!(echo["headers"].get("x-version").is_none(), "removed before the upstream: {echo}");
    c.get_with(&url, &[("x-n", "1.5")]).await;
    c.get_with(&url, &[("x-n", "abc"), ("x-version", "a"), ("x-version", "b")]).await;
    let logged = lines(&path, 3).await;
    let instance = "svc";
    assert_eq!(
        logged[0],
        format!(r#"[v1.2] [{{"nn":42,"rs":"{instance}","version":"v1.2"}}] [fixed] [v1.] [{instance}] -"#)
    );
    assert_eq!(
        logged[1],
        format!(r#"[none] [{{"nn":1.5,"rs":"{instance}","version":"none"}}] [-] [non] [{instance}] -"#)
    );
    assert_eq!(logged[2], format!(r#"[a,b] [{{"rs":"{instance}","version":"a,b"}}] [-] [a,b] [{instance}] -"#));
}
