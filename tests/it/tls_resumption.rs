//! TLS session resumption on a listener: on by default (within one context), across
//! contexts sharing `session_ticket_keys` files, the stateful cache alone with
//! `disable_stateless_session_resumption`, none with both disabled; `ssl.session_reused`
//! counts resumed handshakes. A rustls client keeps its sessions in a store shared by the
//! connections that should resume.

use serde_json::{json, Value};

use crate::common::config::{direct, hcm, route_config, vhost};
use crate::common::legate::{validate, Legate};
use crate::common::tls::{connect, get_h1, Alg, Ca, ClientOpts, Pair, Sessions};

const TLS_CONTEXT: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";

fn listener(name: &str, server: &Pair, extra: Value) -> Value {
    let mut h = hcm(route_config(json!([vhost("v", &["*"], json!([direct(json!({"prefix": "/"}), "hi")]))])));
    h["stat_prefix"] = json!(name);
    let mut ctx = json!({
        "@type": TLS_CONTEXT,
        "common_tls_context": { "tls_certificates": [{
            "certificate_chain": { "inline_string": server.cert },
            "private_key": { "inline_string": server.key },
        }] },
    });
    if let (Some(c), Value::Object(extra)) = (ctx.as_object_mut(), extra) {
        c.extend(extra);
    }
    json!({
        "name": name,
        "stat_prefix": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "filters": [{ "name": "hcm", "typed_config": h }],
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": ctx },
        }],
    })
}

fn boot(listeners: Vec<Value>) -> String {
    let v = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": { "listeners": listeners },
    });
    serde_yaml::to_string(&v).expect("yaml")
}

/// One request on a new connection to `listener`, with the client context (and sessions) of
/// `store`; whether the handshake resumed.
async fn resumed(legate: &Legate, listener: &str, ca: &Ca, store: &Sessions) -> bool {
    let o = ClientOpts { sessions: Some(store.clone()), ..Default::default() };
    let mut s = connect(legate.listener(listener), &ca.cert, &o).await.expect("handshake");
    // Reading the response to its end also reads the TLS 1.3 tickets sent after the handshake.
    let (status, body) = get_h1(&mut s, "localhost", "/").await.expect("response");
    assert!(status.contains("200") && body == "hi", "{status} {body}");
    s.resumed
}

fn store() -> Sessions {
    Sessions::default()
}

#[tokio::test]
async fn sessions_resume_by_default_across_shared_ticket_keys_and_not_when_disabled() {
    let ca = Ca::new("test ca");
    let server = ca.server(&["localhost"], Alg::Ecdsa);
    let dir = tempfile::tempdir().expect("tempdir");
    let (new_key, old_key) = (dir.path().join("new.key"), dir.path().join("old.key"));
    std::fs::write(&new_key, [7u8; 80]).expect("write key");
    std::fs::write(&old_key, [9u8; 80]).expect("write key");
    let keys = |files: &[&std::path::Path]| json!({ "session_ticket_keys": { "keys": files.iter().map(|f| json!({ "filename": f })).collect::<Vec<_>>() } });
    let legate = Legate::start(boot(vec![
        listener("default", &server, json!({})),
        listener("default2", &server, json!({})),
        listener("old", &server, keys(&[&old_key])),
        listener("rotated", &server, keys(&[&new_key, &old_key])),
        listener("stateful", &server, json!({ "disable_stateless_session_resumption": true })),
        listener(
            "none",
            &server,
            json!({ "disable_stateless_session_resumption": true, "disable_stateful_session_resumption": true }),
        ),
    ]))
    .await;

    // Default: a second connection to the same context resumes; another context's random
    // ticket key does not open its tickets.
    let s = store();
    assert!(!resumed(&legate, "default", &ca, &s).await);
    assert!(resumed(&legate, "default", &ca, &s).await, "resumed on the same listener");
    assert!(!resumed(&legate, "default2", &ca, &s).await, "another context's ticket");
    assert_eq!(legate.stat("listener.default.ssl.session_reused").await, 1);
    assert_eq!(legate.stat("listener.default2.ssl.session_reused").await, 0);

    // Shared keys: a ticket sealed under the old key opens where the old key is second.
    let s = store();
    assert!(!resumed(&legate, "old", &ca, &s).await);
    assert!(resumed(&legate, "rotated", &ca, &s).await, "ticket of the old key on the rotated listener");
    assert_eq!(legate.stat("listener.rotated.ssl.session_reused").await, 1);

    // The stateful cache alone still resumes.
    let s = store();
    assert!(!resumed(&legate, "stateful", &ca, &s).await);
    assert!(resumed(&legate, "stateful", &ca, &s).await, "stateful resumption");

    // Both disabled: never.
    let s = store();
    assert!(!resumed(&legate, "none", &ca, &s).await);
    assert!(!resumed(&legate, "none", &ca, &s).await, "resumption disabled");
    assert_eq!(legate.stat("listener.none.ssl.session_reused").await, 0);
}

#[tokio::test]
async fn bad_ticket_key_settings_are_refused() {
    let ca = Ca::new("test ca");
    let server = ca.server(&["localhost"], Alg::Ecdsa);
    let at = "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config";
    let cases = [
        (
            json!({ "session_ticket_keys": { "keys": [{ "inline_string": "too short" }] } }),
            format!("{at}.session_ticket_keys.keys[0]: Incorrect TLS session ticket key length. Length 9, expected length 80."),
        ),
        (
            json!({ "session_ticket_keys_sds_secret_config": { "name": "keys" } }),
            format!("{at}.session_ticket_keys_sds_secret_config: not implemented by legate"),
        ),
    ];
    for (extra, want) in cases {
        let (_f, run) = validate("tls.yaml", &boot(vec![listener("l", &server, extra)])).await;
        assert_eq!(run.code(), Some(1), "{want}\n{}", run.output);
        assert!(run.output.contains(&want), "want {want}\ngot {}", run.output);
    }
}
