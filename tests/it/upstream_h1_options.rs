//! A cluster's upstream `Http1ProtocolOptions`, as Envoy's HTTP/1 codec does them:
//! `header_key_format.proper_case_words` sends request header names Proper-Cased (without it
//! they go lower-case); the upstream's response trailers reach the client only with
//! `enable_trailers`. A raw upstream records the exact bytes of each request head and answers
//! chunked, with a trailer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::client::Client;
use crate::common::config::{bootstrap, route_config, static_cluster, to_cluster, vhost};
use crate::common::legate::Legate;

/// A raw HTTP/1.1 upstream answering each request (no body) with a chunked 200 and a trailer;
/// the heads it received, as bytes, in order.
async fn recording_upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Bounded: at most 64 reads or requests per connection.
                for _ in 0..64 {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                    buf.drain(..end + 4);
                    seen.lock().expect("heads").push(head);
                    if s.write_all(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-trail: yes\r\n\r\n",
                    )
                    .await
                    .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, heads)
}

fn with_h1_options(mut cluster: Value, h1: Value) -> Value {
    cluster["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": { "http_protocol_options": h1 },
        }
    });
    cluster
}

#[tokio::test]
async fn proper_case_words_and_enable_trailers_act_on_the_http1_upstream() {
    let (proper_addr, proper_heads) = recording_upstream().await;
    let (plain_addr, plain_heads) = recording_upstream().await;
    let routes =
        json!([to_cluster(json!({"prefix": "/proper"}), "proper"), to_cluster(json!({"prefix": "/plain"}), "plain"),]);
    let proper = with_h1_options(
        static_cluster("proper", &[proper_addr]),
        json!({"header_key_format": {"proper_case_words": {}}, "enable_trailers": true}),
    );
    let plain = with_h1_options(static_cluster("plain", &[plain_addr]), json!({}));
    let legate = Legate::start(
        bootstrap()
            .listener("main", route_config(json!([vhost("default", &["*"], routes)])))
            .cluster(proper)
            .cluster(plain)
            .yaml(),
    )
    .await;

    // Over HTTP/2 from the client: the names arrive lower-case whatever the client wrote.
    for client in [Client::h1(), Client::h2c()] {
        for path in ["/proper", "/plain"] {
            let r = client.get_with(&legate.url("main", path), &[("x-custom-thing", "1")]).await;
            assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok"), "{path}");
            if r.version == hyper::Version::HTTP_2 {
                // Envoy's codec drops an HTTP/1 upstream's trailers unless enable_trailers.
                let trailer = r.trailers.as_ref().and_then(|t| t.get("x-trail")).map(|v| v.as_bytes().to_vec());
                let want = (path == "/proper").then(|| b"yes".to_vec());
                assert_eq!(trailer, want, "{path}: {:?}", r.trailers);
            }
        }
    }
    let proper = proper_heads.lock().expect("heads").clone();
    let plain = plain_heads.lock().expect("heads").clone();
    assert_eq!((proper.len(), plain.len()), (2, 2), "{proper:?} {plain:?}");
    for head in &proper {
        assert!(head.starts_with("GET /proper HTTP/1.1\r\n"), "{head:?}");
        assert!(head.contains("\r\nX-Custom-Thing: 1\r\n"), "{head:?}");
        assert!(head.contains("\r\nHost: "), "{head:?}");
        assert!(head.contains("\r\nX-Forwarded-Proto: http\r\n"), "{head:?}");
        assert!(!head.contains("x-custom-thing") && !head.contains("\r\nhost: "), "{head:?}");
    }
    for head in &plain {
        assert!(head.contains("\r\nx-custom-thing: 1\r\n"), "{head:?}");
        assert!(head.contains("\r\nhost: "), "{head:?}");
        assert!(!head.contains("X-Custom-Thing"), "{head:?}");
    }
}
