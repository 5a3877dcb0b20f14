//! Self-tests of the fixtures in `tests/common/`; they do not need legate.

use std::net::Ipv4Addr;

use crate::common::client::{self, Client};
use crate::common::upstream::{self, Proto};
use crate::common::{assert_eventually, config, dns::DnsServer, sha256};
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::json;

#[test]
fn sha256_matches_known_vectors() {
    assert_eq!(sha256::hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(sha256::hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(
        sha256::hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
}

#[tokio::test]
async fn http1_upstream_echoes_the_request() {
    let up = upstream::http1().name("a").spawn().await;
    let c = Client::h1();
    let r = c.get_with(&format!("http://{}/some/path?x=1", up.addr()), &[("x-test", "1"), ("x-multi", "a")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.instance(), "a");
    let e = r.echo();
    assert_eq!(e["instance"], "a");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["path"], "/some/path");
    assert_eq!(e["query"], "x=1");
    assert_eq!(e["headers"]["x-test"], "1");
    assert_eq!(e["proto"], "HTTP/1.1");
    assert_eq!(e["conn_seq"], 1);
    assert_eq!(e["req_on_conn"], 1);
    let again = c.get(&format!("http://{}/", up.addr())).await.echo();
    assert_eq!(again["conn_seq"], 1, "keep-alive reuses the connection");
    assert_eq!(again["req_on_conn"], 2);
    assert_eq!(up.requests(), 2);
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn upstream_knobs() {
    let up = upstream::http1().name("k").spawn().await;
    let base = format!("http://{}", up.addr());
    let c = Client::h1();
    assert_eq!(c.get(&format!("{base}/status/418")).await.status, 418);
    let r = c.get_with(&format!("{base}/"), &[("x-echo-status", "503")]).await;
    assert_eq!(r.status, 503);
    assert_eq!(c.get(&format!("{base}/delay/50ms")).await.status, 200);
    let r = c.get(&format!("{base}/bytes/1000")).await;
    assert_eq!(&r.body[..], &sha256::pattern(1000)[..]);
    let body = sha256::pattern(100_000);
    let r = c.post(&format!("{base}/echo-body"), body.clone()).await;
    assert_eq!(sha256::hex(&r.body), sha256::hex(&body));
    let e = c.post(&format!("{base}/x"), body.clone()).await.echo();
    assert_eq!(e["body_len"], 100_000);
    assert_eq!(e["body_sha256"], sha256::hex(&body));
    let r = c.get_with(&format!("{base}/"), &[("x-echo-response-header", "x-extra: yes")]).await;
    assert_eq!(r.header("x-extra"), Some("yes"));
    let fail = [("x-echo-fail-times", "2"), ("x-echo-fail-key", "k1")];
    assert_eq!(c.get_with(&format!("{base}/"), &fail).await.status, 503);
    assert_eq!(c.get_with(&format!("{base}/"), &fail).await.status, 503);
    assert_eq!(c.get_with(&format!("{base}/"), &fail).await.status, 200);
    let err = Client::h1()
        .try_send(client::request(hyper::Method::GET, &format!("{base}/reset")).body(Default::default()).unwrap())
        .await;
    assert!(err.is_err(), "/reset must not answer: {err:?}");
    let fixed = upstream::http1().status(503).spawn().await;
    assert_eq!(client::get(&format!("http://{}/", fixed.addr())).await.status, 503);
}

#[tokio::test]
async fn h2_upstream_speaks_h2c_and_sends_grpc_trailers() {
    let up = upstream::h2().name("g").spawn().await;
    let c = Client::h2c();
    let r = c.get(&format!("http://{}/plain", up.addr())).await;
    assert_eq!(r.version, hyper::Version::HTTP_2);
    assert_eq!(r.echo()["proto"], "HTTP/2.0");
    let req = client::request(hyper::Method::POST, &format!("http://{}/pkg.Svc/Call", up.addr()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(bytes::Bytes::from_static(b"\0\0\0\0\0").into())
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    let t = r.trailers.expect("trailers");
    assert_eq!(t.get("grpc-status").unwrap(), "0");
    assert_eq!(r.body[0], 0, "uncompressed gRPC frame");
}

#[tokio::test]
async fn upstreams_share_a_port_on_several_loopback_ips() {
    let ups =
        upstream::spawn_same_port(Proto::Http1, &[("a", "127.0.0.31"), ("b", "127.0.0.32"), ("c", "127.0.0.33")]).await;
    let port = ups[0].port();
    for u in &ups {
        assert_eq!(u.port(), port);
        let r = client::get(&format!("http://{}/", u.addr())).await;
        assert_eq!(r.instance(), u.name());
    }
}

async fn resolve(server: std::net::SocketAddr, name: &str, rtype: RecordType) -> Message {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut q = Message::new();
    q.set_id(7)
        .set_message_type(MessageType::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    sock.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = crate::common::bounded("dns answer", sock.recv_from(&mut buf)).await.unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            Some(RData::A(a)) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn dns_server_answers_from_a_mutable_table() {
    let dns = DnsServer::spawn().await;
    dns.set("service1", &["127.0.0.21", "127.0.0.22", "127.0.0.23"]);
    let m = resolve(dns.addr(), "service1.", RecordType::A).await;
    assert_eq!(m.id(), 7);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(a_records(&m).len(), 3);
    dns.set("service1", &["127.0.0.21", "127.0.0.22"]);
    let m = resolve(dns.addr(), "Service1.", RecordType::A).await;
    assert_eq!(a_records(&m), vec!["127.0.0.21".parse::<Ipv4Addr>().unwrap(), "127.0.0.22".parse().unwrap()]);
    let m = resolve(dns.addr(), "service1.", RecordType::AAAA).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());
    let m = resolve(dns.addr(), "nope.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert_eq!(dns.queries("service1"), 2);
}

#[tokio::test]
async fn assert_eventually_waits_for_a_condition() {
    let up = upstream::http1().spawn().await;
    let addr = up.addr();
    tokio::spawn(async move { client::get(&format!("http://{addr}/")).await });
    assert_eventually!(up.requests() == 1, "request reaches the upstream");
}

#[tokio::test]
#[should_panic(expected = "never true")]
async fn assert_eventually_gives_up() {
    assert_eventually!(false, "never true");
}

#[tokio::test]
async fn raw_client_reads_a_response() {
    let up = upstream::http1().spawn().await;
    let r = client::raw(up.addr(), b"GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").await.expect("response");
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_some());
    let e: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(e["path"], "/x");
}

#[test]
fn config_builder_writes_envoy_yaml() {
    let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let b = config::bootstrap()
        .routes(json!([config::to_cluster(json!({"prefix": "/"}), "service1")]))
        .cluster(config::static_cluster("service1", &[addr]));
    let v: serde_json::Value = serde_yaml::from_str(&b.yaml()).unwrap();
    assert_eq!(v, b.value());
    let l = &v["static_resources"]["listeners"][0];
    assert_eq!(l["name"], "main");
    assert_eq!(l["address"]["socket_address"]["port_value"], 0);
    let ep = &v["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        ["address"]["socket_address"];
    assert_eq!(ep["port_value"], 8080);
    assert_eq!(
        crate::common::legate::parse_listeners("main::127.0.0.1:1234\nadmin2::127.0.0.2:5\n")["main"],
        "127.0.0.1:1234".parse().unwrap()
    );
}
